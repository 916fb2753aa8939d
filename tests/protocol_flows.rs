//! The runner protocol end to end against the simulator: both registration flows, v1 with and
//! without encryption, the broker, job completion by megascaler, removal.

mod protocol_support;

use megascaler::protocol::api::{JobFlow, RunnerEvent, WorkerOutcome};
use megascaler::sim::{BrokerMode, CompletionPath, JobSpec, JobStatus, SimConfig};
use protocol_support::*;

#[tokio::test]
async fn v1_plain_job_failed_by_megascaler_completes_with_plan_event() {
    let mut h = Harness::start(sim_config()).await;
    let r = h.spawn(&["linux", "big"]);
    h.expect(&r.name, "Listening", is_listening).await;
    let job_id = h.sim.queue_job(JobSpec::new(REPO, &["linux", "big"]));
    let RunnerEvent::JobReceived(job) = h.expect(&r.name, "JobReceived", is_job).await else {
        unreachable!()
    };
    assert_eq!(job.flow, JobFlow::Pipelines);
    assert_eq!(job.identity.check_run_id, Some(job_id));
    assert!(
        h.sim.job(job_id).unwrap().renewals >= 1,
        "first renewal before JobReceived"
    );
    r.worker_finished(WorkerOutcome::Failed {
        reason: "worker crashed: exit 3".into(),
    })
    .await;
    let ev = h
        .expect(&r.name, "CompletedByRunner", |e| {
            matches!(e, RunnerEvent::CompletedByRunner { .. })
        })
        .await;
    assert!(matches!(ev, RunnerEvent::CompletedByRunner { result } if result == "failed"));
    assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
    let sj = h.sim.job(job_id).unwrap();
    assert_eq!(sj.status, JobStatus::Completed);
    assert_eq!(sj.conclusion.as_deref(), Some("failure"));
    assert_eq!(sj.completed_via, Some(CompletionPath::PlanEvent));
    assert!(
        sj.issues
            .iter()
            .any(|i| i.contains("worker crashed: exit 3")),
        "{:?}",
        sj.issues
    );
    h.assert_no_violations();
}

#[tokio::test]
async fn v1_encrypted_messages_are_decrypted() {
    let cfg = SimConfig {
        encrypt_messages: true,
        ..sim_config()
    };
    let mut h = Harness::start(cfg).await;
    let r = h.spawn(&["gpu"]);
    h.expect(&r.name, "Listening", is_listening).await;
    let job_id = h.sim.queue_job(JobSpec::new(REPO, &["gpu"]));
    let RunnerEvent::JobReceived(job) = h.expect(&r.name, "JobReceived", is_job).await else {
        unreachable!()
    };
    assert_eq!(job.identity.check_run_id, Some(job_id));
    assert!(!job.message.starts_with('\u{feff}'), "BOM stripped");
    r.worker_finished(WorkerOutcome::Reported).await;
    assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
    h.assert_no_violations();
}

/// E17 (§4.4): the session key is RSA-OAEP wrapped with SHA-1 when the session answer says
/// `useFipsEncryption: false` and SHA-256 when it says true, whatever the runner asked for;
/// the body may or may not start with a BOM. Decrypting with the wrong hash fails, so no
/// `JobReceived` would arrive.
#[tokio::test]
async fn e17_encrypted_messages_with_both_oaep_hashes() {
    for (fips, bom) in [(false, true), (true, true), (false, false), (true, false)] {
        let cfg = SimConfig {
            encrypt_messages: true,
            session_fips: Some(fips),
            bom_in_encrypted_body: bom,
            ..sim_config()
        };
        let mut h = Harness::start(cfg).await;
        let r = h.spawn(&["gpu"]);
        h.expect(&r.name, "Listening", is_listening).await;
        let job_id = h.sim.queue_job(JobSpec::new(REPO, &["gpu"]));
        let RunnerEvent::JobReceived(job) = h.expect(&r.name, "JobReceived", is_job).await else {
            unreachable!()
        };
        assert_eq!(job.identity.check_run_id, Some(job_id), "fips={fips}");
        assert!(job.message.starts_with('{'), "fips={fips} bom={bom}");
        r.worker_finished(WorkerOutcome::Reported).await;
        assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
        h.assert_no_violations();
    }
}

