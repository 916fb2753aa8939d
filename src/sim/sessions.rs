//! v1 message loop on the pipelines service: sessions, long poll, message delete, job
//! request renew and finish (§4.2–§4.4, §5.4, §5.5).
//!
//! Owns the session answer (optionally with an RSA-OAEP encrypted AES key), the long poll
//! (held up to `long_poll_hold`, answered on the first message; bodies AES-CBC encrypted when
//! the session has a key), deleting (acknowledging) messages, and `PATCH jobrequests`.

use super::caller::{Caller, Want, require, runner_name};
use super::crypto::{encrypt_body, encrypt_session_key};
use super::http::{Family, SimState, begin, field, json_body, query_param, vss_error};
use super::model::{CompletionPath, endpoint};
use super::pipelines::agent_not_found;
use super::server::Shared;
use super::world::{
    AcquireError, Channel, InboxKind, JobFlow, Outgoing, ReportError, SessionError, TakeError,
    World,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Q = Query<HashMap<String, String>>;

pub(crate) fn routes(dt: &str) -> Router<Arc<Shared>> {
    Router::new()
        .route(
            &format!("{dt}/pools/{{pool}}/sessions"),
            post(create_session),
        )
        .route(
            &format!("{dt}/pools/{{pool}}/sessions/{{session}}"),
            delete(delete_session),
        )
        .route(&format!("{dt}/pools/{{pool}}/messages"), get(get_message))
        .route(
            &format!("{dt}/pools/{{pool}}/messages/{{message}}"),
            delete(delete_message),
        )
        .route(
            &format!("{dt}/pools/{{pool}}/jobrequests/{{request}}"),
            patch(update_job_request),
        )
        .route(
            &format!("{dt}/runnerjobrequests/{{message}}"),
            get(legacy_job_message),
        )
}

pub(crate) fn runner_of(
    w: &mut World,
    headers: &HeaderMap,
    ep: &str,
    family: Family,
) -> Result<u64, Response> {
    match require(w, headers, Want::Runner, ep, family)? {
        Caller::Runner(id) if w.agents.contains_key(&id) => Ok(id),
        _ => Err(match family {
            Family::Broker => super::http::broker_error(
                StatusCode::NOT_FOUND,
                "RunnerNotFound",
                "runner not found",
            ),
            _ => agent_not_found(),
        }),
    }
}

/// Opens a session for the calling runner; the shared part of v1 and broker session create.
pub(crate) fn open_session(
    w: &mut World,
    agent: u64,
    body: &Value,
    broker: bool,
) -> Result<Value, SessionError> {
    let requested = field(body, "useFipsEncryption")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let fips = w.cfg.session_fips.unwrap_or(requested);
    let owner = field(body, "ownerName")
        .and_then(|v| v.as_str())
        .unwrap_or("RUNNER")
        .to_string();
    let session = w.create_session(agent, broker, owner)?;
    let a = w.agents.get(&agent).ok_or(SessionError::AgentNotFound)?;
    let mut answer = json!({
        "sessionId": session.id,
        "ownerName": session.owner_name,
        "agent": { "id": a.id, "name": a.name, "version": a.version, "osDescription": a.os_description },
        "useFipsEncryption": fips,
    });
    if broker
        && !w.cfg.broker_session_agent
        && let Some(o) = answer.as_object_mut()
    {
        o.remove("agent");
    }
    if !broker && w.cfg.broker == super::config::BrokerMode::SessionMigration {
        answer["brokerMigrationMessage"] = json!({ "brokerBaseUrl": w.broker_url() });
    }
    if let Some(key) = session.key {
        let encrypted =
            encrypt_session_key(&key, &a.key, fips).ok_or(SessionError::AgentNotFound)?;
        answer["encryptionKey"] = json!({ "encrypted": true, "value": STANDARD.encode(encrypted) });
    }
    Ok(answer)
}

async fn create_session(State(shared): SimState, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = begin(&shared, endpoint::SESSIONS_CREATE, &headers).await {
        return r;
    }
    let body = json_body(&body);
    shared.update(|w| {
        let agent = match runner_of(w, &headers, endpoint::SESSIONS_CREATE, Family::Vss) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let told = |a: &super::world::Agent| {
            a.runner_admin || w.cfg.broker == super::config::BrokerMode::AgentProperties
        };
        if w.agents.get(&agent).is_some_and(told) {
            let name = runner_name(w, agent);
            w.violation(
                endpoint::SESSIONS_CREATE,
                name,
                "v1 session for a runner told to use the broker (UseV2Flow/ServerUrlV2 or runner admin); it gets no jobs here",
            );
        }
        match open_session(w, agent, &body, false) {
            Ok(v) => axum::Json(v).into_response(),
            Err(SessionError::Conflict) => vss_error(
                StatusCode::CONFLICT,
                "TaskAgentSessionConflictException",
                "A session for this agent already exists.",
            ),
            Err(SessionError::AgentNotFound) => agent_not_found(),
        }
    })
}

async fn delete_session(
    State(shared): SimState,
    Path((_p, session)): Path<(u64, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::SESSIONS_DELETE, &headers).await {
        return r;
    }
    shared.update(|w| {
        let agent = match runner_of(w, &headers, endpoint::SESSIONS_DELETE, Family::Vss) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if w.sessions.get(&session).is_none_or(|s| s.agent_id != agent) {
            return session_expired();
        }
        w.delete_session(&session);
        StatusCode::OK.into_response()
    })
}

fn session_expired() -> Response {
    vss_error(
        StatusCode::NOT_FOUND,
        "TaskAgentSessionExpiredException",
        "The session has expired.",
    )
}

/// The poll answer body: encrypted when the session has a key (§4.4).
fn render(out: Outgoing, key: Option<[u8; 32]>, bom: bool) -> Value {
    let mut v = json!({ "messageType": out.message_type });
    if let Some(id) = out.message_id {
        v["messageId"] = json!(id);
    }
    match key {
        Some(key) => {
            let mut plain = Vec::new();
            if bom {
                plain.extend_from_slice(b"\xEF\xBB\xBF");
            }
            plain.extend_from_slice(out.body.as_bytes());
            match encrypt_body(&key, &plain) {
                Some((iv, cipher)) => {
                    v["iv"] = json!(STANDARD.encode(iv));
                    v["body"] = json!(STANDARD.encode(cipher));
                }
                None => v["body"] = json!(out.body),
            }
        }
        None => v["body"] = json!(out.body),
    }
    v
}

enum Poll {
    Message(Outgoing, Option<[u8; 32]>),
    Gone(Response),
}

async fn get_message(State(shared): SimState, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = begin(&shared, endpoint::MESSAGES_GET, &headers).await {
        return r;
    }
    let session_id = query_param(&q, "sessionId").unwrap_or_default().to_string();
    let last_message_id = query_param(&q, "lastMessageId").and_then(|v| v.parse::<u64>().ok());
    let (agent, hold, bom) = match shared.update(|w| {
        let agent = runner_of(w, &headers, endpoint::MESSAGES_GET, Family::Vss)?;
        if w.sessions
            .get(&session_id)
            .is_none_or(|s| s.agent_id != agent || s.broker)
        {
            return Err(session_expired());
        }
        w.touch_session(&session_id);
        Ok((agent, w.cfg.long_poll_hold, w.cfg.bom_in_encrypted_body))
    }) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let polled = shared
        .wait_for(hold, |w| {
            if !w.agents.contains_key(&agent) {
                return Some(Poll::Gone(agent_not_found()));
            }
            let Some(session) = w.sessions.get(&session_id) else {
                return Some(Poll::Gone(session_expired()));
            };
            let key = session.key;
            w.next_message(agent, Channel::Pipelines, &session_id, last_message_id)
                .map(|m| Poll::Message(m, key))
        })
        .await;
    shared.update(|w| w.touch_session(&session_id));
    match polled {
        None => {
            let kind = shared.lock().cfg.empty_poll;
            super::http::empty_poll(kind)
        }
        Some(Poll::Gone(r)) => r,
        Some(Poll::Message(m, key)) => axum::Json(render(m, key, bom)).into_response(),
    }
}

async fn delete_message(
    State(shared): SimState,
    Path((_p, message)): Path<(u64, u64)>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::MESSAGES_DELETE, &headers).await {
        return r;
    }
    let session_id = query_param(&q, "sessionId").unwrap_or_default().to_string();
    shared.update(|w| {
        let agent = match runner_of(w, &headers, endpoint::MESSAGES_DELETE, Family::Vss) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if w.sessions
            .get(&session_id)
            .is_none_or(|s| s.agent_id != agent)
        {
            return session_expired();
        }
        let Some(found) = w
            .agents
            .get(&agent)
            .and_then(|a| a.inbox.iter().find(|m| m.id == message))
            .cloned()
        else {
            let name = runner_name(w, agent);
            if w.agents
                .get(&agent)
                .is_some_and(|a| a.deleted_messages.contains(&message))
            {
                w.violation(
                    endpoint::MESSAGES_DELETE,
                    name,
                    format!("message {message} deleted (acknowledged) twice"),
                );
            }
            return StatusCode::OK.into_response();
        };
        if let Some(a) = w.agents.get_mut(&agent) {
            a.deleted_messages.push(message);
        }
        match found.kind {
            InboxKind::Job(job) => {
                let migrated = w
                    .jobs
                    .get(&job)
                    .is_some_and(|j| j.flow == Some(JobFlow::RunService));
                if migrated {
                    if let Some(m) = w
                        .agents
                        .get_mut(&agent)
                        .and_then(|a| a.inbox.iter_mut().find(|m| m.id == message))
                    {
                        m.migration_deleted = true;
                    }
                } else {
                    let _ = w.take(job, agent, endpoint::MESSAGES_DELETE);
                    if let Some(a) = w.agents.get_mut(&agent) {
                        a.inbox.retain(|m| m.id != message);
                    }
                }
            }
            InboxKind::Cancel(_) | InboxKind::Other { .. } => {
                if let Some(a) = w.agents.get_mut(&agent) {
                    a.inbox.retain(|m| m.id != message);
                }
            }
        }
        StatusCode::OK.into_response()
    })
}

