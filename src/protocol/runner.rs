//! One in-memory ephemeral runner: a task from registration to removal.
//!
//! Owns the runner's life (spec §4.8): register, open a session, long-poll, take at most one
//! job, renew its lock, report events to the dispatcher, and at the end complete the job itself
//! when the worker could not, or unregister when stopped while idle. One activity (open a
//! session, or poll) is in flight at a time; commands and lock-renewal events interrupt it, and
//! a status change (Online → Busy) restarts the poll, as actions/runner does. Message handling
//! lives in [`super::runner_messages`].

use super::api::{RunnerCommand, RunnerEnvelope, RunnerEvent, RunnerRequest, WorkerOutcome};
use super::completion::{self, OwnResult};
use super::crypto::{AssertionAlg, RunnerKey};
use super::fleet::FleetShared;
use super::http::CallError;
use super::job::JobInfo;
use super::messages::RawMessage;
use super::oauth::{OAuthClient, OAuthError};
use super::registrar;
use super::registration::RegisteredAgent;
use super::renewal::RenewEvent;
use super::session::{self, Listener, Session, Status};
use crate::github::Scope;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) enum Activity {
    Open(Result<Session, OpenError>),
    Poll(Result<Option<RawMessage>, OpenError>),
}

pub(super) enum OpenError {
    OAuth(OAuthError),
    Call(CallError),
}

type ActivityFuture = Pin<Box<dyn Future<Output = Activity> + Send>>;

/// What the loop does next.
pub(super) enum Step {
    Continue,
    /// Drop the in-flight poll (status changed).
    Restart,
    End(End),
}

pub(super) enum End {
    /// Unregistered (or gone after its job): report `Removed`.
    Removed,
    Failed(String),
}

pub(super) struct ActiveJob {
    pub info: Arc<JobInfo>,
    pub renew_rx: Option<mpsc::Receiver<RenewEvent>>,
    pub stop: CancellationToken,
    /// Lock renewal gave up: a job the worker could not report is abandoned (E24).
    pub lock_lost: bool,
}

pub(super) struct Runner {
    pub shared: Arc<FleetShared>,
    pub scope: Scope,
    pub name: String,
    pub agent: RegisteredAgent,
    pub key: Arc<RunnerKey>,
    pub oauth: Arc<OAuthClient>,
    pub listener: Listener,
    pub migrated_session: bool,
    pub session: Option<Session>,
    pub stale_session: Option<Session>,
    pub last_message_id: Option<u64>,
    pub events: mpsc::Sender<RunnerEnvelope>,
    pub commands: mpsc::Receiver<RunnerCommand>,
    pub job: Option<ActiveJob>,
    pub stop_requested: bool,
    /// False once the dispatcher dropped its end: nothing more to read.
    pub commands_open: bool,
    pub listening: bool,
    pub announced: bool,
    pub next_delay: Duration,
    pub poll_errors: u32,
    /// When recent polls came back empty (the empty-poll guard).
    pub empty_polls: std::collections::VecDeque<Instant>,
    pub last_ok_poll: Instant,
    pub conflict_since: Option<Instant>,
    pub skew_since: Option<Instant>,
    pub acquire_throttle: Duration,
}

async fn emit_to(events: &mpsc::Sender<RunnerEnvelope>, name: &str, event: RunnerEvent) {
    let _ = events
        .send(RunnerEnvelope {
            runner: name.to_string(),
            event,
        })
        .await;
}

fn transient_registration(e: &super::token_cache::RegistrationError) -> bool {
    use super::token_cache::RegistrationError as R;
    match e {
        R::Call(c) => c.is_transient(),
        R::Rest(crate::github::GitHubError::Transport { .. }) => true,
        R::Rest(r) => r.status().is_some_and(|s| s >= 500 || s == 429),
        _ => false,
    }
}

