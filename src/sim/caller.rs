//! Who is calling: which credential a Bearer token is, and refusing the wrong one.
//!
//! Owns classifying a `Bearer` token as a registration JWT, a runner OAuth token or a job
//! token, and the 401 answers (with a recorded violation) when a caller presents the wrong
//! kind, e.g. a runner token where the job token belongs (E23). No IO.

use super::http::{Credential, Family, credential, family_error};
use super::tokens::{Grant, TokenRefusal};
use super::world::World;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::Utc;

/// The kinds of Bearer credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Jwt,
    Runner,
    Job,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    Jwt(String),
    Runner(u64),
    Job(u64),
}

fn describe(grant: &Grant) -> &'static str {
    match grant {
        Grant::Registration { .. } => "a registration token",
        Grant::Jwt { .. } => "the registration JWT",
        Grant::OAuth { .. } => "a runner OAuth token",
        Grant::Job { .. } => "a job token",
    }
}

fn want_name(want: Want) -> &'static str {
    match want {
        Want::Jwt => "the registration JWT",
        Want::Runner => "the runner OAuth token",
        Want::Job => "the job token",
    }
}

fn unauthorized(family: Family, message: &str) -> Response {
    let kind = match family {
        Family::Broker => "Unauthorized",
        Family::OAuth => "invalid_token",
        _ => "VssUnauthorizedException",
    };
    family_error(family, 401, kind, message)
}

/// The caller if it presents `Bearer` with a valid token of the wanted kind; otherwise the
/// 401 answer, recording a violation when the token was valid but of the wrong kind or the
/// scheme was wrong.
pub(crate) fn require(
    w: &mut World,
    headers: &HeaderMap,
    want: Want,
    endpoint: &str,
    family: Family,
) -> Result<Caller, Response> {
    let token = match credential(headers) {
        Credential::Bearer(t) => t,
        Credential::None => return Err(unauthorized(family, "authentication required")),
        other => {
            w.violation(
                endpoint,
                None,
                format!(
                    "wrong auth scheme {} (expected Bearer {})",
                    other.scheme(),
                    want_name(want)
                ),
            );
            return Err(unauthorized(family, "unsupported authorization scheme"));
        }
    };
    let grant = match w.tokens.check(&token, Utc::now()) {
        Ok(g) => g.clone(),
        Err(TokenRefusal::Expired) => {
            if w.tokens.kind_of(&token) == Some(crate::sim::TokenKind::OAuthTokens) {
                w.counters.expired_oauth_calls += 1;
            }
            return Err(unauthorized(family, "token expired"));
        }
        Err(TokenRefusal::Unknown) => {
            if token == w.cfg.pat {
                w.violation(
                    endpoint,
                    None,
                    format!("the PAT sent where {} belongs", want_name(want)),
                );
            }
            return Err(unauthorized(family, "token not recognised"));
        }
    };
    let caller = match (&grant, want) {
        (Grant::Jwt { scope }, Want::Jwt) => Some(Caller::Jwt(scope.clone())),
        (Grant::OAuth { agent_id }, Want::Runner) => Some(Caller::Runner(*agent_id)),
        (Grant::Job { job_id }, Want::Job) => Some(Caller::Job(*job_id)),
        _ => None,
    };
    match caller {
        Some(c) => Ok(c),
        None => {
            let runner = match grant {
                Grant::OAuth { agent_id } => w.agents.get(&agent_id).map(|a| a.name.clone()),
                _ => None,
            };
            w.violation(
                endpoint,
                runner,
                format!(
                    "{} used where {} belongs",
                    describe(&grant),
                    want_name(want)
                ),
            );
            let message = if want == Want::Job {
                "not authorized for this job"
            } else {
                "token not valid for this resource"
            };
            Err(unauthorized(family, message))
        }
    }
}

pub(crate) fn runner_name(w: &World, agent: u64) -> Option<String> {
    w.agents.get(&agent).map(|a| a.name.clone())
}
