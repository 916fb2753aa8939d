//! Dispatcher: what webhooks and polls report (jobs and listed runners).

use super::{
    Dispatcher, Effect, JobRecord, ListedRunner, ObservedJob, ObservedStatus, RestCall, Source,
};
use crate::engine::event::{DecisionKind, JobState, JobView};
use crate::engine::jobs::JobInput;
use crate::engine::matching::{self, MatchOutcome};

impl Dispatcher {
    pub(super) fn observed(&mut self, o: ObservedJob, source: Source, out: &mut Vec<Effect>) {
        let id = o.id;
        if !self.jobs.contains_key(&id) {
            if o.status == ObservedStatus::Completed {
                // A job we never knew finished: nothing to do and nothing to show.
                return;
            }
            self.new_job(&o, source, out);
        }
        let ours = |name: &str| name.starts_with(&self.settings.runner_name_prefix);
        match o.status {
            ObservedStatus::Queued => {
                if let Some(j) = self.jobs.get_mut(&id) {
                    if j.awaiting_approval {
                        j.awaiting_approval = false;
                        self.decide(
                            DecisionKind::Intake,
                            Some(id),
                            format!("job {id} was approved and is queued ({})", source.as_str()),
                            out,
                        );
                    }
                }
            }
            ObservedStatus::Waiting => {}
            ObservedStatus::InProgress => {
                let Some(runner) = o.runner_name.clone().filter(|r| !r.is_empty()) else {
                    return;
                };
                let Some(j) = self.jobs.get_mut(&id) else {
                    return;
                };
                if j.github_runner.as_deref() == Some(runner.as_str()) {
                    return;
                }
                j.github_runner = Some(runner.clone());
                if j.view.runner_name.is_none() {
                    j.view.runner_name = Some(runner.clone());
                }
                let whose = if ours(&runner) {
                    "one of ours"
                } else {
                    "not one of megascaler's"
                };
                self.decide(
                    DecisionKind::Intake,
                    Some(id),
                    format!(
                        "{} says runner {runner} ({whose}) took job {id}",
                        source.as_str()
                    ),
                    out,
                );
                self.transition(
                    id,
                    JobInput::Assigned,
                    format!("GitHub assigned it to runner {runner}"),
                    out,
                );
            }
            ObservedStatus::Completed => {
                let conclusion = o.conclusion.clone();
                if let Some(j) = self.jobs.get_mut(&id) {
                    if j.view.conclusion.is_none() && conclusion.is_some() {
                        j.view.conclusion = conclusion.clone();
                        if j.view.state.is_final() {
                            self.emit_job(id, out);
                        }
                    }
                }
                self.transition(
                    id,
                    JobInput::CompletedByGitHub {
                        conclusion: conclusion.clone(),
                    },
                    format!(
                        "{} reports it completed ({})",
                        source.as_str(),
                        conclusion.as_deref().unwrap_or("no conclusion")
                    ),
                    out,
                );
            }
        }
    }

    fn new_job(&mut self, o: &ObservedJob, source: Source, out: &mut Vec<Effect>) {
        let id = o.id;
        let view = JobView {
            id,
            repository: o.repository.clone(),
            run_id: o.run_id,
            run_attempt: o.run_attempt,
            workflow_name: o.workflow_name.clone(),
            job_name: o.name.clone(),
            labels: o.labels.clone(),
            state: JobState::Queued,
            conclusion: None,
            reason: Some(format!("seen by {}", source.as_str())),
            runner_name: None,
            runner_was_other_jobs: false,
            worker_entry: None,
            worker_pid: None,
            log_path: None,
            html_url: o.html_url.clone(),
            queued_at: o.created_at.unwrap_or(self.now),
            started_at: None,
            finished_at: None,
        };
        let outcome = matching::match_job(&self.settings.workers, &o.labels);
        self.jobs.insert(
            id,
            JobRecord {
                view,
                key: matching::label_key(&o.labels),
                entry: outcome.entry(),
                awaiting_approval: o.status == ObservedStatus::Waiting,
                github_runner: None,
                bound_runner: None,
                worker_active: false,
            },
        );
        self.decide(
            DecisionKind::Intake,
            Some(id),
            format!(
                "{} reported job {id} \"{}\" of {} run {} with labels [{}]",
                source.as_str(),
                o.name,
                o.repository,
                o.run_id,
                o.labels.join(", ")
            ),
            out,
        );
        self.emit_job(id, out);
        self.decide(
            DecisionKind::Match,
            Some(id),
            format!("job {id}: {}", outcome.reason()),
            out,
        );
        match outcome {
            MatchOutcome::Matched { reason, .. } => {
                let reason = if o.status == ObservedStatus::Waiting {
                    format!("{reason}; waiting for approval before it can run")
                } else {
                    reason
                };
                self.transition(id, JobInput::Matched, reason, out)
            }
            MatchOutcome::Unmatched { reason } => {
                self.transition(id, JobInput::Unmatched, reason, out)
            }
        }
    }

    pub(super) fn runners_listed(
        &mut self,
        repository: &str,
        runners: Vec<ListedRunner>,
        out: &mut Vec<Effect>,
    ) {
        for r in runners {
            if !r.name.starts_with(&self.settings.runner_name_prefix)
                || self.runners.contains_key(&r.name)
                || self.orphans_deleted.contains(&r.name)
            {
                continue;
            }
            if r.busy {
                // Removing a busy runner is refused by GitHub and would kill someone's job.
                continue;
            }
            self.orphans_deleted.insert(r.name.clone());
            self.decide(
                DecisionKind::Reconcile,
                None,
                format!(
                    "runner {} in {repository} has megascaler's prefix but nothing here owns it; removing it",
                    r.name
                ),
                out,
            );
            out.push(Effect::Rest(RestCall::DeleteRunner {
                repository: repository.to_string(),
                id: r.id,
                name: r.name,
            }));
        }
    }
}
