//! Finds and kills every process a test started, by a marker in their environment: workers run
//! in their own process groups and some ignore signals, so killing the direct child is not
//! enough when a test fails.

#![allow(dead_code)]

use std::time::Duration;

/// The environment variable that marks every process a test started (serve, its workers,
/// allocate/release commands and their children), so the drop guard can find them all.
pub const RUN_MARKER: &str = "MEGASCALER_TEST_RUN";

/// A unique marker; on drop (also on panic) every process carrying it is SIGKILLed.
pub struct ProcessGuard {
    /// The value of [`RUN_MARKER`].
    pub run: String,
}

impl ProcessGuard {
    pub fn new() -> Self {
        ProcessGuard {
            run: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The `(RUN_MARKER, run)` pair to put into a child's environment.
    pub fn env(&self) -> (String, String) {
        (RUN_MARKER.to_string(), self.run.clone())
    }

    /// `RUN_MARKER=run` as it appears in /proc/<pid>/environ.
    pub fn marker(&self) -> String {
        format!("{RUN_MARKER}={}", self.run)
    }

    /// Live marked processes.
    pub fn processes(&self) -> Vec<i32> {
        marked_processes(&self.marker())
    }
}

impl Default for ProcessGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        kill_marked(&self.marker());
    }
}

/// Pids of live processes whose environment holds `marker` (`NAME=value`), from /proc.
pub fn marked_processes(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let needle = marker.as_bytes();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if !environ.split(|b| *b == 0).any(|v| v == needle) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILLs every process carrying `marker`, rescanning until none is left (a dying worker
/// may have forked) or a few seconds passed.
pub fn kill_marked(marker: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let pids = marked_processes(marker);
        if pids.is_empty() || std::time::Instant::now() > deadline {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
