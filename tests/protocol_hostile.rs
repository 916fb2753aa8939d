//! Hostile and unusual server behaviour: echoed credentials, absurd values, legacy paths,
//! control messages. The runner must neither panic nor leak.

mod protocol_support;

use megascaler::protocol::api::{RunnerEvent, WorkerOutcome};
use megascaler::sim::{BrokerMode, Fault, JobSpec, SimConfig, endpoint};
use protocol_support::*;

fn leaks(h: &Harness, runners: &[&str]) -> Vec<String> {
    let text: String = runners
        .iter()
        .map(|r| format!("{:?}", h.summary_of(r)))
        .collect();
    let mut found: Vec<String> = h
        .sim
        .issued_secrets()
        .into_iter()
        .filter(|s| text.contains(s.as_str()))
        .map(|s| s.chars().take(8).collect())
        .collect();
    if text.contains(h.sim.pat()) {
        found.push("PAT".into());
    }
    found
}

#[tokio::test]
async fn echoed_credentials_never_reach_events() {
    let mut h = Harness::start(sim_config()).await;
    // OAuth errors quoting the client assertion: retried (not an invalid_client), logged.
    h.sim.inject(
        endpoint::OAUTH_TOKEN,
        Fault::EchoCredential { status: 400 },
        2,
    );
    let a = h.spawn(&["a"]);
    h.expect(&a.name, "Listening", is_listening).await;
    a.stop().await;
    h.terminal(&a.name).await;
    // A refused session whose message quotes the bearer token.
    h.sim.inject(
        endpoint::SESSIONS_CREATE,
        Fault::EchoCredential { status: 403 },
        1,
    );
    let b = h.spawn(&["b"]);
    assert!(matches!(
        h.terminal(&b.name).await,
        RunnerEvent::Failed { .. }
    ));
    // A refused registration token (PAT echoed).
    h.sim.inject(
        endpoint::REGISTRATION_TOKEN,
        Fault::EchoCredential { status: 403 },
        1,
    );
    let gh = h.fleet.rest().clone();
    let scope = megascaler::github::Scope::parse(&h.scope_url()).unwrap();
    let e = gh.create_registration_token(&scope).await.unwrap_err();
    assert!(!e.to_string().contains(h.sim.pat()), "{e}");
    assert_eq!(leaks(&h, &[&a.name, &b.name]), Vec::<String>::new());
}

#[tokio::test]
async fn absurd_oauth_lifetime_does_not_panic() {
    let mut h = Harness::start(sim_config()).await;
    h.sim.inject(
        endpoint::OAUTH_TOKEN,
        Fault::Raw {
            status: 200,
            body: r#"{"access_token":"x","token_type":"bearer","expires_in":10000000000000}"#
                .into(),
        },
        1,
    );
    let r = h.spawn(&["a"]);
    // The bogus token is refused by the session; the runner re-authorises and goes on.
    h.expect(&r.name, "Listening", is_listening).await;
    r.stop().await;
    h.terminal(&r.name).await;
}

#[tokio::test]
async fn absurd_locked_until_does_not_panic() {
    let mut h = Harness::start(sim_config()).await;
    let r = h.spawn(&["a"]);
    h.expect(&r.name, "Listening", is_listening).await;
    h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.sim.inject(
        endpoint::JOB_REQUEST_UPDATE,
        Fault::Raw {
            status: 200,
            body: r#"{"requestId":1,"lockedUntil":"+262143-12-31T23:59:59Z"}"#.into(),
        },
        1,
    );
    h.expect(&r.name, "JobReceived", is_job).await;
    h.sim
        .inject(endpoint::JOB_REQUEST_UPDATE, Fault::Status(503), 3);
    h.expect(&r.name, "LockRenewed", |e| {
        matches!(e, RunnerEvent::LockRenewed { .. })
    })
    .await;
    r.worker_finished(WorkerOutcome::Reported).await;
    h.terminal(&r.name).await;
}

#[tokio::test]
async fn absurd_cancellation_timeout_is_capped() {
    let mut h = Harness::start(sim_config()).await;
    let r = h.spawn(&["a"]);
    h.expect(&r.name, "Listening", is_listening).await;
    h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    let RunnerEvent::JobReceived(job) = h.expect(&r.name, "JobReceived", is_job).await else {
        unreachable!()
    };
    let body = format!(
        r#"{{"jobId":"{}","timeout":"99999999999999999.00:00:00"}}"#,
        job.orchestration_job_id
    );
    assert!(h.sim.send_message(&r.name, "JobCancellation", &body));
    let ev = h
        .expect(&r.name, "CancelRequested", |e| {
            matches!(e, RunnerEvent::CancelRequested { .. })
        })
        .await;
    assert!(
        matches!(ev, RunnerEvent::CancelRequested { timeout: None }),
        "{ev:?}"
    );
    r.worker_finished(WorkerOutcome::Cancelled { reason: "x".into() })
        .await;
    h.terminal(&r.name).await;
}

#[tokio::test]
async fn control_messages_are_acked_and_handled() {
    let mut h = Harness::start(sim_config()).await;
    let r = h.spawn(&["a"]);
    h.expect(&r.name, "Listening", is_listening).await;
    let tokens = h.sim.counters().get(endpoint::OAUTH_TOKEN);
    let deletes = h.sim.counters().get(endpoint::MESSAGES_DELETE);
    assert!(h.sim.send_message(
        &r.name,
        "AgentRefresh",
        r#"{"agentId":1,"targetVersion":"9.9.9"}"#
    ));
    assert!(h.sim.send_message(&r.name, "SomethingNew", "{}"));
    assert!(h.sim.send_message(&r.name, "ForceTokenRefresh", "{}"));
    assert!(
        h.sim
            .wait_until(
                |s| s.counters().get(endpoint::MESSAGES_DELETE) >= deletes + 3,
                WAIT
            )
            .await
    );
    assert!(
        h.sim
            .wait_until(|s| s.counters().get(endpoint::OAUTH_TOKEN) > tokens, WAIT)
            .await
    );
    // Still a working runner.
    h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    r.worker_finished(WorkerOutcome::Reported).await;
    h.terminal(&r.name).await;
    h.assert_no_violations();
}

#[tokio::test]
async fn legacy_job_reference_without_run_service_url() {
    let cfg = SimConfig {
        broker: BrokerMode::MigrationMessage,
        legacy_job_message: true,
        ..sim_config()
    };
    let mut h = Harness::start(cfg).await;
    let r = h.spawn(&["a"]);
    h.expect(&r.name, "Listening", is_listening).await;
    h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    r.worker_finished(WorkerOutcome::Failed {
        reason: "crash".into(),
    })
    .await;
    h.terminal(&r.name).await;
    h.assert_no_violations();
}
