//! The broker flows against the simulator with a plain HTTP client: agent properties
//! (ServerUrlV2/UseV2Flow), `BrokerMigration` on the v1 poll, and the runner-admin (v2)
//! registration; each with acknowledge, acquirejob, renewjob and completejob.

mod sim_client;

use jsonwebtoken::Algorithm;
use megascaler::sim::{BrokerMode, CompletionPath, JobSpec, JobStatus, SimConfig, endpoint};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim_client::*;

/// From a `RunnerJobRequest` broker message: acknowledge, acquire, renew, complete.
async fn run_service_job(
    sim: &megascaler::sim::SimHandle,
    c: &Client,
    broker: &str,
    token: &str,
    sid: &str,
    msg: &Value,
    job_id: u64,
) {
    assert_eq!(msg["messageType"], "RunnerJobRequest");
    assert!(msg.get("iv").is_none());
    let reference: Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
    let rid = reference["runner_request_id"].as_str().unwrap();
    let run_service = reference["run_service_url"].as_str().unwrap();
    let ack = c
        .call(
            Method::POST,
            &format!("{broker}acknowledge?sessionId={sid}&status=Online&runnerVersion=3.0.0"),
            Scheme::Bearer(token),
            Some(json!({ "runnerRequestId": rid })),
        )
        .await;
    assert_eq!(ack.status, StatusCode::OK, "{:?}", ack.body);
    let acquired = c
        .call(
            Method::POST,
            &format!("{run_service}acquirejob"),
            Scheme::Bearer(token),
            Some(json!({ "jobMessageId": rid, "runnerOS": "Linux" })),
        )
        .await;
    assert_eq!(acquired.status, StatusCode::OK, "{:?}", acquired.body);
    let job = acquired.body;
    assert_eq!(job["messageType"], "RunnerJobRequest");
    assert_eq!(job["contextData"]["job"]["d"][0]["v"], json!(job_id));
    assert_eq!(
        sim.job(job_id).unwrap().status,
        JobStatus::InProgress,
        "acquire starts the job"
    );
    let (vss_url, job_token) = vss(&job);
    assert!(vss_url.ends_with("/_services/run/"), "{vss_url}");
    let ids = json!({ "planId": job["plan"]["planId"], "jobId": job["jobId"] });
    let renew = c
        .call(
            Method::POST,
            &format!("{vss_url}renewjob"),
            Scheme::Bearer(&job_token),
            Some(ids.clone()),
        )
        .await;
    assert_eq!(renew.status, StatusCode::OK, "{:?}", renew.body);
    assert!(renew.body["lockedUntil"].is_string());
    let mut done = ids.clone();
    done["conclusion"] = json!("succeeded");
    done["annotations"] = json!([{ "level": "notice", "message": "all good" }]);
    let complete = c
        .call(
            Method::POST,
            &format!("{vss_url}completejob"),
            Scheme::Bearer(&job_token),
            Some(done),
        )
        .await;
    assert_eq!(complete.status, StatusCode::OK, "{:?}", complete.body);
    let j = sim.job(job_id).unwrap();
    assert_eq!(j.conclusion.as_deref(), Some("success"));
    assert_eq!(j.completed_via, Some(CompletionPath::CompleteJob));
    assert_eq!(j.renewals, 1);
    assert_eq!(j.issues, vec!["all good".to_string()]);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn broker_through_agent_properties() {
    let (sim, c) = start(SimConfig {
        broker: BrokerMode::AgentProperties,
        require_fips: Some(true),
        ..fast()
    })
    .await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::PS256).await;
    let props = &r.agent["properties"];
    assert_eq!(props["UseV2Flow"]["$value"], json!(true));
    assert_eq!(props["RequireFipsCryptography"]["$value"], json!(true));
    let broker = props["ServerUrlV2"]["$value"].as_str().unwrap().to_string();
    let s = c
        .call(
            Method::POST,
            &format!("{broker}session"),
            Scheme::Bearer(&r.token),
            Some(json!({ "ownerName": "t", "agent": { "id": r.agent_id() } })),
        )
        .await;
    assert_eq!(s.status, StatusCode::OK, "{:?}", s.body);
    let sid = s.body["sessionId"].as_str().unwrap().to_string();
    // A second session is a conflict.
    let again = c
        .call(
            Method::POST,
            &format!("{broker}session"),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["source"], "actions-broker-listener");
    let job_id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let msg = poll(&c, &format!("{broker}message?sessionId={sid}&status=Online&runnerVersion=3.0.0&os=Linux&architecture=X64&disableUpdate=true"), &r.token).await;
    run_service_job(&sim, &c, &broker, &r.token, &sid, &msg, job_id).await;
    assert_eq!(sim.counters().get(endpoint::ACQUIRE_JOB), 1);
    sim.shutdown();
}

