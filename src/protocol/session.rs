//! Message sessions and polls: v1 pipelines sessions and the broker (spec §4.2–§4.6).
//!
//! Owns the wire calls of listening: create and delete a session, long-poll for a message,
//! delete (v1) or acknowledge (broker) a message, and decrypt v1 bodies with the session key.
//! Which call to make when is the runner's loop ([`super::runner`]); this module only performs
//! one call and reports failures with their status and class.

use super::crypto::{RunnerKey, SessionKey};
use super::http::{self, Auth, Call, CallError};
use super::location::{Locations, ids};
use super::messages::RawMessage;
use super::registration::{RUNNER_VERSION, RegisteredAgent};
use crate::secret::Secret;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Where a runner listens.
#[derive(Debug, Clone)]
pub enum Listener {
    /// Pipelines service sessions and messages.
    V1 { loc: Arc<Locations>, pool_id: u64 },
    /// The broker at this base URL.
    Broker { base: String },
}

/// An open session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// The v1 message key, when the server encrypts.
    pub key: Option<SessionKey>,
    /// `brokerMigrationMessage.brokerBaseUrl` of a v1 session response.
    pub broker_migration: Option<String>,
}

/// `Online` while idle, `Busy` while a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Online,
    Busy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "Online",
            Status::Busy => "Busy",
        }
    }
}

/// The OS name the service expects (`Linux`, `macOS`, `Windows`).
pub fn os_name() -> &'static str {
    match std::env::consts::OS {
        "macos" => "macOS",
        "windows" => "Windows",
        _ => "Linux",
    }
}

/// The architecture name the service expects.
pub fn arch_name() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "X86",
        "aarch64" => "ARM64",
        "arm" => "ARM",
        _ => "X64",
    }
}

fn missing(what: &str) -> CallError {
    CallError::Decode {
        what: what.to_string(),
        message: "the service has no such location".into(),
    }
}

fn poll_query(session_id: &str, status: Status, last_message_id: Option<u64>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("sessionId", session_id);
    if let Some(id) = last_message_id {
        q.append_pair("lastMessageId", &id.to_string());
    }
    q.append_pair("status", status.as_str());
    q.append_pair("runnerVersion", RUNNER_VERSION);
    q.append_pair("os", os_name());
    q.append_pair("architecture", arch_name());
    q.append_pair("disableUpdate", "true");
    q.finish()
}

/// Creates a session (v1 `POST <sessions>` or broker `POST {base}session`).
pub async fn create(
    client: &reqwest::Client,
    listener: &Listener,
    token: &Secret,
    agent: &RegisteredAgent,
    key: &RunnerKey,
) -> Result<Session, CallError> {
    let body = json!({
        "sessionId": "00000000-0000-0000-0000-000000000000",
        "ownerName": "megascaler",
        "agent": { "id": agent.agent_id, "name": agent.name, "version": RUNNER_VERSION,
                   "osDescription": format!("megascaler {}", std::env::consts::OS) },
        "useFipsEncryption": false,
    });
    let (url, api_version) = match listener {
        Listener::V1 { loc, pool_id } => (
            loc.url(ids::SESSIONS, &[("poolId", &pool_id.to_string())])
                .ok_or_else(|| missing("create session"))?,
            Some("5.1-preview.1"),
        ),
        Listener::Broker { base } => (http::join_segment(base, "session"), None),
    };
    let resp = http::execute(
        client,
        Call {
            what: "create session",
            method: Method::POST,
            url,
            api_version,
            auth: Auth::Bearer(token),
            body: Some(&body),
            timeout: None,
        },
    )
    .await?;
    let v: Value = http::require("create session", resp)?;
    let g = |o: &Value, k: &str| super::context::get_ci(o, k).cloned();
    let id = g(&v, "sessionId")
        .and_then(|s| s.as_str().map(str::to_string))
        .ok_or_else(|| CallError::Decode {
            what: "create session".into(),
            message: "no sessionId".into(),
        })?;
    let use_fips = g(&v, "useFipsEncryption")
        .and_then(|b| b.as_bool())
        .unwrap_or(false);
    let session_key = match g(&v, "encryptionKey") {
        Some(ek) if ek.is_object() => {
            let value = g(&ek, "value").and_then(|s| s.as_str().map(str::to_string));
            match value {
                Some(val) if !val.is_empty() => {
                    let encrypted = g(&ek, "encrypted")
                        .and_then(|b| b.as_bool())
                        .unwrap_or(false);
                    Some(
                        SessionKey::unwrap(key, &val, encrypted, use_fips).map_err(|e| {
                            CallError::Decode {
                                what: "create session".into(),
                                message: e.to_string(),
                            }
                        })?,
                    )
                }
                _ => None,
            }
        }
        _ => None,
    };
    let broker_migration = g(&v, "brokerMigrationMessage")
        .and_then(|m| g(&m, "brokerBaseUrl"))
        .and_then(|u| u.as_str().map(str::to_string))
        .filter(|u| !u.is_empty());
    Ok(Session {
        id,
        key: session_key,
        broker_migration,
    })
}

