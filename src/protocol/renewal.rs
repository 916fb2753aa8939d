//! Keeping a job's lock: the first renewal (before any worker may start) and the renewal loop.
//!
//! Owns the cadence and the give-up rule of spec §5.4: renew every interval; on failure retry
//! sooner; stop when the service says the job is gone (E22); give up at `lockedUntil` + grace
//! (E24) so the worker is cancelled. It reports through a channel and never touches the worker.

use super::fleet::Tunables;
use super::http::CallError;
use super::job::{self, JobInfo};
use super::location::Locations;
use super::oauth::OAuthClient;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the renewal loop reports.
#[derive(Debug, Clone)]
pub enum RenewEvent {
    Renewed(Option<DateTime<Utc>>),
    /// The job is gone (E22); the worker must be cancelled.
    Lost(String),
    /// Renewal failed until lockedUntil + grace (E24): the worker must be cancelled and the
    /// job, if still ours to complete, is abandoned.
    GaveUp(String),
}

/// Everything a renewal needs, owned so it can run in its own task.
#[derive(Clone)]
pub struct Renewer {
    pub http: reqwest::Client,
    pub info: Arc<JobInfo>,
    pub v1: Option<(Arc<Locations>, u64)>,
    pub oauth: Arc<OAuthClient>,
    pub tunables: Tunables,
}

impl Renewer {
    /// One renewal, re-authorising once on 401 (v1 uses the runner token).
    pub async fn renew_once(&self) -> Result<Option<DateTime<Utc>>, CallError> {
        for attempt in 0..2 {
            let token = self.oauth.token().await.map_err(|e| CallError::Transport {
                what: "renew".into(),
                message: e.to_string(),
            })?;
            let v1 = self.v1.as_ref().map(|(l, p)| (l.as_ref(), *p));
            match job::renew(&self.http, &self.info, v1, &token).await {
                Err(e) if e.status() == Some(401) && attempt == 0 && self.v1.is_some() => {
                    self.oauth.invalidate(&token);
                }
                other => return other,
            }
        }
        Err(CallError::Transport {
            what: "renew".into(),
            message: "unauthorised twice".into(),
        })
    }

    /// The first renewal: up to `first_renew_attempts`, jittered pauses (E25).
    pub async fn first(&self) -> Result<Option<DateTime<Utc>>, String> {
        let mut last = String::new();
        for attempt in 0..self.tunables.first_renew_attempts.max(1) {
            if attempt > 0 {
                let factor: f64 = rand::random_range(1.0..10.0);
                tokio::time::sleep(self.tunables.first_renew_backoff.mul_f64(factor)).await;
            }
            match self.renew_once().await {
                Ok(l) => return Ok(l),
                Err(e) if job::renewal_says_job_gone(&e) => return Err(e.to_string()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// The loop; ends when cancelled, or after reporting [`RenewEvent::Lost`].
    pub async fn run(
        self,
        mut locked_until: Option<DateTime<Utc>>,
        events: mpsc::Sender<RenewEvent>,
        stop: CancellationToken,
    ) {
        let t = &self.tunables;
        let mut last_ok = Utc::now();
        let mut errors = 0u32;
        let mut wait = t.renew_interval;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.renew_once().await {
                Ok(l) => {
                    if l.is_some() {
                        locked_until = l;
                    }
                    last_ok = Utc::now();
                    errors = 0;
                    wait = t.renew_interval;
                    if events
                        .send(RenewEvent::Renewed(locked_until))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) if job::renewal_says_job_gone(&e) => {
                    let _ = events
                        .send(RenewEvent::Lost(format!("the job no longer exists: {e}")))
                        .await;
                    return;
                }
                Err(e) => {
                    errors += 1;
                    let lock = locked_until.unwrap_or(last_ok + chrono::Duration::minutes(10));
                    // A server-chosen lockedUntil may be absurd; never let it overflow.
                    let grace = chrono::Duration::from_std(t.renew_grace).unwrap_or_default();
                    let deadline = lock.checked_add_signed(grace).unwrap_or(lock);
                    if Utc::now() >= deadline {
                        let _ = events
                            .send(RenewEvent::GaveUp(format!(
                                "lock renewal failed until lockedUntil + grace: {e}"
                            )))
                            .await;
                        return;
                    }
                    tracing::warn!(error = %e, errors, "job lock renewal failed; retrying");
                    let (lo, hi) = if errors <= 5 { (1.0, 3.0) } else { (3.0, 6.0) };
                    let factor: f64 = rand::random_range(lo..hi);
                    wait = t.renew_retry.mul_f64(factor);
                }
            }
        }
    }
}