#[tokio::test]
async fn broker_migration_message_on_the_v1_poll() {
    for with_id in [true, false] {
        let (sim, c) = start(SimConfig {
            broker: BrokerMode::MigrationMessage,
            migration_message_id: with_id,
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
        let job_id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
        let v1 = poll(
            &c,
            &format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1")])),
            &r.token,
        )
        .await;
        assert_eq!(v1["messageType"], "BrokerMigration");
        assert_eq!(v1.get("messageId").is_some(), with_id);
        let body: Value = serde_json::from_str(v1["body"].as_str().unwrap()).unwrap();
        let broker = body["brokerBaseUrl"].as_str().unwrap().to_string();
        if let Some(mid) = v1["messageId"].as_u64() {
            let mid = mid.to_string();
            let del = c
                .call(
                    Method::DELETE,
                    &format!(
                        "{}?sessionId={sid}",
                        r.url(MESSAGES, &[("poolId", "1"), ("messageId", &mid)])
                    ),
                    Scheme::Bearer(&r.token),
                    None,
                )
                .await;
            assert_eq!(del.status, StatusCode::OK);
        }
        let msg = poll(
            &c,
            &format!("{broker}message?sessionId={sid}&status=Online"),
            &r.token,
        )
        .await;
        run_service_job(&sim, &c, &broker, &r.token, &sid, &msg, job_id).await;
        sim.shutdown();
    }
}

#[tokio::test]
async fn runner_admin_registration_then_broker() {
    let (sim, c) = start(SimConfig {
        use_v2_flow: true,
        ..fast()
    })
    .await;
    let api = format!("{}api/v3", sim.base_url());
    let (_tenant, _jwt, answer) = tenant(&sim, &c).await;
    assert_eq!(answer["use_v2_flow"], json!(true));
    // The runner-admin calls use the 1 h registration token (RemoteAuth), as actions/runner does.
    let reg = c
        .call(
            Method::POST,
            &format!("{api}/repos/{REPO}/actions/runners/registration-token"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    let token = reg.body["token"].as_str().unwrap().to_string();
    let groups = c
        .call(
            Method::GET,
            &format!("{api}/repos/{REPO}/actions/runner-groups"),
            Scheme::RemoteAuth(&token),
            None,
        )
        .await;
    assert_eq!(groups.status, StatusCode::OK, "{:?}", groups.body);
    let group = groups.body["runner_groups"][0]["id"].clone();
    let key = RunnerKey::generate();
    let name = "ms-admin-1";
    let by_name = c
        .call(
            Method::GET,
            &format!("{api}/repos/{REPO}/actions/runners?name={name}"),
            Scheme::RemoteAuth(&token),
            None,
        )
        .await;
    assert_eq!(by_name.body["total_count"], json!(0));
    let body = json!({
        "url": format!("{}{REPO}", sim.base_url()), "group_id": group, "name": name, "version": "3.0.0",
        "updates_disabled": true, "ephemeral": true,
        "labels": [ { "id": 0, "name": "linux", "type": "user" } ], "public_key": key.xml(),
    });
    let runner = c
        .call(
            Method::POST,
            &format!("{api}/actions/runners/register"),
            Scheme::RemoteAuth(&token),
            Some(body),
        )
        .await;
    assert_eq!(runner.status, StatusCode::OK, "{:?}", runner.body);
    let auth = &runner.body["authorization"];
    let url = auth["authorization_url"].as_str().unwrap();
    let client_id = auth["client_id"].as_str().unwrap();
    let broker = auth["server_url"].as_str().unwrap().to_string();
    let oauth = oauth_with(
        &c,
        url,
        &key.assertion(client_id, url, Algorithm::PS256, 300),
    )
    .await
    .unwrap();
    let s = c
        .call(
            Method::POST,
            &format!("{broker}session"),
            Scheme::Bearer(&oauth),
            Some(json!({})),
        )
        .await;
    let sid = s.body["sessionId"].as_str().unwrap().to_string();
    let job_id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let msg = poll(&c, &format!("{broker}message?sessionId={sid}"), &oauth).await;
    run_service_job(&sim, &c, &broker, &oauth, &sid, &msg, job_id).await;
    assert!(
        sim.runners().is_empty(),
        "ephemeral runner deleted after its job"
    );
    sim.shutdown();
}

#[tokio::test]
async fn runner_admin_delete_with_remove_token() {
    let (sim, c) = start(SimConfig {
        use_v2_flow: true,
        ..fast()
    })
    .await;
    let api = format!("{}api/v3", sim.base_url());
    let reg = c
        .call(
            Method::POST,
            &format!("{api}/repos/{REPO}/actions/runners/registration-token"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    let token = reg.body["token"].as_str().unwrap().to_string();
    let key = RunnerKey::generate();
    let body = json!({ "url": format!("{}{REPO}", sim.base_url()), "group_id": 1, "name": "r1", "labels": [], "public_key": key.xml() });
    let runner = c
        .call(
            Method::POST,
            &format!("{api}/actions/runners/register"),
            Scheme::RemoteAuth(&token),
            Some(body),
        )
        .await;
    let id = runner.body["id"].as_u64().unwrap();
    let rm = c
        .call(
            Method::POST,
            &format!("{api}/repos/{REPO}/actions/runners/remove-token"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    let remove = rm.body["token"].as_str().unwrap().to_string();
    let del = c
        .call(
            Method::DELETE,
            &format!("{api}/repos/{REPO}/actions/runners/{id}"),
            Scheme::RemoteAuth(&remove),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{:?}", del.body);
    assert!(sim.runners().is_empty());
    sim.shutdown();
}

#[tokio::test]
async fn legacy_job_message_without_a_run_service_url() {
    let (sim, c) = start(SimConfig {
        broker: BrokerMode::AgentProperties,
        legacy_job_message: true,
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
    let sid = s.body["sessionId"].as_str().unwrap().to_string();
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let msg = poll(&c, &format!("{broker}message?sessionId={sid}"), &r.token).await;
    let reference: Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
    assert_eq!(reference["run_service_url"], "");
    let rid = reference["runner_request_id"].as_str().unwrap();
    let url = r.url(
        "25adab70-1379-4186-be8e-b643061ebe3a",
        &[("messageId", rid)],
    );
    let job = c
        .call(Method::GET, &url, Scheme::Bearer(&r.token), None)
        .await;
    assert_eq!(job.status, StatusCode::OK, "{:?}", job.body);
    assert_eq!(job.body["messageType"], "RunnerJobRequest");
    assert_eq!(sim.job(id).unwrap().status, JobStatus::InProgress);
    let again = c
        .call(Method::GET, &url, Scheme::Bearer(&r.token), None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    sim.shutdown();
}

#[tokio::test]
async fn injected_messages_are_delivered_on_both_channels() {
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
    let sid = s.body["sessionId"].as_str().unwrap().to_string();
    assert!(sim.send_message(&r.name, "ForceTokenRefresh", ""));
    assert!(sim.send_message(&r.name, "SomethingNew", "{\"x\":1}"));
    assert!(!sim.send_message("nobody", "AgentRefresh", ""));
    let url = format!("{broker}message?sessionId={sid}");
    let first = poll(&c, &url, &r.token).await;
    assert_eq!(first["messageType"], "ForceTokenRefresh");
    let second = poll(&c, &url, &r.token).await;
    assert_eq!(
        (second["messageType"].as_str(), second["body"].as_str()),
        (Some("SomethingNew"), Some("{\"x\":1}"))
    );
    let empty = c
        .call(Method::GET, &url, Scheme::Bearer(&r.token), None)
        .await;
    assert_eq!(
        empty.status,
        StatusCode::ACCEPTED,
        "broker messages are consumed when delivered"
    );
    sim.shutdown();
}

#[tokio::test]
async fn broker_migration_in_the_session_answer() {
    let (sim, c) = start(SimConfig {
        broker: BrokerMode::SessionMigration,
        ..fast()
    })
    .await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    let v1 = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(v1.status, StatusCode::OK);
    let broker = v1.body["brokerMigrationMessage"]["brokerBaseUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let job_id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    assert_eq!(
        sim.job(job_id).unwrap().offered_to,
        None,
        "no job over the v1 session"
    );
    // Re-creating the session at the broker replaces the v1 one (no 409).
    let s = c
        .call(
            Method::POST,
            &format!("{broker}session"),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(s.status, StatusCode::OK, "{:?}", s.body);
    let sid = s.body["sessionId"].as_str().unwrap().to_string();
    let msg = poll(&c, &format!("{broker}message?sessionId={sid}"), &r.token).await;
    run_service_job(&sim, &c, &broker, &r.token, &sid, &msg, job_id).await;
    sim.shutdown();
}

#[tokio::test]
async fn run_service_url_may_differ_from_the_vss_url() {
    let cfg = SimConfig {
        broker: BrokerMode::AgentProperties,
        run_service_url_differs: true,
        ..fast()
    };
    let (sim, c) = start(cfg).await;
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
    let sid = s.body["sessionId"].as_str().unwrap().to_string();
    let job_id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let msg = poll(&c, &format!("{broker}message?sessionId={sid}"), &r.token).await;
    // run_service_job acquires through run_service_url and renews/completes through the
    // SystemVssConnection.url, as actions/runner does.
    run_service_job(&sim, &c, &broker, &r.token, &sid, &msg, job_id).await;
    let counters = sim.counters();
    assert_eq!(
        counters.get(endpoint::RUN_VIA_MESSAGE_URL),
        1,
        "only acquirejob went to the message's URL"
    );
    assert_eq!(counters.get(endpoint::COMPLETE_JOB), 1);
    sim.shutdown();
}
