//! Registering and deleting one runner: `runner-registration`, the v1 pools/agents calls and
//! the runner-admin (`use_v2_flow`) calls (spec §3.3, §3.4, §3.6, §3.8).
//!
//! Owns the wire shapes of those calls and the pure choices in them (which pool or group, how
//! to read agent properties). Which credential to use and when to fall back is the token
//! cache's business ([`super::token_cache`]); this module only performs a call with what it is
//! given, and reports failures with their status so the cache can branch on it.

use super::crypto::RunnerKey;
use super::http::{self, Auth, Call, CallError};
use super::location::{Locations, ids};
use crate::github::Scope;
use crate::secret::Secret;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// The runner version megascaler reports: above any real runner, so the service never asks for
/// a self-update or refuses the runner as too old (spec §3.4.3).
pub const RUNNER_VERSION: &str = "3.0.0";

/// What `POST /actions/runner-registration` returned.
#[derive(Debug, Clone)]
pub struct TenantAuth {
    /// The pipelines base (TenantURL).
    pub tenant_url: String,
    /// The registration JWT.
    pub jwt: Secret,
    /// The JWT's `exp`, read without verification.
    pub expires_at: Option<DateTime<Utc>>,
    /// Register through the runner-admin endpoints.
    pub use_v2_flow: bool,
}

#[derive(Deserialize)]
struct RawTenantAuth {
    url: String,
    token: String,
    #[serde(default)]
    token_schema: Option<String>,
    #[serde(default)]
    use_v2_flow: bool,
}

/// Reads `exp` from a JWT's claims without verifying it (we are its bearer, not its audience).
pub fn jwt_expiry(jwt: &str) -> Option<DateTime<Utc>> {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(jwt).ok()?;
    let exp = claims.get("exp")?.as_i64()?;
    Utc.timestamp_opt(exp, 0).single()
}

/// `POST {api}/actions/runner-registration` with `RemoteAuth <token>`; `event` is `register`
/// or `remove`.
pub async fn runner_registration(
    client: &reqwest::Client,
    api_root: &str,
    scope: &Scope,
    token: &Secret,
    event: &str,
) -> Result<TenantAuth, CallError> {
    let body = json!({ "url": scope.url, "runner_event": event });
    let resp = http::execute(
        client,
        Call {
            what: "runner-registration",
            method: Method::POST,
            url: format!(
                "{}/actions/runner-registration",
                api_root.trim_end_matches('/')
            ),
            api_version: None,
            auth: Auth::RemoteAuth(token),
            body: Some(&body),
            timeout: None,
        },
    )
    .await?;
    let raw: RawTenantAuth = http::require("runner-registration", resp)?;
    if raw
        .token_schema
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case("OAuthAccessToken"))
    {
        return Err(CallError::Decode {
            what: "runner-registration".into(),
            message: "token_schema is not OAuthAccessToken".into(),
        });
    }
    Ok(TenantAuth {
        expires_at: jwt_expiry(&raw.token),
        // Normalised without the trailing slash: it keys the location and pool caches.
        tenant_url: raw.url.trim_end_matches('/').to_string(),
        jwt: Secret::new(raw.token),
        use_v2_flow: raw.use_v2_flow,
    })
}

/// A runner's credentials and where it listens, as the service registered it.
#[derive(Debug, Clone)]
pub struct RegisteredAgent {
    pub agent_id: u64,
    pub name: String,
    /// v1 pool; `None` for runner-admin registrations.
    pub pool_id: Option<u64>,
    pub tenant_url: String,
    pub authorization_url: String,
    pub client_id: String,
    /// Broker base (`ServerUrlV2` / runner-admin `server_url`).
    pub server_url_v2: Option<String>,
    /// Listen at the broker.
    pub use_v2_flow: bool,
    /// `RequireFipsCryptography` as sent (absent: `None`).
    pub require_fips: Option<bool>,
    /// Registered through the runner-admin endpoints (removal goes through REST then).
    pub runner_admin: bool,
}