/// Runs one job on a runner and lets megascaler fail it; returns the simulator's view.
async fn run_and_fail(
    cfg: SimConfig,
) -> (
    Harness,
    megascaler::sim::SimJob,
    megascaler::protocol::api::ReceivedJob,
) {
    let mut h = Harness::start(cfg).await;
    let r = h.spawn(&["linux"]);
    h.expect(&r.name, "Listening", is_listening).await;
    let job_id = h.sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let RunnerEvent::JobReceived(job) = h.expect(&r.name, "JobReceived", is_job).await else {
        unreachable!()
    };
    r.worker_finished(WorkerOutcome::Failed {
        reason: "worker exited with 1".into(),
    })
    .await;
    h.expect(&r.name, "CompletedByRunner", |e| {
        matches!(e, RunnerEvent::CompletedByRunner { .. })
    })
    .await;
    assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
    let sj = h.sim.job(job_id).unwrap();
    assert!(
        sj.issues.iter().any(|i| i.contains("worker exited with 1")),
        "the reason is in the job's log: {:?}",
        sj.issues
    );
    (h, sj, job)
}

#[tokio::test]
async fn broker_by_agent_properties_uses_the_run_service() {
    let cfg = SimConfig {
        broker: BrokerMode::AgentProperties,
        ..sim_config()
    };
    let (h, sj, job) = run_and_fail(cfg).await;
    assert_eq!(job.flow, JobFlow::RunService);
    assert_eq!(sj.completed_via, Some(CompletionPath::CompleteJob));
    assert_eq!(sj.result.as_deref(), Some("failed"));
    assert!(h.sim.counters().get(megascaler::sim::endpoint::ACQUIRE_JOB) >= 1);
    assert!(
        h.sim
            .counters()
            .get(megascaler::sim::endpoint::BROKER_ACKNOWLEDGE)
            >= 1
    );
    h.assert_no_violations();
}

#[tokio::test]
async fn broker_migration_message_with_message_id() {
    let cfg = SimConfig {
        broker: BrokerMode::MigrationMessage,
        ..sim_config()
    };
    let (h, sj, job) = run_and_fail(cfg).await;
    assert_eq!(job.flow, JobFlow::RunService);
    assert_eq!(sj.completed_via, Some(CompletionPath::CompleteJob));
    h.assert_no_violations();
}

#[tokio::test]
async fn e18_broker_migration_message_without_message_id() {
    let cfg = SimConfig {
        broker: BrokerMode::MigrationMessage,
        migration_message_id: false,
        ..sim_config()
    };
    let (h, sj, _) = run_and_fail(cfg).await;
    assert_eq!(sj.completed_via, Some(CompletionPath::CompleteJob));
    h.assert_no_violations();
}

#[tokio::test]
async fn runner_admin_registration_with_registration_token() {
    let cfg = SimConfig {
        use_v2_flow: true,
        admin_auth: megascaler::sim::AdminAuth::RegistrationToken,
        ..sim_config()
    };
    let (h, sj, job) = run_and_fail(cfg).await;
    assert_eq!(
        job.flow,
        JobFlow::RunService,
        "runner admin implies the broker"
    );
    assert_eq!(sj.completed_via, Some(CompletionPath::CompleteJob));
    assert!(
        h.sim
            .counters()
            .get(megascaler::sim::endpoint::ADMIN_REGISTER)
            >= 1
    );
    h.assert_no_violations();
}

#[tokio::test]
async fn runner_admin_registration_falls_back_to_the_jwt() {
    let cfg = SimConfig {
        use_v2_flow: true,
        admin_auth: megascaler::sim::AdminAuth::Jwt,
        ..sim_config()
    };
    let (h, sj, _) = run_and_fail(cfg).await;
    assert_eq!(sj.completed_via, Some(CompletionPath::CompleteJob));
    assert_eq!(h.sim.counters().pat_calls, 1);
    h.assert_no_violations();
}

