//! `megascaler serve`: the engine with events written to the log.
//!
//! Owns the headless consumer: every decision and fault becomes a log line, and SIGINT or
//! SIGTERM starts a graceful shutdown (a second signal exits at once). It does no engine work
//! itself; worker output is in the per-job log files, not here.

use crate::config::Config;
use crate::engine::event::{Command, DecisionKind, Event};
use crate::engine::supervisor::Escalation;
use crate::engine::{EngineOptions, start};
use tokio::signal::unix::{SignalKind, signal};

fn log_event(event: &Event) {
    match event {
        Event::Decision(d) => {
            let kind = match d.kind {
                DecisionKind::Match => "match",
                DecisionKind::Reconcile => "reconcile",
                DecisionKind::Bind => "bind",
                DecisionKind::Transition => "job",
                DecisionKind::Command => "command",
                DecisionKind::Intake => "intake",
            };
            tracing::info!(target: "megascaler::decision", "{kind}: {}", d.message);
        }
        Event::Fault { component, message } => tracing::warn!("{component}: {message}"),
        Event::ShuttingDown { message } => tracing::info!("{message}"),
        Event::OutputDropped { total } => {
            tracing::debug!("{total} worker output lines not shown (they are in the job logs)")
        }
        Event::Intake(s) => {
            if let Some(e) = &s.poll_error {
                tracing::warn!("poll failing: {e}");
            }
        }
        _ => {}
    }
}

/// `MEGASCALER_CANCEL_ESCALATION=7.5s,2.5s`: the waits after SIGINT and after SIGTERM of a
/// cancelled worker (spec §5.6 defaults); tests shorten them.
pub const ENV_ESCALATION: &str = "MEGASCALER_CANCEL_ESCALATION";

fn escalation_from_env() -> anyhow::Result<Option<Escalation>> {
    let Ok(text) = std::env::var(ENV_ESCALATION) else {
        return Ok(None);
    };
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [int, term] = parts.as_slice() else {
        anyhow::bail!("{ENV_ESCALATION} must be two durations like `7.5s,2.5s`, got `{text}`");
    };
    let parse = |t: &str| {
        humantime::parse_duration(t)
            .map_err(|e| anyhow::anyhow!("{ENV_ESCALATION}: `{t}` is not a duration ({e})"))
    };
    Ok(Some(Escalation {
        after_sigint: parse(int)?,
        after_sigterm: parse(term)?,
    }))
}

/// Runs the engine headless until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let options = EngineOptions {
        escalation: escalation_from_env()?,
        ..EngineOptions::default()
    };
    let mut handle = start(config, options).await?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut signals = 0;
    loop {
        tokio::select! {
            event = handle.events.recv() => match event {
                Some(e) => log_event(&e),
                None => break,
            },
            _ = sigint.recv() => signals += 1,
            _ = sigterm.recv() => signals += 1,
        }
        match signals {
            0 => {}
            1 => {
                tracing::info!(
                    "signal received: shutting down gracefully (send another to exit at once)"
                );
                let _ = handle.commands.send(Command::Shutdown).await;
                signals = 2;
            }
            2 => {}
            _ => {
                let killed = crate::engine::supervisor::kill_all_now();
                tracing::warn!(
                    "second signal: exiting now; {killed} worker process group(s) killed, their jobs and runners abandoned (GitHub times them out)"
                );
                std::process::exit(130);
            }
        }
    }
    tracing::info!("megascaler stopped");
    Ok(())
}
