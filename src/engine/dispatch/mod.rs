//! The dispatcher: the engine's whole state and every decision, as a pure state machine.
//!
//! `Dispatcher::handle(input, now)` updates the state and returns [`Effect`]s; the driver
//! performs them and feeds their results back as [`Input`]s. Nothing here does IO, spawns,
//! sleeps or reads the clock, so every scenario is a unit test. Every transition and decision
//! becomes an [`Event`] with a reason a person can read.

mod command;
mod intake;
mod pools;
mod runner;
#[cfg(test)]
mod tests;
pub mod types;

pub use types::*;

use crate::config::{Config, WorkerEntry};
use crate::engine::event::{Decision, DecisionKind, Event, JobId, JobState, JobView, RunnerView};
use crate::engine::jobs::{self, JobInput, Step};
use crate::engine::matching::LabelKey;
use crate::protocol::api::ReceivedJob;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use url::Url;

/// How long a finished job stays known (and shown) before it is forgotten.
pub const FINISHED_JOB_RETENTION: Duration = Duration::from_secs(3600);

/// What the dispatcher needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub workers: Vec<WorkerEntry>,
    pub max_parallel: Option<usize>,
    pub github_url: Url,
    pub runner_name_prefix: String,
    pub identify_timeout: Duration,
    pub cancel_grace: Duration,
    /// First back-off after a failed registration (doubles, up to 5 minutes).
    pub registration_backoff: Duration,
}

