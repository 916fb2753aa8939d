//! The pipelines service ("TenantURL", §3.4): location service, pools and agents.
//!
//! Owns `connectionData` (service definitions: location GUIDs and route templates, which
//! clients must resolve instead of hard-coding paths), the pool list, and adding, listing,
//! replacing and deleting agents with the registration JWT. Sessions, messages and job
//! requests are in `sessions`; plan events and timelines in `plan`.

use super::caller::{Caller, Want, require};
use super::crypto::RunnerKey;
use super::http::{Family, SimState, begin, field, json_body, query_param, vss_error};
use super::model::endpoint;
use super::server::Shared;
use super::world::{AddError, Agent, NewAgent, World};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The pipelines service's path prefix.
pub(crate) const PREFIX: &str = "/_services/pipelines";

/// (location GUID, resource, route template) of every service definition, spec §3.4.1.
pub(crate) const LOCATIONS: &[(&str, &str, &str)] = &[
    (
        "a8c47e17-4d56-4a56-92bb-de7ea7dc65be",
        "pools",
        "/_apis/{area}/{resource}/{poolId}",
    ),
    (
        "e298ef32-5878-4cab-993c-043836571f42",
        "agents",
        "/_apis/{area}/pools/{poolId}/{resource}/{agentId}",
    ),
    (
        "134e239e-2df3-4794-a6f6-24f1f19ec8dc",
        "sessions",
        "/_apis/{area}/pools/{poolId}/{resource}/{sessionId}",
    ),
    (
        "c3a054f6-7a8a-49c0-944e-3a8e5d7adfd7",
        "messages",
        "/_apis/{area}/pools/{poolId}/{resource}/{messageId}",
    ),
    (
        "fc825784-c92a-4299-9221-998a02d1b54f",
        "jobrequests",
        "/_apis/{area}/pools/{poolId}/{resource}/{requestId}",
    ),
    (
        "25adab70-1379-4186-be8e-b643061ebe3a",
        "runnerjobrequests",
        "/_apis/{area}/{resource}/{messageId}",
    ),
    (
        "8893bc5b-35b2-4be7-83cb-99e683551db4",
        "records",
        "/{scopeIdentifier}/_apis/{area}/hubs/{hubName}/plans/{planId}/timelines/{timelineId}/{resource}",
    ),
    (
        "46f5667d-263a-4684-91b1-dff7fdcf64e2",
        "logs",
        "/{scopeIdentifier}/_apis/{area}/hubs/{hubName}/plans/{planId}/{resource}/{logId}",
    ),
    (
        "858983e4-19bd-4c5e-864c-507b59b58b12",
        "feed",
        "/{scopeIdentifier}/_apis/{area}/hubs/{hubName}/plans/{planId}/timelines/{timelineId}/records/{recordId}/{resource}",
    ),
    (
        "557624af-b29e-4c20-8ab0-0399d2204f3f",
        "events",
        "/{scopeIdentifier}/_apis/{area}/hubs/{hubName}/plans/{planId}/{resource}",
    ),
];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let dt = format!("{PREFIX}/_apis/distributedtask");
    Router::new()
        .route(
            &format!("{PREFIX}/_apis/connectionData"),
            get(connection_data),
        )
        .route(&format!("{dt}/pools"), get(pools))
        .route(&format!("{dt}/pools/{{pool}}"), get(pool))
        .route(
            &format!("{dt}/pools/{{pool}}/agents"),
            get(list_agents).post(add_agent),
        )
        .route(
            &format!("{dt}/pools/{{pool}}/agents/{{agent}}"),
            get(get_agent).put(replace_agent).delete(delete_agent),
        )
        .merge(super::sessions::routes(&dt))
        .merge(super::plan::routes())
}

