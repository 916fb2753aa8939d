//! Which worker entry serves a job: the label rule, and the reason for every answer.
//!
//! Pure: plain data in, a decision with a sentence a person can read out. No IO, no state.

use crate::config::{MatchMode, WorkerEntry};
use std::collections::BTreeSet;

/// A set of labels compared ignoring case: lower-cased, sorted, without duplicates.
pub type LabelKey = BTreeSet<String>;

/// The comparison key of a label list.
pub fn label_key(labels: &[String]) -> LabelKey {
    labels.iter().map(|l| l.trim().to_lowercase()).collect()
}

/// The answer for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOutcome {
    /// `entry` (an index into the config's workers) serves the job.
    Matched { entry: usize, reason: String },
    /// No entry serves the job; `reason` lists, per entry, the labels missing or extra.
    Unmatched { reason: String },
}

impl MatchOutcome {
    /// The chosen entry, if any.
    pub fn entry(&self) -> Option<usize> {
        match self {
            MatchOutcome::Matched { entry, .. } => Some(*entry),
            MatchOutcome::Unmatched { .. } => None,
        }
    }

    /// The sentence explaining the outcome.
    pub fn reason(&self) -> &str {
        match self {
            MatchOutcome::Matched { reason, .. } | MatchOutcome::Unmatched { reason } => reason,
        }
    }
}

/// True when `entry` serves a job with these labels.
pub fn serves(entry: &WorkerEntry, job: &LabelKey) -> bool {
    let mine = label_key(&entry.labels);
    match entry.match_mode {
        MatchMode::Exact => &mine == job,
        MatchMode::Subset => job.is_subset(&mine),
    }
}

fn show(set: &LabelKey) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Chooses the worker entry for a job's labels: the first serving entry in config order.
pub fn match_job(workers: &[WorkerEntry], labels: &[String]) -> MatchOutcome {
    let job = label_key(labels);
    let candidates: Vec<usize> = workers
        .iter()
        .enumerate()
        .filter(|(_, w)| serves(w, &job))
        .map(|(i, _)| i)
        .collect();
    if let Some(&first) = candidates.first() {
        let rule = match workers[first].match_mode {
            MatchMode::Exact => "labels equal",
            MatchMode::Subset => "job labels are a subset",
        };
        let reason = if candidates.len() == 1 {
            format!("worker[{first}] serves [{}] ({rule})", show(&job))
        } else {
            let all: Vec<String> = candidates.iter().map(|c| format!("worker[{c}]")).collect();
            format!(
                "worker[{first}] serves [{}] ({rule}); chosen as the first in config order of {}",
                show(&job),
                all.join(", ")
            )
        };
        return MatchOutcome::Matched {
            entry: first,
            reason,
        };
    }
    let mut parts = Vec::new();
    for (i, w) in workers.iter().enumerate() {
        let mine = label_key(&w.labels);
        let missing: LabelKey = job.difference(&mine).cloned().collect();
        let extra: LabelKey = mine.difference(&job).cloned().collect();
        let mut diff = Vec::new();
        if !missing.is_empty() {
            diff.push(format!("missing [{}]", show(&missing)));
        }
        if !extra.is_empty() && w.match_mode == MatchMode::Exact {
            diff.push(format!("extra [{}]", show(&extra)));
        }
        parts.push(format!("worker[{i}] {}", diff.join(" and ")));
    }
    MatchOutcome::Unmatched {
        reason: format!(
            "no worker serves [{}]: {}",
            show(&job),
            if parts.is_empty() {
                "no worker entries".to_string()
            } else {
                parts.join("; ")
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(labels: &[&str], mode: MatchMode) -> WorkerEntry {
        WorkerEntry {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            args: vec!["w".into()],
            env: Default::default(),
            allocate: vec![],
            release: vec![],
            max: None,
            match_mode: mode,
        }
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_ignores_case_and_order() {
        let w = vec![entry(&["Self-Hosted", "linux"], MatchMode::Exact)];
        let m = match_job(&w, &labels(&["LINUX", "self-hosted"]));
        assert_eq!(m.entry(), Some(0));
        assert!(m.reason().contains("labels equal"), "{}", m.reason());
    }

    #[test]
    fn exact_refuses_a_subset() {
        let w = vec![entry(&["self-hosted", "linux", "big"], MatchMode::Exact)];
        let m = match_job(&w, &labels(&["self-hosted", "linux"]));
        assert_eq!(m.entry(), None);
        assert!(m.reason().contains("extra [big]"), "{}", m.reason());
    }

    #[test]
    fn subset_mode_accepts_fewer_labels() {
        let w = vec![entry(&["self-hosted", "k8s"], MatchMode::Subset)];
        assert_eq!(match_job(&w, &labels(&["k8s"])).entry(), Some(0));
        let m = match_job(&w, &labels(&["k8s", "gpu"]));
        assert_eq!(m.entry(), None);
        assert!(m.reason().contains("missing [gpu]"), "{}", m.reason());
        assert!(!m.reason().contains("extra"), "{}", m.reason());
    }

    #[test]
    fn first_in_config_order_wins_and_says_so() {
        let w = vec![
            entry(&["a"], MatchMode::Subset),
            entry(&["a", "b"], MatchMode::Subset),
            entry(&["a"], MatchMode::Exact),
        ];
        let m = match_job(&w, &labels(&["a"]));
        assert_eq!(m.entry(), Some(0));
        assert!(
            m.reason()
                .contains("first in config order of worker[0], worker[1], worker[2]"),
            "{}",
            m.reason()
        );
    }

    #[test]
    fn unmatched_lists_every_entry() {
        let w = vec![
            entry(&["a", "b"], MatchMode::Exact),
            entry(&["c"], MatchMode::Exact),
        ];
        let m = match_job(&w, &labels(&["a"]));
        let r = m.reason();
        assert!(r.contains("worker[0] extra [b]"), "{r}");
        assert!(r.contains("worker[1] missing [a] and extra [c]"), "{r}");
    }
}
