//! Commands through the engine handle (in-process engine, simulator, real sim-worker processes):
//! cancel, kill, pause/resume, REST cancel of a queued job, shutdown closing the event stream.

use megascaler::config::{EnvOverrides, parse};
use megascaler::engine::event::{Command, Event, JobId, JobState, JobView};
use megascaler::engine::supervisor::Escalation;
use megascaler::engine::{EngineOptions, start};
use megascaler::sim::{
    Assignment, JobSpec, JobStatus, SimConfig, SimHandle, Simulator, WorkerScript, endpoint,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

const BIN: &str = env!("CARGO_BIN_EXE_megascaler");

#[path = "serve_support/process_guard.rs"]
mod process_guard;

use process_guard::{ProcessGuard, RUN_MARKER};

struct Engine {
    jobs: Arc<Mutex<HashMap<JobId, JobView>>>,
    changed: Arc<Notify>,
    commands: mpsc::Sender<Command>,
    closed: Arc<Mutex<bool>>,
    /// The state directory (job logs under `jobs/`).
    dir: tempfile::TempDir,
    /// Kills the sim-workers the engine started if the test fails.
    _guard: ProcessGuard,
}

impl Engine {
    async fn wait(&self, what: &str, mut pred: impl FnMut(&HashMap<JobId, JobView>) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let notified = self.changed.notified();
            if pred(&self.jobs.lock().unwrap()) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "timed out waiting for {what}: {:#?}",
                    self.jobs.lock().unwrap()
                );
            }
        }
    }

    fn job_log(&self, id: JobId) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("jobs/{id}.log"))).unwrap_or_default()
    }

    async fn wait_state(&self, id: JobId, state: JobState) {
        self.wait(&format!("job {id} {state:?}"), |j| {
            j.get(&id).is_some_and(|v| v.state == state)
        })
        .await
    }
}

