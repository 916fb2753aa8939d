//! One job's protocol calls: acquire, renew the lock, complete (spec §5.1, §5.4, §5.5).
//!
//! Owns reading the fields of a job message that those calls need ([`JobInfo`]) and the calls
//! themselves, with the right token for each flow: v1 renewals and `acquirejob` use the runner's
//! OAuth token; run-service renewals and completions, and plan events, use the job token from
//! `SystemVssConnection` (E23). Results go lower-case on the wire. Never logs the job token.

use super::api::JobFlow;
use super::context::get_ci;
use super::http::{self, Auth, Call, CallError};
use super::location::{Locations, ids};
use super::messages::{JobReference, MessageError};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

/// What the protocol needs from a job message.
#[derive(Debug, Clone)]
pub struct JobInfo {
    pub flow: JobFlow,
    /// Orchestration job id (`jobId`).
    pub job_id: String,
    pub job_display_name: String,
    /// v1 job request id.
    pub request_id: Option<u64>,
    pub plan_id: String,
    pub plan_type: String,
    pub scope_identifier: String,
    pub plan_version: u64,
    pub timeline_id: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    /// The job-scoped token (`SystemVssConnection` AccessToken).
    pub job_token: Option<Secret>,
    /// `SystemVssConnection.url`.
    pub system_vss_url: Option<String>,
    /// Where renewjob/completejob go for run-service jobs.
    pub run_service_url: Option<String>,
    pub billing_owner_id: Option<String>,
}

fn s(v: &Value, k: &str) -> Option<String> {
    get_ci(v, k)
        .and_then(Value::as_str)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

/// Reads a job message. The flow comes from the message's own `messageType` (AR
/// `MessageUtil.IsRunServiceJob`), else from how it arrived.
pub fn parse_job_info(
    message: &str,
    reference: Option<&JobReference>,
) -> Result<JobInfo, MessageError> {
    let err = |r: &str| MessageError {
        kind: "job".into(),
        reason: r.to_string(),
    };
    let v: Value = serde_json::from_str(message).map_err(|e| err(&e.to_string()))?;
    let flow = match s(&v, "messageType").map(|t| t.to_ascii_lowercase()) {
        Some(t) if t == "runnerjobrequest" => JobFlow::RunService,
        Some(t) if t == "pipelineagentjobrequest" => JobFlow::Pipelines,
        _ if reference.is_some() => JobFlow::RunService,
        _ => JobFlow::Pipelines,
    };
    let plan = get_ci(&v, "plan").cloned().unwrap_or(Value::Null);
    let endpoint = get_ci(&v, "resources")
        .and_then(|r| get_ci(r, "endpoints"))
        .and_then(Value::as_array)
        .and_then(|eps| {
            eps.iter().find(|e| {
                s(e, "name").is_some_and(|n| n.eq_ignore_ascii_case("SystemVssConnection"))
            })
        });
    let job_token = endpoint
        .and_then(|e| get_ci(e, "authorization"))
        .and_then(|a| get_ci(a, "parameters"))
        .and_then(|p| s(p, "AccessToken"))
        .map(Secret::new);
    Ok(JobInfo {
        flow,
        job_id: s(&v, "jobId").ok_or_else(|| err("no jobId"))?,
        job_display_name: s(&v, "jobDisplayName").unwrap_or_default(),
        request_id: get_ci(&v, "requestId").and_then(Value::as_u64),
        plan_id: s(&plan, "planId").unwrap_or_default(),
        plan_type: s(&plan, "planType").unwrap_or_default(),
        scope_identifier: s(&plan, "scopeIdentifier").unwrap_or_default(),
        plan_version: get_ci(&plan, "version")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        timeline_id: get_ci(&v, "timeline").and_then(|t| s(t, "id")),
        locked_until: s(&v, "lockedUntil").and_then(|t| sane_time(&t)),
        job_token,
        system_vss_url: endpoint.and_then(|e| s(e, "url")),
        run_service_url: reference.and_then(|r| r.run_service_url.clone()),
        billing_owner_id: s(&v, "billingOwnerId")
            .or_else(|| reference.and_then(|r| r.billing_owner_id.clone())),
    })
}

/// `POST {run_service_url}acquirejob` with the runner token (spec §5.1). Returns the job
/// message text.
pub async fn acquire(
    client: &reqwest::Client,
    run_service_url: &str,
    runner_token: &Secret,
    reference: &JobReference,
) -> Result<String, CallError> {
    let mut body = json!({
        "jobMessageId": reference.runner_request_id,
        "runnerOS": super::session::os_name(),
    });
    if let Some(b) = &reference.billing_owner_id {
        body["billingOwnerId"] = json!(b);
    }
    let resp = http::execute(
        client,
        Call {
            what: "acquirejob",
            method: Method::POST,
            url: http::join_segment(run_service_url, "acquirejob"),
            api_version: None,
            auth: Auth::Bearer(runner_token),
            body: Some(&body),
            timeout: None,
        },
    )
    .await?;
    let bytes = resp.ok_or_else(|| CallError::Decode {
        what: "acquirejob".into(),
        message: "empty body".into(),
    })?;
    String::from_utf8(super::crypto::strip_bom(&bytes).to_vec()).map_err(|_| CallError::Decode {
        what: "acquirejob".into(),
        message: "not UTF-8".into(),
    })
}

/// The run-service base for renew and complete: `SystemVssConnection.url` (AR), else the
/// `run_service_url` of the reference (GAR).
pub fn run_service_base(info: &JobInfo) -> Option<&str> {
    info.system_vss_url
        .as_deref()
        .or(info.run_service_url.as_deref())
}

fn locked_until(body: Option<bytes::Bytes>) -> Option<DateTime<Utc>> {
    let v: Value = serde_json::from_slice(&body?).ok()?;
    sane_time(&s(&v, "lockedUntil")?)
}

/// A server time, clamped to at most a day from now so later arithmetic cannot overflow.
fn sane_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.parse::<DateTime<Utc>>().ok()?;
    Some(t.min(Utc::now() + chrono::Duration::days(1)))
}