/// Deletes a session (best effort; callers ignore errors for ephemeral runners, E31).
pub async fn delete(
    client: &reqwest::Client,
    listener: &Listener,
    token: &Secret,
    session_id: &str,
) -> Result<(), CallError> {
    let (url, api_version) = match listener {
        Listener::V1 { loc, pool_id } => (
            loc.url(
                ids::SESSIONS,
                &[("poolId", &pool_id.to_string()), ("sessionId", session_id)],
            )
            .ok_or_else(|| missing("delete session"))?,
            Some("5.1-preview.1"),
        ),
        Listener::Broker { base } => (http::join_segment(base, "session"), None),
    };
    http::execute(
        client,
        Call {
            what: "delete session",
            method: Method::DELETE,
            url,
            api_version,
            auth: Auth::Bearer(token),
            body: None,
            timeout: Some(Duration::from_secs(30)),
        },
    )
    .await
    .map(|_| ())
}

/// One long poll. `Ok(None)`: no message in this window.
pub async fn poll(
    client: &reqwest::Client,
    listener: &Listener,
    token: &Secret,
    session_id: &str,
    status: Status,
    last_message_id: Option<u64>,
    timeout: Duration,
) -> Result<Option<RawMessage>, CallError> {
    let (url, api_version) = match listener {
        Listener::V1 { loc, pool_id } => {
            let base = loc
                .url(ids::MESSAGES, &[("poolId", &pool_id.to_string())])
                .ok_or_else(|| missing("poll"))?;
            (
                format!("{base}?{}", poll_query(session_id, status, last_message_id)),
                Some("6.0-preview.1"),
            )
        }
        Listener::Broker { base } => (
            format!(
                "{}?{}",
                http::join_segment(base, "message"),
                poll_query(session_id, status, None)
            ),
            None,
        ),
    };
    let resp = http::execute(
        client,
        Call {
            what: "poll",
            method: Method::GET,
            url,
            api_version,
            auth: Auth::Bearer(token),
            body: None,
            timeout: Some(timeout),
        },
    )
    .await?;
    match resp {
        None => Ok(None),
        Some(b) => Ok(Some(http::decode("poll", &b)?)),
    }
}

/// v1: `DELETE <messages with poolId, messageId>?sessionId=…` (the acknowledgement).
pub async fn delete_message(
    client: &reqwest::Client,
    loc: &Locations,
    pool_id: u64,
    token: &Secret,
    session_id: &str,
    message_id: u64,
) -> Result<(), CallError> {
    let base = loc
        .url(
            ids::MESSAGES,
            &[
                ("poolId", &pool_id.to_string()),
                ("messageId", &message_id.to_string()),
            ],
        )
        .ok_or_else(|| missing("delete message"))?;
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sessionId", session_id)
        .finish();
    http::execute(
        client,
        Call {
            what: "delete message",
            method: Method::DELETE,
            url: format!("{base}?{q}"),
            api_version: Some("5.1-preview.1"),
            auth: Auth::Bearer(token),
            body: None,
            timeout: None,
        },
    )
    .await
    .map(|_| ())
}

/// Broker: `POST {base}acknowledge?…` `{ "runnerRequestId" }` (5 s, spec §4.5).
pub async fn acknowledge(
    client: &reqwest::Client,
    base: &str,
    token: &Secret,
    session_id: &str,
    status: Status,
    runner_request_id: &str,
) -> Result<(), CallError> {
    let body = json!({ "runnerRequestId": runner_request_id });
    http::execute(
        client,
        Call {
            what: "acknowledge",
            method: Method::POST,
            url: format!(
                "{}?{}",
                http::join_segment(base, "acknowledge"),
                poll_query(session_id, status, None)
            ),
            api_version: None,
            auth: Auth::Bearer(token),
            body: Some(&body),
            timeout: Some(Duration::from_secs(5)),
        },
    )
    .await
    .map(|_| ())
}

/// The body as text: decrypted when the session has a key and the message an `iv` (§4.4).
pub fn body_text(session: &Session, msg: &RawMessage) -> Result<String, CallError> {
    match (&session.key, msg.iv.as_deref().filter(|iv| !iv.is_empty())) {
        (Some(key), Some(iv)) => key
            .decrypt_body(iv, &msg.body)
            .map_err(|e| CallError::Decode {
                what: "message body".into(),
                message: e.to_string(),
            }),
        _ => Ok(msg.body.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_query_omits_the_first_last_message_id() {
        let q = poll_query("s 1", Status::Online, None);
        assert!(
            q.starts_with("sessionId=s+1&status=Online&runnerVersion=3.0.0"),
            "{q}"
        );
        assert!(!q.contains("lastMessageId"));
        let q = poll_query("s", Status::Busy, Some(7));
        assert!(q.contains("lastMessageId=7&status=Busy") && q.ends_with("disableUpdate=true"));
    }
}
