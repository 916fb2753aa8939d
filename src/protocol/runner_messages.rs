//! What a runner does with one polled message: decrypt, decide, acknowledge, take the job.
//!
//! Owns the order that matters (spec §4.8): the message type is read and the decision taken
//! *before* any acknowledgement, so a second job is never acked (E16); `lastMessageId` advances
//! for every message so an unacked one is not offered to us again. Taking a job means: ack,
//! acquire (run service), first lock renewal, and only then `JobReceived`.

use super::api::{JobFlow, ReceivedJob, RunnerEvent};
use super::context;
use super::job;
use super::messages::{self, Decision, JobReference, Message, RawMessage};
use super::renewal::Renewer;
use super::runner::{ActiveJob, End, Runner, Step};
use super::session::{self, Listener};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Where a message came from: the runner's own listener, or a broker it was migrated to.
#[derive(Debug, Clone)]
enum Source {
    Listener,
    Migrated(String),
}

impl Runner {
    pub(super) async fn handle_message(&mut self, raw: RawMessage) -> Step {
        let mut next = Some((raw, Source::Listener));
        let mut step = Step::Continue;
        while let Some((raw, source)) = next.take() {
            if let (Source::Listener, Some(id)) = (&source, raw.message_id) {
                self.last_message_id = Some(id);
            }
            let parsed = self
                .session
                .as_ref()
                .ok_or_else(|| "no session".to_string())
                .and_then(|s| session::body_text(s, &raw).map_err(|e| e.to_string()))
                .and_then(|body| {
                    messages::parse(&raw.message_type, &body).map_err(|e| e.to_string())
                });
            let msg = match parsed {
                Ok(m) => m,
                Err(e) => {
                    // Not acked: if it was a job, the service can give it to another runner.
                    tracing::warn!(runner = %self.name, kind = %raw.message_type, error = %e, "unreadable message skipped");
                    return Step::Continue;
                }
            };
            let running = self.job.as_ref().map(|j| j.info.job_id.clone());
            match messages::decide(&msg, running.as_deref()) {
                Decision::TakeJob => return self.take_job(&raw, msg, &source).await,
                Decision::LeaveForAnotherRunner => {
                    tracing::warn!(runner = %self.name, "a second job was offered; not acknowledged so it goes elsewhere (E16)");
                }
                Decision::CancelRunningJob { timeout } => {
                    self.ack(&raw, &msg, &source).await;
                    self.emit(RunnerEvent::CancelRequested { timeout }).await;
                }
                Decision::FollowMigration(url) => {
                    self.ack(&raw, &msg, &source).await;
                    if matches!(source, Source::Listener) {
                        next = self
                            .fetch_migrated(&url)
                            .await
                            .map(|m| (m, Source::Migrated(url)));
                    }
                }
                Decision::RefreshToken => {
                    self.ack(&raw, &msg, &source).await;
                    if let Ok(t) = self.oauth.token().await {
                        self.oauth.invalidate(&t);
                    }
                }
                Decision::Ignore => {
                    tracing::debug!(runner = %self.name, kind = %raw.message_type, "message ignored");
                    self.ack(&raw, &msg, &source).await;
                }
            }
            step = Step::Continue;
        }
        step
    }

    fn broker_base<'a>(&'a self, source: &'a Source) -> Option<&'a str> {
        match (source, &self.listener) {
            (Source::Migrated(url), _) => Some(url),
            (Source::Listener, Listener::Broker { base }) => Some(base),
            (Source::Listener, Listener::V1 { .. }) => None,
        }
    }

