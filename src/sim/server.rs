//! Starting the simulator and the Rust handle tests and the demo drive it with.
//!
//! Owns the shared state (the world behind a `std::sync::Mutex`, never held across an await,
//! plus a `watch` change signal), the HTTP server task, the webhook delivery task and the lock
//! sweeper, and [`SimHandle`], the introspection and control API.

use super::config::{SimConfig, WebhookFaults, WebhookTarget};
use super::model::{Counters, Fault, JobSpec, SimJob, SimRunner, TokenKind, Violation};
use super::world::World;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use url::Url;

/// State shared by every request handler and background task.
pub(crate) struct Shared {
    world: Mutex<World>,
    changed: watch::Sender<u64>,
    pub shutdown: CancellationToken,
    /// The valid PAT (fixed at start, kept out of the lock).
    pub pat: String,
}

impl Shared {
    /// The world, for a short synchronous section. A poisoned lock is recovered: the world's
    /// invariants hold between method calls, and a test panicking elsewhere must not wedge it.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a mutation and wakes everyone waiting for a change.
    pub fn update<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let result = {
            let mut world = self.lock();
            f(&mut world)
        };
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        result
    }

    /// Re-evaluates `f` on every change until it yields, `hold` passes, or shutdown.
    pub async fn wait_for<T>(
        &self,
        hold: Duration,
        mut f: impl FnMut(&mut World) -> Option<T>,
    ) -> Option<T> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + hold;
        loop {
            let found = {
                let mut world = self.lock();
                f(&mut world)
            };
            if found.is_some() {
                self.changed.send_modify(|v| *v = v.wrapping_add(1));
                return found;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return None },
                _ = tokio::time::sleep_until(deadline) => return None,
                _ = self.shutdown.cancelled() => return None,
            }
        }
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Starts a simulator on `127.0.0.1:0`.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<SimHandle> {
        Simulator::start_at(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a simulator on the given address.
    pub async fn start_at(cfg: SimConfig, address: SocketAddr) -> anyhow::Result<SimHandle> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let local = listener.local_addr()?;
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            local.ip().to_string()
        };
        let base = Url::parse(&format!("http://{host}:{}/", local.port()))?;
        let (webhook_tx, webhook_rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pat: cfg.pat.clone(),
            world: Mutex::new(World::new(cfg, base.clone(), webhook_tx)),
            changed: watch::channel(0).0,
            shutdown: CancellationToken::new(),
        });
        let app = super::http::router(shared.clone());
        let stop = shared.shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!("simulator server: {e}");
            }
        });
        tokio::spawn(super::webhook::deliver(shared.shutdown.clone(), webhook_rx));
        tokio::spawn(sweep_locks(shared.clone()));
        tracing::info!(%base, "simulated GitHub listening");
        Ok(SimHandle { shared, base })
    }
}

/// Abandons jobs whose lock expired and drops idle sessions. Ticks rather than computing deadlines: cheap, and a lock
/// expiring up to a tick late is within what the real service does.
async fn sweep_locks(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let now = chrono::Utc::now();
        let changed = {
            let mut w = shared.lock();
            let sessions = w.expire_sessions(now);
            w.expire_locks(now) || sessions
        };
        if changed {
            shared.update(|_| ());
        }
    }
}