/// The task body behind [`super::fleet::RunnerFleet::spawn`].
pub(crate) async fn run(
    shared: Arc<FleetShared>,
    req: RunnerRequest,
    events: mpsc::Sender<RunnerEnvelope>,
    commands: mpsc::Receiver<RunnerCommand>,
) {
    let name = req.name.clone();
    match setup(shared, req, events.clone(), commands).await {
        Ok(runner) => runner.main_loop().await,
        Err(reason) => emit_to(&events, &name, RunnerEvent::Failed { reason }).await,
    }
}

async fn setup(
    shared: Arc<FleetShared>,
    req: RunnerRequest,
    events: mpsc::Sender<RunnerEnvelope>,
    commands: mpsc::Receiver<RunnerCommand>,
) -> Result<Runner, String> {
    let scope = Scope::parse(&req.scope_url).map_err(|e| e.to_string())?;
    let key = Arc::new(shared.keys.take().await.map_err(|e| e.to_string())?);
    let t = &shared.tunables;
    let mut attempt = 0;
    let agent = loop {
        attempt += 1;
        match registrar::register(
            &shared.cache,
            &scope,
            shared.runner_group.as_deref(),
            &req.name,
            &req.labels,
            &key,
        )
        .await
        {
            Ok(a) => break a,
            Err(e) if transient_registration(&e) && attempt < t.registration_attempts => {
                tracing::warn!(runner = %req.name, error = %e, "registration failed; retrying");
                tokio::time::sleep(crate::github::jitter(t.registration_retry)).await;
            }
            Err(e) => return Err(format!("registration failed: {e}")),
        }
    };
    shared
        .cache
        .entry(&scope)
        .oauth_tokens
        .fetch_add(1, Ordering::Relaxed);
    emit_to(
        &events,
        &req.name,
        RunnerEvent::Registered {
            agent_id: agent.agent_id,
        },
    )
    .await;
    let alg = AssertionAlg::choose(agent.require_fips, agent.server_url_v2.is_some());
    let oauth = Arc::new(OAuthClient::new(
        shared.http.clone(),
        Arc::clone(&key),
        agent.client_id.clone(),
        agent.authorization_url.clone(),
        alg,
        t.oauth_margin,
    ));
    let listener = match (&agent.server_url_v2, agent.use_v2_flow, agent.pool_id) {
        (Some(base), true, _) => Listener::Broker { base: base.clone() },
        (_, _, Some(pool_id)) => {
            let e = shared.cache.entry(&scope);
            let cached = e
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .locations
                .get(&agent.tenant_url)
                .cloned();
            let loc = match cached {
                Some(l) => l,
                None => {
                    let jwt = shared
                        .cache
                        .any_auth(&e)
                        .map(|a| a.0.jwt)
                        .unwrap_or_default();
                    shared
                        .cache
                        .locations(&e, &agent.tenant_url, &jwt)
                        .await
                        .map_err(|e| e.to_string())?
                }
            };
            Listener::V1 { loc, pool_id }
        }
        _ => return Err("registration gave neither a broker nor a pool".into()),
    };
    Ok(Runner {
        shared,
        scope,
        name: req.name,
        agent,
        key,
        oauth,
        listener,
        migrated_session: false,
        session: None,
        stale_session: None,
        last_message_id: None,
        events,
        commands,
        job: None,
        stop_requested: false,
        commands_open: true,
        listening: true,
        announced: false,
        next_delay: Duration::ZERO,
        poll_errors: 0,
        empty_polls: std::collections::VecDeque::new(),
        last_ok_poll: Instant::now(),
        conflict_since: None,
        skew_since: None,
        acquire_throttle: Duration::ZERO,
    })
}

async fn next_renew(job: &mut Option<ActiveJob>) -> RenewEvent {
    if let Some(j) = job
        && let Some(rx) = j.renew_rx.as_mut()
    {
        if let Some(ev) = rx.recv().await {
            return ev;
        }
        j.renew_rx = None;
    }
    std::future::pending().await
}

