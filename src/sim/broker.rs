//! The broker (§4.5) and the run service (§5.1, §5.4, §5.5).
//!
//! Owns broker sessions, the broker long poll (plain JSON bodies, `RunnerJobRequest`
//! references), acknowledge (twice is a violation), and the run service: `acquirejob` with the
//! runner token, `renewjob` and `completejob` with the job token only and lower-case enums
//! only. Errors carry the broker `errorKind` / run-service shapes of §2.3.

use super::caller::{Caller, Want, require, runner_name};
use super::http::{
    Family, SimState, begin, broker_error, field, json_body, query_param, run_error,
};
use super::model::{CompletionPath, endpoint};
use super::server::Shared;
use super::sessions::{open_session, runner_of};
use super::world::{AcquireError, Channel, JobFlow, ReportError, SessionError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

type Q = Query<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/_services/broker/session",
            post(create_session).delete(delete_session),
        )
        .route("/_services/broker/message", axum::routing::get(get_message))
        .route("/_services/broker/acknowledge", post(acknowledge))
        .route("/_services/run/acquirejob", post(acquire_job))
        .route("/_services/run/renewjob", post(renew_job))
        .route("/_services/run/completejob", post(complete_job))
        .route(
            "/_services/run-message/acquirejob",
            post(via_message_url(acquire_job)),
        )
        .route(
            "/_services/run-message/renewjob",
            post(via_message_url(renew_job)),
        )
        .route(
            "/_services/run-message/completejob",
            post(via_message_url(complete_job)),
        )
}

/// The run service behind the message's `run_service_url` (when it differs): the same
/// handler, counted as `run.via_message_url` too.
fn via_message_url<F, Fut>(
    handler: F,
) -> impl Fn(SimState, HeaderMap, Bytes) -> futures::future::BoxFuture<'static, Response>
+ Clone
+ Send
+ 'static
where
    F: Fn(SimState, HeaderMap, Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    move |state: SimState, headers: HeaderMap, body: Bytes| {
        let handler = handler.clone();
        Box::pin(async move {
            state.0.update(|w| w.count(endpoint::RUN_VIA_MESSAGE_URL));
            handler(state, headers, body).await
        })
    }
}

async fn create_session(State(shared): SimState, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = begin(&shared, endpoint::BROKER_SESSION_CREATE, &headers).await {
        return r;
    }
    let body = json_body(&body);
    shared.update(|w| {
        let agent = match runner_of(w, &headers, endpoint::BROKER_SESSION_CREATE, Family::Broker) {
            Ok(a) => a,
            Err(r) => return r,
        };
        match open_session(w, agent, &body, true) {
            Ok(v) => axum::Json(v).into_response(),
            Err(SessionError::Conflict) => broker_error(
                StatusCode::CONFLICT,
                "SessionConflict",
                "A session for this runner already exists.",
            ),
            Err(SessionError::AgentNotFound) => {
                broker_error(StatusCode::NOT_FOUND, "RunnerNotFound", "runner not found")
            }
        }
    })
}

async fn delete_session(State(shared): SimState, headers: HeaderMap) -> Response {
    if let Err(r) = begin(&shared, endpoint::BROKER_SESSION_DELETE, &headers).await {
        return r;
    }
    shared.update(|w| {
        let agent = match runner_of(w, &headers, endpoint::BROKER_SESSION_DELETE, Family::Broker) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if let Some(id) = w.session_of_agent(agent).map(|s| s.id.clone()) {
            w.delete_session(&id);
        }
        StatusCode::OK.into_response()
    })
}

fn session_invalid() -> Response {
    broker_error(
        StatusCode::NOT_FOUND,
        "RunnerSessionInvalid",
        "The session is not valid.",
    )
}

