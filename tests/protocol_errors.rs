//! The error catalogue (spec §9), registration, OAuth, sessions and polls, against the simulator:
//! one test per class it can produce, named by its E-number, plus RS256/PS256 and storms.

mod protocol_support;

use megascaler::protocol::api::{RunnerEvent, WorkerOutcome};
use megascaler::sim::{
    AssertionAlgorithms, BrokerMode, Fault, JobSpec, SimConfig, TokenKind, endpoint,
};
use protocol_support::*;

#[tokio::test]
async fn rs256_when_fips_is_not_required() {
    let cfg = SimConfig {
        require_fips: Some(false),
        assertion_algorithms: AssertionAlgorithms::Rs256Only,
        ..sim_config()
    };
    let mut h = Harness::start(cfg).await;
    let r = listening(&mut h, &["a"]).await;
    assert_eq!(
        h.sim.counters().get(endpoint::OAUTH_TOKEN),
        1,
        "RS256 accepted at once"
    );
    assert_eq!(alg_of(&h, &r.name).as_deref(), Some("RS256"));
    job_roundtrip(&mut h, &r, &["a"]).await;
    h.assert_no_violations();
}

#[tokio::test]
async fn ps256_when_fips_is_required_even_if_rs256_is_accepted() {
    let cfg = SimConfig {
        require_fips: Some(true),
        ..sim_config()
    };
    let mut h = Harness::start(cfg).await;
    let r = listening(&mut h, &["a"]).await;
    assert_eq!(alg_of(&h, &r.name).as_deref(), Some("PS256"));
}

#[tokio::test]
async fn ps256_by_default() {
    let cfg = SimConfig {
        assertion_algorithms: AssertionAlgorithms::Ps256Only,
        ..sim_config()
    };
    let mut h = Harness::start(cfg).await;
    let r = listening(&mut h, &["a"]).await;
    assert_eq!(
        h.sim.counters().get(endpoint::OAUTH_TOKEN),
        1,
        "PS256 accepted at once"
    );
    assert_eq!(alg_of(&h, &r.name).as_deref(), Some("PS256"));
    job_roundtrip(&mut h, &r, &["a"]).await;
}

#[tokio::test]
async fn invalid_client_retries_once_with_the_other_algorithm() {
    // FIPS not said (→ PS256 first), but the server only takes RS256.
    let cfg = SimConfig {
        assertion_algorithms: AssertionAlgorithms::Rs256Only,
        ..sim_config()
    };
    let mut h = Harness::start(cfg).await;
    let r = listening(&mut h, &["a"]).await;
    assert_eq!(
        h.sim.counters().get(endpoint::OAUTH_TOKEN),
        2,
        "PS256 refused, RS256 accepted"
    );
    assert_eq!(alg_of(&h, &r.name).as_deref(), Some("RS256"));
    job_roundtrip(&mut h, &r, &["a"]).await;
}

#[tokio::test]
async fn e6_invalid_client_means_the_runner_is_gone() {
    let mut h = Harness::start(sim_config()).await;
    h.sim
        .inject(endpoint::OAUTH_TOKEN, err(400, "invalid_client"), 2);
    let r = h.spawn(&["a"]);
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("invalid_client")),
        "{ev:?}"
    );
    assert!(!h.events_of(&r.name).iter().any(is_listening));
}

#[tokio::test]
async fn e6_invalid_grant_means_the_runner_is_gone() {
    let mut h = Harness::start(sim_config()).await;
    h.sim
        .inject(endpoint::OAUTH_TOKEN, err(400, "invalid_grant"), 1);
    let r = h.spawn(&["a"]);
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("invalid_grant")),
        "{ev:?}"
    );
    assert_eq!(
        h.sim.counters().get(endpoint::OAUTH_TOKEN),
        1,
        "invalid_grant is not retried"
    );
    assert!(!h.events_of(&r.name).iter().any(is_listening));
}

/// E5: a scope whose only pool is hosted has no self-hosted runner group: the runner fails
/// with that reason and registers nothing.
#[tokio::test]
async fn e5_no_self_hosted_pool_is_a_clear_failure() {
    let mut h = Harness::start(sim_config()).await;
    let hosted = r#"{"count":1,"value":[{"id":2,"name":"Azure Pipelines","isHosted":true,"isInternal":false,"poolType":"automation","size":0}]}"#;
    h.sim.inject(
        endpoint::POOLS_LIST,
        Fault::Raw {
            status: 200,
            body: hosted.into(),
        },
        1,
    );
    let r = h.spawn(&["a"]);
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("no self-hosted runner group")),
        "{ev:?}"
    );
    assert_eq!(h.sim.counters().get(endpoint::POOLS_LIST), 1);
    assert_eq!(h.sim.counters().get(endpoint::AGENTS_ADD), 0);
    assert!(h.sim.runners().is_empty());
    h.assert_no_violations();
}

