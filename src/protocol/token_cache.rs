//! The per-scope credential cache: PAT → registration token → registration JWT (spec §3.11).
//!
//! Owns the cached registration token (kept until shortly before `expires_at`), the cached
//! `runner-registration` answer (kept until shortly before the JWT's `exp`), the tenant's
//! location data and pool id. Refreshes are single-flight per scope: a burst of registrations
//! for one repository mints one registration token. On 401/403 a caller invalidates exactly the
//! generation it used, so one stale credential is dropped once, not once per caller. Only the
//! last step of the chain spends the PAT. Never logs a token.

use super::http::CallError;
use super::location::Locations;
use super::registration::{self, TenantAuth};
use crate::engine::event::ScopeTokens;
use crate::github::{GitHubClient, GitHubError, RunnerToken, Scope};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a registration or removal could not be done.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Rest(#[from] GitHubError),
    #[error("no self-hosted runner group{}", .0.as_deref().map(|g| format!(" named `{g}`")).unwrap_or_default())]
    NoRunnerGroup(Option<String>),
    #[error(transparent)]
    Crypto(#[from] super::crypto::CryptoError),
    #[error("credentials were refused at every step of the chain: {0}")]
    Refused(String),
}

/// Status of a call error, whether from a protocol service or the REST API.
pub fn status_of(e: &RegistrationError) -> Option<u16> {
    match e {
        RegistrationError::Call(c) => c.status(),
        RegistrationError::Rest(r) => r.status(),
        _ => None,
    }
}

/// True for "this credential is not (or no longer) good": fall one step back.
pub fn is_auth_refusal(status: Option<u16>) -> bool {
    matches!(status, Some(401 | 403))
}

/// How long before expiry a cached credential is no longer used.
#[derive(Debug, Clone)]
pub struct CacheMargins {
    pub registration_token: Duration,
    pub jwt: Duration,
}

impl Default for CacheMargins {
    fn default() -> Self {
        CacheMargins {
            registration_token: Duration::from_secs(300),
            jwt: Duration::from_secs(60),
        }
    }
}

#[derive(Default)]
pub(crate) struct ScopeState {
    pub reg_token: Option<(RunnerToken, u64)>,
    pub auth: Option<(TenantAuth, u64)>,
    pub locations: HashMap<String, Arc<Locations>>,
    pub pools: HashMap<String, u64>,
    pub group_id: Option<u64>,
    next_gen: u64,
}

impl ScopeState {
    fn generation(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }
}

/// One scope's cache entry.
pub(crate) struct ScopeEntry {
    pub scope: Scope,
    pub state: Mutex<ScopeState>,
    /// Held while a refresh runs: the single flight.
    pub refresh: tokio::sync::Mutex<()>,
    pub hits: AtomicU64,
    pub oauth_tokens: AtomicUsize,
}

/// The cache of every scope, shared by all runners of a fleet.
pub struct TokenCache {
    pub(crate) rest: GitHubClient,
    pub(crate) http: reqwest::Client,
    pub(crate) margins: CacheMargins,
    scopes: Mutex<HashMap<String, Arc<ScopeEntry>>>,
}

fn fresh(expires: Option<DateTime<Utc>>, margin: Duration) -> bool {
    let margin = chrono::Duration::from_std(margin).unwrap_or_default();
    expires.is_none_or(|e| Utc::now() + margin < e)
}

impl TokenCache {
    pub fn new(rest: GitHubClient, http: reqwest::Client, margins: CacheMargins) -> Self {
        TokenCache {
            rest,
            http,
            margins,
            scopes: Mutex::new(HashMap::new()),
        }
    }

    /// The REST API root as text.
    pub fn api_root(&self) -> String {
        self.rest
            .api_url()
            .as_str()
            .trim_end_matches('/')
            .to_string()
    }

    pub(crate) fn entry(&self, scope: &Scope) -> Arc<ScopeEntry> {
        let mut map = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(scope.url.clone()).or_insert_with(|| {
            Arc::new(ScopeEntry {
                scope: scope.clone(),
                state: Mutex::new(ScopeState::default()),
                refresh: tokio::sync::Mutex::new(()),
                hits: AtomicU64::new(0),
                oauth_tokens: AtomicUsize::new(0),
            })
        }))
    }

    /// Times (never values) of every scope's cached credentials.
    pub fn status(&self) -> Vec<ScopeTokens> {
        let map = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<ScopeTokens> = map
            .values()
            .map(|e| {
                let st = e.state.lock().unwrap_or_else(|p| p.into_inner());
                ScopeTokens {
                    scope: e.scope.url.clone(),
                    registration_token_expires: st.reg_token.as_ref().map(|t| t.0.expires_at),
                    jwt_expires: st.auth.as_ref().and_then(|a| a.0.expires_at),
                    oauth_tokens: e.oauth_tokens.load(Ordering::Relaxed),
                    cache_hits: e.hits.load(Ordering::Relaxed),
                }
            })
            .collect();
        out.sort_by(|a, b| a.scope.cmp(&b.scope));
        out
    }

    fn cached_auth(&self, e: &ScopeEntry) -> Option<(TenantAuth, u64)> {
        let st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        st.auth
            .as_ref()
            .filter(|(a, _)| fresh(a.expires_at, self.margins.jwt))
            .cloned()
    }

    fn cached_reg_token(&self, e: &ScopeEntry) -> Option<(RunnerToken, u64)> {
        let st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        st.reg_token
            .as_ref()
            .filter(|(t, _)| fresh(Some(t.expires_at), self.margins.registration_token))
            .cloned()
    }

    /// The registration JWT and tenant, from the cache or refreshed (single flight).
    pub(crate) async fn tenant_auth(
        &self,
        e: &ScopeEntry,
    ) -> Result<(TenantAuth, u64), RegistrationError> {
        if let Some(a) = self.cached_auth(e) {
            e.hits.fetch_add(1, Ordering::Relaxed);
            self.rest.budget_tracker().record_saved(1);
            return Ok(a);
        }
        let _flight = e.refresh.lock().await;
        if let Some(a) = self.cached_auth(e) {
            e.hits.fetch_add(1, Ordering::Relaxed);
            self.rest.budget_tracker().record_saved(1);
            return Ok(a);
        }
        if let Some((token, generation)) = self.cached_reg_token(e) {
            match registration::runner_registration(
                &self.http,
                &self.api_root(),
                &e.scope,
                &token.token,
                "register",
            )
            .await
            {
                Ok(auth) => {
                    e.hits.fetch_add(1, Ordering::Relaxed);
                    self.rest.budget_tracker().record_saved(1);
                    return Ok(self.store_auth(e, auth));
                }
                // E2/E40: the cached token was refused; mint a new one below.
                Err(err) if matches!(err.status(), Some(401 | 403 | 404)) => {
                    self.invalidate_reg_token(e, generation);
                }
                Err(err) => return Err(err.into()),
            }
        }
        let token = self.mint_reg_token_locked(e).await?;
        let auth = registration::runner_registration(
            &self.http,
            &self.api_root(),
            &e.scope,
            &token.token,
            "register",
        )
        .await?;
        Ok(self.store_auth(e, auth))
    }

    /// A registration token from the cache, or minted with the PAT (single flight).
    pub(crate) async fn reg_token(
        &self,
        e: &ScopeEntry,
    ) -> Result<(RunnerToken, u64), RegistrationError> {
        if let Some(t) = self.cached_reg_token(e) {
            return Ok(t);
        }
        let _flight = e.refresh.lock().await;
        if let Some(t) = self.cached_reg_token(e) {
            return Ok(t);
        }
        self.mint_reg_token_locked(e).await?;
        self.cached_reg_token(e)
            .ok_or_else(|| RegistrationError::Refused("registration token expired at once".into()))
    }

    /// Spends the PAT. Call with the scope's refresh lock held.
    async fn mint_reg_token_locked(
        &self,
        e: &ScopeEntry,
    ) -> Result<RunnerToken, RegistrationError> {
        let token = self.rest.create_registration_token(&e.scope).await?;
        let mut st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        let generation = st.generation();
        st.reg_token = Some((token.clone(), generation));
        Ok(token)
    }

    fn store_auth(&self, e: &ScopeEntry, auth: TenantAuth) -> (TenantAuth, u64) {
        let mut st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        let generation = st.generation();
        st.auth = Some((auth.clone(), generation));
        (auth, generation)
    }

    /// Drops the cached JWT if it is still the generation the caller saw refused.
    pub(crate) fn invalidate_auth(&self, e: &ScopeEntry, generation: u64) {
        let mut st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.auth.as_ref().is_some_and(|(_, g)| *g == generation) {
            st.auth = None;
        }
    }

    /// Drops the cached registration token if it is still that generation.
    pub(crate) fn invalidate_reg_token(&self, e: &ScopeEntry, generation: u64) {
        let mut st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.reg_token.as_ref().is_some_and(|(_, g)| *g == generation) {
            st.reg_token = None;
        }
    }

    /// The cached JWT even when close to expiry (removal tries it first), if not yet expired.
    pub(crate) fn any_auth(&self, e: &ScopeEntry) -> Option<(TenantAuth, u64)> {
        let st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        st.auth
            .as_ref()
            .filter(|(a, _)| fresh(a.expires_at, Duration::ZERO))
            .cloned()
    }

    /// The cached registration token if not yet expired.
    pub(crate) fn any_reg_token(&self, e: &ScopeEntry) -> Option<(RunnerToken, u64)> {
        let st = e.state.lock().unwrap_or_else(|p| p.into_inner());
        st.reg_token
            .as_ref()
            .filter(|(t, _)| fresh(Some(t.expires_at), Duration::ZERO))
            .cloned()
    }

    /// The tenant's location data, cached per tenant URL.
    pub(crate) async fn locations(
        &self,
        e: &ScopeEntry,
        tenant: &str,
        jwt: &crate::secret::Secret,
    ) -> Result<Arc<Locations>, CallError> {
        if let Some(l) = e
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .locations
            .get(tenant)
        {
            return Ok(Arc::clone(l));
        }
        let l = Arc::new(super::location::fetch(&self.http, tenant, jwt).await?);
        e.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .locations
            .insert(tenant.to_string(), Arc::clone(&l));
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_uses_the_margin() {
        let soon = Utc::now() + chrono::Duration::seconds(30);
        assert!(fresh(Some(soon), Duration::from_secs(10)));
        assert!(!fresh(Some(soon), Duration::from_secs(60)));
        assert!(
            fresh(None, Duration::from_secs(60)),
            "a JWT without exp is kept until refused"
        );
    }

    #[test]
    fn refusals_are_401_and_403_only() {
        assert!(is_auth_refusal(Some(401)) && is_auth_refusal(Some(403)));
        assert!(!is_auth_refusal(Some(404)) && !is_auth_refusal(None));
    }
}
