//! Dispatcher: commands from the dashboard and tests, and graceful shutdown.

use super::{Dispatcher, Effect, RestCall};
use crate::engine::event::{Command, DecisionKind, Event, JobId, JobState};
use crate::protocol::api::WorkerOutcome;

impl Dispatcher {
    pub(super) fn command(&mut self, c: Command, out: &mut Vec<Effect>) {
        match c {
            Command::CancelJob(id) => self.cancel_job(id, out),
            Command::ForceCancelJob(id) => self.rest_on_run(id, true, out),
            Command::KillWorker(id) => {
                if self.jobs.get(&id).is_some_and(|j| j.worker_active) {
                    self.decide(
                        DecisionKind::Command,
                        Some(id),
                        format!(
                            "killing the worker of job {id} now (SIGKILL to its process group)"
                        ),
                        out,
                    );
                    out.push(Effect::KillWorker { job: id });
                } else {
                    self.refuse(id, "kill", "it has no running worker", out);
                }
            }
            Command::Redispatch(id) => self.redispatch(id, out),
            Command::PauseIntake => {
                self.paused = true;
                self.decide(DecisionKind::Command, None, "intake paused: no new runners are registered; registered runners keep their jobs".into(), out);
            }
            Command::ResumeIntake => {
                if !self.shutting_down {
                    self.paused = false;
                    self.decide(DecisionKind::Command, None, "intake resumed".into(), out);
                }
            }
            Command::Shutdown => self.begin_shutdown(out),
        }
    }

    fn refuse(&self, id: JobId, what: &str, why: &str, out: &mut Vec<Effect>) {
        self.decide(
            DecisionKind::Command,
            Some(id),
            format!("{what} job {id} refused: {why}"),
            out,
        );
    }

    fn cancel_job(&mut self, id: JobId, out: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get(&id) else {
            return self.refuse(id, "cancel", "unknown job", out);
        };
        if job.worker_active {
            let grace = self.settings.cancel_grace;
            self.decide(DecisionKind::Command, Some(id), format!("cancelling the worker of job {id}: CancelRequest frame, grace {grace:?}, then SIGINT, SIGTERM, SIGKILL"), out);
            out.push(Effect::CancelWorker { job: id, grace });
            return;
        }
        if let Some(runner) = job.bound_runner.clone() {
            return self.cancel_on_runner(
                &runner,
                self.settings.cancel_grace,
                "cancelled by command",
                out,
            );
        }
        if job.view.state.is_final() {
            return self.refuse(
                id,
                "cancel",
                &format!("it is already {}", job.view.state.as_str()),
                out,
            );
        }
        self.rest_on_run(id, false, out);
    }

    fn rest_on_run(&mut self, id: JobId, force: bool, out: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get(&id) else {
            return self.refuse(id, "cancel", "unknown job", out);
        };
        let (repository, run_id) = (job.view.repository.clone(), job.view.run_id);
        let what = if force { "force-cancel" } else { "cancel" };
        self.decide(
            DecisionKind::Command,
            Some(id),
            format!("job {id}: REST {what} of run {run_id} in {repository}"),
            out,
        );
        out.push(Effect::Rest(if force {
            RestCall::ForceCancelRun { repository, run_id }
        } else {
            RestCall::CancelRun { repository, run_id }
        }));
    }

    fn redispatch(&mut self, id: JobId, out: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get(&id) else {
            return self.refuse(id, "re-dispatch", "unknown job", out);
        };
        if job.view.state.is_final() && job.view.state != JobState::Unmatched {
            let repository = job.view.repository.clone();
            self.decide(
                DecisionKind::Command,
                Some(id),
                format!("job {id} is finished: REST re-run of the job"),
                out,
            );
            out.push(Effect::Rest(RestCall::RerunJob {
                repository,
                job: id,
            }));
            return;
        }
        if !job.needs_runner() {
            let why = format!(
                "it is {} (only a job still waiting for a runner gets a fresh one)",
                job.view.state.as_str()
            );
            return self.refuse(id, "re-dispatch", &why, out);
        }
        let old: Vec<String> = self
            .runners
            .values()
            .filter(|r| r.idle() && r.intended == Some(id))
            .map(|r| r.name.clone())
            .collect();
        self.decide(
            DecisionKind::Command,
            Some(id),
            format!(
                "re-dispatching job {id}: a fresh runner replaces {}",
                if old.is_empty() {
                    "none".to_string()
                } else {
                    old.join(", ")
                }
            ),
            out,
        );
        for name in old {
            if let Some(r) = self.runners.get_mut(&name) {
                r.intended = None;
            }
            self.stop_runner(&name, format!("re-dispatch of job {id}"), out);
        }
        // Redispatching is how a person clears a back-off too.
        if let Some(j) = self.jobs.get(&id) {
            self.backoff
                .remove(&(j.view.repository.clone(), j.key.clone()));
        }
    }

    fn begin_shutdown(&mut self, out: &mut Vec<Effect>) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.paused = true;
        let running: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.worker_active)
            .map(|j| j.view.id)
            .collect();
        let message = format!(
            "shutting down: intake stopped, {} idle runner(s) removed, {} running worker(s) cancelled (grace {:?}, then SIGINT, SIGTERM, SIGKILL) and their jobs completed",
            self.runners.values().filter(|r| r.idle()).count(),
            running.len(),
            self.settings.cancel_grace
        );
        tracing::info!("{message}");
        out.push(Effect::Emit(Event::ShuttingDown { message }));
        let names: Vec<String> = self.runners.keys().cloned().collect();
        for name in names {
            let Some(r) = self.runners.get(&name) else {
                continue;
            };
            if r.idle() {
                self.stop_runner(&name, "megascaler is shutting down".into(), out);
            } else if r.pending.is_some() {
                if let Some(r) = self.runners.get_mut(&name) {
                    r.pending = None;
                }
                out.push(Effect::FinishJob {
                    runner: name.clone(),
                    outcome: WorkerOutcome::Cancelled {
                        reason: "megascaler shut down before the job's worker started".into(),
                    },
                });
            }
        }
        let grace = self.settings.cancel_grace;
        for job in running {
            out.push(Effect::CancelWorker { job, grace });
        }
    }
}