#[tokio::test]
async fn e5_no_self_hosted_runner_group_in_the_v2_flow() {
    let mut h = Harness::start(SimConfig {
        use_v2_flow: true,
        ..sim_config()
    })
    .await;
    let hosted = r#"{"total_count":1,"runner_groups":[{"id":2,"name":"GitHub-hosted","visibility":"all","default":true,"is_hosted":true}]}"#;
    h.sim.inject(
        endpoint::RUNNER_GROUPS,
        Fault::Raw {
            status: 200,
            body: hosted.into(),
        },
        1,
    );
    let r = h.spawn(&["a"]);
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("no self-hosted runner group")),
        "{ev:?}"
    );
    assert_eq!(h.sim.counters().get(endpoint::RUNNER_GROUPS), 1);
    assert_eq!(h.sim.counters().get(endpoint::ADMIN_REGISTER), 0);
    assert!(h.sim.runners().is_empty());
    h.assert_no_violations();
}

#[tokio::test]
async fn e2_refused_cached_registration_token_is_reminted_with_the_pat() {
    let mut h = Harness::start(sim_config()).await;
    let _idle = listening(&mut h, &["a"]).await;
    // The JWT expires; the cached registration token is refused once: the PAT mints a new one.
    h.sim.expire_tokens(TokenKind::Jwts);
    h.sim
        .inject(endpoint::RUNNER_REGISTRATION, err(401, "Unauthorized"), 1);
    let r2 = listening(&mut h, &["b"]).await;
    assert_eq!(h.sim.counters().pat_calls, 2);
    job_roundtrip(&mut h, &r2, &["b"]).await;
}

#[tokio::test]
async fn e3_expired_jwt_falls_back_to_the_cached_registration_token() {
    let mut h = Harness::start(sim_config()).await;
    let _idle = listening(&mut h, &["a"]).await;
    h.sim.expire_tokens(TokenKind::Jwts);
    let _idle2 = listening(&mut h, &["b"]).await;
    assert_eq!(
        h.sim.counters().pat_calls,
        1,
        "no PAT call: the registration token was still good"
    );
    assert!(h.sim.counters().get(endpoint::RUNNER_REGISTRATION) >= 2);
    h.assert_no_violations();
}

#[tokio::test]
async fn e40_expired_registration_token_is_reminted() {
    let mut h = Harness::start(sim_config()).await;
    let _idle = listening(&mut h, &["a"]).await;
    h.sim.expire_tokens(TokenKind::Jwts);
    h.sim.expire_tokens(TokenKind::RegistrationTokens);
    let _idle2 = listening(&mut h, &["b"]).await;
    assert_eq!(h.sim.counters().pat_calls, 2, "{:?}", h.sim.counters());
}

#[tokio::test]
async fn e8_unauthorised_poll_reauthorises() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    h.sim.expire_tokens(TokenKind::OAuthTokens);
    job_roundtrip(&mut h, &r, &["a"]).await;
    assert!(h.sim.counters().get(endpoint::OAUTH_TOKEN) >= 2);
}

#[tokio::test]
async fn e9_session_conflict_is_retried() {
    let mut h = Harness::start(sim_config()).await;
    h.sim.inject(
        endpoint::SESSIONS_CREATE,
        err(409, "TaskAgentSessionConflictException"),
        3,
    );
    let r = listening(&mut h, &["a"]).await;
    assert!(h.sim.counters().get(endpoint::SESSIONS_CREATE) >= 4);
    job_roundtrip(&mut h, &r, &["a"]).await;
}

#[tokio::test]
async fn e9_session_conflict_gives_up_after_the_window() {
    let mut h = Harness::start(sim_config()).await;
    h.sim.inject(
        endpoint::SESSIONS_CREATE,
        err(409, "TaskAgentSessionConflictException"),
        10_000,
    );
    let r = h.spawn(&["a"]);
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("conflict")),
        "{ev:?}"
    );
}

