//! The v1 ("pipelines") flow end to end against the simulator with a plain HTTP client:
//! registration, OAuth (RS256 and PS256), session, job message (plain and encrypted), renew,
//! completion through the plan event, and what REST shows afterwards.

mod sim_client;

use jsonwebtoken::Algorithm;
use megascaler::sim::{CompletionPath, JobSpec, JobStatus, SimConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim_client::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Runs one v1 job through the whole flow; returns the decrypted message.
async fn v1_job(cfg: SimConfig, alg: Algorithm, fips_session: bool) -> Value {
    let encrypted = cfg.encrypt_messages;
    let (sim, c) = start(cfg).await;
    let r = register_v1(&sim, &c, &["linux", "big"], alg).await;
    assert_eq!(sim.runners().len(), 1);
    let pool = "1";
    let session = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", pool)]),
            Scheme::Bearer(&r.token),
            Some(json!({ "ownerName": "test", "agent": { "id": r.agent_id(), "name": r.name }, "useFipsEncryption": fips_session })),
        )
        .await;
    assert_eq!(session.status, StatusCode::OK, "{:?}", session.body);
    let sid = session.body["sessionId"].as_str().unwrap().to_string();
    assert_eq!(session.body.get("encryptionKey").is_some(), encrypted);

    let job_id = sim.queue_job(JobSpec::new(REPO, &["LINUX"]));
    let poll_url = format!(
        "{}?sessionId={sid}&status=Online&runnerVersion=3.0.0&os=Linux&architecture=X64&disableUpdate=true",
        r.url(MESSAGES, &[("poolId", pool)])
    );
    let msg = poll(&c, &poll_url, &r.token).await;
    assert_eq!(msg["messageType"], "PipelineAgentJobRequest");
    let body = if encrypted {
        let key = r.key.session_key(&session.body);
        assert_eq!(key.len(), 32);
        decrypt_body(&key, &msg)
    } else {
        assert!(msg.get("iv").is_none());
        msg["body"].as_str().unwrap().to_string()
    };
    let job: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        job["contextData"]["job"]["d"][0]["v"],
        json!(job_id),
        "check_run_id"
    );
    let github = job["contextData"]["github"]["d"].as_array().unwrap();
    let get = |k: &str| {
        github
            .iter()
            .find(|e| e["k"] == k)
            .map(|e| e["v"].clone())
            .unwrap()
    };
    assert_eq!(get("repository"), json!(REPO));
    assert_eq!(get("run_attempt"), json!("1"));
    assert_eq!(
        job["variables"]["system.github.token"]["isSecret"],
        json!(true)
    );
    assert!(job["plan"]["version"].as_u64().unwrap() >= 8);

    // Ack (delete) the message, then renew: the job starts.
    let mid = msg["messageId"].as_u64().unwrap().to_string();
    let del = c
        .call(
            Method::DELETE,
            &format!(
                "{}?sessionId={sid}",
                r.url(MESSAGES, &[("poolId", pool), ("messageId", &mid)])
            ),
            Scheme::Bearer(&r.token),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::OK);
    let req_id = job["requestId"].as_u64().unwrap().to_string();
    // Runner::url adds `?lockToken=<zero GUID>` to job request URLs.
    let renew_url = r.url(JOBREQUESTS, &[("poolId", pool), ("requestId", &req_id)]);
    let renew = c
        .call(
            Method::PATCH,
            &renew_url,
            Scheme::Bearer(&r.token),
            Some(json!({ "requestId": job["requestId"] })),
        )
        .await;
    assert_eq!(renew.status, StatusCode::OK, "{:?}", renew.body);
    assert!(renew.body["lockedUntil"].is_string());
    let j = sim.job(job_id).unwrap();
    assert_eq!(j.status, JobStatus::InProgress);
    assert_eq!(j.runner_name.as_deref(), Some(r.name.as_str()));

    // The worker's part: JobCompleted with the job token, URL from connectionData.
    let (vss_url, job_token) = vss(&job);
    assert_eq!(vss_url, r.tenant);
    let plan = &job["plan"];
    let events = r.url(
        PLAN_EVENTS,
        &[
            ("scopeIdentifier", plan["scopeIdentifier"].as_str().unwrap()),
            ("hubName", plan["planType"].as_str().unwrap()),
            ("planId", plan["planId"].as_str().unwrap()),
        ],
    );
    let done = c
        .call(Method::POST, &events, Scheme::Bearer(&job_token), Some(json!({ "name": "JobCompleted", "jobId": job["jobId"], "requestId": job["requestId"], "result": "succeeded" })))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    let j = sim.job(job_id).unwrap();
    assert_eq!(j.status, JobStatus::Completed);
    assert_eq!(j.conclusion.as_deref(), Some("success"));
    assert_eq!(j.completed_via, Some(CompletionPath::PlanEvent));
    // Ephemeral: the service deletes the runner after its job; its calls find no agent.
    assert!(sim.runners().is_empty());
    let again = c
        .call(
            Method::PATCH,
            &renew_url,
            Scheme::Bearer(&r.token),
            Some(json!({ "requestId": job["requestId"] })),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.body["typeKey"], "TaskAgentNotFoundException");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.shutdown();
    job
}

