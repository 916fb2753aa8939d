//! Signed `workflow_job` webhook deliveries, with faults on demand.
//!
//! Owns the payload (shape of `tests/fixtures/webhooks/`, compact JSON), the GitHub delivery
//! headers and signature, and the delivery task that drops, duplicates, delays or reorders
//! deliveries as configured when the event happened. It never touches the world's lock.

use super::config::{WebhookFaults, WebhookTarget};
use super::crypto::sign_webhook;
use super::model::SimJob;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use url::Url;

/// One event to deliver.
#[derive(Debug, Clone)]
pub(crate) struct WebhookEvent {
    pub event: &'static str,
    pub payload: Value,
    /// Target and faults as they were when the event happened (set by the world).
    pub target: Option<WebhookTarget>,
    pub faults: WebhookFaults,
}

impl WebhookEvent {
    /// A `workflow_job` event for the job's current state.
    pub fn workflow_job(action: &str, job: &SimJob, base: &Url, head_sha: &str) -> WebhookEvent {
        let base = base.as_str();
        let api = format!("{base}api/v3");
        let repo = &job.repository;
        let (owner, name) = repo.split_once('/').unwrap_or((repo.as_str(), ""));
        let runner_group = job.runner_id.map(|_| (1, "Default"));
        let payload = json!({
            "action": action,
            "workflow_job": {
                "id": job.id,
                "run_id": job.run_id,
                "workflow_name": job.workflow_name,
                "head_branch": "main",
                "run_url": format!("{api}/repos/{repo}/actions/runs/{}", job.run_id),
                "run_attempt": job.run_attempt,
                "node_id": format!("CR_sim{}", job.id),
                "head_sha": head_sha,
                "url": format!("{api}/repos/{repo}/actions/jobs/{}", job.id),
                "html_url": format!("{base}{repo}/actions/runs/{}/job/{}", job.run_id, job.id),
                "status": job.status.as_str(),
                "conclusion": job.conclusion,
                "created_at": job.created_at.to_rfc3339(),
                "started_at": job.started_at.unwrap_or(job.created_at).to_rfc3339(),
                "completed_at": job.completed_at.map(|t| t.to_rfc3339()),
                "name": job.job_name,
                "steps": [],
                "check_run_url": format!("{api}/repos/{repo}/check-runs/{}", job.id),
                "labels": job.labels,
                "runner_id": job.runner_id,
                "runner_name": job.runner_name,
                "runner_group_id": runner_group.map(|g| g.0),
                "runner_group_name": runner_group.map(|g| g.1),
            },
            "repository": {
                "id": 1,
                "node_id": "R_sim",
                "name": name,
                "full_name": repo,
                "private": true,
                "owner": { "login": owner, "id": 2, "type": "Organization" },
                "html_url": format!("{base}{repo}"),
                "url": format!("{api}/repos/{repo}"),
            },
            "organization": { "login": owner, "id": 2, "url": format!("{api}/orgs/{owner}") },
            "sender": { "login": "octocat", "id": 3, "type": "User" },
        });
        WebhookEvent {
            event: "workflow_job",
            payload,
            target: None,
            faults: WebhookFaults::default(),
        }
    }
}

/// The delivery loop: one event at a time, in order unless a fault reorders it.
pub(crate) async fn deliver(stop: CancellationToken, mut rx: UnboundedReceiver<WebhookEvent>) {
    let client = match reqwest::Client::builder()
        .user_agent("GitHub-Hookshot/simulated")
        .timeout(std::time::Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhook client: {e}");
            return;
        }
    };
    let mut held: Option<(String, WebhookEvent)> = None;
    loop {
        let event = tokio::select! {
            e = rx.recv() => match e { Some(e) => e, None => return },
            _ = stop.cancelled() => return,
        };
        let faults = event.faults.clone();
        let Some(target) = event.target.clone() else {
            continue;
        };
        let delivery = uuid::Uuid::new_v4().to_string();
        if rand::random_bool(faults.drop.clamp(0.0, 1.0)) {
            tracing::info!(delivery, "webhook dropped (fault)");
            continue;
        }
        if !faults.delay.is_zero() {
            tokio::time::sleep(faults.delay).await;
        }
        if held.is_none() && rand::random_bool(faults.reorder.clamp(0.0, 1.0)) {
            held = Some((delivery, event));
            continue;
        }
        send(&client, &target.url, &target.secret, &delivery, &event).await;
        if rand::random_bool(faults.duplicate.clamp(0.0, 1.0)) {
            send(&client, &target.url, &target.secret, &delivery, &event).await;
        }
        if let Some((d, e)) = held.take() {
            send(&client, &target.url, &target.secret, &d, &e).await;
        }
    }
}

async fn send(
    client: &reqwest::Client,
    url: &Url,
    secret: &str,
    delivery: &str,
    event: &WebhookEvent,
) {
    let body = event.payload.to_string();
    let signature = sign_webhook(secret.as_bytes(), body.as_bytes());
    let result = client
        .post(url.clone())
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", event.event)
        .header("X-GitHub-Delivery", delivery)
        .header("X-GitHub-Hook-ID", "1")
        .header("X-Hub-Signature-256", signature)
        .body(body)
        .send()
        .await;
    match result {
        Ok(r) => tracing::debug!(delivery, status = r.status().as_u16(), "webhook delivered"),
        // GitHub does not redeliver on its own; neither does the simulator.
        Err(e) => tracing::info!(delivery, "webhook delivery failed: {e}"),
    }
}
