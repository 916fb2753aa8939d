//! Webhook signatures against the fixtures, and the simulator's signed `workflow_job`
//! deliveries (queued, in_progress with the runner, completed with the conclusion) and faults.

mod sim_client;

use axum::body::Bytes;
use axum::http::HeaderMap;
use jsonwebtoken::Algorithm;
use megascaler::sim::{JobSpec, SimConfig, WebhookFaults, WebhookTarget, sign_webhook};
use reqwest::Method;
use serde_json::{Value, json};
use sim_client::*;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

const SECRET: &str = "megascaler-test-secret";

#[test]
fn signature_vectors_match() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks");
    let text = std::fs::read_to_string(root.join("signature-vectors.jsonl")).unwrap();
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let payload = hex::decode(v["payload_hex"].as_str().unwrap()).unwrap();
        let signed = sign_webhook(v["secret"].as_str().unwrap().as_bytes(), &payload);
        let expected = v["expected"].as_str().unwrap();
        assert_eq!(
            signed == expected,
            v["sign_ok"].as_bool().unwrap_or(true),
            "vector {line}"
        );
        checked += 1;
    }
    assert!(checked >= 2);
}

#[test]
fn manifest_fixtures_match() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["secret"], SECRET);
    let fixtures = manifest["fixtures"].as_array().unwrap();
    assert!(!fixtures.is_empty());
    for f in fixtures {
        let bytes = std::fs::read(root.join(f["file"].as_str().unwrap())).unwrap();
        assert_eq!(bytes.len() as u64, f["bytes"].as_u64().unwrap());
        assert_eq!(
            sign_webhook(SECRET.as_bytes(), &bytes),
            f["x_hub_signature_256"].as_str().unwrap(),
            "{}",
            f["file"]
        );
    }
}

/// A webhook receiver on 127.0.0.1:0: (URL, deliveries as (headers, raw body)).
async fn receiver() -> (url::Url, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// The next delivery, its signature verified; (delivery id, payload).
async fn next(rx: &mut mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) -> (String, Value) {
    let (h, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("delivery")
        .unwrap();
    assert_eq!(h["x-github-event"], "workflow_job");
    assert_eq!(
        h["x-hub-signature-256"].to_str().unwrap(),
        sign_webhook(SECRET.as_bytes(), &body)
    );
    assert_eq!(h["content-type"], "application/json");
    // Compact JSON, as GitHub sends it.
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(serde_json::to_vec(&payload).unwrap().len(), body.len());
    (
        h["x-github-delivery"].to_str().unwrap().to_string(),
        payload,
    )
}

#[tokio::test]
async fn job_lifecycle_webhooks_are_signed_and_complete() {
    let (url, mut rx) = receiver().await;
    let (sim, c) = start(SimConfig {
        webhook: Some(WebhookTarget {
            url,
            secret: SECRET.into(),
        }),
        ..fast()
    })
    .await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    let s = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    let sid = s.body["sessionId"].as_str().unwrap().to_string();
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let (_, queued) = next(&mut rx).await;
    assert_eq!(queued["action"], "queued");
    assert_eq!(queued["workflow_job"]["id"], json!(id));
    assert_eq!(queued["workflow_job"]["runner_name"], Value::Null);
    assert_eq!(queued["workflow_job"]["labels"], json!(["linux"]));
    assert_eq!(queued["repository"]["full_name"], REPO);
    let msg = poll(
        &c,
        &format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1")])),
        &r.token,
    )
    .await;
    let job: Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
    let req = job["requestId"].as_u64().unwrap().to_string();
    c.call(
        Method::PATCH,
        &r.url(JOBREQUESTS, &[("poolId", "1"), ("requestId", &req)]),
        Scheme::Bearer(&r.token),
        Some(json!({ "requestId": job["requestId"] })),
    )
    .await;
    let (_, started) = next(&mut rx).await;
    assert_eq!(started["action"], "in_progress");
    assert_eq!(started["workflow_job"]["runner_name"], json!(r.name));
    assert_eq!(started["workflow_job"]["runner_id"], json!(r.agent_id()));
    let run_id = started["workflow_job"]["run_id"].as_u64().unwrap();
    // Force-cancel through REST completes it as cancelled.
    let api = format!("{}api/v3", sim.base_url());
    let fc = c
        .call(
            Method::POST,
            &format!("{api}/repos/{REPO}/actions/runs/{run_id}/force-cancel"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(fc.status, reqwest::StatusCode::ACCEPTED);
    let (_, done) = next(&mut rx).await;
    assert_eq!(done["action"], "completed");
    assert_eq!(done["workflow_job"]["conclusion"], "cancelled");
    assert_eq!(done["workflow_job"]["status"], "completed");
    sim.shutdown();
}

#[tokio::test]
async fn webhook_faults_drop_and_duplicate() {
    let (url, mut rx) = receiver().await;
    let (sim, _c) = start(SimConfig {
        webhook: Some(WebhookTarget {
            url,
            secret: SECRET.into(),
        }),
        ..fast()
    })
    .await;
    sim.set_webhook_faults(WebhookFaults {
        drop: 1.0,
        ..Default::default()
    });
    sim.queue_job(JobSpec::new(REPO, &["none"]));
    sim.set_webhook_faults(WebhookFaults {
        duplicate: 1.0,
        ..Default::default()
    });
    let second = sim.queue_job(JobSpec::new(REPO, &["none"]));
    let (d1, p1) = next(&mut rx).await;
    let (d2, p2) = next(&mut rx).await;
    assert_eq!(
        p1["workflow_job"]["id"],
        json!(second),
        "the first job's delivery was dropped"
    );
    assert_eq!((d1, p1), (d2, p2), "a duplicate reuses the delivery id");
    sim.shutdown();
}

#[tokio::test]
async fn webhook_faults_reorder() {
    let (url, mut rx) = receiver().await;
    let (sim, _c) = start(SimConfig {
        webhook: Some(WebhookTarget {
            url,
            secret: SECRET.into(),
        }),
        ..fast()
    })
    .await;
    sim.set_webhook_faults(WebhookFaults {
        reorder: 1.0,
        ..Default::default()
    });
    let a = sim.queue_job(JobSpec::new(REPO, &["none"]));
    let b = sim.queue_job(JobSpec::new(REPO, &["none"]));
    let (_, first) = next(&mut rx).await;
    let (_, second) = next(&mut rx).await;
    assert_eq!(first["workflow_job"]["id"], json!(b));
    assert_eq!(second["workflow_job"]["id"], json!(a));
    sim.shutdown();
}
