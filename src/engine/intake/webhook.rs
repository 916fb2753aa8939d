//! The webhook listener: verify, de-duplicate, record, enqueue, answer.
//!
//! Owns the HTTP face of intake. The `X-Hub-Signature-256` HMAC is checked over the raw bytes
//! in constant time before anything is parsed; `sha1=` signatures are refused. The handler
//! never waits on the engine: it enqueues with `try_send` and answers in milliseconds, far
//! inside GitHub's 10 s. It must not log payloads or the secret.

use super::dedupe::DeliveryLog;
use super::{IntakeCounters, parse_workflow_job_payload};
use crate::engine::dispatch::{Input, Source};
use crate::secret::Secret;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Largest accepted body (GitHub caps payloads at 25 MB).
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// GitHub's delivery ids are GUIDs; anything much longer is not from GitHub.
pub const MAX_DELIVERY_ID_BYTES: usize = 64;

/// Deliveries handled at once; more get 503 (GitHub shows them as failed, polling recovers).
pub const MAX_CONCURRENT_DELIVERIES: usize = 32;

/// How long one delivery (body included) may take.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature-256 header")]
    Missing,
    #[error("the signature is not `sha256=` followed by 64 hex digits")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Why the listener will not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error(
        "the webhook listener on {0} has no `secret`: anyone who can reach it could make megascaler register runners and run jobs. Set `secret:` (or MEGASCALER_WEBHOOK_SECRET) to the webhook's secret in GitHub, or, only on a trusted network, set `insecure_unsigned_webhooks: true`"
    )]
    NoSecret(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Verifies a `X-Hub-Signature-256` header value over `body`, in constant time.
pub fn verify_signature(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_part = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// `sha256=<hex>` for `body`: what GitHub sends (used by tests and the simulator).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What the handler shares.
pub struct ListenerState {
    /// `None` only with `insecure_unsigned_webhooks: true`.
    pub secret: Option<Secret>,
    pub inputs: mpsc::Sender<Input>,
    pub counters: Arc<IntakeCounters>,
    pub deliveries: Mutex<DeliveryLog>,
}

/// The router: every path accepts POSTed deliveries (as the seed did), `/webhook` included.
pub fn router(state: Arc<ListenerState>) -> Router {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_DELIVERIES));
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(permits, limit))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(
    State(state): State<Arc<ListenerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let reject = |why: SignatureError| {
        let mut n = 0;
        state.counters.update(|s| {
            s.rejected += 1;
            n = s.rejected;
        });
        // Counted always, logged rarely: unsigned traffic must not flood the log.
        if n == 1 || n % 100 == 0 {
            tracing::warn!("webhook rejected ({n} so far): {why}");
        }
        (StatusCode::UNAUTHORIZED, "bad signature\n")
    };
    if let Some(secret) = &state.secret {
        if let Err(why) = verify_signature(
            secret.expose().as_bytes(),
            header(&headers, "x-hub-signature-256"),
            &body,
        ) {
            return reject(why);
        }
    }
    let event = header(&headers, "x-github-event")
        .unwrap_or_default()
        .to_string();
    let delivery = header(&headers, "x-github-delivery")
        .unwrap_or_default()
        .to_string();
    state.counters.update(|s| {
        s.deliveries += 1;
        s.last_delivery = Some(chrono::Utc::now());
    });
    if event == "ping" {
        return (StatusCode::OK, "pong\n");
    }
    if event != "workflow_job" {
        return (StatusCode::ACCEPTED, "ignored\n");
    }
    let form = header(&headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let parsed: Option<serde_json::Value> = if form {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            .ok()
            .and_then(|fields| fields.into_iter().find(|(k, _)| k == "payload"))
            .and_then(|(_, p)| serde_json::from_str(&p).ok())
    } else {
        serde_json::from_slice(&body).ok()
    };
    let Some(payload) = parsed else {
        return (StatusCode::BAD_REQUEST, "malformed payload\n");
    };
    if delivery.len() > MAX_DELIVERY_ID_BYTES {
        return (StatusCode::BAD_REQUEST, "X-GitHub-Delivery is too long\n");
    }
    let seen = !delivery.is_empty()
        && state
            .deliveries
            .lock()
            .map(|d| d.contains(&delivery))
            .unwrap_or(false);
    if seen {
        state.counters.update(|s| s.duplicates += 1);
        return (StatusCode::OK, "duplicate delivery\n");
    }
    let Some(job) = parse_workflow_job_payload(&payload) else {
        return (StatusCode::ACCEPTED, "not a job megascaler can use\n");
    };
    match state.inputs.try_send(Input::Observed {
        job,
        source: Source::Webhook,
    }) {
        Ok(()) => {
            // Recorded only once enqueued, so a delivery refused with 503 can be redelivered.
            if !delivery.is_empty() {
                if let Ok(mut d) = state.deliveries.lock() {
                    d.first_time(&delivery);
                }
            }
            (StatusCode::ACCEPTED, "queued\n")
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "engine busy, redeliver later\n",
        ),
    }
}

/// Bounds concurrent deliveries and how long one may take (a slow or huge body must not pin
/// the listener); answers 503 when full and 408 when too slow.
async fn limit(State(permits): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    let Ok(_permit) = permits.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many deliveries at once\n",
        )
            .into_response();
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "delivery took too long\n").into_response(),
    }
}

/// Checks that a listener may start: a secret, or the explicit insecure opt-in.
pub fn secret_for(
    addr: SocketAddr,
    secret: Option<&Secret>,
    insecure: bool,
) -> Result<Option<Secret>, ListenerError> {
    match (secret, insecure) {
        (Some(s), _) => Ok(Some(s.clone())),
        (None, true) => {
            tracing::warn!(
                "webhook listener on {addr} accepts UNSIGNED deliveries (insecure_unsigned_webhooks: true)"
            );
            Ok(None)
        }
        (None, false) => Err(ListenerError::NoSecret(addr)),
    }
}

/// Binds and serves until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<ListenerState>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ListenerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ListenerError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let app = router(state);
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!("webhook listener stopped: {e}");
        }
    });
    Ok((bound, task))
}
