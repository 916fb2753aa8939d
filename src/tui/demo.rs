//! `megascaler demo`: the dashboard over the real engine, against the embedded simulated
//! GitHub, with the simulator's worker. No credentials, no network beyond loopback.
//!
//! Owns the demo's built-in configuration (several label sets, webhooks and polling, a state
//! directory in the temp dir) and its story: a steady stream of jobs, one that lands on the
//! wrong runner, one no worker matches, one whose worker crashes, and one long enough to
//! cancel. It must not reach beyond 127.0.0.1 nor read the person's own configuration or
//! credentials (environment overrides are ignored on purpose).

use crate::config::{self, Config, EnvOverrides};
use crate::logging::{self, LogTarget};
use crate::sim::{
    Assignment, JobSpec, SimConfig, SimHandle, Simulator, WebhookTarget, WorkerScript,
};
use crate::tui::{DashboardSetup, run_dashboard};
use anyhow::Context as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use url::Url;

/// Labels of the worker entries of the demo's configuration.
pub const LINUX: &[&str] = &["self-hosted", "linux"];
pub const GPU: &[&str] = &["self-hosted", "linux", "gpu"];
pub const MACOS: &[&str] = &["self-hosted", "macos", "arm64"];
/// Labels no worker entry serves.
pub const WINDOWS: &[&str] = &["self-hosted", "windows"];

/// The repositories the demo's jobs come from (and that the engine polls).
pub const REPOSITORIES: &[&str] = &["acme/widgets", "acme/gadgets"];

/// Name of the Linux job the demo hands to a GPU runner (the wrong-runner case).
pub const DETOUR_JOB: &str = "lint";

/// Name of the job the demo invites you to cancel.
pub const LONG_JOB: &str = "long-running (cancel me)";

/// One job of the demo's story, before it becomes a simulator job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoJob {
    pub repository: &'static str,
    pub workflow: &'static str,
    pub job: &'static str,
    pub labels: &'static [&'static str],
    pub steps: u32,
    pub step_millis: u64,
    /// `success` or `failure`, as the worker reports it.
    pub conclusion: &'static str,
    /// The worker exits non-zero without reporting.
    pub crash: bool,
}

const fn job(
    repository: &'static str,
    workflow: &'static str,
    job: &'static str,
    labels: &'static [&'static str],
    steps: u32,
    step_millis: u64,
) -> DemoJob {
    DemoJob {
        repository,
        workflow,
        job,
        labels,
        steps,
        step_millis,
        conclusion: "success",
        crash: false,
    }
}

/// The jobs queued when the demo starts, in order. The `lint` job ([`DETOUR_JOB`]) waits for
/// the GPU job's runner and is handed to it (see `send_to_a_gpu_runner`): the wrong-runner case
/// that late binding repairs.
pub fn opening() -> Vec<DemoJob> {
    vec![
        job("acme/widgets", "CI", LONG_JOB, LINUX, 900, 1_000),
        job("acme/widgets", "CI", "build", LINUX, 12, 700),
        job("acme/gadgets", "CI", "lint", LINUX, 6, 600),
        job("acme/gadgets", "GPU", "train", GPU, 15, 800),
        job(
            "acme/gadgets",
            "Release",
            "windows-package",
            WINDOWS,
            3,
            500,
        ),
        DemoJob {
            crash: true,
            ..job("acme/widgets", "CI", "flaky-integration", LINUX, 5, 600)
        },
        job("acme/gadgets", "CI", "macos-test", MACOS, 10, 500),
    ]
}

/// The `n`th job of the steady stream that follows: a fixed rotation, so every run of the
/// demo tells the same story; every seventh one fails.
pub fn steady(n: u64) -> DemoJob {
    const ROTATION: &[DemoJob] = &[
        job("acme/widgets", "CI", "test", LINUX, 8, 500),
        job("acme/gadgets", "CI", "build", LINUX, 6, 600),
        job("acme/widgets", "Docs", "publish", LINUX, 4, 400),
        job("acme/gadgets", "GPU", "benchmark", GPU, 9, 500),
        job("acme/widgets", "CI", "macos-build", MACOS, 7, 500),
    ];
    let base = ROTATION[(n as usize) % ROTATION.len()].clone();
    let steps = base.steps + (n % 4) as u32;
    if n % 7 == 6 {
        DemoJob {
            conclusion: "failure",
            steps,
            ..base
        }
    } else {
        DemoJob { steps, ..base }
    }
}

