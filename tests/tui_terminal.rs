//! The dashboard's terminal behaviour in a real terminal (tmux), without the engine: a panic
//! restores the terminal, logs and exits non-zero; the run loop over a fake engine shows
//! output, cancels through the confirmation and quits when the engine closes.
//!
//! Both run a child process (this test binary, one test selected) inside tmux. Skipped, with
//! the reason printed, only when tmux is not installed.

mod tui_support;

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tui_support::{POLL, RemoveOnDrop, TIMEOUT, TMUX, Tmux, job_rows, tmux_binary};

/// Set in the environment of the child process of
/// [`a_panic_restores_the_terminal_logs_and_exits_non_zero`].
const PANIC_CHILD: &str = "MEGASCALER_TEST_PANIC_CHILD_LOG_DIR";

/// Not a test of its own: the child process of the panic test below (this test binary runs
/// itself with only this test selected, `--ignored --exact`).
#[test]
#[ignore = "the child process of a_panic_restores_the_terminal_logs_and_exits_non_zero"]
fn panic_child_process() {
    let Some(dir) = std::env::var_os(PANIC_CHILD) else {
        return;
    };
    let _log = megascaler::logging::init(
        megascaler::logging::LogTarget::FileOnly,
        Some(Path::new(&dir)),
    )
    .expect("logging");
    let _guard = megascaler::tui::terminal::TerminalGuard::enter().expect("terminal");
    print!("\x1b[2J\x1b[Hdrawn on the alternate screen");
    // A panic on another thread, as an engine task's would be.
    let _ = std::thread::spawn(|| panic!("boom from a worker thread")).join();
    unreachable!("the panic hook exits the process");
}

#[test]
fn a_panic_restores_the_terminal_logs_and_exits_non_zero() {
    let Some(tmux_bin) = tmux_binary() else {
        println!("skipped: tmux is not installed (not at {TMUX}, not on PATH)");
        return;
    };
    let logs = std::env::temp_dir().join(format!("megascaler-panic-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&logs);
    let _cleanup = RemoveOnDrop(logs.clone());
    let me = std::env::current_exe().expect("this test binary");
    // The shell reports the exit status and whether the terminal is back in canonical mode.
    let command = format!(
        "{PANIC_CHILD}='{}' '{}' --ignored --exact panic_child_process --nocapture --test-threads=1; \
         echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -- '-*icanon'; sleep 600",
        logs.display(),
        me.display()
    );
    let tmux = Tmux::start(tmux_bin, &command, 100, 30);
    let mut seen = Vec::new();
    tmux.wait_for("the exit status", |s| s.contains("EXIT="), &mut seen);
    let screen = tmux.screen();
    assert!(screen.contains("EXIT=101"), "exits 101:\n{screen}");
    assert!(
        screen.contains("boom from a worker thread"),
        "the report is shown:\n{screen}"
    );
    assert!(
        screen.lines().any(|l| l.trim() == "icanon"),
        "raw mode is off again:\n{screen}"
    );
    assert_eq!(tmux.pane("#{alternate_on}"), "0", "back on the main screen");
    let log = std::fs::read_dir(logs.join("logs"))
        .expect("log dir")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        log.contains("boom from a worker thread"),
        "the panic is logged: {log}"
    );
    let _ = std::fs::remove_dir_all(&logs);
}

/// Set in the environment of the child process of [`dashboard_loop_over_a_fake_engine`]:
/// where the child writes the commands its fake engine received.
const FAKE_ENGINE_CHILD: &str = "MEGASCALER_TEST_FAKE_ENGINE_COMMANDS";

/// Not a test of its own: the child process of the fake-engine test below (run with
/// `--ignored --exact`). It runs the real dashboard loop over an engine made of two channels
/// and a small script: one running job that prints a line every 100 ms, cancelled on
/// `CancelJob`, closing on `Shutdown`.
#[test]
#[ignore = "the child process of dashboard_loop_over_a_fake_engine"]
fn fake_engine_child_process() {
    use chrono::Utc;
    use megascaler::engine::event::{
        Command, EngineHandle, Event, JobState, JobView, OutputLine, Stream,
    };
    use tokio::sync::mpsc;

    let Some(record) = std::env::var_os(FAKE_ENGINE_CHILD) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (events, events_rx) = mpsc::channel(1024);
        let (commands_tx, mut commands) = mpsc::channel(16);
        let mut job = JobView {
            id: 7,
            repository: "acme/widgets".into(),
            run_id: 70,
            run_attempt: 1,
            workflow_name: "CI".into(),
            job_name: "long-running (cancel me)".into(),
            labels: vec!["self-hosted".into(), "linux".into()],
            state: JobState::WorkerRunning,
            conclusion: None,
            reason: None,
            runner_name: Some("megascaler-7".into()),
            runner_was_other_jobs: false,
            worker_entry: Some(0),
            worker_pid: Some(4242),
            log_path: Some("/tmp/jobs/7.log".into()),
            html_url: None,
            queued_at: Utc::now(),
            started_at: Some(Utc::now()),
            finished_at: None,
        };
        let engine = tokio::spawn(async move {
            let mut received = Vec::new();
            events.send(Event::Job(job.clone())).await.ok();
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
            let mut n = 0;
            loop {
                tokio::select! {
                    command = commands.recv() => {
                        let Some(command) = command else { break };
                        received.push(format!("{command:?}"));
                        std::fs::write(&record, received.join("\n")).expect("record");
                        match command {
                            Command::CancelJob(7) => {
                                job.state = JobState::Cancelled;
                                job.worker_pid = None;
                                job.finished_at = Some(Utc::now());
                                events.send(Event::Job(job.clone())).await.ok();
                            }
                            Command::Shutdown => {
                                let message = "shutting down: nothing running".to_string();
                                events.send(Event::ShuttingDown { message }).await.ok();
                                break;
                            }
                            _ => {}
                        }
                    }
                    _ = tick.tick(), if job.state == JobState::WorkerRunning => {
                        n += 1;
                        let lines = vec![OutputLine { stream: Stream::Stdout, text: format!("fake step {n}") }];
                        events.send(Event::WorkerOutput { job: 7, lines }).await.ok();
                    }
                }
            }
            // Dropping `events` here closes the dashboard's feed: the engine is done.
        });
        let handle = EngineHandle {
            events: events_rx,
            commands: commands_tx,
        };
        let setup = megascaler::tui::DashboardSetup {
            workers: Vec::new(),
            cancel_grace: std::time::Duration::from_secs(5),
        };
        megascaler::tui::run_dashboard(handle, setup)
            .await
            .expect("the dashboard ends cleanly");
        engine.await.expect("fake engine");
    });
}

