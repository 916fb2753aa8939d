//! Supervised worker processes: allocate, spawn, frame 1 on stdin, stream output, cancel
//! escalation, release.
//!
//! Owns one task per worker. The worker runs in its own process group so signals reach its
//! children. stdout and stderr are read concurrently to EOF; every line goes to the job's log
//! file and, batched, to the consumer with `try_send` (lines that do not fit are counted, never
//! waited for). It reports `WorkerStarted` and, after `release`, `WorkerExited` to the driver.
//! It decides nothing about jobs.

use crate::config::WorkerEntry;
use crate::engine::dispatch::Input;
use crate::engine::event::{Event, JobId, OutputLine, Stream};
use crate::protocol::api::WorkerOutcome;
use crate::worker::frames::{self, FrameType};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Waits of the signal escalation after the cancel grace (spec §5.6: 7.5 s, 2.5 s).
#[derive(Debug, Clone, Copy)]
pub struct Escalation {
    pub after_sigint: Duration,
    pub after_sigterm: Duration,
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation {
            after_sigint: Duration::from_millis(7500),
            after_sigterm: Duration::from_millis(2500),
        }
    }
}

/// Everything one worker needs. `Debug` leaves out the message (it holds the job token) and the
/// environment's values.
#[derive(Clone)]
pub struct WorkerSpec {
    pub job: JobId,
    pub entry: WorkerEntry,
    pub message: Arc<str>,
    /// The complete environment (already cleared and filtered).
    pub env: Vec<(String, String)>,
    pub log_path: PathBuf,
    pub escalation: Escalation,
}

impl std::fmt::Debug for WorkerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSpec")
            .field("job", &self.job)
            .field("entry", &self.entry)
            .field("message", &format_args!("<{} bytes>", self.message.len()))
            .field(
                "env",
                &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            )
            .field("log_path", &self.log_path)
            .field("escalation", &self.escalation)
            .finish()
    }
}

/// Orders for a running worker.
#[derive(Debug, Clone, Copy)]
pub enum WorkerControl {
    /// CancelRequest frame; after `grace` SIGINT, then SIGTERM, then SIGKILL.
    Cancel { grace: Duration },
    /// SIGKILL the process group now.
    Kill,
}

/// Where output lines go.
#[derive(Debug, Clone)]
pub struct OutputSink {
    pub events: mpsc::Sender<Event>,
    pub dropped: Arc<AtomicU64>,
}

impl OutputSink {
    fn send(&self, job: JobId, lines: Vec<OutputLine>) {
        let n = lines.len() as u64;
        if self
            .events
            .try_send(Event::WorkerOutput { job, lines })
            .is_err()
        {
            let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
            let _ = self.events.try_send(Event::OutputDropped { total });
        }
    }
}

/// Process groups of the workers running in this process, so an immediate exit (a second
/// SIGINT/SIGTERM) can end them instead of leaving jobs running without a runner.
static LIVE_GROUPS: std::sync::Mutex<std::collections::BTreeSet<i32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// SIGKILLs every worker process group still running; for an exit that cannot wait.
pub fn kill_all_now() -> usize {
    let groups = LIVE_GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for g in &groups {
        signal_group(Some(*g), Signal::SIGKILL);
    }
    groups.len()
}

fn track(pgid: Option<i32>, live: bool) {
    if let (Some(g), Ok(mut set)) = (pgid, LIVE_GROUPS.lock()) {
        if live {
            set.insert(g);
        } else {
            set.remove(&g);
        }
    }
}

const BATCH_LINES: usize = 64;
const TAIL_LINES: usize = 20;

/// Starts the worker's task; returns its control channel.
pub fn spawn(
    spec: WorkerSpec,
    inputs: mpsc::Sender<Input>,
    sink: OutputSink,
) -> mpsc::Sender<WorkerControl> {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let job = spec.job;
        let outcome = run(spec, rx, &inputs, &sink).await;
        let _ = inputs.send(Input::WorkerExited { job, outcome }).await;
    });
    tx
}

/// Replaces `{target}` in each argument.
pub fn substitute(args: &[String], target: &str) -> Vec<String> {
    args.iter().map(|a| a.replace("{target}", target)).collect()
}

struct Log {
    file: Option<tokio::fs::File>,
}

impl Log {
    async fn open(path: &PathBuf) -> Log {
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .await;
        if let Err(e) = &file {
            tracing::error!("cannot write worker log {}: {e}", path.display());
        }
        Log { file: file.ok() }
    }

