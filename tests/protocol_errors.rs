//! The error catalogue (spec §9) against the simulator: one test per class it can produce,
//! named by its E-number, plus RS256/PS256 and 5xx/429 storms.

mod protocol_support;

use megascaler::protocol::api::{RunnerEvent, WorkerOutcome};
use megascaler::sim::{
    AssertionAlgorithms, BrokerMode, CompletionPath, Fault, JobSpec, SimConfig, TokenKind, endpoint,
};
use protocol_support::*;

fn err(status: u16, kind: &str) -> Fault {
    Fault::Error {
        status,
        kind: kind.into(),
    }
}

async fn listening(h: &mut Harness, labels: &[&str]) -> megascaler::protocol::RunnerHandle {
    let r = h.spawn(labels);
    h.expect(&r.name, "Listening", is_listening).await;
    r
}

fn alg_of(h: &Harness, runner: &str) -> Option<String> {
    h.sim
        .runners()
        .into_iter()
        .find(|r| r.name == runner)
        .and_then(|r| r.assertion_alg)
}

/// Waits until a new session was created (the fault was consumed and handled).
async fn recreated(h: &Harness, create: &'static str, before: u64) -> bool {
    h.sim
        .wait_until(|s| s.counters().get(create) > before, WAIT)
        .await
}

async fn job_roundtrip(
    h: &mut Harness,
    r: &megascaler::protocol::RunnerHandle,
    labels: &[&str],
) -> u64 {
    let job_id = h.sim.queue_job(JobSpec::new(REPO, labels));
    h.expect(&r.name, "JobReceived", is_job).await;
    r.worker_finished(WorkerOutcome::Reported).await;
    assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
    job_id
}

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
    assert!(matches!(
        h.terminal(&r.name).await,
        RunnerEvent::Failed { .. }
    ));
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
    assert!(matches!(
        h.terminal(&r.name).await,
        RunnerEvent::Failed { .. }
    ));
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
    h.sim.inject(
        endpoint::MESSAGES_GET,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        2,
    );
    let polls_before = h.sim.counters().get(endpoint::MESSAGES_GET);
    job_roundtrip(&mut h, &r, &["a"]).await;
    // Two limited answers, each waited out (1 s) rather than hammered with retries.
    assert!(h.sim.counters().get(endpoint::MESSAGES_GET) - polls_before < 20);
}

#[tokio::test]
async fn e16_second_job_is_not_acknowledged() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    let first = h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    let second = h.sim.queue_job(JobSpec::new(REPO, &["zzz-nobody"]));
    assert!(h.sim.offer_job_to(second, &r.name));
    let deletes = h.sim.counters().get(endpoint::MESSAGES_DELETE);
    // Give the runner a few polls with the second job on offer.
    let polls = h.sim.counters().get(endpoint::MESSAGES_GET);
    assert!(
        h.sim
            .wait_until(
                |s| s.counters().get(endpoint::MESSAGES_GET) >= polls + 3,
                WAIT
            )
            .await
    );
    assert_eq!(
        h.sim.counters().get(endpoint::MESSAGES_DELETE),
        deletes,
        "second job not acked"
    );
    r.worker_finished(WorkerOutcome::Reported).await;
    h.terminal(&r.name).await;
    assert_eq!(
        h.sim.job(first).unwrap().runner_name.as_deref(),
        Some(r.name.as_str())
    );
    assert!(h.events_of(&r.name).iter().filter(|e| is_job(e)).count() == 1);
    h.assert_no_violations();
}

#[tokio::test]
async fn e19_acknowledge_job_not_found_keeps_listening() {
    let mut h = Harness::start(SimConfig {
        broker: BrokerMode::AgentProperties,
        ..sim_config()
    })
    .await;
    let r = listening(&mut h, &["a"]).await;
    h.sim.inject(
        endpoint::BROKER_ACKNOWLEDGE,
        err(404, "AcknowledgeJobNotFound"),
        1,
    );
    let skipped = h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    assert!(
        h.sim
            .wait_until(
                |s| s.counters().get(endpoint::BROKER_ACKNOWLEDGE) >= 1,
                WAIT
            )
            .await
    );
    assert!(!h.events_of(&r.name).iter().any(is_job));
    let _ = skipped;
    r.stop().await;
    h.terminal(&r.name).await;
}

