//! Typed shapes of the REST responses megascaler reads (spec §3.2, §7.2–§7.4).
//!
//! Owns only deserialisation: every field GitHub's examples may lack is optional, and unknown
//! fields are ignored, so a response GitHub extends tomorrow still parses. No IO here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST …/actions/runners/registration-token` (or `remove-token`) → 201.
#[derive(Clone, Deserialize)]
pub struct RawRunnerToken {
    pub token: String,
    pub expires_at: DateTime<chrono::FixedOffset>,
}

/// A self-hosted runner as `GET {scope}/actions/runners` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RunnerInfo {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub os: Option<String>,
    /// `online` or `offline`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub busy: bool,
    #[serde(default)]
    pub ephemeral: Option<bool>,
    #[serde(default)]
    pub labels: Vec<RunnerLabel>,
}

/// One label of a listed runner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RunnerLabel {
    #[serde(default)]
    pub id: Option<u64>,
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RunnersPage {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub runners: Vec<RunnerInfo>,
}

/// A workflow run, the fields the poller needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WorkflowRun {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub run_attempt: Option<u64>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub repository: Option<RunRepository>,
}

/// The repository a run belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RunRepository {
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
}

/// One page of `GET /repos/{o}/{r}/actions/runs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WorkflowRunsPage {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub workflow_runs: Vec<WorkflowRun>,
}

/// A workflow job (REST `workflow_job`; the same fields as the webhook's, spec §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WorkflowJob {
    pub id: u64,
    pub run_id: u64,
    #[serde(default)]
    pub run_attempt: Option<u64>,
    #[serde(default)]
    pub run_url: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    /// `queued`, `in_progress`, `completed`, `waiting`, `requested`, `pending`.
    pub status: String,
    #[serde(default)]
    pub conclusion: Option<String>,
    pub name: String,
    #[serde(default)]
    pub workflow_name: Option<String>,
    #[serde(default)]
    pub head_branch: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub runner_id: Option<u64>,
    #[serde(default)]
    pub runner_name: Option<String>,
    #[serde(default)]
    pub runner_group_id: Option<u64>,
    #[serde(default)]
    pub runner_group_name: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct JobsPage {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub jobs: Vec<WorkflowJob>,
}

/// The answer to a conditional (`If-None-Match`) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional<T> {
    /// 304: nothing changed since the given ETag.
    NotModified,
    /// 200 with the new value and its ETag for the next request.
    Modified { value: T, etag: Option<String> },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/rest/examples/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn examples_parse() {
        let jobs: JobsPage = serde_json::from_str(&example(
            "actions__list-jobs-for-workflow-run.200.default.json",
        ))
        .unwrap();
        assert_eq!(jobs.jobs[0].id, 399444496);
        assert!(
            jobs.jobs[0].created_at.is_none(),
            "examples lack created_at"
        );
        let job: WorkflowJob = serde_json::from_str(&example(
            "actions__get-job-for-workflow-run.200.default.json",
        ))
        .unwrap();
        assert_eq!(job.run_id, 29679449);
        let runs: WorkflowRunsPage = serde_json::from_str(&example(
            "actions__list-workflow-runs-for-repo.200.default.json",
        ))
        .unwrap();
        assert_eq!(runs.workflow_runs[0].id, 30433642);
        assert_eq!(runs.workflow_runs[0].run_attempt, Some(1));
        let runners: RunnersPage = serde_json::from_str(&example(
            "actions__list-self-hosted-runners-for-repo.200.default.json",
        ))
        .unwrap();
        assert_eq!(runners.runners.len(), 2);
        assert!(runners.runners[0].busy);
        let tok: RawRunnerToken = serde_json::from_str(&example(
            "actions__create-registration-token-for-repo.201.default.json",
        ))
        .unwrap();
        assert_eq!(tok.expires_at.timestamp(), 1579724015);
    }
}