fn job_not_found() -> Response {
    vss_error(
        StatusCode::NOT_FOUND,
        "TaskAgentJobNotFoundException",
        "The job request was not found.",
    )
}

async fn update_job_request(
    State(shared): SimState,
    Path((_p, request)): Path<(u64, u64)>,
    headers: HeaderMap,
    Query(q): Q,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::JOB_REQUEST_UPDATE, &headers).await {
        return r;
    }
    let body = json_body(&body);
    // Both runners send the all-zero lock token (§5.4).
    let lock_token = query_param(&q, "lockToken").map(str::to_string);
    if lock_token.as_deref() != Some("00000000-0000-0000-0000-000000000000") {
        shared.update(|w| {
            w.violation(
                endpoint::JOB_REQUEST_UPDATE,
                None,
                format!("lockToken {lock_token:?} is not the zero GUID"),
            )
        });
    }
    shared.update(|w| {
        let agent = match runner_of(w, &headers, endpoint::JOB_REQUEST_UPDATE, Family::Vss) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let Some(job) = w
            .jobs
            .values()
            .find(|j| j.snapshot.request_id == request)
            .map(|j| j.snapshot.id)
        else {
            return job_not_found();
        };
        let name = runner_name(w, agent);
        if !w.check_flow(job, JobFlow::Pipelines, endpoint::JOB_REQUEST_UPDATE, name) {
            return job_not_found();
        }
        if field(&body, "requestId")
            .and_then(|v| v.as_u64())
            .is_some_and(|r| r != request)
        {
            let name = runner_name(w, agent);
            w.violation(
                endpoint::JOB_REQUEST_UPDATE,
                name,
                "body requestId differs from the path",
            );
            return vss_error(
                StatusCode::BAD_REQUEST,
                "ArgumentException",
                "requestId mismatch",
            );
        }
        if let Err(e) = w.take(job, agent, endpoint::JOB_REQUEST_UPDATE) {
            if e == TakeError::NotYours {
                let name = runner_name(w, agent);
                w.violation(
                    endpoint::JOB_REQUEST_UPDATE,
                    name,
                    format!("renewed job request {request} that was not offered to it"),
                );
            }
            return job_not_found();
        }
        let finish = field(&body, "finishTime").is_some_and(|v| !v.is_null());
        let result = field(&body, "result")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        if finish {
            let result = result.unwrap_or_default();
            let name = runner_name(w, agent);
            let path = CompletionPath::JobRequestFinish;
            return match w.report_completion(
                job,
                &result,
                path,
                None,
                endpoint::JOB_REQUEST_UPDATE,
                name,
            ) {
                Ok(_) => {
                    axum::Json(json!({ "requestId": request, "result": result })).into_response()
                }
                Err(ReportError::BadResult) => vss_error(
                    StatusCode::BAD_REQUEST,
                    "ArgumentException",
                    "unknown result",
                ),
                Err(_) => job_not_found(),
            };
        }
        match w.renew(job) {
            Ok(until) => {
                let snap = w.jobs.get(&job).map(|j| j.snapshot.clone());
                let name = runner_name(w, agent);
                axum::Json(json!({
                    "requestId": request,
                    "lockedUntil": until.to_rfc3339(),
                    "jobId": snap.as_ref().map(|s| s.orchestration_id.clone()),
                    "jobName": snap.as_ref().map(|s| s.job_name.clone()),
                    "planType": "Actions",
                    "poolId": 1,
                    "reservedAgent": { "id": agent, "name": name },
                    "queueTime": snap.as_ref().map(|s| s.created_at.to_rfc3339()),
                }))
                .into_response()
            }
            Err(_) => job_not_found(),
        }
    })
}

/// The legacy way to fetch a `RunnerJobRequest` without a run service URL (§5.1).
async fn legacy_job_message(
    State(shared): SimState,
    Path(message): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::LEGACY_JOB_MESSAGE, &headers).await {
        return r;
    }
    shared.update(|w| {
        let agent = match runner_of(w, &headers, endpoint::LEGACY_JOB_MESSAGE, Family::Vss) {
            Ok(a) => a,
            Err(r) => return r,
        };
        match w.acquire(agent, &message, endpoint::LEGACY_JOB_MESSAGE) {
            Ok(m) => axum::Json(m).into_response(),
            Err(AcquireError::AlreadyAcquired) => vss_error(
                StatusCode::CONFLICT,
                "TaskAgentJobAlreadyAcquiredException",
                "The job was already acquired.",
            ),
            Err(_) => job_not_found(),
        }
    })
}
