//! Jobs and runs: queueing, GitHub's assignment, locks, completion, cancel and re-run.
//!
//! Owns the job state machine (queued → offered → in progress → completed) and the webhook
//! events each transition causes. A job goes to an idle online runner per `assign`; its lock
//! expires unless renewed (the job is then abandoned); an ephemeral runner is deleted after
//! its job ends; the one-job rule keeps a runner from ever getting a second job.

use super::{InboxKind, InboxMessage, Job, Run, World};
use crate::sim::assign::{Candidate, pick_runner};
use crate::sim::config::BrokerMode;
use crate::sim::message::{MessageInputs, build_job_message};
use crate::sim::model::{CompletionPath, JobSpec, JobStatus, SimJob};
use crate::sim::tokens::{Grant, after};
use crate::sim::webhook::WebhookEvent;
use chrono::{DateTime, Utc};

/// Which API family renews and completes a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobFlow {
    Pipelines,
    RunService,
}

/// Why a runner may not take, renew or complete a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TakeError {
    /// No such job (or it is over).
    NotFound,
    /// The job was not offered to this runner.
    NotYours,
    /// The job already ended.
    Completed,
}

/// Webhook/REST conclusion for a runner result (`succeeded`, `failed`, `canceled`…).
pub(crate) fn conclusion_for(result: &str) -> Option<&'static str> {
    match result.to_ascii_lowercase().as_str() {
        "succeeded" | "succeededwithissues" | "success" => Some("success"),
        "failed" | "failure" | "abandoned" => Some("failure"),
        "canceled" | "cancelled" => Some("cancelled"),
        "skipped" => Some("skipped"),
        _ => None,
    }
}

impl World {
    pub fn queue_job(&mut self, spec: JobSpec) -> u64 {
        let now = Utc::now();
        let run_id = match spec.run_id.filter(|r| self.runs.contains_key(r)) {
            Some(r) => r,
            None => {
                let id = spec.run_id.unwrap_or_else(|| self.next_id());
                self.runs.insert(
                    id,
                    Run {
                        id,
                        repository: spec.repository.clone(),
                        workflow_name: spec.workflow_name.clone(),
                        attempt: 1,
                        created_at: now,
                        head_sha: hex::encode(rand::random::<[u8; 20]>()),
                    },
                );
                id
            }
        };
        let attempt = self.runs.get(&run_id).map_or(1, |r| r.attempt);
        self.insert_job(spec, run_id, attempt, now)
    }

