//! The job message (`AgentJobRequestMessage`, spec §5.2) the simulator hands to runners.
//!
//! Owns building a realistic message: plan, timeline, ids, lock, the `SystemVssConnection`
//! endpoint with the per-job token and service URLs, secret and plain variables (the worker
//! script among the plain ones), `contextData` in the §5.3 encoding, mask and opaque steps.
//! Pure: no IO, no state.

use super::SCRIPT_VARIABLE;
use super::world::{Job, JobFlow};
use serde_json::{Value, json};
use url::Url;

/// Service facts the message refers to.
pub(crate) struct MessageInputs {
    pub base: Url,
    pub tenant_url: String,
    pub run_service_url: String,
    pub plan_version: u32,
    pub check_run_id: bool,
}

/// A §5.3 type-2 (case-insensitive) dictionary from key/value pairs.
pub(crate) fn dictionary(entries: Vec<(&str, Value)>) -> Value {
    let d: Vec<Value> = entries
        .into_iter()
        .map(|(k, v)| json!({ "k": k, "v": v }))
        .collect();
    json!({ "t": 2, "d": d })
}

pub(crate) fn build_job_message(inputs: &MessageInputs, job: &Job) -> Value {
    let s = &job.snapshot;
    let flow = job.flow.unwrap_or(JobFlow::Pipelines);
    let message_type = match flow {
        JobFlow::Pipelines => "PipelineAgentJobRequest",
        JobFlow::RunService => "RunnerJobRequest",
    };
    let vss_url = match flow {
        JobFlow::Pipelines => inputs.tenant_url.clone(),
        JobFlow::RunService => inputs.run_service_url.clone(),
    };
    let base = inputs.base.as_str();
    let token = job.job_token.clone().unwrap_or_default();
    let github_token = format!("ghs_{}", hex::encode(rand::random::<[u8; 18]>()));
    let other_secret = format!("sim-secret-{}", hex::encode(rand::random::<[u8; 8]>()));
    // The worker script carries the sim's ground truth (the job's own labels and id), so
    // sim-worker can tell a wrong identification by megascaler from a right one: megascaler's
    // spliced context is derived from megascaler's own identification and cannot prove it.
    let truth = super::WorkerScript {
        true_labels: Some(s.labels.clone()),
        true_job_id: Some(s.id),
        ..job.script.clone()
    };
    let script = serde_json::to_string(&truth).unwrap_or_default();
    let owner = s.repository.split('/').next().unwrap_or_default();
    let feed = inputs
        .tenant_url
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    let github = dictionary(vec![
        ("run_id", json!(s.run_id.to_string())),
        ("run_attempt", json!(s.run_attempt.to_string())),
        ("run_number", json!("1")),
        ("repository", json!(s.repository)),
        ("repository_owner", json!(owner)),
        ("job", json!(s.job_name)),
        ("workflow", json!(s.workflow_name)),
        ("event_name", json!("push")),
        ("ref", json!("refs/heads/main")),
        ("sha", json!(hex::encode(rand::random::<[u8; 20]>()))),
        ("actor", json!("octocat")),
        ("server_url", json!(base.trim_end_matches('/'))),
        ("api_url", json!(format!("{base}api/v3"))),
        ("graphql_url", json!(format!("{base}api/graphql"))),
        ("token", json!(github_token)),
    ]);
    let mut job_context = Vec::new();
    if inputs.check_run_id {
        job_context.push(("check_run_id", json!(s.id)));
    }
    let job_ctx = if job_context.is_empty() {
        json!({ "t": 2 })
    } else {
        dictionary(job_context)
    };
    json!({
        "messageType": message_type,
        "plan": {
            "scopeIdentifier": job.scope_identifier,
            "planType": "Actions",
            "planId": job.plan_id,
            "version": inputs.plan_version,
            "planGroup": null,
            "artifactUri": format!("vstfs:///Build/Build/{}", s.run_id),
            "artifactLocation": null,
            "definition": { "id": 1, "name": s.workflow_name },
            "owner": { "id": 1, "name": s.workflow_name },
        },
        "timeline": { "id": job.timeline_id, "changeId": 1, "location": null },
        "jobId": s.orchestration_id,
        "jobDisplayName": s.job_name,
        "jobName": s.job_name.replace(' ', "_"),
        "requestId": s.request_id,
        "lockedUntil": s.locked_until.map(|l| l.to_rfc3339()),
        "billingOwnerId": "",
        "resources": {
            "repositories": [],
            "endpoints": [{
                "name": "SystemVssConnection",
                "url": vss_url,
                "authorization": { "scheme": "OAuth", "parameters": { "AccessToken": token } },
                "data": {
                    "ServerId": uuid::Uuid::new_v4().to_string(),
                    "ServerName": "simulated",
                    "CacheServerUrl": format!("{base}_services/artifactcache/"),
                    "ResultsServiceUrl": format!("{base}_services/results/"),
                    "PipelinesServiceUrl": inputs.tenant_url,
                    "FeedStreamUrl": format!("{feed}_apis/distributedtask/feed"),
                    "GenerateIdTokenUrl": format!("{base}_services/pipelines/idtoken"),
                },
                "isShared": false,
                "isReady": true,
            }],
        },
        "variables": {
            "system.github.token": { "value": github_token, "isSecret": true },
            "system.github.job": { "value": s.job_name, "isSecret": false },
            "system.github.results_endpoint": { "value": format!("{base}_services/results/"), "isSecret": false },
            "system.github.launch_endpoint": { "value": format!("{base}_services/launch/"), "isSecret": false },
            "system.culture": { "value": "en-US", "isSecret": false },
            "system.orchestrationId": { "value": format!("{}.{}", job.plan_id, s.id), "isSecret": false },
            "DistributedTask.NewActionMetadata": { "value": "true", "isSecret": false },
            "SIM_DEPLOY_KEY": { "value": other_secret, "isSecret": true },
            SCRIPT_VARIABLE: { "value": script, "isSecret": false },
        },
        "contextData": {
            "github": github,
            "job": job_ctx,
            "needs": { "t": 2 },
            "strategy": dictionary(vec![("fail-fast", json!(true)), ("job-index", json!(0)), ("job-total", json!(1))]),
            "matrix": null,
            "inputs": null,
            "vars": { "t": 2 },
        },
        "mask": [
            { "type": "regex", "value": github_token },
            { "type": "regex", "value": other_secret },
        ],
        "steps": (1..=job.script.steps.max(1)).map(|i| json!({
            "type": "action",
            "reference": { "type": "script" },
            "id": uuid::Uuid::new_v4().to_string(),
            "name": format!("__run_{i}"),
            "displayName": format!("Run step {i}"),
            "inputs": { "type": 2, "map": [ { "Key": "script", "Value": format!("echo step {i}") } ] },
            "contextName": format!("__run_{i}"),
        })).collect::<Vec<Value>>(),
        "defaults": [],
        "environmentVariables": [],
        "jobContainer": null,
        "jobServiceContainers": null,
        "jobOutputs": null,
        "fileTable": [".github/workflows/ci.yml"],
        "workspace": {},
        "actionsEnvironment": null,
    })
}
