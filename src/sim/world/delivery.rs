//! What a runner's polls deliver, and the run service's `acquirejob`.
//!
//! Owns choosing the message a poll answers with on the pipelines or the broker channel (job
//! requests, `BrokerMigration` stand-ins, `JobCancellation`, and any message a test injects),
//! and acquiring a `RunnerJobRequest` (§5.1), shared by `acquirejob` and the legacy pipelines
//! resource. A job the runner may not take is refused here, never handed out.

use super::{InboxKind, InboxMessage, JobFlow, TakeError, World};
use crate::sim::config::BrokerMode;
use serde_json::{Value, json};

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
    pub message_type: String,
    pub body: String,
}

/// Why a job could not be acquired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AcquireError {
    NotFound,
    AlreadyAcquired,
    /// The job was not offered to this runner ("job assignment is invalid").
    NotYours,
}

impl World {
    /// The message a poll on `channel` answers with: the first one in the inbox that this
    /// channel can deliver. v1 messages stay until deleted but are not redelivered at or below
    /// the client's `lastMessageId`; on the broker, job requests are delivered once per session
    /// and other messages are removed when delivered (the broker has no per-message delete).
    pub fn next_message(
        &mut self,
        agent_id: u64,
        channel: Channel,
        session_id: &str,
        last_message_id: Option<u64>,
    ) -> Option<Outgoing> {
        let inbox: Vec<InboxMessage> = self.agents.get(&agent_id)?.inbox.iter().cloned().collect();
        let (message, out) = inbox
            .into_iter()
            .filter(|m| {
                channel == Channel::Broker || last_message_id.is_none_or(|last| m.id > last)
            })
            .filter(|m| {
                channel == Channel::Pipelines
                    || m.broker_delivered_to.as_deref() != Some(session_id)
            })
            .find_map(|m| self.render(&m, channel).map(|o| (m, o)))?;
        if channel == Channel::Broker
            && let Some(a) = self.agents.get_mut(&agent_id)
        {
            if matches!(message.kind, InboxKind::Job(_)) {
                if let Some(m) = a.inbox.iter_mut().find(|m| m.id == message.id) {
                    m.broker_delivered_to = Some(session_id.to_string());
                }
            } else {
                a.inbox.retain(|m| m.id != message.id);
            }
        }
        Some(out)
    }

    fn render(&self, m: &InboxMessage, channel: Channel) -> Option<Outgoing> {
        let out = |message_id: Option<u64>, message_type: &str, body: String| Outgoing {
            message_id,
            message_type: message_type.to_string(),
            body,
        };
        match &m.kind {
            InboxKind::Other { message_type, body } => {
                Some(out(Some(m.id), message_type, body.clone()))
            }
            InboxKind::Cancel(job_id) => {
                let job = self.jobs.get(job_id)?;
                let timeout = format_timespan(self.cfg.cancel_timeout);
                let body = json!({ "jobId": job.snapshot.orchestration_id, "timeout": timeout });
                Some(out(Some(m.id), "JobCancellation", body.to_string()))
            }
            InboxKind::Job(job_id) => {
                let job = self.jobs.get(job_id)?;
                match (job.flow?, channel) {
                    (JobFlow::Pipelines, Channel::Pipelines) => Some(out(
                        Some(m.id),
                        "PipelineAgentJobRequest",
                        job.message.as_ref()?.to_string(),
                    )),
                    (JobFlow::RunService, Channel::Broker) => {
                        let url = if self.cfg.legacy_job_message {
                            String::new()
                        } else {
                            self.message_run_service_url()
                        };
                        let body = json!({
                            "id": job.runner_request_id,
                            "runner_request_id": job.runner_request_id,
                            "run_service_url": url,
                            "billing_owner_id": "",
                            "should_acknowledge": self.cfg.should_acknowledge,
                        });
                        Some(out(Some(m.id), "RunnerJobRequest", body.to_string()))
                    }
                    (JobFlow::RunService, Channel::Pipelines)
                        if self.cfg.broker == BrokerMode::MigrationMessage
                            && !m.migration_deleted =>
                    {
                        let id = self.cfg.migration_message_id.then_some(m.id);
                        let body = json!({ "brokerBaseUrl": self.broker_url() });
                        Some(out(id, "BrokerMigration", body.to_string()))
                    }
                    _ => None,
                }
            }
        }
    }

    /// Puts an arbitrary message into a runner's inbox (e.g. `AgentRefresh`,
    /// `ForceTokenRefresh`, an unknown type) so tests can check how runners handle it.
    pub fn push_message(&mut self, agent_id: u64, message_type: String, body: String) -> bool {
        let id = self.next_id();
        let Some(agent) = self.agents.get_mut(&agent_id) else {
            return false;
        };
        agent.inbox.push_back(InboxMessage {
            id,
            kind: InboxKind::Other { message_type, body },
            migration_deleted: false,
            broker_delivered_to: None,
        });
        true
    }

    /// Acquires a `RunnerJobRequest` for a runner: the job starts and its message is returned.
    pub fn acquire(
        &mut self,
        agent: u64,
        request: &str,
        endpoint: &str,
    ) -> Result<Value, AcquireError> {
        let job = self
            .jobs
            .values()
            .find(|j| !request.is_empty() && j.runner_request_id.eq_ignore_ascii_case(request))
            .map(|j| j.snapshot.id)
            .ok_or(AcquireError::NotFound)?;
        let acquired = self
            .jobs
            .get(&job)
            .is_some_and(|j| j.snapshot.runner_id.is_some());
        if acquired
            && self
                .agents
                .get(&agent)
                .is_some_and(|a| a.taken.contains(&job))
        {
            return Err(AcquireError::AlreadyAcquired);
        }
        match self.take(job, agent, endpoint) {
            Ok(()) => {}
            Err(TakeError::NotYours) => {
                let name = self.agents.get(&agent).map(|a| a.name.clone());
                self.violation(
                    endpoint,
                    name,
                    format!("acquired runner request {request} that was not offered to it"),
                );
                return Err(AcquireError::NotYours);
            }
            Err(_) => return Err(AcquireError::NotFound),
        }
        self.start(job);
        if let Some(a) = self.agents.get_mut(&agent) {
            a.inbox.retain(|m| m.kind != InboxKind::Job(job));
        }
        self.jobs
            .get(&job)
            .and_then(|j| j.message.clone())
            .ok_or(AcquireError::NotFound)
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
