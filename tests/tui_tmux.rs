//! `megascaler demo` in a real terminal (tmux, 120x40): jobs appear, a running job's output
//! shows its lines, `c` and the confirmation cancel it, `q` quits, and no process is left.
//!
//! Each run uses its own tmux server (`tmux -L <unique>`), killed by a drop guard whatever
//! happens. Skipped, with the reason printed, only when tmux is not installed.

mod tui_support;

use std::time::Instant;
use tui_support::{
    POLL, Proc, TIMEOUT, TMUX, Tmux, alive, all_procs, family, job_rows, tmux_binary,
};

#[test]
fn demo_in_tmux_shows_output_cancels_a_job_and_quits_cleanly() {
    let Some(tmux_bin) = tmux_binary() else {
        println!("skipped: tmux is not installed (not at {TMUX}, not on PATH)");
        return;
    };
    let exe = env!("CARGO_BIN_EXE_megascaler");
    let tmux = Tmux::start(tmux_bin, &format!("'{exe}' demo"), 120, 40);
    let leader = tmux.pane_pid();
    assert!(leader > 0, "the pane has a process");
    let mut seen = family(leader);

    tmux.wait_for(
        "jobs in the table",
        |s| {
            s.contains("Jobs ─")
                && s.lines()
                    .any(|l| l.starts_with("┃running") || l.starts_with("│running"))
        },
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
                    // An output line inside the (focused, thick) border: `┃ │text…`.
                    l.strip_prefix("┃ │")
                        .is_some_and(|rest| rest.contains("step"))
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
        if tmux.exit_status().is_some() {
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
        tmux.exit_status().as_deref(),
        Some("0"),
        "the demo exits with status 0"
    );
    // The pane's shell wrote the status; let it end too before looking for stragglers.
    let deadline = Instant::now() + TIMEOUT;
    while tmux.pane("#{pane_dead}") != "1" && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
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
