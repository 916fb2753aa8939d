//! The pipelines location service: `connectionData` and URL templates (spec §3.4.1).
//!
//! Owns turning a service definition (found by location GUID) plus route values into a URL
//! under the TenantURL. Routes are never hard-coded paths: the server's templates decide.
//! [`build_url`] is pure; [`fetch`] does the one GET.

use super::http::{self, Auth, Call, CallError};
use crate::secret::Secret;
use reqwest::Method;
use serde::Deserialize;

/// Location GUIDs megascaler uses (spec §3.4.1 table).
pub mod ids {
    pub const POOLS: &str = "a8c47e17-4d56-4a56-92bb-de7ea7dc65be";
    pub const AGENTS: &str = "e298ef32-5878-4cab-993c-043836571f42";
    pub const SESSIONS: &str = "134e239e-2df3-4794-a6f6-24f1f19ec8dc";
    pub const MESSAGES: &str = "c3a054f6-7a8a-49c0-944e-3a8e5d7adfd7";
    pub const JOB_REQUESTS: &str = "fc825784-c92a-4299-9221-998a02d1b54f";
    pub const RUNNER_JOB_MESSAGE: &str = "25adab70-1379-4186-be8e-b643061ebe3a";
    pub const TIMELINE_RECORDS: &str = "8893bc5b-35b2-4be7-83cb-99e683551db4";
    pub const PLAN_EVENTS: &str = "557624af-b29e-4c20-8ab0-0399d2204f3f";
}

/// One entry of `locationServiceData.serviceDefinitions`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDefinition {
    #[serde(default)]
    pub service_type: String,
    pub identifier: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub relative_path: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionData {
    location_service_data: LocationServiceData,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocationServiceData {
    #[serde(default)]
    service_definitions: Vec<ServiceDefinition>,
}

/// The service definitions of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    pub base: String,
    pub definitions: Vec<ServiceDefinition>,
}

impl Locations {
    /// The URL of resource `id` with these route values, or `None` if the server has no such
    /// service.
    pub fn url(&self, id: &str, route: &[(&str, &str)]) -> Option<String> {
        let def = self
            .definitions
            .iter()
            .find(|d| d.identifier.eq_ignore_ascii_case(id))?;
        Some(build_url(&self.base, def, route))
    }
}

/// Fills a template: `{area}` = service type, `{resource}` = display name, supplied values
/// replace their placeholder, and a placeholder without value vanishes with the slashes before
/// it. The result is joined onto `base`.
pub fn build_url(base: &str, def: &ServiceDefinition, route: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = def.relative_path.as_str();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let name = &after[..close];
        let value = if name.eq_ignore_ascii_case("area") {
            Some(def.service_type.as_str())
        } else if name.eq_ignore_ascii_case("resource") {
            Some(def.display_name.as_str())
        } else {
            route
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        match value {
            Some(v) => out.push_str(&encode_segment(v)),
            None => {
                while out.ends_with('/') {
                    out.pop();
                }
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        out.trim_start_matches('/')
    )
}

fn encode_segment(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `GET {base}/_apis/connectionData?connectOptions=1&lastChangeId=-1&lastChangeId64=-1`.
pub async fn fetch(
    http_client: &reqwest::Client,
    base: &str,
    token: &Secret,
) -> Result<Locations, CallError> {
    let url = format!(
        "{}/_apis/connectionData?connectOptions=1&lastChangeId=-1&lastChangeId64=-1",
        base.trim_end_matches('/')
    );
    let body = http::execute(
        http_client,
        Call {
            what: "connectionData",
            method: Method::GET,
            url,
            api_version: Some("1.0"),
            auth: Auth::Bearer(token),
            body: None,
            timeout: None,
        },
    )
    .await?;
    let cd: ConnectionData = http::require("connectionData", body)?;
    Ok(Locations {
        base: base.trim_end_matches('/').to_string(),
        definitions: cd.location_service_data.service_definitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(path: &str) -> ServiceDefinition {
        ServiceDefinition {
            service_type: "distributedtask".into(),
            identifier: ids::AGENTS.into(),
            display_name: "agents".into(),
            relative_path: path.into(),
        }
    }

    #[test]
    fn templates_fill_and_drop_missing_values() {
        let d = def("/_apis/{area}/pools/{poolId}/{resource}/{agentId}");
        assert_eq!(
            build_url("https://t/x/", &d, &[("poolId", "1")]),
            "https://t/x/_apis/distributedtask/pools/1/agents"
        );
        assert_eq!(
            build_url("https://t/x", &d, &[("poolId", "1"), ("agentId", "42")]),
            "https://t/x/_apis/distributedtask/pools/1/agents/42"
        );
        let l = Locations {
            base: "https://t".into(),
            definitions: vec![d],
        };
        assert!(l.url(ids::AGENTS, &[]).is_some());
        assert!(l.url(ids::SESSIONS, &[]).is_none());
    }

    #[test]
    fn route_values_are_escaped() {
        let d = def("_apis/{area}/{hubName}/plans");
        assert_eq!(
            build_url("https://t", &d, &[("hubName", "a b/c")]),
            "https://t/_apis/distributedtask/a%20b%2Fc/plans"
        );
    }
}
