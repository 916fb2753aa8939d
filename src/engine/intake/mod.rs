//! Intake: how jobs reach the engine (signed webhooks, REST polling), de-duplicated.
//!
//! Owns turning GitHub's JSON into [`ObservedJob`]s and counting deliveries. It decides
//! nothing about jobs: everything it learns becomes an [`Input`] for the dispatcher.

pub mod dedupe;
pub mod poller;
pub mod webhook;

use crate::engine::dispatch::{ObservedJob, ObservedStatus};
use crate::engine::event::IntakeStatus;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Mutex;

/// Intake health, shared by the listener, the poller and the driver (which shows it).
#[derive(Debug, Default)]
pub struct IntakeCounters {
    status: Mutex<IntakeStatus>,
}

impl IntakeCounters {
    /// Changes the status under the lock.
    pub fn update(&self, f: impl FnOnce(&mut IntakeStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// A copy of the status.
    pub fn snapshot(&self) -> IntakeStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn u64_of(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Reads a `workflow_job` object (webhook payload's `workflow_job`, or a REST job).
/// `status` overrides the object's own `status` (a webhook's `action` is more precise).
pub fn parse_job(job: &Value, repository: &str, status: Option<&str>) -> Option<ObservedJob> {
    let status_text = status
        .map(str::to_string)
        .or_else(|| str_of(job, "status"))?;
    let status = ObservedStatus::parse(&status_text)?;
    // The repository becomes a registration scope: only a plain `owner/repo` is accepted.
    let repository = crate::config::RepoName::parse(repository)?.full_name();
    let labels = job
        .get("labels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let created_at = str_of(job, "created_at")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    Some(ObservedJob {
        id: u64_of(job, "id")?,
        repository,
        run_id: u64_of(job, "run_id").unwrap_or_default(),
        run_attempt: u64_of(job, "run_attempt").unwrap_or(1),
        workflow_name: str_of(job, "workflow_name").unwrap_or_default(),
        name: str_of(job, "name").unwrap_or_default(),
        labels,
        status,
        conclusion: str_of(job, "conclusion"),
        runner_name: str_of(job, "runner_name").filter(|r| !r.is_empty()),
        html_url: str_of(job, "html_url"),
        created_at,
    })
}

/// Reads a `workflow_job` webhook payload.
pub fn parse_workflow_job_payload(payload: &Value) -> Option<ObservedJob> {
    let repository = payload
        .get("repository")
        .and_then(|r| r.get("full_name"))
        .and_then(Value::as_str)?;
    let action = payload.get("action").and_then(Value::as_str);
    parse_job(payload.get("workflow_job")?, repository, action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_payloads_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhooks/");
        for (file, status) in [
            ("workflow_job.05.queued.json", ObservedStatus::Queued),
            (
                "workflow_job.03.in_progress.json",
                ObservedStatus::InProgress,
            ),
            ("workflow_job.01.completed.json", ObservedStatus::Completed),
            ("workflow_job.07.waiting.json", ObservedStatus::Waiting),
        ] {
            let text = std::fs::read_to_string(format!("{dir}{file}")).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap();
            let job = parse_workflow_job_payload(&v).unwrap();
            assert_eq!(job.status, status, "{file}");
            assert!(
                job.id > 0 && job.run_id > 0 && !job.repository.is_empty(),
                "{file}"
            );
        }
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        for v in [
            serde_json::json!({}),
            serde_json::json!({"repository": {"full_name": 3}}),
            serde_json::json!({"repository": {"full_name": "o/r"}, "action": "queued", "workflow_job": {"id": "x"}}),
            serde_json::json!({"repository": {"full_name": "o/r"}, "action": "weird", "workflow_job": {"id": 1}}),
            // Not `owner/repo`: would become an org scope, or a path outside the repository.
            serde_json::json!({"repository": {"full_name": "myorg"}, "action": "queued", "workflow_job": {"id": 1}}),
            serde_json::json!({"repository": {"full_name": "o/r/../x"}, "action": "queued", "workflow_job": {"id": 1}}),
        ] {
            assert!(parse_workflow_job_payload(&v).is_none());
        }
    }
}
