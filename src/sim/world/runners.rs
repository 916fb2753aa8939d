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
        if let Some(problem) = new.key.encoding_problem() {
            let endpoint = if new.runner_admin {
                crate::sim::endpoint::ADMIN_REGISTER
            } else {
                crate::sim::endpoint::AGENTS_ADD
            };
            self.violation(endpoint, Some(new.name.clone()), problem);
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
            deleted_messages: Vec::new(),
            assertion_alg: None,
        };
        self.agents.insert(id, agent.clone());
        Ok(agent)
    }

    /// Replaces a registration in place (`PUT agents/{id}`): same id, new name, labels and
    /// key; its session ends and an offer it never took goes back to the queue.
    pub fn replace_agent(&mut self, id: u64, new: NewAgent) -> Result<Agent, AddError> {
        let clash = self.agents.values().any(|a| {
            a.id != id
                && a.name.eq_ignore_ascii_case(&new.name)
                && a.scope.eq_ignore_ascii_case(&new.scope)
        });
        if clash {
            return Err(AddError::NameExists);
        }
        let Some(old) = self.agents.get(&id).cloned() else {
            return Err(AddError::NameExists);
        };
        if let Some(session) = &old.session {
            self.delete_session(session);
        }
        let seq = self.next_id();
        let Some(agent) = self.agents.get_mut(&id) else {
            return Err(AddError::NameExists);
        };
        agent.name = new.name;
        agent.labels = new.labels;
        agent.ephemeral = new.ephemeral;
        agent.key = new.key;
        agent.version = new.version;
        agent.os_description = new.os_description;
        agent.seq = seq;
        let agent = agent.clone();
        self.try_assign();
        Ok(agent)
    }

    /// The runner was told to use the broker: `UseV2Flow`+`ServerUrlV2` on the agent, or it
    /// registered through the runner-admin flow ("runner admin implies broker", §3.6).
    pub fn must_use_broker(&self, agent: &Agent) -> bool {
        use crate::sim::config::BrokerMode;
        agent.runner_admin
            || matches!(
                self.cfg.broker,
                BrokerMode::AgentProperties | BrokerMode::SessionMigration
            )
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
        // Following a `brokerMigrationMessage`, the broker session replaces the v1 one.
        let migrating = broker
            && self.cfg.broker == crate::sim::config::BrokerMode::SessionMigration
            && agent
                .session
                .as_ref()
                .and_then(|s| self.sessions.get(s))
                .is_some_and(|s| !s.broker);
        if migrating && let Some(old) = agent.session.clone() {
            self.delete_session(&old);
        }
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
            last_seen: Utc::now(),
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

    /// Notes a poll on a session (it is alive).
    pub fn touch_session(&mut self, session_id: &str) {
        if let Some(s) = self.sessions.get_mut(session_id) {
            s.last_seen = Utc::now();
        }
    }

    /// Drops sessions nobody polled for `session_idle_timeout` (a runner that went away without
    /// deleting its session); their untaken offers go back to the queue. True when any went.
    pub fn expire_sessions(&mut self, now: chrono::DateTime<Utc>) -> bool {
        let Some(timeout) = self.cfg.session_idle_timeout else {
            return false;
        };
        let stale: Vec<String> = self
            .sessions
            .values()
            .filter(|s| crate::sim::tokens::after(s.last_seen, timeout) <= now)
            .map(|s| s.id.clone())
            .collect();
        for id in &stale {
            self.delete_session(id);
        }
        !stale.is_empty()
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
