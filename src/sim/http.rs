//! What every simulated endpoint shares: the router, error shapes, credentials, faults.
//!
//! Owns the error body of each API family (REST message, VSS wrapped exception `typeKey`
//! §2.2, broker `errorKind` and run-service error §2.3, OAuth error), parsing the
//! `Authorization` header, and [`begin`], the preamble of every request: count the call, note a
//! missing User-Agent and the identifying headers, record a request that comes before the
//! `Retry-After` given for its endpoint and credential, apply an injected fault. It holds the
//! world lock only briefly.

use super::model::Fault;
use super::server::Shared;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use std::sync::Arc;

pub(crate) type SimState = axum::extract::State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(super::rest::routes())
        .merge(super::admin::routes())
        .merge(
            super::pipelines::routes().route_layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                require_api_version,
            )),
        )
        .merge(super::oauth::routes())
        .merge(super::broker::routes())
        .merge(super::control::routes())
        .fallback(|| async { rest_error(StatusCode::NOT_FOUND, "Not Found") })
        .with_state(shared)
}

/// The API families, each with its own error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Rest,
    Vss,
    Broker,
    Run,
    OAuth,
}

pub(crate) fn family_of(endpoint: &str) -> Family {
    match endpoint.split('.').next().unwrap_or_default() {
        "pipelines" => Family::Vss,
        "broker" => Family::Broker,
        "run" => Family::Run,
        "oauth" => Family::OAuth,
        _ => Family::Rest,
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub(crate) fn rest_error(code: StatusCode, message: &str) -> Response {
    let body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": code.as_u16().to_string(),
    });
    (code, axum::Json(body)).into_response()
}

/// VSS wrapped exception (§2.2).
pub(crate) fn vss_error(code: StatusCode, type_key: &str, message: &str) -> Response {
    let body = json!({
        "$id": "1",
        "innerException": null,
        "message": message,
        "typeName": format!("GitHub.DistributedTask.WebApi.{type_key}, Sdk"),
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": 3000,
    });
    (code, axum::Json(body)).into_response()
}

/// Broker error (§2.3).
pub(crate) fn broker_error(code: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({
        "source": "actions-broker-listener",
        "errorKind": kind,
        "statusCode": code.as_u16(),
        "errorMessage": message,
    });
    (code, axum::Json(body)).into_response()
}

/// Run-service error (§2.3).
pub(crate) fn run_error(code: StatusCode, message: &str) -> Response {
    let body = json!({
        "source": "actions-run-service",
        "statusCode": code.as_u16(),
        "errorMessage": message,
    });
    (code, axum::Json(body)).into_response()
}

pub(crate) fn oauth_error(code: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    (code, axum::Json(body)).into_response()
}

/// An error in the family's shape; `kind` is the `typeKey`/`errorKind`/OAuth `error`.
pub(crate) fn family_error(family: Family, code: u16, kind: &str, message: &str) -> Response {
    let code = status(code);
    match family {
        Family::Rest => rest_error(code, message),
        Family::Vss => vss_error(code, kind, message),
        Family::Broker => broker_error(code, kind, message),
        Family::Run => run_error(code, message),
        Family::OAuth => oauth_error(code, kind, message),
    }
}

fn default_kind(family: Family, code: u16) -> &'static str {
    match (family, code) {
        (Family::OAuth, _) => "server_error",
        (Family::Broker, _) => "InternalServerError",
        (_, 401) => "VssUnauthorizedException",
        (_, 403) => "AccessDeniedException",
        (_, 404) => "VssResourceNotFoundException",
        (_, 409) => "VssConflictException",
        _ => "VssServiceResponseException",
    }
}

/// The credential in `Authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    None,
    Bearer(String),
    RemoteAuth(String),
    /// `token <x>` (REST).
    Token(String),
    /// Basic: the password part.
    Basic(String),
    Other(String),
}

impl Credential {
    pub fn scheme(&self) -> &str {
        match self {
            Credential::None => "none",
            Credential::Bearer(_) => "Bearer",
            Credential::RemoteAuth(_) => "RemoteAuth",
            Credential::Token(_) => "token",
            Credential::Basic(_) => "Basic",
            Credential::Other(s) => s,
        }
    }
}

pub(crate) fn credential(headers: &HeaderMap) -> Credential {
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Credential::None;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim().to_string();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Credential::Bearer(rest),
        "remoteauth" => Credential::RemoteAuth(rest),
        "token" => Credential::Token(rest),
        "basic" => base64::engine::general_purpose::STANDARD
            .decode(rest.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(_, p)| p.to_string()))
            .map_or(Credential::Other("Basic".into()), Credential::Basic),
        // Only known scheme names are kept: an unknown one may be a bare token, which must
        // never reach a violation message or a log line.
        "digest" | "negotiate" | "ntlm" | "oauth" => Credential::Other(scheme.to_ascii_lowercase()),
        _ => Credential::Other("unknown scheme".to_string()),
    }
}

pub(crate) fn has_user_agent(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty())
}

/// `name: value` of the headers that identify the client (never a credential).
fn identifying_headers(family: Family, headers: &HeaderMap) -> Vec<String> {
    let mut names = vec!["user-agent"];
    if family == Family::Rest {
        names.extend(["accept", "x-github-api-version"]);
    }
    names
        .into_iter()
        .filter_map(|n| {
            let v = headers.get(n)?.to_str().ok()?;
            Some(format!("{n}: {v}"))
        })
        .collect()
}

