//! Strictness: the simulator rejects what GitHub rejects, with GitHub's error shapes, and
//! records the protocol violations it sees.

mod sim_client;

use jsonwebtoken::Algorithm;
use megascaler::sim::{BrokerMode, Fault, JobSpec, JobStatus, SimConfig, TokenKind, endpoint};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sim_client::*;

#[tokio::test]
async fn missing_user_agent_and_wrong_schemes() {
    let (sim, c) = start(fast()).await;
    let api = format!("{}api/v3", sim.base_url());
    // REST without a User-Agent is refused, as on GitHub.
    let no_ua = c
        .call_with(
            Method::POST,
            &format!("{api}/repos/{REPO}/actions/runners/registration-token"),
            Scheme::Bearer(sim.pat()),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(no_ua.status, StatusCode::FORBIDDEN);
    assert!(violated(&sim, "User-Agent"));
    let reg = c
        .call(
            Method::POST,
            &format!("{api}/repos/{REPO}/actions/runners/registration-token"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    let token = reg.body["token"].as_str().unwrap().to_string();
    let body = json!({ "url": format!("{}{REPO}", sim.base_url()), "runner_event": "register" });
    // E1: without a User-Agent runner-registration answers an unusable URL.
    let e1 = c
        .call_with(
            Method::POST,
            &format!("{api}/actions/runner-registration"),
            Scheme::RemoteAuth(&token),
            Some(body.clone()),
            None,
            &[],
        )
        .await;
    assert_eq!(e1.status, StatusCode::OK);
    assert!(e1.body["url"].as_str().unwrap().ends_with("/rest"));
    assert_eq!(e1.body["use_v2_flow"], json!(false));
    // Bearer where RemoteAuth belongs.
    let wrong = c
        .call(
            Method::POST,
            &format!("{api}/actions/runner-registration"),
            Scheme::Bearer(&token),
            Some(body),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(violated(&sim, "RemoteAuth"));
    // RemoteAuth on the pipelines service.
    let (tenant, _jwt, _) = tenant(&sim, &c).await;
    let pools = c
        .call(
            Method::GET,
            &format!("{tenant}_apis/distributedtask/pools"),
            Scheme::RemoteAuth(&token),
            None,
        )
        .await;
    assert_eq!(pools.status, StatusCode::UNAUTHORIZED);
    assert_eq!(pools.body["typeKey"], "VssUnauthorizedException");
    assert!(violated(&sim, "wrong auth scheme"));
    sim.shutdown();
}

#[tokio::test]
async fn runner_token_where_the_job_token_belongs() {
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
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let msg = poll(&c, &format!("{broker}message?sessionId={sid}"), &r.token).await;
    let rid = body_of(&msg)["runner_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ack_url = format!("{broker}acknowledge?sessionId={sid}");
    for _ in 0..2 {
        let ack = c
            .call(
                Method::POST,
                &ack_url,
                Scheme::Bearer(&r.token),
                Some(json!({ "runnerRequestId": rid })),
            )
            .await;
        assert_eq!(ack.status, StatusCode::OK);
    }
    assert!(violated(&sim, "acknowledged twice"));
    let run = format!("{}_services/run/", sim.base_url());
    let job = c
        .call(
            Method::POST,
            &format!("{run}acquirejob"),
            Scheme::Bearer(&r.token),
            Some(json!({ "jobMessageId": rid, "runnerOS": "Linux" })),
        )
        .await
        .body;
    let ids = json!({ "planId": job["plan"]["planId"], "jobId": job["jobId"] });
    // E23: the runner token on renewjob.
    let renew = c
        .call(
            Method::POST,
            &format!("{run}renewjob"),
            Scheme::Bearer(&r.token),
            Some(ids.clone()),
        )
        .await;
    assert_eq!(renew.status, StatusCode::UNAUTHORIZED);
    assert_eq!(renew.body["source"], "actions-run-service");
    assert!(
        renew.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not authorized for this job")
    );
    assert!(violated(
        &sim,
        "runner OAuth token used where the job token belongs"
    ));
    // Upper-case conclusion.
    let (_, job_token) = vss(&job);
    let mut done = ids.clone();
    done["conclusion"] = json!("Succeeded");
    let upper = c
        .call(
            Method::POST,
            &format!("{run}completejob"),
            Scheme::Bearer(&job_token),
            Some(done),
        )
        .await;
    assert_eq!(upper.status, StatusCode::BAD_REQUEST);
    assert!(violated(&sim, "not lower-case"));
    assert_eq!(sim.job(id).unwrap().status, JobStatus::InProgress);
    // The job token does not open sessions either.
    let s2 = c
        .call(
            Method::GET,
            &format!("{broker}message?sessionId={sid}"),
            Scheme::Bearer(&job_token),
            None,
        )
        .await;
    assert_eq!(s2.status, StatusCode::UNAUTHORIZED);
    assert!(violated(
        &sim,
        "a job token used where the runner OAuth token belongs"
    ));
    sim.shutdown();
}

#[tokio::test]
async fn a_second_job_taken_by_a_one_job_runner_is_recorded() {
    let (sim, c) = start(fast()).await;
    let (r, sid, poll_url) = listening(&sim, &c, &["linux"]).await;
    let first = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let m1 = poll(&c, &poll_url, &r.token).await;
    let del = |mid: u64| {
        format!(
            "{}?sessionId={sid}",
            r.url(
                MESSAGES,
                &[("poolId", "1"), ("messageId", &mid.to_string())]
            )
        )
    };
    c.call(
        Method::DELETE,
        &del(m1["messageId"].as_u64().unwrap()),
        Scheme::Bearer(&r.token),
        None,
    )
    .await;
    // GitHub's rule never offers a second job to this runner...
    let second = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    assert_eq!(sim.job(second).unwrap().offered_to, None);
    // ...but a test can force it (E16), and taking it is a violation.
    assert!(sim.offer_job_to(second, &r.name));
    let m2 = poll(&c, &poll_url, &r.token).await;
    assert_eq!(
        body_of(&m2)["requestId"],
        json!(sim.job(second).unwrap().request_id)
    );
    c.call(
        Method::DELETE,
        &del(m2["messageId"].as_u64().unwrap()),
        Scheme::Bearer(&r.token),
        None,
    )
    .await;
    assert!(
        violated(&sim, "took a second job"),
        "{:?}",
        sim.violations()
    );
    assert_eq!(
        sim.job(first).unwrap().offered_to.as_deref(),
        Some(r.name.as_str())
    );
    sim.shutdown();
}

#[tokio::test]
async fn an_unacked_job_is_rerouted_when_the_runner_leaves() {
    let (sim, c) = start(fast()).await;
    let (a, sid_a, poll_a) = listening(&sim, &c, &["linux"]).await;
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let m = poll(&c, &poll_a, &a.token).await;
    assert_eq!(m["messageType"], "PipelineAgentJobRequest");
    // E16: do not ack; close the session. The service re-routes the job.
    let del = c
        .call(
            Method::DELETE,
            &a.url(SESSIONS, &[("poolId", "1"), ("sessionId", &sid_a)]),
            Scheme::Bearer(&a.token),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::OK);
    assert_eq!(sim.job(id).unwrap().offered_to, None);
    let (b, _, poll_b) = listening(&sim, &c, &["linux"]).await;
    let m = poll(&c, &poll_b, &b.token).await;
    assert_eq!(
        body_of(&m)["requestId"],
        json!(sim.job(id).unwrap().request_id)
    );
    assert_eq!(
        sim.job(id).unwrap().offered_to.as_deref(),
        Some(b.name.as_str())
    );
    sim.shutdown();
}

#[tokio::test]
async fn sessions_conflict_and_tokens_expire() {
    let (sim, c) = start(fast()).await;
    let (r, _sid, poll_url) = listening(&sim, &c, &["linux"]).await;
    let again = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["typeKey"], "TaskAgentSessionConflictException");
    sim.expire_tokens(TokenKind::OAuthTokens);
    assert_eq!(
        c.call(Method::GET, &poll_url, Scheme::Bearer(&r.token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    sim.expire_tokens(TokenKind::Jwts);
    let pools = c
        .call(
            Method::GET,
            &r.url(POOLS, &[]),
            Scheme::Bearer(&r.jwt),
            None,
        )
        .await;
    assert_eq!(pools.status, StatusCode::UNAUTHORIZED);
    // A fresh OAuth token works again.
    let token = oauth(&c, &r.key, &r.agent, Algorithm::RS256).await.unwrap();
    assert_eq!(
        c.call(Method::GET, &poll_url, Scheme::Bearer(&token), None)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    // Deleted server-side: polls say the agent is gone (E13).
    assert!(sim.delete_runner(&r.name));
    let gone = c
        .call(Method::GET, &poll_url, Scheme::Bearer(&token), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["typeKey"], "TaskAgentNotFoundException");
    sim.shutdown();
}

#[tokio::test]
async fn injected_faults_use_each_family_shape() {
    let (sim, c) = start(fast()).await;
    let (r, _sid, poll_url) = listening(&sim, &c, &["linux"]).await;
    sim.inject(endpoint::MESSAGES_GET, Fault::Status(503), 1);
    let a = c
        .call(Method::GET, &poll_url, Scheme::Bearer(&r.token), None)
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.body["typeKey"].is_string());
    sim.inject(
        endpoint::MESSAGES_GET,
        Fault::Error {
            status: 404,
            kind: "TaskAgentSessionExpiredException".into(),
        },
        1,
    );
    let a = c
        .call(Method::GET, &poll_url, Scheme::Bearer(&r.token), None)
        .await;
    assert_eq!(a.body["typeKey"], "TaskAgentSessionExpiredException");
    assert_eq!(
        c.call(Method::GET, &poll_url, Scheme::Bearer(&r.token), None)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let api = format!("{}api/v3", sim.base_url());
    sim.inject(
        endpoint::RUNS_LIST,
        Fault::RateLimited {
            retry_after_secs: 7,
        },
        1,
    );
    let rl = c
        .call(
            Method::GET,
            &format!("{api}/repos/{REPO}/actions/runs"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(rl.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rl.headers["retry-after"], "7");
    sim.inject(
        endpoint::BROKER_MESSAGE,
        Fault::Error {
            status: 404,
            kind: "RunnerNotFound".into(),
        },
        1,
    );
    let b = c
        .call(
            Method::GET,
            &format!("{}_services/broker/message?sessionId=x", sim.base_url()),
            Scheme::Bearer(&r.token),
            None,
        )
        .await;
    assert_eq!(b.body["errorKind"], "RunnerNotFound");
    sim.inject(
        endpoint::OAUTH_TOKEN,
        Fault::Error {
            status: 400,
            kind: "invalid_client".into(),
        },
        1,
    );
    assert_eq!(
        oauth(&c, &r.key, &r.agent, Algorithm::RS256)
            .await
            .unwrap_err()["error"],
        "invalid_client"
    );
    sim.inject(endpoint::POOLS_LIST, Fault::Delay { millis: 50 }, 1);
    assert_eq!(
        c.call(
            Method::GET,
            &r.url(POOLS, &[]),
            Scheme::Bearer(&r.jwt),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(sim.counters().get(endpoint::MESSAGES_GET), 3);
    sim.shutdown();
}

#[tokio::test]
async fn cancelling_a_run_cancels_queued_jobs_and_signals_running_ones() {
    let (sim, c) = start(fast()).await;
    let (r, sid, poll_url) = listening(&sim, &c, &["linux"]).await;
    let running = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let run_id = sim.job(running).unwrap().run_id;
    let queued = sim.queue_job(JobSpec {
        run_id: Some(run_id),
        ..JobSpec::new(REPO, &["gpu"])
    });
    let m = poll(&c, &poll_url, &r.token).await;
    let job = body_of(&m);
    c.call(
        Method::DELETE,
        &format!(
            "{}?sessionId={sid}",
            r.url(
                MESSAGES,
                &[("poolId", "1"), ("messageId", &m["messageId"].to_string())]
            )
        ),
        Scheme::Bearer(&r.token),
        None,
    )
    .await;
    sim.cancel_run(run_id);
    let q = sim.job(queued).unwrap();
    assert_eq!(
        (q.status, q.conclusion.as_deref(), q.runner_name),
        (JobStatus::Completed, Some("cancelled"), None)
    );
    let cancel = poll(&c, &poll_url, &r.token).await;
    assert_eq!(cancel["messageType"], "JobCancellation");
    assert_eq!(body_of(&cancel)["jobId"], job["jobId"]);
    assert_eq!(
        sim.job(running).unwrap().status,
        JobStatus::Queued,
        "not started until renewed"
    );
    // The runner reports the cancelled job with the job token.
    let (_, job_token) = vss(&job);
    let plan = &job["plan"];
    let events = r.url(
        PLAN_EVENTS,
        &[
            ("scopeIdentifier", plan["scopeIdentifier"].as_str().unwrap()),
            ("hubName", plan["planType"].as_str().unwrap()),
            ("planId", plan["planId"].as_str().unwrap()),
        ],
    );
    let done = c.call(Method::POST, &events, Scheme::Bearer(&job_token), Some(json!({ "name": "JobCompleted", "jobId": job["jobId"], "requestId": job["requestId"], "result": "canceled" }))).await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(
        sim.job(running).unwrap().conclusion.as_deref(),
        Some("cancelled")
    );
    sim.shutdown();
}
