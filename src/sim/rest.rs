//! GitHub REST under `/api/v3`: tokens, runners, runs, jobs, cancel, re-run, rate limit.
//!
//! Owns the REST answers (body shapes of `tests/fixtures/rest/`), PAT authentication, the
//! per-PAT budget in `x-ratelimit-*` headers (every call spends one, except a `304` to
//! `If-None-Match`), and ETags. Runner-admin credentials are accepted where AR uses them
//! (runner list by name, delete, groups).

use super::http::{Credential, SimState, begin, credential, query_param, rest_error};
use super::model::{JobStatus, endpoint};
use super::server::Shared;
use super::tokens::Grant;
use super::world::World;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::Utc;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Arc;

type Q = Query<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let repo = "/api/v3/repos/{owner}/{repo}/actions";
    let org = "/api/v3/orgs/{owner}/actions";
    Router::new()
        .route(
            &format!("{repo}/runners/registration-token"),
            post(reg_token_repo),
        )
        .route(
            &format!("{org}/runners/registration-token"),
            post(reg_token_org),
        )
        .route(
            &format!("{repo}/runners/remove-token"),
            post(remove_token_repo),
        )
        .route(
            &format!("{org}/runners/remove-token"),
            post(remove_token_org),
        )
        .route(&format!("{repo}/runners"), get(runners_repo))
        .route(&format!("{org}/runners"), get(runners_org))
        .route(
            &format!("{repo}/runners/{{id}}"),
            delete(delete_runner_repo).get(runner_repo),
        )
        .route(
            &format!("{org}/runners/{{id}}"),
            delete(delete_runner_org).get(runner_org),
        )
        .route(&format!("{repo}/runs"), get(super::rest_runs::list_runs))
        .route(
            &format!("{repo}/runs/{{run}}"),
            get(super::rest_runs::get_run),
        )
        .route(
            &format!("{repo}/runs/{{run}}/jobs"),
            get(super::rest_runs::run_jobs),
        )
        .route(
            &format!("{repo}/runs/{{run}}/attempts/{{attempt}}/jobs"),
            get(super::rest_runs::attempt_jobs),
        )
        .route(
            &format!("{repo}/jobs/{{job}}"),
            get(super::rest_runs::get_job),
        )
        .route(
            &format!("{repo}/runs/{{run}}/cancel"),
            post(super::rest_runs::cancel),
        )
        .route(
            &format!("{repo}/runs/{{run}}/force-cancel"),
            post(super::rest_runs::force_cancel),
        )
        .route(
            &format!("{repo}/jobs/{{job}}/rerun"),
            post(super::rest_runs::rerun),
        )
        .route("/api/v3/rate_limit", get(rate_limit))
}

/// How a REST call was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestAuth {
    /// The PAT: the call spends budget.
    Pat,
    /// A runner-admin credential (registration token or JWT) for the scope.
    RunnerAdmin,
}

/// Authenticates a REST call. `admin_scope`: runner-admin credentials for this scope are also
/// accepted. Refuses a missing User-Agent (403) like GitHub, and an exhausted budget.
pub(crate) fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    admin_scope: Option<&str>,
    endpoint: &str,
) -> Result<RestAuth, Response> {
    let cred = credential(headers);
    let is_pat = match &cred {
        Credential::Bearer(t) | Credential::Token(t) | Credential::Basic(t) => t == &shared.pat,
        _ => false,
    };
    let mut w = shared.lock();
    if !super::http::has_user_agent(headers) {
        return Err(rest_error(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
        ));
    }
    if is_pat {
        if w.budget.used >= w.budget.limit && Utc::now() < w.budget.reset {
            let mut r = rest_error(StatusCode::FORBIDDEN, "API rate limit exceeded for user.");
            rate_headers(&w, r.headers_mut());
            // Asking again before the reset is what E39 forbids.
            let wait = (w.budget.reset - Utc::now()).to_std().unwrap_or_default();
            w.stamp_retry_after(super::http::retry_key(endpoint, headers), wait);
            return Err(r);
        }
        return Ok(RestAuth::Pat);
    }
    if let Some(scope) = admin_scope
        && matches!(cred, Credential::RemoteAuth(_) | Credential::Bearer(_))
    {
        return match super::admin::admin_scope(&mut w, headers, endpoint) {
            Ok(s) if s.eq_ignore_ascii_case(scope) => Ok(RestAuth::RunnerAdmin),
            Ok(_) => Err(rest_error(
                StatusCode::FORBIDDEN,
                "credential is for another scope",
            )),
            Err(r) => Err(r),
        };
    }
    if let Credential::Bearer(t) | Credential::Token(t) | Credential::Basic(t) = &cred
        && let Ok(grant) = w.tokens.check(t, Utc::now())
    {
        let what = match grant {
            Grant::Registration { .. } => "a registration token",
            Grant::Jwt { .. } => "the registration JWT",
            Grant::OAuth { .. } => "a runner OAuth token",
            Grant::Job { .. } => "a job token",
        };
        w.violation(
            endpoint,
            None,
            format!("{what} sent to the REST API instead of the PAT"),
        );
    }
    if matches!(cred, Credential::RemoteAuth(_) | Credential::Other(_)) {
        w.violation(
            endpoint,
            None,
            format!("REST call with scheme {}", cred.scheme()),
        );
    }
    Err(rest_error(StatusCode::UNAUTHORIZED, "Bad credentials"))
}