#[tokio::test]
async fn v1_plain_rs256() {
    v1_job(fast(), Algorithm::RS256, false).await;
}

#[tokio::test]
async fn v1_plain_ps256() {
    v1_job(fast(), Algorithm::PS256, false).await;
}

#[tokio::test]
async fn v1_encrypted_sha1_oaep_rs256() {
    v1_job(
        SimConfig {
            encrypt_messages: true,
            ..fast()
        },
        Algorithm::RS256,
        false,
    )
    .await;
}

#[tokio::test]
async fn v1_encrypted_fips_ps256() {
    v1_job(
        SimConfig {
            encrypt_messages: true,
            ..fast()
        },
        Algorithm::PS256,
        true,
    )
    .await;
}

#[tokio::test]
async fn check_run_id_can_be_switched_off() {
    let (sim, c) = start(SimConfig {
        check_run_id_in_message: false,
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
    let sid = s.body["sessionId"].as_str().unwrap();
    sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let msg = poll(
        &c,
        &format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1")])),
        &r.token,
    )
    .await;
    let job: Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
    assert!(job["contextData"]["job"].get("d").is_none());
    sim.shutdown();
}

#[tokio::test]
async fn oauth_rejects_bad_assertions() {
    let (sim, c) = start(SimConfig {
        assertion_algorithms: megascaler::sim::AssertionAlgorithms::Ps256Only,
        ..fast()
    })
    .await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::PS256).await;
    let url = r.agent["authorization"]["authorizationUrl"]
        .as_str()
        .unwrap();
    let client = r.agent["authorization"]["clientId"].as_str().unwrap();
    // RS256 not accepted in this configuration.
    let e = oauth_with(
        &c,
        url,
        &r.key.assertion(client, url, Algorithm::RS256, 300),
    )
    .await
    .unwrap_err();
    assert_eq!(e["error"], "invalid_client");
    // Lifetime over five minutes.
    let e = oauth_with(
        &c,
        url,
        &r.key.assertion(client, url, Algorithm::PS256, 3600),
    )
    .await
    .unwrap_err();
    assert_eq!(e["error"], "invalid_client");
    // Wrong audience.
    let e = oauth_with(
        &c,
        url,
        &r.key
            .assertion(client, "http://elsewhere/", Algorithm::PS256, 300),
    )
    .await
    .unwrap_err();
    assert_eq!(e["error"], "invalid_client");
    // Signed by another key.
    let other = RunnerKey::generate();
    let e = oauth_with(
        &c,
        url,
        &other.assertion(client, url, Algorithm::PS256, 300),
    )
    .await
    .unwrap_err();
    assert_eq!(e["error"], "invalid_client");
    // Expired.
    let e = oauth_with(&c, url, &r.key.assertion(client, url, Algorithm::PS256, 10))
        .await
        .unwrap_err();
    assert_eq!(e["error"], "invalid_client");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("Current server time is")
    );
    // A deleted runner is invalid_client.
    assert!(sim.delete_runner(&r.name));
    let e = oauth_with(
        &c,
        url,
        &r.key.assertion(client, url, Algorithm::PS256, 300),
    )
    .await
    .unwrap_err();
    assert_eq!(e["error"], "invalid_client");
    sim.shutdown();
}