async fn connection_data(State(shared): SimState, headers: HeaderMap) -> Response {
    if let Err(r) = begin(&shared, endpoint::CONNECTION_DATA, &headers).await {
        return r;
    }
    let tenant = shared.lock().tenant_url();
    let definitions: Vec<Value> = LOCATIONS
        .iter()
        .map(|(id, resource, path)| {
            json!({
                "serviceType": "distributedtask",
                "identifier": id,
                "displayName": resource,
                "relativeToSetting": "context",
                "serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7",
                "relativePath": path,
                "description": "",
                "toolId": "",
                "resourceVersion": 1,
                "minVersion": "1.0",
                "maxVersion": "7.1",
                "releasedVersion": "0.0",
                "locationMappings": [{ "accessMappingMoniker": "PublicAccessMapping", "location": tenant }],
            })
        })
        .collect();
    axum::Json(json!({
        "authenticatedUser": { "id": "00000000-0000-0000-0000-000000000000", "descriptor": "sim", "providerDisplayName": "simulated" },
        "instanceId": uuid::Uuid::new_v4().to_string(),
        "deploymentId": uuid::Uuid::new_v4().to_string(),
        "deploymentType": "hosted",
        "locationServiceData": {
            "serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7",
            "defaultAccessMappingMoniker": "PublicAccessMapping",
            "lastChangeId": 1,
            "lastChangeId64": 1,
            "accessMappings": [{ "displayName": "Public Access Mapping", "moniker": "PublicAccessMapping", "accessPoint": tenant }],
            "serviceDefinitions": definitions,
        },
    }))
    .into_response()
}

fn pool_json() -> Value {
    json!({ "id": 1, "name": "Default", "isHosted": false, "isInternal": true, "poolType": "automation", "size": 0, "agentCloudId": null })
}

/// Authenticates a pools/agents call with the registration JWT; the scope it is for.
fn jwt_scope(w: &mut World, headers: &HeaderMap, ep: &str) -> Result<String, Response> {
    match require(w, headers, Want::Jwt, ep, Family::Vss)? {
        Caller::Jwt(scope) => Ok(scope),
        _ => Err(vss_error(
            StatusCode::UNAUTHORIZED,
            "VssUnauthorizedException",
            "unauthorized",
        )),
    }
}

async fn pools(State(shared): SimState, headers: HeaderMap) -> Response {
    if let Err(r) = begin(&shared, endpoint::POOLS_LIST, &headers).await {
        return r;
    }
    if let Err(r) = shared.update(|w| jwt_scope(w, &headers, endpoint::POOLS_LIST)) {
        return r;
    }
    axum::Json(json!({ "count": 1, "value": [pool_json()] })).into_response()
}

async fn pool(State(shared): SimState, Path(pool): Path<u64>, headers: HeaderMap) -> Response {
    if let Err(r) = begin(&shared, endpoint::POOLS_LIST, &headers).await {
        return r;
    }
    if let Err(r) = shared.update(|w| jwt_scope(w, &headers, endpoint::POOLS_LIST)) {
        return r;
    }
    if pool != 1 {
        return pool_not_found();
    }
    axum::Json(pool_json()).into_response()
}

fn pool_not_found() -> Response {
    vss_error(
        StatusCode::NOT_FOUND,
        "TaskAgentPoolNotFoundException",
        "Agent pool not found.",
    )
}

pub(crate) fn agent_not_found() -> Response {
    vss_error(
        StatusCode::NOT_FOUND,
        "TaskAgentNotFoundException",
        "Agent not found.",
    )
}

/// The TaskAgent answer, with authorization and the configured properties.
pub(crate) fn agent_json(w: &World, a: &Agent) -> Value {
    let mut properties = serde_json::Map::new();
    if w.cfg.broker == super::config::BrokerMode::AgentProperties {
        properties.insert(
            "ServerUrlV2".into(),
            json!({ "$type": "System.String", "$value": w.broker_url() }),
        );
        properties.insert(
            "UseV2Flow".into(),
            json!({ "$type": "System.Boolean", "$value": true }),
        );
    }
    if let Some(fips) = w.cfg.require_fips {
        properties.insert(
            "RequireFipsCryptography".into(),
            json!({ "$type": "System.Boolean", "$value": fips }),
        );
    }
    let snap = w.runner_snapshot(a);
    json!({
        "id": a.id,
        "name": a.name,
        "version": a.version,
        "osDescription": a.os_description,
        "enabled": true,
        "status": if snap.online { "online" } else { "offline" },
        "provisioningState": "Provisioned",
        "maxParallelism": 1,
        "ephemeral": a.ephemeral,
        "disableUpdate": true,
        "createdOn": a.created_on.to_rfc3339(),
        "labels": a.labels.iter().enumerate().map(|(i, l)| json!({ "id": i + 1, "name": l, "type": "user" })).collect::<Vec<_>>(),
        "authorization": {
            "authorizationUrl": w.token_url(&a.client_id),
            "clientId": a.client_id,
            "publicKey": { "exponent": a.key.exponent_base64(), "modulus": a.key.modulus_base64() },
        },
        "properties": properties,
    })
}

