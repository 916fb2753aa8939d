//! The HTTP layer of the runner protocol: VSS-style and raw JSON requests, error bodies.
//!
//! Owns building a request (User-Agent, `api-version` media types, auth scheme), sending it,
//! and turning a failure into a [`CallError`] that carries the status and the server's
//! classification (`typeKey`, broker `errorKind`, OAuth `error`) so callers branch on those,
//! never on message text (spec §2.2, §2.3). It never puts a token in an error or a log line.

use crate::secret::Secret;
use bytes::Bytes;
use reqwest::Method;
use std::time::Duration;

/// A non-success answer from a runner-protocol service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub status: u16,
    /// VSS wrapped exception `typeKey` (e.g. `TaskAgentSessionConflictException`).
    pub type_key: Option<String>,
    /// Broker `errorKind` (e.g. `RunnerSessionInvalid`).
    pub error_kind: Option<String>,
    /// OAuth `error` (e.g. `invalid_client`).
    pub oauth_error: Option<String>,
    /// The server's message, shortened.
    pub message: String,
    /// `Retry-After` seconds, when sent.
    pub retry_after: Option<Duration>,
}

impl ServiceError {
    /// True when `typeKey` or `errorKind` names this class (case-insensitive).
    pub fn is(&self, class: &str) -> bool {
        let eq = |v: &Option<String>| v.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(class));
        eq(&self.type_key) || eq(&self.error_kind)
    }

    /// The OAuth error code, when it is this one.
    pub fn oauth_is(&self, code: &str) -> bool {
        self.oauth_error
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(code))
    }
}

/// Why a protocol call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("{what}: HTTP {status}{class}: {message}", status = .error.status, class = class_suffix(.error), message = .error.message)]
    Service {
        what: String,
        error: Box<ServiceError>,
    },
    #[error("{what}: {message}")]
    Transport { what: String, message: String },
    #[error("{what}: unexpected response: {message}")]
    Decode { what: String, message: String },
}

fn class_suffix(e: &ServiceError) -> String {
    match (&e.type_key, &e.error_kind, &e.oauth_error) {
        (Some(t), _, _) => format!(" {t}"),
        (_, Some(k), _) => format!(" {k}"),
        (_, _, Some(o)) => format!(" {o}"),
        _ => String::new(),
    }
}

impl CallError {
    /// The service error, when the server answered.
    pub fn service(&self) -> Option<&ServiceError> {
        match self {
            CallError::Service { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        self.service().map(|e| e.status)
    }

    /// True for transport problems and 5xx/429: worth retrying after a pause.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Transport { .. } => true,
            CallError::Service { error, .. } => error.status >= 500 || error.status == 429,
            CallError::Decode { .. } => false,
        }
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    Bearer(&'a Secret),
    /// `RemoteAuth <registration token>` (runner-registration, runner-admin calls).
    RemoteAuth(&'a Secret),
    None,
}

/// One request to a protocol service.
pub struct Call<'a> {
    /// Names the call in errors (`create session`, `renewjob`…).
    pub what: &'a str,
    pub method: Method,
    pub url: String,
    /// VSS `api-version`; `None` for raw JSON services.
    pub api_version: Option<&'a str>,
    pub auth: Auth<'a>,
    pub body: Option<&'a serde_json::Value>,
    /// Overrides the client's timeout (long polls).
    pub timeout: Option<Duration>,
}

/// reqwest's error without its URL (query strings may carry ids we don't want in logs).
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", detail.chars().take(160).collect::<String>())
    }
}

