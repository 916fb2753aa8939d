//! Why a job's labels fit a worker entry or not, as the label sets' differences.
//!
//! Owns the dashboard's explanation of matching: for each worker entry of the configuration,
//! the job's labels the entry lacks and the entry's labels the job did not ask for. It only
//! explains; whether an entry serves is the engine's own rule ([`matching::serves`]), and the
//! engine's decisions are shown beside this. No IO.

use crate::config::WorkerEntry;
use crate::engine::matching;

/// How one worker entry compares with a job's `runs-on` labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFit {
    /// Index of the entry in the configuration (`worker[i]`).
    pub index: usize,
    /// Job labels the entry does not have.
    pub missing: Vec<String>,
    /// Entry labels the job does not ask for.
    pub extra: Vec<String>,
    /// True when the entry serves the job under its match mode.
    pub serves: bool,
}

/// Labels compare trimmed and lower-cased, as the configuration's rules say.
fn same(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn contains(set: &[String], label: &str) -> bool {
    set.iter().any(|l| same(l, label))
}

/// Compares the job's labels with every worker entry, in configuration order.
pub fn explain(job_labels: &[String], workers: &[WorkerEntry]) -> Vec<EntryFit> {
    workers
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let key = matching::label_key(job_labels);
            let missing: Vec<String> = job_labels
                .iter()
                .filter(|l| !contains(&entry.labels, l))
                .cloned()
                .collect();
            let extra: Vec<String> = entry
                .labels
                .iter()
                .filter(|l| !contains(job_labels, l))
                .cloned()
                .collect();
            // The engine's own rule, so the explanation cannot disagree with the decision.
            let serves = matching::serves(entry, &key);
            EntryFit {
                index,
                missing,
                extra,
                serves,
            }
        })
        .collect()
}

/// One line a person reads: `worker[1] ✓ serves` or `worker[0] ✗ missing gpu; extra linux`.
pub fn describe(fit: &EntryFit) -> String {
    let mut text = format!("worker[{}] ", fit.index);
    text.push_str(if fit.serves { "✓ serves" } else { "✗" });
    let mut parts = Vec::new();
    if !fit.missing.is_empty() {
        parts.push(format!("missing {}", fit.missing.join(",")));
    }
    if !fit.extra.is_empty() {
        parts.push(format!("extra {}", fit.extra.join(",")));
    }
    if !parts.is_empty() {
        text.push_str(if fit.serves { " (" } else { " " });
        text.push_str(&parts.join("; "));
        if fit.serves {
            text.push(')');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MatchMode;
    use crate::tui::sample;

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_entries_serve_only_equal_sets_ignoring_case() {
        let fits = explain(&labels(&["Self-Hosted", "LINUX"]), &sample::workers());
        assert!(fits[0].serves);
        assert!(!fits[1].serves);
        assert_eq!(fits[1].extra, labels(&["gpu"]));
        assert!(fits[1].missing.is_empty());
    }

    #[test]
    fn subset_entries_serve_jobs_asking_for_less() {
        let mut workers = sample::workers();
        workers[1].match_mode = MatchMode::Subset;
        let fits = explain(&labels(&["self-hosted", "gpu"]), &workers);
        assert!(!fits[0].serves);
        assert_eq!(fits[0].missing, labels(&["gpu"]));
        assert!(fits[1].serves);
        assert_eq!(describe(&fits[1]), "worker[1] ✓ serves (extra linux)");
        assert_eq!(describe(&fits[0]), "worker[0] ✗ missing gpu; extra linux");
    }
}