/// What the demo's configuration is made of, known only once the simulator runs. No `Debug`:
/// it holds the simulator's PAT and the listener's webhook secret.
#[derive(Clone)]
pub struct DemoSetup<'a> {
    /// The simulator's base URL (GHES-style; the REST root is `/api/v3`).
    pub github_url: &'a str,
    pub pat: &'a str,
    pub state_dir: &'a Path,
    /// Where the engine listens for the simulator's webhooks.
    pub webhook_address: SocketAddr,
    pub webhook_secret: &'a str,
    /// This executable: workers run `<exe> sim-worker`.
    pub exe: &'a Path,
}

/// The demo's configuration, through the same parser and validation as a file.
pub fn demo_config(setup: &DemoSetup<'_>) -> anyhow::Result<Config> {
    let exe = setup.exe.display().to_string();
    let worker = |labels: &[&str]| {
        serde_json::json!({
            "labels": labels,
            "args": [exe, "sim-worker"],
        })
    };
    let doc = serde_json::json!({
        "github_url": setup.github_url,
        "pat": setup.pat,
        "address": setup.webhook_address.to_string(),
        "secret": setup.webhook_secret,
        "repositories": REPOSITORIES,
        "poll_interval": "5s",
        "state_dir": setup.state_dir.display().to_string(),
        "max_parallel": 6,
        "cancel_grace": "5s",
        "runner_name_prefix": "demo-",
        "worker": [worker(LINUX), worker(GPU), worker(MACOS)],
    });
    let text = serde_yaml::to_string(&doc)?;
    // No environment overrides: the demo must never use the person's own PAT or secret.
    Ok(config::parse("demo", &text, &EnvOverrides::default())?)
}

/// Time between two jobs of the steady stream.
const STREAM_PERIOD: Duration = Duration::from_secs(4);

impl DemoJob {
    fn spec(&self) -> JobSpec {
        JobSpec {
            workflow_name: self.workflow.to_string(),
            job_name: self.job.to_string(),
            script: WorkerScript {
                steps: self.steps,
                step_millis: self.step_millis,
                conclusion: self.conclusion.to_string(),
                crash: self.crash,
                hang_on_cancel: false,
                ..WorkerScript::default()
            },
            ..JobSpec::new(self.repository, self.labels)
        }
    }
}

/// Queues the opening jobs, then one job every [`STREAM_PERIOD`], until aborted.
async fn tell_the_story(sim: SimHandle) {
    let mut detour = None;
    for job in opening() {
        if job.job == DETOUR_JOB {
            detour = Some(job);
            continue;
        }
        let id = sim.queue_job(job.spec());
        tracing::info!(id, job = job.job, "demo: queued");
    }
    if let Some(job) = detour {
        send_to_a_gpu_runner(&sim, &job).await;
    }
    let mut ticks = tokio::time::interval(STREAM_PERIOD);
    ticks.tick().await;
    for n in 0.. {
        ticks.tick().await;
        let job = steady(n);
        let id = sim.queue_job(job.spec());
        tracing::debug!(id, job = job.job, "demo: queued");
    }
}

/// Queues `job` (a Linux job) the moment a GPU runner registered for another job exists, and
/// hands it to that runner: GitHub's rule allows it (the runner's labels cover the job's), and
/// it is exactly what GitHub does when it picks "any" idle runner. The dashboard then shows the
/// job on another job's runner, bound by megascaler to the Linux worker, and a new runner
/// registered for the GPU job that lost its runner. If the GPU runner is already busy, the
/// job is simply queued.
async fn send_to_a_gpu_runner(sim: &SimHandle, job: &DemoJob) {
    let gpu_runner = |s: &SimHandle| {
        s.runners()
            .into_iter()
            .find(|r| !r.had_job && r.labels.iter().any(|l| l.eq_ignore_ascii_case("gpu")))
            .map(|r| r.name)
    };
    let mut name = None;
    sim.wait_until(
        |s| {
            name = gpu_runner(s);
            name.is_some()
        },
        Duration::from_secs(60),
    )
    .await;
    let id = sim.queue_job(job.spec());
    let offered = name.is_some_and(|name| sim.offer_job_to(id, &name));
    tracing::info!(id, job = job.job, offered, "demo: queued for a GPU runner");
}

/// A free loopback port for the engine's webhook listener.
fn free_loopback_address() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot find a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?)
}

