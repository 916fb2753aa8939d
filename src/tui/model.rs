//! The dashboard's projection of the engine's events: jobs, runners, output tails, decisions,
//! credentials and health.
//!
//! Owns [`Model::apply`], a pure reducer from [`Event`] to plain data, and the bounds that keep
//! it small however long the dashboard runs (per-job output rings, a decision feed ring, a cap
//! on finished jobs kept). It must not do IO, read the clock or know about the screen: the
//! caller passes `now`, the time the event was received, so tests are deterministic.

use crate::engine::event::{
    Decision, Event, IntakeStatus, JobId, JobState, JobView, OutputLine, RestBudget, RunnerView,
    ScopeTokens,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};

/// Lines of output kept per job; the full output is in the job's log file.
pub const OUTPUT_LINES_PER_JOB: usize = 2_000;
/// Longest output line kept, in characters; the rest is cut (the log file has it whole).
pub const OUTPUT_LINE_CHARS: usize = 1_000;
/// Decisions kept in the all-jobs feed.
pub const FEED_DECISIONS: usize = 500;
/// Decisions kept per job (its timeline).
pub const DECISIONS_PER_JOB: usize = 200;
/// Finished jobs kept; older finished jobs are forgotten first.
pub const FINISHED_JOBS_KEPT: usize = 500;
/// Faults kept.
pub const FAULTS_KEPT: usize = 50;
/// Runners whose intended job is remembered.
pub const RUNNER_INTENTS_KEPT: usize = 1_000;

/// A bounded tail of one job's output, with the count of lines that fell off its front.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputRing {
    lines: VecDeque<OutputLine>,
    /// Lines received and then evicted to respect [`OUTPUT_LINES_PER_JOB`].
    pub evicted: u64,
}

impl OutputRing {
    /// Appends a line, cutting it to [`OUTPUT_LINE_CHARS`] and evicting the oldest if full.
    pub fn push(&mut self, mut line: OutputLine) {
        if let Some((cut, _)) = line.text.char_indices().nth(OUTPUT_LINE_CHARS) {
            line.text.truncate(cut);
            line.text.push('…');
        }
        if self.lines.len() == OUTPUT_LINES_PER_JOB {
            self.lines.pop_front();
            self.evicted += 1;
        }
        self.lines.push_back(line);
    }

    /// Lines kept, oldest first.
    pub fn lines(&self) -> &VecDeque<OutputLine> {
        &self.lines
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// One job and what the dashboard remembers about it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub view: JobView,
    /// Every distinct state the job went through, in order (from the job events themselves,
    /// so the history is complete even if some transition decisions were not sent).
    pub states: Vec<JobState>,
    /// Decisions about this job, oldest first (bounded by [`DECISIONS_PER_JOB`]).
    pub decisions: VecDeque<Decision>,
    pub output: OutputRing,
    /// When the job ran on a runner registered for another job: that job (remembered here
    /// because the runner itself is forgotten once removed).
    pub took_runner_of: Option<JobId>,
    /// Order of first appearance; breaks ties in sorting.
    pub seq: u64,
}

/// Counts of workers and runners, as the engine last reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    pub workers_running: usize,
    pub max_parallel: Option<usize>,
    pub runners_idle: usize,
    pub runners_busy: usize,
}

/// A fault the engine reported that is not about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub at: DateTime<Utc>,
    pub component: String,
    pub message: String,
}

/// Everything the dashboard knows, rebuilt from events alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub jobs: BTreeMap<JobId, JobRecord>,
    pub runners: BTreeMap<String, RunnerView>,
    /// Recent decisions about all jobs, oldest first.
    pub feed: VecDeque<Decision>,
    pub tokens: Vec<ScopeTokens>,
    pub budget: RestBudget,
    pub intake: IntakeStatus,
    pub capacity: Capacity,
    /// Output lines the engine could not deliver (they are in the log files).
    pub output_dropped: u64,
    pub faults: VecDeque<Fault>,
    /// Set once the engine began its graceful shutdown, with what it said.
    pub shutting_down: Option<String>,
    /// Output lines that arrived for a job the dashboard has not seen (or already forgot).
    pub orphan_output_lines: u64,
    /// The job each runner was last registered for, kept after the engine clears it (it does
    /// when the runner receives another job) so that job can be named. Bounded.
    runner_intents: BTreeMap<String, JobId>,
    runner_intent_order: VecDeque<String>,
    next_seq: u64,
}

/// True for characters that change how text around them reads without being seen: Unicode
/// format characters (bidi overrides and isolates, zero-width characters, tag characters).
/// Workflow authors control job names and worker output; such characters could make one job
/// look like another in a confirmation dialog.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Text as the dashboard shows it: invisible format characters become `�`, tabs become
/// spaces (the terminal layer drops control characters, which would glue words together).
pub fn sanitize(text: &mut String) {
    if text.chars().any(|c| c == '\t' || is_invisible_format(c)) {
        *text = text
            .chars()
            .map(|c| match c {
                '\t' => ' ',
                c if is_invisible_format(c) => '\u{FFFD}',
                c => c,
            })
            .collect();
    }
}

fn sanitize_job(v: &mut JobView) {
    for text in [&mut v.repository, &mut v.workflow_name, &mut v.job_name] {
        sanitize(text);
    }
    v.labels.iter_mut().for_each(sanitize);
    for text in [&mut v.conclusion, &mut v.reason, &mut v.runner_name]
        .into_iter()
        .flatten()
    {
        sanitize(text);
    }
}

