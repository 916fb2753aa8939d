//! Scenario tests of the dispatcher: inputs in, effects and states out, no IO.

use super::*;
use crate::config::MatchMode;
use crate::engine::event::Command;
use crate::protocol::api::{
    JobFlow, JobIdentity, RunnerEnvelope, RunnerEvent, RunnerRequest, WorkerOutcome,
};
use std::sync::Arc;

fn entry(labels: &[&str]) -> WorkerEntry {
    WorkerEntry {
        labels: labels.iter().map(|s| s.to_string()).collect(),
        args: vec!["w".into()],
        env: Default::default(),
        allocate: vec![],
        release: vec![],
        max: None,
        match_mode: MatchMode::Exact,
    }
}

fn dispatcher(max_parallel: Option<usize>) -> Dispatcher {
    Dispatcher::new(Settings {
        workers: vec![
            entry(&["self-hosted", "linux"]),
            entry(&["self-hosted", "linux", "big"]),
        ],
        max_parallel,
        github_url: Url::parse("http://gh.test").unwrap(),
        runner_name_prefix: "ms-".into(),
        identify_timeout: Duration::from_secs(300),
        cancel_grace: Duration::from_secs(45),
        registration_backoff: Duration::from_secs(5),
    })
}

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

fn observed(id: JobId, labels: &[&str], status: ObservedStatus) -> Input {
    Input::Observed {
        job: ObservedJob {
            id,
            repository: "o/r".into(),
            run_id: 100,
            run_attempt: 1,
            workflow_name: "CI".into(),
            name: format!("job-{id}"),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            status,
            conclusion: None,
            runner_name: None,
            html_url: None,
            created_at: None,
        },
        source: Source::Webhook,
    }
}

fn registered(effects: &[Effect]) -> Vec<RunnerRequest> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::RegisterRunner(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn stopped(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::StopRunner { runner } => Some(runner.clone()),
            _ => None,
        })
        .collect()
}

fn received(
    d: &mut Dispatcher,
    runner: &str,
    check_run_id: Option<u64>,
    name: &str,
    now: i64,
) -> Vec<Effect> {
    d.handle(
        Input::Runner(RunnerEnvelope {
            runner: runner.into(),
            event: RunnerEvent::JobReceived(crate::protocol::api::ReceivedJob {
                message: Arc::from("{\"job\":1}"),
                identity: JobIdentity {
                    check_run_id,
                    run_id: Some(100),
                    run_attempt: Some(1),
                    repository: Some("o/r".into()),
                    job_display_name: name.into(),
                },
                flow: JobFlow::RunService,
                orchestration_job_id: "x".into(),
                cancel_timeout: None,
            }),
        }),
        t(now),
    )
}

fn started(effects: &[Effect]) -> Option<WorkerStart> {
    effects.iter().find_map(|e| match e {
        Effect::StartWorker(w) => Some(w.clone()),
        _ => None,
    })
}

fn runner_event(d: &mut Dispatcher, runner: &str, event: RunnerEvent) -> Vec<Effect> {
    d.handle(
        Input::Runner(RunnerEnvelope {
            runner: runner.into(),
            event,
        }),
        t(1),
    )
}

#[test]
fn queued_job_runs_and_completes() {
    let mut d = dispatcher(None);
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let regs = registered(&e);
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].scope_url.as_str(), "http://gh.test/o/r");
    assert!(regs[0].name.starts_with("ms-"));
    assert_eq!(d.job(1).unwrap().state, JobState::RunnerRegistered);
    let runner = regs[0].name.clone();
    runner_event(&mut d, &runner, RunnerEvent::Listening);
    let e = received(&mut d, &runner, Some(1), "job-1", 2);
    let w = started(&e).expect("worker started");
    assert_eq!((w.job, w.entry), (1, 0));
    assert!(
        w.job_env
            .iter()
            .any(|(k, v)| k == "MEGASCALER_JOB_ID" && v == "1")
    );
    d.handle(
        Input::WorkerStarted {
            job: 1,
            pid: Some(5),
            log_path: "l".into(),
        },
        t(3),
    );
    assert_eq!(d.job(1).unwrap().state, JobState::WorkerRunning);
    let e = d.handle(
        Input::WorkerExited {
            job: 1,
            outcome: WorkerOutcome::Reported,
        },
        t(4),
    );
    assert!(e.iter().any(|e| matches!(
        e,
        Effect::FinishJob {
            outcome: WorkerOutcome::Reported,
            ..
        }
    )));
    assert_eq!(d.job(1).unwrap().state, JobState::Completed);
    assert!(registered(&e).is_empty(), "no new runner after completion");
}

