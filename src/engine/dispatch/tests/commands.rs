//! Dispatcher scenarios: commands, orphan runners, pause, retention.

use super::*;

#[test]
fn commands_cancel_kill_and_shutdown() {
    let mut d = dispatcher(None);
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let r1 = registered(&e)[0].name.clone();
    let e = d.handle(
        observed(2, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    let r2 = registered(&e)[0].name.clone();
    // Job 2 is still queued: cancel goes to REST.
    let e = d.handle(Input::Command(Command::CancelJob(2)), t(1));
    assert!(
        e.iter()
            .any(|e| matches!(e, Effect::Rest(RestCall::CancelRun { run_id: 100, .. })))
    );
    received(&mut d, &r1, Some(1), "job-1", 1);
    let e = d.handle(Input::Command(Command::CancelJob(1)), t(2));
    assert!(
        e.iter()
            .any(|e| matches!(e, Effect::CancelWorker { job: 1, .. }))
    );
    let e = d.handle(Input::Command(Command::KillWorker(1)), t(2));
    assert!(e.iter().any(|e| matches!(e, Effect::KillWorker { job: 1 })));
    let e = d.handle(Input::Command(Command::Shutdown), t(3));
    assert_eq!(stopped(&e), vec![r2.clone()]);
    assert!(
        e.iter()
            .any(|e| matches!(e, Effect::CancelWorker { job: 1, .. }))
    );
    assert!(!d.finished());
    d.handle(
        Input::WorkerExited {
            job: 1,
            outcome: WorkerOutcome::Cancelled { reason: "c".into() },
        },
        t(4),
    );
    runner_event(&mut d, &r1, RunnerEvent::Removed);
    runner_event(&mut d, &r2, RunnerEvent::Removed);
    assert!(d.finished());
}

#[test]
fn orphan_runners_with_our_prefix_are_deleted_once() {
    let mut d = dispatcher(None);
    let listed = vec![
        ListedRunner {
            id: 1,
            name: "ms-orphan".into(),
            busy: false,
        },
        ListedRunner {
            id: 2,
            name: "someone-else".into(),
            busy: false,
        },
        ListedRunner {
            id: 3,
            name: "ms-busy".into(),
            busy: true,
        },
    ];
    let e = d.handle(
        Input::RunnersListed {
            repository: "o/r".into(),
            runners: listed.clone(),
        },
        t(0),
    );
    let deletes: Vec<_> = e
        .iter()
        .filter(|e| matches!(e, Effect::Rest(RestCall::DeleteRunner { .. })))
        .collect();
    assert_eq!(deletes.len(), 1);
    assert!(matches!(
        deletes[0],
        Effect::Rest(RestCall::DeleteRunner { id: 1, .. })
    ));
    let e = d.handle(
        Input::RunnersListed {
            repository: "o/r".into(),
            runners: listed,
        },
        t(1),
    );
    assert!(!e.iter().any(|e| matches!(e, Effect::Rest(_))));
}

#[test]
fn pause_stops_registrations_until_resumed() {
    let mut d = dispatcher(None);
    d.handle(Input::Command(Command::PauseIntake), t(0));
    let e = d.handle(
        observed(1, &["self-hosted", "linux"], ObservedStatus::Queued),
        t(0),
    );
    assert!(registered(&e).is_empty());
    let e = d.handle(Input::Command(Command::ResumeIntake), t(1));
    assert_eq!(registered(&e).len(), 1);
}

#[test]
fn finished_jobs_are_forgotten_after_the_retention() {
    let mut d = dispatcher(None);
    d.handle(observed(1, &["windows"], ObservedStatus::Queued), t(0));
    assert_eq!(d.job(1).unwrap().state, JobState::Unmatched);
    d.handle(Input::Tick, t(3599));
    assert!(d.job(1).is_some());
    d.handle(Input::Tick, t(3601));
    assert!(d.job(1).is_none());
}
