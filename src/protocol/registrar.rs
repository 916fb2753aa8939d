//! Registering and removing runners through the per-scope cache chain (spec §3.8, §3.11).
//!
//! Owns the order of attempts: cached JWT, then the cached registration token, then the PAT,
//! falling one step back only on 401/403 and branching on status codes, never on error text.
//! Both registration flows (v1 pipelines agents, runner-admin) and both removal flows live here.

use super::crypto::RunnerKey;
use super::http::Auth;
use super::registration::{self, RegisteredAgent};
use super::runner_admin;
use super::token_cache::{RegistrationError, ScopeEntry, TokenCache, is_auth_refusal, status_of};
use crate::github::Scope;
use std::sync::Arc;

/// How a removal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Deleted with the cached JWT (or cached token), spending no REST call.
    Cached,
    /// Deleted after spending the PAT.
    WithPat,
    /// The service no longer knew the runner (404): nothing to delete.
    AlreadyGone,
}

/// Registers one runner at `scope`.
pub async fn register(
    cache: &TokenCache,
    scope: &Scope,
    runner_group: Option<&str>,
    name: &str,
    labels: &[String],
    key: &RunnerKey,
) -> Result<RegisteredAgent, RegistrationError> {
    let e = cache.entry(scope);
    let mut last: Option<RegistrationError> = None;
    for attempt in 0..3 {
        let (auth, generation) = cache.tenant_auth(&e).await?;
        let result = if auth.use_v2_flow {
            register_v2(cache, &e, &auth, runner_group, name, labels, key).await
        } else {
            register_v1(cache, &e, &auth, runner_group, name, labels, key).await
        };
        match result {
            Ok(a) => return Ok(a),
            Err(err) if is_auth_refusal(status_of(&err)) => {
                // E3: the JWT was refused; drop it. From the second refusal on, the
                // registration token is suspect too, so the next attempt spends the PAT.
                cache.invalidate_auth(&e, generation);
                if attempt >= 1
                    && let Some((_, tgen)) = cache.any_reg_token(&e)
                {
                    cache.invalidate_reg_token(&e, tgen);
                }
                last = Some(err);
            }
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| RegistrationError::Refused("registration".into())))
}

async fn register_v1(
    cache: &TokenCache,
    e: &Arc<ScopeEntry>,
    auth: &registration::TenantAuth,
    runner_group: Option<&str>,
    name: &str,
    labels: &[String],
    key: &RunnerKey,
) -> Result<RegisteredAgent, RegistrationError> {
    let loc = cache.locations(e, &auth.tenant_url, &auth.jwt).await?;
    let cached_pool = e
        .state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pools
        .get(&auth.tenant_url)
        .copied();
    let pool = match cached_pool {
        Some(p) => p,
        None => {
            let pools = registration::list_pools(&cache.http, &loc, &auth.jwt).await?;
            let p = registration::pick_pool(&pools, runner_group).ok_or_else(|| {
                RegistrationError::NoRunnerGroup(runner_group.map(str::to_string))
            })?;
            e.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pools
                .insert(auth.tenant_url.clone(), p);
            p
        }
    };
    Ok(registration::add_agent(&cache.http, &loc, &auth.jwt, pool, name, labels, key).await?)
}

/// Runner-admin: `RemoteAuth <registration token>` first (actions/runner), `Bearer <JWT>` when
/// that is refused (github-act-runner) — spec §3.6 leaves open which GitHub accepts.
async fn register_v2(
    cache: &TokenCache,
    e: &Arc<ScopeEntry>,
    auth: &registration::TenantAuth,
    runner_group: Option<&str>,
    name: &str,
    labels: &[String],
    key: &RunnerKey,
) -> Result<RegisteredAgent, RegistrationError> {
    let (token, tgen) = cache.reg_token(e).await?;
    let api = cache.api_root();
    let auths = [Auth::RemoteAuth(&token.token), Auth::Bearer(&auth.jwt)];
    let cached_group = e.state.lock().unwrap_or_else(|p| p.into_inner()).group_id;
    let mut refused = None;
    for a in auths {
        let group = match cached_group {
            Some(g) => g,
            None => match runner_admin::list_runner_groups(&cache.http, &api, &e.scope, a).await {
                Ok(groups) => {
                    let g = runner_admin::pick_group(&groups, runner_group).ok_or_else(|| {
                        RegistrationError::NoRunnerGroup(runner_group.map(str::to_string))
                    })?;
                    e.state.lock().unwrap_or_else(|p| p.into_inner()).group_id = Some(g);
                    g
                }
                Err(err) if is_auth_refusal(err.status()) => {
                    refused = Some(err);
                    continue;
                }
                Err(err) => return Err(err.into()),
            },
        };
        match runner_admin::register_runner_admin(
            &cache.http,
            &api,
            &e.scope,
            a,
            group,
            name,
            labels,
            key,
        )
        .await
        {
            Ok(agent) => return Ok(agent),
            Err(err) if is_auth_refusal(err.status()) => refused = Some(err),
            Err(err) => return Err(err.into()),
        }
    }
    // Both credentials refused: the registration token is stale too.
    cache.invalidate_reg_token(e, tgen);
    Err(refused
        .map(RegistrationError::from)
        .unwrap_or_else(|| RegistrationError::Refused("runner-admin".into())))
}