#[tokio::test]
async fn e20_acquirejob_conflict_skips_the_message() {
    for status in [404u16, 409, 422] {
        let mut h = Harness::start(SimConfig {
            broker: BrokerMode::AgentProperties,
            ..sim_config()
        })
        .await;
        let r = listening(&mut h, &["a"]).await;
        h.sim
            .inject(endpoint::ACQUIRE_JOB, Fault::Status(status), 1);
        h.sim.queue_job(JobSpec::new(REPO, &["a"]));
        assert!(
            h.sim
                .wait_until(|s| s.counters().get(endpoint::ACQUIRE_JOB) >= 1, WAIT)
                .await
        );
        // The runner skipped the message and listens on; it can still be stopped cleanly.
        r.stop().await;
        let ev = h.terminal(&r.name).await;
        assert!(!h.events_of(&r.name).iter().any(is_job), "{status}: {ev:?}");
    }
}

#[tokio::test]
async fn e22_renewal_says_job_gone_reports_lock_lost() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    h.sim.inject(
        endpoint::JOB_REQUEST_UPDATE,
        err(404, "TaskAgentJobNotFoundException"),
        1,
    );
    let ev = h
        .expect(&r.name, "LockLost", |e| {
            matches!(e, RunnerEvent::LockLost { .. })
        })
        .await;
    assert!(matches!(&ev, RunnerEvent::LockLost { reason } if reason.contains("no longer exists")));
    r.worker_finished(WorkerOutcome::Reported).await;
    h.terminal(&r.name).await;
}

#[tokio::test]
async fn e23_run_service_renewals_use_the_job_token() {
    let mut h = Harness::start(SimConfig {
        broker: BrokerMode::AgentProperties,
        ..sim_config()
    })
    .await;
    let r = listening(&mut h, &["a"]).await;
    let job = h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    h.expect(&r.name, "LockRenewed", |e| {
        matches!(e, RunnerEvent::LockRenewed { .. })
    })
    .await;
    assert!(h.sim.job(job).unwrap().renewals >= 2);
    r.worker_finished(WorkerOutcome::Reported).await;
    h.terminal(&r.name).await;
    h.assert_no_violations();
}

#[tokio::test]
async fn e24_renewal_gives_up_after_locked_until_plus_grace() {
    let cfg = SimConfig {
        lock_duration: std::time::Duration::from_millis(300),
        ..sim_config()
    };
    let mut h = Harness::start(cfg).await;
    let r = listening(&mut h, &["a"]).await;
    h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    h.sim
        .inject(endpoint::JOB_REQUEST_UPDATE, Fault::Status(503), 10_000);
    let ev = h
        .expect(&r.name, "LockLost", |e| {
            matches!(e, RunnerEvent::LockLost { .. })
        })
        .await;
    assert!(
        matches!(&ev, RunnerEvent::LockLost { reason } if reason.contains("grace")),
        "{ev:?}"
    );
}

#[tokio::test]
async fn e25_first_renewal_failing_means_no_job_received() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    h.sim
        .inject(endpoint::JOB_REQUEST_UPDATE, Fault::Status(503), 5);
    h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("first lock renewal")),
        "{ev:?}"
    );
    assert!(!h.events_of(&r.name).iter().any(is_job));
}

#[tokio::test]
async fn e30_completejob_401_is_not_retried() {
    let mut h = Harness::start(SimConfig {
        broker: BrokerMode::AgentProperties,
        ..sim_config()
    })
    .await;
    let r = listening(&mut h, &["a"]).await;
    h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    h.sim
        .inject(endpoint::COMPLETE_JOB, err(401, "not authorized"), 10);
    r.worker_finished(WorkerOutcome::Failed {
        reason: "crash".into(),
    })
    .await;
    assert!(matches!(
        h.terminal(&r.name).await,
        RunnerEvent::Failed { .. }
    ));
    assert_eq!(h.sim.counters().get(endpoint::COMPLETE_JOB), 1);
}

