//! What the tmux-driven tests share: a private tmux server per test, screen polling, and the
//! process table, to prove nothing is left behind.
#![allow(dead_code)] // each test file uses a different part

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const TMUX: &str = "/usr/bin/tmux";
/// Generous: the machine is shared and the demo starts a simulator, an engine and workers.
pub const TIMEOUT: Duration = Duration::from_secs(120);
pub const POLL: Duration = Duration::from_millis(250);

/// One tmux server for this test; dropping it kills the server and everything in it.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A fresh tmux server with one session `demo` of the given size running `command`; the
    /// pane stays after the command exits, so its exit status can be read.
    pub fn start(command: &str, width: u16, height: u16) -> Tmux {
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

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(TMUX)
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "demo"])
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "demo"];
        args.extend(keys);
        self.ok(&args);
    }

    pub fn pane(&self, format: &str) -> String {
        self.ok(&["display-message", "-p", "-t", "demo", format])
            .trim()
            .to_string()
    }

    /// Polls the screen until `pred` holds; panics with the last screen on timeout.
    pub fn wait_for(&self, what: &str, mut pred: impl FnMut(&str) -> bool, seen: &mut Vec<Proc>) {
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

    pub fn pane_pid(&self) -> u32 {
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
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub sid: u32,
    pub start: u64,
}

/// A live process (zombies waiting for their parent do not count).
pub fn proc_of(pid: u32) -> Option<Proc> {
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

pub fn all_procs() -> Vec<Proc> {
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
pub fn family(leader: u32) -> Vec<Proc> {
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
pub fn alive(p: &Proc) -> bool {
    proc_of(p.pid).is_some_and(|now| now.start == p.start)
}

/// The rows of the jobs table that mention `needle`.
pub fn job_rows<'a>(screen: &'a str, needle: &str) -> Vec<&'a str> {
    screen.lines().filter(|l| l.contains(needle)).collect()
}