    pub(super) fn insert_job(
        &mut self,
        spec: JobSpec,
        run_id: u64,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> u64 {
        let id = self.next_id();
        let request_id = self.next_id();
        let snapshot = SimJob {
            id,
            run_id,
            run_attempt: attempt,
            repository: spec.repository,
            workflow_name: spec.workflow_name,
            job_name: spec.job_name,
            labels: spec.labels,
            status: JobStatus::Queued,
            conclusion: None,
            result: None,
            completed_via: None,
            offered_to: None,
            runner_id: None,
            runner_name: None,
            renewals: 0,
            locked_until: None,
            message_type: None,
            orchestration_id: uuid::Uuid::new_v4().to_string(),
            request_id,
            outputs: None,
            issues: Vec::new(),
            log: Vec::new(),
            created_at: now,
            started_at: None,
            completed_at: None,
        };
        self.jobs.insert(
            id,
            Job {
                snapshot: snapshot.clone(),
                script: spec.script,
                flow: None,
                plan_id: uuid::Uuid::new_v4().to_string(),
                timeline_id: uuid::Uuid::new_v4().to_string(),
                scope_identifier: uuid::Uuid::new_v4().to_string(),
                runner_request_id: uuid::Uuid::new_v4().to_string(),
                offered_to: None,
                job_token: None,
                message: None,
                cancel_deadline: None,
            },
        );
        self.emit_job("queued", id);
        self.try_assign();
        id
    }

    fn emit_job(&mut self, action: &'static str, job_id: u64) {
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        let head_sha = self
            .runs
            .get(&job.snapshot.run_id)
            .map(|r| r.head_sha.clone())
            .unwrap_or_default();
        let event = WebhookEvent::workflow_job(action, &job.snapshot, &self.base, &head_sha);
        self.emit(event);
    }

    /// Offers every queued, unoffered job to a runner per GitHub's rule, oldest job first.
    pub fn try_assign(&mut self) {
        let waiting: Vec<u64> = self
            .jobs
            .values()
            .filter(|j| j.snapshot.status == JobStatus::Queued && j.offered_to.is_none())
            .map(|j| j.snapshot.id)
            .collect();
        for job_id in waiting {
            let Some(job) = self.jobs.get(&job_id) else {
                continue;
            };
            let candidates: Vec<Candidate<'_>> = self
                .agents
                .values()
                .map(|a| Candidate {
                    id: a.id,
                    labels: &a.labels,
                    registered_seq: a.seq,
                    // A runner told to use the broker gets jobs only over a broker session.
                    online: a
                        .session
                        .as_ref()
                        .and_then(|s| self.sessions.get(s))
                        .is_some_and(|s| s.broker || !self.must_use_broker(a)),
                    busy: a.job.is_some(),
                    had_job: a.ephemeral && a.had_job,
                    scope: &a.scope,
                })
                .collect();
            let chosen = pick_runner(
                &job.snapshot.repository,
                &job.snapshot.labels,
                &candidates,
                self.cfg.assignment,
                |n| rand::random_range(0..n.max(1)),
            );
            if let Some(agent_id) = chosen {
                self.offer(job_id, agent_id);
            }
        }
    }

    /// Puts the job into the runner's inbox, with a fresh job token and lock. Also the test
    /// hook for offering a job against the rules (a second job to a one-job runner, §E16).
    pub fn offer(&mut self, job_id: u64, agent_id: u64) -> bool {
        let now = Utc::now();
        let Some(agent) = self.agents.get(&agent_id) else {
            return false;
        };
        let broker_session = agent
            .session
            .as_ref()
            .and_then(|s| self.sessions.get(s))
            .is_some_and(|s| s.broker);
        let flow = if broker_session || self.cfg.broker == BrokerMode::MigrationMessage {
            JobFlow::RunService
        } else {
            JobFlow::Pipelines
        };
        let agent_name = agent.name.clone();
        let Some(orch) = self.jobs.get(&job_id).map(|j| j.plan_id.clone()) else {
            return false;
        };
        let audience = self.base.to_string();
        let (token, _) = self.tokens.mint_jwt(
            Grant::Job { job_id },
            &audience,
            Some(format!("{orch}.{job_id}")),
            now,
            self.cfg.job_token_lifetime,
        );
        let message_id = self.next_id();
        let locked_until = after(now, self.cfg.lock_duration);
        let inputs = MessageInputs {
            base: self.base.clone(),
            tenant_url: self.tenant_url(),
            run_service_url: self.run_service_url(),
            plan_version: self.cfg.plan_version,
            check_run_id: self.cfg.check_run_id_in_message,
        };
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return false;
        };
        job.flow = Some(flow);
        job.offered_to = Some(agent_id);
        job.job_token = Some(token);
        job.snapshot.offered_to = Some(agent_name);
        job.snapshot.locked_until = Some(locked_until);
        job.snapshot.message_type = Some(
            match flow {
                JobFlow::Pipelines => "PipelineAgentJobRequest",
                JobFlow::RunService => "RunnerJobRequest",
            }
            .to_string(),
        );
        job.message = Some(build_job_message(&inputs, job));
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            agent.job = Some(job_id);
            agent.had_job = true;
            agent.inbox.push_back(InboxMessage {
                id: message_id,
                kind: InboxKind::Job(job_id),
                migration_deleted: false,
                broker_delivered_to: None,
            });
        }
        true
    }

    /// Takes back a job offered to a runner that went away before taking it.
    pub(super) fn requeue_if_untaken(&mut self, job_id: u64, agent: &super::Agent) {
        if agent.taken.contains(&job_id) {
            return;
        }
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        if job.snapshot.status != JobStatus::Queued || job.offered_to != Some(agent.id) {
            return;
        }
        job.offered_to = None;
        job.flow = None;
        job.message = None;
        job.snapshot.offered_to = None;
        job.snapshot.locked_until = None;
        job.snapshot.message_type = None;
        if let Some(token) = job.job_token.take() {
            self.tokens.expire_token(&token);
        }
        if let Some(a) = self.agents.get_mut(&agent.id) {
            a.job = None;
            a.inbox.retain(|m| m.kind != InboxKind::Job(job_id));
            // An offer that never reached the runner does not use up its one job.
            a.had_job = !a.taken.is_empty();
        }
    }

    /// The runner takes (acknowledges, acquires, renews) a job. Records a violation when a
    /// one-job runner takes a second job.
    pub fn take(&mut self, job_id: u64, agent_id: u64, endpoint: &str) -> Result<(), TakeError> {
        let job = self.jobs.get(&job_id).ok_or(TakeError::NotFound)?;
        if job.offered_to != Some(agent_id) {
            return Err(TakeError::NotYours);
        }
        if job.snapshot.status == JobStatus::Completed {
            return Err(TakeError::Completed);
        }
        let Some(agent) = self.agents.get_mut(&agent_id) else {
            return Err(TakeError::NotFound);
        };
        if agent.taken.contains(&job_id) {
            return Ok(());
        }
        // One job per ephemeral runner; one at a time for the others (maxParallelism 1).
        let ephemeral = agent.ephemeral;
        let earlier: Vec<u64> = agent.taken.clone();
        agent.taken.push(job_id);
        let second = earlier.iter().any(|j| {
            ephemeral
                || self
                    .jobs
                    .get(j)
                    .is_some_and(|j| j.snapshot.status != JobStatus::Completed)
        });
        if second {
            let Some(agent) = self.agents.get(&agent_id) else {
                return Ok(());
            };
            let name = agent.name.clone();
            let what = if ephemeral {
                "a one-job runner took a second job"
            } else {
                "a runner took a second job while busy"
            };
            self.violation(endpoint, Some(name), format!("{what} ({job_id})"));
        }
        Ok(())
    }

    /// Marks the job running on its runner (REST `in_progress`, webhook with runner).
    pub fn start(&mut self, job_id: u64) {
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        if job.snapshot.status != JobStatus::Queued {
            return;
        }
        let Some(agent) = job.offered_to.and_then(|a| self.agents.get(&a)) else {
            return;
        };
        let (id, name) = (agent.id, agent.name.clone());
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.snapshot.status = JobStatus::InProgress;
            job.snapshot.runner_id = Some(id);
            job.snapshot.runner_name = Some(name);
            job.snapshot.started_at = Some(Utc::now());
        }
        self.emit_job("in_progress", job_id);
    }

    /// Extends the lock; the first renewal of a v1 job starts it.
    pub fn renew(&mut self, job_id: u64) -> Result<DateTime<Utc>, TakeError> {
        let until = after(Utc::now(), self.cfg.lock_duration);
        let job = self.jobs.get_mut(&job_id).ok_or(TakeError::NotFound)?;
        if job.snapshot.status == JobStatus::Completed {
            return Err(TakeError::Completed);
        }
        job.snapshot.locked_until = Some(until);
        job.snapshot.renewals += 1;
        self.start(job_id);
        Ok(until)
    }

    /// Ends the job with a runner result; frees (and, if ephemeral, deletes) its runner.
    pub fn complete(
        &mut self,
        job_id: u64,
        result: &str,
        path: CompletionPath,
        outputs: Option<serde_json::Value>,
    ) -> Result<(), TakeError> {
        let now = Utc::now();
        // A job its runner took but never renewed still ran on that runner: `in_progress`
        // (with the runner) comes before `completed`, unlike a job cancelled while queued.
        let taken = self
            .jobs
            .get(&job_id)
            .and_then(|j| j.offered_to)
            .is_some_and(|a| {
                self.agents
                    .get(&a)
                    .is_some_and(|a| a.taken.contains(&job_id))
            });
        if taken {
            self.start(job_id);
        }
        let job = self.jobs.get_mut(&job_id).ok_or(TakeError::NotFound)?;
        if job.snapshot.status == JobStatus::Completed {
            return Err(TakeError::Completed);
        }
        job.snapshot.status = JobStatus::Completed;
        job.snapshot.result = Some(result.to_string());
        job.snapshot.conclusion = Some(conclusion_for(result).unwrap_or("failure").to_string());
        job.snapshot.completed_via = Some(path);
        job.snapshot.completed_at = Some(now);
        job.snapshot.outputs = outputs;
        let agent_id = job.offered_to;
        self.emit_job("completed", job_id);
        if let Some(agent_id) = agent_id
            && let Some(agent) = self.agents.get_mut(&agent_id)
        {
            agent.job = None;
            agent.inbox.retain(|m| match &m.kind {
                InboxKind::Job(j) | InboxKind::Cancel(j) => *j != job_id,
                InboxKind::Other { .. } => true,
            });
            if agent.ephemeral {
                self.delete_agent(agent_id);
            }
        }
        // A non-ephemeral runner is idle again.
        self.try_assign();
        Ok(())
    }

    /// Records issues and log lines reported for a job (kept after completion, for tests).
    pub fn note_job(&mut self, job_id: u64, issues: Vec<String>, log: Vec<String>) {
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.snapshot.issues.extend(issues);
            job.snapshot.log.extend(log);
        }
    }

    /// Abandons every job whose lock expired, and completes as cancelled every job whose
    /// runner did not finish it within the cancel timeout; true when anything changed.
    pub fn expire_locks(&mut self, now: DateTime<Utc>) -> bool {
        let open = || {
            self.jobs
                .values()
                .filter(|j| j.snapshot.status != JobStatus::Completed)
        };
        let cancelled: Vec<u64> = open()
            .filter(|j| j.cancel_deadline.is_some_and(|d| d <= now))
            .map(|j| j.snapshot.id)
            .collect();
        let expired: Vec<u64> = open()
            .filter(|j| j.snapshot.locked_until.is_some_and(|l| l <= now))
            .map(|j| j.snapshot.id)
            .filter(|id| !cancelled.contains(id))
            .collect();
        for id in &cancelled {
            let _ = self.complete(*id, "canceled", CompletionPath::Cancelled, None);
        }
        for id in &expired {
            let _ = self.complete(*id, "abandoned", CompletionPath::LockExpired, None);
        }
        !(expired.is_empty() && cancelled.is_empty())
    }
}
