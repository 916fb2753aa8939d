//! REST polling: queued and in-progress runs and their jobs, and our prefix's runners.
//!
//! Owns the poll loop. Polling alone is enough to run jobs (a workstation behind NAT has no
//! webhooks), and with webhooks it repairs lost deliveries: runs of every job the engine still
//! holds open are re-read until GitHub says the job is over. Run lists are conditional
//! (`If-None-Match`), so an unchanged answer costs nothing. It decides nothing: it reports
//! what it saw as [`Input`]s.

use super::{IntakeCounters, parse_job};
use crate::config::RepoName;
use crate::engine::dispatch::{Input, ListedRunner, Source};
use crate::engine::event::JobId;
use crate::github::{Conditional, GitHubClient, Scope};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use url::Url;

/// Jobs the engine still holds open: `(repository, job, run id)`.
pub type OpenJobs = Vec<(String, JobId, u64)>;

/// What the poller needs.
pub struct Poller {
    pub client: Arc<GitHubClient>,
    pub github_url: Url,
    pub repositories: Vec<RepoName>,
    pub interval: Duration,
    pub inputs: mpsc::Sender<Input>,
    pub open_jobs: watch::Receiver<OpenJobs>,
    pub counters: Arc<IntakeCounters>,
}

#[derive(Default)]
struct RunList {
    etag: Option<String>,
    /// Run id and its `updated_at`.
    runs: Vec<(u64, Option<DateTime<Utc>>)>,
}

/// What the poller remembers between polls.
#[derive(Default)]
struct PollState {
    lists: HashMap<(String, &'static str), RunList>,
    /// `updated_at` of each run when its jobs were last read.
    read_at: HashMap<u64, Option<DateTime<Utc>>>,
    polls: u64,
}

/// Every this many polls, jobs of unchanged runs are read anyway (a safety net for a run whose
/// `updated_at` did not move).
const FULL_READ_EVERY: u64 = 10;

/// ±10 % around `interval`, so many instances do not poll in step.
fn jittered(interval: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.9 + f64::from(nanos % 1000) / 5000.0;
    interval.mul_f64(factor)
}

impl Poller {
    /// Polls until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut state = PollState::default();
        loop {
            let result = self.poll_once(&mut state).await;
            self.counters.update(|s| match result {
                Ok(()) => {
                    s.last_poll_ok = Some(chrono::Utc::now());
                    s.poll_error = None;
                }
                Err(e) => s.poll_error = Some(e),
            });
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(jittered(self.interval)) => {}
            }
        }
    }

    async fn poll_once(&self, state: &mut PollState) -> Result<(), String> {
        let open = self.open_jobs.borrow().clone();
        state.polls += 1;
        let full = state.polls % FULL_READ_EVERY == 1;
        let mut first_error = None;
        let mut current: Vec<u64> = Vec::new();
        for repo in &self.repositories {
            let name = repo.full_name();
            // run id -> updated_at (None: not listed any more, read it to learn how it ended).
            let mut runs: BTreeMap<u64, Option<DateTime<Utc>>> = BTreeMap::new();
            for status in ["queued", "in_progress"] {
                let list = state.lists.entry((name.clone(), status)).or_default();
                match self
                    .client
                    .list_workflow_runs(repo, status, list.etag.as_deref())
                    .await
                {
                    Ok(Conditional::NotModified) => {}
                    Ok(Conditional::Modified { value, etag }) => {
                        list.etag = etag;
                        list.runs = value
                            .workflow_runs
                            .iter()
                            .map(|r| (r.id, r.updated_at))
                            .collect();
                    }
                    Err(e) => {
                        first_error.get_or_insert(format!("{name}: listing {status} runs: {e}"));
                    }
                }
                runs.extend(list.runs.iter().copied());
            }
            let listed: Vec<u64> = runs.keys().copied().collect();
            // Runs of jobs still open here that left the lists: this is how lost `completed`
            // deliveries are repaired.
            for (_, _, run) in open
                .iter()
                .filter(|(r, _, _)| r.eq_ignore_ascii_case(&name))
            {
                runs.entry(*run).or_insert(None);
            }
            current.extend(runs.keys().copied());
            for (run, updated) in runs {
                let unchanged = updated.is_some()
                    && state.read_at.get(&run) == Some(&updated)
                    && listed.contains(&run);
                if unchanged && !full {
                    continue;
                }
                state.read_at.insert(run, updated);
                match self.client.list_run_jobs(repo, run).await {
                    Ok(jobs) => {
                        for job in jobs {
                            let Ok(value) = serde_json::to_value(&job) else {
                                continue;
                            };
                            if let Some(job) = parse_job(&value, &name, None) {
                                if self
                                    .inputs
                                    .send(Input::Observed {
                                        job,
                                        source: Source::Poll,
                                    })
                                    .await
                                    .is_err()
                                {
                                    return Ok(());
                                }
                            }
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(format!("{name}: jobs of run {run}: {e}"));
                    }
                }
            }
            let scope = Scope::repository(&self.github_url, &repo.owner, &repo.repo);
            match self.client.list_runners(&scope, None).await {
                Ok(list) => {
                    let runners = list
                        .into_iter()
                        .map(|r| ListedRunner {
                            id: r.id,
                            name: r.name,
                            busy: r.busy,
                        })
                        .collect();
                    let _ = self
                        .inputs
                        .send(Input::RunnersListed {
                            repository: name.clone(),
                            runners,
                        })
                        .await;
                }
                Err(e) => {
                    first_error.get_or_insert(format!("{name}: listing runners: {e}"));
                }
            }
        }
        // Forget runs nobody lists or holds open any more.
        state.read_at.retain(|run, _| current.contains(run));
        match first_error {
            Some(e) => {
                tracing::warn!("poll: {e}");
                Err(e)
            }
            None => Ok(()),
        }
    }
}
