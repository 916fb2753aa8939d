//! The command line: subcommands, their flags, and which part of the library each one runs.
//!
//! Owns argument parsing and exit codes (0 fine, 1 failure, 2 bad config or usage). It does
//! not implement any mode itself: each subcommand hands over to its module.

use crate::config::{self, Config};
use crate::logging::{self, LogFormat, LogTarget};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Autoscaler for GitHub Actions self-hosted runners, with a live terminal dashboard.
#[derive(Debug, Parser)]
#[command(name = "megascaler", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; their names and flags are a stable interface.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The engine, headless: logs to stderr and to files under `state_dir`.
    Serve {
        #[arg(long, default_value = "config.yml")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "plain")]
        log_format: LogFormat,
    },
    /// The engine with the live dashboard.
    Tui {
        #[arg(long, default_value = "config.yml")]
        config: PathBuf,
    },
    /// The dashboard against the embedded simulated GitHub; needs no credentials.
    Demo,
    /// The simulated GitHub, standalone.
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        address: String,
        /// Where to POST signed `workflow_job` webhooks.
        #[arg(long)]
        webhook_url: Option<String>,
        /// HMAC secret for the webhooks (prefer the environment variable: a flag shows in `ps`).
        #[arg(long, env = "MEGASCALER_SIM_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Validate the config; print it resolved, with secrets redacted.
    CheckConfig {
        #[arg(long, default_value = "config.yml")]
        config: PathBuf,
    },
    /// Run actions/runner's `Runner.Worker` behind megascaler's stdin frames.
    WorkerAdapter {
        /// Path to `Runner.Worker` (or `Runner.Worker.dll`).
        worker: PathBuf,
    },
    /// The simulator's worker: reads a job from stdin frames, logs steps, reports completion.
    SimWorker {
        /// The labels the worker was started for; a job for other labels is reported failed.
        #[arg(long, value_delimiter = ',')]
        labels: Option<Vec<String>>,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("megascaler: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_or_exit(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("megascaler: invalid configuration: {e}");
        ExitCode::from(2)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Makes this process non-dumpable, so workers (which run as the same user) can neither read
/// `/proc/<pid>/environ` (where `MEGASCALER_PAT` may live) nor attach to megascaler's memory.
fn protect_process_memory() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("megascaler: warning: cannot mark the process non-dumpable: {e}");
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if matches!(
        cli.command,
        Command::Serve { .. } | Command::Tui { .. } | Command::Demo
    ) {
        protect_process_memory();
    }
    match cli.command {
        Command::CheckConfig { config } => Ok(match load_or_exit(&config) {
            Ok(c) => {
                print!("{}", config::to_redacted_yaml(&c));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        }),
        Command::Serve { config, log_format } => {
            let c = match load_or_exit(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let _guard = logging::init(LogTarget::StderrAndFile(log_format), Some(&c.state_dir))?;
            runtime()?.block_on(crate::engine::serve::run(c))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tui { config } => {
            let c = match load_or_exit(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let _guard = logging::init(LogTarget::FileOnly, Some(&c.state_dir))?;
            runtime()?.block_on(crate::tui::run(c))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            runtime()?.block_on(crate::tui::demo::run())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim {
            address,
            webhook_url,
            secret,
        } => {
            let _guard = logging::init(LogTarget::StderrOnly, None)?;
            runtime()?.block_on(crate::sim::standalone::run(
                crate::sim::standalone::Options {
                    address,
                    webhook_url,
                    secret,
                },
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::WorkerAdapter { worker } => {
            let code = crate::worker::adapter::run(&worker)?;
            Ok(ExitCode::from(code))
        }
        Command::SimWorker { labels } => {
            let code = runtime()?.block_on(crate::sim::worker::run_with_labels(labels))?;
            Ok(ExitCode::from(code))
        }
    }
}
