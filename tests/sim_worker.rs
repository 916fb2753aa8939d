//! `megascaler sim-worker` (the built binary) against the simulator: stdin frames, step log
//! lines, reporting with the job token (v1 plan event, run-service completejob), cancel,
//! wrong labels, crash, ignoring cancellation, and never printing secrets.

mod sim_client;

use jsonwebtoken::Algorithm;
use megascaler::sim::{
    BrokerMode, CompletionPath, JobSpec, JobStatus, SimConfig, SimHandle, WorkerScript,
};
use reqwest::Method;
use serde_json::{Value, json};
use sim_client::*;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(60);

/// A v1 job message as a runner holds it after ack and first renew.
async fn v1_message(sim: &SimHandle, c: &Client, script: WorkerScript) -> (u64, Value) {
    let r = register_v1(sim, c, &["linux"], Algorithm::RS256).await;
    let s = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    let sid = s.body["sessionId"].as_str().unwrap();
    let id = sim.queue_job(JobSpec {
        script,
        ..JobSpec::new(REPO, &["linux"])
    });
    let msg = poll(
        c,
        &format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1")])),
        &r.token,
    )
    .await;
    let job: Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
    let req = job["requestId"].as_u64().unwrap().to_string();
    let renew = c
        .call(
            Method::PATCH,
            &r.url(JOBREQUESTS, &[("poolId", "1"), ("requestId", &req)]),
            Scheme::Bearer(&r.token),
            Some(json!({ "requestId": job["requestId"] })),
        )
        .await;
    assert_eq!(renew.status, reqwest::StatusCode::OK);
    (id, job)
}

fn frame(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut f = kind.to_be_bytes().to_vec();
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn spawn_worker(labels: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_megascaler"))
        .args(["sim-worker", "--labels", labels])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sim-worker")
}

/// Runs the worker on a job to its end: (exit code, stdout + stderr).
async fn run_worker(job: &Value, labels: &str) -> (i32, String) {
    let mut child = spawn_worker(labels);
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&frame(1, job.to_string().as_bytes()))
        .await
        .unwrap();
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("worker exits")
        .unwrap();
    drop(stdin);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn assert_no_secrets(job: &Value, output: &str) {
    let (_, token) = vss(job);
    assert!(!output.contains(&token), "job token printed");
    for (name, v) in job["variables"].as_object().unwrap() {
        if v["isSecret"] == json!(true) {
            assert!(
                !output.contains(v["value"].as_str().unwrap()),
                "secret {name} printed"
            );
        }
    }
}

#[tokio::test]
async fn v1_job_reported_through_the_plan_event() {
    let (sim, c) = start(fast()).await;
    let script = WorkerScript {
        steps: 3,
        step_millis: 10,
        ..WorkerScript::default()
    };
    let (id, job) = v1_message(&sim, &c, script).await;
    let (code, out) = run_worker(&job, "LINUX").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("started for labels [LINUX]"), "{out}");
    assert!(out.contains("Run step 3 of 3"), "{out}");
    assert_no_secrets(&job, &out);
    let j = sim.job(id).unwrap();
    assert_eq!(
        (j.conclusion.as_deref(), j.completed_via),
        (Some("success"), Some(CompletionPath::PlanEvent))
    );
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.shutdown();
}

