//! The dashboard's state besides the model: focus, selection, sort, filter, scroll, dialogs.
//!
//! Owns [`App::handle`], which turns an [`Action`] into UI changes and, when the person asked
//! the engine for something and confirmed it, the [`Command`] to send. It must not send
//! anything or wait on anything; the run loop sends what it returns. Destructive commands are
//! never returned straight from a key: they go through a [`Dialog`] first.

use crate::config::WorkerEntry;
use crate::engine::event::{Command, Event, JobId, JobState};
use crate::tui::keymap::{Action, Context};
use crate::tui::model::{JobRecord, Model};
use crate::tui::theme::Theme;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The panes that take the focus, in `Tab` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Jobs,
    Output,
    Decisions,
    Tokens,
}

impl Pane {
    const ORDER: [Pane; 4] = [Pane::Jobs, Pane::Output, Pane::Decisions, Pane::Tokens];

    fn step(self, forward: bool) -> Pane {
        let i = Self::ORDER.iter().position(|p| *p == self).unwrap_or(0);
        let n = Self::ORDER.len();
        Self::ORDER[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }]
    }

    pub fn title(self) -> &'static str {
        match self {
            Pane::Jobs => "Jobs",
            Pane::Output => "Output",
            Pane::Decisions => "Decisions",
            Pane::Tokens => "Tokens & budget",
        }
    }
}

/// How the jobs are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Most recently seen first.
    Newest,
    /// Problems first (unmatched, failed), then live jobs, then finished ones.
    State,
    /// By repository, then newest.
    Repository,
    /// Longest waiting or running first.
    Age,
}

impl SortOrder {
    fn next(self) -> SortOrder {
        match self {
            SortOrder::Newest => SortOrder::State,
            SortOrder::State => SortOrder::Repository,
            SortOrder::Repository => SortOrder::Age,
            SortOrder::Age => SortOrder::Newest,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SortOrder::Newest => "newest",
            SortOrder::State => "state",
            SortOrder::Repository => "repository",
            SortOrder::Age => "age",
        }
    }
}

fn state_rank(state: JobState) -> u8 {
    match state {
        JobState::Unmatched | JobState::Failed => 0,
        JobState::WorkerRunning => 1,
        JobState::Assigned => 2,
        JobState::RunnerRegistered => 3,
        JobState::WaitingForRunner => 4,
        JobState::Queued => 5,
        JobState::Cancelled => 6,
        JobState::Completed => 7,
    }
}

/// A question before a destructive command: what will happen, and the command if confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub title: String,
    /// What will happen, one sentence per line.
    pub lines: Vec<String>,
    pub command: Command,
}

/// Where the dashboard is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Running,
    /// `Command::Shutdown` was returned; wait for the engine to close its events.
    ShutdownRequested,
}

/// The whole dashboard state. Views only read it.
#[derive(Debug, Clone)]
pub struct App {
    pub model: Model,
    /// The configuration's worker entries, to explain matching.
    pub workers: Vec<WorkerEntry>,
    /// The configuration's cancel grace, to say what quitting does.
    pub cancel_grace: Duration,
    pub focus: Pane,
    /// The lower pane shown in the narrow layout while the jobs have the focus.
    pub lower: Pane,
    pub theme: Theme,
    pub selected: Option<JobId>,
    pub sort: SortOrder,
    pub filter: String,
    pub editing_filter: bool,
    /// Follow the selected job's output tail.
    pub follow: bool,
    /// When not following: absolute index (counting evicted lines) of the top output line.
    pub output_top: u64,
    /// Rows the output pane shows; the run loop keeps it current from the layout.
    pub output_rows: u16,
    /// Lines scrolled back in the decision feed (0: newest at the bottom).
    pub feed_scroll: usize,
    pub dialog: Option<Dialog>,
    pub show_help: bool,
    /// The last thing the dashboard did or refused, for the status bar.
    pub notice: Option<String>,
    pub lifecycle: Lifecycle,
}

