//! GitHub's job-assignment rule as a pure function.
//!
//! Owns which runner a queued job goes to: any idle, online runner (an ephemeral one only if it
//! never had a job: the one-job rule) whose labels cover the job's labels, ignoring case; the configured
//! [`Assignment`] picks among them. No IO and no state: callers pass plain snapshots.

use super::config::Assignment;

/// What the rule needs to know about one runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate<'a> {
    pub id: u64,
    pub labels: &'a [String],
    /// Registration order (higher = newer).
    pub registered_seq: u64,
    /// A message session is open.
    pub online: bool,
    /// It holds a job now.
    pub busy: bool,
    /// It is ephemeral and already had its one job.
    pub had_job: bool,
    /// Registration scope, `owner/repo` or `org`.
    pub scope: &'a str,
}

/// True when every job label is among the runner's labels, ignoring case.
pub(crate) fn labels_cover(runner_labels: &[String], job_labels: &[String]) -> bool {
    job_labels.iter().all(|j| {
        runner_labels
            .iter()
            .any(|r| r.eq_ignore_ascii_case(j.trim()))
    })
}

/// True when a runner registered at `scope` may run jobs of `repository` (`owner/repo`).
pub(crate) fn scope_serves(scope: &str, repository: &str) -> bool {
    if scope.contains('/') {
        scope.eq_ignore_ascii_case(repository)
    } else {
        repository
            .split_once('/')
            .is_some_and(|(owner, _)| owner.eq_ignore_ascii_case(scope))
    }
}

/// The runner that gets the job, if any. `random(n)` returns an index below `n`.
pub(crate) fn pick_runner(
    repository: &str,
    job_labels: &[String],
    candidates: &[Candidate<'_>],
    rule: Assignment,
    random: impl FnOnce(usize) -> usize,
) -> Option<u64> {
    let mut eligible: Vec<&Candidate<'_>> = candidates
        .iter()
        .filter(|c| c.online && !c.busy && !c.had_job)
        .filter(|c| scope_serves(c.scope, repository))
        .filter(|c| labels_cover(c.labels, job_labels))
        .collect();
    if eligible.is_empty() {
        return None;
    }
    eligible.sort_by_key(|c| c.registered_seq);
    let chosen = match rule {
        Assignment::First => eligible.first(),
        Assignment::Newest => eligible.last(),
        Assignment::Random => eligible.get(random(eligible.len()).min(eligible.len() - 1)),
        // Ties go to the oldest, so the choice is deterministic.
        Assignment::MostLabels => {
            let most = eligible.iter().map(|c| c.labels.len()).max().unwrap_or(0);
            eligible.iter().find(|c| c.labels.len() == most)
        }
    };
    chosen.map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ls: &[&str]) -> Vec<String> {
        ls.iter().map(|s| s.to_string()).collect()
    }

    fn cand<'a>(id: u64, labels: &'a [String], seq: u64) -> Candidate<'a> {
        Candidate {
            id,
            labels,
            registered_seq: seq,
            online: true,
            busy: false,
            had_job: false,
            scope: "o/r",
        }
    }

    #[test]
    fn labels_cover_ignores_case_and_needs_every_label() {
        assert!(labels_cover(
            &labels(&["Linux", "GPU"]),
            &labels(&["linux"])
        ));
        assert!(labels_cover(&labels(&["linux"]), &labels(&[])));
        assert!(!labels_cover(
            &labels(&["linux"]),
            &labels(&["linux", "gpu"])
        ));
    }

    #[test]
    fn scope_rule_for_repo_and_org() {
        assert!(scope_serves("o/r", "O/R"));
        assert!(!scope_serves("o/r", "o/other"));
        assert!(scope_serves("o", "o/anything"));
        assert!(!scope_serves("o", "x/anything"));
    }

    #[test]
    fn each_rule_picks_its_runner() {
        let small = labels(&["linux"]);
        let big = labels(&["linux", "gpu", "big"]);
        let mid = labels(&["linux", "gpu"]);
        let cs = [cand(1, &mid, 1), cand(2, &big, 2), cand(3, &small, 3)];
        let job = labels(&["LINUX"]);
        assert_eq!(
            pick_runner("o/r", &job, &cs, Assignment::First, |_| 0),
            Some(1)
        );
        assert_eq!(
            pick_runner("o/r", &job, &cs, Assignment::Newest, |_| 0),
            Some(3)
        );
        assert_eq!(
            pick_runner("o/r", &job, &cs, Assignment::MostLabels, |_| 0),
            Some(2)
        );
        assert_eq!(
            pick_runner("o/r", &job, &cs, Assignment::Random, |_| 2),
            Some(3)
        );
        assert_eq!(
            pick_runner("o/r", &job, &cs, Assignment::Random, |_| 99),
            Some(3)
        );
    }

    #[test]
    fn most_labels_ties_go_to_the_oldest() {
        let a = labels(&["linux", "x"]);
        let b = labels(&["linux", "y"]);
        let cs = [cand(7, &b, 5), cand(4, &a, 2)];
        let job = labels(&["linux"]);
        assert_eq!(
            pick_runner("o/r", &job, &cs, Assignment::MostLabels, |_| 0),
            Some(4)
        );
    }

    #[test]
    fn offline_busy_foreign_and_uncovering_runners_never_get_the_job() {
        let l = labels(&["linux"]);
        let mut offline = cand(1, &l, 1);
        offline.online = false;
        let mut used = cand(2, &l, 2);
        used.had_job = true;
        let mut busy = cand(5, &l, 5);
        busy.busy = true;
        let mut foreign = cand(3, &l, 3);
        foreign.scope = "other/repo";
        let gpu = labels(&["gpu"]);
        let wrong = cand(4, &gpu, 4);
        let cs = [offline, used, foreign, wrong, busy];
        assert_eq!(
            pick_runner("o/r", &labels(&["linux"]), &cs, Assignment::First, |_| 0),
            None
        );
    }
}
