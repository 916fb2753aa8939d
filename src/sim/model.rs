//! What tests and the demo put into the simulator and read back out of it.
//!
//! Owns the plain data of the simulator's Rust API and of its `/_sim/` HTTP API: job specs,
//! snapshots of jobs and runners, counters, violations, faults, and the stable endpoint names
//! that counters and faults are keyed by. No IO, no state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A job to queue, as a workflow run would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// `owner/repo`.
    pub repository: String,
    /// The job's `runs-on` labels.
    pub labels: Vec<String>,
    #[serde(default = "default_workflow")]
    pub workflow_name: String,
    #[serde(default = "default_job")]
    pub job_name: String,
    /// The run to add the job to; `None` starts a new run.
    #[serde(default)]
    pub run_id: Option<u64>,
    /// What `megascaler sim-worker` does with the job.
    #[serde(default)]
    pub script: WorkerScript,
}

fn default_workflow() -> String {
    "CI".to_string()
}

fn default_job() -> String {
    "build".to_string()
}

impl JobSpec {
    /// A job in a new run with the default script.
    pub fn new(repository: &str, labels: &[&str]) -> Self {
        JobSpec {
            repository: repository.to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            workflow_name: default_workflow(),
            job_name: default_job(),
            run_id: None,
            script: WorkerScript::default(),
        }
    }
}

/// What `megascaler sim-worker` does; travels in the job message as a non-secret variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerScript {
    pub steps: u32,
    pub step_millis: u64,
    /// `success` or `failure`.
    pub conclusion: String,
    /// Exit non-zero without reporting.
    pub crash: bool,
    /// Ignore CancelRequest, SIGINT and SIGTERM.
    pub hang_on_cancel: bool,
    /// Ground truth the simulator writes when it builds the job message (callers leave it
    /// `None`): the queued job's labels. sim-worker checks its `--labels` against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_labels: Option<Vec<String>>,
    /// Ground truth: the queued job's REST id, checked against megascaler's spliced `jobid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_job_id: Option<u64>,
}

impl Default for WorkerScript {
    fn default() -> Self {
        WorkerScript {
            steps: 3,
            step_millis: 200,
            conclusion: "success".to_string(),
            crash: false,
            hang_on_cancel: false,
            true_labels: None,
            true_job_id: None,
        }
    }
}

/// REST status of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    InProgress,
    Completed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::InProgress => "in_progress",
            JobStatus::Completed => "completed",
        }
    }
}

/// How a job reached `completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionPath {
    /// v1 plan event `JobCompleted` (job token).
    PlanEvent,
    /// v1 `PATCH jobrequests` with `finishTime` (runner token; plan version < 8).
    JobRequestFinish,
    /// Run service `completejob` (job token).
    CompleteJob,
    /// Cancelled while queued, or force-cancelled.
    Cancelled,
    /// Lock not renewed in time.
    LockExpired,
}

/// A snapshot of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimJob {
    /// REST job id (= check run id).
    pub id: u64,
    pub run_id: u64,
    pub run_attempt: u32,
    pub repository: String,
    pub workflow_name: String,
    pub job_name: String,
    pub labels: Vec<String>,
    pub status: JobStatus,
    /// REST/webhook vocabulary: `success`, `failure`, `cancelled`…
    pub conclusion: Option<String>,
    /// The result as the runner or worker sent it (`succeeded`, `failed`, `canceled`…).
    pub result: Option<String>,
    pub completed_via: Option<CompletionPath>,
    /// The runner the job was offered to (set at assignment, before it starts).
    pub offered_to: Option<String>,
    /// Set when the job starts (v1: first renew; broker: acquirejob), as in REST.
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
    /// Successful lock renewals.
    pub renewals: u32,
    pub locked_until: Option<DateTime<Utc>>,
    /// `PipelineAgentJobRequest` or `RunnerJobRequest`, once offered.
    pub message_type: Option<String>,
    /// Orchestration job id (`jobId` of the message).
    pub orchestration_id: String,
    /// v1 job request id (`requestId`).
    pub request_id: u64,
    /// Outputs the completion carried, if any.
    pub outputs: Option<serde_json::Value>,
    /// Error/warning texts reported for the job: timeline record `issues[].message` and
    /// `completejob` `annotations[].message`.
    #[serde(default)]
    pub issues: Vec<String>,
    /// Log text uploaded for the job (log appends and live feed lines), in arrival order.
    #[serde(default)]
    pub log: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A snapshot of one registered runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimRunner {
    pub id: u64,
    pub name: String,
    pub labels: Vec<String>,
    /// A message session is open.
    pub online: bool,
    /// A job was offered to it and has not ended.
    pub busy: bool,
    pub ephemeral: bool,
    /// Registration scope: `owner/repo` or `org`.
    pub scope: String,
    /// The job it holds, if any.
    pub job: Option<u64>,
    /// It was offered a job at some point (the one-job rule keeps it from another).
    pub had_job: bool,
    /// The session is at the broker rather than the pipelines service.
    pub broker_session: bool,
    /// Registered through the runner-admin endpoints.
    pub runner_admin: bool,
    /// Algorithm of the last accepted client assertion (`RS256` or `PS256`).
    #[serde(default)]
    pub assertion_alg: Option<String>,
}