#[tokio::test]
async fn e10_session_creation_for_a_deleted_runner_stops() {
    let mut h = Harness::start(sim_config()).await;
    h.sim.inject(
        endpoint::SESSIONS_CREATE,
        err(404, "TaskAgentNotFoundException"),
        1,
    );
    let r = h.spawn(&["a"]);
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("E10")),
        "{ev:?}"
    );
}

#[tokio::test]
async fn e11_expired_session_is_recreated() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    let before = h.sim.counters().get(endpoint::SESSIONS_CREATE);
    h.sim.inject(
        endpoint::MESSAGES_GET,
        err(404, "TaskAgentSessionExpiredException"),
        1,
    );
    assert!(recreated(&h, endpoint::SESSIONS_CREATE, before).await);
    job_roundtrip(&mut h, &r, &["a"]).await;
}

#[tokio::test]
async fn e11_broker_session_invalid_is_recreated() {
    let mut h = Harness::start(SimConfig {
        broker: BrokerMode::AgentProperties,
        ..sim_config()
    })
    .await;
    let r = listening(&mut h, &["a"]).await;
    let before = h.sim.counters().get(endpoint::BROKER_SESSION_CREATE);
    h.sim.inject(
        endpoint::BROKER_MESSAGE,
        err(400, "RunnerSessionInvalid"),
        1,
    );
    assert!(recreated(&h, endpoint::BROKER_SESSION_CREATE, before).await);
    job_roundtrip(&mut h, &r, &["a"]).await;
}

#[tokio::test]
async fn e12_access_denied_on_poll_recreates_the_session() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    let before = h.sim.counters().get(endpoint::SESSIONS_CREATE);
    h.sim
        .inject(endpoint::MESSAGES_GET, err(403, "AccessDeniedException"), 1);
    assert!(recreated(&h, endpoint::SESSIONS_CREATE, before).await);
    job_roundtrip(&mut h, &r, &["a"]).await;
}

#[tokio::test]
async fn e13_runner_deleted_server_side_while_idle() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    assert!(h.sim.delete_runner(&r.name));
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("deleted server-side")),
        "{ev:?}"
    );
}

#[tokio::test]
async fn e13_broker_runner_not_found() {
    let mut h = Harness::start(SimConfig {
        broker: BrokerMode::AgentProperties,
        ..sim_config()
    })
    .await;
    let r = listening(&mut h, &["a"]).await;
    h.sim
        .inject(endpoint::BROKER_MESSAGE, err(404, "RunnerNotFound"), 1);
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("deleted server-side")),
        "{ev:?}"
    );
}

#[tokio::test]
async fn e14_poll_5xx_storm_is_backed_off() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    h.sim.inject(endpoint::MESSAGES_GET, Fault::Status(503), 8);
    job_roundtrip(&mut h, &r, &["a"]).await;
}

#[tokio::test]
async fn e14_poll_429_storm_honours_retry_after() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    let polls_before = h.sim.counters().get(endpoint::MESSAGES_GET);
    h.sim.inject(
        endpoint::MESSAGES_GET,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        2,
    );
    job_roundtrip(&mut h, &r, &["a"]).await;
    assert!(h.sim.counters().get(endpoint::MESSAGES_GET) >= polls_before + 3);
    // A poll sent before the Retry-After it was given is recorded by the simulator.
    h.assert_no_violations();
}

#[tokio::test]
async fn e1_every_request_carries_our_user_agent() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    job_roundtrip(&mut h, &r, &["a"]).await;
    let ours = format!("user-agent: {}", megascaler::USER_AGENT);
    assert!(megascaler::USER_AGENT.starts_with("megascaler/"));
    let seen = h.sim.all_seen_headers();
    for ep in [
        endpoint::REGISTRATION_TOKEN,
        endpoint::RUNNER_REGISTRATION,
        endpoint::OAUTH_TOKEN,
        endpoint::SESSIONS_CREATE,
        endpoint::MESSAGES_GET,
    ] {
        assert!(seen.contains_key(ep), "{ep} was called: {seen:?}");
    }
    for (ep, headers) in &seen {
        let uas: Vec<_> = headers
            .iter()
            .filter(|h| h.starts_with("user-agent:"))
            .collect();
        assert_eq!(uas, vec![&ours], "{ep}");
    }
    let rest = &seen[endpoint::REGISTRATION_TOKEN];
    assert!(
        rest.contains("accept: application/vnd.github+json"),
        "{rest:?}"
    );
    assert!(
        rest.contains("x-github-api-version: 2022-11-28"),
        "{rest:?}"
    );
    h.assert_no_violations();
}

