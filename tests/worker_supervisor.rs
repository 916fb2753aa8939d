//! Supervised worker processes with small shell scripts as workers.

use megascaler::config::{MatchMode, WorkerEntry};
use megascaler::engine::dispatch::Input;
use megascaler::engine::event::Event;
use megascaler::engine::supervisor::{self, Escalation, OutputSink, WorkerControl, WorkerSpec};
use megascaler::protocol::api::WorkerOutcome;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::mpsc;

#[path = "serve_support/process_guard.rs"]
mod process_guard;

use process_guard::ProcessGuard;

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    let mut perm = std::fs::metadata(&p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&p, perm).unwrap();
    p.display().to_string()
}

fn entry(args: Vec<String>) -> WorkerEntry {
    WorkerEntry {
        labels: vec!["x".into()],
        args,
        env: Default::default(),
        allocate: vec![],
        release: vec![],
        max: None,
        match_mode: MatchMode::Exact,
    }
}

struct Run {
    inputs: mpsc::Receiver<Input>,
    events: mpsc::Receiver<Event>,
    control: mpsc::Sender<WorkerControl>,
    log: std::path::PathBuf,
    /// Kills the worker and anything it forked if the test fails.
    _guard: ProcessGuard,
}

fn start(dir: &Path, entry: WorkerEntry, message: &str) -> Run {
    let (itx, irx) = mpsc::channel(100);
    let (etx, erx) = mpsc::channel(10_000);
    let log = dir.join("jobs/7.log");
    let guard = ProcessGuard::new();
    let spec = WorkerSpec {
        job: 7,
        entry,
        message: Arc::from(message),
        env: vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            guard.env(),
        ],
        log_path: log.clone(),
        escalation: Escalation {
            after_sigint: Duration::from_millis(200),
            after_sigterm: Duration::from_millis(200),
        },
    };
    let control = supervisor::spawn(
        spec,
        itx,
        OutputSink {
            events: etx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
    );
    Run {
        inputs: irx,
        events: erx,
        control,
        log,
        _guard: guard,
    }
}

async fn outcome(run: &mut Run) -> WorkerOutcome {
    exit_report(&mut run.inputs).await
}

/// The worker's exit report; panics after 60 s or when the channel closes without one.
async fn exit_report(inputs: &mut mpsc::Receiver<Input>) -> WorkerOutcome {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), inputs.recv()).await {
            Ok(Some(Input::WorkerExited { outcome, .. })) => return outcome,
            Ok(Some(_)) => continue,
            other => panic!("no exit report: {other:?}"),
        }
    }
}

/// The next input, within 60 s.
async fn next_input(run: &mut Run) -> Option<Input> {
    tokio::time::timeout(Duration::from_secs(60), run.inputs.recv())
        .await
        .expect("an input within 60 s")
}

#[tokio::test]
async fn job_message_is_frame_one_and_output_is_logged_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let w = script(
        dir.path(),
        "w.sh",
        "echo header $(dd bs=1 count=8 2>/dev/null | od -An -tu1)\necho body $(head -c 10)\necho on-stderr >&2\ni=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done",
    );
    let mut run = start(dir.path(), entry(vec![w]), "{\"job\":42}");
    assert!(matches!(
        next_input(&mut run).await,
        Some(Input::WorkerStarted {
            job: 7,
            pid: Some(_),
            ..
        })
    ));
    assert_eq!(outcome(&mut run).await, WorkerOutcome::Reported);
    let log = std::fs::read_to_string(&run.log).unwrap();
    assert!(log.contains("header 0 0 0 1 0 0 0 10"), "{log}");
    assert!(log.contains("body {\"job\":42}"), "{log}");
    assert!(log.contains("[stderr] on-stderr"), "{log}");
    assert!(log.contains("line 299"), "{log}");
    let mut streamed = 0;
    while let Ok(ev) = run.events.try_recv() {
        if let Event::WorkerOutput { lines, .. } = ev {
            streamed += lines.len();
        }
    }
    assert_eq!(
        streamed, 303,
        "every line reaches the consumer when the channel has room"
    );
}

