//! The contract between the engine and whoever watches it (`serve` or the dashboard).
//!
//! Owns the two vocabularies: [`Event`] (engine → consumer, facts in the past tense) and
//! [`Command`] (consumer → engine, intents). Nothing here does IO or holds engine state; a
//! consumer can rebuild its whole view from the events alone. Types are plain data so the
//! TUI's reducer and the tests can build them by hand.

use chrono::{DateTime, Utc};
use std::path::PathBuf;

/// GitHub's id of a workflow job (REST `workflow_job.id`, equal to its check-run id).
pub type JobId = u64;

/// Where a job stands, from megascaler's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// GitHub queued it; megascaler has not yet decided anything.
    Queued,
    /// A worker entry serves it; a runner is wanted but not registered yet (capacity, back-off).
    WaitingForRunner,
    /// A runner with its labels is registered and listening.
    RunnerRegistered,
    /// A runner received it (not necessarily the one registered for it).
    Assigned,
    /// Its worker process runs.
    WorkerRunning,
    /// GitHub reports it finished; see [`JobView::conclusion`].
    Completed,
    /// Cancelled (by a person, by GitHub, or while still queued).
    Cancelled,
    /// megascaler gave up on it; see [`JobView::reason`].
    Failed,
    /// No worker entry serves its labels; it never gets a runner.
    Unmatched,
}

impl JobState {
    /// True once nothing more will happen to the job.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Cancelled | JobState::Failed | JobState::Unmatched
        )
    }

    /// A short lower-case name for screens and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::WaitingForRunner => "waiting",
            JobState::RunnerRegistered => "registered",
            JobState::Assigned => "assigned",
            JobState::WorkerRunning => "running",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Failed => "failed",
            JobState::Unmatched => "unmatched",
        }
    }
}

/// Everything a consumer needs to show one job. Sent whole on every change.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub id: JobId,
    /// `owner/repo`.
    pub repository: String,
    pub run_id: u64,
    pub run_attempt: u64,
    pub workflow_name: String,
    pub job_name: String,
    /// The job's `runs-on` labels.
    pub labels: Vec<String>,
    pub state: JobState,
    /// GitHub's conclusion (`success`, `failure`, `cancelled`…) once completed.
    pub conclusion: Option<String>,
    /// Why the job is in its state, in words a person reads (failures, unmatched labels).
    pub reason: Option<String>,
    /// The runner that received the job.
    pub runner_name: Option<String>,
    /// True when that runner was registered for a different job (it "took" this one).
    pub runner_was_other_jobs: bool,
    /// Index into the config's worker entries chosen for this job.
    pub worker_entry: Option<usize>,
    /// Process id of the running worker.
    pub worker_pid: Option<u32>,
    /// Full worker output on disk.
    pub log_path: Option<PathBuf>,
    /// GitHub's `html_url` of the job.
    pub html_url: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which stream a line of worker output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of worker output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: Stream,
    pub text: String,
}

/// What kind of decision the engine took (for filtering and colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// A worker entry was (or was not) matched to a job's labels.
    Match,
    /// A runner was registered or removed to converge demand and supply.
    Reconcile,
    /// A received job was identified and bound to a worker (late binding).
    Bind,
    /// A job changed state.
    Transition,
    /// A command from a person was carried out or refused.
    Command,
    /// Intake: a webhook or a poll told the engine something.
    Intake,
}

/// One decision with its reason, for the decision feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub at: DateTime<Utc>,
    pub job: Option<JobId>,
    pub kind: DecisionKind,
    pub message: String,
}

/// A runner megascaler registered (it exists only in megascaler's memory).
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerView {
    pub name: String,
    pub labels: Vec<String>,
    /// The job it was registered for.
    pub intended_job: Option<JobId>,
    /// The job it actually received.
    pub actual_job: Option<JobId>,
    /// `registering`, `listening`, `busy`, `removing`.
    pub status: String,
    pub registered_at: DateTime<Utc>,
}

/// Cached credentials of one registration scope (times only, never the values).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeTokens {
    /// e.g. `https://github.com/owner/repo`.
    pub scope: String,
    pub registration_token_expires: Option<DateTime<Utc>>,
    pub jwt_expires: Option<DateTime<Utc>>,
    /// Runner OAuth tokens held for this scope.
    pub oauth_tokens: usize,
    /// Registrations served from the cache without spending the PAT.
    pub cache_hits: u64,
}

/// The PAT's REST budget as GitHub last reported it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RestBudget {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset: Option<DateTime<Utc>>,
    /// PAT-authenticated calls made by this process.
    pub calls: u64,
    /// Calls the caches and conditional requests saved.
    pub saved: u64,
}

/// How jobs reach the engine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IntakeStatus {
    /// Bound webhook listener address.
    pub webhook_address: Option<String>,
    pub last_delivery: Option<DateTime<Utc>>,
    pub deliveries: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub last_poll_ok: Option<DateTime<Utc>>,
    pub poll_error: Option<String>,
    pub paused: bool,
}

/// Engine → consumer. Facts only.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A job appeared or changed; the view is complete.
    Job(JobView),
    /// A decision with its reason.
    Decision(Decision),
    /// A runner appeared or changed.
    Runner(RunnerView),
    /// A runner is gone.
    RunnerRemoved { name: String },
    /// Worker output, batched.
    WorkerOutput { job: JobId, lines: Vec<OutputLine> },
    /// Credentials status per scope.
    Tokens(Vec<ScopeTokens>),
    /// REST budget.
    Budget(RestBudget),
    /// Intake health.
    Intake(IntakeStatus),
    /// Capacity and counts.
    Capacity {
        workers_running: usize,
        max_parallel: Option<usize>,
        runners_idle: usize,
        runners_busy: usize,
    },
    /// Output lines that could not be delivered to the consumer (they are in the log file).
    OutputDropped { total: u64 },
    /// Something went wrong that is not about one job.
    Fault { component: String, message: String },
    /// Graceful shutdown began; says what will happen to running workers.
    ShuttingDown { message: String },
}

/// Consumer → engine. Intents; the engine answers with events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Cancel: REST cancel of the run while queued; CancelRequest to a running worker.
    CancelJob(JobId),
    /// Force-cancel the job's run through REST (ignores `always()` steps).
    ForceCancelJob(JobId),
    /// Kill the job's worker process group now.
    KillWorker(JobId),
    /// A fresh runner for a job still queued; a REST re-run for a finished one.
    Redispatch(JobId),
    /// Stop taking new jobs (runners already registered keep their jobs).
    PauseIntake,
    /// Take new jobs again.
    ResumeIntake,
    /// Graceful shutdown.
    Shutdown,
}

/// The consumer's end of a running engine: events out, commands in.
///
/// Exactly one consumer reads `events`. Dropping `commands` does not stop the engine; send
/// [`Command::Shutdown`] and read `events` until it closes.
#[derive(Debug)]
pub struct EngineHandle {
    /// Engine → consumer. Bounded; worker output that does not fit is counted in
    /// [`Event::OutputDropped`] instead of blocking the engine.
    pub events: tokio::sync::mpsc::Receiver<Event>,
    /// Consumer → engine.
    pub commands: tokio::sync::mpsc::Sender<Command>,
}