/// Sends a call. `Ok(None)`: a 2xx without body (204, or empty 200/202), meaning "nothing".
pub async fn execute(http: &reqwest::Client, call: Call<'_>) -> Result<Option<Bytes>, CallError> {
    let mut url = call.url.clone();
    let mut req;
    if let Some(v) = call.api_version {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("api-version=");
        url.push_str(v);
        req = http
            .request(call.method.clone(), &url)
            .header("Accept", format!("application/json; api-version={v}"))
            .header("X-TFS-FedAuthRedirect", "Suppress")
            .header("X-VSS-E2EID", uuid::Uuid::new_v4().to_string());
        if let Some(b) = call.body {
            req = req
                .header(
                    "Content-Type",
                    format!("application/json; charset=utf-8; api-version={v}"),
                )
                .body(serde_json::to_vec(b).unwrap_or_default());
        }
    } else {
        req = http
            .request(call.method.clone(), &url)
            .header("Accept", "application/json");
        if let Some(b) = call.body {
            req = req
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(b).unwrap_or_default());
        }
    }
    req = match call.auth {
        Auth::Bearer(t) => req.bearer_auth(t.expose()),
        Auth::RemoteAuth(t) => req.header("Authorization", format!("RemoteAuth {}", t.expose())),
        Auth::None => req,
    };
    if let Some(t) = call.timeout {
        req = req.timeout(t);
    }
    let resp = req.send().await.map_err(|e| CallError::Transport {
        what: call.what.to_string(),
        message: describe_reqwest(&e),
    })?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let cap = if status.is_success() {
        super::redact::MAX_MESSAGE_BODY
    } else {
        super::redact::MAX_SMALL_BODY
    };
    let body = super::redact::read_capped(resp, cap)
        .await
        .map_err(|message| CallError::Transport {
            what: call.what.to_string(),
            message,
        })?;
    if status.is_success() {
        if status.as_u16() == 204 || body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        return Ok(Some(body));
    }
    let mut error = parse_error_body(status.as_u16(), &body, retry_after);
    let presented = match call.auth {
        Auth::Bearer(t) | Auth::RemoteAuth(t) => t.expose(),
        Auth::None => "",
    };
    error.message = super::redact::redact(&error.message, &[presented]);
    Err(CallError::Service {
        what: call.what.to_string(),
        error: Box::new(error),
    })
}

/// Reads the three error-body shapes (VSS wrapped exception, broker/run-service, OAuth).
pub fn parse_error_body(status: u16, body: &[u8], retry_after: Option<Duration>) -> ServiceError {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .filter(|x| !x.is_empty())
            .map(str::to_string)
    };
    let message = s("message")
        .or_else(|| s("errorMessage"))
        .or_else(|| s("error_description"))
        .unwrap_or_default();
    let message = super::redact::redact(&message, &[])
        .chars()
        .take(200)
        .collect();
    ServiceError {
        status,
        type_key: s("typeKey"),
        error_kind: s("errorKind"),
        oauth_error: s("error"),
        message,
        retry_after,
    }
}

/// Decodes a JSON body.
pub fn decode<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(body).map_err(|e| CallError::Decode {
        what: what.to_string(),
        message: super::redact::json_error(&e),
    })
}

/// Decodes a body that must be present.
pub fn require<T: serde::de::DeserializeOwned>(
    what: &str,
    body: Option<Bytes>,
) -> Result<T, CallError> {
    match body {
        Some(b) => decode(what, &b),
        None => Err(CallError::Decode {
            what: what.to_string(),
            message: "empty body".to_string(),
        }),
    }
}

/// `base` with exactly one trailing slash, then `segment` (spec §2.3).
pub fn join_segment(base: &str, segment: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        segment.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shapes_are_classified() {
        let vss = br#"{"$id":"1","message":"conflict","typeKey":"TaskAgentSessionConflictException","errorCode":0}"#;
        let e = parse_error_body(409, vss, None);
        assert!(e.is("taskagentsessionconflictexception"));
        let broker = br#"{"source":"actions-broker-listener","errorKind":"RunnerNotFound","statusCode":404,"errorMessage":"gone"}"#;
        let e = parse_error_body(404, broker, None);
        assert!(e.is("RunnerNotFound") && e.message == "gone");
        let oauth = br#"{"error":"invalid_client","error_description":"no such client"}"#;
        let e = parse_error_body(400, oauth, None);
        assert!(e.oauth_is("invalid_client"));
        let junk = parse_error_body(502, b"<html>", None);
        assert_eq!((junk.status, junk.type_key), (502, None));
    }

    #[test]
    fn segments_join_with_one_slash() {
        assert_eq!(
            join_segment("https://b/x", "message"),
            "https://b/x/message"
        );
        assert_eq!(
            join_segment("https://b/x/", "/message"),
            "https://b/x/message"
        );
    }
}
