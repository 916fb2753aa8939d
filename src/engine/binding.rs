//! Late binding: which job did a runner really receive?
//!
//! Pure. The job message may name the job itself (`check_run_id`); else intake may know which
//! runner took which job (`in_progress` names the runner); else the run id, attempt and job
//! name may single it out among the jobs intake knows. If none of these answers, the caller
//! waits for more intake and asks again. The worker is then chosen by the identified job's
//! labels, never by the job the runner was registered for.

use crate::engine::event::JobId;
use crate::protocol::api::JobIdentity;

/// What intake knows about one job that a runner may have received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: JobId,
    pub repository: &'a str,
    pub run_id: u64,
    pub run_attempt: u64,
    pub name: &'a str,
    /// The runner GitHub says took the job (`in_progress`), if known.
    pub runner_name: Option<&'a str>,
    /// Another of our runners already received this job.
    pub bound_elsewhere: bool,
    /// The runner's labels cover the job's (GitHub never gives a runner any other job).
    pub fits: bool,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identification {
    /// The runner received this job; `how` says how we know.
    Job { id: JobId, how: String },
    /// Not yet known; `why` says what is missing.
    Unknown { why: String },
}

/// Identifies the job `runner` received.
pub fn identify(identity: &JobIdentity, runner: &str, candidates: &[Candidate]) -> Identification {
    if let Some(id) = identity.check_run_id {
        return if candidates.iter().any(|c| c.id == id) {
            Identification::Job {
                id,
                how: format!("the job message names check run {id}"),
            }
        } else {
            Identification::Unknown {
                why: format!(
                    "the job message names job {id}, which intake has not seen yet (its labels decide the worker)"
                ),
            }
        };
    }
    if let Some(c) = candidates.iter().find(|c| c.runner_name == Some(runner)) {
        return Identification::Job {
            id: c.id,
            how: format!("GitHub reported runner {runner} took job {}", c.id),
        };
    }
    if let (Some(run_id), Some(attempt)) = (identity.run_id, identity.run_attempt) {
        let same: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| {
                c.run_id == run_id
                    && c.run_attempt == attempt
                    && c.name == identity.job_display_name
                    && !c.bound_elsewhere
                    && c.fits
                    && identity
                        .repository
                        .as_deref()
                        .is_none_or(|r| r.eq_ignore_ascii_case(c.repository))
            })
            .collect();
        match same.as_slice() {
            [one] => {
                return Identification::Job {
                    id: one.id,
                    how: format!(
                        "run {run_id} attempt {attempt} has exactly one job named \"{}\"",
                        identity.job_display_name
                    ),
                };
            }
            [] => {}
            many => {
                return Identification::Unknown {
                    why: format!(
                        "{} jobs of run {run_id} are named \"{}\"; waiting for GitHub to say which one runner {runner} took",
                        many.len(),
                        identity.job_display_name
                    ),
                };
            }
        }
    }
    Identification::Unknown {
        why: format!(
            "the job message has no check run id and intake knows no job of run {} named \"{}\"; waiting for an in_progress delivery or poll naming runner {runner}",
            identity
                .run_id
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".into()),
            identity.job_display_name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: JobId, name: &'static str, runner: Option<&'static str>) -> Candidate<'static> {
        Candidate {
            id,
            repository: "o/r",
            run_id: 7,
            run_attempt: 1,
            name,
            runner_name: runner,
            bound_elsewhere: false,
            fits: true,
        }
    }

    fn ident(check: Option<u64>, name: &str) -> JobIdentity {
        JobIdentity {
            check_run_id: check,
            run_id: Some(7),
            run_attempt: Some(1),
            repository: Some("O/R".into()),
            job_display_name: name.into(),
        }
    }

    #[test]
    fn check_run_id_wins() {
        let c = [cand(1, "a", None), cand(2, "b", Some("r"))];
        assert!(matches!(
            identify(&ident(Some(1), "zzz"), "r", &c),
            Identification::Job { id: 1, .. }
        ));
    }

    #[test]
    fn unknown_check_run_id_waits() {
        let c = [cand(1, "a", None)];
        assert!(matches!(
            identify(&ident(Some(9), "a"), "r", &c),
            Identification::Unknown { .. }
        ));
    }

    #[test]
    fn runner_name_from_intake() {
        let c = [cand(1, "a", None), cand(2, "a", Some("r"))];
        assert!(matches!(
            identify(&ident(None, "a"), "r", &c),
            Identification::Job { id: 2, .. }
        ));
    }

    #[test]
    fn run_and_name_single_out_a_job() {
        let c = [cand(1, "a", None), cand(2, "b", None)];
        assert!(matches!(
            identify(&ident(None, "b"), "r", &c),
            Identification::Job { id: 2, .. }
        ));
    }

    #[test]
    fn ambiguous_names_wait_and_bound_jobs_are_skipped() {
        let mut c = vec![cand(1, "a", None), cand(2, "a", None)];
        assert!(matches!(
            identify(&ident(None, "a"), "r", &c),
            Identification::Unknown { why } if why.contains("2 jobs")
        ));
        c[0].bound_elsewhere = true;
        assert!(matches!(
            identify(&ident(None, "a"), "r", &c),
            Identification::Job { id: 2, .. }
        ));
    }

    #[test]
    fn a_job_the_runner_could_not_have_received_is_not_a_candidate() {
        let mut c = vec![cand(1, "a", None), cand(2, "a", None)];
        c[0].fits = false;
        assert!(matches!(
            identify(&ident(None, "a"), "r", &c),
            Identification::Job { id: 2, .. }
        ));
    }
}