#[tokio::test]
async fn lock_not_renewed_abandons_the_job() {
    let (sim, c) = start(SimConfig {
        lock_duration: Duration::from_millis(400),
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
    assert_eq!(s.status, StatusCode::OK);
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    assert!(
        sim.wait_until(
            |s| s.job(id).is_some_and(|j| j.status == JobStatus::Completed),
            WAIT
        )
        .await
    );
    let j = sim.job(id).unwrap();
    assert_eq!(j.conclusion.as_deref(), Some("failure"));
    assert_eq!(j.completed_via, Some(CompletionPath::LockExpired));
    sim.shutdown();
}

#[tokio::test]
async fn plan_version_below_8_finishes_through_the_job_request() {
    let (sim, c) = start(SimConfig {
        plan_version: 7,
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
    let sid = s.body["sessionId"].as_str().unwrap();
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let msg = poll(
        &c,
        &format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1")])),
        &r.token,
    )
    .await;
    let job: Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
    assert_eq!(job["plan"]["version"], json!(7));
    let req = job["requestId"].as_u64().unwrap().to_string();
    let url = r.url(JOBREQUESTS, &[("poolId", "1"), ("requestId", &req)]);
    let fin = c
        .call(Method::PATCH, &url, Scheme::Bearer(&r.token), Some(json!({ "requestId": job["requestId"], "finishTime": chrono::Utc::now().to_rfc3339(), "result": "failed" })))
        .await;
    assert_eq!(fin.status, StatusCode::OK, "{:?}", fin.body);
    let j = sim.job(id).unwrap();
    assert_eq!(j.conclusion.as_deref(), Some("failure"));
    assert_eq!(
        j.completed_via,
        Some(megascaler::sim::CompletionPath::JobRequestFinish)
    );
    sim.shutdown();
}

#[tokio::test]
async fn issues_logs_and_assertion_algorithm_are_recorded() {
    let (sim, c) = start(fast()).await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::PS256).await;
    assert_eq!(sim.runners()[0].assertion_alg.as_deref(), Some("PS256"));
    let secrets = sim.issued_secrets();
    assert!(secrets.contains(&r.token) && secrets.contains(&r.jwt));
    let s = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    let sid = s.body["sessionId"].as_str().unwrap();
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let msg = poll(
        &c,
        &format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1")])),
        &r.token,
    )
    .await;
    let job: Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
    let (_, job_token) = vss(&job);
    let plan = &job["plan"];
    let values = [
        ("scopeIdentifier", plan["scopeIdentifier"].as_str().unwrap()),
        ("hubName", plan["planType"].as_str().unwrap()),
        ("planId", plan["planId"].as_str().unwrap()),
        ("timelineId", job["timeline"]["id"].as_str().unwrap()),
    ];
    let records = r.url("8893bc5b-35b2-4be7-83cb-99e683551db4", &values);
    let record = json!({ "id": job["jobId"], "type": "Job", "state": "completed", "result": "failed",
        "issues": [ { "type": "error", "message": "worker crashed: exit 3" } ] });
    let t = c
        .call(
            Method::PATCH,
            &records,
            Scheme::Bearer(&job_token),
            Some(json!({ "count": 1, "value": [record] })),
        )
        .await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    let logs = r.url("46f5667d-263a-4684-91b1-dff7fdcf64e2", &values[..3]);
    let created = c
        .call(
            Method::POST,
            &logs,
            Scheme::Bearer(&job_token),
            Some(json!({ "path": "logs/x" })),
        )
        .await;
    let log_id = created.body["id"].as_u64().unwrap().to_string();
    let mut with_id = values[..3].to_vec();
    with_id.push(("logId", &log_id));
    let append = c
        .http
        .post(r.url("46f5667d-263a-4684-91b1-dff7fdcf64e2", &with_id))
        .header("User-Agent", UA)
        .bearer_auth(&job_token)
        .header(
            "Content-Type",
            "application/octet-stream; api-version=5.1-preview.1",
        )
        .body("line one\nline two\n")
        .send()
        .await
        .unwrap();
    assert_eq!(append.status(), StatusCode::OK);
    // The runner token is refused where the job token belongs.
    let wrong = c
        .call(
            Method::PATCH,
            &records,
            Scheme::Bearer(&r.token),
            Some(json!({ "count": 0, "value": [] })),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let j = sim.job(id).unwrap();
    assert_eq!(j.issues, vec!["worker crashed: exit 3".to_string()]);
    assert_eq!(j.log, vec!["line one".to_string(), "line two".to_string()]);
    assert_eq!(sim.violations().len(), 1, "{:?}", sim.violations());
    sim.shutdown();
}