fn parse_new_agent(body: &Value, scope: String) -> Result<NewAgent, Response> {
    let bad = |m: &str| vss_error(StatusCode::BAD_REQUEST, "ArgumentException", m);
    let text = |k: &str| {
        field(body, k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let name = text("name");
    if name.is_empty() {
        return Err(bad("The agent name is required."));
    }
    let key = field(body, "authorization")
        .and_then(|a| field(a, "publicKey"))
        .and_then(|k| {
            RunnerKey::from_base64(
                field(k, "modulus")?.as_str()?,
                field(k, "exponent")?.as_str()?,
            )
        })
        .ok_or_else(|| {
            bad("authorization.publicKey with base64 modulus and exponent is required.")
        })?;
    let labels = field(body, "labels")
        .and_then(|l| l.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|l| field(l, "name").and_then(|n| n.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(NewAgent {
        scope,
        name,
        labels,
        ephemeral: field(body, "ephemeral")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        key,
        version: text("version"),
        os_description: text("osDescription"),
        runner_admin: false,
    })
}

async fn add_agent(
    State(shared): SimState,
    Path(pool): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::AGENTS_ADD, &headers).await {
        return r;
    }
    let body = json_body(&body);
    shared.update(|w| {
        let scope = match jwt_scope(w, &headers, endpoint::AGENTS_ADD) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if pool != 1 {
            return pool_not_found();
        }
        let new = match parse_new_agent(&body, scope) {
            Ok(n) => n,
            Err(r) => return r,
        };
        match w.add_agent(new) {
            Ok(a) => axum::Json(agent_json(w, &a)).into_response(),
            Err(AddError::NameExists) => vss_error(
                StatusCode::CONFLICT,
                "TaskAgentExistsException",
                "An agent with this name already exists in the pool.",
            ),
        }
    })
}

async fn list_agents(
    State(shared): SimState,
    Path(pool): Path<u64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::AGENTS_LIST, &headers).await {
        return r;
    }
    let name = query_param(&q, "agentName").map(str::to_string);
    shared.update(|w| {
        let scope = match jwt_scope(w, &headers, endpoint::AGENTS_LIST) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if pool != 1 {
            return pool_not_found();
        }
        let agents: Vec<Value> = w
            .agents
            .values()
            .filter(|a| a.scope.eq_ignore_ascii_case(&scope))
            .filter(|a| name.as_ref().is_none_or(|n| a.name.eq_ignore_ascii_case(n)))
            .map(|a| agent_json(w, a))
            .collect();
        axum::Json(json!({ "count": agents.len(), "value": agents })).into_response()
    })
}

async fn get_agent(
    State(shared): SimState,
    Path((_pool, agent)): Path<(u64, u64)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::AGENTS_LIST, &headers).await {
        return r;
    }
    shared.update(|w| {
        let scope = match jwt_scope(w, &headers, endpoint::AGENTS_LIST) {
            Ok(s) => s,
            Err(r) => return r,
        };
        match w
            .agents
            .get(&agent)
            .filter(|a| a.scope.eq_ignore_ascii_case(&scope))
        {
            Some(a) => axum::Json(agent_json(w, a)).into_response(),
            None => agent_not_found(),
        }
    })
}

async fn replace_agent(
    State(shared): SimState,
    Path((_pool, agent)): Path<(u64, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::AGENTS_REPLACE, &headers).await {
        return r;
    }
    let body = json_body(&body);
    shared.update(|w| {
        let scope = match jwt_scope(w, &headers, endpoint::AGENTS_REPLACE) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if w.agents
            .get(&agent)
            .is_none_or(|a| !a.scope.eq_ignore_ascii_case(&scope))
        {
            return agent_not_found();
        }
        let new = match parse_new_agent(&body, scope) {
            Ok(n) => n,
            Err(r) => return r,
        };
        match w.replace_agent(agent, new) {
            Ok(a) => axum::Json(agent_json(w, &a)).into_response(),
            Err(_) => vss_error(
                StatusCode::CONFLICT,
                "TaskAgentExistsException",
                "An agent with this name already exists.",
            ),
        }
    })
}

async fn delete_agent(
    State(shared): SimState,
    Path((_pool, agent)): Path<(u64, u64)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = begin(&shared, endpoint::AGENTS_DELETE, &headers).await {
        return r;
    }
    shared.update(|w| {
        let scope = match jwt_scope(w, &headers, endpoint::AGENTS_DELETE) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if w.agents
            .get(&agent)
            .is_none_or(|a| !a.scope.eq_ignore_ascii_case(&scope))
        {
            return agent_not_found();
        }
        w.delete_agent(agent);
        StatusCode::NO_CONTENT.into_response()
    })
}