pub(crate) fn rate_headers(w: &World, h: &mut HeaderMap) {
    let b = &w.budget;
    h.insert("x-ratelimit-limit", HeaderValue::from(b.limit));
    h.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(b.limit.saturating_sub(b.used)),
    );
    h.insert("x-ratelimit-used", HeaderValue::from(b.used));
    h.insert("x-ratelimit-reset", HeaderValue::from(b.reset.timestamp()));
    h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
}

/// The answer to an authorised call: spends budget (PAT) unless `If-None-Match` matches the
/// body's ETag, which answers 304 for free.
pub(crate) fn answer(
    shared: &Shared,
    req: &HeaderMap,
    auth: RestAuth,
    code: StatusCode,
    body: Option<Value>,
) -> Response {
    let text = body.as_ref().map(|b| b.to_string()).unwrap_or_default();
    let etag = format!(
        "W/\"{}\"",
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    );
    let matches = code == StatusCode::OK
        && req
            .get(axum::http::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut w = shared.lock();
    let mut response = if matches {
        w.counters.not_modified += 1;
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        if auth == RestAuth::Pat {
            w.spend_rest(Utc::now());
        }
        match body {
            Some(b) => (code, axum::Json(b)).into_response(),
            None => code.into_response(),
        }
    };
    let h = response.headers_mut();
    if auth == RestAuth::Pat {
        rate_headers(&w, h);
    }
    if code == StatusCode::OK
        && let Ok(v) = HeaderValue::from_str(&etag)
    {
        h.insert(axum::http::header::ETAG, v);
    }
    response
}

/// An error answer to an authenticated call: GitHub counts it against the budget too.
pub(crate) fn charge(shared: &Shared, auth: RestAuth, mut response: Response) -> Response {
    if auth == RestAuth::Pat {
        let mut w = shared.lock();
        w.spend_rest(Utc::now());
        rate_headers(&w, response.headers_mut());
    }
    response
}

pub(crate) fn labels_json(labels: &[String]) -> Value {
    Value::Array(
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| json!({ "id": i + 1, "name": l, "type": "custom" }))
            .collect(),
    )
}

async fn mint(shared: &Shared, headers: &HeaderMap, scope: String, remove: bool) -> Response {
    let ep = if remove {
        endpoint::REMOVE_TOKEN
    } else {
        endpoint::REGISTRATION_TOKEN
    };
    if let Err(r) = begin(shared, ep, headers).await {
        return r;
    }
    let auth = match authorize(shared, headers, None, ep) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (token, expires) = shared.update(|w| {
        let lifetime = w.cfg.registration_token_lifetime;
        w.tokens
            .mint_registration(&scope, remove, Utc::now(), lifetime)
    });
    let body = json!({ "token": token, "expires_at": expires.to_rfc3339() });
    answer(shared, headers, auth, StatusCode::CREATED, Some(body))
}