#[test]
fn job_on_the_wrong_runner_runs_its_own_worker_and_the_other_job_gets_a_runner() {
    let mut d = dispatcher(None);
    // Job 1 wants [self-hosted, linux, big]; job 2 wants [self-hosted, linux].
    let e1 = d.handle(
        observed(1, &["self-hosted", "linux", "big"], ObservedStatus::Queued),
        t(0),
    );
    let e2 = d.handle(
        observed(2, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let big = registered(&e1)[0].name.clone();
    let small = registered(&e2)[0].name.clone();
    // GitHub gives job 2 to the big runner (its labels cover job 2's).
    let e = received(&mut d, &big, Some(2), "job-2", 1);
    let w = started(&e).expect("worker for job 2");
    assert_eq!(w.entry, 0, "worker chosen by job 2's own labels");
    assert!(d.job(2).unwrap().runner_was_other_jobs);
    // Job 1 keeps its demand: a new big runner; job 2's own runner is surplus and removed.
    assert_eq!(registered(&e).len(), 1);
    assert_eq!(
        registered(&e)[0].labels,
        vec!["self-hosted", "linux", "big"]
    );
    assert_eq!(stopped(&e), vec![small]);
    assert_eq!(d.job(1).unwrap().state, JobState::RunnerRegistered);
}

#[test]
fn same_label_swap_keeps_both_runners_busy() {
    let mut d = dispatcher(None);
    let e1 = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let e2 = d.handle(
        observed(2, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let r1 = registered(&e1)[0].name.clone();
    let r2 = registered(&e2)[0].name.clone();
    let e = received(&mut d, &r1, Some(2), "job-2", 1);
    // r2 now stands for job 1: nothing registered, nothing removed.
    assert!(registered(&e).is_empty() && stopped(&e).is_empty());
    let e = received(&mut d, &r2, Some(1), "job-1", 2);
    assert_eq!(started(&e).unwrap().job, 1);
    assert!(registered(&e).is_empty() && stopped(&e).is_empty());
}

#[test]
fn completed_while_queued_removes_the_idle_runner() {
    let mut d = dispatcher(None);
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let r = registered(&e)[0].name.clone();
    let mut done = observed(1, &["self-hosted", "linux"], ObservedStatus::Completed);
    if let Input::Observed { job, .. } = &mut done {
        job.conclusion = Some("cancelled".into());
    }
    let e = d.handle(done, t(1));
    assert_eq!(stopped(&e), vec![r.clone()]);
    assert_eq!(d.job(1).unwrap().state, JobState::Cancelled);
    runner_event(&mut d, &r, RunnerEvent::Removed);
    assert!(d.runner_names().is_empty());
}

#[test]
fn unmatched_job_never_gets_a_runner_and_says_why() {
    let mut d = dispatcher(None);
    let e = d.handle(observed(1, &["windows"], ObservedStatus::Queued), t(0));
    assert!(registered(&e).is_empty());
    let j = d.job(1).unwrap();
    assert_eq!(j.state, JobState::Unmatched);
    assert!(
        j.reason.as_deref().unwrap().contains("missing [windows]"),
        "{:?}",
        j.reason
    );
    let e = d.handle(Input::Tick, t(10));
    assert!(registered(&e).is_empty());
}

#[test]
fn duplicate_and_reordered_deliveries_are_harmless() {
    let mut d = dispatcher(None);
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    assert_eq!(registered(&e).len(), 1);
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    assert!(
        registered(&e).is_empty(),
        "a duplicate queued adds no demand"
    );
    let mut done = observed(1, &["self-hosted", "linux"], ObservedStatus::Completed);
    if let Input::Observed { job, .. } = &mut done {
        job.conclusion = Some("success".into());
    }
    d.handle(done, t(1));
    d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(2),
    );
    assert_eq!(
        d.job(1).unwrap().state,
        JobState::Completed,
        "late queued does not reopen"
    );
}

#[test]
fn unidentified_job_waits_for_in_progress_then_binds() {
    let mut d = dispatcher(None);
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    d.handle(
        observed(2, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let r = registered(&e)[0].name.clone();
    // The message names neither the job nor a unique name.
    let e = received(&mut d, &r, None, "unknown", 1);
    assert!(started(&e).is_none());
    let mut ip = observed(2, &["self-hosted", "linux"], ObservedStatus::InProgress);
    if let Input::Observed { job, .. } = &mut ip {
        job.runner_name = Some(r.clone());
    }
    let e = d.handle(ip, t(5));
    assert_eq!(started(&e).expect("bound after in_progress").job, 2);
}

#[test]
fn unidentified_job_fails_after_the_timeout() {
    let mut d = dispatcher(None);
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let r = registered(&e)[0].name.clone();
    received(&mut d, &r, Some(99), "x", 1);
    let e = d.handle(Input::Tick, t(100));
    assert!(!e.iter().any(|e| matches!(e, Effect::FinishJob { .. })));
    let e = d.handle(Input::Tick, t(302));
    assert!(e.iter().any(|e| matches!(e, Effect::FinishJob { outcome: WorkerOutcome::Failed { reason }, .. } if reason.contains("could not identify"))));
}

#[test]
fn crash_fails_the_job_with_the_reason() {
    let mut d = dispatcher(None);
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let r = registered(&e)[0].name.clone();
    received(&mut d, &r, Some(1), "job-1", 1);
    let reason = "worker ended with exit status: 3; last output:\n/home/secret/path boom";
    let out = WorkerOutcome::Failed {
        reason: reason.into(),
    };
    let e = d.handle(
        Input::WorkerExited {
            job: 1,
            outcome: out,
        },
        t(2),
    );
    // GitHub gets the summary only; the output stays local.
    let public = e.iter().find_map(|e| match e {
        Effect::FinishJob {
            outcome: WorkerOutcome::Failed { reason },
            ..
        } => Some(reason.clone()),
        _ => None,
    });
    let public = public.expect("the runner completes the job as failed");
    assert!(
        public.starts_with("worker ended with exit status: 3"),
        "{public}"
    );
    assert!(
        !public.contains("boom") && !public.contains("/home"),
        "{public}"
    );
    let j = d.job(1).unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.reason.as_deref(), Some(reason));
}

#[test]
fn max_parallel_bounds_runners_and_frees_on_removal() {
    let mut d = dispatcher(Some(1));
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let r = registered(&e)[0].name.clone();
    let e = d.handle(
        observed(2, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    assert!(registered(&e).is_empty());
    assert!(
        d.job(2)
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("max_parallel 1")
    );
    received(&mut d, &r, Some(1), "job-1", 1);
    d.handle(
        Input::WorkerExited {
            job: 1,
            outcome: WorkerOutcome::Reported,
        },
        t(2),
    );
    let e = runner_event(&mut d, &r, RunnerEvent::Removed);
    assert_eq!(
        registered(&e).len(),
        1,
        "capacity freed: job 2 gets its runner"
    );
}

#[test]
fn failed_registration_backs_off() {
    let mut d = dispatcher(None);
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let r = registered(&e)[0].name.clone();
    let e = runner_event(
        &mut d,
        &r,
        RunnerEvent::Failed {
            reason: "401".into(),
        },
    );
    assert!(registered(&e).is_empty());
    let e = d.handle(Input::Tick, t(60));
    assert_eq!(registered(&e).len(), 1);
}

mod commands;