async fn sim() -> SimHandle {
    Simulator::start(SimConfig {
        assignment: Assignment::First,
        cancel_timeout: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

async fn engine(sim: &SimHandle) -> Engine {
    let dir = tempfile::tempdir().unwrap();
    let guard = ProcessGuard::new();
    let yaml = format!(
        "pat: {}\ngithub_url: {}\nrepositories: [o/r]\npoll_interval: 1s\nstate_dir: {}\ncancel_grace: 1s\nworker:\n- labels: [linux]\n  args: [{BIN}, sim-worker, --labels, linux]\n  env:\n    {RUN_MARKER}: {:?}\n",
        sim.pat(),
        sim.base_url(),
        dir.path().display(),
        guard.run
    );
    let config = parse("test", &yaml, &EnvOverrides::default()).unwrap();
    let options = EngineOptions {
        tick: Some(Duration::from_millis(200)),
        escalation: Some(Escalation {
            after_sigint: Duration::from_millis(300),
            after_sigterm: Duration::from_millis(300),
        }),
        ..EngineOptions::default()
    };
    let mut handle = start(config, options).await.unwrap();
    let jobs = Arc::new(Mutex::new(HashMap::new()));
    let changed = Arc::new(Notify::new());
    let closed = Arc::new(Mutex::new(false));
    let (j, c, cl) = (jobs.clone(), changed.clone(), closed.clone());
    tokio::spawn(async move {
        while let Some(ev) = handle.events.recv().await {
            if let Event::Job(v) = ev {
                j.lock().unwrap().insert(v.id, v);
                c.notify_waiters();
            }
        }
        *cl.lock().unwrap() = true;
        c.notify_waiters();
    });
    Engine {
        jobs,
        changed,
        commands: handle.commands,
        closed,
        dir,
        _guard: guard,
    }
}

fn long_job(sim: &SimHandle) -> JobId {
    let mut spec = JobSpec::new("o/r", &["linux"]);
    spec.script = WorkerScript {
        steps: 1000,
        step_millis: 100,
        ..Default::default()
    };
    sim.queue_job(spec)
}

async fn sim_job_done(sim: &SimHandle, id: u64) -> Option<String> {
    assert!(
        sim.wait_until(
            |s| s.job(id).is_some_and(|j| j.status == JobStatus::Completed),
            Duration::from_secs(120)
        )
        .await,
        "job {id} never completed at the simulator: {:?}",
        sim.job(id)
    );
    sim.job(id).and_then(|j| j.conclusion)
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_of_a_running_job_sends_cancel_request_and_the_job_ends_cancelled() {
    let sim = sim().await;
    let e = engine(&sim).await;
    let id = long_job(&sim);
    e.wait_state(id, JobState::WorkerRunning).await;
    e.commands.send(Command::CancelJob(id)).await.unwrap();
    assert_eq!(sim_job_done(&sim, id).await.as_deref(), Some("cancelled"));
    e.wait(&format!("job {id} final"), |j| {
        j.get(&id).is_some_and(|v| v.state.is_final())
    })
    .await;
    // Cancelled through the worker protocol, not by cancelling the run at GitHub.
    let c = sim.counters();
    assert_eq!(
        (
            c.get(endpoint::RUN_CANCEL),
            c.get(endpoint::RUN_FORCE_CANCEL)
        ),
        (0, 0),
        "no REST run cancel"
    );
    let log = e.job_log(id);
    assert!(
        log.contains("sim-worker: cancel request (type 2); stopping"),
        "the worker received the CancelRequest frame: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_ends_the_worker_now_and_megascaler_completes_the_job() {
    let sim = sim().await;
    let e = engine(&sim).await;
    let id = long_job(&sim);
    e.wait_state(id, JobState::WorkerRunning).await;
    e.commands.send(Command::KillWorker(id)).await.unwrap();
    e.wait_state(id, JobState::Cancelled).await;
    let reason = e.jobs.lock().unwrap()[&id]
        .reason
        .clone()
        .unwrap_or_default();
    assert!(reason.contains("killed by command"), "{reason}");
    assert_eq!(sim_job_done(&sim, id).await.as_deref(), Some("cancelled"));
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_intake_registers_nothing_and_cancel_of_a_queued_job_uses_rest() {
    let sim = sim().await;
    let e = engine(&sim).await;
    e.commands.send(Command::PauseIntake).await.unwrap();
    let id = sim.queue_job(JobSpec::new("o/r", &["linux"]));
    e.wait(&format!("job {id} waits because paused"), |j| {
        j.get(&id).is_some_and(|v| {
            v.state == JobState::WaitingForRunner && v.reason.as_deref() == Some("intake is paused")
        })
    })
    .await;
    assert!(sim.runners().is_empty(), "no runner while paused");
    e.commands.send(Command::CancelJob(id)).await.unwrap();
    assert_eq!(sim_job_done(&sim, id).await.as_deref(), Some("cancelled"));
    e.wait_state(id, JobState::Cancelled).await;
    assert_eq!(
        sim.counters().get(endpoint::RUN_CANCEL),
        1,
        "a queued job is cancelled by cancelling its run at GitHub"
    );
    // Resumed, a new job runs.
    e.commands.send(Command::ResumeIntake).await.unwrap();
    let next = sim.queue_job(JobSpec::new("o/r", &["linux"]));
    assert_eq!(sim_job_done(&sim, next).await.as_deref(), Some("success"));
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_cancels_running_workers_and_closes_the_event_stream() {
    let sim = sim().await;
    let e = engine(&sim).await;
    let id = long_job(&sim);
    e.wait_state(id, JobState::WorkerRunning).await;
    e.commands.send(Command::Shutdown).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let notified = e.changed.notified();
        if *e.closed.lock().unwrap() {
            break;
        }
        assert!(
            tokio::time::timeout_at(deadline, notified).await.is_ok(),
            "events never closed"
        );
    }
    assert_eq!(sim_job_done(&sim, id).await.as_deref(), Some("cancelled"));
    assert!(sim.runners().is_empty(), "{:?}", sim.runners());
}

#[tokio::test(flavor = "multi_thread")]
async fn redispatch_of_a_finished_job_reruns_it_and_the_new_attempt_runs() {
    let sim = sim().await;
    let e = engine(&sim).await;
    let id = sim.queue_job(JobSpec::new("o/r", &["linux"]));
    assert_eq!(sim_job_done(&sim, id).await.as_deref(), Some("success"));
    e.wait(&format!("job {id} final"), |j| {
        j.get(&id).is_some_and(|v| v.state.is_final())
    })
    .await;
    let run = sim.job(id).unwrap().run_id;
    e.commands.send(Command::Redispatch(id)).await.unwrap();
    assert!(
        sim.wait_until(
            |s| s.jobs().iter().any(|j| j.run_id == run
                && j.run_attempt == 2
                && j.status == JobStatus::Completed
                && j.conclusion.as_deref() == Some("success")),
            Duration::from_secs(120)
        )
        .await,
        "the re-run attempt never completed: {:?}",
        sim.jobs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn force_cancel_of_a_running_job_cancels_its_run() {
    let sim = sim().await;
    let e = engine(&sim).await;
    let id = long_job(&sim);
    e.wait_state(id, JobState::WorkerRunning).await;
    e.commands.send(Command::ForceCancelJob(id)).await.unwrap();
    assert_eq!(sim_job_done(&sim, id).await.as_deref(), Some("cancelled"));
    assert!(
        sim.counters().get(endpoint::RUN_FORCE_CANCEL) >= 1,
        "the run was force-cancelled at GitHub"
    );
    e.wait(&format!("job {id} final"), |j| {
        j.get(&id).is_some_and(|v| v.state.is_final())
    })
    .await;
}
