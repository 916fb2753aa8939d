//! The runner-admin registration flow (`use_v2_flow`, spec §3.6): groups, register, delete.
//!
//! Owns the wire shapes of the runner-admin calls on the REST host and the pure group choice.
//! The credential to use (registration token or JWT) is chosen by [`super::registrar`].

use super::crypto::RunnerKey;
use super::http::{self, Auth, Call, CallError};
use super::registration::{RUNNER_VERSION, RegisteredAgent, labels_json};
use crate::github::Scope;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// A runner group of the runner-admin API.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RunnerGroup {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub is_hosted: bool,
}

#[derive(Deserialize)]
struct RunnerGroups {
    #[serde(default)]
    runner_groups: Vec<RunnerGroup>,
}

/// The named group, else the default non-hosted one, else the first non-hosted one.
pub fn pick_group(groups: &[RunnerGroup], name: Option<&str>) -> Option<u64> {
    let own: Vec<&RunnerGroup> = groups.iter().filter(|g| !g.is_hosted).collect();
    match name {
        Some(n) => own
            .iter()
            .find(|g| g.name.eq_ignore_ascii_case(n))
            .map(|g| g.id),
        None => own
            .iter()
            .find(|g| g.default)
            .or_else(|| own.first())
            .map(|g| g.id),
    }
}

/// `GET {api}{S}/actions/runner-groups` (runner-admin flow).
pub async fn list_runner_groups(
    client: &reqwest::Client,
    api_root: &str,
    scope: &Scope,
    auth: Auth<'_>,
) -> Result<Vec<RunnerGroup>, CallError> {
    let url = format!(
        "{}{}/actions/runner-groups",
        api_root.trim_end_matches('/'),
        scope.rest_prefix()
    );
    let body = http::execute(
        client,
        Call {
            what: "list runner groups",
            method: Method::GET,
            url,
            api_version: None,
            auth,
            body: None,
            timeout: None,
        },
    )
    .await?;
    Ok(http::require::<RunnerGroups>("list runner groups", body)?.runner_groups)
}

/// `POST {api}/actions/runners/register` (spec §3.6).
#[allow(clippy::too_many_arguments)]
pub async fn register_runner_admin(
    client: &reqwest::Client,
    api_root: &str,
    scope: &Scope,
    auth: Auth<'_>,
    group_id: u64,
    name: &str,
    labels: &[String],
    key: &RunnerKey,
) -> Result<RegisteredAgent, CallError> {
    let body = json!({
        "url": scope.url,
        "group_id": group_id,
        "name": name,
        "version": RUNNER_VERSION,
        "updates_disabled": true,
        "ephemeral": true,
        "labels": labels_json(labels),
        "public_key": key.xml_public_key(),
    });
    let resp = http::execute(
        client,
        Call {
            what: "register runner (runner-admin)",
            method: Method::POST,
            url: format!(
                "{}/actions/runners/register",
                api_root.trim_end_matches('/')
            ),
            api_version: None,
            auth,
            body: Some(&body),
            timeout: None,
        },
    )
    .await?;
    let v: Value = http::require("register runner (runner-admin)", resp)?;
    parse_runner_admin(&v)
}

/// Reads the runner-admin `Runner` response: the broker is implied; a legacy authorization URL
/// wins when present (spec §3.6).
pub fn parse_runner_admin(v: &Value) -> Result<RegisteredAgent, CallError> {
    let bad = |m: &str| CallError::Decode {
        what: "register runner (runner-admin)".into(),
        message: m.to_string(),
    };
    let auth = v
        .get("authorization")
        .ok_or_else(|| bad("no authorization"))?;
    let s = |k: &str| {
        auth.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let server_url = s("server_url").ok_or_else(|| bad("no server_url"))?;
    Ok(RegisteredAgent {
        agent_id: v
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no id"))?,
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        pool_id: None,
        tenant_url: String::new(),
        authorization_url: s("legacy_authorization_url")
            .or_else(|| s("authorization_url"))
            .ok_or_else(|| bad("no authorization_url"))?,
        client_id: s("client_id").ok_or_else(|| bad("no client_id"))?,
        server_url_v2: Some(server_url),
        use_v2_flow: true,
        require_fips: None,
        runner_admin: true,
    })
}

/// `DELETE {api}{S}/actions/runners/{id}` with a runner-admin credential.
pub async fn delete_runner_admin(
    client: &reqwest::Client,
    api_root: &str,
    scope: &Scope,
    auth: Auth<'_>,
    runner_id: u64,
) -> Result<(), CallError> {
    let url = format!(
        "{}{}/actions/runners/{runner_id}",
        api_root.trim_end_matches('/'),
        scope.rest_prefix()
    );
    http::execute(
        client,
        Call {
            what: "delete runner (runner-admin)",
            method: Method::DELETE,
            url,
            api_version: None,
            auth,
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
    fn runner_admin_prefers_the_legacy_url() {
        let v = json!({"id": 5, "name": "n", "authorization": {"authorization_url": "new",
            "server_url": "https://broker/", "client_id": "c", "legacy_authorization_url": "old"}});
        let a = parse_runner_admin(&v).unwrap();
        assert_eq!(a.authorization_url, "old");
        assert!(a.use_v2_flow && a.runner_admin);
    }

    #[test]
    fn group_choice() {
        let g = vec![
            RunnerGroup {
                id: 2,
                name: "x".into(),
                default: false,
                is_hosted: false,
            },
            RunnerGroup {
                id: 1,
                name: "Default".into(),
                default: true,
                is_hosted: false,
            },
        ];
        assert_eq!(pick_group(&g, None), Some(1));
        assert_eq!(pick_group(&g, Some("X")), Some(2));
    }
}