    /// Acknowledges: v1 deletes the message; the broker acknowledges job references only.
    /// Returns the broker's error class when acknowledgement failed.
    async fn ack(
        &self,
        raw: &RawMessage,
        msg: &Message,
        source: &Source,
    ) -> Option<super::http::CallError> {
        let token = self.oauth.token().await.ok()?;
        let sid = self.session.as_ref()?.id.clone();
        let result = match (self.broker_base(source), &self.listener) {
            (Some(base), _) => match msg {
                Message::JobReference(r)
                    if r.should_acknowledge || matches!(source, Source::Migrated(_)) =>
                {
                    session::acknowledge(
                        &self.shared.http,
                        base,
                        &token,
                        &sid,
                        self.status(),
                        &r.runner_request_id,
                    )
                    .await
                }
                _ => Ok(()),
            },
            (None, Listener::V1 { loc, pool_id }) => match raw.message_id {
                Some(id) => {
                    session::delete_message(&self.shared.http, loc, *pool_id, &token, &sid, id)
                        .await
                }
                None => Ok(()),
            },
            (None, Listener::Broker { .. }) => Ok(()),
        };
        match result {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(runner = %self.name, error = %e, "acknowledgement failed");
                Some(e)
            }
        }
    }

    /// Spec §4.6: poll the broker the migration names, with the same session and token.
    async fn fetch_migrated(&self, base: &str) -> Option<RawMessage> {
        let t = &self.shared.tunables;
        let listener = Listener::Broker {
            base: base.to_string(),
        };
        let sid = self.session.as_ref()?.id.clone();
        for attempt in 1..=t.migration_attempts.max(1) {
            let token = self.oauth.token().await.ok()?;
            match session::poll(
                &self.shared.http,
                &listener,
                &token,
                &sid,
                self.status(),
                None,
                t.poll_timeout,
            )
            .await
            {
                Ok(m) => return m,
                Err(e) => {
                    tracing::warn!(runner = %self.name, error = %e, attempt, "fetching the migrated message failed");
                    tokio::time::sleep(t.migration_backoff * attempt).await;
                }
            }
        }
        None
    }

    async fn take_job(&mut self, raw: &RawMessage, msg: Message, source: &Source) -> Step {
        if let Some(e) = self.ack(raw, &msg, source).await
            && e.service().is_some_and(|s| s.is("AcknowledgeJobNotFound"))
        {
            // E19 (spec §4.5, §9): on an ephemeral runner the job vanished; stop the runner
            // as AR does. It is unregistered first so it does not linger server-side.
            tracing::info!(runner = %self.name, "job vanished before acknowledgement (E19)");
            let why = "the job vanished before it was acknowledged (E19: AcknowledgeJobNotFound)";
            return match super::registrar::remove(&self.shared.cache, &self.scope, &self.agent)
                .await
            {
                Ok(_) => Step::End(End::Failed(format!("{why}; runner removed"))),
                Err(e) => Step::End(End::Failed(format!("{why}; could not unregister: {e}"))),
            };
        }
        let (text, reference) = match msg {
            Message::InlineJob(text) => (text.0, None),
            Message::JobReference(r) => match self.acquire(&r).await {
                Some(text) => (text, Some(r)),
                None => return Step::Continue,
            },
            _ => return Step::Continue,
        };
        let info = match job::parse_job_info(&text, reference.as_ref()) {
            Ok(i) => Arc::new(i),
            Err(e) => return Step::End(End::Failed(format!("unreadable job message: {e}"))),
        };
        let identity = serde_json::from_str(&text)
            .map(|doc| context::job_identity(&doc))
            .unwrap_or_default();
        let v1 = match &self.listener {
            Listener::V1 { loc, pool_id } => Some((Arc::clone(loc), *pool_id)),
            Listener::Broker { .. } => None,
        };
        let renewer = Renewer {
            http: self.shared.http.clone(),
            info: Arc::clone(&info),
            v1: if info.flow == JobFlow::Pipelines {
                v1
            } else {
                None
            },
            oauth: Arc::clone(&self.oauth),
            tunables: self.shared.tunables.clone(),
        };
        // E25: no worker may start before the lock is known to be ours.
        let locked_until = match renewer.first().await {
            Ok(l) => l.or(info.locked_until),
            Err(e) => {
                return Step::End(End::Failed(format!(
                    "the first lock renewal failed; job abandoned without starting a worker: {e}"
                )));
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let stop = CancellationToken::new();
        tokio::spawn(renewer.run(locked_until, tx, stop.clone()));
        self.job = Some(ActiveJob {
            info: Arc::clone(&info),
            renew_rx: Some(rx),
            stop,
            lock_lost: false,
        });
        self.emit(RunnerEvent::JobReceived(ReceivedJob {
            message: Arc::from(text.as_str()),
            identity,
            flow: info.flow,
            orchestration_job_id: info.job_id.clone(),
            cancel_timeout: None,
        }))
        .await;
        Step::Restart
    }

    /// `acquirejob` (or the legacy job-message GET). `None`: skip this message (E20/E21).
    async fn acquire(&mut self, r: &JobReference) -> Option<String> {
        let t = self.shared.tunables.clone();
        if !self.acquire_throttle.is_zero() {
            tokio::time::sleep(self.acquire_throttle).await;
        }
        for attempt in 1..=t.acquire_attempts.max(1) {
            let token = self.oauth.token().await.ok()?;
            let result = match (&r.run_service_url, &self.listener) {
                (Some(url), _) => job::acquire(&self.shared.http, url, &token, r).await,
                (None, Listener::V1 { loc, .. }) => {
                    job::get_legacy_job_message(
                        &self.shared.http,
                        loc,
                        &token,
                        &r.runner_request_id,
                    )
                    .await
                }
                (None, Listener::Broker { .. }) => {
                    tracing::warn!(runner = %self.name, "job reference without run_service_url on the broker; skipped");
                    return None;
                }
            };
            match result {
                Ok(text) => {
                    self.acquire_throttle = std::time::Duration::ZERO;
                    return Some(text);
                }
                Err(e) if matches!(e.status(), Some(404 | 409 | 422)) => {
                    // E20: not ours to run (gone, taken, unprocessable); throttle further acquires.
                    tracing::info!(runner = %self.name, error = %e, "job not acquired; message skipped");
                    self.acquire_throttle = (self.acquire_throttle * 2)
                        .max(t.acquire_backoff / 5)
                        .min(t.acquire_backoff * 12);
                    return None;
                }
                Err(e)
                    if e.service().is_some_and(|s| {
                        s.message
                            .to_ascii_lowercase()
                            .contains("job assignment is invalid")
                    }) =>
                {
                    // E21: the assignment will not become valid by asking again; abandon it.
                    tracing::info!(runner = %self.name, error = %e, "job assignment is invalid; message skipped (E21)");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(runner = %self.name, error = %e, attempt, "acquirejob failed");
                    tokio::time::sleep(t.acquire_backoff * attempt).await;
                }
            }
        }
        None
    }
}