#[tokio::test]
async fn e4_duplicate_runner_name_fails_that_runner() {
    use megascaler::protocol::api::RunnerRequest;
    let mut h = Harness::start(sim_config()).await;
    let first = listening(&mut h, &["a"]).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let req = RunnerRequest {
        scope_url: h.scope_url(),
        labels: vec!["a".into()],
        name: first.name.clone(),
    };
    let _dup = h.fleet.spawn(req, tx);
    let ev = tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await.map(|e| e.event) {
                Some(e @ RunnerEvent::Failed { .. }) => return e,
                Some(_) => {}
                None => panic!("channel closed"),
            }
        }
    })
    .await
    .expect("the duplicate fails");
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("TaskAgentExistsException")),
        "{ev:?}"
    );
    assert_eq!(h.sim.runners().len(), 1);
}

#[tokio::test]
async fn e15_no_successful_poll_for_too_long_recreates_the_session() {
    let mut t = fast_tunables();
    t.session_stale = std::time::Duration::from_millis(100);
    let mut h = Harness::start_with(sim_config(), t).await;
    let r = listening(&mut h, &["a"]).await;
    let before = h.sim.counters().get(endpoint::SESSIONS_CREATE);
    let polls = h.sim.counters().get(endpoint::MESSAGES_GET);
    h.sim.inject(endpoint::MESSAGES_GET, Fault::Status(500), 12);
    assert!(recreated(&h, endpoint::SESSIONS_CREATE, before).await);
    // Queue the job once the storm is over (an offer lost to a failed poll would mark this
    // one-job runner as used in the simulator).
    assert!(
        h.sim
            .wait_until(
                |s| s.counters().get(endpoint::MESSAGES_GET) > polls + 13,
                WAIT
            )
            .await
    );
    job_roundtrip(&mut h, &r, &["a"]).await;
}

#[tokio::test]
async fn oauth_token_is_refreshed_before_expires_in() {
    let cfg = SimConfig {
        oauth_token_lifetime: std::time::Duration::from_secs(2),
        ..sim_config()
    };
    let mut h = Harness::start(cfg).await;
    let r = listening(&mut h, &["a"]).await;
    let job = h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    // v1 renewals use the runner token; over ~3 s of renewals it is refreshed at least twice.
    assert!(
        h.sim
            .wait_until(|s| s.counters().get(endpoint::OAUTH_TOKEN) >= 3, WAIT)
            .await
    );
    let renewals = h.sim.job(job).unwrap().renewals;
    assert!(
        h.sim
            .wait_until(
                |s| s.job(job).is_some_and(|j| j.renewals > renewals + 2),
                WAIT
            )
            .await
    );
    r.worker_finished(WorkerOutcome::Reported).await;
    h.terminal(&r.name).await;
    // Refreshed ahead of time, not after a 401: no call ever carried an expired token.
    assert_eq!(h.sim.counters().expired_oauth_calls, 0);
    h.assert_no_violations();
}

#[tokio::test]
async fn e7_clock_skew_is_retried_not_taken_for_a_deleted_runner() {
    let mut h = Harness::start(sim_config()).await;
    let body = r#"{"error":"invalid_client","error_description":"JWT not yet valid. Current server time is 2026-12-06T03:40:00Z"}"#;
    h.sim.inject(
        endpoint::OAUTH_TOKEN,
        Fault::Raw {
            status: 400,
            body: body.into(),
        },
        2,
    );
    let r = listening(&mut h, &["a"]).await;
    assert!(h.sim.counters().get(endpoint::OAUTH_TOKEN) >= 3);
    job_roundtrip(&mut h, &r, &["a"]).await;
}

#[tokio::test]
async fn e7_clock_skew_gives_up_after_its_window() {
    let mut t = fast_tunables();
    t.clock_skew_window = std::time::Duration::from_millis(300);
    let mut h = Harness::start_with(sim_config(), t).await;
    let body = r#"{"error":"invalid_client","error_description":"Current server time is 2026-12-06T03:40:00Z"}"#;
    h.sim.inject(
        endpoint::OAUTH_TOKEN,
        Fault::Raw {
            status: 400,
            body: body.into(),
        },
        100_000,
    );
    let r = h.spawn(&["a"]);
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("E7")),
        "{ev:?}"
    );
}