/// Renews the lock with the right token for the flow (spec §5.4).
pub async fn renew(
    client: &reqwest::Client,
    info: &JobInfo,
    listener_loc: Option<(&Locations, u64)>,
    runner_token: &Secret,
) -> Result<Option<DateTime<Utc>>, CallError> {
    match info.flow {
        JobFlow::Pipelines => {
            let (loc, pool) =
                listener_loc.ok_or_else(|| decode_err("renew", "no pipelines pool"))?;
            let request_id = info
                .request_id
                .ok_or_else(|| decode_err("renew", "no requestId"))?;
            let url = loc
                .url(
                    ids::JOB_REQUESTS,
                    &[
                        ("poolId", &pool.to_string()),
                        ("requestId", &request_id.to_string()),
                    ],
                )
                .ok_or_else(|| decode_err("renew", "no job requests location"))?;
            let body = json!({ "requestId": request_id });
            let resp = http::execute(
                client,
                Call {
                    what: "renew job request",
                    method: Method::PATCH,
                    url: format!("{url}?lockToken=00000000-0000-0000-0000-000000000000"),
                    api_version: Some("5.1-preview.1"),
                    auth: Auth::Bearer(runner_token),
                    body: Some(&body),
                    timeout: None,
                },
            )
            .await?;
            Ok(locked_until(resp))
        }
        JobFlow::RunService => {
            let base = run_service_base(info)
                .ok_or_else(|| decode_err("renewjob", "no run service url"))?;
            let token = info
                .job_token
                .as_ref()
                .ok_or_else(|| decode_err("renewjob", "no job token"))?;
            let body = json!({ "planId": info.plan_id, "jobId": info.job_id });
            let resp = http::execute(
                client,
                Call {
                    what: "renewjob",
                    method: Method::POST,
                    url: http::join_segment(base, "renewjob"),
                    api_version: None,
                    auth: Auth::Bearer(token),
                    body: Some(&body),
                    timeout: None,
                },
            )
            .await?;
            Ok(locked_until(resp))
        }
    }
}

/// True when a renewal error means the job is over (E22, run service 404).
pub fn renewal_says_job_gone(e: &CallError) -> bool {
    e.service().is_some_and(|s| {
        s.status == 404
            || s.is("TaskAgentJobNotFoundException")
            || s.is("TaskAgentJobTokenExpiredException")
    })
}

pub(super) fn decode_err(what: &str, m: &str) -> CallError {
    CallError::Decode {
        what: what.to_string(),
        message: m.to_string(),
    }
}

/// Legacy `RunnerJobRequest` without `run_service_url`: `GET` the pipelines resource
/// `25adab70-…` with `messageId = runner_request_id`, runner token (spec §5.1).
pub async fn get_legacy_job_message(
    client: &reqwest::Client,
    loc: &Locations,
    runner_token: &Secret,
    runner_request_id: &str,
) -> Result<String, CallError> {
    let url = loc
        .url(ids::RUNNER_JOB_MESSAGE, &[("messageId", runner_request_id)])
        .ok_or_else(|| decode_err("get job message", "no job message location"))?;
    let resp = http::execute(
        client,
        Call {
            what: "get job message",
            method: Method::GET,
            url,
            api_version: Some("6.0-preview.1"),
            auth: Auth::Bearer(runner_token),
            body: None,
            timeout: None,
        },
    )
    .await?;
    let bytes = resp.ok_or_else(|| decode_err("get job message", "empty body"))?;
    String::from_utf8(super::crypto::strip_bom(&bytes).to_vec())
        .map_err(|_| decode_err("get job message", "not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = r#"{"messageType":"RunnerJobRequest","jobId":"j-1","requestId":0,
      "plan":{"planId":"p","planType":"actions","scopeIdentifier":"s","version":12},
      "timeline":{"id":"t"},"lockedUntil":"2026-01-01T12:00:00Z",
      "resources":{"endpoints":[{"name":"SystemVssConnection","url":"https://rs/x/",
        "authorization":{"scheme":"OAuth","parameters":{"AccessToken":"job-secret"}}}]}}"#;

    #[test]
    fn job_info_from_the_message() {
        let i = parse_job_info(MSG, None).unwrap();
        assert_eq!(i.flow, JobFlow::RunService);
        assert_eq!(i.plan_version, 12);
        assert_eq!(i.job_token.as_ref().map(Secret::expose), Some("job-secret"));
        assert_eq!(run_service_base(&i), Some("https://rs/x/"));
        assert!(i.locked_until.is_some());
        assert!(!format!("{i:?}").contains("job-secret"));
        let v1 = parse_job_info(
            r#"{"messageType":"PipelineAgentJobRequest","jobId":"x","requestId":5}"#,
            None,
        )
        .unwrap();
        assert_eq!((v1.flow, v1.request_id), (JobFlow::Pipelines, Some(5)));
        assert!(parse_job_info("{}", None).is_err());
    }
}