async fn get_message(State(shared): SimState, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = begin(&shared, endpoint::BROKER_MESSAGE, &headers).await {
        return r;
    }
    let session_id = query_param(&q, "sessionId").unwrap_or_default().to_string();
    let (agent, hold) = match shared.update(|w| {
        let agent = runner_of(w, &headers, endpoint::BROKER_MESSAGE, Family::Broker)?;
        // A v1 session is valid here too: that is how a `BrokerMigration` is followed (§4.6).
        if w.sessions
            .get(&session_id)
            .is_none_or(|s| s.agent_id != agent)
        {
            return Err(session_invalid());
        }
        w.touch_session(&session_id);
        Ok((agent, w.cfg.long_poll_hold))
    }) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let polled = shared
        .wait_for(hold, |w| {
            if !w.agents.contains_key(&agent) {
                return Some(Err(broker_error(
                    StatusCode::NOT_FOUND,
                    "RunnerNotFound",
                    "runner not found",
                )));
            }
            if !w.sessions.contains_key(&session_id) {
                return Some(Err(session_invalid()));
            }
            w.next_message(agent, Channel::Broker, &session_id, None)
                .map(Ok)
        })
        .await;
    shared.update(|w| w.touch_session(&session_id));
    match polled {
        None => {
            let kind = shared.lock().cfg.empty_poll;
            super::http::empty_poll(kind)
        }
        Some(Err(r)) => r,
        Some(Ok(m)) => axum::Json(json!({
            "messageId": m.message_id,
            "messageType": m.message_type,
            "body": m.body,
        }))
        .into_response(),
    }
}

fn job_by_request(w: &super::world::World, id: &str) -> Option<u64> {
    w.jobs
        .values()
        .find(|j| !id.is_empty() && j.runner_request_id.eq_ignore_ascii_case(id))
        .map(|j| j.snapshot.id)
}

async fn acknowledge(State(shared): SimState, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = begin(&shared, endpoint::BROKER_ACKNOWLEDGE, &headers).await {
        return r;
    }
    let body = json_body(&body);
    let request = field(&body, "runnerRequestId")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    shared.update(|w| {
        let agent = match runner_of(w, &headers, endpoint::BROKER_ACKNOWLEDGE, Family::Broker) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let not_found = || {
            broker_error(
                StatusCode::NOT_FOUND,
                "AcknowledgeJobNotFound",
                "The job to acknowledge was not found.",
            )
        };
        let Some(job) = job_by_request(w, &request) else {
            return not_found();
        };
        let name = runner_name(w, agent);
        if w.agents
            .get(&agent)
            .is_some_and(|a| a.acknowledged.contains(&request))
        {
            w.violation(
                endpoint::BROKER_ACKNOWLEDGE,
                name,
                format!("message for runner request {request} acknowledged twice"),
            );
            return StatusCode::OK.into_response();
        }
        if w.take(job, agent, endpoint::BROKER_ACKNOWLEDGE).is_err() {
            return not_found();
        }
        if let Some(a) = w.agents.get_mut(&agent) {
            a.acknowledged.push(request.clone());
        }
        StatusCode::OK.into_response()
    })
}

async fn acquire_job(State(shared): SimState, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = begin(&shared, endpoint::ACQUIRE_JOB, &headers).await {
        return r;
    }
    let body = json_body(&body);
    let request = field(&body, "jobMessageId")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    shared.update(|w| {
        let agent = match require(
            w,
            &headers,
            Want::Runner,
            endpoint::ACQUIRE_JOB,
            Family::Run,
        ) {
            Ok(Caller::Runner(a)) if w.agents.contains_key(&a) => a,
            Ok(_) => return run_error(StatusCode::NOT_FOUND, "runner not found"),
            Err(r) => return r,
        };
        match w.acquire(agent, &request, endpoint::ACQUIRE_JOB) {
            Ok(message) => axum::Json(message).into_response(),
            Err(AcquireError::NotFound) => run_error(StatusCode::NOT_FOUND, "job not found"),
            Err(AcquireError::AlreadyAcquired) => {
                run_error(StatusCode::CONFLICT, "job already acquired")
            }
            Err(AcquireError::NotYours) => run_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "job assignment is invalid",
            ),
        }
    })
}