async fn run_activity(act: &mut Option<ActivityFuture>) -> Activity {
    match act.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

impl Runner {
    pub(super) async fn emit(&self, event: RunnerEvent) {
        emit_to(&self.events, &self.name, event).await;
    }

    pub(super) fn status(&self) -> Status {
        if self.job.is_some() {
            Status::Busy
        } else {
            Status::Online
        }
    }

    async fn main_loop(mut self) {
        let mut act: Option<ActivityFuture> = None;
        loop {
            if act.is_none() && self.listening {
                let delay = std::mem::take(&mut self.next_delay);
                act = Some(if self.session.is_none() {
                    self.start_open(delay)
                } else {
                    self.start_poll(delay)
                });
            }
            let step = tokio::select! {
                cmd = self.commands.recv(), if self.commands_open => self.on_command(cmd).await,
                ev = next_renew(&mut self.job) => { self.on_renew(ev).await; Step::Continue }
                a = run_activity(&mut act) => {
                    act = None;
                    match a {
                        Activity::Open(r) => self.on_open(r).await,
                        Activity::Poll(r) => self.on_poll(r).await,
                    }
                }
            };
            match step {
                Step::Continue => {}
                Step::Restart => act = None,
                Step::End(end) => {
                    drop(act);
                    return self.finish(end).await;
                }
            }
        }
    }

    fn start_open(&mut self, delay: Duration) -> ActivityFuture {
        let stale = self.stale_session.take();
        let (http, listener, oauth, agent, key) = (
            self.shared.http.clone(),
            self.listener.clone(),
            Arc::clone(&self.oauth),
            self.agent.clone(),
            Arc::clone(&self.key),
        );
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if let Some(old) = stale
                && let Ok(t) = oauth.token().await
            {
                let _ = session::delete(&http, &listener, &t, &old.id).await;
            }
            let r = async {
                for attempt in 0..2 {
                    let token = oauth.token().await.map_err(OpenError::OAuth)?;
                    match session::create(&http, &listener, &token, &agent, &key).await {
                        Err(e) if e.status() == Some(401) && attempt == 0 => {
                            oauth.invalidate(&token)
                        }
                        r => return r.map_err(OpenError::Call),
                    }
                }
                Err(OpenError::OAuth(OAuthError::Call(CallError::Transport {
                    what: "create session".into(),
                    message: "unauthorised twice".into(),
                })))
            }
            .await;
            Activity::Open(r)
        })
    }

    fn start_poll(&self, delay: Duration) -> ActivityFuture {
        let (http, listener, oauth) = (
            self.shared.http.clone(),
            self.listener.clone(),
            Arc::clone(&self.oauth),
        );
        let sid = self
            .session
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        let (status, last, timeout) = (
            self.status(),
            self.last_message_id,
            self.shared.tunables.poll_timeout,
        );
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let r = async {
                for attempt in 0..2 {
                    let token = oauth.token().await.map_err(OpenError::OAuth)?;
                    match session::poll(&http, &listener, &token, &sid, status, last, timeout).await
                    {
                        Err(e) if e.status() == Some(401) && attempt == 0 => {
                            oauth.invalidate(&token)
                        }
                        r => return r.map_err(OpenError::Call),
                    }
                }
                Err(OpenError::Call(CallError::Transport {
                    what: "poll".into(),
                    message: "unauthorised twice".into(),
                }))
            }
            .await;
            Activity::Poll(r)
        })
    }

    /// Forgets the session; the next open deletes it first (best effort), so the delete can
    /// never race the new session (the broker's delete names no session).
    pub(super) fn drop_session(&mut self) {
        if let Some(s) = self.session.take() {
            self.stale_session = Some(s);
        }
    }

    async fn on_command(&mut self, cmd: Option<RunnerCommand>) -> Step {
        if cmd.is_none() {
            self.commands_open = false;
        }
        match cmd {
            None if self.job.is_some() => {
                if let Some(j) = self.job.take() {
                    j.stop.cancel();
                }
                Step::End(End::Failed(
                    "the dispatcher went away while a job ran".into(),
                ))
            }
            None | Some(RunnerCommand::Stop) => {
                if self.job.is_some() {
                    self.stop_requested = true;
                    return Step::Continue;
                }
                match registrar::remove(&self.shared.cache, &self.scope, &self.agent).await {
                    Ok(how) => {
                        tracing::debug!(runner = %self.name, ?how, "runner removed");
                        Step::End(End::Removed)
                    }
                    Err(e) if matches!(super::token_cache::status_of(&e), Some(409 | 422)) => {
                        // E33: the service says it is busy; a job is on its way. Take it.
                        tracing::info!(runner = %self.name, "not removed: the runner is busy");
                        self.stop_requested = true;
                        Step::Continue
                    }
                    Err(e) => Step::End(End::Failed(format!("could not unregister: {e}"))),
                }
            }
            Some(RunnerCommand::WorkerFinished(outcome)) => self.worker_finished(outcome).await,
        }
    }

    async fn on_renew(&mut self, ev: RenewEvent) {
        match ev {
            RenewEvent::Renewed(locked_until) => {
                self.emit(RunnerEvent::LockRenewed { locked_until }).await
            }
            RenewEvent::Lost(reason) => self.emit(RunnerEvent::LockLost { reason }).await,
            RenewEvent::GaveUp(reason) => {
                if let Some(j) = self.job.as_mut() {
                    j.lock_lost = true;
                }
                self.emit(RunnerEvent::LockLost { reason }).await
            }
        }
    }

    async fn worker_finished(&mut self, outcome: WorkerOutcome) -> Step {
        let Some(job) = self.job.take() else {
            tracing::warn!(runner = %self.name, "worker finished but no job runs; ignored");
            return Step::Continue;
        };
        job.stop.cancel();
        let (result, reason) = match outcome {
            WorkerOutcome::Reported => return Step::End(End::Removed),
            WorkerOutcome::Failed { reason } | WorkerOutcome::Cancelled { reason }
                if job.lock_lost =>
            {
                (OwnResult::Abandoned, reason)
            }
            WorkerOutcome::Failed { reason } => (OwnResult::Failed, reason),
            WorkerOutcome::Cancelled { reason } => (OwnResult::Canceled, reason),
        };
        let t = self.shared.tunables.clone();
        let mut last = String::new();
        for attempt in 0..t.complete_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(t.complete_retry).await;
            }
            // Completions with the job token do not need the runner token; go on without it.
            let token = self.oauth.token().await.unwrap_or_default();
            let v1 = match &self.listener {
                Listener::V1 { loc, pool_id } => Some((loc.as_ref(), *pool_id)),
                Listener::Broker { .. } => None,
            };
            match completion::complete(&self.shared.http, &job.info, v1, &token, result, &reason)
                .await
            {
                Ok(()) => {
                    self.emit(RunnerEvent::CompletedByRunner {
                        result: result.as_str().to_string(),
                    })
                    .await;
                    return Step::End(End::Removed);
                }
                // E30: the run service will not take it (token expired, job gone); stop trying.
                Err(e) if matches!(e.status(), Some(401 | 404)) => {
                    return Step::End(End::Failed(format!("could not complete the job: {e}")));
                }
                Err(e) => last = e.to_string(),
            }
        }
        Step::End(End::Failed(format!("could not complete the job: {last}")))
    }

    async fn finish(mut self, end: End) {
        if let Some(j) = self.job.take() {
            j.stop.cancel();
        }
        if let Some(s) = self.session.take() {
            // E31: errors are expected for an ephemeral runner after its job; ignore them.
            if let Ok(t) = self.oauth.token().await {
                let _ = session::delete(&self.shared.http, &self.listener, &t, &s.id).await;
            }
        }
        self.shared
            .cache
            .entry(&self.scope)
            .oauth_tokens
            .fetch_sub(1, Ordering::Relaxed);
        match end {
            End::Removed => self.emit(RunnerEvent::Removed).await,
            End::Failed(reason) => self.emit(RunnerEvent::Failed { reason }).await,
        }
    }
}
