//! The questions the dashboard asks before it sends a destructive command, and what it says.
//!
//! Owns the words of every confirmation: what will happen to the job, its worker or the
//! running workers, as the engine actually does it. Builds [`Dialog`]s and notices only; the
//! command is returned by [`App::handle`] when the person confirms.

use super::{App, Dialog, Lifecycle};
use crate::engine::event::{Command, JobId, JobState};

impl App {
    pub(super) fn quit(&mut self) -> Option<Command> {
        if self.lifecycle == Lifecycle::ShutdownRequested {
            return None;
        }
        let running = self.model.running_workers();
        if running == 0 {
            self.lifecycle = Lifecycle::ShutdownRequested;
            return Some(Command::Shutdown);
        }
        let grace = humantime::format_duration(self.cancel_grace);
        self.dialog = Some(Dialog {
            title: "Quit megascaler?".into(),
            lines: vec![
                format!(
                    "{running} worker{} still running.",
                    if running == 1 { " is" } else { "s are" }
                ),
                format!(
                    "Quitting shuts down as `serve` does on SIGTERM: intake stops and idle runners are removed; each worker gets a cancel request, then SIGINT after {grace}, SIGTERM 7.5s later and SIGKILL 2.5s after that; its job is reported cancelled."
                ),
            ],
            command: Command::Shutdown,
        });
        None
    }

    fn target(&mut self) -> Option<(JobId, String, JobState, Option<u32>)> {
        match self.selected_job() {
            Some(r) => Some((
                r.view.id,
                format!(
                    "{} {} / {} (job {})",
                    r.view.repository, r.view.workflow_name, r.view.job_name, r.view.id
                ),
                r.view.state,
                r.view.worker_pid,
            )),
            None => {
                self.notice = Some("no job selected".into());
                None
            }
        }
    }

    pub(super) fn ask_cancel(&mut self) {
        let Some((id, name, state, _)) = self.target() else {
            return;
        };
        let what = match state {
            s if s.is_final() => {
                self.notice = Some(format!("job {id} is {}; nothing to cancel", s.as_str()));
                return;
            }
            JobState::WorkerRunning | JobState::Assigned => {
                "Its worker gets a cancel request (the job's `always()` steps still run); the job ends cancelled."
            }
            _ => "It has no worker yet: its workflow run is cancelled through the REST API.",
        };
        self.dialog = Some(Dialog {
            title: "Cancel job?".into(),
            lines: vec![format!("Cancel {name}?"), what.into()],
            command: Command::CancelJob(id),
        });
    }

    pub(super) fn ask_redispatch(&mut self) {
        let Some((id, name, state, _)) = self.target() else {
            return;
        };
        let what = match state {
            JobState::Assigned | JobState::WorkerRunning => {
                self.notice = Some(format!(
                    "job {id} is {}; cancel it first, then re-run it",
                    state.as_str()
                ));
                return;
            }
            JobState::Unmatched => {
                // The configuration is not reloaded, so matching again cannot change the answer.
                self.notice = Some(format!(
                    "job {id} matches no worker entry; re-dispatching cannot change that"
                ));
                return;
            }
            s if s.is_final() => {
                "It is finished: GitHub re-runs it through the REST API as a new attempt."
            }
            _ => "It is still queued: megascaler registers a fresh runner for it.",
        };
        self.dialog = Some(Dialog {
            title: "Re-dispatch job?".into(),
            lines: vec![format!("Re-dispatch {name}?"), what.into()],
            command: Command::Redispatch(id),
        });
    }

    pub(super) fn ask_kill(&mut self) {
        let Some((id, name, _, pid)) = self.target() else {
            return;
        };
        let Some(pid) = pid else {
            self.notice = Some(format!("job {id} has no running worker to kill"));
            return;
        };
        self.dialog = Some(Dialog {
            title: "Kill worker?".into(),
            lines: vec![
                format!("Kill the worker of {name}?"),
                format!(
                    "Process group {pid} gets SIGKILL now, with no grace; megascaler then reports the job to GitHub as cancelled."
                ),
            ],
            command: Command::KillWorker(id),
        });
    }
}

/// What a command does, in a few words, for notices.
pub fn describe_command(command: &Command) -> String {
    match command {
        Command::CancelJob(id) => format!("cancel job {id}"),
        Command::ForceCancelJob(id) => format!("force-cancel job {id}"),
        Command::KillWorker(id) => format!("kill the worker of job {id}"),
        Command::Redispatch(id) => format!("re-dispatch job {id}"),
        Command::PauseIntake => "pause intake".into(),
        Command::ResumeIntake => "resume intake".into(),
        Command::Shutdown => "shut down".into(),
    }
}