impl App {
    pub fn new(workers: Vec<WorkerEntry>, cancel_grace: Duration) -> Self {
        App {
            model: Model::default(),
            workers,
            cancel_grace,
            focus: Pane::Jobs,
            lower: Pane::Output,
            theme: Theme::default(),
            selected: None,
            sort: SortOrder::Newest,
            filter: String::new(),
            editing_filter: false,
            follow: true,
            output_top: 0,
            output_rows: 10,
            feed_scroll: 0,
            dialog: None,
            show_help: false,
            notice: None,
            lifecycle: Lifecycle::Running,
        }
    }

    /// Folds an engine event in, keeping a selection once there is something to select.
    pub fn apply(&mut self, event: Event, now: DateTime<Utc>) {
        self.model.apply(event, now);
        if self
            .selected
            .is_none_or(|id| !self.model.jobs.contains_key(&id))
        {
            self.selected = self.visible_jobs().first().map(|r| r.view.id);
        }
    }

    /// Which key bindings apply now.
    pub fn context(&self) -> Context {
        if self.dialog.is_some() {
            Context::Dialog
        } else if self.show_help {
            Context::Help
        } else if self.editing_filter {
            Context::Filter
        } else {
            Context::Normal
        }
    }

    /// The jobs the table shows, filtered and sorted.
    pub fn visible_jobs(&self) -> Vec<&JobRecord> {
        let needle = self.filter.to_lowercase();
        let mut jobs: Vec<&JobRecord> = self
            .model
            .jobs
            .values()
            .filter(|r| needle.is_empty() || haystack(r).contains(&needle))
            .collect();
        match self.sort {
            SortOrder::Newest => jobs.sort_by_key(|r| std::cmp::Reverse(r.seq)),
            SortOrder::State => {
                jobs.sort_by_key(|r| (state_rank(r.view.state), std::cmp::Reverse(r.seq)))
            }
            SortOrder::Repository => jobs.sort_by(|a, b| {
                a.view
                    .repository
                    .cmp(&b.view.repository)
                    .then(b.seq.cmp(&a.seq))
            }),
            SortOrder::Age => {
                jobs.sort_by_key(|r| (r.view.started_at.unwrap_or(r.view.queued_at), r.seq))
            }
        }
        jobs
    }

    /// The selected job's record.
    pub fn selected_job(&self) -> Option<&JobRecord> {
        self.selected.and_then(|id| self.model.jobs.get(&id))
    }

    /// Applies an action; returns the command to send to the engine, if any.
    pub fn handle(&mut self, action: Action) -> Option<Command> {
        if !matches!(action, Action::FilterInput(_) | Action::FilterBackspace) {
            self.notice = None;
        }
        match self.context() {
            Context::Dialog => self.handle_dialog(action),
            Context::Help => {
                if matches!(action, Action::Dismiss | Action::Help | Action::Quit) {
                    self.show_help = false;
                }
                None
            }
            Context::Filter if action == Action::Quit => {
                self.editing_filter = false;
                self.quit()
            }
            Context::Filter => {
                self.handle_filter(action);
                None
            }
            Context::Normal => self.handle_normal(action),
        }
    }

    fn handle_dialog(&mut self, action: Action) -> Option<Command> {
        match action {
            Action::Confirm => {
                let dialog = self.dialog.take()?;
                if dialog.command == Command::Shutdown {
                    self.lifecycle = Lifecycle::ShutdownRequested;
                }
                self.notice = Some(format!("sent: {}", describe_command(&dialog.command)));
                Some(dialog.command)
            }
            Action::Dismiss => {
                self.dialog = None;
                None
            }
            // Ctrl-C in a dialog: the person wants out; ask about quitting instead.
            Action::Quit => {
                self.dialog = None;
                self.quit()
            }
            _ => None,
        }
    }

    fn handle_filter(&mut self, action: Action) {
        match action {
            Action::FilterInput(c) => self.filter.push(c),
            Action::FilterBackspace => {
                self.filter.pop();
            }
            Action::FilterDone => self.editing_filter = false,
            Action::FilterClear => {
                self.filter.clear();
                self.editing_filter = false;
            }
            _ => {}
        }
        self.keep_selection_visible();
    }

