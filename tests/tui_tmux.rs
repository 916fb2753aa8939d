//! `megascaler demo` in a real terminal (tmux, 120x40): jobs appear, a running job's output
//! shows its lines, `c` and the confirmation cancel it, `q` quits, and no process is left.
//!
//! Each run uses its own tmux server (`tmux -L <unique>`), killed by a drop guard whatever
//! happens. Skipped, with the reason printed, only when tmux is not installed.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TMUX: &str = "/usr/bin/tmux";
/// Generous: the machine is shared and the demo starts a simulator, an engine and workers.
const TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(250);

/// One tmux server for this test; dropping it kills the server and everything in it.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A fresh tmux server with one session `demo` of the given size running `command`; the
    /// pane stays after the command exits, so its exit status can be read.
    fn start(command: &str, width: u16, height: u16) -> Tmux {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let tmux = Tmux {
            socket: format!("megascaler-test-{}-{nanos}", std::process::id()),
        };
        let (w, h) = (width.to_string(), height.to_string());
        tmux.ok(&[
            "new-session",
            "-d",
            "-s",
            "demo",
            "-x",
            &w,
            "-y",
            &h,
            command,
        ]);
        tmux.ok(&["set-option", "-t", "demo", "remain-on-exit", "on"]);
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(TMUX)
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "demo"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "demo"];
        args.extend(keys);
        self.ok(&args);
    }

    fn pane(&self, format: &str) -> String {
        self.ok(&["display-message", "-p", "-t", "demo", format])
            .trim()
            .to_string()
    }

    /// Polls the screen until `pred` holds; panics with the last screen on timeout.
    fn wait_for(&self, what: &str, mut pred: impl FnMut(&str) -> bool, seen: &mut Vec<Proc>) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let screen = self.screen();
            seen.extend(family(self.pane_pid()));
            if pred(&screen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen was:\n{screen}"
            );
            std::thread::sleep(POLL);
        }
    }

    fn pane_pid(&self) -> u32 {
        self.pane("#{pane_pid}").parse().unwrap_or(0)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new(TMUX)
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// A process as /proc shows it: pid, parent, session, start time (to tell a reused pid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: u32,
    ppid: u32,
    sid: u32,
    start: u64,
}

/// A live process (zombies waiting for their parent do not count).
fn proc_of(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.first() == Some(&"Z") {
        return None;
    }
    Some(Proc {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        sid: f.get(3)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

fn all_procs() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .filter_map(proc_of)
        .collect()
}

/// The pane's process and everything it started: its session (workers get their own process
/// group but stay in it) and its descendants (in case one started a session of its own).
fn family(leader: u32) -> Vec<Proc> {
    let procs = all_procs();
    let mut members: Vec<Proc> = procs
        .iter()
        .filter(|p| p.sid == leader || p.pid == leader)
        .copied()
        .collect();
    let mut i = 0;
    while i < members.len() {
        let parent = members[i].pid;
        for p in &procs {
            if p.ppid == parent && !members.contains(p) {
                members.push(*p);
            }
        }
        i += 1;
    }
    members
}

/// True if the very same process (pid and start time) still runs.
fn alive(p: &Proc) -> bool {
    proc_of(p.pid).is_some_and(|now| now.start == p.start)
}

/// The rows of the jobs table that mention `needle`.
fn job_rows<'a>(screen: &'a str, needle: &str) -> Vec<&'a str> {
    screen.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn demo_in_tmux_shows_output_cancels_a_job_and_quits_cleanly() {
    if !Path::new(TMUX).exists() {
        println!("skipped: tmux is not installed at {TMUX}");
        return;
    }
    let exe = env!("CARGO_BIN_EXE_megascaler");
    let tmux = Tmux::start(&format!("exec '{exe}' demo"), 120, 40);
    let leader = tmux.pane_pid();
    assert!(leader > 0, "the pane has a process");
    let mut seen = family(leader);

    tmux.wait_for(
        "jobs in the table",
        |s| s.contains("Jobs ─") && s.contains("running"),
        &mut seen,
    );

    // The demo's long job is the one to cancel; the filter makes it the only row.
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "cancel me"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for(
        "the long job running",
        |s| {
            job_rows(s, "long-run")
                .iter()
                .any(|r| r.contains("running"))
        },
        &mut seen,
    );

    tmux.keys(&["Enter"]);
    tmux.wait_for(
        "the long job's output lines",
        |s| {
            s.contains("following")
                && s.lines().any(|l| {
                    l.strip_prefix("│ │")
                        .is_some_and(|rest| !rest.trim_matches(['│', ' ']).is_empty())
                })
        },
        &mut seen,
    );
    assert!(
        tmux.screen().contains("log: /"),
        "the log file's path is shown"
    );

    tmux.keys(&["c"]);
    tmux.wait_for(
        "the confirmation dialog",
        |s| s.contains("Cancel job?") && s.contains("long-running"),
        &mut seen,
    );
    tmux.keys(&["y"]);
    tmux.wait_for(
        "the long job cancelled",
        |s| {
            !s.contains("Cancel job?")
                && job_rows(s, "long-run")
                    .iter()
                    .any(|r| r.contains("cancelled"))
        },
        &mut seen,
    );

    tmux.keys(&["q"]);
    // Other demo jobs may still run: then the quit dialog says so and asks.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if tmux.pane("#{pane_dead}") == "1" {
            break;
        }
        let screen = tmux.screen();
        if screen.contains("Quit megascaler?") {
            assert!(screen.contains("still running"), "{screen}");
            tmux.keys(&["y"]);
        }
        seen.extend(family(leader));
        assert!(
            Instant::now() < deadline,
            "the demo did not exit after q; the screen was:\n{screen}"
        );
        std::thread::sleep(POLL);
    }
    assert_eq!(
        tmux.pane("#{pane_dead_status}"),
        "0",
        "the demo exits with status 0"
    );
    seen.sort_unstable();
    seen.dedup();
    assert!(seen.len() > 1, "the demo started workers: {seen:?}");
    let left: Vec<Proc> = seen.into_iter().filter(alive).collect();
    let stragglers: Vec<Proc> = all_procs()
        .into_iter()
        .filter(|p| p.sid == leader)
        .collect();
    assert!(
        left.is_empty() && stragglers.is_empty(),
        "processes left behind: {left:?} {stragglers:?}"
    );
}

