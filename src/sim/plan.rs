//! Plan-scoped pipelines endpoints used with the job token: plan events (`JobCompleted`),
//! timeline records, logs and the live-line feed (§5.5, §5.7).
//!
//! Owns completing a v1 job through `JobCompleted` and accepting timeline and log traffic so
//! real workers run unchanged. It refuses runner tokens where the job token belongs (E23).

use super::caller::{Caller, Want, require};
use super::http::{Family, SimState, begin, field, json_body, vss_error};
use super::model::{CompletionPath, endpoint};
use super::server::Shared;
use super::world::{ReportError, World};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use serde_json::json;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let plan = format!(
        "{}/{{scope}}/_apis/distributedtask/hubs/{{hub}}/plans/{{plan}}",
        super::pipelines::PREFIX
    );
    Router::new()
        .route(&format!("{plan}/events"), post(plan_event))
        .route(
            &format!("{plan}/timelines/{{timeline}}/records"),
            patch(timeline_records),
        )
        .route(
            &format!("{plan}/timelines/{{timeline}}/records/{{record}}/feed"),
            post(feed),
        )
        .route(&format!("{plan}/logs"), post(create_log))
        .route(&format!("{plan}/logs/{{log}}"), post(append_log))
}

type PlanPath = Path<(String, String, String)>;

fn job_gone() -> Response {
    vss_error(
        StatusCode::NOT_FOUND,
        "TaskAgentJobNotFoundException",
        "The job was not found or has completed.",
    )
}

/// The job the job token is for, checked against the plan in the path.
fn job_for_plan(w: &mut World, headers: &HeaderMap, plan: &str, ep: &str) -> Result<u64, Response> {
    let Caller::Job(job) = require(w, headers, Want::Job, ep, Family::Vss)? else {
        return Err(vss_error(
            StatusCode::UNAUTHORIZED,
            "VssUnauthorizedException",
            "unauthorized",
        ));
    };
    let matches = w
        .jobs
        .get(&job)
        .is_some_and(|j| j.plan_id.eq_ignore_ascii_case(plan));
    if !matches {
        w.violation(
            ep,
            None,
            format!("job token used for another plan ({plan})"),
        );
        return Err(vss_error(
            StatusCode::NOT_FOUND,
            "TaskOrchestrationPlanNotFoundException",
            "plan not found",
        ));
    }
    Ok(job)
}

async fn plan_event(
    State(shared): SimState,
    Path((_scope, _hub, plan)): PlanPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::PLAN_EVENTS, &headers).await {
        return r;
    }
    let body = json_body(&body);
    shared.update(|w| {
        let job = match job_for_plan(w, &headers, &plan, endpoint::PLAN_EVENTS) {
            Ok(j) => j,
            Err(r) => return r,
        };
        let Some(name) = field(&body, "name").and_then(|v| v.as_str()) else {
            w.violation(endpoint::PLAN_EVENTS, None, "plan event without a name");
            return vss_error(
                StatusCode::BAD_REQUEST,
                "ArgumentException",
                "The event name is required.",
            );
        };
        if !name.eq_ignore_ascii_case("JobCompleted") {
            // Other events (e.g. JobAssigned, JobStarted) are accepted and ignored.
            return StatusCode::OK.into_response();
        }
        let Some(snapshot) = w.jobs.get(&job).map(|j| j.snapshot.clone()) else {
            return job_gone();
        };
        let job_id = field(&body, "jobId")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if !job_id.eq_ignore_ascii_case(&snapshot.orchestration_id) {
            w.violation(
                endpoint::PLAN_EVENTS,
                None,
                format!("JobCompleted for job {job_id} with another job's token"),
            );
            return vss_error(
                StatusCode::BAD_REQUEST,
                "ArgumentException",
                "jobId does not match the job token",
            );
        }
        let request_id = field(&body, "requestId").and_then(|v| v.as_u64());
        if request_id.is_some_and(|r| r != snapshot.request_id) {
            w.violation(
                endpoint::PLAN_EVENTS,
                None,
                "JobCompleted with another job's requestId",
            );
            return vss_error(
                StatusCode::BAD_REQUEST,
                "ArgumentException",
                "requestId does not match the job",
            );
        }
        let result = field(&body, "result")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let outputs = field(&body, "outputs").cloned();
        match w.report_completion(
            job,
            &result,
            CompletionPath::PlanEvent,
            outputs,
            endpoint::PLAN_EVENTS,
            None,
        ) {
            Ok(_) => StatusCode::OK.into_response(),
            Err(ReportError::BadResult) => vss_error(
                StatusCode::BAD_REQUEST,
                "ArgumentException",
                "unknown result",
            ),
            Err(ReportError::WrongFlow | ReportError::Ended) => job_gone(),
        }
    })
}

async fn timeline_records(
    State(shared): SimState,
    Path((_s, _h, plan, _t)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::TIMELINE, &headers).await {
        return r;
    }
    let body = json_body(&body);
    let records = field(&body, "value").cloned().unwrap_or(json!([]));
    let issues: Vec<String> = records
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| field(r, "issues")?.as_array().cloned())
        .flatten()
        .filter_map(|i| field(&i, "message")?.as_str().map(str::to_string))
        .collect();
    let noted = shared.update(|w| {
        let job = job_for_plan(w, &headers, &plan, endpoint::TIMELINE)?;
        w.note_job(job, issues, Vec::new());
        Ok::<(), Response>(())
    });
    if let Err(r) = noted {
        return r;
    }
    let count = records.as_array().map_or(0, |a| a.len());
    axum::Json(json!({ "count": count, "value": records })).into_response()
}

async fn feed(
    State(shared): SimState,
    Path((_s, _h, plan, _t, _r)): Path<(String, String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::LOGS, &headers).await {
        return r;
    }
    let body = json_body(&body);
    let lines: Vec<String> = field(&body, "value")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    let noted = shared.update(|w| {
        let job = job_for_plan(w, &headers, &plan, endpoint::LOGS)?;
        w.note_job(job, Vec::new(), lines);
        Ok::<(), Response>(())
    });
    match noted {
        Ok(_) => StatusCode::OK.into_response(),
        Err(r) => r,
    }
}

async fn create_log(
    State(shared): SimState,
    Path((_s, _h, plan)): PlanPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::LOGS, &headers).await {
        return r;
    }
    let body = json_body(&body);
    match shared.update(|w| job_for_plan(w, &headers, &plan, endpoint::LOGS).map(|_| w.next_id())) {
        Ok(id) => axum::Json(json!({
            "id": id,
            "path": field(&body, "path").cloned().unwrap_or(json!("logs/sim")),
            "createdOn": chrono::Utc::now().to_rfc3339(),
            "lastChangedOn": chrono::Utc::now().to_rfc3339(),
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn append_log(
    State(shared): SimState,
    Path((_s, _h, plan, log)): Path<(String, String, String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::LOGS, &headers).await {
        return r;
    }
    let text = String::from_utf8_lossy(&body);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let noted = shared.update(|w| {
        let job = job_for_plan(w, &headers, &plan, endpoint::LOGS)?;
        w.note_job(job, Vec::new(), lines);
        Ok::<(), Response>(())
    });
    match noted {
        Ok(_) => axum::Json(json!({ "id": log })).into_response(),
        Err(r) => r,
    }
}