    fn handle_normal(&mut self, action: Action) -> Option<Command> {
        match action {
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-i64::from(self.output_rows.max(1))),
            Action::PageDown => self.move_by(i64::from(self.output_rows.max(1))),
            Action::Top => self.move_by(i64::MIN / 2),
            Action::Bottom => self.move_by(i64::MAX / 2),
            Action::NextPane => self.set_focus(self.focus.step(true)),
            Action::PrevPane => self.set_focus(self.focus.step(false)),
            Action::Open => {
                self.set_focus(Pane::Output);
                self.follow = true;
            }
            Action::Filter => {
                self.editing_filter = true;
                self.focus = Pane::Jobs;
            }
            Action::Sort => self.sort = self.sort.next(),
            Action::Follow => self.follow = true,
            Action::Help => self.show_help = true,
            Action::CancelJob => self.ask_cancel(),
            Action::Redispatch => self.ask_redispatch(),
            Action::KillWorker => self.ask_kill(),
            Action::TogglePause => {
                let command = if self.model.intake.paused {
                    Command::ResumeIntake
                } else {
                    Command::PauseIntake
                };
                self.notice = Some(format!("sent: {}", describe_command(&command)));
                return Some(command);
            }
            Action::Quit => return self.quit(),
            Action::Confirm
            | Action::Dismiss
            | Action::FilterInput(_)
            | Action::FilterBackspace
            | Action::FilterDone
            | Action::FilterClear => {}
        }
        None
    }

    fn set_focus(&mut self, pane: Pane) {
        self.focus = pane;
        if pane != Pane::Jobs {
            self.lower = pane;
        }
    }

    /// Shuts down without asking (a signal, or the terminal went away): the command to send,
    /// unless it was sent already.
    pub fn request_shutdown(&mut self) -> Option<Command> {
        if self.lifecycle == Lifecycle::ShutdownRequested {
            return None;
        }
        self.dialog = None;
        self.lifecycle = Lifecycle::ShutdownRequested;
        Some(Command::Shutdown)
    }

    fn move_by(&mut self, delta: i64) {
        match self.focus {
            Pane::Jobs => {
                let ids: Vec<JobId> = self.visible_jobs().iter().map(|r| r.view.id).collect();
                if ids.is_empty() {
                    return;
                }
                let at = self
                    .selected
                    .and_then(|id| ids.iter().position(|j| *j == id))
                    .unwrap_or(0) as i64;
                let to = (at.saturating_add(delta)).clamp(0, ids.len() as i64 - 1);
                if self.selected != Some(ids[to as usize]) {
                    self.selected = Some(ids[to as usize]);
                    self.follow = true;
                }
            }
            Pane::Output => self.scroll_output(delta),
            Pane::Decisions => {
                let back = (self.feed_scroll as i64).saturating_sub(delta);
                let most = self.model.feed.len().saturating_sub(1) as i64;
                self.feed_scroll = back.clamp(0, most) as usize;
            }
            Pane::Tokens => {}
        }
    }

    fn scroll_output(&mut self, delta: i64) {
        let Some(record) = self.selected_job() else {
            return;
        };
        let first = record.output.evicted;
        let rows = u64::from(self.output_rows.max(1));
        let end = first + record.output.len() as u64;
        let last_top = end.saturating_sub(rows).max(first);
        let top = if self.follow {
            last_top
        } else {
            self.output_top
        };
        let to = (top as i64)
            .saturating_add(delta)
            .clamp(first as i64, last_top as i64) as u64;
        // Scrolling to the very end resumes following, as `less +F` users expect.
        self.follow = delta > 0 && to == last_top;
        self.output_top = to;
    }

    fn keep_selection_visible(&mut self) {
        let ids: Vec<JobId> = self.visible_jobs().iter().map(|r| r.view.id).collect();
        if !self.selected.is_some_and(|id| ids.contains(&id)) {
            self.selected = ids.first().copied();
        }
    }
}

fn haystack(r: &JobRecord) -> String {
    let v = &r.view;
    format!(
        "{} {} {} {} {} {} {}",
        v.id,
        v.state.as_str(),
        v.repository,
        v.workflow_name,
        v.job_name,
        v.labels.join(","),
        v.runner_name.as_deref().unwrap_or("")
    )
    .to_lowercase()
}

#[path = "app_dialogs.rs"]
mod dialogs;
pub use dialogs::describe_command;

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
