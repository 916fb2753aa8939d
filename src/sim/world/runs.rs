//! Runs: cancelling a run (queued jobs end, running ones get `JobCancellation`) and
//! re-running a job as a new attempt.

use super::{InboxKind, InboxMessage, World};
use crate::sim::model::{CompletionPath, JobSpec, JobStatus};
use crate::sim::tokens::after;
use chrono::Utc;

impl World {
    /// Cancels a run: queued jobs end as cancelled; running ones get `JobCancellation`
    /// (with `force`, they also end as cancelled at once).
    pub fn cancel_run(&mut self, run_id: u64, force: bool) -> bool {
        if !self.runs.contains_key(&run_id) {
            return false;
        }
        let cancel_timeout = self.cfg.cancel_timeout;
        let ids: Vec<u64> = self
            .jobs
            .values()
            .filter(|j| j.snapshot.run_id == run_id && j.snapshot.status != JobStatus::Completed)
            .map(|j| j.snapshot.id)
            .collect();
        for id in ids {
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            let offered = job.offered_to;
            let untaken = offered
                .and_then(|a| self.agents.get(&a))
                .is_none_or(|a| !a.taken.contains(&id));
            if job.snapshot.status == JobStatus::Queued && untaken {
                if let Some(agent) = offered.and_then(|a| self.agents.get(&a)).cloned() {
                    self.requeue_if_untaken(id, &agent);
                }
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.offered_to = None;
                }
                let _ = self.complete(id, "canceled", CompletionPath::Cancelled, None);
                continue;
            }
            let message_id = self.next_id();
            if let Some(job) = self.jobs.get_mut(&id) {
                job.cancel_deadline = Some(after(Utc::now(), cancel_timeout));
            }
            if let Some(agent) = offered.and_then(|a| self.agents.get_mut(&a)) {
                agent.inbox.push_back(InboxMessage {
                    id: message_id,
                    kind: InboxKind::Cancel(id),
                    migration_deleted: false,
                    broker_delivered_to: None,
                });
            }
            if force {
                let _ = self.complete(id, "canceled", CompletionPath::Cancelled, None);
            }
        }
        true
    }

    /// Re-runs a completed job as a new attempt of its run; returns the new job id.
    pub fn rerun_job(&mut self, job_id: u64) -> Option<u64> {
        let job = self.jobs.get(&job_id)?;
        if job.snapshot.status != JobStatus::Completed {
            return None;
        }
        let spec = JobSpec {
            repository: job.snapshot.repository.clone(),
            labels: job.snapshot.labels.clone(),
            workflow_name: job.snapshot.workflow_name.clone(),
            job_name: job.snapshot.job_name.clone(),
            run_id: Some(job.snapshot.run_id),
            script: job.script.clone(),
        };
        let run = self.runs.get_mut(&spec.run_id?)?;
        run.attempt += 1;
        let (run_id, attempt) = (run.id, run.attempt);
        Some(self.insert_job(spec, run_id, attempt, Utc::now()))
    }
}
