//! Dispatcher: runner events, late binding of received jobs, worker start and exit.

use super::{Backoff, Dispatcher, Effect, Pending, RunnerStatus, WorkerStart};
use crate::engine::binding::{self, Candidate, Identification};
use crate::engine::event::{DecisionKind, Event, JobId, JobState};
use crate::engine::jobs::JobInput;
use crate::engine::matching::{self, MatchOutcome};
use crate::protocol::api::{ReceivedJob, RunnerEnvelope, RunnerEvent, WorkerOutcome};
use std::path::PathBuf;
use std::time::Duration;

impl Dispatcher {
    pub(super) fn runner_event(&mut self, env: RunnerEnvelope, out: &mut Vec<Effect>) {
        let name = env.runner;
        if !self.runners.contains_key(&name) {
            return;
        }
        match env.event {
            RunnerEvent::Registered { agent_id } => {
                self.decide(
                    DecisionKind::Reconcile,
                    None,
                    format!("runner {name} registered (agent id {agent_id})"),
                    out,
                );
            }
            RunnerEvent::Listening => {
                if let Some(r) = self.runners.get_mut(&name) {
                    if r.status == RunnerStatus::Registering {
                        r.status = RunnerStatus::Listening;
                    }
                }
                self.emit_runner(&name, out);
            }
            RunnerEvent::JobReceived(received) => self.job_received(&name, received, out),
            RunnerEvent::LockRenewed { .. } => {}
            RunnerEvent::CancelRequested { timeout } => {
                let grace = self.grace(timeout);
                self.cancel_on_runner(&name, grace, "GitHub cancelled the job", out);
            }
            RunnerEvent::LockLost { reason } => {
                let grace = self.settings.cancel_grace;
                self.cancel_on_runner(
                    &name,
                    grace,
                    &format!("the job lock was lost: {reason}"),
                    out,
                );
            }
            RunnerEvent::CompletedByRunner { result } => {
                let job = self.runners.get(&name).and_then(|r| r.job);
                self.decide(
                    DecisionKind::Transition,
                    job,
                    format!("runner {name} completed its job as {result} on the worker's behalf"),
                    out,
                );
            }
            RunnerEvent::Removed => self.runner_gone(&name, None, out),
            RunnerEvent::Failed { reason } => self.runner_gone(&name, Some(reason), out),
        }
    }

    /// The message's cancel timeout, never below the configured grace (default 45 s).
    fn grace(&self, timeout: Option<Duration>) -> Duration {
        timeout.unwrap_or_default().max(self.settings.cancel_grace)
    }

    pub(super) fn cancel_on_runner(
        &mut self,
        name: &str,
        grace: Duration,
        why: &str,
        out: &mut Vec<Effect>,
    ) {
        let Some(r) = self.runners.get(name) else {
            return;
        };
        if let Some(job) = r
            .job
            .filter(|j| self.jobs.get(j).is_some_and(|j| j.worker_active))
        {
            self.decide(
                DecisionKind::Command,
                Some(job),
                format!("cancelling the worker of job {job} ({why}); grace {grace:?}, then SIGINT, SIGTERM, SIGKILL"),
                out,
            );
            out.push(Effect::CancelWorker { job, grace });
        } else if r.pending.is_some() {
            let reason = format!("{why} before its worker started");
            if let Some(r) = self.runners.get_mut(name) {
                r.pending = None;
            }
            out.push(Effect::FinishJob {
                runner: name.to_string(),
                outcome: WorkerOutcome::Cancelled {
                    reason: reason.clone(),
                },
            });
            self.decide(
                DecisionKind::Command,
                None,
                format!("runner {name}: {reason}"),
                out,
            );
        }
    }

    fn runner_gone(&mut self, name: &str, failure: Option<String>, out: &mut Vec<Effect>) {
        let Some(r) = self.runners.remove(name) else {
            return;
        };
        out.push(Effect::Emit(Event::RunnerRemoved {
            name: name.to_string(),
        }));
        if let Some(reason) = failure {
            let never_worked = r.job.is_none() && r.pending.is_none();
            out.push(Effect::Emit(Event::Fault {
                component: format!("runner {name}"),
                message: reason.clone(),
            }));
            if never_worked && !self.shutting_down {
                let key = (r.repository.clone(), r.key.clone());
                let failures = self.backoff.get(&key).map(|b| b.failures).unwrap_or(0) + 1;
                let base = self.settings.registration_backoff;
                let wait = base
                    .saturating_mul(1u32 << failures.min(6).saturating_sub(1))
                    .min(Duration::from_secs(300));
                let until = self.now + chrono::Duration::from_std(wait).unwrap_or_default();
                self.backoff.insert(key, Backoff { failures, until });
                self.decide(
                    DecisionKind::Reconcile,
                    r.intended,
                    format!("runner {name} failed ({reason}); registrations with labels [{}] back off for {wait:?}", r.labels.join(", ")),
                    out,
                );
            }
        } else {
            self.decide(
                DecisionKind::Reconcile,
                None,
                format!("runner {name} is removed"),
                out,
            );
        }
        if let Some(p) = r.pending {
            self.decide(
                DecisionKind::Bind,
                None,
                format!(
                    "runner {name} ended while its job (\"{}\") was still unidentified",
                    p.received.identity.job_display_name
                ),
                out,
            );
        }
    }

