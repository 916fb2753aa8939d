//! The fleet: shared state of all in-memory runners, and the dispatcher's entry point.
//!
//! Owns [`RunnerFleet`] (token cache, key pool, HTTP clients, tunables) and [`RunnerHandle`].
//! [`RunnerFleet::spawn`] starts one runner task ([`super::runner`]); the dispatcher talks to it
//! only through the channels in [`super::api`]. Tunables are plain data so tests run the whole
//! protocol in milliseconds instead of minutes.

use super::api::{RunnerCommand, RunnerEnvelope, RunnerRequest};
use super::keypool::KeyPool;
use super::token_cache::{CacheMargins, TokenCache};
use crate::config::Config;
use crate::engine::event::{RestBudget, ScopeTokens};
use crate::github::{GitHubClient, RestRetry};
use crate::secret::Secret;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use url::Url;

/// Timings of the protocol (defaults: spec §10).
#[derive(Debug, Clone)]
pub struct Tunables {
    /// Client timeout of a long poll (the server holds ≈50 s).
    pub poll_timeout: Duration,
    /// Pause between session-creation retries.
    pub session_retry: Duration,
    /// Give up on a session conflict after this long (E9).
    pub conflict_window: Duration,
    /// Base poll-error back-off: jittered base–2×base for 5 errors, then 2×–4× (E14).
    pub poll_error_backoff: Duration,
    /// More than this many empty polls within `empty_poll_window` ⇒ pause one back-off (AR).
    pub empty_poll_limit: u32,
    pub empty_poll_window: Duration,
    /// Recreate the session when no poll succeeded for this long (E15).
    pub session_stale: Duration,
    /// Job lock renewal cadence.
    pub renew_interval: Duration,
    /// Pause after a failed renewal (jittered 1×–3×).
    pub renew_retry: Duration,
    /// Give up renewing at `lockedUntil` + this (E24).
    pub renew_grace: Duration,
    /// Attempts at the first renewal before the job is abandoned (E25).
    pub first_renew_attempts: u32,
    /// Pause between first-renewal attempts (jittered 1×–10×).
    pub first_renew_backoff: Duration,
    /// Attempts at `acquirejob` for errors other than 404/409/422.
    pub acquire_attempts: u32,
    /// Pause between acquire attempts (× attempt).
    pub acquire_backoff: Duration,
    /// Attempts at completing a job megascaler reports itself.
    pub complete_attempts: u32,
    /// Pause between completion attempts.
    pub complete_retry: Duration,
    /// Attempts at fetching a migrated message from the broker.
    pub migration_attempts: u32,
    /// Pause between those attempts (× attempt).
    pub migration_backoff: Duration,
    /// Refresh the runner OAuth token this long before `expires_in` runs out.
    pub oauth_margin: Duration,
    /// Keep retrying a clock-skew refusal this long (E7).
    pub clock_skew_window: Duration,
    /// Attempts at registering when the failure is transient (5xx, network).
    pub registration_attempts: u32,
    /// Pause between registration attempts.
    pub registration_retry: Duration,
    /// How long before expiry cached registration credentials are replaced.
    pub cache: CacheMargins,
    /// RSA keys kept ready.
    pub keypool_size: usize,
    /// REST retry policy of the PAT client.
    pub rest_retry: RestRetry,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            poll_timeout: Duration::from_secs(100),
            session_retry: Duration::from_secs(30),
            conflict_window: Duration::from_secs(240),
            poll_error_backoff: Duration::from_secs(15),
            empty_poll_limit: 50,
            empty_poll_window: Duration::from_secs(1800),
            session_stale: Duration::from_secs(300),
            renew_interval: Duration::from_secs(60),
            renew_retry: Duration::from_secs(5),
            renew_grace: Duration::from_secs(300),
            first_renew_attempts: 5,
            first_renew_backoff: Duration::from_secs(1),
            acquire_attempts: 5,
            acquire_backoff: Duration::from_secs(5),
            complete_attempts: 5,
            complete_retry: Duration::from_secs(5),
            migration_attempts: 5,
            migration_backoff: Duration::from_secs(5),
            oauth_margin: Duration::from_secs(60),
            clock_skew_window: Duration::from_secs(1800),
            registration_attempts: 3,
            registration_retry: Duration::from_secs(2),
            cache: CacheMargins::default(),
            keypool_size: 16,
            rest_retry: RestRetry::default(),
        }
    }
}

