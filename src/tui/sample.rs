//! Hand-made engine events for the reducer's tests and the views' snapshots.
//!
//! Owns a fixed clock ([`t0`]) and a small, believable story: jobs in every interesting state,
//! a runner that took another job's runner, an unmatched job, a failed worker. Test-only.

use crate::config::{MatchMode, WorkerEntry};
use crate::engine::event::{
    Decision, DecisionKind, Event, IntakeStatus, JobId, JobState, JobView, OutputLine, RestBudget,
    RunnerView, ScopeTokens, Stream,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The fixed "now" of every snapshot.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 3, 0, 0)
        .single()
        .unwrap_or_default()
}

/// `t0` plus `secs` seconds (negative: before).
pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}

/// The worker entries of the sample configuration.
pub fn workers() -> Vec<WorkerEntry> {
    let entry = |labels: &[&str]| WorkerEntry {
        labels: labels.iter().map(|l| l.to_string()).collect(),
        args: vec!["worker".into()],
        env: BTreeMap::new(),
        allocate: vec![],
        release: vec![],
        max: None,
        match_mode: MatchMode::Exact,
    };
    vec![
        entry(&["self-hosted", "linux"]),
        entry(&["self-hosted", "linux", "gpu"]),
    ]
}

/// A queued job with the given labels.
pub fn job(id: JobId, name: &str, labels: &[&str], state: JobState) -> JobView {
    JobView {
        id,
        repository: "acme/widgets".into(),
        run_id: 9000 + id,
        run_attempt: 1,
        workflow_name: "CI".into(),
        job_name: name.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        state,
        conclusion: None,
        reason: None,
        runner_name: None,
        runner_was_other_jobs: false,
        worker_entry: None,
        worker_pid: None,
        log_path: None,
        html_url: None,
        queued_at: at(-90),
        started_at: None,
        finished_at: None,
    }
}

fn decision(secs: i64, job: Option<JobId>, kind: DecisionKind, message: &str) -> Event {
    Event::Decision(Decision {
        at: at(secs),
        job,
        kind,
        message: message.into(),
    })
}

fn line(stream: Stream, text: &str) -> OutputLine {
    OutputLine {
        stream,
        text: text.into(),
    }
}

/// The sample story as events, in the order the engine would send them.
pub fn events() -> Vec<Event> {
    let linux = ["self-hosted", "linux"];
    let mut build = job(101, "build", &linux, JobState::Queued);
    let mut ev = vec![
        Event::Intake(IntakeStatus {
            webhook_address: Some("127.0.0.1:9403".into()),
            last_delivery: Some(at(-4)),
            deliveries: 17,
            last_poll_ok: Some(at(-12)),
            ..IntakeStatus::default()
        }),
        Event::Job(build.clone()),
        decision(
            -89,
            Some(101),
            DecisionKind::Match,
            "worker[0] serves [self-hosted, linux]",
        ),
        Event::Runner(RunnerView {
            name: "megascaler-101-a".into(),
            labels: linux.iter().map(|l| l.to_string()).collect(),
            intended_job: Some(101),
            actual_job: None,
            status: "listening".into(),
            registered_at: at(-88),
        }),
        decision(
            -88,
            Some(101),
            DecisionKind::Reconcile,
            "registered megascaler-101-a for [self-hosted, linux]",
        ),
    ];
    build.state = JobState::WorkerRunning;
    build.runner_name = Some("megascaler-101-a".into());
    build.worker_entry = Some(0);
    build.worker_pid = Some(4242);
    build.log_path = Some(PathBuf::from("/var/lib/megascaler/jobs/101.log"));
    build.started_at = Some(at(-75));
    ev.extend([
        Event::Job(build),
        decision(
            -75,
            Some(101),
            DecisionKind::Transition,
            "registered → running: worker[0] started, pid 4242",
        ),
        Event::WorkerOutput {
            job: 101,
            lines: (1..=30)
                .map(|i| {
                    line(
                        Stream::Stdout,
                        &format!("step {i}: compiling crate {i} of 30"),
                    )
                })
                .chain([line(Stream::Stderr, "warning: unused variable `x`")])
                .collect(),
        },
    ]);

    let mut test = job(102, "test", &linux, JobState::Assigned);
    test.runner_name = Some("megascaler-103-b".into());
    test.runner_was_other_jobs = true;
    test.worker_entry = Some(0);
    test.queued_at = at(-60);
    ev.extend([
        Event::Runner(RunnerView {
            name: "megascaler-103-b".into(),
            labels: linux.iter().map(|l| l.to_string()).collect(),
            intended_job: Some(103),
            actual_job: Some(102),
            status: "busy".into(),
            registered_at: at(-50),
        }),
        Event::Job(test),
        decision(
            -20,
            Some(102),
            DecisionKind::Bind,
            "megascaler-103-b (registered for 103) received 102; bound to worker[0]",
        ),
    ]);

    let mut gpu = job(104, "train", &["self-hosted", "gpu"], JobState::Unmatched);
    gpu.reason = Some("no worker entry has exactly [self-hosted, gpu]".into());
    gpu.queued_at = at(-300);
    ev.extend([
        Event::Job(gpu),
        decision(
            -299,
            Some(104),
            DecisionKind::Match,
            "unmatched: no worker entry serves [self-hosted, gpu]",
        ),
    ]);

    let mut lint = job(105, "lint", &linux, JobState::Failed);
    lint.reason = Some("worker exited with status 3 before completing the job".into());
    lint.conclusion = Some("failure".into());
    lint.worker_entry = Some(0);
    lint.runner_name = Some("megascaler-105-c".into());
    lint.started_at = Some(at(-200));
    lint.finished_at = Some(at(-170));
    lint.queued_at = at(-230);
    ev.push(Event::Job(lint));

    let mut docs = job(106, "docs", &linux, JobState::Completed);
    docs.conclusion = Some("success".into());
    docs.worker_entry = Some(0);
    docs.runner_name = Some("megascaler-106-d".into());
    docs.queued_at = at(-600);
    docs.started_at = Some(at(-590));
    docs.finished_at = Some(at(-470));
    ev.push(Event::Job(docs));

    ev.extend([
        Event::Tokens(vec![ScopeTokens {
            scope: "https://github.com/acme/widgets".into(),
            registration_token_expires: Some(at(3_125)),
            jwt_expires: Some(at(245)),
            oauth_tokens: 2,
            cache_hits: 14,
        }]),
        Event::Budget(RestBudget {
            limit: Some(5000),
            remaining: Some(4960),
            reset: Some(at(1_800)),
            calls: 40,
            saved: 31,
        }),
        Event::Capacity {
            workers_running: 1,
            max_parallel: Some(4),
            runners_idle: 1,
            runners_busy: 2,
        },
        Event::OutputDropped { total: 0 },
    ]);
    ev
}
