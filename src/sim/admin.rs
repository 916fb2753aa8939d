//! Runner registration on the GitHub side: `runner-registration` (§3.3) and the runner-admin
//! ("v2") endpoints (§3.6).
//!
//! Owns turning a registration token into tenant credentials (TenantURL + registration JWT with
//! `exp`, `use_v2_flow` as configured) and registering runners through `runners/register`.
//! It refuses wrong schemes and unknown or expired tokens with 401, as GitHub does.

use super::config::AdminAuth;
use super::crypto::RunnerKey;
use super::http::{Credential, SimState, begin, credential, field, json_body, rest_error};
use super::model::endpoint;
use super::server::Shared;
use super::tokens::Grant;
use super::world::NewAgent;
use super::world::World;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::json;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/api/v3/actions/runner-registration",
            post(runner_registration),
        )
        .route("/api/v3/actions/runners/register", post(register))
        .route(
            "/api/v3/repos/{owner}/{repo}/actions/runner-groups",
            get(repo_groups),
        )
        .route("/api/v3/orgs/{org}/actions/runner-groups", get(org_groups))
}

async fn runner_registration(State(shared): SimState, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = begin(&shared, endpoint::RUNNER_REGISTRATION, &headers).await {
        return r;
    }
    let body = json_body(&body);
    let url = field(&body, "url")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let has_ua = super::http::has_user_agent(&headers);
    shared.update(|w| {
        let token = match credential(&headers) {
            Credential::RemoteAuth(t) => t,
            other => {
                w.violation(
                    endpoint::RUNNER_REGISTRATION,
                    None,
                    format!(
                        "runner-registration needs `RemoteAuth <token>`, got scheme {}",
                        other.scheme()
                    ),
                );
                return rest_error(StatusCode::UNAUTHORIZED, "Bad credentials");
            }
        };
        let token_scope = match w.tokens.check(&token, Utc::now()) {
            Ok(Grant::Registration { scope, .. }) => scope.clone(),
            _ => return rest_error(StatusCode::UNAUTHORIZED, "Bad credentials"),
        };
        let Some(scope) = w.scope_of_url(&url) else {
            return rest_error(StatusCode::NOT_FOUND, "Not Found");
        };
        if !scope.eq_ignore_ascii_case(&token_scope) {
            return rest_error(
                StatusCode::FORBIDDEN,
                "registration token is for another scope",
            );
        }
        let audience = w.tenant_url();
        let lifetime = w.cfg.registration_jwt_lifetime;
        let (jwt, _) =
            w.tokens
                .mint_jwt(Grant::Jwt { scope }, &audience, None, Utc::now(), lifetime);
        // E1: without a User-Agent GitHub answers a URL that cannot work (§2.1).
        let (url, v2) = if has_ua {
            (w.tenant_url(), w.cfg.use_v2_flow)
        } else {
            (format!("{}rest", w.broker_url()), false)
        };
        axum::Json(json!({
            "url": url,
            "token_schema": "OAuthAccessToken",
            "token": jwt,
            "use_v2_flow": v2,
        }))
        .into_response()
    })
}

/// The scope a runner-admin credential is good for, or the 401 answer.
pub(crate) fn admin_scope(
    w: &mut World,
    headers: &HeaderMap,
    endpoint: &str,
) -> Result<String, Response> {
    let now = Utc::now();
    let mode = w.cfg.admin_auth;
    let cred = credential(headers);
    let scope = match (&cred, mode) {
        (Credential::RemoteAuth(t), AdminAuth::RegistrationToken | AdminAuth::Either) => {
            match w.tokens.check(t, now) {
                Ok(Grant::Registration { scope, .. }) => Some(scope.clone()),
                _ => None,
            }
        }
        (Credential::Bearer(t), AdminAuth::Jwt | AdminAuth::Either) => match w.tokens.check(t, now)
        {
            Ok(Grant::Jwt { scope }) => Some(scope.clone()),
            _ => None,
        },
        // §3.6 is UNSURE which of the two GitHub accepts: a client tries AR's RemoteAuth
        // registration token and falls back to the Bearer JWT, so the one this mode does not
        // take is a plain refusal, not a violation.
        (Credential::RemoteAuth(_) | Credential::Bearer(_), _) => None,
        _ => {
            w.violation(
                endpoint,
                None,
                format!(
                    "runner-admin call with scheme {} (accepted: {mode:?})",
                    cred.scheme()
                ),
            );
            None
        }
    };
    scope.ok_or_else(|| rest_error(StatusCode::UNAUTHORIZED, "Bad credentials"))
}

fn groups_answer() -> Response {
    axum::Json(json!({
        "total_count": 1,
        "runner_groups": [{
            "id": 1, "name": "Default", "visibility": "all", "default": true,
            "allows_public_repositories": false, "is_hosted": false,
            "restricted_to_workflows": false, "selected_workflows": [],
            "workflow_restrictions_read_only": false,
        }],
    }))
    .into_response()
}

async fn repo_groups(
    State(shared): SimState,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    groups(&shared, format!("{owner}/{repo}"), &headers).await
}

async fn org_groups(
    State(shared): SimState,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Response {
    groups(&shared, org, &headers).await
}

async fn groups(shared: &Shared, scope: String, headers: &HeaderMap) -> Response {
    if let Err(r) = begin(shared, endpoint::RUNNER_GROUPS, headers).await {
        return r;
    }
    // A PAT works here too (REST); runner-admin credentials as §3.6.
    if let Err(r) = super::rest::authorize(shared, headers, Some(&scope), endpoint::RUNNER_GROUPS) {
        return r;
    }
    groups_answer()
}

async fn register(State(shared): SimState, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = begin(&shared, endpoint::ADMIN_REGISTER, &headers).await {
        return r;
    }
    let body = json_body(&body);
    let text = |k: &str| {
        field(&body, k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    shared.update(|w| {
        let scope = match admin_scope(w, &headers, endpoint::ADMIN_REGISTER) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if w.scope_of_url(&text("url"))
            .is_none_or(|s| !s.eq_ignore_ascii_case(&scope))
        {
            return rest_error(StatusCode::FORBIDDEN, "credential is for another scope");
        }
        let Some(key) = RunnerKey::from_xml(&text("public_key")) else {
            return rest_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "public_key must be an RSAKeyValue XML string",
            );
        };
        let labels: Vec<String> = field(&body, "labels")
            .and_then(|l| l.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.get("name").and_then(|n| n.as_str()).or(l.as_str()))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let name = text("name");
        if name.is_empty() {
            return rest_error(StatusCode::UNPROCESSABLE_ENTITY, "name is required");
        }
        let replace = field(&body, "replace")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if replace && let Some(old) = w.agent_by_name(&name).map(|a| a.id) {
            w.delete_agent(old);
        }
        let added = w.add_agent(NewAgent {
            scope,
            name,
            labels,
            ephemeral: field(&body, "ephemeral")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            key,
            version: text("version"),
            os_description: String::new(),
            runner_admin: true,
        });
        let agent = match added {
            Ok(a) => a,
            Err(_) => {
                return rest_error(
                    StatusCode::CONFLICT,
                    "A runner with this name already exists",
                );
            }
        };
        axum::Json(json!({
            "id": agent.id,
            "name": agent.name,
            "os": "linux",
            "status": "offline",
            "busy": false,
            "ephemeral": agent.ephemeral,
            "labels": super::rest::labels_json(&agent.labels),
            "authorization": {
                "authorization_url": w.token_url(&agent.client_id),
                "server_url": w.broker_url(),
                "client_id": agent.client_id,
            },
        }))
        .into_response()
    })
}