impl Settings {
    /// The settings of a configuration.
    pub fn from_config(c: &Config) -> Self {
        Settings {
            workers: c.workers.clone(),
            max_parallel: c.max_parallel,
            github_url: c.github_url.clone(),
            runner_name_prefix: c.runner_name_prefix.clone(),
            identify_timeout: c.identify_timeout,
            cancel_grace: c.cancel_grace,
            registration_backoff: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
struct JobRecord {
    view: JobView,
    key: LabelKey,
    /// The entry serving its labels (None: unmatched).
    entry: Option<usize>,
    /// Waiting for an environment's approval.
    awaiting_approval: bool,
    /// The runner GitHub says took it.
    github_runner: Option<String>,
    /// Our runner that received it.
    bound_runner: Option<String>,
    worker_active: bool,
}

impl JobRecord {
    fn needs_runner(&self) -> bool {
        self.entry.is_some()
            && !self.awaiting_approval
            && self.github_runner.is_none()
            && self.bound_runner.is_none()
            && matches!(
                self.view.state,
                JobState::Queued | JobState::WaitingForRunner | JobState::RunnerRegistered
            )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunnerStatus {
    Registering,
    Listening,
    Busy,
    Removing,
}

impl RunnerStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunnerStatus::Registering => "registering",
            RunnerStatus::Listening => "listening",
            RunnerStatus::Busy => "busy",
            RunnerStatus::Removing => "removing",
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    received: ReceivedJob,
    since: DateTime<Utc>,
    last_why: String,
}

#[derive(Debug, Clone)]
struct RunnerRecord {
    name: String,
    repository: String,
    key: LabelKey,
    labels: Vec<String>,
    entry: usize,
    intended: Option<JobId>,
    job: Option<JobId>,
    status: RunnerStatus,
    registered_at: DateTime<Utc>,
    pending: Option<Pending>,
}

impl RunnerRecord {
    fn idle(&self) -> bool {
        matches!(
            self.status,
            RunnerStatus::Registering | RunnerStatus::Listening
        ) && self.job.is_none()
            && self.pending.is_none()
    }

    fn view(&self) -> RunnerView {
        RunnerView {
            name: self.name.clone(),
            labels: self.labels.clone(),
            intended_job: self.intended,
            actual_job: self.job,
            status: self.status.as_str().to_string(),
            registered_at: self.registered_at,
        }
    }
}

#[derive(Debug, Clone)]
struct Backoff {
    failures: u32,
    until: DateTime<Utc>,
}

/// The engine's state. See the module docs.
#[derive(Debug)]
pub struct Dispatcher {
    settings: Settings,
    jobs: BTreeMap<JobId, JobRecord>,
    runners: BTreeMap<String, RunnerRecord>,
    backoff: HashMap<(String, LabelKey), Backoff>,
    orphans_deleted: HashSet<String>,
    paused: bool,
    shutting_down: bool,
    now: DateTime<Utc>,
}

impl Dispatcher {
    /// A dispatcher with no jobs and no runners.
    pub fn new(settings: Settings) -> Self {
        Dispatcher {
            settings,
            jobs: BTreeMap::new(),
            runners: BTreeMap::new(),
            backoff: HashMap::new(),
            orphans_deleted: HashSet::new(),
            paused: false,
            shutting_down: false,
            now: DateTime::<Utc>::MIN_UTC,
        }
    }

    /// Handles one input at `now`; returns what to do.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) -> Vec<Effect> {
        self.now = now;
        let mut out = Vec::new();
        match input {
            Input::Observed { job, source } => self.observed(job, source, &mut out),
            Input::RunnersListed {
                repository,
                runners,
            } => self.runners_listed(&repository, runners, &mut out),
            Input::Runner(env) => self.runner_event(env, &mut out),
            Input::WorkerStarted { job, pid, log_path } => {
                self.worker_started(job, pid, log_path, &mut out)
            }
            Input::WorkerExited { job, outcome } => self.worker_exited(job, outcome, &mut out),
            Input::Command(c) => self.command(c, &mut out),
            Input::Tick => self.tick(&mut out),
        }
        self.retry_pending(&mut out);
        if !self.shutting_down {
            self.reconcile(&mut out);
        }
        out.push(Effect::Emit(self.capacity()));
        out
    }

    /// True when intake is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// True once a shutdown began and every runner is gone.
    pub fn finished(&self) -> bool {
        self.shutting_down && self.runners.is_empty()
    }

    /// Jobs that are not final, as `(repository, job, run id)`: what polling must keep watching.
    pub fn open_jobs(&self) -> Vec<(String, JobId, u64)> {
        self.jobs
            .values()
            .filter(|j| !j.view.state.is_final())
            .map(|j| (j.view.repository.clone(), j.view.id, j.view.run_id))
            .collect()
    }

    /// The current view of one job.
    pub fn job(&self, id: JobId) -> Option<&JobView> {
        self.jobs.get(&id).map(|j| &j.view)
    }

    /// Names of the runners this dispatcher owns.
    pub fn runner_names(&self) -> Vec<String> {
        self.runners.keys().cloned().collect()
    }

    fn capacity(&self) -> Event {
        let idle = self.runners.values().filter(|r| r.idle()).count();
        Event::Capacity {
            workers_running: self.jobs.values().filter(|j| j.worker_active).count(),
            max_parallel: self.settings.max_parallel,
            runners_idle: idle,
            runners_busy: self.runners.len() - idle,
        }
    }

    fn decide(
        &self,
        kind: DecisionKind,
        job: Option<JobId>,
        message: String,
        out: &mut Vec<Effect>,
    ) {
        out.push(Effect::Emit(Event::Decision(Decision {
            at: self.now,
            job,
            kind,
            message,
        })));
    }

    /// Applies a job input; emits the transition with `reason` when the state changes.
    fn transition(&mut self, id: JobId, input: JobInput, reason: String, out: &mut Vec<Effect>) {
        let now = self.now;
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        match jobs::next(job.view.state, &input) {
            Step::To(state) => {
                let from = job.view.state;
                job.view.state = state;
                job.view.reason = Some(reason.clone());
                if state == JobState::WorkerRunning {
                    job.view.started_at = Some(now);
                }
                if state.is_final() && job.view.finished_at.is_none() {
                    job.view.finished_at = Some(now);
                }
                let view = job.view.clone();
                self.decide(
                    DecisionKind::Transition,
                    Some(id),
                    format!(
                        "job {id}: {} -> {}: {reason}",
                        from.as_str(),
                        state.as_str()
                    ),
                    out,
                );
                out.push(Effect::Emit(Event::Job(view)));
            }
            Step::Ignored(_) => {}
        }
    }

    fn emit_job(&self, id: JobId, out: &mut Vec<Effect>) {
        if let Some(j) = self.jobs.get(&id) {
            out.push(Effect::Emit(Event::Job(j.view.clone())));
        }
    }

    fn emit_runner(&self, name: &str, out: &mut Vec<Effect>) {
        if let Some(r) = self.runners.get(name) {
            out.push(Effect::Emit(Event::Runner(r.view())));
        }
    }

    fn stop_runner(&mut self, name: &str, reason: String, out: &mut Vec<Effect>) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        if r.status == RunnerStatus::Removing {
            return;
        }
        r.status = RunnerStatus::Removing;
        out.push(Effect::StopRunner {
            runner: name.to_string(),
        });
        self.decide(
            DecisionKind::Reconcile,
            None,
            format!("removing runner {name}: {reason}"),
            out,
        );
        self.emit_runner(name, out);
    }

    fn tick(&mut self, out: &mut Vec<Effect>) {
        let now = self.now;
        self.backoff.retain(|_, b| b.until > now);
        // Finished jobs are forgotten after a while, so a long-running engine stays small.
        let keep = chrono::Duration::from_std(FINISHED_JOB_RETENTION).unwrap_or_default();
        self.jobs.retain(|_, j| {
            !j.view.state.is_final()
                || j.worker_active
                || j.view.finished_at.is_none_or(|t| now - t < keep)
        });
        let timeout = chrono::Duration::from_std(self.settings.identify_timeout)
            .unwrap_or(chrono::Duration::MAX);
        let expired: Vec<String> = self
            .runners
            .values()
            .filter(|r| r.pending.as_ref().is_some_and(|p| now - p.since >= timeout))
            .map(|r| r.name.clone())
            .collect();
        for name in expired {
            self.identify_timed_out(&name, out);
        }
    }
}