/// The handle to a running simulator. Cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    pub(crate) shared: Arc<Shared>,
    base: Url,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base", &self.base.as_str())
            .finish()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT/`: the `github_url` (REST under `/api/v3`).
    pub fn base_url(&self) -> Url {
        self.base.clone()
    }

    /// `{base}api/v3`, the REST root.
    pub fn api_url(&self) -> Url {
        self.base
            .join("api/v3")
            .unwrap_or_else(|_| self.base.clone())
    }

    /// The PAT the simulator accepts.
    pub fn pat(&self) -> &str {
        &self.shared.pat
    }

    /// Queues a job; returns its REST job id (= check run id).
    pub fn queue_job(&self, spec: JobSpec) -> u64 {
        self.shared.update(|w| w.queue_job(spec))
    }

    pub fn job(&self, id: u64) -> Option<SimJob> {
        self.shared.lock().jobs.get(&id).map(|j| j.snapshot.clone())
    }

    pub fn jobs(&self) -> Vec<SimJob> {
        self.shared
            .lock()
            .jobs
            .values()
            .map(|j| j.snapshot.clone())
            .collect()
    }

    pub fn runners(&self) -> Vec<SimRunner> {
        self.shared.lock().runner_snapshots()
    }

    /// The identifying headers seen on an endpoint, as `name: value` (`user-agent`, and on
    /// REST `accept` and `x-github-api-version`).
    pub fn seen_headers(&self, endpoint: &str) -> std::collections::BTreeSet<String> {
        self.shared
            .lock()
            .seen_headers
            .get(endpoint)
            .cloned()
            .unwrap_or_default()
    }

    /// Every endpoint called so far with its identifying headers (see [`Self::seen_headers`]).
    pub fn all_seen_headers(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        self.shared.lock().seen_headers.clone()
    }

    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.shared.lock().violations.clone()
    }

    /// Every credential the simulator handed out so far except job tokens: registration and
    /// remove tokens, registration JWTs, runner OAuth tokens. For "no secret leaks" tests.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared.lock().tokens.issued_secrets()
    }

    /// The next `times` calls of `endpoint` (a name from [`super::endpoint`]) get `fault`.
    pub fn inject(&self, endpoint: &str, fault: Fault, times: u32) {
        self.shared.update(|w| w.inject(endpoint, fault, times));
    }

    pub fn set_webhook_faults(&self, faults: WebhookFaults) {
        self.shared.update(|w| w.webhook_faults = faults);
    }

    /// Sets (or clears) the webhook target; a new target gets a `ping`, as on GitHub.
    pub fn set_webhook_target(&self, target: Option<WebhookTarget>) {
        self.shared.update(|w| {
            let ping = target.is_some();
            w.webhook_target = target;
            if ping {
                let event = super::webhook::WebhookEvent::ping(&w.base);
                w.emit(event);
            }
        });
    }

    /// Expires every issued token of a kind now.
    pub fn expire_tokens(&self, which: TokenKind) {
        self.shared
            .update(|w| w.tokens.expire_kind(which, chrono::Utc::now()));
    }

    /// Deletes a runner server-side; false when there is no such runner.
    pub fn delete_runner(&self, name: &str) -> bool {
        self.shared.update(|w| {
            let id = w.agent_by_name(name).map(|a| a.id);
            id.is_some_and(|id| w.delete_agent(id))
        })
    }

    /// Offers a queued job to a runner, bypassing GitHub's rule (e.g. a second job to a
    /// one-job runner, spec E16). False when the job is not queued or the runner is unknown.
    pub fn offer_job_to(&self, job_id: u64, runner_name: &str) -> bool {
        self.shared.update(|w| {
            let queued = w.jobs.get(&job_id).is_some_and(|j| {
                j.snapshot.status == super::model::JobStatus::Queued && j.offered_to.is_none()
            });
            let agent = w.agent_by_name(runner_name).map(|a| a.id);
            match (queued, agent) {
                (true, Some(agent)) => w.offer(job_id, agent),
                _ => false,
            }
        })
    }

    /// Queues an arbitrary message for a runner (e.g. `AgentRefresh`, `ForceTokenRefresh`, an
    /// unknown type); delivered on its next poll like any other. False for an unknown runner.
    pub fn send_message(&self, runner_name: &str, message_type: &str, body: &str) -> bool {
        self.shared.update(|w| {
            let agent = w.agent_by_name(runner_name).map(|a| a.id);
            agent.is_some_and(|a| w.push_message(a, message_type.to_string(), body.to_string()))
        })
    }

    /// Cancels a run (as `POST .../cancel`).
    pub fn cancel_run(&self, run_id: u64) {
        self.shared.update(|w| w.cancel_run(run_id, false));
    }

    /// Re-runs a completed job; returns the new job's id.
    pub fn rerun_job(&self, job_id: u64) -> Option<u64> {
        self.shared.update(|w| w.rerun_job(job_id))
    }

    /// Stops the server and background tasks.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Waits until `pred` holds, re-checking on every state change; false on timeout.
    pub async fn wait_until(
        &self,
        mut pred: impl FnMut(&SimHandle) -> bool,
        timeout: Duration,
    ) -> bool {
        let mut rx = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return false },
                _ = tokio::time::sleep_until(deadline) => return pred(self),
            }
        }
    }
}
