//! `megascaler sim` as a process: it prints its URL and PAT, its `/_sim/` API queues a job that
//! REST then shows and that arrives as a signed webhook, and it stops on Ctrl-C.

use axum::body::Bytes;
use axum::http::HeaderMap;
use megascaler::sim::sign_webhook;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

const SECRET: &str = "megascaler-test-secret";
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn standalone_sim_queues_jobs_seen_by_rest_and_webhooks() {
    // The webhook receiver.
    let (tx, mut hooks) = mpsc::unbounded_channel::<(HeaderMap, Bytes)>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: HeaderMap, b: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((h, b));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut child = Command::new(env!("CARGO_BIN_EXE_megascaler"))
        .args([
            "sim",
            "--address",
            "127.0.0.1:0",
            "--webhook-url",
            &hook_url,
        ])
        // The secret through the environment: a flag would show in `ps`.
        .env("MEGASCALER_SIM_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn megascaler sim");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut pat) = (String::new(), String::new());
    while pat.is_empty() {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("output");
        if let Some(v) = line.strip_prefix("github_url=") {
            base = v.to_string();
        }
        if let Some(v) = line.strip_prefix("pat=") {
            pat = v.to_string();
        }
    }
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let http = reqwest::Client::new();
    let queued: Value = http
        .post(format!("{base}_sim/jobs"))
        .json(&json!({ "repository": "octo/hello", "labels": ["linux"], "job_name": "test" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = queued["id"].as_u64().unwrap();

    let job = http
        .get(format!("{base}api/v3/repos/octo/hello/actions/jobs/{id}"))
        .header("User-Agent", "sim-tests")
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(job.status(), reqwest::StatusCode::OK);
    let job: Value = job.json().await.unwrap();
    assert_eq!(
        (job["status"].as_str(), job["name"].as_str()),
        (Some("queued"), Some("test"))
    );

    let (h, body) = tokio::time::timeout(WAIT, hooks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        h["x-hub-signature-256"].to_str().unwrap(),
        sign_webhook(SECRET.as_bytes(), &body)
    );
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["action"], "queued");
    assert_eq!(payload["workflow_job"]["id"], json!(id));

    // The rest of the control API.
    let counters: Value = http
        .get(format!("{base}_sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["by_endpoint"]["rest.jobs.get"], json!(1));
    assert_eq!(counters["pat_calls"], json!(1));
    let jobs: Value = http
        .get(format!("{base}_sim/jobs/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["status"], "queued");
    let fault = http
        .post(format!("{base}_sim/faults"))
        .json(&json!({ "endpoint": "rest.jobs.get", "fault": { "status": 502 }, "times": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), reqwest::StatusCode::NO_CONTENT);
    let failed = http
        .get(format!("{base}api/v3/repos/octo/hello/actions/jobs/{id}"))
        .header("User-Agent", "sim-tests")
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), reqwest::StatusCode::BAD_GATEWAY);
    let cancel = http
        .post(format!("{base}_sim/runs/{}/cancel", job["run_id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), reqwest::StatusCode::ACCEPTED);
    let jobs: Value = http
        .get(format!("{base}_sim/jobs/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["conclusion"], "cancelled");
    let violations: Value = http
        .get(format!("{base}_sim/violations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(violations, json!([]));

    // Ctrl-C stops it cleanly.
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