#[tokio::test]
async fn plan_version_below_8_finishes_the_job_request() {
    let cfg = SimConfig {
        plan_version: 7,
        ..sim_config()
    };
    let (h, sj, _) = run_and_fail(cfg).await;
    assert_eq!(sj.completed_via, Some(CompletionPath::JobRequestFinish));
    assert_eq!(sj.conclusion.as_deref(), Some("failure"));
    h.assert_no_violations();
}

#[tokio::test]
async fn cancelled_outcome_completes_as_canceled() {
    let mut h = Harness::start(SimConfig {
        broker: BrokerMode::AgentProperties,
        ..sim_config()
    })
    .await;
    let r = h.spawn(&["linux"]);
    h.expect(&r.name, "Listening", is_listening).await;
    let job_id = h.sim.queue_job(JobSpec::new(REPO, &["linux"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    let run_id = h.sim.job(job_id).unwrap().run_id;
    h.sim.cancel_run(run_id);
    let ev = h
        .expect(&r.name, "CancelRequested", |e| {
            matches!(e, RunnerEvent::CancelRequested { .. })
        })
        .await;
    assert!(matches!(
        ev,
        RunnerEvent::CancelRequested { timeout: Some(_) }
    ));
    r.worker_finished(WorkerOutcome::Cancelled {
        reason: "cancelled by GitHub".into(),
    })
    .await;
    h.terminal(&r.name).await;
    h.assert_no_violations();
}

#[tokio::test]
async fn stop_while_idle_unregisters_with_the_cached_jwt() {
    let mut h = Harness::start(sim_config()).await;
    let r = h.spawn(&["linux"]);
    h.expect(&r.name, "Listening", is_listening).await;
    assert_eq!(h.sim.runners().len(), 1);
    r.stop().await;
    assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
    assert!(h.sim.runners().is_empty(), "runner deleted server-side");
    assert_eq!(h.sim.counters().pat_calls, 1, "removal spent no PAT call");
    h.assert_no_violations();
}

#[tokio::test]
async fn labels_are_exactly_the_jobs_and_names_are_ours() {
    let mut h = Harness::start(sim_config()).await;
    let r = h.spawn(&["self-hosted", "Linux-Big"]);
    h.expect(&r.name, "Listening", is_listening).await;
    let runners = h.sim.runners();
    assert_eq!(
        runners[0].labels,
        vec!["self-hosted".to_string(), "Linux-Big".to_string()]
    );
    assert!(runners[0].ephemeral);
    assert!(megascaler::protocol::RunnerFleet::is_own_runner(
        "megascaler-",
        &runners[0].name
    ));
    let status = h.fleet.token_status();
    assert_eq!(status.len(), 1);
    assert!(status[0].registration_token_expires.is_some() && status[0].jwt_expires.is_some());
    assert_eq!(status[0].oauth_tokens, 1);
}

#[tokio::test]
async fn megascaler_context_spliced_into_a_real_job_message() {
    use megascaler::protocol::context::{ctx_lookup, ctx_u64};
    use megascaler::protocol::{MegascalerContext, parse_job_identity, splice_megascaler_context};
    let mut h = Harness::start(sim_config()).await;
    let r = h.spawn(&["linux"]);
    h.expect(&r.name, "Listening", is_listening).await;
    let job_id = h.sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let RunnerEvent::JobReceived(job) = h.expect(&r.name, "JobReceived", is_job).await else {
        unreachable!()
    };
    let ctx = MegascalerContext {
        job_id,
        job_url: format!("{}{REPO}/actions/runs/1/job/{job_id}", h.sim.base_url()),
        run_url: format!("{}repos/{REPO}/actions/runs/1", h.sim.api_url()),
        labels: vec!["linux".into()],
        job_display_name: String::new(),
    };
    let out = splice_megascaler_context(&job.message, &ctx).unwrap();
    assert_eq!(
        parse_job_identity(&out).unwrap(),
        job.identity,
        "identity untouched"
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let orig: serde_json::Value = serde_json::from_str(&job.message).unwrap();
    let ms = ctx_lookup(&doc["contextData"]["github"], "megascaler").expect("spliced");
    assert_eq!(ctx_u64(ctx_lookup(ms, "jobid").unwrap()), Some(job_id));
    assert_eq!(
        ctx_lookup(ms, "jobDisplayName").unwrap(),
        &orig["jobDisplayName"]
    );
    let ms_text = ms.to_string();
    for (_, v) in orig["variables"].as_object().unwrap() {
        if v["isSecret"] == true {
            let secret = v["value"].as_str().unwrap();
            assert!(
                !ms_text.contains(secret),
                "secret variable leaked into github.megascaler"
            );
        }
    }
    // The splice is a pure insertion into contextData.github: every byte of the original
    // message is kept, in order, around one inserted span that holds the new entry.
    let (o, n) = (job.message.as_bytes(), out.as_bytes());
    let prefix = o.iter().zip(n).take_while(|(a, b)| a == b).count();
    let suffix = o[prefix..]
        .iter()
        .rev()
        .zip(n[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    assert_eq!(
        prefix + suffix,
        o.len(),
        "original bytes changed, not only added"
    );
    let inserted = &out[prefix..out.len() - suffix];
    assert!(inserted.contains("megascaler"), "{inserted}");
    let before = &job.message[..prefix];
    let github_at = before
        .rfind("\"github\"")
        .expect("inserted after the github key");
    assert!(before[..github_at].contains("\"contextData\""));
    r.worker_finished(WorkerOutcome::Reported).await;
    h.terminal(&r.name).await;
}

#[tokio::test]
async fn v1_job_cancellation_reaches_the_dispatcher() {
    let mut h = Harness::start(sim_config()).await;
    let r = h.spawn(&["linux"]);
    h.expect(&r.name, "Listening", is_listening).await;
    let job_id = h.sim.queue_job(JobSpec::new(REPO, &["linux"]));
    h.expect(&r.name, "JobReceived", is_job).await;
    h.sim.cancel_run(h.sim.job(job_id).unwrap().run_id);
    h.expect(&r.name, "CancelRequested", |e| {
        matches!(e, RunnerEvent::CancelRequested { .. })
    })
    .await;
    r.cancel("cancelled by GitHub").await;
    h.expect(
        &r.name,
        "CompletedByRunner",
        |e| matches!(e, RunnerEvent::CompletedByRunner { result } if result == "canceled"),
    )
    .await;
    h.terminal(&r.name).await;
    h.assert_no_violations();
}

#[tokio::test]
async fn organization_scope_runner_takes_a_repository_job() {
    use megascaler::protocol::api::RunnerRequest;
    let mut h = Harness::start(sim_config()).await;
    let req = RunnerRequest {
        scope_url: h.sim.base_url().join("octo").unwrap(),
        labels: vec!["org-wide".into()],
        name: megascaler::protocol::RunnerFleet::runner_name("megascaler-"),
    };
    let r = h.fleet.spawn(req, h.tx.clone());
    h.expect(&r.name, "Listening", is_listening).await;
    assert_eq!(h.sim.runners()[0].scope, "octo");
    let job_id = h.sim.queue_job(JobSpec::new(REPO, &["org-wide"]));
    let RunnerEvent::JobReceived(job) = h.expect(&r.name, "JobReceived", is_job).await else {
        unreachable!()
    };
    assert_eq!(job.identity.check_run_id, Some(job_id));
    r.worker_finished(WorkerOutcome::Reported).await;
    h.terminal(&r.name).await;
    h.assert_no_violations();
}

#[tokio::test]
async fn identity_without_check_run_id_falls_back_to_run_and_name() {
    let cfg = SimConfig {
        check_run_id_in_message: false,
        ..sim_config()
    };
    let mut h = Harness::start(cfg).await;
    let r = h.spawn(&["linux"]);
    h.expect(&r.name, "Listening", is_listening).await;
    let job_id = h.sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let RunnerEvent::JobReceived(job) = h.expect(&r.name, "JobReceived", is_job).await else {
        unreachable!()
    };
    let sj = h.sim.job(job_id).unwrap();
    assert_eq!(job.identity.check_run_id, None);
    assert_eq!(job.identity.run_id, Some(sj.run_id));
    assert_eq!(job.identity.run_attempt, Some(u64::from(sj.run_attempt)));
    assert_eq!(job.identity.repository.as_deref(), Some(REPO));
    assert!(!job.identity.job_display_name.is_empty());
    r.worker_finished(WorkerOutcome::Reported).await;
    h.terminal(&r.name).await;
}