async fn reg_token_repo(
    State(s): SimState,
    Path((o, r)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    mint(&s, &h, format!("{o}/{r}"), false).await
}
async fn reg_token_org(State(s): SimState, Path(o): Path<String>, h: HeaderMap) -> Response {
    mint(&s, &h, o, false).await
}
async fn remove_token_repo(
    State(s): SimState,
    Path((o, r)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    mint(&s, &h, format!("{o}/{r}"), true).await
}
async fn remove_token_org(State(s): SimState, Path(o): Path<String>, h: HeaderMap) -> Response {
    mint(&s, &h, o, true).await
}

fn runner_json(w: &World, id: u64) -> Option<Value> {
    let a = w.agents.get(&id)?;
    let snap = w.runner_snapshot(a);
    Some(json!({
        "id": a.id,
        "name": a.name,
        "os": "linux",
        "status": if snap.online { "online" } else { "offline" },
        "busy": snap.busy,
        "ephemeral": a.ephemeral,
        "version": a.version,
        "runner_group_id": 1,
        "labels": labels_json(&a.labels),
    }))
}

async fn list_runners(
    shared: &Shared,
    headers: &HeaderMap,
    scope: String,
    q: &HashMap<String, String>,
) -> Response {
    if let Err(r) = begin(shared, endpoint::RUNNERS_LIST, headers).await {
        return r;
    }
    let auth = match authorize(shared, headers, Some(&scope), endpoint::RUNNERS_LIST) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let name = query_param(q, "name").map(str::to_string);
    let (per_page, page) = paging(q);
    let body = {
        let w = shared.lock();
        let all: Vec<Value> = w
            .agents
            .values()
            .filter(|a| a.scope.eq_ignore_ascii_case(&scope))
            .filter(|a| name.as_ref().is_none_or(|n| &a.name == n))
            .filter_map(|a| runner_json(&w, a.id))
            .collect();
        let total = all.len();
        let runners: Vec<Value> = all
            .into_iter()
            .skip(page.saturating_sub(1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        json!({ "total_count": total, "runners": runners })
    };
    answer(shared, headers, auth, StatusCode::OK, Some(body))
}

pub(crate) fn paging(q: &HashMap<String, String>) -> (usize, usize) {
    let per_page = query_param(q, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 100);
    let page = query_param(q, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    (per_page, page)
}

async fn runners_repo(
    State(s): SimState,
    Path((o, r)): Path<(String, String)>,
    h: HeaderMap,
    Query(q): Q,
) -> Response {
    list_runners(&s, &h, format!("{o}/{r}"), &q).await
}
async fn runners_org(
    State(s): SimState,
    Path(o): Path<String>,
    h: HeaderMap,
    Query(q): Q,
) -> Response {
    list_runners(&s, &h, o, &q).await
}

async fn one_runner(shared: &Shared, headers: &HeaderMap, scope: String, id: u64) -> Response {
    if let Err(r) = begin(shared, endpoint::RUNNER_GET, headers).await {
        return r;
    }
    let auth = match authorize(shared, headers, Some(&scope), endpoint::RUNNER_GET) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let found = {
        let w = shared.lock();
        w.agents
            .get(&id)
            .filter(|a| a.scope.eq_ignore_ascii_case(&scope))
            .and_then(|a| runner_json(&w, a.id))
    };
    match found {
        Some(b) => answer(shared, headers, auth, StatusCode::OK, Some(b)),
        None => charge(shared, auth, rest_error(StatusCode::NOT_FOUND, "Not Found")),
    }
}

async fn runner_repo(
    State(s): SimState,
    Path((o, r, id)): Path<(String, String, u64)>,
    h: HeaderMap,
) -> Response {
    one_runner(&s, &h, format!("{o}/{r}"), id).await
}
async fn runner_org(
    State(s): SimState,
    Path((o, id)): Path<(String, u64)>,
    h: HeaderMap,
) -> Response {
    one_runner(&s, &h, o, id).await
}

async fn remove_runner(shared: &Shared, headers: &HeaderMap, scope: String, id: u64) -> Response {
    if let Err(r) = begin(shared, endpoint::RUNNER_DELETE, headers).await {
        return r;
    }
    let auth = match authorize(shared, headers, Some(&scope), endpoint::RUNNER_DELETE) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let refused = shared.update(|w| {
        let Some(agent) = w
            .agents
            .get(&id)
            .filter(|a| a.scope.eq_ignore_ascii_case(&scope))
        else {
            return Some(rest_error(StatusCode::NOT_FOUND, "Not Found"));
        };
        let busy = agent
            .job
            .and_then(|j| w.jobs.get(&j))
            .is_some_and(|j| j.snapshot.status == JobStatus::InProgress);
        if busy && w.cfg.refuse_busy_runner_deletion {
            let message = format!(
                "Bad request - Runner \"{}\" is still running a job\"",
                agent.name
            );
            return Some(rest_error(StatusCode::UNPROCESSABLE_ENTITY, &message));
        }
        w.delete_agent(id);
        None
    });
    match refused {
        Some(r) => charge(shared, auth, r),
        None => answer(shared, headers, auth, StatusCode::NO_CONTENT, None),
    }
}

async fn delete_runner_repo(
    State(s): SimState,
    Path((o, r, id)): Path<(String, String, u64)>,
    h: HeaderMap,
) -> Response {
    remove_runner(&s, &h, format!("{o}/{r}"), id).await
}
async fn delete_runner_org(
    State(s): SimState,
    Path((o, id)): Path<(String, u64)>,
    h: HeaderMap,
) -> Response {
    remove_runner(&s, &h, o, id).await
}

async fn rate_limit(State(shared): SimState, headers: HeaderMap) -> Response {
    if let Err(r) = begin(&shared, endpoint::RATE_LIMIT, &headers).await {
        return r;
    }
    if let Err(r) = authorize(&shared, &headers, None, endpoint::RATE_LIMIT) {
        return r;
    }
    // GET /rate_limit does not count against the budget (GitHub documents this).
    let w = shared.lock();
    let b = &w.budget;
    let core = json!({
        "limit": b.limit, "used": b.used, "remaining": b.limit.saturating_sub(b.used),
        "reset": b.reset.timestamp(),
    });
    let mut r = axum::Json(json!({ "resources": { "core": core }, "rate": core })).into_response();
    rate_headers(&w, r.headers_mut());
    r
}
