//! The `/_sim/` HTTP API: the [`super::SimHandle`] operations for scripts and the standalone
//! simulator.
//!
//! Owns queueing jobs, reading jobs, runners, counters and violations, injecting faults,
//! cancelling runs, deleting runners, expiring tokens and setting webhook target and faults
//! over HTTP. It is not part of GitHub's surface: no auth, not counted, loopback only.

use super::config::{WebhookFaults, WebhookTarget};
use super::http::SimState;
use super::model::{Fault, JobSpec, TokenKind};
use super::server::Shared;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/jobs", get(jobs).post(queue))
        .route("/_sim/jobs/{id}", get(job))
        .route("/_sim/jobs/{id}/rerun", post(rerun))
        .route("/_sim/runners", get(runners))
        .route("/_sim/runners/{name}", delete(delete_runner))
        .route("/_sim/runners/{name}/messages", post(send_message))
        .route("/_sim/runs/{id}/cancel", post(cancel))
        .route("/_sim/counters", get(counters))
        .route("/_sim/violations", get(violations))
        .route("/_sim/faults", post(inject))
        .route("/_sim/tokens/expire", post(expire))
        .route("/_sim/webhook", post(webhook))
}

async fn queue(State(s): SimState, Json(spec): Json<JobSpec>) -> Response {
    let id = s.update(|w| w.queue_job(spec));
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

async fn jobs(State(s): SimState) -> Response {
    let jobs: Vec<_> = s.lock().jobs.values().map(|j| j.snapshot.clone()).collect();
    Json(jobs).into_response()
}

async fn job(State(s): SimState, Path(id): Path<u64>) -> Response {
    match s.lock().jobs.get(&id).map(|j| j.snapshot.clone()) {
        Some(j) => Json(j).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn rerun(State(s): SimState, Path(id): Path<u64>) -> Response {
    match s.update(|w| w.rerun_job(id)) {
        Some(new) => (StatusCode::CREATED, Json(json!({ "id": new }))).into_response(),
        None => StatusCode::CONFLICT.into_response(),
    }
}

async fn runners(State(s): SimState) -> Response {
    Json(s.lock().runner_snapshots()).into_response()
}

async fn delete_runner(State(s): SimState, Path(name): Path<String>) -> Response {
    let deleted = s.update(|w| {
        let id = w.agent_by_name(&name).map(|a| a.id);
        id.is_some_and(|id| w.delete_agent(id))
    });
    if deleted {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
    .into_response()
}

#[derive(Deserialize)]
struct MessageRequest {
    message_type: String,
    #[serde(default)]
    body: String,
}

async fn send_message(
    State(s): SimState,
    Path(name): Path<String>,
    Json(r): Json<MessageRequest>,
) -> Response {
    let sent = s.update(|w| {
        let agent = w.agent_by_name(&name).map(|a| a.id);
        agent.is_some_and(|a| w.push_message(a, r.message_type, r.body))
    });
    if sent {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
    .into_response()
}

async fn cancel(State(s): SimState, Path(id): Path<u64>) -> Response {
    if s.update(|w| w.cancel_run(id, false)) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NOT_FOUND
    }
    .into_response()
}

async fn counters(State(s): SimState) -> Response {
    Json(s.lock().counters.clone()).into_response()
}

async fn violations(State(s): SimState) -> Response {
    Json(s.lock().violations.clone()).into_response()
}

#[derive(Deserialize)]
struct InjectRequest {
    endpoint: String,
    fault: Fault,
    #[serde(default = "one")]
    times: u32,
}

fn one() -> u32 {
    1
}

async fn inject(State(s): SimState, Json(r): Json<InjectRequest>) -> Response {
    s.update(|w| w.inject(&r.endpoint, r.fault, r.times));
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct ExpireRequest {
    kind: TokenKind,
}

async fn expire(State(s): SimState, Json(r): Json<ExpireRequest>) -> Response {
    s.update(|w| w.tokens.expire_kind(r.kind, chrono::Utc::now()));
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct WebhookRequest {
    #[serde(default)]
    target: Option<WebhookTarget>,
    #[serde(default)]
    faults: Option<WebhookFaults>,
}

async fn webhook(State(s): SimState, Json(r): Json<WebhookRequest>) -> Response {
    s.update(|w| {
        if r.target.is_some() {
            w.webhook_target = r.target;
        }
        if let Some(f) = r.faults {
            w.webhook_faults = f;
        }
    });
    StatusCode::NO_CONTENT.into_response()
}