    fn job_received(&mut self, name: &str, received: ReceivedJob, out: &mut Vec<Effect>) {
        let now = self.now;
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        r.status = RunnerStatus::Busy;
        let display = received.identity.job_display_name.clone();
        r.pending = Some(Pending {
            received,
            since: now,
            last_why: String::new(),
        });
        self.decide(
            DecisionKind::Bind,
            None,
            format!("runner {name} received job \"{display}\"; identifying it"),
            out,
        );
        self.emit_runner(name, out);
        self.try_bind(name, out);
    }

    /// Retries identification of every received, unidentified job (intake may have news).
    pub(super) fn retry_pending(&mut self, out: &mut Vec<Effect>) {
        let names: Vec<String> = self
            .runners
            .values()
            .filter(|r| r.pending.is_some())
            .map(|r| r.name.clone())
            .collect();
        for name in names {
            self.try_bind(&name, out);
        }
    }

    fn try_bind(&mut self, name: &str, out: &mut Vec<Effect>) {
        let Some(pending) = self.runners.get(name).and_then(|r| r.pending.clone()) else {
            return;
        };
        let runner_key = self
            .runners
            .get(name)
            .map(|r| r.key.clone())
            .unwrap_or_default();
        let candidates: Vec<Candidate> = self
            .jobs
            .values()
            .map(|j| Candidate {
                fits: j.key.is_subset(&runner_key),
                id: j.view.id,
                repository: &j.view.repository,
                run_id: j.view.run_id,
                run_attempt: j.view.run_attempt,
                name: &j.view.job_name,
                runner_name: j.github_runner.as_deref(),
                bound_elsewhere: j.bound_runner.as_deref().is_some_and(|b| b != name),
            })
            .collect();
        match binding::identify(&pending.received.identity, name, &candidates) {
            Identification::Job { id, how } => {
                if let Some(r) = self.runners.get_mut(name) {
                    r.pending = None;
                }
                self.bind(name, id, pending.received, how, out);
            }
            Identification::Unknown { why } => {
                if why != pending.last_why {
                    if let Some(p) = self.runners.get_mut(name).and_then(|r| r.pending.as_mut()) {
                        p.last_why = why.clone();
                    }
                    self.decide(
                        DecisionKind::Bind,
                        None,
                        format!("runner {name}: {why}"),
                        out,
                    );
                }
            }
        }
    }

    fn bind(
        &mut self,
        name: &str,
        id: JobId,
        received: ReceivedJob,
        how: String,
        out: &mut Vec<Effect>,
    ) {
        let intended = self.runners.get(name).and_then(|r| r.intended);
        if let Some(r) = self.runners.get_mut(name) {
            r.job = Some(id);
            r.intended = intended.filter(|i| *i == id);
        }
        self.emit_runner(name, out);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.bound_runner = Some(name.to_string());
        job.view.runner_name = Some(name.to_string());
        job.view.runner_was_other_jobs = intended != Some(id);
        let took = match intended {
            Some(i) if i != id => format!(
                "; the runner was registered for job {i}, which keeps its demand and gets another runner"
            ),
            _ => String::new(),
        };
        self.decide(
            DecisionKind::Bind,
            Some(id),
            format!("runner {name} received job {id}: {how}{took}"),
            out,
        );
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.view.state.is_final() {
            let reason = format!(
                "job {id} is already {} here; not starting a worker",
                job.view.state.as_str()
            );
            out.push(Effect::FinishJob {
                runner: name.to_string(),
                outcome: WorkerOutcome::Cancelled {
                    reason: reason.clone(),
                },
            });
            self.decide(DecisionKind::Bind, Some(id), reason, out);
            return;
        }
        let labels = job.view.labels.clone();
        match matching::match_job(&self.settings.workers, &labels) {
            MatchOutcome::Matched { entry, reason } => {
                job.worker_active = true;
                job.view.worker_entry = Some(entry);
                let view = job.view.clone();
                self.transition(
                    id,
                    JobInput::Assigned,
                    format!("runner {name} received it"),
                    out,
                );
                self.decide(
                    DecisionKind::Bind,
                    Some(id),
                    format!("job {id} runs worker[{entry}] chosen by its own labels: {reason}"),
                    out,
                );
                let job_env = vec![
                    ("MEGASCALER_JOB_ID".into(), id.to_string()),
                    ("MEGASCALER_JOB_REPOSITORY".into(), view.repository.clone()),
                    ("MEGASCALER_JOB_RUN_ID".into(), view.run_id.to_string()),
                    (
                        "MEGASCALER_JOB_RUN_ATTEMPT".into(),
                        view.run_attempt.to_string(),
                    ),
                    ("MEGASCALER_JOB_NAME".into(), view.job_name.clone()),
                    ("MEGASCALER_JOB_WORKFLOW".into(), view.workflow_name.clone()),
                    ("MEGASCALER_JOB_LABELS".into(), labels.join(",")),
                    ("MEGASCALER_JOB_RUNNER".into(), name.to_string()),
                    (
                        "MEGASCALER_JOB_URL".into(),
                        view.html_url.clone().unwrap_or_default(),
                    ),
                ];
                let api = crate::config::api_url_for(&self.settings.github_url);
                let context = crate::protocol::MegascalerContext {
                    job_id: id,
                    job_url: view.html_url.clone().unwrap_or_default(),
                    run_url: format!(
                        "{}/repos/{}/actions/runs/{}",
                        api.as_str().trim_end_matches('/'),
                        view.repository,
                        view.run_id
                    ),
                    labels: labels.clone(),
                    job_display_name: String::new(),
                };
                out.push(Effect::StartWorker(WorkerStart {
                    job: id,
                    runner: name.to_string(),
                    entry,
                    message: received.message,
                    job_env,
                    context,
                }));
            }
            MatchOutcome::Unmatched { reason } => {
                let reason = format!("runner {name} received job {id}, but {reason}");
                out.push(Effect::FinishJob {
                    runner: name.to_string(),
                    outcome: WorkerOutcome::Failed {
                        reason: reason.clone(),
                    },
                });
                self.transition(id, JobInput::FailedByMegascaler, reason, out);
            }
        }
    }

