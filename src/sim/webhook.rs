//! Signed `workflow_job` webhook deliveries, with faults on demand.
//!
//! Owns the payload (shape of `tests/fixtures/webhooks/`, compact JSON), the GitHub delivery
//! headers and signature, and the delivery task that drops, duplicates, delays or reorders
//! deliveries as configured when the event happened. It never touches the world's lock.

use super::config::{WebhookFaults, WebhookTarget};
use super::crypto::sign_webhook;
use super::http::github_time;
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
                "created_at": github_time(job.created_at),
                "started_at": github_time(job.started_at.unwrap_or(job.created_at)),
                "completed_at": job.completed_at.map(github_time),
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

impl WebhookEvent {
    /// The `ping` GitHub sends when a hook is created.
    pub fn ping(base: &Url) -> WebhookEvent {
        let payload = json!({
            "zen": "Keep it logically awesome.",
            "hook_id": 1,
            "hook": {
                "type": "Repository", "id": 1, "name": "web", "active": true,
                "events": ["workflow_job"],
                "config": { "content_type": "json", "insecure_ssl": "0", "url": "(configured)" },
            },
            "sender": { "login": "octocat", "id": 3, "type": "User" },
            "repository": { "html_url": format!("{base}"), "full_name": "simulated/hook" },
        });
        WebhookEvent {
            event: "ping",
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
    // A delivery held back by the reorder fault goes out after the next one, or after a
    // second (or the delay) when no next one comes.
    let mut held: Option<(String, WebhookEvent)> = None;
    loop {
        let flush_after = held
            .as_ref()
            .map_or(std::time::Duration::from_secs(3600), |(_, e)| {
                e.faults.delay.max(std::time::Duration::from_secs(1))
            });
        let event = tokio::select! {
            e = rx.recv() => match e { Some(e) => e, None => return },
            _ = tokio::time::sleep(flush_after), if held.is_some() => {
                if let Some((d, e)) = held.take() {
                    send(&client, &d, &e).await;
                }
                continue;
            }
            _ = stop.cancelled() => return,
        };
        let faults = event.faults.clone();
        if event.target.is_none() {
            continue;
        }
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
        // `in_progress` arrives late on GitHub (1-60 s): deliver it on its own timer, so later
        // events may overtake it.
        let late = !faults.in_progress_delay.is_zero() && event.payload["action"] == "in_progress";
        if late {
            let (client, delay) = (client.clone(), faults.in_progress_delay);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                send(&client, &delivery, &event).await;
            });
            continue;
        }
        send(&client, &delivery, &event).await;
        if rand::random_bool(faults.duplicate.clamp(0.0, 1.0)) {
            send(&client, &delivery, &event).await;
        }
        if let Some((d, e)) = held.take() {
            send(&client, &d, &e).await;
        }
    }
}

async fn send(client: &reqwest::Client, delivery: &str, event: &WebhookEvent) {
    let Some(target) = &event.target else {
        return;
    };
    let faults = &event.faults;
    let mut json = event.payload.to_string();
    if rand::random_bool(faults.malformed.clamp(0.0, 1.0)) {
        json.truncate(json.len() / 2);
    }
    // GitHub's form variant: the JSON in the `payload` field, signed over the form body.
    let form = rand::random_bool(faults.form_encoded.clamp(0.0, 1.0));
    let (content_type, body) = if form {
        let encoded = serde_urlencoded::to_string([("payload", json.as_str())]).unwrap_or_default();
        ("application/x-www-form-urlencoded", encoded)
    } else {
        ("application/json", json)
    };
    // The bad-signature fault signs with another secret, as a forged delivery would be.
    let forged = rand::random_bool(faults.bad_signature.clamp(0.0, 1.0));
    let secret = if forged {
        "not-the-secret"
    } else {
        target.secret.as_str()
    };
    let mut request = client
        .post(target.url.clone())
        .header("Content-Type", content_type)
        .header("X-GitHub-Event", event.event)
        .header("X-GitHub-Delivery", delivery)
        .header("X-GitHub-Hook-ID", "1");
    if rand::random_bool(faults.unsigned.clamp(0.0, 1.0)) {
        // Only the legacy SHA-1 header, which a listener must not accept (§7.1).
        request = request.header(
            "X-Hub-Signature",
            sign_sha1(secret.as_bytes(), body.as_bytes()),
        );
    } else {
        request = request.header(
            "X-Hub-Signature-256",
            sign_webhook(secret.as_bytes(), body.as_bytes()),
        );
    }
    match request.body(body).send().await {
        Ok(r) => tracing::debug!(delivery, status = r.status().as_u16(), "webhook delivered"),
        // GitHub does not redeliver on its own; neither does the simulator.
        Err(e) => tracing::info!(delivery, "webhook delivery failed: {e}"),
    }
}

/// The legacy `X-Hub-Signature` value: `sha1=<hex HMAC-SHA1>`.
fn sign_sha1(secret: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    match hmac::Hmac::<sha1::Sha1>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}