    async fn line(&mut self, prefix: &str, text: &str) {
        if let Some(f) = &mut self.file {
            let _ = f.write_all(format!("{prefix}{text}\n").as_bytes()).await;
        }
    }
}

async fn run_helper(
    kind: &str,
    argv: &[String],
    env: &[(String, String)],
    log: &mut Log,
) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Ok(String::new());
    };
    log.line("[megascaler] ", &format!("{kind}: {}", argv.join(" ")))
        .await;
    let output = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot start {kind} command `{program}`: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    for l in stderr.lines() {
        log.line(&format!("[{kind} stderr] "), l).await;
    }
    if !output.status.success() {
        let last: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!(
            "{kind} command `{program}` failed ({}); last output:\n{}",
            output.status,
            last.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Longest line kept whole; longer ones are split (a newline-free stream must not exhaust memory).
pub const MAX_LINE_BYTES: u64 = 64 * 1024;

fn read_lines<R: AsyncRead + Unpin + Send + 'static>(
    r: R,
    stream: Stream,
    tx: mpsc::Sender<OutputLine>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match (&mut reader)
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut buf)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let cut = buf.last() != Some(&b'\n') && buf.len() as u64 == MAX_LINE_BYTES;
                    let mut text = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    if cut {
                        text.push_str(" …");
                    }
                    if tx.send(OutputLine { stream, text }).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
}

fn signal_group(pgid: Option<i32>, sig: Signal) {
    if let Some(pgid) = pgid {
        let _ = killpg(Pid::from_raw(pgid), sig);
    }
}

async fn run(
    spec: WorkerSpec,
    mut control: mpsc::Receiver<WorkerControl>,
    inputs: &mpsc::Sender<Input>,
    sink: &OutputSink,
) -> WorkerOutcome {
    let job = spec.job;
    let mut log = Log::open(&spec.log_path).await;
    let target = if spec.entry.allocate.is_empty() {
        String::new()
    } else {
        match run_helper("allocate", &spec.entry.allocate, &spec.env, &mut log).await {
            Ok(t) => {
                log.line("[megascaler] ", &format!("allocated target: {t}"))
                    .await;
                t
            }
            Err(reason) => {
                log.line("[megascaler] ", &reason).await;
                return WorkerOutcome::Failed { reason };
            }
        }
    };
    if spec.message.len() > frames::MAX_BODY as usize {
        let reason = format!(
            "the job message is {} bytes, over the {} byte frame limit; the worker was not started",
            spec.message.len(),
            frames::MAX_BODY
        );
        log.line("[megascaler] ", &reason).await;
        return WorkerOutcome::Failed { reason };
    }
    let argv = substitute(&spec.entry.args, &target);
    let outcome = run_worker(&spec, &argv, &mut control, inputs, sink, &mut log).await;
    if !spec.entry.release.is_empty() {
        let release = substitute(&spec.entry.release, &target);
        if let Err(e) = run_helper("release", &release, &spec.env, &mut log).await {
            tracing::warn!(job, "{e}");
            log.line("[megascaler] ", &e).await;
        }
    }
    let summary = match &outcome {
        WorkerOutcome::Reported => "worker exited 0: it reported the result".to_string(),
        WorkerOutcome::Failed { reason } => format!("failed: {reason}"),
        WorkerOutcome::Cancelled { reason } => format!("cancelled: {reason}"),
    };
    log.line("[megascaler] ", &summary).await;
    outcome
}