fn gone_or(r: Result<(), super::http::CallError>) -> Result<Option<Removal>, RegistrationError> {
    match r {
        Ok(()) => Ok(Some(Removal::Cached)),
        Err(e) if e.status() == Some(404) => Ok(Some(Removal::AlreadyGone)),
        Err(e) if is_auth_refusal(e.status()) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Unregisters a runner (spec §3.8): cached JWT `DELETE`, then the cached registration token,
/// then the PAT. A 404 means it is already gone. Callers must not remove a busy runner (E33);
/// if the service refuses (e.g. 422), that error is returned.
pub async fn remove(
    cache: &TokenCache,
    scope: &Scope,
    agent: &RegisteredAgent,
) -> Result<Removal, RegistrationError> {
    let e = cache.entry(scope);
    if agent.runner_admin {
        return remove_v2(cache, &e, agent).await;
    }
    let pool = agent.pool_id.unwrap_or(1);
    let api = cache.api_root();
    // 1. The cached registration JWT.
    if let Some((auth, _)) = cache.any_auth(&e)
        && auth.tenant_url == agent.tenant_url
    {
        let loc = cache.locations(&e, &auth.tenant_url, &auth.jwt).await?;
        let r =
            registration::delete_agent(&cache.http, &loc, &auth.jwt, pool, agent.agent_id).await;
        if let Some(done) = gone_or(r)? {
            return Ok(done);
        }
    }
    // 2. The cached registration token → a `remove` JWT.
    if let Some((token, generation)) = cache.any_reg_token(&e) {
        match registration::runner_registration(&cache.http, &api, scope, &token.token, "remove")
            .await
        {
            Ok(auth) => {
                let loc = cache.locations(&e, &auth.tenant_url, &auth.jwt).await?;
                let r =
                    registration::delete_agent(&cache.http, &loc, &auth.jwt, pool, agent.agent_id)
                        .await;
                if let Some(done) = gone_or(r)? {
                    return Ok(done);
                }
            }
            Err(err) if matches!(err.status(), Some(401 | 403 | 404)) => {
                cache.invalidate_reg_token(&e, generation);
            }
            Err(err) => return Err(err.into()),
        }
    }
    // 3. The PAT: a remove token (1 REST call).
    let token = cache.rest.create_remove_token(scope).await?;
    let auth =
        registration::runner_registration(&cache.http, &api, scope, &token.token, "remove").await?;
    let loc = cache.locations(&e, &auth.tenant_url, &auth.jwt).await?;
    match registration::delete_agent(&cache.http, &loc, &auth.jwt, pool, agent.agent_id).await {
        Ok(()) => Ok(Removal::WithPat),
        Err(err) if err.status() == Some(404) => Ok(Removal::AlreadyGone),
        Err(err) => Err(err.into()),
    }
}

async fn remove_v2(
    cache: &TokenCache,
    e: &Arc<ScopeEntry>,
    agent: &RegisteredAgent,
) -> Result<Removal, RegistrationError> {
    let api = cache.api_root();
    if let Some((token, _)) = cache.any_reg_token(e) {
        let r = runner_admin::delete_runner_admin(
            &cache.http,
            &api,
            &e.scope,
            Auth::RemoteAuth(&token.token),
            agent.agent_id,
        )
        .await;
        if let Some(done) = gone_or(r)? {
            return Ok(done);
        }
    }
    if let Some((auth, _)) = cache.any_auth(e) {
        let r = runner_admin::delete_runner_admin(
            &cache.http,
            &api,
            &e.scope,
            Auth::Bearer(&auth.jwt),
            agent.agent_id,
        )
        .await;
        if let Some(done) = gone_or(r)? {
            return Ok(done);
        }
    }
    match cache.rest.delete_runner(&e.scope, agent.agent_id).await {
        Ok(()) => Ok(Removal::WithPat),
        Err(err) if err.status() == Some(404) => Ok(Removal::AlreadyGone),
        Err(err) => Err(err.into()),
    }
}
