//! More strictness: timeouts, agents by name, the flow's reporting API and vocabulary,
//! redelivery rules. Same helpers as `sim_violations`.

mod sim_client;

use jsonwebtoken::Algorithm;
use megascaler::sim::{BrokerMode, Fault, JobSpec, JobStatus, SimConfig, endpoint};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sim_client::*;

#[tokio::test]
async fn timeout_fault_holds_then_answers_504() {
    let (sim, c) = start(SimConfig {
        fault_timeout: std::time::Duration::from_millis(200),
        ..fast()
    })
    .await;
    let (tenant, jwt, _) = tenant(&sim, &c).await;
    sim.inject(endpoint::POOLS_LIST, Fault::Timeout, 1);
    let a = c
        .call(
            Method::GET,
            &format!("{tenant}_apis/distributedtask/pools"),
            Scheme::Bearer(&jwt),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);
    let b = c
        .call(
            Method::GET,
            &format!("{tenant}_apis/distributedtask/pools"),
            Scheme::Bearer(&jwt),
            None,
        )
        .await;
    assert_eq!(b.status, StatusCode::OK);
    sim.shutdown();
}

#[tokio::test]
async fn agents_are_listed_by_name_and_deleted_with_the_jwt() {
    let (sim, c) = start(fast()).await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    let agents = r.url(AGENTS, &[("poolId", "1")]);
    let list = c
        .call(
            Method::GET,
            &format!("{agents}?agentName={}", r.name),
            Scheme::Bearer(&r.jwt),
            None,
        )
        .await;
    assert_eq!(list.body["count"], json!(1));
    assert_eq!(
        list.body["value"][0]["authorization"]["publicKey"]["modulus"],
        json!(r.key.modulus)
    );
    // A duplicate name is refused.
    let dup = json!({ "name": r.name, "authorization": { "publicKey": { "exponent": r.key.exponent, "modulus": r.key.modulus } } });
    let again = c
        .call(Method::POST, &agents, Scheme::Bearer(&r.jwt), Some(dup))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["typeKey"], "TaskAgentExistsException");
    // The runner token is not the registration JWT.
    let id = r.agent_id().to_string();
    let one = r.url(AGENTS, &[("poolId", "1"), ("agentId", &id)]);
    let wrong = c
        .call(Method::DELETE, &one, Scheme::Bearer(&r.token), None)
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let del = c
        .call(Method::DELETE, &one, Scheme::Bearer(&r.jwt), None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(sim.runners().is_empty());
    let gone = c
        .call(Method::DELETE, &one, Scheme::Bearer(&r.jwt), None)
        .await;
    assert_eq!(gone.body["typeKey"], "TaskAgentNotFoundException");
    sim.shutdown();
}