/// Calls per endpoint (by the names in [`endpoint`]) and the PAT's REST spend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub by_endpoint: BTreeMap<String, u64>,
    /// PAT-authenticated REST calls that spent budget (a 304 does not).
    pub pat_calls: u64,
    /// REST answers `304 Not Modified`.
    pub not_modified: u64,
    /// Calls refused because they carried an expired runner OAuth token: a client that
    /// refreshes before `expires_in` makes none (unless a test expired tokens early).
    #[serde(default)]
    pub expired_oauth_calls: u64,
}

impl Counters {
    /// Calls to one endpoint (0 when never called).
    pub fn get(&self, endpoint: &str) -> u64 {
        self.by_endpoint.get(endpoint).copied().unwrap_or(0)
    }
}

/// A protocol violation the simulator saw (it usually also rejected the request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub at: DateTime<Utc>,
    pub endpoint: String,
    /// The runner the request came from, when known.
    pub runner: Option<String>,
    pub message: String,
}

/// A fault to inject on an endpoint for the next N calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// This status, with an error body in the endpoint family's shape.
    Status(u16),
    /// 429 with `Retry-After` (and, for REST, exhausted `x-ratelimit-*`). A request with the
    /// same credential to the endpoint before it elapses is recorded as a violation.
    RateLimited { retry_after_secs: u64 },
    /// Hold the request for `SimConfig::fault_timeout`, then answer 504.
    Timeout,
    /// Answer normally after a delay.
    Delay { millis: u64 },
    /// This status with a typed error: VSS `typeKey`, broker `errorKind`, OAuth `error`,
    /// REST and run-service `message`.
    Error { status: u16, kind: String },
    /// This status with exactly this body (`application/json`), e.g. hostile values
    /// (`lockedUntil` in year 262143, huge `expires_in`, deep nesting) a client must survive.
    Raw { status: u16, body: String },
    /// An error in the family's shape whose message quotes the request's credential
    /// (`Authorization` value, or the OAuth client assertion): a leak oracle, since a client
    /// must never copy server error text containing it into logs or the screen.
    EchoCredential { status: u16 },
    /// 403 with `Retry-After` (GitHub's secondary rate limit, E39). Like `RateLimited`, a
    /// request with the same credential to the endpoint before it elapses is a violation.
    SecondaryRateLimited { retry_after_secs: u64 },
}

/// Which tokens [`crate::sim::SimHandle::expire_tokens`] expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    RegistrationTokens,
    Jwts,
    #[serde(rename = "oauth_tokens")]
    OAuthTokens,
    JobTokens,
}

/// Stable endpoint names: keys of [`Counters::by_endpoint`] and of fault injection.
pub mod endpoint {
    pub const REGISTRATION_TOKEN: &str = "rest.registration_token";
    pub const REMOVE_TOKEN: &str = "rest.remove_token";
    pub const RUNNERS_LIST: &str = "rest.runners.list";
    pub const RUNNER_GET: &str = "rest.runners.get";
    pub const RUNNER_DELETE: &str = "rest.runners.delete";
    pub const RUNNER_GROUPS: &str = "rest.runner_groups";
    pub const RUNS_LIST: &str = "rest.runs.list";
    pub const RUN_GET: &str = "rest.runs.get";
    pub const RUN_JOBS: &str = "rest.runs.jobs";
    pub const JOB_GET: &str = "rest.jobs.get";
    pub const RUN_CANCEL: &str = "rest.runs.cancel";
    pub const RUN_FORCE_CANCEL: &str = "rest.runs.force_cancel";
    pub const JOB_RERUN: &str = "rest.jobs.rerun";
    pub const RATE_LIMIT: &str = "rest.rate_limit";
    pub const RUNNER_REGISTRATION: &str = "runner_registration";
    pub const ADMIN_REGISTER: &str = "admin.register";
    pub const CONNECTION_DATA: &str = "pipelines.connection_data";
    pub const POOLS_LIST: &str = "pipelines.pools.list";
    pub const AGENTS_ADD: &str = "pipelines.agents.add";
    pub const AGENTS_LIST: &str = "pipelines.agents.list";
    pub const AGENTS_REPLACE: &str = "pipelines.agents.replace";
    pub const AGENTS_DELETE: &str = "pipelines.agents.delete";
    pub const OAUTH_TOKEN: &str = "oauth.token";
    pub const SESSIONS_CREATE: &str = "pipelines.sessions.create";
    pub const SESSIONS_DELETE: &str = "pipelines.sessions.delete";
    pub const MESSAGES_GET: &str = "pipelines.messages.get";
    pub const MESSAGES_DELETE: &str = "pipelines.messages.delete";
    pub const JOB_REQUEST_UPDATE: &str = "pipelines.jobrequests.update";
    pub const LEGACY_JOB_MESSAGE: &str = "pipelines.runnerjobrequests.get";
    pub const PLAN_EVENTS: &str = "pipelines.plan_events";
    pub const TIMELINE: &str = "pipelines.timeline";
    pub const LOGS: &str = "pipelines.logs";
    pub const BROKER_SESSION_CREATE: &str = "broker.session.create";
    pub const BROKER_SESSION_DELETE: &str = "broker.session.delete";
    pub const BROKER_MESSAGE: &str = "broker.message";
    pub const BROKER_ACKNOWLEDGE: &str = "broker.acknowledge";
    pub const ACQUIRE_JOB: &str = "run.acquirejob";
    pub const RENEW_JOB: &str = "run.renewjob";
    pub const COMPLETE_JOB: &str = "run.completejob";
    /// Counted in addition when a run-service call used the message's `run_service_url`
    /// while it differs from `SystemVssConnection.url`.
    pub const RUN_VIA_MESSAGE_URL: &str = "run.via_message_url";
}