/// Set in the environment of the child process of
/// [`a_panic_restores_the_terminal_logs_and_exits_non_zero`].
const PANIC_CHILD: &str = "MEGASCALER_TEST_PANIC_CHILD_LOG_DIR";

/// Not a test of its own: the child process of the panic test below (this test binary runs
/// itself with only this test selected). Without the variable it has nothing to do.
#[test]
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
    if !Path::new(TMUX).exists() {
        println!("skipped: tmux is not installed at {TMUX}");
        return;
    }
    let logs = std::env::temp_dir().join(format!("megascaler-panic-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&logs);
    let me = std::env::current_exe().expect("this test binary");
    // The shell reports the exit status and whether the terminal is back in canonical mode.
    let command = format!(
        "{PANIC_CHILD}='{}' '{}' --exact panic_child_process --nocapture --test-threads=1; \
         echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -- '-*icanon'; sleep 600",
        logs.display(),
        me.display()
    );
    let tmux = Tmux::start(&command, 100, 30);
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

/// Not a test of its own: the child process of the fake-engine test below. It runs the real
/// dashboard loop over an engine made of two channels and a small script: one running job
/// that prints a line every 100 ms, cancelled on `CancelJob`, closing on `Shutdown`.
#[test]
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
    if !Path::new(TMUX).exists() {
        println!("skipped: tmux is not installed at {TMUX}");
        return;
    }
    let record = std::env::temp_dir().join(format!(
        "megascaler-fake-engine-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let me = std::env::current_exe().expect("this test binary");
    let command = format!(
        "{FAKE_ENGINE_CHILD}='{}' exec '{}' --exact fake_engine_child_process --test-threads=1",
        record.display(),
        me.display()
    );
    let tmux = Tmux::start(&command, 80, 24);
    let mut seen = Vec::new();
    tmux.wait_for("the running job", |s| s.contains("running"), &mut seen);
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
    while tmux.pane("#{pane_dead}") != "1" {
        assert!(
            Instant::now() < deadline,
            "the dashboard did not exit after q:\n{}",
            tmux.screen()
        );
        std::thread::sleep(POLL);
    }
    assert_eq!(tmux.pane("#{pane_dead_status}"), "0", "exits 0");
    let commands = std::fs::read_to_string(&record).unwrap_or_default();
    let _ = std::fs::remove_file(&record);
    assert_eq!(
        commands, "CancelJob(7)\nShutdown",
        "the commands the engine got"
    );
}