#[test]
fn dashboard_loop_over_a_fake_engine() {
    let Some(tmux_bin) = tmux_binary() else {
        println!("skipped: tmux is not installed (not at {TMUX}, not on PATH)");
        return;
    };
    let record = std::env::temp_dir().join(format!(
        "megascaler-fake-engine-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let _cleanup = RemoveOnDrop(record.clone());
    let me = std::env::current_exe().expect("this test binary");
    let command = format!(
        "{FAKE_ENGINE_CHILD}='{}' '{}' --ignored --exact fake_engine_child_process --test-threads=1",
        record.display(),
        me.display()
    );
    let tmux = Tmux::start(tmux_bin, &command, 80, 24);
    let mut seen = Vec::new();
    tmux.wait_for(
        "the running job",
        |s| {
            job_rows(s, "long-run")
                .iter()
                .any(|r| r.contains("running"))
        },
        &mut seen,
    );
    tmux.keys(&["Enter"]);
    tmux.wait_for(
        "its output, followed",
        |s| {
            s.contains("following") && s.contains("fake step") && s.contains("log: /tmp/jobs/7.log")
        },
        &mut seen,
    );
    tmux.keys(&["c"]);
    tmux.wait_for("the confirmation", |s| s.contains("Cancel job?"), &mut seen);
    tmux.keys(&["y"]);
    tmux.wait_for(
        "the job cancelled",
        |s| {
            !s.contains("Cancel job?")
                && job_rows(s, "long-run")
                    .iter()
                    .any(|r| r.contains("cancelled"))
        },
        &mut seen,
    );
    tmux.keys(&["q"]);
    let deadline = Instant::now() + TIMEOUT;
    while tmux.exit_status().is_none() {
        assert!(
            Instant::now() < deadline,
            "the dashboard did not exit after q:\n{}",
            tmux.screen()
        );
        std::thread::sleep(POLL);
    }
    assert_eq!(tmux.exit_status().as_deref(), Some("0"), "exits 0");
    let commands = std::fs::read_to_string(&record).unwrap_or_default();
    let _ = std::fs::remove_file(&record);
    assert_eq!(
        commands, "CancelJob(7)\nShutdown",
        "the commands the engine got"
    );
}
