//! The simulated service's state and its transitions.
//!
//! Owns the one [`World`] struct (runners, sessions, inboxes, jobs, runs, tokens, counters,
//! violations, faults) that lives behind the simulator's `std::sync::Mutex`. Methods here are
//! synchronous and never await; the HTTP layer locks, calls one method, unlocks, and only then
//! awaits. Webhook events are queued to the delivery task, never sent from here.

mod delivery;
mod jobs;
mod report;
mod runners;
mod runs;
#[cfg(test)]
mod tests;

pub(crate) use delivery::{AcquireError, Channel, Outgoing};
pub(crate) use jobs::{JobFlow, TakeError};
pub(crate) use report::ReportError;
pub(crate) use runners::{AddError, NewAgent, SessionError};

use super::config::{SimConfig, WebhookFaults, WebhookTarget};
use super::crypto::RunnerKey;
use super::model::{Counters, Fault, SimJob, Violation, WorkerScript};
use super::tokens::Tokens;
use super::webhook::WebhookEvent;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, VecDeque};
use tokio::sync::mpsc::UnboundedSender;
use url::Url;

/// A registered runner ("agent").
#[derive(Debug, Clone)]
pub(crate) struct Agent {
    pub id: u64,
    pub name: String,
    pub labels: Vec<String>,
    pub ephemeral: bool,
    pub scope: String,
    pub client_id: String,
    pub key: RunnerKey,
    pub version: String,
    pub os_description: String,
    pub created_on: DateTime<Utc>,
    pub seq: u64,
    pub runner_admin: bool,
    pub session: Option<String>,
    /// The job offered to it that has not ended.
    pub job: Option<u64>,
    pub had_job: bool,
    /// Jobs it acknowledged, acquired or renewed.
    pub taken: Vec<u64>,
    pub inbox: VecDeque<InboxMessage>,
    /// Runner-request ids it acknowledged at the broker.
    pub acknowledged: Vec<String>,
    /// v1 message ids it deleted (a second delete is a violation).
    pub deleted_messages: Vec<u64>,
    /// Algorithm of the last accepted client assertion.
    pub assertion_alg: Option<String>,
}

/// A message waiting for a runner.
#[derive(Debug, Clone)]
pub(crate) struct InboxMessage {
    pub id: u64,
    pub kind: InboxKind,
    /// v1 delivery of the `BrokerMigration` stand-in was deleted by the runner.
    pub migration_deleted: bool,
    /// The broker session a job request was delivered to: the broker delivers it once per
    /// session (it has no delete; acknowledge and acquire follow).
    pub broker_delivered_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InboxKind {
    Job(u64),
    Cancel(u64),
    /// A message a test injected, delivered as is.
    Other {
        message_type: String,
        body: String,
    },
}

/// An open message session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    pub agent_id: u64,
    pub broker: bool,
    pub key: Option<[u8; 32]>,
    pub owner_name: String,
    /// Last poll (start or end); sessions idle for `session_idle_timeout` are dropped.
    pub last_seen: DateTime<Utc>,
}

/// A job as the service tracks it.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub snapshot: SimJob,
    pub script: WorkerScript,
    pub flow: Option<JobFlow>,
    pub plan_id: String,
    pub timeline_id: String,
    pub scope_identifier: String,
    pub runner_request_id: String,
    pub offered_to: Option<u64>,
    pub job_token: Option<String>,
    /// The job message, built when the job is offered.
    pub message: Option<serde_json::Value>,
    /// Set when the run was cancelled while the job ran: if the runner has not completed
    /// the job by then, the service completes it as cancelled.
    pub cancel_deadline: Option<DateTime<Utc>>,
}

/// A workflow run.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub id: u64,
    pub repository: String,
    pub workflow_name: String,
    pub attempt: u32,
    pub created_at: DateTime<Utc>,
    pub head_sha: String,
}

/// The PAT's primary REST budget.
#[derive(Debug, Clone)]
pub(crate) struct RestBudget {
    pub limit: u32,
    pub used: u32,
    pub reset: DateTime<Utc>,
}

/// Everything the simulated service knows.
pub(crate) struct World {
    pub cfg: SimConfig,
    pub base: Url,
    pub tokens: Tokens,
    next_id: u64,
    pub agents: BTreeMap<u64, Agent>,
    pub sessions: HashMap<String, Session>,
    pub jobs: BTreeMap<u64, Job>,
    pub runs: BTreeMap<u64, Run>,
    pub counters: Counters,
    pub violations: Vec<Violation>,
    faults: HashMap<String, VecDeque<Fault>>,
    pub webhook_target: Option<WebhookTarget>,
    pub webhook_faults: WebhookFaults,
    webhooks: UnboundedSender<WebhookEvent>,
    pub budget: RestBudget,
    /// `jti` of accepted client assertions → their `exp` (replay detection).
    pub seen_assertions: HashMap<String, i64>,
    /// (endpoint, credential fingerprint) → the instant before which a request breaks the
    /// `Retry-After` (or rate-limit reset) the service gave for it (§2.4, E14/E39).
    pub retry_not_before: HashMap<(String, u64), std::time::Instant>,
    /// endpoint → the identifying headers seen on it (`user-agent: …`, and for REST
    /// `accept: …`, `x-github-api-version: …`), for E1 tests.
    pub seen_headers: BTreeMap<String, std::collections::BTreeSet<String>>,
}

