//! The error catalogue (spec §9), jobs, acknowledgement, renewal, completion and removal,
//! against the simulator: one test per class it can produce, named by its E-number.

mod protocol_support;

use megascaler::protocol::api::{RunnerEvent, WorkerOutcome};
use megascaler::sim::{BrokerMode, CompletionPath, Fault, JobSpec, SimConfig, TokenKind, endpoint};
use protocol_support::*;

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
async fn e19_acknowledge_job_not_found_stops_the_ephemeral_runner() {
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
    let vanished = h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    // Spec §4.5/§9 E19: the job is gone; the runner stops by itself (no stop command sent).
    let ev = h.terminal(&r.name).await;
    assert!(
        matches!(&ev, RunnerEvent::Failed { reason } if reason.contains("E19")),
        "{ev:?}"
    );
    let events = h.events_of(&r.name);
    assert!(!events.iter().any(is_job), "{events:?}");
    assert_eq!(h.sim.counters().get(endpoint::BROKER_ACKNOWLEDGE), 1);
    assert_eq!(
        h.sim.counters().get(endpoint::ACQUIRE_JOB),
        0,
        "the vanished job is not acquired"
    );
    // It unregistered itself, and the job was not taken by it.
    assert!(h.sim.runners().iter().all(|s| s.name != r.name));
    let job = h.sim.job(vanished).expect("the job exists");
    assert_ne!(job.runner_name.as_deref(), Some(r.name.as_str()));
    h.assert_no_violations();
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
async fn e21_job_assignment_is_invalid_is_abandoned_without_retries() {
    let mut h = Harness::start(SimConfig {
        broker: BrokerMode::AgentProperties,
        ..sim_config()
    })
    .await;
    let r = listening(&mut h, &["a"]).await;
    h.sim.inject(
        endpoint::ACQUIRE_JOB,
        err(400, "job assignment is invalid"),
        1,
    );
    let job = h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    assert!(
        h.sim
            .wait_until(|s| s.counters().get(endpoint::ACQUIRE_JOB) >= 1, WAIT)
            .await
    );
    // Give a retrying client the polls it would need (its back-off is 20 ms here).
    let polls = h.sim.counters().get(endpoint::BROKER_MESSAGE);
    assert!(
        h.sim
            .wait_until(
                |s| s.counters().get(endpoint::BROKER_MESSAGE) >= polls + 2,
                WAIT
            )
            .await
    );
    assert_eq!(
        h.sim.counters().get(endpoint::ACQUIRE_JOB),
        1,
        "abandoned, not retried"
    );
    r.stop().await;
    let ev = h.terminal(&r.name).await;
    assert!(matches!(ev, RunnerEvent::Removed), "{ev:?}");
    assert!(!h.events_of(&r.name).iter().any(is_job));
    assert_ne!(
        h.sim.job(job).and_then(|j| j.runner_name),
        Some(r.name.clone())
    );
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
    let job = h.sim.queue_job(JobSpec::new(REPO, &["a"]));
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
    // The service abandoned the job when its lock expired (before our grace ran out).
    let j = h.sim.job(job).expect("the job exists");
    assert_eq!(j.result.as_deref(), Some("abandoned"));
    assert_eq!(j.completed_via, Some(CompletionPath::LockExpired));
    // The dispatcher cancels the worker; completing the job (as abandoned) is refused since
    // the job is over, and the runner ends with that reason instead of retrying.
    let before = h.sim.counters().get(endpoint::PLAN_EVENTS);
    r.worker_finished(WorkerOutcome::Cancelled {
        reason: "the job lock was lost".into(),
    })
    .await;
    let end = h.terminal(&r.name).await;
    assert!(
        matches!(&end, RunnerEvent::Failed { reason } if reason.contains("TaskAgentJobNotFoundException")),
        "{end:?}"
    );
    assert_eq!(h.sim.counters().get(endpoint::PLAN_EVENTS), before + 1);
    h.assert_no_violations();
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
    // `job_roundtrip` asserts the runner still ends `Removed`, not `Failed`.
    let job = job_roundtrip(&mut h, &r, &["a"]).await;
    // The refused session delete was made (the fault consumed) and changed nothing.
    assert_eq!(h.sim.counters().get(endpoint::SESSIONS_DELETE), 1);
    assert_eq!(
        h.sim.job(job).and_then(|j| j.runner_name),
        Some(r.name.clone())
    );
    h.assert_no_violations();
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
async fn runner_deleted_server_side_while_its_job_runs() {
    let mut h = Harness::start(sim_config()).await;
    let r = listening(&mut h, &["a"]).await;
    let job = h.sim.queue_job(JobSpec::new(REPO, &["a"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    assert!(h.sim.delete_runner(&r.name));
    // Renewals with the deleted runner's token are refused: the lock is reported lost…
    let lost = h
        .expect(&r.name, "LockLost", |e| {
            matches!(e, RunnerEvent::LockLost { .. })
        })
        .await;
    assert!(
        matches!(&lost, RunnerEvent::LockLost { reason } if reason.contains("TaskAgentNotFoundException")),
        "{lost:?}"
    );
    // …but the job is not dropped on the floor: the runner keeps it until the worker ends,
    // and completes it with the job token.
    r.worker_finished(WorkerOutcome::Failed {
        reason: "worker lost".into(),
    })
    .await;
    let end = h.terminal(&r.name).await;
    assert!(matches!(end, RunnerEvent::Removed), "{end:?}");
    assert!(
        h.events_of(&r.name)
            .iter()
            .any(|e| matches!(e, RunnerEvent::CompletedByRunner { result } if result == "failed"))
    );
    let j = h.sim.job(job).expect("the job exists");
    assert_eq!(j.status, megascaler::sim::JobStatus::Completed);
    assert_eq!(j.result.as_deref(), Some("failed"));
    assert_eq!(j.completed_via, Some(CompletionPath::PlanEvent));
    assert_eq!(j.issues, vec!["worker lost".to_string()]);
    h.assert_no_violations();
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
