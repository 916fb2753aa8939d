//! Shared harness of the protocol tests: a simulator, a fleet with fast tunables, and an event
//! log that lets a test await "runner X reported Y" without sleeping.
#![allow(dead_code)]

use megascaler::github::RestRetry;
use megascaler::protocol::api::{RunnerEnvelope, RunnerEvent, RunnerRequest};
use megascaler::protocol::{FleetSettings, RunnerFleet, RunnerHandle, Tunables};
use megascaler::secret::Secret;
use megascaler::sim::{SimConfig, SimHandle, Simulator};
use std::time::Duration;
use tokio::sync::mpsc;

pub const REPO: &str = "octo/hello";
pub const WAIT: Duration = Duration::from_secs(60);

/// Spec timings scaled down so a test takes milliseconds, not minutes.
pub fn fast_tunables() -> Tunables {
    Tunables {
        poll_timeout: Duration::from_secs(10),
        session_retry: Duration::from_millis(50),
        conflict_window: Duration::from_secs(3),
        poll_error_backoff: Duration::from_millis(20),
        session_stale: Duration::from_secs(30),
        renew_interval: Duration::from_millis(200),
        renew_retry: Duration::from_millis(30),
        renew_grace: Duration::from_millis(500),
        first_renew_backoff: Duration::from_millis(5),
        acquire_backoff: Duration::from_millis(20),
        complete_retry: Duration::from_millis(20),
        migration_backoff: Duration::from_millis(20),
        registration_retry: Duration::from_millis(20),
        keypool_size: 4,
        rest_retry: RestRetry {
            attempts: 3,
            server_error_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(5),
        },
        ..Tunables::default()
    }
}

/// A simulator with a short long-poll hold, unless the test set one.
pub fn sim_config() -> SimConfig {
    SimConfig {
        long_poll_hold: Duration::from_millis(300),
        ..SimConfig::default()
    }
}

pub struct Harness {
    pub sim: SimHandle,
    pub fleet: RunnerFleet,
    pub tx: mpsc::Sender<RunnerEnvelope>,
    rx: mpsc::Receiver<RunnerEnvelope>,
    pub log: Vec<RunnerEnvelope>,
}

impl Harness {
    pub async fn start(cfg: SimConfig) -> Self {
        Self::start_with(cfg, fast_tunables()).await
    }

    pub async fn start_with(cfg: SimConfig, tunables: Tunables) -> Self {
        let sim = Simulator::start(cfg).await.expect("simulator starts");
        let mut settings = FleetSettings::new(sim.base_url(), Secret::new(sim.pat()));
        settings.tunables = tunables;
        let fleet = RunnerFleet::new(settings);
        let (tx, rx) = mpsc::channel(1024);
        Harness {
            sim,
            fleet,
            tx,
            rx,
            log: Vec::new(),
        }
    }

    pub fn scope_url(&self) -> url::Url {
        self.sim.base_url().join(REPO).expect("scope url")
    }

    pub fn spawn(&self, labels: &[&str]) -> RunnerHandle {
        let req = RunnerRequest {
            scope_url: self.scope_url(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            name: RunnerFleet::runner_name("megascaler-"),
        };
        self.fleet.spawn(req, self.tx.clone())
    }

    /// Waits for an event of `runner` matching `pred` (events already seen count too).
    pub async fn expect(
        &mut self,
        runner: &str,
        what: &str,
        pred: impl Fn(&RunnerEvent) -> bool,
    ) -> RunnerEvent {
        if let Some(e) = self
            .log
            .iter()
            .find(|e| e.runner == runner && pred(&e.event))
        {
            return e.event.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            match next {
                Ok(Some(env)) => {
                    let hit = env.runner == runner && pred(&env.event);
                    self.log.push(env.clone());
                    if hit {
                        return env.event;
                    }
                }
                _ => panic!(
                    "runner {runner}: no `{what}` event; saw {:#?}\nsim counters {:?}\nrunners {:?}\njobs {:?}",
                    self.summary_of(runner),
                    self.sim.counters(),
                    self.sim.runners(),
                    self.sim.jobs()
                ),
            }
        }
    }

    /// The terminal event (`Removed` or `Failed`) of a runner.
    pub async fn terminal(&mut self, runner: &str) -> RunnerEvent {
        self.expect(runner, "Removed or Failed", |e| {
            matches!(e, RunnerEvent::Removed | RunnerEvent::Failed { .. })
        })
        .await
    }

    /// The events of a runner as short text (no job message: it holds a token).
    pub fn summary_of(&self, runner: &str) -> Vec<String> {
        self.events_of(runner)
            .iter()
            .map(|e| match e {
                RunnerEvent::JobReceived(j) => format!("JobReceived({:?})", j.identity),
                other => format!("{other:?}"),
            })
            .collect()
    }

    pub fn events_of(&self, runner: &str) -> Vec<RunnerEvent> {
        self.log
            .iter()
            .filter(|e| e.runner == runner)
            .map(|e| e.event.clone())
            .collect()
    }

    /// Panics when the simulator saw any protocol violation.
    pub fn assert_no_violations(&self) {
        let v = self.sim.violations();
        assert!(v.is_empty(), "protocol violations: {v:#?}");
    }
}

pub fn is_job(e: &RunnerEvent) -> bool {
    matches!(e, RunnerEvent::JobReceived(_))
}

pub fn is_listening(e: &RunnerEvent) -> bool {
    matches!(e, RunnerEvent::Listening)
}

pub fn is_registered(e: &RunnerEvent) -> bool {
    matches!(e, RunnerEvent::Registered { .. })
}