#[tokio::test]
async fn crash_reports_the_exit_and_the_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let w = script(dir.path(), "w.sh", "echo 'fatal: disk on fire' >&2\nexit 3");
    let mut run = start(dir.path(), entry(vec![w]), "{}");
    match outcome(&mut run).await {
        WorkerOutcome::Failed { reason } => {
            assert!(
                reason.contains("exit status: 3") && reason.contains("disk on fire"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cancel_of_a_worker_that_ignores_signals_escalates_to_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let w = script(
        dir.path(),
        "w.sh",
        "trap 'echo got INT' INT\ntrap 'echo got TERM' TERM\necho ready\nwhile true; do sleep 0.1; done",
    );
    let mut run = start(dir.path(), entry(vec![w]), "{}");
    assert!(matches!(
        next_input(&mut run).await,
        Some(Input::WorkerStarted { .. })
    ));
    run.control
        .send(WorkerControl::Cancel {
            grace: Duration::from_millis(200),
        })
        .await
        .unwrap();
    match outcome(&mut run).await {
        WorkerOutcome::Cancelled { reason } => assert!(reason.contains("signal: 9"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let log = std::fs::read_to_string(&run.log).unwrap();
    assert!(log.contains("got INT") && log.contains("got TERM"), "{log}");
}

#[tokio::test]
async fn worker_that_honours_cancel_frame_exits_in_grace() {
    let dir = tempfile::tempdir().unwrap();
    // Reads frame 1 (8 + 2 bytes), then waits for the cancel frame header and exits 0.
    let w = script(
        dir.path(),
        "w.sh",
        "head -c 10 >/dev/null\necho $(head -c 8 | od -An -tu1)\necho cancelled-cleanly",
    );
    let mut run = start(dir.path(), entry(vec![w]), "{}");
    assert!(matches!(
        next_input(&mut run).await,
        Some(Input::WorkerStarted { .. })
    ));
    run.control
        .send(WorkerControl::Cancel {
            grace: Duration::from_secs(600),
        })
        .await
        .unwrap();
    assert_eq!(outcome(&mut run).await, WorkerOutcome::Reported);
    let log = std::fs::read_to_string(&run.log).unwrap();
    assert!(
        log.contains("0 0 0 2 0 0 0 0") && log.contains("cancelled-cleanly"),
        "{log}"
    );
}

#[tokio::test]
async fn kill_ends_the_whole_process_group_now() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let w = script(
        dir.path(),
        "w.sh",
        &format!("sleep 1000 &\necho $! > {}\nwait", pidfile.display()),
    );
    let mut run = start(dir.path(), entry(vec![w]), "{}");
    assert!(matches!(
        next_input(&mut run).await,
        Some(Input::WorkerStarted { .. })
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&pidfile)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never wrote its child's pid"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.control.send(WorkerControl::Kill).await.unwrap();
    assert!(matches!(
        outcome(&mut run).await,
        WorkerOutcome::Cancelled { .. }
    ));
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild is gone too (it may linger as a zombie until reaped by init).
    let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "grandchild still running: {stat}"
    );
}

#[tokio::test]
async fn allocate_target_and_release_even_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let released = dir.path().join("released");
    let mut e = entry(vec![
        script(dir.path(), "w.sh", "echo target is $1\nexit 1"),
        "{target}".into(),
    ]);
    e.allocate = vec![script(
        dir.path(),
        "a.sh",
        "echo \"  host-$MEGASCALER_JOB_ID  \"",
    )];
    e.release = vec![
        script(
            dir.path(),
            "r.sh",
            &format!("echo $1 > {}", released.display()),
        ),
        "{target}".into(),
    ];
    let (itx, mut irx) = mpsc::channel(100);
    let (etx, _erx) = mpsc::channel(100);
    let log = dir.path().join("jobs/7.log");
    let guard = ProcessGuard::new();
    supervisor::spawn(
        WorkerSpec {
            job: 7,
            entry: e,
            message: Arc::from("{}"),
            env: vec![
                ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
                ("MEGASCALER_JOB_ID".into(), "7".into()),
                guard.env(),
            ],
            log_path: log.clone(),
            escalation: Escalation::default(),
        },
        itx,
        OutputSink {
            events: etx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
    );
    let out = exit_report(&mut irx).await;
    assert!(matches!(out, WorkerOutcome::Failed { .. }));
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("target is host-7")
    );
    assert_eq!(std::fs::read_to_string(&released).unwrap().trim(), "host-7");
}

#[tokio::test]
async fn failed_allocate_fails_the_job_without_starting_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = entry(vec![script(dir.path(), "w.sh", "touch started")]);
    e.allocate = vec![script(dir.path(), "a.sh", "echo no hosts free >&2\nexit 2")];
    let mut run = start(dir.path(), e, "{}");
    match outcome(&mut run).await {
        WorkerOutcome::Failed { reason } => assert!(reason.contains("no hosts free"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn full_consumer_channel_counts_dropped_lines() {
    let dir = tempfile::tempdir().unwrap();
    let w = script(
        dir.path(),
        "w.sh",
        "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done",
    );
    let (itx, mut irx) = mpsc::channel(100);
    let (etx, _erx) = mpsc::channel(1);
    let dropped = Arc::new(AtomicU64::new(0));
    let guard = ProcessGuard::new();
    supervisor::spawn(
        WorkerSpec {
            job: 7,
            entry: entry(vec![w]),
            message: Arc::from("{}"),
            env: vec![
                ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
                guard.env(),
            ],
            log_path: dir.path().join("jobs/7.log"),
            escalation: Escalation::default(),
        },
        itx,
        OutputSink {
            events: etx,
            dropped: dropped.clone(),
        },
    );
    assert_eq!(exit_report(&mut irx).await, WorkerOutcome::Reported);
    assert!(dropped.load(std::sync::atomic::Ordering::Relaxed) > 0);
    let log = std::fs::read_to_string(dir.path().join("jobs/7.log")).unwrap();
    assert!(log.contains("line 1999"), "the log file is the record");
}

#[tokio::test]
async fn a_newline_free_flood_is_split_into_bounded_lines() {
    let dir = tempfile::tempdir().unwrap();
    let w = script(
        dir.path(),
        "w.sh",
        "head -c 200000 /dev/zero | tr '\\0' 'a'\necho\necho done",
    );
    let mut run = start(dir.path(), entry(vec![w]), "{}");
    assert_eq!(outcome(&mut run).await, WorkerOutcome::Reported);
    let mut longest = 0;
    let mut pieces = 0;
    while let Ok(ev) = run.events.try_recv() {
        if let Event::WorkerOutput { lines, .. } = ev {
            for l in lines {
                longest = longest.max(l.text.len());
                pieces += usize::from(l.text.ends_with(" …"));
            }
        }
    }
    assert!(longest <= 64 * 1024 + " …".len(), "{longest}");
    assert_eq!(pieces, 3, "200 000 bytes make three full pieces and a tail");
    let log = std::fs::read_to_string(&run.log).unwrap();
    assert!(log.contains("done"));
}
