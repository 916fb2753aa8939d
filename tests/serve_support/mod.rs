//! Shared by the end-to-end tests: a simulator, a config for it, and `megascaler serve` as a
//! child process that is killed if a test fails.

#![allow(dead_code)]

pub mod process_guard;
pub mod sshd;

pub use process_guard::{kill_marked, marked_processes};

use megascaler::sim::{Assignment, JobSpec, SimConfig, SimHandle, Simulator, WebhookTarget};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SECRET: &str = "e2e-webhook-secret";
pub const REPO: &str = "octo/e2e";
pub const BIN: &str = env!("CARGO_BIN_EXE_megascaler");

/// One `worker:` entry.
pub struct Worker {
    pub labels: Vec<String>,
    pub args: Vec<String>,
    pub allocate: Vec<String>,
    pub release: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Worker {
    /// `megascaler sim-worker --labels <labels>`: fails any job whose labels differ.
    pub fn sim(labels: &[&str]) -> Self {
        Worker {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            args: vec![
                BIN.into(),
                "sim-worker".into(),
                "--labels".into(),
                labels.join(","),
            ],
            allocate: vec![],
            release: vec![],
            env: vec![],
        }
    }
}

/// How serve is configured.
pub struct Setup {
    pub webhooks: bool,
    pub polling: bool,
    pub workers: Vec<Worker>,
    pub max_parallel: Option<usize>,
    pub extra_env: Vec<(String, String)>,
    /// serve's `RUST_LOG`.
    pub rust_log: String,
}

impl Setup {
    pub fn new(workers: Vec<Worker>) -> Self {
        Setup {
            webhooks: true,
            polling: true,
            workers,
            max_parallel: None,
            extra_env: vec![],
            rust_log: "info".into(),
        }
    }
}

pub use process_guard::RUN_MARKER;

/// A running `megascaler serve`. On drop (also when the test panics) serve and every process
/// carrying this test's [`RUN_MARKER`] are SIGKILLed: workers run in their own process groups
/// and some ignore signals, so killing serve alone would leave them.
pub struct Serve {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub stderr_path: PathBuf,
    pub stdout_path: PathBuf,
    /// `RUN_MARKER=<uuid>` as it appears in the marked processes' environment.
    pub marker: String,
}

impl Serve {
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Pids of live (not zombie) processes carrying this test's marker.
    pub fn marked_processes(&self) -> Vec<i32> {
        marked_processes(&self.marker)
    }