#[tokio::test]
async fn e31_session_delete_errors_after_a_job_are_ignored() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    h.sim.inject(
        endpoint::SESSIONS_DELETE,
        err(401, "AccessDeniedException"),
        1,
    );
    let job = job_roundtrip(&mut h, &r, &["a"]).await;
    assert!(h.sim.job(job).is_some());
}

#[tokio::test]
async fn e32_removal_falls_back_from_a_refused_jwt() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    h.sim
        .inject(endpoint::AGENTS_DELETE, err(401, "Unauthorized"), 1);
    r.stop().await;
    assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
    assert!(h.sim.runners().is_empty());
    assert_eq!(
        h.sim.counters().pat_calls,
        1,
        "the cached registration token did it: {:?}",
        h.sim.counters()
    );
}

#[tokio::test]
async fn e32_removal_spends_the_pat_last() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    h.sim.expire_tokens(TokenKind::Jwts);
    h.sim.expire_tokens(TokenKind::RegistrationTokens);
    r.stop().await;
    assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
    assert!(h.sim.runners().is_empty());
    assert_eq!(h.sim.counters().get(endpoint::REMOVE_TOKEN), 1);
}

#[tokio::test]
async fn e33_busy_runner_is_not_removed() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    let job = h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    r.stop().await; // during the job: no removal, the runner ends after the job
    r.worker_finished(WorkerOutcome::Failed { reason: "x".into() })
        .await;
    assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
    assert_eq!(h.sim.counters().get(endpoint::AGENTS_DELETE), 0);
    assert_eq!(
        h.sim.job(job).unwrap().completed_via,
        Some(CompletionPath::PlanEvent)
    );
    h.assert_no_violations();
}

#[tokio::test]
async fn token_expiry_mid_run_is_survived() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    let job = h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    let renewals = h.sim.job(job).unwrap().renewals;
    h.sim.expire_tokens(TokenKind::OAuthTokens);
    h.sim.expire_tokens(TokenKind::Jwts);
    assert!(
        h.sim
            .wait_until(
                |s| s.job(job).is_some_and(|j| j.renewals >= renewals + 2),
                WAIT
            )
            .await
    );
    r.worker_finished(WorkerOutcome::Failed { reason: "x".into() })
        .await;
    h.expect(&r.name, "CompletedByRunner", |e| {
        matches!(e, RunnerEvent::CompletedByRunner { .. })
    })
    .await;
    h.terminal(&r.name).await;
}

#[tokio::test]
async fn e1_every_request_carries_our_user_agent() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    job_roundtrip(&mut h, &r, &["a"]).await;
    // The simulator records a violation for any request without a User-Agent, and without
    // one runner-registration would have answered an unusable `/rest` tenant.
    assert!(
        !h.sim
            .violations()
            .iter()
            .any(|v| v.message.contains("User-Agent"))
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
async fn runner_deleted_server_side_while_its_job_runs() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    assert!(h.sim.delete_runner(&r.name));
    // The job is not dropped on the floor: the runner keeps it until the worker reports.
    r.worker_finished(WorkerOutcome::Reported).await;
    assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
}

#[tokio::test]
async fn no_issued_secret_reaches_an_event_or_error() {
    let mut h = Harness::start(SimConfig {
        broker: BrokerMode::AgentProperties,
        ..sim_config()
    })
    .await;
    // A failing job, a refused completion, a runner refused at OAuth: plenty of error text.
    let r = listening(&mut h, &["a"]).await;
    h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    h.sim
        .inject(endpoint::COMPLETE_JOB, err(401, "not authorized"), 10);
    r.worker_finished(WorkerOutcome::Failed {
        reason: "crash".into(),
    })
    .await;
    h.terminal(&r.name).await;
    h.sim
        .inject(endpoint::OAUTH_TOKEN, err(400, "invalid_client"), 2);
    let r2 = h.spawn(&["b"]);
    h.terminal(&r2.name).await;
    let text = format!(
        "{:?}{:?}{:?}",
        h.summary_of(&r.name),
        h.summary_of(&r2.name),
        h.fleet.token_status()
    );
    let secrets = h.sim.issued_secrets();
    assert!(!secrets.is_empty());
    for s in secrets {
        assert!(!text.contains(&s), "a secret leaked into events or status");
    }
    assert!(!text.contains(h.sim.pat()));
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
