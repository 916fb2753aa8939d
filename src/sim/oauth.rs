//! The OAuth token endpoint (§3.7): runner client assertion → runner access token.
//!
//! Owns checking the client-credentials request and the assertion (RS256 or PS256 per config,
//! signed with the runner's registered key; `iss`/`sub` = client id, `aud` = this URL, `exp` at
//! most five minutes ahead) and issuing access tokens. A deleted runner is `invalid_client`.

use super::crypto::verify_client_assertion;
use super::http::{SimState, begin, oauth_error};
use super::model::endpoint;
use super::server::Shared;
use super::tokens::Grant;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/_services/token/_apis/oauth2/token/{client}", post(token))
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn token(
    State(shared): SimState,
    Path(client): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::OAUTH_TOKEN, &headers).await {
        return r;
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    if get("client_assertion_type") != ASSERTION_TYPE {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion_type must be jwt-bearer",
        );
    }
    let assertion = get("client_assertion").to_string();
    shared.update(|w| {
        let Some(agent) = w.agents.values().find(|a| a.client_id == client).cloned() else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "The client is not registered.",
            );
        };
        let url = w.token_url(&client);
        let now = Utc::now();
        let verified = verify_client_assertion(
            &assertion,
            &agent.key,
            &client,
            &url,
            w.cfg.assertion_algorithms,
            now,
        );
        let verified = match verified {
            Ok(v) => v,
            Err(e) => {
                if e.violation {
                    w.violation(
                        endpoint::OAUTH_TOKEN,
                        Some(agent.name.clone()),
                        e.reason.clone(),
                    );
                }
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", &e.reason);
            }
        };
        // A jti seen before (and not yet expired) is a replayed assertion.
        w.seen_assertions.retain(|_, exp| *exp > now.timestamp());
        if w.seen_assertions
            .insert(verified.jti.clone(), verified.exp)
            .is_some()
        {
            w.violation(
                endpoint::OAUTH_TOKEN,
                Some(agent.name.clone()),
                "client assertion replayed (jti seen before)",
            );
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "The client assertion was already used.",
            );
        }
        if verified.alg == jsonwebtoken::Algorithm::RS256 && w.cfg.require_fips == Some(true) && !agent.runner_admin {
            w.violation(
                endpoint::OAUTH_TOKEN,
                Some(agent.name.clone()),
                "RS256 client assertion although the agent says RequireFipsCryptography=true (PS256)",
            );
        }
        if let Some(a) = w.agents.get_mut(&agent.id) {
            a.assertion_alg = Some(format!("{:?}", verified.alg));
        }
        let lifetime = w.cfg.oauth_token_lifetime;
        let audience = w.tenant_url();
        let (token, _) = w.tokens.mint_jwt(
            Grant::OAuth { agent_id: agent.id },
            &audience,
            None,
            now,
            lifetime,
        );
        axum::Json(json!({
            "access_token": token,
            "token_type": "JWT",
            "expires_in": lifetime.as_secs(),
            "scope": "/",
        }))
        .into_response()
    })
}
