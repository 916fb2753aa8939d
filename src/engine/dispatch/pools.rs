//! Dispatcher: reconciliation glue — builds the pools for [`crate::engine::reconcile`] from the
//! state and applies its actions (register, remove, hand a runner to another job, wait).

use super::{Dispatcher, Effect, RunnerRecord, RunnerStatus};
use crate::engine::event::{DecisionKind, JobId, JobState};
use crate::engine::jobs::JobInput;
use crate::engine::matching::LabelKey;
use crate::engine::reconcile::{self, Action, IdleRunner, Limits, Pool};
use crate::protocol::api::RunnerRequest;
use std::collections::{BTreeMap, HashSet};

impl Dispatcher {
    pub(super) fn reconcile(&mut self, out: &mut Vec<Effect>) {
        let mut pool_index: BTreeMap<(String, LabelKey), usize> = BTreeMap::new();
        let mut pools: Vec<Pool> = Vec::new();
        let mut pool_labels: Vec<(String, Vec<String>)> = Vec::new();
        for j in self.jobs.values().filter(|j| j.needs_runner()) {
            let k = (j.view.repository.clone(), j.key.clone());
            let i = *pool_index.entry(k.clone()).or_insert_with(|| {
                pools.push(Pool {
                    entry: j.entry.unwrap_or_default(),
                    waiting: vec![],
                    idle: vec![],
                    backing_off: self.backoff.contains_key(&k),
                });
                pool_labels.push((j.view.repository.clone(), j.view.labels.clone()));
                pools.len() - 1
            });
            pools[i].waiting.push(j.view.id);
        }
        // A runner GitHub already reports as busy is not idle, even before it tells us.
        let taken: HashSet<&str> = self
            .jobs
            .values()
            .filter_map(|j| j.github_runner.as_deref())
            .collect();
        for r in self
            .runners
            .values()
            .filter(|r| r.idle() && !taken.contains(r.name.as_str()))
        {
            let k = (r.repository.clone(), r.key.clone());
            let i = *pool_index.entry(k).or_insert_with(|| {
                pools.push(Pool {
                    entry: r.entry,
                    waiting: vec![],
                    idle: vec![],
                    backing_off: false,
                });
                pool_labels.push((r.repository.clone(), r.labels.clone()));
                pools.len() - 1
            });
            pools[i].idle.push(IdleRunner {
                name: r.name.clone(),
                intended: r.intended,
            });
        }
        let mut in_use_per_entry = vec![0; self.settings.workers.len()];
        for r in self.runners.values() {
            let entry = r
                .job
                .and_then(|j| self.jobs.get(&j))
                .and_then(|j| j.entry)
                .unwrap_or(r.entry);
            if let Some(n) = in_use_per_entry.get_mut(entry) {
                *n += 1;
            }
        }
        let limits = Limits {
            max_parallel: self.settings.max_parallel,
            entry_max: self.settings.workers.iter().map(|w| w.max).collect(),
            in_use: self.runners.len(),
            in_use_per_entry,
            paused: self.paused,
        };
        for action in reconcile::reconcile(&pools, &limits) {
            match action {
                Action::Register { pool, job, reason } => {
                    let (repository, labels) = pool_labels[pool].clone();
                    self.register(repository, labels, pools[pool].entry, job, reason, out);
                }
                Action::Remove { runner, reason } => self.stop_runner(&runner, reason, out),
                Action::Intend { runner, job } => {
                    if let Some(r) = self.runners.get_mut(&runner) {
                        r.intended = Some(job);
                    }
                    self.emit_runner(&runner, out);
                    self.transition(
                        job,
                        JobInput::RunnerIntended,
                        format!("idle runner {runner} now stands for this job"),
                        out,
                    );
                }
                Action::Wait { job, reason } => self.keep_waiting(job, reason, out),
            }
        }
    }

    fn keep_waiting(&mut self, job: JobId, reason: String, out: &mut Vec<Effect>) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        match j.view.state {
            JobState::WaitingForRunner if j.view.reason.as_deref() != Some(reason.as_str()) => {
                j.view.reason = Some(reason.clone());
                self.decide(
                    DecisionKind::Reconcile,
                    Some(job),
                    format!("job {job} waits for a runner: {reason}"),
                    out,
                );
                self.emit_job(job, out);
            }
            JobState::Queued | JobState::RunnerRegistered => {
                self.transition(job, JobInput::RunnerWanted, reason, out)
            }
            _ => {}
        }
    }

    fn register(
        &mut self,
        repository: String,
        labels: Vec<String>,
        entry: usize,
        job: JobId,
        reason: String,
        out: &mut Vec<Effect>,
    ) {
        let name = format!(
            "{}{}",
            self.settings.runner_name_prefix,
            uuid::Uuid::new_v4()
        );
        // Intake only accepts `owner/repo` names, so this is always a repository scope (never an
        // org or enterprise one), and a GHES path prefix is kept.
        let Some(repo) = crate::config::RepoName::parse(&repository) else {
            return;
        };
        let scope =
            crate::github::Scope::repository(&self.settings.github_url, &repo.owner, &repo.repo);
        let Ok(scope_url) = url::Url::parse(&scope.url) else {
            return;
        };
        let key = crate::engine::matching::label_key(&labels);
        self.runners.insert(
            name.clone(),
            RunnerRecord {
                name: name.clone(),
                repository,
                key,
                labels: labels.clone(),
                entry,
                intended: Some(job),
                job: None,
                status: RunnerStatus::Registering,
                registered_at: self.now,
                pending: None,
            },
        );
        out.push(Effect::RegisterRunner(RunnerRequest {
            scope_url,
            labels: labels.clone(),
            name: name.clone(),
        }));
        self.decide(
            DecisionKind::Reconcile,
            Some(job),
            format!(
                "registering runner {name} with labels [{}]: {reason}",
                labels.join(", ")
            ),
            out,
        );
        self.emit_runner(&name, out);
        self.transition(
            job,
            JobInput::RunnerIntended,
            format!("runner {name} is being registered for it"),
            out,
        );
    }
}