fn push_bounded<T>(ring: &mut VecDeque<T>, item: T, cap: usize) {
    if ring.len() == cap {
        ring.pop_front();
    }
    ring.push_back(item);
}

impl Model {
    /// Folds one engine event into the model. `now` is when the dashboard received it.
    pub fn apply(&mut self, event: Event, now: DateTime<Utc>) {
        match event {
            Event::Job(mut view) => {
                sanitize_job(&mut view);
                self.apply_job(view)
            }
            Event::Decision(mut decision) => {
                sanitize(&mut decision.message);
                if let Some(record) = decision.job.and_then(|id| self.jobs.get_mut(&id)) {
                    push_bounded(&mut record.decisions, decision.clone(), DECISIONS_PER_JOB);
                }
                push_bounded(&mut self.feed, decision, FEED_DECISIONS);
            }
            Event::Runner(mut runner) => {
                sanitize(&mut runner.name);
                runner.labels.iter_mut().for_each(sanitize);
                if let Some(job) = runner.intended_job {
                    self.remember_intent(&runner.name, job);
                }
                self.runners.insert(runner.name.clone(), runner);
            }
            Event::RunnerRemoved { mut name } => {
                sanitize(&mut name);
                self.runners.remove(&name);
            }
            Event::WorkerOutput { job, lines } => match self.jobs.get_mut(&job) {
                Some(record) => lines.into_iter().for_each(|mut l| {
                    sanitize(&mut l.text);
                    record.output.push(l)
                }),
                None => self.orphan_output_lines += lines.len() as u64,
            },
            Event::Tokens(mut tokens) => {
                tokens.iter_mut().for_each(|t| sanitize(&mut t.scope));
                self.tokens = tokens
            }
            Event::Budget(budget) => self.budget = budget,
            Event::Intake(intake) => self.intake = intake,
            Event::Capacity {
                workers_running,
                max_parallel,
                runners_idle,
                runners_busy,
            } => {
                self.capacity = Capacity {
                    workers_running,
                    max_parallel,
                    runners_idle,
                    runners_busy,
                }
            }
            // The engine reports a running total; never let a reordering make it go back.
            Event::OutputDropped { total } => self.output_dropped = self.output_dropped.max(total),
            Event::Fault {
                mut component,
                mut message,
            } => {
                sanitize(&mut component);
                sanitize(&mut message);
                push_bounded(
                    &mut self.faults,
                    Fault {
                        at: now,
                        component,
                        message,
                    },
                    FAULTS_KEPT,
                )
            }
            Event::ShuttingDown { mut message } => {
                sanitize(&mut message);
                self.shutting_down = Some(message)
            }
        }
    }

    fn apply_job(&mut self, view: JobView) {
        let took_runner_of = view
            .runner_name
            .as_ref()
            .filter(|_| view.runner_was_other_jobs)
            .and_then(|name| self.runner_intents.get(name).copied())
            .filter(|intended| *intended != view.id);
        match self.jobs.get_mut(&view.id) {
            Some(record) => {
                if took_runner_of.is_some() {
                    record.took_runner_of = took_runner_of;
                }
                if record.states.last() != Some(&view.state) {
                    record.states.push(view.state);
                }
                record.view = view;
            }
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let id = view.id;
                // Decisions that arrived before the job itself still belong to its timeline.
                let decisions = self
                    .feed
                    .iter()
                    .filter(|d| d.job == Some(id))
                    .cloned()
                    .collect();
                self.jobs.insert(
                    id,
                    JobRecord {
                        states: vec![view.state],
                        view,
                        decisions,
                        output: OutputRing::default(),
                        took_runner_of,
                        seq,
                    },
                );
                self.forget_old_finished_jobs();
            }
        }
    }

    fn remember_intent(&mut self, runner: &str, job: JobId) {
        if self
            .runner_intents
            .insert(runner.to_string(), job)
            .is_none()
        {
            self.runner_intent_order.push_back(runner.to_string());
            if self.runner_intent_order.len() > RUNNER_INTENTS_KEPT
                && let Some(oldest) = self.runner_intent_order.pop_front()
            {
                self.runner_intents.remove(&oldest);
            }
        }
    }

    fn forget_old_finished_jobs(&mut self) {
        let finished = self
            .jobs
            .values()
            .filter(|r| r.view.state.is_final())
            .count();
        if finished <= FINISHED_JOBS_KEPT {
            return;
        }
        let mut oldest: Vec<(u64, JobId)> = self
            .jobs
            .values()
            .filter(|r| r.view.state.is_final())
            .map(|r| (r.seq, r.view.id))
            .collect();
        oldest.sort_unstable();
        for (_, id) in oldest.into_iter().take(finished - FINISHED_JOBS_KEPT) {
            self.jobs.remove(&id);
        }
    }

    /// The runner a job was registered for, if the engine registered one for it.
    pub fn runner_registered_for(&self, job: JobId) -> Option<&RunnerView> {
        self.runners.values().find(|r| r.intended_job == Some(job))
    }

    /// Jobs whose worker process runs now.
    pub fn running_workers(&self) -> usize {
        self.jobs
            .values()
            .filter(|r| r.view.state == JobState::WorkerRunning)
            .count()
            .max(self.capacity.workers_running)
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
