//! The dashboard (`megascaler tui`) and `megascaler demo`.
//!
//! Owns the run loop: one `tokio::select!` over terminal input, the engine's events, signals
//! and a frame tick. Engine events are applied as they come and drained in bulk; the screen
//! is redrawn on the tick only when something changed (about 30 frames a second at most), or
//! once a second for the countdowns. The loop never waits on the engine: commands are sent
//! with `try_send`, or from a spawned task if the channel is full. The dashboard never talks
//! to GitHub; everything it knows comes from [`crate::engine::event::Event`]s.
//!
//! Layout of the module: [`model`] (reducer), [`app`] (UI state, actions → commands),
//! [`keymap`] (keys as data), [`views`] (drawing), [`theme`] (`NO_COLOR`), [`terminal`] (guard
//! and panic policy), [`explain`] (label fits), [`demo`] (the built-in demo).

use crate::config::{Config, WorkerEntry};
use crate::engine::event::{Command, EngineHandle};
use anyhow::Context as _;
use app::{App, Lifecycle};
use chrono::Utc;
use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::{Instant, MissedTickBehavior};

pub mod app;
pub mod demo;
pub mod explain;
pub mod keymap;
pub mod model;
pub mod terminal;
pub mod theme;
pub mod views;

#[cfg(test)]
mod sample;
#[cfg(test)]
mod snapshot_tests;

/// Time between frames: at most about 30 a second.
const FRAME: Duration = Duration::from_millis(33);
/// Engine events applied per wake-up before input gets a turn.
const MAX_DRAIN: usize = 4_096;
/// How long the dashboard waits for the engine after asking it to shut down, beyond the
/// workers' cancel grace: the engine's own hard deadline is the grace plus 40 s.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(50);

/// What the dashboard needs to know besides the engine's events.
#[derive(Debug, Clone)]
pub struct DashboardSetup {
    /// The configuration's worker entries, to explain matching.
    pub workers: Vec<WorkerEntry>,
    /// The workers' cancel grace, to say what quitting does and how long to wait for it.
    pub cancel_grace: Duration,
}

impl DashboardSetup {
    pub fn from_config(config: &Config) -> Self {
        DashboardSetup {
            workers: config.workers.clone(),
            cancel_grace: config.cancel_grace,
        }
    }
}

/// Runs the dashboard over a fresh engine.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let setup = DashboardSetup::from_config(&config);
    let handle = start_engine(config).await?;
    run_dashboard(handle, setup).await
}

/// Starts the engine for the dashboard, as `serve` does.
async fn start_engine(config: Config) -> anyhow::Result<EngineHandle> {
    crate::engine::start(config, crate::engine::EngineOptions::default())
        .await
        .context("cannot start the engine")
}

/// Sends a command without waiting: straight away if the channel has room, from a task if
/// it is full. Returns a notice for the person if the engine is gone.
fn send(handle: &EngineHandle, command: Command) -> Option<String> {
    match handle.commands.try_send(command) {
        Ok(()) => None,
        Err(TrySendError::Full(command)) => {
            let commands = handle.commands.clone();
            tokio::spawn(async move {
                if commands.send(command).await.is_err() {
                    tracing::warn!("the engine stopped before it took a command");
                }
            });
            None
        }
        Err(TrySendError::Closed(command)) => {
            tracing::warn!(?command, "the engine is not taking commands");
            Some("the engine is not taking commands any more".into())
        }
    }
}

/// Draws one frame, keeping the app's idea of the output pane's height current.
fn draw(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    let size = terminal.size().context("cannot read the terminal size")?;
    app.output_rows = views::output_rows(size.into());
    terminal
        .draw(|frame| views::render(frame, app, now))
        .context("cannot draw")?;
    Ok(())
}

/// Runs the dashboard over a running engine until the person quits and the engine has shut
/// down (or a signal asked for the same). Restores the terminal on every way out.
pub async fn run_dashboard(mut handle: EngineHandle, setup: DashboardSetup) -> anyhow::Result<()> {
    let mut app = App::new(setup.workers, setup.cancel_grace);
    app.theme = theme::Theme::from_env();
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut guard = terminal::TerminalGuard::enter()?;
    let mut input = EventStream::new();
    let mut frames = tokio::time::interval(FRAME);
    frames.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut drawn_second = i64::MIN;
    let mut deadline: Option<Instant> = None;
    let mut terminal_ok = true;
    let mut input_open = true;
    let wait_for_engine = setup.cancel_grace + SHUTDOWN_SLACK;
    tracing::info!("dashboard started");

    let engine_closed = loop {
        let mut command = None;
        tokio::select! {
            event = handle.events.recv() => match event {
                Some(event) => {
                    let now = Utc::now();
                    app.apply(event, now);
                    for _ in 0..MAX_DRAIN {
                        match handle.events.try_recv() {
                            Ok(event) => app.apply(event, now),
                            Err(_) => break,
                        }
                    }
                    dirty = true;
                }
                None => break true,
            },
            input_event = input.next(), if input_open => match input_event {
                Some(Ok(TermEvent::Key(key))) => {
                    if let Some(action) = keymap::resolve(app.context(), &key) {
                        command = app.handle(action);
                        dirty = true;
                    }
                }
                Some(Ok(TermEvent::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                // A terminal that cannot be read stays unreadable: stop polling it (or this
                // branch would spin) and shut down.
                Some(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the terminal; shutting down");
                    input_open = false;
                    command = app.request_shutdown();
                }
                None => {
                    input_open = false;
                    command = app.request_shutdown();
                }
            },
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: shutting down");
                command = app.request_shutdown();
            }
            _ = sighup.recv() => {
                tracing::info!("SIGHUP (terminal gone): shutting down");
                terminal_ok = false;
                command = app.request_shutdown();
            }
            _ = frames.tick() => {
                let now = Utc::now();
                if let Some(terminal) = guard.terminal().filter(|_| terminal_ok)
                    && (dirty || now.timestamp() != drawn_second)
                {
                    if let Err(e) = draw(terminal, &mut app, now) {
                        // The terminal went away (a closed tmux pane, a dropped ssh session):
                        // stop drawing, but still shut the engine down gracefully.
                        tracing::warn!(error = %e, "cannot draw; shutting down");
                        terminal_ok = false;
                        command = app.request_shutdown();
                    }
                    dirty = false;
                    drawn_second = now.timestamp();
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    tracing::warn!("the engine did not finish shutting down in time; leaving");
                    break false;
                }
            }
        }
        if let Some(command) = command {
            tracing::info!(?command, "command from the dashboard");
            if let Some(notice) = send(&handle, command) {
                app.notice = Some(notice);
            }
        }
        if app.lifecycle == Lifecycle::ShutdownRequested && deadline.is_none() {
            deadline = Some(Instant::now() + wait_for_engine);
        }
    };
    if terminal_ok {
        drop(guard);
    } else {
        guard.abandon();
    }
    tracing::info!(engine_closed, "dashboard stopped");
    match (engine_closed, app.lifecycle) {
        (true, Lifecycle::Running) => {
            let last = app
                .model
                .faults
                .back()
                .map(|f| format!(": {}: {}", f.component, f.message));
            anyhow::bail!("the engine stopped on its own{}", last.unwrap_or_default())
        }
        (false, _) => anyhow::bail!(
            "the engine did not finish shutting down within {}; see the log",
            humantime::format_duration(wait_for_engine)
        ),
        (true, Lifecycle::ShutdownRequested) => Ok(()),
    }
}
