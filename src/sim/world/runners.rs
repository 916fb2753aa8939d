//! Runners, their sessions and inboxes.
//!
//! Owns registering and deleting runners (an ephemeral runner is deleted by the service after
//! its job), and opening and closing message sessions (a second session is a conflict).

use super::{Agent, Session, World};
use crate::sim::crypto::RunnerKey;
use crate::sim::model::{JobStatus, SimRunner};
use chrono::Utc;

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
            assertion_alg: None,
        };
        self.agents.insert(id, agent.clone());
        Ok(agent)
    }

    pub fn agent_by_name(&self, name: &str) -> Option<&Agent> {
        self.agents.values().find(|a| a.name == name)
    }

    /// Removes a runner and its session. A job offered to it but not yet taken goes back to
    /// the queue (the service re-routes it). Its OAuth tokens stay syntactically valid until
    /// they expire, so its calls fail with "runner not found" (E10, E13), as on GitHub.
    pub fn delete_agent(&mut self, id: u64) -> bool {
        let Some(agent) = self.agents.remove(&id) else {
            return false;
        };
        if let Some(session) = &agent.session {
            self.sessions.remove(session);
        }
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
            assertion_alg: agent.assertion_alg.clone(),
        }
    }

    pub fn runner_snapshots(&self) -> Vec<SimRunner> {
        self.agents
            .values()
            .map(|a| self.runner_snapshot(a))
            .collect()
    }
}