    pub(super) fn identify_timed_out(&mut self, name: &str, out: &mut Vec<Effect>) {
        let Some(p) = self.runners.get_mut(name).and_then(|r| r.pending.take()) else {
            return;
        };
        let reason = format!(
            "could not identify the job \"{}\" that runner {name} received within {:?}: {}; failing it",
            p.received.identity.job_display_name, self.settings.identify_timeout, p.last_why
        );
        tracing::warn!("{reason}");
        out.push(Effect::FinishJob {
            runner: name.to_string(),
            outcome: WorkerOutcome::Failed {
                reason: reason.clone(),
            },
        });
        self.decide(DecisionKind::Bind, None, reason, out);
    }

    pub(super) fn worker_started(
        &mut self,
        id: JobId,
        pid: Option<u32>,
        log_path: PathBuf,
        out: &mut Vec<Effect>,
    ) {
        if let Some(j) = self.jobs.get_mut(&id) {
            j.view.worker_pid = pid;
            j.view.log_path = Some(log_path);
        }
        let what = pid.map(|p| format!("pid {p}")).unwrap_or_default();
        self.transition(
            id,
            JobInput::WorkerStarted,
            format!("worker started ({what})"),
            out,
        );
    }

    pub(super) fn worker_exited(
        &mut self,
        id: JobId,
        outcome: WorkerOutcome,
        out: &mut Vec<Effect>,
    ) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.worker_active = false;
        job.view.worker_pid = None;
        let runner = job.bound_runner.clone();
        if let Some(runner) = runner {
            out.push(Effect::FinishJob {
                runner,
                outcome: public_outcome(&outcome),
            });
        }
        match outcome {
            WorkerOutcome::Reported => self.transition(
                id,
                JobInput::WorkerReported,
                "the worker exited 0 and reported the result".into(),
                out,
            ),
            WorkerOutcome::Failed { reason } => {
                self.transition(id, JobInput::FailedByMegascaler, reason, out)
            }
            WorkerOutcome::Cancelled { reason } => {
                self.transition(id, JobInput::CancelledByMegascaler, reason, out)
            }
        }
        if let Some(j) = self.jobs.get(&id) {
            if j.view.state == JobState::Failed {
                tracing::warn!(
                    job = id,
                    "job failed by megascaler: {}",
                    j.view.reason.as_deref().unwrap_or("")
                );
            }
        }
    }
}

/// What GitHub gets to see of an outcome: the first line of the reason only. The worker's last
/// output stays local (job view, job log): it may hold host paths or unmasked text, and GitHub
/// shows the reason to everyone who can read the run.
pub(super) fn public_outcome(outcome: &WorkerOutcome) -> WorkerOutcome {
    let summary = |reason: &str| {
        let first = reason.lines().next().unwrap_or_default();
        let first = first.strip_suffix("; last output:").unwrap_or(first);
        format!("{first} (the worker's output is in the job log on the megascaler host)")
    };
    match outcome {
        WorkerOutcome::Reported => WorkerOutcome::Reported,
        WorkerOutcome::Failed { reason } => WorkerOutcome::Failed {
            reason: summary(reason),
        },
        WorkerOutcome::Cancelled { reason } => WorkerOutcome::Cancelled {
            reason: summary(reason),
        },
    }
}
