//! Runners, their sessions and inboxes.
//!
//! Owns registering and deleting runners (an ephemeral runner is deleted by the service after
//! its job), opening and closing message sessions (a second session is a conflict), and which
//! message a poll answers with on the pipelines or the broker channel.

use super::{Agent, InboxKind, Session, World};
use crate::sim::config::BrokerMode;
use crate::sim::crypto::RunnerKey;
use crate::sim::model::{JobStatus, SimRunner};
use crate::sim::world::JobFlow;
use chrono::Utc;
use serde_json::json;

/// A new runner's registration data.
pub(crate) struct NewAgent {
    pub scope: String,
    pub name: String,
    pub labels: Vec<String>,
    pub ephemeral: bool,
    pub key: RunnerKey,
    pub version: String,
    pub os_description: String,
    pub runner_admin: bool,
}

/// Registration refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddError {
    NameExists,
}

/// Session refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionError {
    AgentNotFound,
    Conflict,
}

/// Where a poll came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    Pipelines,
    Broker,
}

/// A message as a poll answers it, before encryption.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub message_id: Option<u64>,
    pub message_type: &'static str,
    pub body: String,
}

impl World {
    pub fn add_agent(&mut self, new: NewAgent) -> Result<Agent, AddError> {
        let exists = self.agents.values().any(|a| {
            a.name.eq_ignore_ascii_case(&new.name) && a.scope.eq_ignore_ascii_case(&new.scope)
        });
        if exists {
            return Err(AddError::NameExists);
        }
        let id = self.next_id();
        let seq = self.next_id();
        let agent = Agent {
            id,
            name: new.name,
            labels: new.labels,
            ephemeral: new.ephemeral,
            scope: new.scope,
            client_id: uuid::Uuid::new_v4().to_string(),
            key: new.key,
            version: new.version,
            os_description: new.os_description,
            created_on: Utc::now(),
            seq,
            runner_admin: new.runner_admin,
            session: None,
            job: None,
            had_job: false,
            taken: Vec::new(),
            inbox: Default::default(),
            acknowledged: Vec::new(),
        };
        self.agents.insert(id, agent.clone());
        Ok(agent)
    }

    pub fn agent_by_name(&self, name: &str) -> Option<&Agent> {
        self.agents.values().find(|a| a.name == name)
    }

    /// Removes a runner, its session and its tokens. A job offered to it but not yet taken
    /// goes back to the queue (the service re-routes it).
    pub fn delete_agent(&mut self, id: u64) -> bool {
        let Some(agent) = self.agents.remove(&id) else {
            return false;
        };
        if let Some(session) = &agent.session {
            self.sessions.remove(session);
        }
        self.tokens.revoke_agent(id);
        if let Some(job) = agent.job {
            self.requeue_if_untaken(job, &agent);
        }
        self.try_assign();
        true
    }