/// What a fleet needs to know.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// `https://github.com` or a GHES base.
    pub github_url: Url,
    pub pat: Secret,
    /// Runner group (pool) name; `None`: the default self-hosted one.
    pub runner_group: Option<String>,
    pub tunables: Tunables,
}

impl FleetSettings {
    pub fn new(github_url: Url, pat: Secret) -> Self {
        FleetSettings {
            github_url,
            pat,
            runner_group: None,
            tunables: Tunables::default(),
        }
    }

    /// From the validated configuration.
    pub fn from_config(config: &Config) -> Self {
        FleetSettings {
            github_url: config.github_url.clone(),
            pat: config.pat.clone(),
            runner_group: config.runner_group.clone(),
            tunables: Tunables::default(),
        }
    }
}

pub(crate) struct FleetShared {
    pub cache: TokenCache,
    /// For long polls and other protocol calls (timeouts are per call).
    pub http: reqwest::Client,
    pub keys: KeyPool,
    pub tunables: Tunables,
    pub runner_group: Option<String>,
}

/// The dispatcher's way to ask for runners. Cheap to clone.
#[derive(Clone)]
pub struct RunnerFleet {
    pub(crate) shared: Arc<FleetShared>,
}

impl std::fmt::Debug for RunnerFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerFleet").finish_non_exhaustive()
    }
}

/// The dispatcher's end of one runner.
#[derive(Debug, Clone)]
pub struct RunnerHandle {
    pub name: String,
    pub commands: mpsc::Sender<RunnerCommand>,
}

impl RunnerHandle {
    /// Asks the runner to stop (unregister when idle; after its job otherwise).
    pub async fn stop(&self) {
        let _ = self.commands.send(RunnerCommand::Stop).await;
    }

    /// Tells the runner its worker ended.
    pub async fn worker_finished(&self, outcome: super::api::WorkerOutcome) {
        let _ = self
            .commands
            .send(RunnerCommand::WorkerFinished(outcome))
            .await;
    }
}

impl RunnerFleet {
    /// A fleet. Inside a tokio runtime the key pool starts filling at once.
    pub fn new(settings: FleetSettings) -> Self {
        let t = settings.tunables;
        let rest =
            GitHubClient::new(&settings.github_url, settings.pat).with_retry(t.rest_retry.clone());
        let http = crate::github::http_client(
            Duration::from_secs(60).max(t.poll_timeout + Duration::from_secs(5)),
            &settings.github_url,
        );
        let keys = KeyPool::new(t.keypool_size);
        keys.start();
        RunnerFleet {
            shared: Arc::new(FleetShared {
                cache: TokenCache::new(rest, http.clone(), t.cache.clone()),
                http,
                keys,
                tunables: t,
                runner_group: settings.runner_group,
            }),
        }
    }

    /// A runner name megascaler recognises as its own: `prefix` + a UUID.
    pub fn runner_name(prefix: &str) -> String {
        format!("{prefix}{}", uuid::Uuid::new_v4())
    }

    /// True when `name` has the shape [`RunnerFleet::runner_name`] gives.
    pub fn is_own_runner(prefix: &str, name: &str) -> bool {
        name.strip_prefix(prefix)
            .is_some_and(|rest| uuid::Uuid::parse_str(rest).is_ok())
    }

    /// Starts one runner task; its events go to `events`.
    pub fn spawn(&self, req: RunnerRequest, events: mpsc::Sender<RunnerEnvelope>) -> RunnerHandle {
        let (tx, rx) = mpsc::channel(16);
        let name = req.name.clone();
        tokio::spawn(super::runner::run(
            Arc::clone(&self.shared),
            req,
            events,
            rx,
        ));
        RunnerHandle { name, commands: tx }
    }

    /// Cached credentials per scope (times only).
    pub fn token_status(&self) -> Vec<ScopeTokens> {
        self.shared.cache.status()
    }

    /// The PAT's REST client.
    pub fn rest(&self) -> &GitHubClient {
        &self.shared.cache.rest
    }

    /// The PAT's REST budget.
    pub fn budget(&self) -> RestBudget {
        self.shared.cache.rest.budget()
    }

    /// The key pool (benchmarks warm it up).
    pub fn keys(&self) -> &KeyPool {
        &self.shared.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_runner_names() {
        let n = RunnerFleet::runner_name("megascaler-");
        assert!(RunnerFleet::is_own_runner("megascaler-", &n));
        assert!(!RunnerFleet::is_own_runner(
            "megascaler-",
            "megascaler-build-1"
        ));
        assert!(!RunnerFleet::is_own_runner("other-", &n));
    }
}
