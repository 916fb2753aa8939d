//! The driver: the only place the engine's decisions become IO.
//!
//! Owns the loop that feeds every [`Input`] (intake, runner events, worker reports, commands,
//! ticks) to the [`Dispatcher`] and performs the [`Effect`]s it returns: start and stop
//! runners, start and signal workers, REST calls, events to the consumer. It decides nothing.

use crate::config::RepoName;
use crate::config::WorkerEntry;
use crate::engine::dispatch::{Dispatcher, Effect, Input, RestCall, WorkerStart};
use crate::engine::event::{Command, Event, IntakeStatus, JobId, RestBudget, ScopeTokens};
use crate::engine::intake::IntakeCounters;
use crate::engine::intake::poller::OpenJobs;
use crate::engine::supervisor::{self, Escalation, OutputSink, WorkerControl, WorkerSpec};
use crate::github::{GitHubClient, Scope};
use crate::protocol::api::{RunnerCommand, RunnerEnvelope, RunnerEvent, RunnerRequest};
use crate::secret::Secret;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use url::Url;

/// Starts runner tasks. Production: the runner protocol; tests: a fake.
pub trait RunnerLauncher: Send + Sync + 'static {
    /// Starts a runner for `request`. Its events go to the channel the launcher was built with,
    /// tagged with `request.name`; the returned sender takes its commands.
    fn launch(&mut self, request: RunnerRequest) -> Result<mpsc::Sender<RunnerCommand>, String>;

    /// Cached credentials per scope, when the launcher has any.
    fn tokens(&self) -> Option<Vec<ScopeTokens>> {
        None
    }
}

/// Everything the driver holds.
pub struct Driver {
    pub dispatcher: Dispatcher,
    pub launcher: Box<dyn RunnerLauncher>,
    pub runner_events: mpsc::Receiver<RunnerEnvelope>,
    pub inputs_tx: mpsc::Sender<Input>,
    pub inputs: mpsc::Receiver<Input>,
    pub commands: mpsc::Receiver<Command>,
    pub events: mpsc::Sender<Event>,
    pub github: Arc<GitHubClient>,
    pub github_url: Url,
    pub workers: Vec<WorkerEntry>,
    pub state_dir: PathBuf,
    /// Credentials a worker's environment must never contain.
    pub credentials: Vec<Secret>,
    pub escalation: Escalation,
    pub tick: Duration,
    /// How long a shutdown may take before remaining workers are killed.
    pub shutdown_deadline: Duration,
    pub counters: Arc<IntakeCounters>,
    pub open_jobs: watch::Sender<OpenJobs>,
    /// Cancelled when the driver ends, so intake stops.
    pub stop_intake: CancellationToken,
}

struct Live {
    runners: HashMap<String, mpsc::Sender<RunnerCommand>>,
    workers: HashMap<JobId, mpsc::Sender<WorkerControl>>,
    sink: OutputSink,
    last_intake: IntakeStatus,
    last_budget: RestBudget,
    last_tokens: Vec<ScopeTokens>,
}