/// A runner pool (group) of the v1 API.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub is_hosted: bool,
    #[serde(default)]
    pub is_internal: bool,
}

#[derive(Deserialize)]
struct ListOf<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
}

/// Which pool to register in: the named group (case-insensitive) among non-hosted pools, else
/// the first internal non-hosted pool, else the first non-hosted one (spec §3.4.2).
pub fn pick_pool(pools: &[Pool], group: Option<&str>) -> Option<u64> {
    let own: Vec<&Pool> = pools.iter().filter(|p| !p.is_hosted).collect();
    match group {
        Some(g) => own
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(g))
            .map(|p| p.id),
        None => own
            .iter()
            .find(|p| p.is_internal)
            .or_else(|| own.first())
            .map(|p| p.id),
    }
}

fn missing(what: &str) -> CallError {
    CallError::Decode {
        what: what.to_string(),
        message: "the service has no such location".into(),
    }
}

/// `GET <pools>` with the registration JWT.
pub async fn list_pools(
    client: &reqwest::Client,
    loc: &Locations,
    jwt: &Secret,
) -> Result<Vec<Pool>, CallError> {
    let url = loc
        .url(ids::POOLS, &[])
        .ok_or_else(|| missing("list pools"))?;
    let body = http::execute(
        client,
        Call {
            what: "list pools",
            method: Method::GET,
            url,
            api_version: Some("5.1-preview.1"),
            auth: Auth::Bearer(jwt),
            body: None,
            timeout: None,
        },
    )
    .await?;
    Ok(http::require::<ListOf<Pool>>("list pools", body)?.value)
}

/// A property value, either bare or wrapped as `{ "$type", "$value" }`.
fn property<'a>(props: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    let v = super::context::get_ci(props?, name)?;
    Some(super::context::get_ci(v, "$value").unwrap_or(v))
}

fn prop_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().parse::<bool>().ok().or_else(|| match s.trim() {
            "True" => Some(true),
            "False" => Some(false),
            _ => None,
        }),
        _ => None,
    }
}

/// Reads a TaskAgent response (spec §3.4.3).
pub fn parse_task_agent(
    v: &Value,
    tenant_url: &str,
    pool_id: u64,
) -> Result<RegisteredAgent, CallError> {
    let bad = |m: &str| CallError::Decode {
        what: "add agent".into(),
        message: m.to_string(),
    };
    use super::context::get_ci;
    let auth = get_ci(v, "authorization").ok_or_else(|| bad("no authorization"))?;
    let s = |o: &Value, k: &str| get_ci(o, k).and_then(Value::as_str).map(str::to_string);
    let props = get_ci(v, "properties");
    let server_url_v2 = property(props, "ServerUrlV2")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok(RegisteredAgent {
        agent_id: get_ci(v, "id")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no id"))?,
        name: s(v, "name").unwrap_or_default(),
        pool_id: Some(pool_id),
        tenant_url: tenant_url.to_string(),
        authorization_url: s(auth, "authorizationUrl").ok_or_else(|| bad("no authorizationUrl"))?,
        client_id: s(auth, "clientId").ok_or_else(|| bad("no clientId"))?,
        use_v2_flow: prop_bool(property(props, "UseV2Flow")).unwrap_or(false)
            && server_url_v2.is_some(),
        server_url_v2,
        require_fips: prop_bool(property(props, "RequireFipsCryptography")),
        runner_admin: false,
    })
}

pub(super) fn labels_json(labels: &[String]) -> Value {
    Value::Array(
        labels
            .iter()
            .map(|l| json!({ "id": 0, "name": l, "type": "user" }))
            .collect(),
    )
}