/// Runs the demo: simulator, engine, story and dashboard; cleans up after itself.
pub async fn run() -> anyhow::Result<()> {
    // Unique per run, so a stale directory of an earlier process with the same pid is never
    // reused (or removed).
    let state_dir = std::env::temp_dir().join(format!(
        "megascaler-demo-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let log_guard = logging::init(LogTarget::FileOnly, Some(&state_dir))?;
    let result = run_in(&state_dir).await;
    drop(log_guard);
    match &result {
        // Nothing to keep from a demo that went well.
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&state_dir);
        }
        // Not `eprintln!`: it panics when the terminal is gone.
        Err(_) => {
            let _ = writeln!(
                std::io::stderr(),
                "megascaler demo: logs and worker output are in {}",
                state_dir.display()
            );
        }
    }
    result
}

async fn run_in(state_dir: &Path) -> anyhow::Result<()> {
    let webhook_address = free_loopback_address()?;
    let webhook_secret = uuid::Uuid::new_v4().simple().to_string();
    let sim = Simulator::start(SimConfig {
        assignment: Assignment::MostLabels,
        long_poll_hold: Duration::from_secs(5),
        webhook: Some(WebhookTarget {
            url: Url::parse(&format!("http://{webhook_address}/webhook"))?,
            secret: webhook_secret.clone(),
        }),
        ..SimConfig::default()
    })
    .await
    .context("cannot start the simulated GitHub")?;
    tracing::info!(url = %sim.base_url(), "demo: simulator started");
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let github_url = sim.base_url().to_string();
    let config = demo_config(&DemoSetup {
        github_url: &github_url,
        pat: sim.pat(),
        state_dir,
        webhook_address,
        webhook_secret: &webhook_secret,
        exe: &exe,
    })?;
    let setup = DashboardSetup::from_config(&config);
    let result = match super::start_engine(config).await {
        Ok(handle) => {
            let story = tokio::spawn(tell_the_story(sim.clone()));
            let result = run_dashboard(handle, setup).await;
            story.abort();
            result
        }
        Err(e) => Err(e),
    };
    sim.shutdown();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::matching::match_job;

    fn setup_config() -> Config {
        let dir = std::env::temp_dir();
        let exe = Path::new("/usr/bin/megascaler");
        demo_config(&DemoSetup {
            github_url: "http://127.0.0.1:4321",
            pat: "ghp_simulated",
            state_dir: &dir,
            webhook_address: "127.0.0.1:5432".parse().unwrap(),
            webhook_secret: "s3cret",
            exe,
        })
        .expect("the demo's configuration is valid")
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_configuration_points_at_loopback_with_three_label_sets() {
        let c = setup_config();
        assert_eq!(c.github_url.host_str(), Some("127.0.0.1"));
        assert_eq!(c.workers.len(), 3);
        assert_eq!(c.workers[0].args, ["/usr/bin/megascaler", "sim-worker"]);
        assert!(c.address.is_some_and(|a| a.ip().is_loopback()));
        assert!(c.poll_interval.is_some());
        assert_eq!(c.repositories.len(), 2);
    }

    #[test]
    fn the_story_has_each_case_the_issue_asks_for() {
        let c = setup_config();
        let opening = opening();
        let unmatched: Vec<_> = opening
            .iter()
            .filter(|j| match_job(&c.workers, &labels(j.labels)).entry().is_none())
            .collect();
        assert_eq!(unmatched.len(), 1, "exactly one job no worker matches");
        assert!(opening.iter().any(|j| j.crash), "one worker fails");
        let long = opening
            .iter()
            .find(|j| j.job == LONG_JOB)
            .expect("a long job");
        assert!(
            u64::from(long.steps) * long.step_millis >= 600_000,
            "long enough to cancel"
        );
        let detour = opening
            .iter()
            .find(|j| j.job == DETOUR_JOB)
            .expect("detour");
        let gpu = opening.iter().find(|j| j.labels == GPU).expect("a GPU job");
        assert_eq!(detour.labels, LINUX, "a Linux job a GPU runner can take");
        assert_eq!(
            detour.repository, gpu.repository,
            "in the GPU runner's scope"
        );
    }

    #[test]
    fn the_steady_stream_is_served_and_sometimes_fails() {
        let c = setup_config();
        let stream: Vec<DemoJob> = (0..14).map(steady).collect();
        assert!(
            stream
                .iter()
                .all(|j| match_job(&c.workers, &labels(j.labels)).entry().is_some())
        );
        assert_eq!(
            stream.iter().filter(|j| j.conclusion == "failure").count(),
            2
        );
    }
}