impl Driver {
    /// Runs until a shutdown completes.
    pub async fn run(mut self) {
        let mut live = Live {
            runners: HashMap::new(),
            workers: HashMap::new(),
            sink: OutputSink {
                events: self.events.clone(),
                dropped: Arc::new(AtomicU64::new(0)),
            },
            last_intake: IntakeStatus::default(),
            last_budget: RestBudget::default(),
            last_tokens: Vec::new(),
        };
        let mut tick = tokio::time::interval(self.tick);
        let mut commands_open = true;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let input = tokio::select! {
                Some(i) = self.inputs.recv() => i,
                Some(e) = self.runner_events.recv() => Input::Runner(e),
                c = self.commands.recv(), if commands_open => match c {
                    Some(c) => Input::Command(c),
                    None => { commands_open = false; continue; }
                },
                _ = tick.tick() => {
                    self.publish_status(&mut live).await;
                    Input::Tick
                }
            };
            if let Input::Command(Command::Shutdown) = &input {
                deadline.get_or_insert(tokio::time::Instant::now() + self.shutdown_deadline);
            }
            match &input {
                Input::WorkerExited { job, .. } => {
                    live.workers.remove(job);
                }
                Input::Runner(RunnerEnvelope {
                    runner,
                    event: RunnerEvent::Removed | RunnerEvent::Failed { .. },
                }) => {
                    live.runners.remove(runner);
                }
                _ => {}
            }
            let effects = self.dispatcher.handle(input, chrono::Utc::now());
            for effect in effects {
                self.perform(effect, &mut live).await;
            }
            let open = self.dispatcher.open_jobs();
            self.open_jobs.send_if_modified(|v| {
                let changed = *v != open;
                if changed {
                    *v = open;
                }
                changed
            });
            if self.dispatcher.finished() && live.workers.is_empty() {
                break;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                tracing::warn!(
                    "shutdown took longer than {:?}: killing {} worker(s), abandoning {} runner(s)",
                    self.shutdown_deadline,
                    live.workers.len(),
                    live.runners.len()
                );
                for w in live.workers.values() {
                    let _ = w.try_send(WorkerControl::Kill);
                }
                break;
            }
        }
        self.publish_status(&mut live).await;
        self.stop_intake.cancel();
    }

    async fn publish_status(&self, live: &mut Live) {
        let mut intake = self.counters.snapshot();
        intake.paused = self.dispatcher.paused();
        if intake != live.last_intake {
            live.last_intake = intake.clone();
            let _ = self.events.send(Event::Intake(intake)).await;
        }
        let budget = self.github.budget();
        if budget != live.last_budget {
            live.last_budget = budget.clone();
            let _ = self.events.send(Event::Budget(budget)).await;
        }
        if let Some(tokens) = self.launcher.tokens() {
            if tokens != live.last_tokens {
                live.last_tokens = tokens.clone();
                let _ = self.events.send(Event::Tokens(tokens)).await;
            }
        }
    }

    async fn perform(&mut self, effect: Effect, live: &mut Live) {
        match effect {
            Effect::Emit(event) => {
                let _ = self.events.send(event).await;
            }
            Effect::RegisterRunner(request) => {
                let name = request.name.clone();
                match self.launcher.launch(request) {
                    Ok(tx) => {
                        live.runners.insert(name, tx);
                    }
                    Err(reason) => {
                        let _ = self.inputs_tx.try_send(Input::Runner(RunnerEnvelope {
                            runner: name,
                            event: RunnerEvent::Failed { reason },
                        }));
                    }
                }
            }
            Effect::StopRunner { runner } => {
                if let Some(tx) = live.runners.get(&runner) {
                    let _ = tx.send(RunnerCommand::Stop).await;
                }
            }
            Effect::FinishJob { runner, outcome } => {
                if let Some(tx) = live.runners.get(&runner) {
                    let _ = tx.send(RunnerCommand::WorkerFinished(outcome)).await;
                }
            }
            Effect::StartWorker(start) => self.start_worker(start, live),
            Effect::CancelWorker { job, grace } => {
                if let Some(w) = live.workers.get(&job) {
                    let _ = w.send(WorkerControl::Cancel { grace }).await;
                }
            }
            Effect::KillWorker { job } => {
                if let Some(w) = live.workers.get(&job) {
                    let _ = w.send(WorkerControl::Kill).await;
                }
            }
            Effect::Rest(call) => self.rest(call),
        }
    }

    fn start_worker(&mut self, start: WorkerStart, live: &mut Live) {
        let Some(entry) = self.workers.get(start.entry).cloned() else {
            return;
        };
        let credentials: Vec<&Secret> = self.credentials.iter().collect();
        let env = crate::worker::env::worker_env(
            std::env::vars(),
            &start.job_env,
            &entry.env,
            &credentials,
        );
        // The worker learns which job it runs (labels, ids) from `github.megascaler` (§6.4).
        let message =
            match crate::protocol::splice_megascaler_context(&start.message, &start.context) {
                Ok(m) => Arc::from(m),
                Err(e) => {
                    tracing::warn!(job = start.job, "job message passed unpatched: {e}");
                    start.message
                }
            };
        let spec = WorkerSpec {
            job: start.job,
            entry,
            message,
            env,
            log_path: self
                .state_dir
                .join("jobs")
                .join(format!("{}.log", start.job)),
            escalation: self.escalation,
        };
        let control = supervisor::spawn(spec, self.inputs_tx.clone(), live.sink.clone());
        live.workers.insert(start.job, control);
    }

    fn rest(&self, call: RestCall) {
        let github = self.github.clone();
        let github_url = self.github_url.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let repo_of = |r: &str| RepoName::parse(r);
            let (what, result) = match &call {
                RestCall::CancelRun { repository, run_id } => match repo_of(repository) {
                    Some(r) => (
                        format!("cancel run {run_id}"),
                        github
                            .cancel_run(&r, *run_id)
                            .await
                            .map_err(|e| e.to_string()),
                    ),
                    None => (String::new(), Err(format!("bad repository {repository}"))),
                },
                RestCall::ForceCancelRun { repository, run_id } => match repo_of(repository) {
                    Some(r) => (
                        format!("force-cancel run {run_id}"),
                        github
                            .force_cancel_run(&r, *run_id)
                            .await
                            .map_err(|e| e.to_string()),
                    ),
                    None => (String::new(), Err(format!("bad repository {repository}"))),
                },
                RestCall::RerunJob { repository, job } => match repo_of(repository) {
                    Some(r) => (
                        format!("re-run job {job}"),
                        github.rerun_job(&r, *job).await.map_err(|e| e.to_string()),
                    ),
                    None => (String::new(), Err(format!("bad repository {repository}"))),
                },
                RestCall::DeleteRunner {
                    repository,
                    id,
                    name,
                } => match repo_of(repository) {
                    Some(r) => {
                        let scope = Scope::repository(&github_url, &r.owner, &r.repo);
                        (
                            format!("delete runner {name}"),
                            github
                                .delete_runner(&scope, *id)
                                .await
                                .map_err(|e| e.to_string()),
                        )
                    }
                    None => (String::new(), Err(format!("bad repository {repository}"))),
                },
            };
            match result {
                Ok(()) => tracing::info!("REST {what}: done"),
                Err(e) => {
                    tracing::warn!("REST {what} failed: {e}");
                    let _ = events
                        .send(Event::Fault {
                            component: "rest".into(),
                            message: format!("{what} failed: {e}"),
                        })
                        .await;
                }
            }
        });
    }
}
