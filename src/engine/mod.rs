//! The engine: intake, decisions, the driver that performs them, supervised workers.
//!
//! [`start`] wires them together and hands back an [`EngineHandle`]: events out, commands in.
//! [`event`] is the contract with its consumers (`serve`, the dashboard). The decisions
//! ([`matching`], [`jobs`], [`reconcile`], [`binding`], [`dispatch`]) do no IO; [`driver`],
//! [`supervisor`] and [`intake`] do.

pub mod binding;
pub mod dispatch;
pub mod driver;
pub mod event;
pub mod intake;
pub mod jobs;
pub mod matching;
pub mod reconcile;
pub mod runners;
pub mod serve;
pub mod supervisor;

use crate::config::Config;
use crate::github::GitHubClient;
use crate::protocol::api::RunnerEnvelope;
use crate::protocol::{FleetSettings, RunnerFleet};
use anyhow::Context;
use dispatch::{Dispatcher, Settings};
use driver::{Driver, RunnerLauncher};
use event::{EngineHandle, Event};
use intake::IntakeCounters;
use intake::dedupe::DeliveryLog;
use intake::webhook::{self, ListenerState};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use supervisor::Escalation;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Builds the runner launcher from the channel runner events must go to.
pub type LauncherFactory =
    Box<dyn FnOnce(&Config, mpsc::Sender<RunnerEnvelope>) -> Box<dyn RunnerLauncher> + Send>;

/// Knobs for tests, the demo and embedding; `Default` is what `serve` uses.
#[derive(Default)]
pub struct EngineOptions {
    /// Overrides `state_dir` (per-job logs go to `<state_dir>/jobs/`).
    pub state_dir: Option<PathBuf>,
    /// Reconciliation tick (default 1 s).
    pub tick: Option<Duration>,
    /// Signal escalation after the cancel grace (default 7.5 s, 2.5 s).
    pub escalation: Option<Escalation>,
    /// Capacity of the event channel (default 4096).
    pub event_capacity: Option<usize>,
    /// First back-off after a failed runner registration (default 5 s).
    pub registration_backoff: Option<Duration>,
    /// Replaces the runner protocol (tests use fakes).
    pub launcher: Option<LauncherFactory>,
    /// Runner protocol timings (tests against the simulator shorten them).
    pub tunables: Option<crate::protocol::Tunables>,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("state_dir", &self.state_dir)
            .field("tick", &self.tick)
            .field("escalation", &self.escalation)
            .field("event_capacity", &self.event_capacity)
            .field("registration_backoff", &self.registration_backoff)
            .field("launcher", &self.launcher.as_ref().map(|_| "custom"))
            .field("tunables", &self.tunables.is_some())
            .finish()
    }
}

/// Starts the engine: webhook listener (if `address`), poller (if `poll_interval`), driver.
///
/// Fails when the listener cannot start (no secret without the insecure opt-in, port taken).
/// The engine runs until [`event::Command::Shutdown`] completes; then `events` closes.
pub async fn start(config: Config, options: EngineOptions) -> anyhow::Result<EngineHandle> {
    let state_dir = options
        .state_dir
        .clone()
        .unwrap_or_else(|| config.state_dir.clone());
    // Job logs hold raw worker output: only megascaler's user may read them.
    crate::logging::create_private_dir(&state_dir)?;
    crate::logging::create_private_dir(&state_dir.join("jobs"))
        .with_context(|| format!("cannot create {}", state_dir.join("jobs").display()))?;
    let (events_tx, events_rx) = mpsc::channel(options.event_capacity.unwrap_or(4096));
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let (inputs_tx, inputs_rx) = mpsc::channel(10_000);
    let (runner_tx, runner_rx) = mpsc::channel(1024);
    let counters = Arc::new(IntakeCounters::default());
    let stop_intake = CancellationToken::new();
    let mut fleet_settings = FleetSettings::from_config(&config);
    if let Some(t) = options.tunables.clone() {
        fleet_settings.tunables = t;
    }
    let fleet = RunnerFleet::new(fleet_settings);
    // One REST client (and so one budget) for runners, polling and commands.
    let github: Arc<GitHubClient> = Arc::new(fleet.rest().clone());

    if let Some(addr) = config.address {
        let secret = webhook::secret_for(
            addr,
            config.secret.as_ref(),
            config.insecure_unsigned_webhooks,
        )?;
        let state = Arc::new(ListenerState {
            secret,
            inputs: inputs_tx.clone(),
            counters: counters.clone(),
            deliveries: Mutex::new(DeliveryLog::new(100_000)),
        });
        let (bound, _task) = webhook::serve(addr, state, stop_intake.clone()).await?;
        tracing::info!("webhook listener on http://{bound}/webhook (any path is accepted)");
        counters.update(|s| s.webhook_address = Some(bound.to_string()));
    }

    let (open_tx, open_rx) = watch::channel(Vec::new());
    if let Some(interval) = config.poll_interval {
        let poller = intake::poller::Poller {
            client: github.clone(),
            github_url: config.github_url.clone(),
            repositories: config.repositories.clone(),
            interval,
            inputs: inputs_tx.clone(),
            open_jobs: open_rx,
            counters: counters.clone(),
        };
        tokio::spawn(poller.run(stop_intake.clone()));
        tracing::info!(
            "polling {} repositories every {:?}",
            config.repositories.len(),
            interval
        );
    } else if config.address.is_none() {
        tracing::warn!(
            "neither `address` (webhooks) nor `poll_interval` is set: no job will ever arrive"
        );
    }

    let launcher = match options.launcher {
        Some(factory) => factory(&config, runner_tx),
        None => Box::new(runners::FleetLauncher {
            fleet,
            events: runner_tx,
        }),
    };
    let mut settings = Settings::from_config(&config);
    if let Some(b) = options.registration_backoff {
        settings.registration_backoff = b;
    }
    let escalation = options.escalation.unwrap_or_default();
    let driver = Driver {
        dispatcher: Dispatcher::new(settings),
        launcher,
        runner_events: runner_rx,
        inputs_tx: inputs_tx.clone(),
        inputs: inputs_rx,
        commands: commands_rx,
        events: events_tx.clone(),
        github,
        github_url: config.github_url.clone(),
        workers: config.workers.clone(),
        state_dir,
        credentials: [Some(config.pat.clone()), config.secret.clone()]
            .into_iter()
            .flatten()
            .collect(),
        escalation,
        tick: options.tick.unwrap_or(Duration::from_secs(1)),
        shutdown_deadline: config.cancel_grace
            + escalation.after_sigint
            + escalation.after_sigterm
            + Duration::from_secs(30),
        counters: counters.clone(),
        open_jobs: open_tx,
        stop_intake,
    };
    let _ = events_tx.send(Event::Intake(counters.snapshot())).await;
    drop(events_tx);
    tokio::spawn(driver.run());
    Ok(EngineHandle {
        events: events_rx,
        commands: commands_tx,
    })
}