/// The job the job token is for, checked against `planId`/`jobId` of the body.
fn job_of(
    w: &mut super::world::World,
    headers: &HeaderMap,
    body: &serde_json::Value,
    ep: &str,
) -> Result<u64, Response> {
    let Caller::Job(job) = require(w, headers, Want::Job, ep, Family::Run)? else {
        return Err(run_error(
            StatusCode::UNAUTHORIZED,
            "not authorized for this job",
        ));
    };
    let plan = field(body, "planId")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let job_id = field(body, "jobId")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let ok = w.jobs.get(&job).is_some_and(|j| {
        j.plan_id.eq_ignore_ascii_case(plan)
            && j.snapshot.orchestration_id.eq_ignore_ascii_case(job_id)
    });
    if !ok {
        w.violation(ep, None, "planId/jobId do not match the job token");
        return Err(run_error(StatusCode::NOT_FOUND, "job not found"));
    }
    Ok(job)
}

async fn renew_job(State(shared): SimState, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = begin(&shared, endpoint::RENEW_JOB, &headers).await {
        return r;
    }
    let body = json_body(&body);
    shared.update(|w| {
        let job = match job_of(w, &headers, &body, endpoint::RENEW_JOB) {
            Ok(j) => j,
            Err(r) => return r,
        };
        if !w.check_flow(job, JobFlow::RunService, endpoint::RENEW_JOB, None) {
            return run_error(StatusCode::NOT_FOUND, "job not found");
        }
        match w.renew(job) {
            Ok(until) => axum::Json(json!({ "lockedUntil": until.to_rfc3339() })).into_response(),
            Err(_) => run_error(StatusCode::NOT_FOUND, "job not found"),
        }
    })
}

async fn complete_job(State(shared): SimState, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = begin(&shared, endpoint::COMPLETE_JOB, &headers).await {
        return r;
    }
    let body = json_body(&body);
    shared.update(|w| {
        let job = match job_of(w, &headers, &body, endpoint::COMPLETE_JOB) {
            Ok(j) => j,
            Err(r) => return r,
        };
        let conclusion = field(&body, "conclusion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        // Every enum of the body must be lower-case (GAR-git 3a99070), not only `conclusion`.
        let nested: Vec<String> = [
            ("stepResults", "status"),
            ("stepResults", "conclusion"),
            ("annotations", "level"),
        ]
        .iter()
        .flat_map(|(list, key)| {
            field(&body, list)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(move |e| field(e, key)?.as_str())
        })
        .filter(|v| v.chars().any(|c| c.is_ascii_uppercase()))
        .map(str::to_string)
        .collect();
        if !nested.is_empty() {
            w.violation(
                endpoint::COMPLETE_JOB,
                None,
                format!("completejob enums {nested:?} are not lower-case"),
            );
            return run_error(
                StatusCode::BAD_REQUEST,
                "invalid enum value: enums must be lower-case",
            );
        }
        let issues: Vec<String> = field(&body, "annotations")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|a| field(a, "message")?.as_str().map(str::to_string))
            .collect();
        let outputs = field(&body, "outputs").cloned();
        let path = CompletionPath::CompleteJob;
        match w.report_completion(
            job,
            &conclusion,
            path,
            outputs,
            endpoint::COMPLETE_JOB,
            None,
        ) {
            Ok(_) => {
                w.note_job(job, issues, Vec::new());
                StatusCode::OK.into_response()
            }
            Err(ReportError::BadResult) => run_error(
                StatusCode::BAD_REQUEST,
                "invalid conclusion: enums must be lower-case TaskResult names",
            ),
            Err(_) => run_error(StatusCode::NOT_FOUND, "job not found"),
        }
    })
}