impl World {
    pub fn new(cfg: SimConfig, base: Url, webhooks: UnboundedSender<WebhookEvent>) -> Self {
        let now = Utc::now();
        World {
            tokens: Tokens::new(base.to_string()),
            webhook_target: cfg.webhook.clone(),
            budget: RestBudget {
                limit: cfg.rest_rate_limit,
                used: 0,
                reset: now + chrono::Duration::hours(1),
            },
            cfg,
            base,
            next_id: 1000,
            agents: BTreeMap::new(),
            sessions: HashMap::new(),
            jobs: BTreeMap::new(),
            runs: BTreeMap::new(),
            counters: Counters::default(),
            violations: Vec::new(),
            faults: HashMap::new(),
            webhook_faults: WebhookFaults::default(),
            webhooks,
            seen_assertions: HashMap::new(),
            retry_not_before: HashMap::new(),
            seen_headers: BTreeMap::new(),
        }
    }

    /// A fresh id, unique across every kind of object (so ids never collide in tests).
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn count(&mut self, endpoint: &str) {
        *self
            .counters
            .by_endpoint
            .entry(endpoint.to_string())
            .or_insert(0) += 1;
    }

    pub fn violation(
        &mut self,
        endpoint: &str,
        runner: Option<String>,
        message: impl Into<String>,
    ) {
        let message = message.into();
        tracing::warn!(
            endpoint,
            runner = runner.as_deref(),
            "protocol violation: {message}"
        );
        self.violations.push(Violation {
            at: Utc::now(),
            endpoint: endpoint.to_string(),
            runner,
            message,
        });
    }

    /// Records a request that came before the `Retry-After` given for its key; forgets a
    /// key whose wait is over.
    pub fn check_retry_after(&mut self, endpoint: &str, key: (String, u64)) {
        let now = std::time::Instant::now();
        match self.retry_not_before.get(&key) {
            Some(until) if now < *until => {
                let early = until.duration_since(now);
                self.violation(
                    endpoint,
                    None,
                    format!("request {early:?} before the Retry-After it was given had elapsed"),
                );
            }
            Some(_) => {
                self.retry_not_before.remove(&key);
            }
            None => {}
        }
    }

    /// Remembers that requests with this key must wait `wait` from now.
    pub fn stamp_retry_after(&mut self, key: (String, u64), wait: std::time::Duration) {
        self.retry_not_before
            .insert(key, std::time::Instant::now() + wait);
    }

    pub fn inject(&mut self, endpoint: &str, fault: Fault, times: u32) {
        let queue = self.faults.entry(endpoint.to_string()).or_default();
        for _ in 0..times {
            queue.push_back(fault.clone());
        }
    }

    /// The next injected fault for this endpoint, consuming it.
    pub fn take_fault(&mut self, endpoint: &str) -> Option<Fault> {
        self.faults.get_mut(endpoint)?.pop_front()
    }

    /// Queues a webhook delivery (the delivery task applies target and faults).
    pub fn emit(&mut self, mut event: WebhookEvent) {
        event.target = self.webhook_target.clone();
        event.faults = self.webhook_faults.clone();
        // The receiver lives as long as the simulator; a send error only means shutdown.
        let _ = self.webhooks.send(event);
    }

    /// Spends one unit of the PAT's REST budget; false when exhausted.
    pub fn spend_rest(&mut self, now: DateTime<Utc>) -> bool {
        if now >= self.budget.reset {
            self.budget.used = 0;
            self.budget.reset = now + chrono::Duration::hours(1);
        }
        if self.budget.used >= self.budget.limit {
            return false;
        }
        self.budget.used += 1;
        self.counters.pat_calls += 1;
        true
    }

    /// The pipelines base ("TenantURL"): `{base}_services/pipelines/`.
    pub fn tenant_url(&self) -> String {
        format!("{}_services/pipelines/", self.base)
    }

    pub fn broker_url(&self) -> String {
        format!("{}_services/broker/", self.base)
    }

    /// The `run_service_url` a `RunnerJobRequest` names (see `run_service_url_differs`).
    pub fn message_run_service_url(&self) -> String {
        if self.cfg.run_service_url_differs {
            format!("{}_services/run-message/", self.base)
        } else {
            self.run_service_url()
        }
    }

    pub fn run_service_url(&self) -> String {
        format!("{}_services/run/", self.base)
    }

    pub fn api_url(&self) -> String {
        format!("{}api/v3", self.base)
    }

    pub fn token_url(&self, client_id: &str) -> String {
        format!(
            "{}_services/token/_apis/oauth2/token/{client_id}",
            self.base
        )
    }

    /// The scope (`owner/repo` or `org`) of a GitHub URL on this server, if it is one.
    pub fn scope_of_url(&self, url: &str) -> Option<String> {
        let rest = url.strip_prefix(self.base.as_str()).or_else(|| {
            // Accept the base without its trailing slash too.
            url.strip_prefix(self.base.as_str().trim_end_matches('/'))
                .map(|r| r.trim_start_matches('/'))
        })?;
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        match parts.as_slice() {
            [org] if !org.is_empty() => Some(org.to_string()),
            [first, _] if first.eq_ignore_ascii_case("enterprises") => None,
            [owner, repo] if !owner.is_empty() && !repo.is_empty() => {
                Some(format!("{owner}/{repo}"))
            }
            _ => None,
        }
    }
}
