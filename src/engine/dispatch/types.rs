//! The dispatcher's inputs and effects: plain data, no IO.

use crate::engine::event::{Command, Event, JobId};
use crate::protocol::api::{RunnerEnvelope, RunnerRequest, WorkerOutcome};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A job's status as GitHub reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedStatus {
    Queued,
    /// Waiting for an environment's approval: not runnable yet.
    Waiting,
    InProgress,
    Completed,
}

impl ObservedStatus {
    /// Parses GitHub's `status` / `action` words (`requested` and `pending` count as queued).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" | "requested" | "pending" => Some(ObservedStatus::Queued),
            "waiting" => Some(ObservedStatus::Waiting),
            "in_progress" => Some(ObservedStatus::InProgress),
            "completed" => Some(ObservedStatus::Completed),
            _ => None,
        }
    }
}

/// A job as a webhook or a poll reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedJob {
    pub id: JobId,
    /// `owner/repo`.
    pub repository: String,
    pub run_id: u64,
    pub run_attempt: u64,
    pub workflow_name: String,
    pub name: String,
    pub labels: Vec<String>,
    pub status: ObservedStatus,
    pub conclusion: Option<String>,
    pub runner_name: Option<String>,
    pub html_url: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Where an observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Webhook,
    Poll,
}

impl Source {
    /// `webhook` or `poll`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Poll => "poll",
        }
    }
}

/// A self-hosted runner as the REST API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRunner {
    pub id: u64,
    pub name: String,
    pub busy: bool,
}

/// Everything that can happen to the dispatcher.
#[derive(Debug, Clone)]
pub enum Input {
    /// Intake saw a job.
    Observed { job: ObservedJob, source: Source },
    /// A poll listed the registered runners of a repository.
    RunnersListed {
        repository: String,
        runners: Vec<ListedRunner>,
    },
    /// One of our runners reported.
    Runner(RunnerEnvelope),
    /// A worker process started.
    WorkerStarted {
        job: JobId,
        pid: Option<u32>,
        log_path: PathBuf,
    },
    /// A worker process ended (after `release`).
    WorkerExited { job: JobId, outcome: WorkerOutcome },
    /// A person or a test asked for something.
    Command(Command),
    /// Periodic: timeouts, back-off expiry, reconciliation.
    Tick,
}

/// What the worker needs to start. `Debug` leaves out the message (it holds the job token).
#[derive(Clone)]
pub struct WorkerStart {
    pub job: JobId,
    pub runner: String,
    /// Index of the worker entry chosen by the job's own labels.
    pub entry: usize,
    /// The job message (frame 1 body).
    pub message: Arc<str>,
    /// `MEGASCALER_JOB_*` variables.
    pub job_env: Vec<(String, String)>,
    /// What is spliced into the message's `github.megascaler` context (spec §6.4).
    pub context: crate::protocol::MegascalerContext,
}

impl std::fmt::Debug for WorkerStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerStart")
            .field("job", &self.job)
            .field("runner", &self.runner)
            .field("entry", &self.entry)
            .field("message", &format_args!("<{} bytes>", self.message.len()))
            .field("job_env", &self.job_env)
            .finish()
    }
}

/// REST calls the dispatcher asks for (made with the PAT by the driver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestCall {
    CancelRun {
        repository: String,
        run_id: u64,
    },
    ForceCancelRun {
        repository: String,
        run_id: u64,
    },
    RerunJob {
        repository: String,
        job: JobId,
    },
    DeleteRunner {
        repository: String,
        id: u64,
        name: String,
    },
}

/// What the driver must do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Tell the consumer.
    Emit(Event),
    /// Start a runner task.
    RegisterRunner(RunnerRequest),
    /// Ask a runner to unregister.
    StopRunner { runner: String },
    /// Start a worker process.
    StartWorker(WorkerStart),
    /// Tell a runner how its job's worker ended (it completes the job if the worker did not).
    FinishJob {
        runner: String,
        outcome: WorkerOutcome,
    },
    /// CancelRequest frame, then the signal escalation after `grace`.
    CancelWorker { job: JobId, grace: Duration },
    /// SIGKILL the worker's process group now.
    KillWorker { job: JobId },
    /// A REST call.
    Rest(RestCall),
}
