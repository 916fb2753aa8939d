//! Late binding under harder conditions than the default simulator: the broker flow, job
//! messages without `check_run_id`, and matrix jobs that share one name in one run (only an
//! `in_progress` delivery or a poll can tell which job a runner got).

mod serve_support;

use megascaler::sim::{Assignment, BrokerMode, JobSpec, JobStatus, SimConfig, WorkerScript};
use serve_support::*;
use std::time::Duration;

const SETS: &[&[&str]] = &[&["self-hosted", "linux"], &["self-hosted", "linux", "big"]];

fn workers() -> Vec<Worker> {
    vec![Worker::sim(SETS[0]), Worker::sim(SETS[1])]
}

/// How the jobs are laid out over runs.
#[derive(Clone, Copy, PartialEq)]
enum OneRun {
    /// Every job in its own run, named `job-<i>`.
    No,
    /// One run, every job named `build` (a matrix whose names collide).
    SameName,
    /// One run, jobs named `job-<i>`.
    DistinctNames,
}

async fn run_all(cfg: SimConfig, setup: Setup, layout: OneRun, n: usize) {
    let sim = simulator_with(cfg).await;
    let mut serve = start_serve(&sim, setup).await;
    let script = WorkerScript {
        steps: 2,
        step_millis: 50,
        ..Default::default()
    };
    let mut ids = Vec::new();
    let mut run = None;
    for i in 0..n {
        let labels = SETS[i % SETS.len()];
        let mut spec = JobSpec::new(REPO, labels);
        spec.script = script.clone();
        spec.job_name = if layout == OneRun::SameName {
            "build".into()
        } else {
            format!("job-{i}")
        };
        if layout != OneRun::No {
            spec.run_id = run;
        }
        let id = sim.queue_job(spec);
        run = run.or_else(|| sim.job(id).map(|j| j.run_id));
        ids.push(id);
    }
    all_done(&sim, &serve, &ids, Duration::from_secs(300)).await;
    for id in &ids {
        let j = sim.job(*id).unwrap();
        assert_eq!(j.status, JobStatus::Completed);
        assert_eq!(
            j.conclusion.as_deref(),
            Some("success"),
            "job {id}: {j:?}\n{}",
            serve.stderr()
        );
    }
    assert!(
        sim.violations().is_empty(),
        "protocol violations: {:?}",
        sim.violations()
    );
    serve.assert_clean_exit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_flow_with_the_worst_runner_choice() {
    let cfg = SimConfig {
        assignment: Assignment::MostLabels,
        broker: BrokerMode::MigrationMessage,
        ..SimConfig::default()
    };
    run_all(cfg, Setup::new(workers()), OneRun::No, 12).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runner_admin_flow() {
    let cfg = SimConfig {
        assignment: Assignment::MostLabels,
        use_v2_flow: true,
        ..SimConfig::default()
    };
    run_all(cfg, Setup::new(workers()), OneRun::No, 8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_without_check_run_id_are_identified_by_run_and_name() {
    let cfg = SimConfig {
        assignment: Assignment::MostLabels,
        check_run_id_in_message: false,
        ..SimConfig::default()
    };
    run_all(cfg, Setup::new(workers()), OneRun::No, 12).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn matrix_jobs_sharing_a_name_wait_for_in_progress_webhooks() {
    let cfg = SimConfig {
        assignment: Assignment::MostLabels,
        check_run_id_in_message: false,
        ..SimConfig::default()
    };
    let mut setup = Setup::new(workers());
    setup.polling = false;
    run_all(cfg, setup, OneRun::SameName, 8).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_of_one_run_without_check_run_id_are_identified_by_polling_alone() {
    let cfg = SimConfig {
        assignment: Assignment::MostLabels,
        check_run_id_in_message: false,
        ..SimConfig::default()
    };
    let mut setup = Setup::new(workers());
    setup.webhooks = false;
    run_all(cfg, setup, OneRun::DistinctNames, 8).await;
}

/// A job intake never heard of (queued before megascaler listened, no polling) lands on a runner
/// registered for another job: the `in_progress` delivery naming the runner tells intake which job
/// it got, the job runs its own worker, and the other job gets a new runner.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_unknown_to_intake_is_identified_by_its_in_progress_delivery() {
    let sim = simulator_with(SimConfig {
        assignment: Assignment::First,
        ..SimConfig::default()
    })
    .await;
    let script = WorkerScript {
        steps: 2,
        step_millis: 50,
        ..Default::default()
    };
    // Queued while nobody listens: megascaler never gets its `queued` delivery.
    let mut unknown = JobSpec::new(REPO, SETS[0]);
    unknown.job_name = "unknown".into();
    unknown.script = script.clone();
    let unknown = sim.queue_job(unknown);
    let mut setup = Setup::new(workers());
    setup.polling = false;
    let mut serve = start_serve(&sim, setup).await;
    let mut known = JobSpec::new(REPO, SETS[0]);
    known.job_name = "known".into();
    known.script = script;
    let known = sim.queue_job(known);
    all_done(&sim, &serve, &[unknown, known], Duration::from_secs(120)).await;
    for id in [unknown, known] {
        assert_eq!(
            sim.job(id).unwrap().conclusion.as_deref(),
            Some("success"),
            "job {id}"
        );
    }
    let log = serve.stderr();
    // Intake learned of the job only from the `in_progress` delivery naming our runner.
    assert!(log.contains(&format!("took job {unknown}")), "{log}");
    serve.assert_clean_exit().await;
}