#[tokio::test]
async fn reports_must_use_the_flows_api_and_task_results() {
    let (sim, c) = start(SimConfig {
        plan_version: 7,
        ..fast()
    })
    .await;
    let (r, _sid, poll_url) = listening(&sim, &c, &["linux"]).await;
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let job = body_of(&poll(&c, &poll_url, &r.token).await);
    let (_, token) = vss(&job);
    let run = format!("{}_services/run/", sim.base_url());
    let ids = json!({ "planId": job["plan"]["planId"], "jobId": job["jobId"], "conclusion": "succeeded" });
    // completejob for a PipelineAgentJobRequest job: wrong API.
    let wrong = c
        .call(
            Method::POST,
            &format!("{run}completejob"),
            Scheme::Bearer(&token),
            Some(ids),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND);
    assert!(
        violated(&sim, "used for a PipelineAgentJobRequest job"),
        "{:?}",
        sim.violations()
    );
    let plan = &job["plan"];
    let events = r.url(
        PLAN_EVENTS,
        &[
            ("scopeIdentifier", plan["scopeIdentifier"].as_str().unwrap()),
            ("hubName", plan["planType"].as_str().unwrap()),
            ("planId", plan["planId"].as_str().unwrap()),
        ],
    );
    let event = |result: &str| json!({ "name": "JobCompleted", "jobId": job["jobId"], "requestId": job["requestId"], "result": result });
    // Webhook words are not TaskResults.
    let bad = c
        .call(
            Method::POST,
            &events,
            Scheme::Bearer(&token),
            Some(event("success")),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(violated(&sim, "is not a TaskResult"));
    // Below plan version 8 JobCompleted does not end the job; the listener's finish does.
    let early = c
        .call(
            Method::POST,
            &events,
            Scheme::Bearer(&token),
            Some(event("Succeeded")),
        )
        .await;
    assert_eq!(early.status, StatusCode::OK);
    assert_ne!(sim.job(id).unwrap().status, JobStatus::Completed);
    let req = job["requestId"].as_u64().unwrap().to_string();
    let url = r.url(JOBREQUESTS, &[("poolId", "1"), ("requestId", &req)]);
    let finish = json!({ "requestId": job["requestId"], "finishTime": "2026-01-01T00:00:00Z", "result": "Succeeded" });
    assert_eq!(
        c.call(Method::PATCH, &url, Scheme::Bearer(&r.token), Some(finish))
            .await
            .status,
        StatusCode::OK
    );
    // A job request call without the zero lock token is recorded (§5.4).
    let bare = location(
        &r.tenant,
        &r.connection_data,
        JOBREQUESTS,
        &[("poolId", "1"), ("requestId", &req)],
    );
    c.call(
        Method::PATCH,
        &bare,
        Scheme::Bearer(&r.token),
        Some(json!({})),
    )
    .await;
    assert!(violated(&sim, "lockToken"));
    let j = sim.job(id).unwrap();
    assert_eq!(
        (j.conclusion.as_deref(), j.runner_name.as_deref()),
        (Some("success"), Some(r.name.as_str())),
        "a taken job ran on its runner"
    );
    sim.shutdown();
}

#[tokio::test]
async fn run_service_enums_are_lower_case_throughout() {
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
    sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let msg = poll(&c, &format!("{broker}message?sessionId={sid}"), &r.token).await;
    let rid = body_of(&msg)["runner_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = format!("{}_services/run/", sim.base_url());
    let job = c
        .call(
            Method::POST,
            &format!("{run}acquirejob"),
            Scheme::Bearer(&r.token),
            Some(json!({ "jobMessageId": rid })),
        )
        .await
        .body;
    let (_, token) = vss(&job);
    // The v1 renew is the wrong API for a RunnerJobRequest job.
    let req = job["requestId"].as_u64().unwrap().to_string();
    let v1 = c
        .call(
            Method::PATCH,
            &r.url(JOBREQUESTS, &[("poolId", "1"), ("requestId", &req)]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(v1.status, StatusCode::NOT_FOUND);
    assert!(violated(&sim, "used for a RunnerJobRequest job"));
    let mut body = json!({ "planId": job["plan"]["planId"], "jobId": job["jobId"], "conclusion": "succeeded",
        "stepResults": [ { "status": "Completed", "conclusion": "succeeded" } ] });
    let upper = c
        .call(
            Method::POST,
            &format!("{run}completejob"),
            Scheme::Bearer(&token),
            Some(body.clone()),
        )
        .await;
    assert_eq!(upper.status, StatusCode::BAD_REQUEST);
    assert!(violated(&sim, "are not lower-case"));
    body["stepResults"][0]["status"] = json!("completed");
    let ok = c
        .call(
            Method::POST,
            &format!("{run}completejob"),
            Scheme::Bearer(&token),
            Some(body),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    sim.shutdown();
}

#[tokio::test]
async fn redelivery_rules_and_double_delete() {
    let (sim, c) = start(fast()).await;
    let (r, sid, poll_url) = listening(&sim, &c, &["linux"]).await;
    sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let m = poll(&c, &poll_url, &r.token).await;
    let mid = m["messageId"].as_u64().unwrap();
    // Not deleted: redelivered, unless the poll says it already has it (lastMessageId).
    assert_eq!(poll(&c, &poll_url, &r.token).await["messageId"], json!(mid));
    let after = c
        .call(
            Method::GET,
            &format!("{poll_url}&lastMessageId={mid}"),
            Scheme::Bearer(&r.token),
            None,
        )
        .await;
    assert_eq!(after.status, StatusCode::ACCEPTED);
    let del = format!(
        "{}?sessionId={sid}",
        r.url(
            MESSAGES,
            &[("poolId", "1"), ("messageId", &mid.to_string())]
        )
    );
    for _ in 0..2 {
        assert_eq!(
            c.call(Method::DELETE, &del, Scheme::Bearer(&r.token), None)
                .await
                .status,
            StatusCode::OK
        );
    }
    assert!(violated(&sim, "deleted (acknowledged) twice"));
    sim.shutdown();
}

#[tokio::test]
async fn the_broker_delivers_a_job_request_once_per_session() {
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
    sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let url = format!("{broker}message?sessionId={sid}&status=Busy");
    assert_eq!(
        poll(&c, &url, &r.token).await["messageType"],
        "RunnerJobRequest"
    );
    let again = c
        .call(Method::GET, &url, Scheme::Bearer(&r.token), None)
        .await;
    assert_eq!(
        again.status,
        StatusCode::ACCEPTED,
        "not redelivered to the same session"
    );
    sim.shutdown();
}
