//! What the tmux-driven tests share: a private tmux server per test, screen polling, and the
//! process table, to prove nothing is left behind.
#![allow(dead_code)] // each test file uses a different part

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where tmux usually is; otherwise it is looked up on `PATH`.
pub const TMUX: &str = "/usr/bin/tmux";

/// The tmux binary, or `None` when it is not installed. In CI (`CI` set) a missing tmux is a
/// failure, not a skip: `.ci/run` installs it.
pub fn tmux_binary() -> Option<PathBuf> {
    let found = std::iter::once(PathBuf::from(TMUX))
        .chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|dir| dir.join("tmux")),
        )
        .find(|p| p.is_file());
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("tmux is not installed, and CI must run the tmux tests");
    }
    found
}
/// Generous: the machine is shared and the demo starts a simulator, an engine and workers.
pub const TIMEOUT: Duration = Duration::from_secs(120);
pub const POLL: Duration = Duration::from_millis(250);

/// One tmux server for this test; dropping it kills the server, and every process it saw the
/// pane start, so a failing test leaves nothing behind either.
pub struct Tmux {
    binary: PathBuf,
    socket: String,
    /// The pane's processes seen while polling.
    seen: RefCell<Vec<Proc>>,
    /// Where the pane's shell writes the command's exit status (tmux's own
    /// `pane_dead_status` is sometimes never set on a loaded machine).
    status_file: PathBuf,
}

impl Tmux {
    /// A fresh tmux server with one session `demo` of the given size running `command` in a
    /// shell that then records its exit status (see [`Tmux::exit_status`]).
    pub fn start(binary: PathBuf, command: &str, width: u16, height: u16) -> Tmux {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let socket = format!("megascaler-test-{}-{nanos}", std::process::id());
        let status_file = std::env::temp_dir().join(format!("{socket}.status"));
        let tmux = Tmux {
            binary,
            socket,
            seen: RefCell::new(Vec::new()),
            status_file,
        };
        let command = format!("{command}; echo $? > '{}'", tmux.status_file.display());
        let command = command.as_str();
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
        Command::new(&self.binary)
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
            let family = family(self.pane_pid());
            self.record(&family);
            seen.extend(family);
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

    /// The command's exit status once it exited.
    pub fn exit_status(&self) -> Option<String> {
        std::fs::read_to_string(&self.status_file)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Records the pane's processes, for the checks and for the drop guard.
    pub fn record(&self, procs: &[Proc]) {
        self.seen.borrow_mut().extend_from_slice(procs);
    }

    fn pane_pid_quiet(&self) -> Option<u32> {
        let out = self.run(&["display-message", "-p", "-t", "demo", "#{pane_pid}"]);
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.status_file);
        let leader = self.pane_pid_quiet();
        let _ = Command::new(&self.binary)
            .args(["-L", &self.socket, "kill-server"])
            .output();
        // tmux may leave the socket file of a killed server behind.
        let uid = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata("/proc/self").unwrap_or_else(|_| std::fs::metadata("/").expect("/")),
        );
        let dir = std::env::var_os("TMUX_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let _ = std::fs::remove_file(dir.join(format!("tmux-{uid}")).join(&self.socket));
        // A pane process that hangs in its shutdown, and workers in their own process groups,
        // would outlive the server: kill every process group seen, if it still runs.
        let mut procs = self.seen.borrow().clone();
        if let Some(leader) = leader {
            procs.extend(family(leader));
        }
        let own_group = nix::unistd::getpgrp().as_raw() as u32;
        for p in procs
            .iter()
            .filter(|p| alive(p) && p.pgid > 1 && p.pgid != own_group)
        {
            let pgid = nix::unistd::Pid::from_raw(p.pgid as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A process as /proc shows it: pid, parent, session, start time (to tell a reused pid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
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
        pgid: f.get(2)?.parse().ok()?,
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

/// Removes a file or directory when dropped, so a failing test leaves no litter either.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}