    /// Waits (at most `timeout`) for `condition` over serve's stderr; returns the last stderr
    /// and whether it held.
    pub async fn wait_for_stderr(
        &self,
        condition: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> (String, bool) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let log = self.stderr();
            if condition(&log) {
                return (log, true);
            }
            if std::time::Instant::now() > deadline {
                return (log, false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then asserts a graceful exit with status 0 within 60 s.
    pub async fn assert_clean_exit(&mut self) {
        let code = self
            .signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(60))
            .await;
        assert_eq!(
            code,
            Some(0),
            "serve did not exit cleanly:\n{}",
            self.stderr()
        );
    }

    /// Sends `sig` and waits for the exit status (code), at most `timeout`.
    pub async fn signal_and_wait(
        &mut self,
        sig: nix::sys::signal::Signal,
        timeout: Duration,
    ) -> Option<i32> {
        let child = self.child.as_mut()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, sig);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        kill_marked(&self.marker);
    }
}

pub async fn simulator(assignment: Assignment) -> SimHandle {
    simulator_with(SimConfig {
        assignment,
        ..SimConfig::default()
    })
    .await
}

/// A simulator with `cfg`, cancel timeout shortened for tests.
pub async fn simulator_with(cfg: SimConfig) -> SimHandle {
    let cfg = SimConfig {
        cancel_timeout: Duration::from_secs(1),
        ..cfg
    };
    Simulator::start(cfg).await.expect("simulator starts")
}

fn yaml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// Writes the config, starts serve, points the simulator's webhooks at it, waits until it listens.
pub async fn start_serve(sim: &SimHandle, setup: Setup) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let run = uuid::Uuid::new_v4().to_string();
    let marker = format!("{RUN_MARKER}={run}");
    let mut yaml = format!(
        "pat: {pat}\ngithub_url: {url}\nrepositories: [{REPO}]\nstate_dir: {state}\ncancel_grace: 1s\nidentify_timeout: 60s\n",
        pat = sim.pat(),
        url = sim.base_url(),
        state = dir.path().join("state").display()
    );
    if setup.webhooks {
        // Port 0: serve binds a free port itself and logs it (no port handed over between
        // processes for a parallel test to take).
        yaml.push_str(&format!("address: 127.0.0.1:0\nsecret: {SECRET}\n"));
    }
    if setup.polling {
        yaml.push_str("poll_interval: 1s\n");
    }
    if let Some(m) = setup.max_parallel {
        yaml.push_str(&format!("max_parallel: {m}\n"));
    }
    yaml.push_str("worker:\n");
    for w in &setup.workers {
        yaml.push_str(&format!(
            "- labels: {}\n  args: {}\n",
            yaml_list(&w.labels),
            yaml_list(&w.args)
        ));
        if !w.allocate.is_empty() {
            yaml.push_str(&format!("  allocate: {}\n", yaml_list(&w.allocate)));
        }
        if !w.release.is_empty() {
            yaml.push_str(&format!("  release: {}\n", yaml_list(&w.release)));
        }
        // Every worker, allocate and release process carries the marker for the drop guard.
        yaml.push_str(&format!("  env:\n    {RUN_MARKER}: {run:?}\n"));
        for (k, v) in &w.env {
            yaml.push_str(&format!("    {k}: {}\n", serde_json::to_string(v).unwrap()));
        }
    }
    let config = dir.path().join("config.yml");
    std::fs::write(&config, yaml).unwrap();
    let stderr_path = dir.path().join("serve.stderr");
    let stdout_path = dir.path().join("serve.stdout");
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("MEGASCALER_CANCEL_ESCALATION", "300ms,300ms")
        .env("RUST_LOG", &setup.rust_log)
        .env(RUN_MARKER, &run)
        .env_remove("MEGASCALER_PAT")
        .env_remove("MEGASCALER_WEBHOOK_SECRET")
        .envs(setup.extra_env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("serve starts");
    let serve = Serve {
        child: Some(child),
        dir,
        stderr_path,
        stdout_path,
        marker,
    };
    if setup.webhooks {
        let bound = |log: &str| -> Option<String> {
            let rest = log.split("webhook listener on http://").nth(1)?;
            Some(rest.split('/').next()?.to_string())
        };
        let (log, up) = serve
            .wait_for_stderr(|l| bound(l).is_some(), Duration::from_secs(60))
            .await;
        assert!(up, "serve never listened: {log}");
        let addr = bound(&log).unwrap_or_default();
        sim.set_webhook_target(Some(WebhookTarget {
            url: format!("http://{addr}/webhook").parse().unwrap(),
            secret: SECRET.into(),
        }));
    }
    serve
}

/// Queues `n` jobs cycling over `label_sets`; returns their ids and labels.
pub fn queue(
    sim: &SimHandle,
    n: usize,
    label_sets: &[&[&str]],
    script: Option<megascaler::sim::WorkerScript>,
) -> Vec<(u64, Vec<String>)> {
    (0..n)
        .map(|i| {
            let labels = label_sets[i % label_sets.len()];
            let mut spec = JobSpec::new(REPO, labels);
            spec.job_name = format!("job-{i}");
            spec.script = script
                .clone()
                .unwrap_or_else(|| megascaler::sim::WorkerScript {
                    steps: 2,
                    step_millis: 50,
                    ..Default::default()
                });
            (
                sim.queue_job(spec),
                labels.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

/// Waits until every job completed and no runner is registered; panics with context otherwise.
pub async fn all_done(sim: &SimHandle, serve: &Serve, ids: &[u64], timeout: Duration) {
    let ok = sim
        .wait_until(
            |s| {
                ids.iter().all(|id| {
                    s.job(*id)
                        .is_some_and(|j| j.status == megascaler::sim::JobStatus::Completed)
                }) && s.runners().is_empty()
            },
            timeout,
        )
        .await;
    if !ok {
        let pending: Vec<_> = sim
            .jobs()
            .into_iter()
            .filter(|j| j.status != megascaler::sim::JobStatus::Completed)
            .map(|j| (j.id, j.labels, j.status, j.offered_to))
            .collect();
        let stderr = serve.stderr();
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        panic!(
            "not done: pending {pending:?}\nrunners {:?}\nviolations {:?}\nserve log tail:\n{}",
            sim.runners(),
            sim.violations(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
