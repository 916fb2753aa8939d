//! The runner's OAuth access token: client-credentials with a JWT client assertion (spec §3.7).
//!
//! Owns signing the assertion with the runner key (RS256 or PS256 by the spec's rule, retrying
//! once with the other algorithm on `invalid_client`), caching the access token until shortly
//! before `expires_in`, refreshing single-flight, and classifying refusals: `invalid_client` or
//! `invalid_grant` means the runner no longer exists (E6); "Current server time is" is clock
//! skew (E7). Never logs the assertion or the token.

use super::crypto::{AssertionAlg, RunnerKey};
use super::http::{self, CallError};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why no access token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// E6: `invalid_client` / `invalid_grant` — the registration is gone.
    #[error("the runner's OAuth client was refused ({0}): the runner no longer exists")]
    RunnerGone(String),
    /// E7: the server says our clock is off.
    #[error("OAuth token refused for clock skew")]
    ClockSkew,
    #[error(transparent)]
    Call(#[from] CallError),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct Cached {
    token: Secret,
    refresh_at: DateTime<Utc>,
}

/// How long a new access token is used before it is refreshed: `expires_in` − margin, but at
/// least half the lifetime (a short-lived token is still used), with `expires_in` clamped to a
/// day so server-chosen values cannot overflow date arithmetic.
pub fn refresh_after(expires_in: Option<u64>, margin: Duration) -> Duration {
    let lifetime = Duration::from_secs(expires_in.unwrap_or(3600).clamp(1, 86_400));
    lifetime.saturating_sub(margin).max(lifetime / 2)
}

/// One runner's OAuth client. Cheap to share behind an `Arc`.
pub struct OAuthClient {
    http: reqwest::Client,
    key: Arc<RunnerKey>,
    client_id: String,
    token_url: String,
    alg: Mutex<AssertionAlg>,
    margin: Duration,
    cached: Mutex<Option<Cached>>,
    flight: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("alg", &self.alg())
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    pub fn new(
        http: reqwest::Client,
        key: Arc<RunnerKey>,
        client_id: String,
        token_url: String,
        alg: AssertionAlg,
        margin: Duration,
    ) -> Self {
        OAuthClient {
            http,
            key,
            client_id,
            token_url,
            alg: Mutex::new(alg),
            margin,
            cached: Mutex::new(None),
            flight: tokio::sync::Mutex::new(()),
        }
    }

    /// The algorithm currently used (it flips once if the server refuses the first choice).
    pub fn alg(&self) -> AssertionAlg {
        *self.alg.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self) -> Option<Secret> {
        let c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        c.as_ref()
            .filter(|c| Utc::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// A valid access token, refreshed before `expires_in` runs out.
    pub async fn token(&self) -> Result<Secret, OAuthError> {
        if let Some(t) = self.current() {
            return Ok(t);
        }
        let _f = self.flight.lock().await;
        if let Some(t) = self.current() {
            return Ok(t);
        }
        self.refresh_locked().await
    }

    /// Forgets the token (after a 401, or on `ForceTokenRefresh`) so the next call refreshes;
    /// `seen` guards against dropping a token another task just refreshed.
    pub fn invalidate(&self, seen: &Secret) {
        let mut c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if c.as_ref().is_some_and(|c| &c.token == seen) {
            *c = None;
        }
    }

    async fn refresh_locked(&self) -> Result<Secret, OAuthError> {
        let first = self.alg();
        match self.exchange(first).await {
            Err(OAuthError::RunnerGone(code)) if code == "invalid_client" => {
                // The key is ours; the server may only accept the other signature scheme.
                let other = first.other();
                let t = self.exchange(other).await?;
                *self.alg.lock().unwrap_or_else(|p| p.into_inner()) = other;
                Ok(t)
            }
            other => other,
        }
    }

    async fn exchange(&self, alg: AssertionAlg) -> Result<Secret, OAuthError> {
        let assertion = self
            .key
            .client_assertion(alg, &self.client_id, &self.token_url)
            .map_err(|e| {
                OAuthError::Call(CallError::Decode {
                    what: "client assertion".into(),
                    message: e.to_string(),
                })
            })?;
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.expose()),
        ];
        let body = serde_urlencoded::to_string(form).unwrap_or_default();
        let resp = self
            .http
            .post(&self.token_url)
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .header("Accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Transport {
                what: "oauth token".into(),
                message: http::describe_reqwest(&e),
            })?;
        let status = resp.status().as_u16();
        let bytes = super::redact::read_capped(resp, super::redact::MAX_SMALL_BODY)
            .await
            .map_err(|message| CallError::Transport {
                what: "oauth token".into(),
                message,
            })?;
        if (200..300).contains(&status) {
            let t: TokenResponse = http::decode("oauth token", &bytes)?;
            let keep = refresh_after(t.expires_in, self.margin);
            let token = Secret::new(t.access_token);
            *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
                token: token.clone(),
                refresh_at: Utc::now()
                    .checked_add_signed(chrono::Duration::from_std(keep).unwrap_or_default())
                    .unwrap_or_else(Utc::now),
            });
            return Ok(token);
        }
        let mut err = http::parse_error_body(status, &bytes, None);
        err.message = super::redact::redact(&err.message, &[assertion.expose()]);
        // Checked first: a skewed clock makes the assertion look invalid (`invalid_client`),
        // but the runner is not gone (E7; the service says so only in the description).
        if err.message.contains("Current server time is") {
            return Err(OAuthError::ClockSkew);
        }
        if err.oauth_is("invalid_client") {
            return Err(OAuthError::RunnerGone("invalid_client".into()));
        }
        if err.oauth_is("invalid_grant") {
            return Err(OAuthError::RunnerGone("invalid_grant".into()));
        }
        Err(OAuthError::Call(CallError::Service {
            what: "oauth token".into(),
            error: Box::new(err),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshed_before_expiry() {
        let m = Duration::from_secs(60);
        assert_eq!(refresh_after(Some(3600), m), Duration::from_secs(3540));
        assert_eq!(refresh_after(Some(100), m), Duration::from_secs(50));
        assert_eq!(refresh_after(None, m), Duration::from_secs(3540));
        assert_eq!(
            refresh_after(Some(u64::MAX), m),
            Duration::from_secs(86_340)
        );
        assert_eq!(refresh_after(Some(0), m), Duration::from_millis(500));
    }
}