/// `POST <agents>` (spec §3.4.3): ephemeral, no default labels, version 3.0.0.
pub async fn add_agent(
    client: &reqwest::Client,
    loc: &Locations,
    jwt: &Secret,
    pool_id: u64,
    name: &str,
    labels: &[String],
    key: &RunnerKey,
) -> Result<RegisteredAgent, CallError> {
    let pool = pool_id.to_string();
    let url = loc
        .url(ids::AGENTS, &[("poolId", &pool)])
        .ok_or_else(|| missing("add agent"))?;
    let body = json!({
        "name": name,
        "version": RUNNER_VERSION,
        "osDescription": format!("megascaler {} {}", std::env::consts::OS, std::env::consts::ARCH),
        "maxParallelism": 1,
        "ephemeral": true,
        "disableUpdate": true,
        "provisioningState": "Provisioned",
        "createdOn": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "labels": labels_json(labels),
        "authorization": { "publicKey": { "exponent": key.exponent_b64(), "modulus": key.modulus_b64() } },
    });
    let resp = http::execute(
        client,
        Call {
            what: "add agent",
            method: Method::POST,
            url,
            api_version: Some("6.0-preview.2"),
            auth: Auth::Bearer(jwt),
            body: Some(&body),
            timeout: None,
        },
    )
    .await?;
    let v: Value = http::require("add agent", resp)?;
    parse_task_agent(&v, &loc.base, pool_id)
}

/// `DELETE <agents with poolId, agentId>` with a registration JWT (spec §3.8 step 1).
pub async fn delete_agent(
    client: &reqwest::Client,
    loc: &Locations,
    jwt: &Secret,
    pool_id: u64,
    agent_id: u64,
) -> Result<(), CallError> {
    let (pool, agent) = (pool_id.to_string(), agent_id.to_string());
    let url = loc
        .url(ids::AGENTS, &[("poolId", &pool), ("agentId", &agent)])
        .ok_or_else(|| missing("delete agent"))?;
    http::execute(
        client,
        Call {
            what: "delete agent",
            method: Method::DELETE,
            url,
            api_version: Some("6.0-preview.2"),
            auth: Auth::Bearer(jwt),
            body: None,
            timeout: None,
        },
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_choice() {
        let pools = vec![
            Pool {
                id: 9,
                name: "Azure".into(),
                is_hosted: true,
                is_internal: false,
            },
            Pool {
                id: 3,
                name: "gpu".into(),
                is_hosted: false,
                is_internal: false,
            },
            Pool {
                id: 1,
                name: "Default".into(),
                is_hosted: false,
                is_internal: true,
            },
        ];
        assert_eq!(pick_pool(&pools, None), Some(1));
        assert_eq!(pick_pool(&pools, Some("GPU")), Some(3));
        assert_eq!(
            pick_pool(&pools, Some("azure")),
            None,
            "hosted pools are never used"
        );
        assert_eq!(pick_pool(&pools[..1], None), None);
    }

    #[test]
    fn agent_properties_wrapped_or_bare() {
        let v = json!({"id": 42, "name": "n",
            "authorization": {"authorizationUrl": "https://t/token", "clientId": "c"},
            "properties": {"ServerUrlV2": {"$type": "System.String", "$value": "https://broker/"},
                           "useV2Flow": true, "RequireFipsCryptography": {"$type":"System.Boolean","$value":"False"}}});
        let a = parse_task_agent(&v, "https://t", 1).unwrap();
        assert_eq!(a.agent_id, 42);
        assert!(a.use_v2_flow);
        assert_eq!(a.server_url_v2.as_deref(), Some("https://broker/"));
        assert_eq!(a.require_fips, Some(false));
        let plain = json!({"id": 1, "authorization": {"authorizationUrl": "u", "clientId": "c"}});
        let a = parse_task_agent(&plain, "https://t", 1).unwrap();
        assert!(!a.use_v2_flow && a.require_fips.is_none());
        assert!(parse_task_agent(&json!({"id": 1}), "t", 1).is_err());
    }
}
