//! The job state machine: which inputs move a job from which state to which.
//!
//! Pure: `next(state, input)` returns the new state or says why the input changes nothing.
//! Inputs arrive out of order (webhooks are reordered, polls lag), so states only move
//! forward: a late `queued` never undoes `in_progress`, and nothing leaves a final state except
//! the conclusion GitHub reports later.

use crate::engine::event::JobState;

/// Something that happened to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobInput {
    /// A worker entry serves its labels.
    Matched,
    /// No worker entry serves its labels.
    Unmatched,
    /// Capacity or back-off keeps it without a runner.
    RunnerWanted,
    /// A runner with its labels is registered (or registering) for it.
    RunnerIntended,
    /// GitHub says a runner took it (`in_progress`), or one of our runners received it.
    Assigned,
    /// Its worker process started.
    WorkerStarted,
    /// GitHub says it finished, with this conclusion.
    CompletedByGitHub { conclusion: Option<String> },
    /// Its worker exited 0 (it reported the result itself).
    WorkerReported,
    /// megascaler completed it as failed.
    FailedByMegascaler,
    /// megascaler completed it as cancelled.
    CancelledByMegascaler,
}

/// What an input does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The job moves to this state.
    To(JobState),
    /// Nothing changes, for this reason.
    Ignored(&'static str),
}

fn rank(s: JobState) -> u8 {
    match s {
        JobState::Queued => 0,
        JobState::Unmatched | JobState::WaitingForRunner | JobState::RunnerRegistered => 1,
        JobState::Assigned => 2,
        JobState::WorkerRunning => 3,
        JobState::Completed | JobState::Cancelled | JobState::Failed => 4,
    }
}

/// The state a job in `state` moves to on `input`.
pub fn next(state: JobState, input: &JobInput) -> Step {
    let target = match input {
        JobInput::Matched | JobInput::RunnerWanted => JobState::WaitingForRunner,
        JobInput::Unmatched => JobState::Unmatched,
        JobInput::RunnerIntended => JobState::RunnerRegistered,
        JobInput::Assigned => JobState::Assigned,
        JobInput::WorkerStarted => JobState::WorkerRunning,
        JobInput::CompletedByGitHub { conclusion } => {
            if state.is_final() && state != JobState::Unmatched {
                return Step::Ignored("the job is already final");
            }
            if conclusion.as_deref() == Some("cancelled") {
                JobState::Cancelled
            } else {
                JobState::Completed
            }
        }
        JobInput::WorkerReported => JobState::Completed,
        JobInput::FailedByMegascaler => JobState::Failed,
        JobInput::CancelledByMegascaler => JobState::Cancelled,
    };
    if state == target {
        return Step::Ignored("the job is already in that state");
    }
    if state.is_final() && !matches!(input, JobInput::CompletedByGitHub { .. }) {
        return Step::Ignored("the job is already final");
    }
    // Within "waiting for a runner" the sub-states move both ways (a runner is registered,
    // removed again, re-registered); everything else only moves forward.
    let both_ways = rank(state) == 1 && rank(target) == 1 && state != JobState::Unmatched;
    if rank(target) < rank(state) || (rank(target) == rank(state) && !both_ways) {
        return Step::Ignored("the input is older than what is known about the job");
    }
    Step::To(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn happy_path() {
        let mut s = Queued;
        for (input, want) in [
            (JobInput::Matched, WaitingForRunner),
            (JobInput::RunnerIntended, RunnerRegistered),
            (JobInput::Assigned, Assigned),
            (JobInput::WorkerStarted, WorkerRunning),
            (JobInput::WorkerReported, Completed),
        ] {
            assert_eq!(next(s, &input), Step::To(want), "{s:?} on {input:?}");
            s = want;
        }
    }

    #[test]
    fn late_inputs_do_not_move_backwards() {
        assert!(matches!(
            next(WorkerRunning, &JobInput::Assigned),
            Step::Ignored(_)
        ));
        assert!(matches!(
            next(Assigned, &JobInput::RunnerIntended),
            Step::Ignored(_)
        ));
        assert!(matches!(
            next(Failed, &JobInput::WorkerStarted),
            Step::Ignored(_)
        ));
    }

    #[test]
    fn runner_sub_states_move_both_ways() {
        assert_eq!(
            next(RunnerRegistered, &JobInput::RunnerWanted),
            Step::To(WaitingForRunner)
        );
    }

    #[test]
    fn github_completion_decides_cancelled_or_completed() {
        let cancelled = JobInput::CompletedByGitHub {
            conclusion: Some("cancelled".into()),
        };
        assert_eq!(next(WaitingForRunner, &cancelled), Step::To(Cancelled));
        let ok = JobInput::CompletedByGitHub {
            conclusion: Some("success".into()),
        };
        assert_eq!(next(WorkerRunning, &ok), Step::To(Completed));
        assert_eq!(next(Unmatched, &ok), Step::To(Completed));
        assert!(matches!(next(Failed, &ok), Step::Ignored(_)));
    }

    #[test]
    fn unmatched_is_final_for_runner_inputs() {
        assert!(matches!(
            next(Unmatched, &JobInput::RunnerIntended),
            Step::Ignored(_)
        ));
    }
}
