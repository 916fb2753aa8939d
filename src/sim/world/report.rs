//! Completions and renewals reported by runners and workers, checked against the job's flow.
//!
//! Owns the rules of spec §5.4/§5.5 the service enforces: the job message's `messageType`
//! picks the API (pipelines job requests and plan events, or the run service), results use
//! the TaskResult vocabulary (lower-case only on the run service), `JobCompleted` completes a
//! job only from plan version 8, and the listener's `finishTime` path is for versions below 8.

use super::{JobFlow, TakeError, World};
use crate::sim::model::CompletionPath;

/// Why a report was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportError {
    /// The API does not belong to the job's flow.
    WrongFlow,
    /// Not a TaskResult name (or not lower-case on the run service).
    BadResult,
    /// The job already ended (or does not exist).
    Ended,
}

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reported {
    Completed,
    /// `JobCompleted` for a plan below version 8: accepted, but the job goes on until the
    /// listener finishes the job request.
    IgnoredBelowPlan8,
}

const TASK_RESULTS: &[&str] = &[
    "succeeded",
    "succeededwithissues",
    "failed",
    "canceled",
    "skipped",
    "abandoned",
];

/// The canonical TaskResult for a wire value: any case on VSS, lower-case only on the run
/// service. The webhook words (`success`, `failure`, `cancelled`) are not results.
pub(crate) fn task_result(value: &str, lower_case_only: bool) -> Option<&'static str> {
    let lower = value.to_ascii_lowercase();
    if lower_case_only && lower != value {
        return None;
    }
    TASK_RESULTS.iter().find(|r| **r == lower).copied()
}

fn flow_of(path: CompletionPath) -> Option<JobFlow> {
    match path {
        CompletionPath::PlanEvent | CompletionPath::JobRequestFinish => Some(JobFlow::Pipelines),
        CompletionPath::CompleteJob => Some(JobFlow::RunService),
        CompletionPath::Cancelled | CompletionPath::LockExpired => None,
    }
}

fn flow_name(flow: JobFlow) -> &'static str {
    match flow {
        JobFlow::Pipelines => "a PipelineAgentJobRequest",
        JobFlow::RunService => "a RunnerJobRequest",
    }
}

impl World {
    /// True when `job` was delivered through `flow`; otherwise records a violation.
    pub fn check_flow(
        &mut self,
        job: u64,
        flow: JobFlow,
        endpoint: &str,
        runner: Option<String>,
    ) -> bool {
        let actual = self.jobs.get(&job).and_then(|j| j.flow);
        match actual {
            Some(f) if f == flow => true,
            Some(f) => {
                self.violation(
                    endpoint,
                    runner,
                    format!("{endpoint} used for {} job", flow_name(f)),
                );
                false
            }
            None => false,
        }
    }

    /// A completion reported by a runner or worker through `path`.
    pub fn report_completion(
        &mut self,
        job: u64,
        result: &str,
        path: CompletionPath,
        outputs: Option<serde_json::Value>,
        endpoint: &str,
        runner: Option<String>,
    ) -> Result<Reported, ReportError> {
        if let Some(flow) = flow_of(path)
            && !self.check_flow(job, flow, endpoint, runner.clone())
        {
            return Err(ReportError::WrongFlow);
        }
        let run_service = path == CompletionPath::CompleteJob;
        let Some(canonical) = task_result(result, run_service) else {
            let why = if run_service && task_result(result, false).is_some() {
                "is not lower-case"
            } else {
                "is not a TaskResult"
            };
            self.violation(endpoint, runner, format!("result {result:?} {why}"));
            return Err(ReportError::BadResult);
        };
        let plan8 = self.cfg.plan_version >= 8;
        if path == CompletionPath::PlanEvent && !plan8 {
            return Ok(Reported::IgnoredBelowPlan8);
        }
        if path == CompletionPath::JobRequestFinish && plan8 {
            self.violation(
                endpoint,
                runner.clone(),
                "finished the job request although plan version >= 8 (the worker raises JobCompleted)",
            );
        }
        match self.complete(job, canonical, path, outputs) {
            Ok(()) => Ok(Reported::Completed),
            Err(TakeError::Completed) => {
                // After a force-cancel, a cancel deadline or lock expiry the reporter cannot
                // know; only a second report after a runner's own report is a violation.
                let by_runner = self
                    .jobs
                    .get(&job)
                    .and_then(|j| j.snapshot.completed_via)
                    .is_some_and(|p| flow_of(p).is_some());
                if by_runner {
                    self.violation(endpoint, runner, "completion for a job that already ended");
                }
                Err(ReportError::Ended)
            }
            Err(_) => Err(ReportError::Ended),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_results_are_not_webhook_words() {
        assert_eq!(task_result("Succeeded", false), Some("succeeded"));
        assert_eq!(
            task_result("succeededWithIssues", false),
            Some("succeededwithissues")
        );
        assert_eq!(task_result("Failed", true), None);
        assert_eq!(task_result("canceled", true), Some("canceled"));
        assert_eq!(task_result("cancelled", false), None);
        assert_eq!(task_result("success", false), None);
    }
}