/// What a `Retry-After` applies to: the endpoint and the presented credential (so one
/// runner's limit does not bind another). The credential is only hashed, never kept.
pub(crate) fn retry_key(endpoint: &str, headers: &HeaderMap) -> (String, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default()
        .hash(&mut h);
    (endpoint.to_string(), h.finish())
}

/// The preamble of every request: count it, record a missing User-Agent, apply any injected
/// fault. `Err` is the answer to send instead of handling the request.
pub(crate) async fn begin(
    shared: &Shared,
    endpoint: &str,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let ua = has_user_agent(headers);
    let key = retry_key(endpoint, headers);
    let family = family_of(endpoint);
    let seen = identifying_headers(family, headers);
    let (fault, hold) = shared.update(|w| {
        w.count(endpoint);
        w.seen_headers
            .entry(endpoint.to_string())
            .or_default()
            .extend(seen);
        if !ua {
            w.violation(endpoint, None, "request without a User-Agent header");
        }
        w.check_retry_after(endpoint, key.clone());
        let fault = w.take_fault(endpoint);
        if let Some(
            Fault::RateLimited { retry_after_secs }
            | Fault::SecondaryRateLimited { retry_after_secs },
        ) = &fault
        {
            w.stamp_retry_after(key, std::time::Duration::from_secs(*retry_after_secs));
        }
        (fault, w.cfg.fault_timeout)
    });
    match fault {
        None => Ok(()),
        Some(Fault::Delay { millis }) => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            Ok(())
        }
        Some(Fault::Timeout) => {
            tokio::select! {
                _ = tokio::time::sleep(hold) => {}
                _ = shared.shutdown.cancelled() => {}
            }
            Err(family_error(
                family,
                504,
                default_kind(family, 504),
                "gateway timeout (injected)",
            ))
        }
        Some(Fault::Status(code)) => Err(family_error(
            family,
            code,
            default_kind(family, code),
            &format!("injected fault: status {code}"),
        )),
        Some(Fault::Error { status, kind }) => Err(family_error(
            family,
            status,
            &kind,
            &format!("injected fault: {kind}"),
        )),
        Some(Fault::Raw { status: code, body }) => {
            let mut r = (status(code), body).into_response();
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Err(r)
        }
        Some(Fault::EchoCredential { status: code }) => {
            let credential = headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)");
            let message = format!("credential rejected: {credential}");
            Err(family_error(
                family,
                code,
                default_kind(family, code),
                &message,
            ))
        }
        Some(Fault::SecondaryRateLimited { retry_after_secs }) => {
            let mut response = family_error(
                family,
                403,
                "TooManyRequests",
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after_secs));
            Err(response)
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut response = family_error(
                family,
                429,
                "TooManyRequests",
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            let h = response.headers_mut();
            h.insert("retry-after", HeaderValue::from(retry_after_secs));
            if family == Family::Rest {
                h.insert("x-ratelimit-remaining", HeaderValue::from(0u32));
            }
            Err(response)
        }
    }
}

/// A query parameter, case-insensitively (VSS clients vary in case).
pub(crate) fn query_param<'a>(
    query: &'a std::collections::HashMap<String, String>,
    name: &str,
) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A JSON body field, case-insensitively (§2.2: the server matches property names so).
pub(crate) fn field<'a>(body: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    body.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Parses a JSON body; an empty or invalid body is `Null`.
pub(crate) fn json_body(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null)
}

/// A timestamp as GitHub writes it in REST and webhooks: `2026-01-01T10:34:58Z`.
pub(crate) fn github_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// VSS calls carry their API version in the media type (`Accept`/`Content-Type`
/// `…; api-version=X`) or the query (§2.2); a call without one is recorded (connectionData,
/// which AR calls anonymously, is exempt).
async fn require_api_version(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(path) = missing_api_version(&request) {
        shared.update(|w| w.violation("pipelines", None, format!("no api-version on {path}")));
    }
    next.run(request).await
}

/// The path of a VSS request that carries no api-version anywhere.
fn missing_api_version(request: &axum::extract::Request) -> Option<String> {
    let has = |v: &str| v.to_ascii_lowercase().contains("api-version=");
    let in_header = |name: axum::http::HeaderName| {
        request
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(has)
    };
    let in_query = request.uri().query().is_some_and(has);
    let exempt = request.uri().path().ends_with("/connectionData");
    let found = exempt
        || in_query
        || in_header(axum::http::header::ACCEPT)
        || in_header(axum::http::header::CONTENT_TYPE);
    (!found).then(|| request.uri().path().to_string())
}

/// The answer to a long poll that found nothing, as configured.
pub(crate) fn empty_poll(kind: super::config::EmptyPoll) -> Response {
    use super::config::EmptyPoll;
    match kind {
        EmptyPoll::Accepted => StatusCode::ACCEPTED.into_response(),
        EmptyPoll::NoContent => StatusCode::NO_CONTENT.into_response(),
        EmptyPoll::OkEmpty => StatusCode::OK.into_response(),
    }
}