    pub fn create_session(
        &mut self,
        agent_id: u64,
        broker: bool,
        owner_name: String,
    ) -> Result<Session, SessionError> {
        let agent = self
            .agents
            .get(&agent_id)
            .ok_or(SessionError::AgentNotFound)?;
        if agent.session.is_some() {
            return Err(SessionError::Conflict);
        }
        let key = if self.cfg.encrypt_messages && !broker {
            crate::sim::crypto::new_session_key()
        } else {
            None
        };
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            agent_id,
            broker,
            key,
            owner_name,
        };
        self.sessions.insert(session.id.clone(), session.clone());
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            agent.session = Some(session.id.clone());
        }
        self.try_assign();
        Ok(session)
    }

    /// Closes a session. A job offered over it but not taken goes back to the queue.
    pub fn delete_session(&mut self, session_id: &str) -> bool {
        let Some(session) = self.sessions.remove(session_id) else {
            return false;
        };
        let Some(agent) = self.agents.get_mut(&session.agent_id) else {
            return true;
        };
        agent.session = None;
        let agent = agent.clone();
        if let Some(job) = agent.job {
            self.requeue_if_untaken(job, &agent);
        }
        self.try_assign();
        true
    }

    /// The broker session of a runner (the broker knows the runner from its token).
    pub fn session_of_agent(&self, agent_id: u64) -> Option<&Session> {
        let id = self.agents.get(&agent_id)?.session.as_ref()?;
        self.sessions.get(id)
    }

    /// The message a poll on `channel` answers with, if any. Broker messages other than job
    /// requests are removed when delivered (the broker has no per-message delete).
    pub fn next_message(&mut self, agent_id: u64, channel: Channel) -> Option<Outgoing> {
        let migration_ids = self.cfg.migration_message_id;
        let broker_url = self.broker_url();
        let cancel_timeout = format_timespan(self.cfg.cancel_timeout);
        let run_service_url = self.run_service_url();
        let agent = self.agents.get(&agent_id)?;
        let front = agent.inbox.front()?.clone();
        let out = match front.kind {
            InboxKind::Cancel(job_id) => {
                let job = self.jobs.get(&job_id)?;
                let body =
                    json!({ "jobId": job.snapshot.orchestration_id, "timeout": cancel_timeout });
                if channel == Channel::Broker
                    && let Some(a) = self.agents.get_mut(&agent_id)
                {
                    a.inbox.pop_front();
                }
                Outgoing {
                    message_id: Some(front.id),
                    message_type: "JobCancellation",
                    body: body.to_string(),
                }
            }
            InboxKind::Job(job_id) => {
                let job = self.jobs.get(&job_id)?;
                match (job.flow, channel) {
                    (Some(JobFlow::Pipelines), Channel::Pipelines) => Outgoing {
                        message_id: Some(front.id),
                        message_type: "PipelineAgentJobRequest",
                        body: job.message.as_ref()?.to_string(),
                    },
                    (Some(JobFlow::RunService), Channel::Broker) => Outgoing {
                        message_id: Some(front.id),
                        message_type: "RunnerJobRequest",
                        body: json!({
                            "id": job.runner_request_id,
                            "runner_request_id": job.runner_request_id,
                            "run_service_url": run_service_url,
                            "billing_owner_id": "",
                            "should_acknowledge": true,
                        })
                        .to_string(),
                    },
                    (Some(JobFlow::RunService), Channel::Pipelines)
                        if self.cfg.broker == BrokerMode::MigrationMessage
                            && !front.migration_deleted =>
                    {
                        Outgoing {
                            message_id: migration_ids.then_some(front.id),
                            message_type: "BrokerMigration",
                            body: json!({ "brokerBaseUrl": broker_url }).to_string(),
                        }
                    }
                    _ => return None,
                }
            }
        };
        Some(out)
    }

    pub fn runner_snapshot(&self, agent: &Agent) -> SimRunner {
        SimRunner {
            id: agent.id,
            name: agent.name.clone(),
            labels: agent.labels.clone(),
            online: agent.session.is_some(),
            busy: agent.job.is_some_and(|j| {
                self.jobs
                    .get(&j)
                    .is_some_and(|job| job.snapshot.status != JobStatus::Completed)
            }),
            ephemeral: agent.ephemeral,
            scope: agent.scope.clone(),
            job: agent.job,
            had_job: agent.had_job,
            broker_session: agent
                .session
                .as_ref()
                .and_then(|s| self.sessions.get(s))
                .is_some_and(|s| s.broker),
            runner_admin: agent.runner_admin,
        }
    }

    pub fn runner_snapshots(&self) -> Vec<SimRunner> {
        self.agents
            .values()
            .map(|a| self.runner_snapshot(a))
            .collect()
    }
}

/// A .NET TimeSpan string, `[d.]hh:mm:ss`.
pub(crate) fn format_timespan(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86400, (s % 86400) / 3600, (s % 3600) / 60, s % 60);
    if days > 0 {
        format!("{days}.{h:02}:{m:02}:{sec:02}")
    } else {
        format!("{h:02}:{m:02}:{sec:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans_as_dotnet_writes_them() {
        assert_eq!(
            format_timespan(std::time::Duration::from_secs(300)),
            "00:05:00"
        );
        assert_eq!(
            format_timespan(std::time::Duration::from_secs(90061)),
            "1.01:01:01"
        );
    }
}