async fn run_worker(
    spec: &WorkerSpec,
    argv: &[String],
    control: &mut mpsc::Receiver<WorkerControl>,
    inputs: &mpsc::Sender<Input>,
    sink: &OutputSink,
    log: &mut Log,
) -> WorkerOutcome {
    let job = spec.job;
    let Some((program, args)) = argv.split_first() else {
        return WorkerOutcome::Failed {
            reason: "the worker entry has no program".into(),
        };
    };
    log.line(
        "[megascaler] ",
        &format!("starting worker: {}", argv.join(" ")),
    )
    .await;
    let spawned = Command::new(program)
        .args(args)
        .env_clear()
        .envs(spec.env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child: Child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("cannot start worker `{program}`: {e}");
            log.line("[megascaler] ", &reason).await;
            return WorkerOutcome::Failed { reason };
        }
    };
    let pid = child.id();
    let pgid = pid.and_then(|p| i32::try_from(p).ok());
    track(pgid, true);
    let _ = inputs
        .send(Input::WorkerStarted {
            job,
            pid,
            log_path: spec.log_path.clone(),
        })
        .await;

    // stdin stays open until the worker exits: github-act-runner's worker spins on EOF.
    let (frames_tx, mut frames_rx) = mpsc::channel::<(FrameType, Vec<u8>)>(4);
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            while let Some((kind, body)) = frames_rx.recv().await {
                if frames::write_frame(&mut stdin, kind, &body).await.is_err() {
                    break;
                }
            }
        });
    }
    let _ = frames_tx
        .send((FrameType::NewJobRequest, spec.message.as_bytes().to_vec()))
        .await;

    let (lines_tx, mut lines_rx) = mpsc::channel::<OutputLine>(1024);
    if let Some(out) = child.stdout.take() {
        read_lines(out, Stream::Stdout, lines_tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        read_lines(err, Stream::Stderr, lines_tx.clone());
    }
    drop(lines_tx);

    let mut tail: VecDeque<String> = VecDeque::new();
    let mut batch: Vec<OutputLine> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut status: Option<ExitStatus> = None;
    let mut streams_open = true;
    let mut cancelled: Option<&'static str> = None;
    let mut escalation: Option<tokio::task::JoinHandle<()>> = None;
    let mut linger: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    while streams_open || status.is_none() {
        tokio::select! {
            line = lines_rx.recv(), if streams_open => match line {
                Some(line) => {
                    let prefix = if line.stream == Stream::Stderr { "[stderr] " } else { "" };
                    log.line(prefix, &line.text).await;
                    if tail.len() == TAIL_LINES { tail.pop_front(); }
                    tail.push_back(line.text.clone());
                    batch.push(line);
                    if batch.len() >= BATCH_LINES {
                        sink.send(job, std::mem::take(&mut batch));
                    }
                }
                None => streams_open = false,
            },
            _ = tick.tick() => {
                if !batch.is_empty() {
                    sink.send(job, std::mem::take(&mut batch));
                }
            }
            s = child.wait(), if status.is_none() => {
                status = Some(s.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(1 << 8)));
                if let Some(e) = escalation.take() { e.abort(); }
                // A grandchild may still hold the pipes; give it a moment, then end the group.
                linger = Some(Box::pin(tokio::time::sleep(Duration::from_secs(5))));
            }
            _ = async { if let Some(l) = linger.as_mut() { l.await } else { std::future::pending().await } }, if streams_open => {
                signal_group(pgid, Signal::SIGKILL);
                streams_open = false;
            }
            c = control.recv(), if status.is_none() => match c {
                Some(WorkerControl::Cancel { grace }) if cancelled.is_none() => {
                    cancelled = Some("cancelled");
                    log.line("[megascaler] ", &format!("cancel: CancelRequest sent; SIGINT in {grace:?}")).await;
                    let _ = frames_tx.send((FrameType::CancelRequest, Vec::new())).await;
                    let esc = spec.escalation;
                    escalation = Some(tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        signal_group(pgid, Signal::SIGINT);
                        tokio::time::sleep(esc.after_sigint).await;
                        signal_group(pgid, Signal::SIGTERM);
                        tokio::time::sleep(esc.after_sigterm).await;
                        signal_group(pgid, Signal::SIGKILL);
                    }));
                }
                Some(WorkerControl::Kill) => {
                    cancelled = Some("killed by command");
                    log.line("[megascaler] ", "kill: SIGKILL to the process group").await;
                    signal_group(pgid, Signal::SIGKILL);
                }
                _ => {}
            },
        }
    }
    if !batch.is_empty() {
        sink.send(job, batch);
    }
    drop(frames_tx);
    // Whatever is left of the group (daemonised children) ends with the worker.
    signal_group(pgid, Signal::SIGKILL);
    track(pgid, false);
    let success = status.is_some_and(|s| s.success());
    let status = status.map(|s| s.to_string()).unwrap_or_default();
    let last = tail
        .iter()
        .rev()
        .take(10)
        .rev()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    match cancelled {
        _ if success => WorkerOutcome::Reported,
        Some(how) => WorkerOutcome::Cancelled {
            reason: format!("worker {how} ({status}); last output:\n{last}"),
        },
        None => WorkerOutcome::Failed {
            reason: format!("worker ended with {status}; last output:\n{last}"),
        },
    }
}