#[tokio::test]
async fn broker_job_reported_through_completejob() {
    let (sim, c) = start(SimConfig {
        broker: BrokerMode::AgentProperties,
        ..fast()
    })
    .await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::PS256).await;
    let broker = r.agent["properties"]["ServerUrlV2"]["$value"]
        .as_str()
        .unwrap()
        .to_string();
    let s = c
        .call(
            Method::POST,
            &format!("{broker}session"),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    let sid = s.body["sessionId"].as_str().unwrap();
    let script = WorkerScript {
        steps: 2,
        step_millis: 10,
        conclusion: "failure".into(),
        ..WorkerScript::default()
    };
    let id = sim.queue_job(JobSpec {
        script,
        ..JobSpec::new(REPO, &["linux"])
    });
    let msg = poll(&c, &format!("{broker}message?sessionId={sid}"), &r.token).await;
    let reference: Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
    let run = reference["run_service_url"].as_str().unwrap();
    let job = c
        .call(
            Method::POST,
            &format!("{run}acquirejob"),
            Scheme::Bearer(&r.token),
            Some(json!({ "jobMessageId": reference["runner_request_id"], "runnerOS": "Linux" })),
        )
        .await
        .body;
    let (code, out) = run_worker(&job, "linux").await;
    assert_eq!(code, 0, "{out}");
    assert_no_secrets(&job, &out);
    let j = sim.job(id).unwrap();
    assert_eq!(
        (j.conclusion.as_deref(), j.result.as_deref()),
        (Some("failure"), Some("failed"))
    );
    assert_eq!(j.completed_via, Some(CompletionPath::CompleteJob));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.shutdown();
}

#[tokio::test]
async fn wrong_labels_are_reported_failed_with_the_reason() {
    let (sim, c) = start(fast()).await;
    let (id, mut job) = v1_message(&sim, &c, WorkerScript::default()).await;
    // The dispatcher's splice (§6.4): the labels the job really needs.
    let labels = json!({ "t": 1, "a": [ { "t": 0, "s": "gpu" } ] });
    let entry =
        json!({ "k": "megascaler", "v": { "t": 2, "d": [ { "k": "labels", "v": labels } ] } });
    job["contextData"]["github"]["d"]
        .as_array_mut()
        .unwrap()
        .push(entry);
    let (code, out) = run_worker(&job, "linux").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wrong worker"), "{out}");
    assert_eq!(sim.job(id).unwrap().conclusion.as_deref(), Some("failure"));
    sim.shutdown();
}

#[tokio::test]
async fn a_crash_exits_non_zero_without_reporting() {
    let (sim, c) = start(fast()).await;
    let script = WorkerScript {
        steps: 1,
        step_millis: 1,
        crash: true,
        ..WorkerScript::default()
    };
    let (id, job) = v1_message(&sim, &c, script).await;
    let (code, out) = run_worker(&job, "linux").await;
    assert_ne!(code, 0, "{out}");
    assert_eq!(sim.job(id).unwrap().status, JobStatus::InProgress);
    sim.shutdown();
}

/// Starts a long job and returns the worker once it logged its first step.
async fn started_worker(
    job: &Value,
) -> (
    Child,
    tokio::process::ChildStdin,
    BufReader<tokio::process::ChildStdout>,
) {
    let mut child = spawn_worker("linux");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&frame(1, job.to_string().as_bytes()))
        .await
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("Run step 1") {
        line.clear();
        let n = tokio::time::timeout(WAIT, lines.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "worker ended early");
    }
    (child, stdin, lines)
}

#[tokio::test]
async fn cancel_request_frame_cancels() {
    let (sim, c) = start(fast()).await;
    let script = WorkerScript {
        steps: 100,
        step_millis: 200,
        ..WorkerScript::default()
    };
    let (id, job) = v1_message(&sim, &c, script).await;
    let (mut child, mut stdin, _out) = started_worker(&job).await;
    stdin.write_all(&frame(2, b"")).await.unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        sim.job(id).unwrap().conclusion.as_deref(),
        Some("cancelled")
    );
    sim.shutdown();
}

#[tokio::test]
async fn hang_on_cancel_ignores_cancel_and_signals() {
    let (sim, c) = start(fast()).await;
    let script = WorkerScript {
        steps: 4,
        step_millis: 300,
        hang_on_cancel: true,
        ..WorkerScript::default()
    };
    let (id, job) = v1_message(&sim, &c, script).await;
    let (mut child, mut stdin, _out) = started_worker(&job).await;
    stdin.write_all(&frame(2, b"")).await.unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "ran to the end");
    assert_eq!(sim.job(id).unwrap().conclusion.as_deref(), Some("success"));
    sim.shutdown();
}
