//! Completing a job megascaler must report itself, because its worker could not (spec §5.5).
//!
//! Owns the flow-appropriate completion: run service `completejob` (job token, lower-case
//! conclusion, the reason as an annotation); v1 plan version 8 and above: the `JobCompleted`
//! plan event (job token); below 8: finishing the job request (runner token). For v1 the reason
//! is also written to the job's timeline record as an error issue. Never logs a token.

use super::api::JobFlow;
use super::http::{self, Auth, Call, CallError};
use super::job::{JobInfo, decode_err, run_service_base};
use super::location::{self, Locations, ids};
use crate::secret::Secret;
use chrono::Utc;
use reqwest::Method;
use serde_json::json;

/// The result megascaler reports itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnResult {
    Failed,
    Canceled,
    /// The job's lock was lost before the worker ended (spec E24).
    Abandoned,
}

impl OwnResult {
    /// Wire form: lower-case TaskResult names (the run service requires lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            OwnResult::Failed => "failed",
            OwnResult::Canceled => "canceled",
            OwnResult::Abandoned => "abandoned",
        }
    }
}

/// Completes the job flow-appropriately (spec §5.5), with `reason` in the job's log where the
/// flow allows: a run-service annotation, or an issue on the v1 timeline's job record.
pub async fn complete(
    client: &reqwest::Client,
    info: &JobInfo,
    listener_loc: Option<(&Locations, u64)>,
    runner_token: &Secret,
    result: OwnResult,
    reason: &str,
) -> Result<(), CallError> {
    match info.flow {
        JobFlow::RunService => {
            let base = run_service_base(info)
                .ok_or_else(|| decode_err("completejob", "no run service url"))?;
            let token = info
                .job_token
                .as_ref()
                .ok_or_else(|| decode_err("completejob", "no job token"))?;
            let mut body = json!({
                "planId": info.plan_id,
                "jobId": info.job_id,
                "conclusion": result.as_str(),
                "annotations": [ { "level": "failure", "message": reason, "path": "", "title": "megascaler" } ],
            });
            if let Some(b) = &info.billing_owner_id {
                body["billingOwnerId"] = json!(b);
            }
            http::execute(
                client,
                Call {
                    what: "completejob",
                    method: Method::POST,
                    url: http::join_segment(base, "completejob"),
                    api_version: None,
                    auth: Auth::Bearer(token),
                    body: Some(&body),
                    timeout: None,
                },
            )
            .await
            .map(|_| ())
        }
        JobFlow::Pipelines => {
            if let Err(e) = report_issue_v1(client, info, result, reason).await {
                tracing::warn!(error = %e, "could not write the reason to the job's timeline");
            }
            if info.plan_version >= 8 {
                plan_event_completed(client, info, result).await
            } else {
                finish_request(client, info, listener_loc, runner_token, result).await
            }
        }
    }
}

async fn job_locations(client: &reqwest::Client, info: &JobInfo) -> Result<Locations, CallError> {
    let base = info
        .system_vss_url
        .as_deref()
        .ok_or_else(|| decode_err("job", "no SystemVssConnection url"))?;
    let token = info
        .job_token
        .as_ref()
        .ok_or_else(|| decode_err("job", "no job token"))?;
    location::fetch(client, base, token).await
}

async fn plan_event_completed(
    client: &reqwest::Client,
    info: &JobInfo,
    result: OwnResult,
) -> Result<(), CallError> {
    let loc = job_locations(client, info).await?;
    let token = info
        .job_token
        .as_ref()
        .ok_or_else(|| decode_err("plan event", "no job token"))?;
    let url = loc
        .url(
            ids::PLAN_EVENTS,
            &[
                ("scopeIdentifier", &info.scope_identifier),
                ("hubName", &info.plan_type),
                ("planId", &info.plan_id),
            ],
        )
        .ok_or_else(|| decode_err("plan event", "no plan events location"))?;
    let body = json!({
        "name": "JobCompleted",
        "jobId": info.job_id,
        "requestId": info.request_id.unwrap_or(0),
        "result": result.as_str(),
    });
    http::execute(
        client,
        Call {
            what: "plan event JobCompleted",
            method: Method::POST,
            url,
            api_version: Some("2.0-preview.1"),
            auth: Auth::Bearer(token),
            body: Some(&body),
            timeout: None,
        },
    )
    .await
    .map(|_| ())
}

async fn finish_request(
    client: &reqwest::Client,
    info: &JobInfo,
    listener_loc: Option<(&Locations, u64)>,
    runner_token: &Secret,
    result: OwnResult,
) -> Result<(), CallError> {
    let (loc, pool) = listener_loc.ok_or_else(|| decode_err("finish job request", "no pool"))?;
    let request_id = info
        .request_id
        .ok_or_else(|| decode_err("finish job request", "no requestId"))?;
    let url = loc
        .url(
            ids::JOB_REQUESTS,
            &[
                ("poolId", &pool.to_string()),
                ("requestId", &request_id.to_string()),
            ],
        )
        .ok_or_else(|| decode_err("finish job request", "no job requests location"))?;
    let body = json!({
        "requestId": request_id,
        "finishTime": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "result": result.as_str(),
    });
    http::execute(
        client,
        Call {
            what: "finish job request",
            method: Method::PATCH,
            url: format!("{url}?lockToken=00000000-0000-0000-0000-000000000000"),
            api_version: Some("5.1-preview.1"),
            auth: Auth::Bearer(runner_token),
            body: Some(&body),
            timeout: None,
        },
    )
    .await
    .map(|_| ())
}

/// Marks the job's timeline record finished with the reason as an error issue.
async fn report_issue_v1(
    client: &reqwest::Client,
    info: &JobInfo,
    result: OwnResult,
    reason: &str,
) -> Result<(), CallError> {
    let timeline = info
        .timeline_id
        .as_deref()
        .ok_or_else(|| decode_err("timeline", "no timeline id"))?;
    let loc = job_locations(client, info).await?;
    let token = info
        .job_token
        .as_ref()
        .ok_or_else(|| decode_err("timeline", "no job token"))?;
    let url = loc
        .url(
            ids::TIMELINE_RECORDS,
            &[
                ("scopeIdentifier", &info.scope_identifier),
                ("hubName", &info.plan_type),
                ("planId", &info.plan_id),
                ("timelineId", timeline),
            ],
        )
        .ok_or_else(|| decode_err("timeline", "no timeline records location"))?;
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let record = json!({
        "id": info.job_id, "type": "Job", "name": info.job_display_name,
        "state": "completed", "result": result.as_str(), "finishTime": now, "lastModified": now,
        "issues": [ { "type": "error", "message": reason } ],
    });
    let body = json!({ "count": 1, "value": [record] });
    http::execute(
        client,
        Call {
            what: "timeline records",
            method: Method::PATCH,
            url,
            api_version: Some("5.1-preview.1"),
            auth: Auth::Bearer(token),
            body: Some(&body),
            timeout: None,
        },
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_lower_case() {
        assert_eq!(OwnResult::Canceled.as_str(), "canceled");
        assert_eq!(OwnResult::Failed.as_str(), "failed");
        assert_eq!(OwnResult::Abandoned.as_str(), "abandoned");
    }
}
