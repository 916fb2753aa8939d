//! The contract between the dispatcher and the runners it asks for.
//!
//! Owns the plain data that crosses that boundary: what the dispatcher asks for
//! ([`RunnerRequest`]), what a runner reports ([`RunnerEvent`]), and what the dispatcher can
//! tell a runner ([`RunnerCommand`]). The runner task itself (registration, OAuth, sessions,
//! the message loop, lock renewal, completion) lives beside this file; nothing here does IO.
//! No credential ever appears in these types: a worker is handed [`ReceivedJob::message`],
//! whose only secret is the job-scoped token GitHub put there for the worker.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// What the dispatcher asks for: one ephemeral runner with exactly these labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRequest {
    /// Registration scope, e.g. `https://github.com/owner/repo` (or `{ghes}/owner/repo`).
    pub scope_url: Url,
    /// The runner's labels: exactly the job's `runs-on` labels, no default labels.
    pub labels: Vec<String>,
    /// Runner name: the configured prefix plus a UUID, so megascaler recognises its own.
    pub name: String,
}

/// Which API family the received job's renewals and completion go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobFlow {
    /// `PipelineAgentJobRequest`: pipelines job requests and plan events.
    Pipelines,
    /// `RunnerJobRequest`: the run service (`acquirejob`, `renewjob`, `completejob`).
    RunService,
}

/// What the job message itself says about which job it is (spec §5.2, §8.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobIdentity {
    /// `contextData.job.check_run_id`, equal to the REST job id, when the server sent it.
    pub check_run_id: Option<u64>,
    /// `contextData.github.run_id`.
    pub run_id: Option<u64>,
    /// `contextData.github.run_attempt`.
    pub run_attempt: Option<u64>,
    /// `contextData.github.repository` (`owner/repo`).
    pub repository: Option<String>,
    /// `jobDisplayName` of the message.
    pub job_display_name: String,
}

/// A job a runner received, acknowledged and holds the lock of.
#[derive(Debug, Clone)]
pub struct ReceivedJob {
    /// The job message exactly as received (decrypted, acquired), as JSON text.
    pub message: Arc<str>,
    pub identity: JobIdentity,
    pub flow: JobFlow,
    /// The orchestration job id (`jobId`, a GUID).
    pub orchestration_job_id: String,
    /// Cancel timeout the server asked for, when it did.
    pub cancel_timeout: Option<Duration>,
}

/// How a worker process ended, as the dispatcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerOutcome {
    /// Exit 0: the worker reported the job's result itself.
    Reported,
    /// The worker could not report (crash, non-zero exit, killed, never started); the runner
    /// completes the job as failed and writes the reason to the job's log.
    Failed { reason: String },
    /// The worker was cancelled and could not report; complete the job as cancelled.
    Cancelled { reason: String },
}

/// Runner → dispatcher. Facts in the past tense.
#[derive(Debug, Clone)]
pub enum RunnerEvent {
    /// The runner is registered with GitHub (agent id from the service).
    Registered { agent_id: u64 },
    /// A message session is open; the runner can receive a job.
    Listening,
    /// A job arrived, was acknowledged, and its first lock renewal succeeded: a worker may start.
    JobReceived(ReceivedJob),
    /// The job's lock was renewed.
    LockRenewed { locked_until: Option<DateTime<Utc>> },
    /// GitHub cancelled the running job (`JobCancellation`); the worker should be told.
    CancelRequested { timeout: Option<Duration> },
    /// Lock renewal gave up: the job is abandoned; the worker should be cancelled.
    LockLost { reason: String },
    /// megascaler completed the job itself (the worker could not), with this result.
    CompletedByRunner { result: String },
    /// The runner is unregistered and its task ends.
    Removed,
    /// The runner cannot go on (registration refused, deleted server-side…); its task ends.
    Failed { reason: String },
}

/// A runner event with the name of the runner that sent it (runners share one channel).
#[derive(Debug, Clone)]
pub struct RunnerEnvelope {
    pub runner: String,
    pub event: RunnerEvent,
}

/// Dispatcher → runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerCommand {
    /// Stop listening and unregister (never while a job runs: then it stops after the job).
    Stop,
    /// The worker ended; complete the job if it could not.
    WorkerFinished(WorkerOutcome),
}
