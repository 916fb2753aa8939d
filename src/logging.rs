//! Where log lines go, per mode.
//!
//! Owns the `tracing` subscriber set-up: `serve` writes to stderr (plain or JSON) and to a
//! daily rolling file under `state_dir/logs`; the dashboard writes to the file only, never to
//! the screen. `RUST_LOG` filters (default `info`). It must not log secrets: every credential
//! is a [`crate::secret::Secret`], which prints `***`.

use std::path::Path;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// How `serve` formats stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Where logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// stderr in the given format, and the file.
    StderrAndFile(LogFormat),
    /// The file only (the dashboard owns the screen).
    FileOnly,
    /// stderr only (subcommands without a state dir).
    StderrOnly,
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. Keep the returned guard alive until exit, or the file
/// writer loses its last lines.
pub fn init(target: LogTarget, state_dir: Option<&Path>) -> anyhow::Result<Option<WorkerGuard>> {
    let (file_layer, guard) = match (target, state_dir) {
        (LogTarget::StderrOnly, _) | (_, None) => (None, None),
        (_, Some(dir)) => {
            let logs = dir.join("logs");
            create_private_dir(dir)?;
            create_private_dir(&logs)?;
            let appender = tracing_appender::rolling::daily(&logs, "megascaler.log");
            let (writer, guard) = tracing_appender::non_blocking(appender);
            (
                Some(fmt::layer().with_ansi(false).with_writer(writer)),
                Some(guard),
            )
        }
    };
    let (plain, json) = match target {
        LogTarget::StderrAndFile(LogFormat::Plain) | LogTarget::StderrOnly => {
            (Some(fmt::layer().with_writer(std::io::stderr)), None)
        }
        LogTarget::StderrAndFile(LogFormat::Json) => {
            (None, Some(fmt::layer().json().with_writer(std::io::stderr)))
        }
        LogTarget::FileOnly => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter())
        .with(file_layer)
        .with(plain)
        .with(json)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))?;
    Ok(guard)
}

/// Creates a directory (and its parents) readable only by this user: logs and per-job output
/// can hold job data that other users of a shared host must not read.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| anyhow::anyhow!("cannot create directory {}: {e}", dir.display()))?;
    } else if let Ok(meta) = std::fs::metadata(dir) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            // Tighten only what we own; a directory shared on purpose keeps its mode and warns.
            if std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700)).is_err()
            {
                eprintln!(
                    "megascaler: warning: {} is readable by other users",
                    dir.display()
                );
            }
        }
    }
    Ok(())
}
