//! GitHub's REST API, authenticated with the PAT, with its rate-limit budget.
//!
//! Owns every PAT-authenticated call megascaler makes (registration and remove tokens, runners,
//! workflow runs and jobs, cancel and re-run) and the budget those calls spend. Every request
//! carries `User-Agent: megascaler/<version>`, `Accept: application/vnd.github+json` and
//! `X-GitHub-Api-Version: 2022-11-28`; every response's rate-limit headers update the budget.
//! Secondary limits (403/429 with `retry-after`, E39) are waited out, bounded by [`RestRetry`].
//! It never logs or returns the PAT or a minted token in an error.

pub mod budget;
pub mod scope;
pub mod types;

pub use budget::BudgetTracker;
pub use scope::{Scope, ScopeError, ScopeKind};
pub use types::{Conditional, RunnerInfo, RunnerLabel, WorkflowJob, WorkflowRun, WorkflowRunsPage};

use crate::config::{RepoName, api_url_for};
use crate::engine::event::RestBudget;
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Why a REST call failed. Carries the status code so callers branch on numbers, not text.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    /// GitHub answered with a non-success status.
    #[error("GitHub REST {method} {path}: HTTP {status}: {message}")]
    Status {
        status: u16,
        method: String,
        path: String,
        message: String,
    },
    /// Rate limited (403/429 with `retry-after`, or the primary limit is spent) and the wait
    /// was longer than allowed or the retries ran out.
    #[error("GitHub REST {path}: rate limited (HTTP {status}), retry after {retry_after:?}")]
    RateLimited {
        status: u16,
        path: String,
        retry_after: Option<Duration>,
    },
    /// The request did not complete (connect, timeout, reset).
    #[error("GitHub REST {path}: {message}")]
    Transport { path: String, message: String },
    /// A success response whose body was not what the API documents.
    #[error("GitHub REST {path}: unexpected response body: {message}")]
    Decode { path: String, message: String },
}

impl GitHubError {
    /// The HTTP status, when GitHub answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GitHubError::Status { status, .. } | GitHubError::RateLimited { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// How hard a REST call tries before it reports an error.
#[derive(Debug, Clone)]
pub struct RestRetry {
    /// Attempts in total (1 = no retry).
    pub attempts: u32,
    /// Back-off before retrying a 5xx or a transport error (jittered between this and twice it).
    pub server_error_delay: Duration,
    /// The longest `retry-after` waited out; longer ones are returned as [`GitHubError::RateLimited`].
    pub max_retry_after: Duration,
}

impl Default for RestRetry {
    fn default() -> Self {
        RestRetry {
            attempts: 3,
            server_error_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A registration or remove token minted with the PAT (1 h).
#[derive(Debug, Clone)]
pub struct RunnerToken {
    pub token: Secret,
    pub expires_at: DateTime<Utc>,
}

/// The REST client. Cheap to clone (shares the connection pool and the budget).
#[derive(Debug, Clone)]
pub struct GitHubClient {
    http: reqwest::Client,
    api: Url,
    pat: Secret,
    budget: Arc<BudgetTracker>,
    retry: RestRetry,
}

/// The reqwest client every megascaler HTTP call uses: our User-Agent, sane timeouts, and
/// HTTPS only unless GitHub itself is configured over plain HTTP (the simulator), so a URL a
/// service hands us can never make us send a token in clear.
pub fn http_client(timeout: Duration, github_url: &Url) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(crate::USER_AGENT)
        .https_only(github_url.scheme() == "https")
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

impl GitHubClient {
    /// A client for `github_url` (`https://github.com` or a GHES base); the API root is derived
    /// with [`api_url_for`].
    pub fn new(github_url: &Url, pat: Secret) -> Self {
        GitHubClient {
            http: http_client(Duration::from_secs(60), github_url),
            api: api_url_for(github_url),
            pat,
            budget: Arc::new(BudgetTracker::default()),
            retry: RestRetry::default(),
        }
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: RestRetry) -> Self {
        self.retry = retry;
        self
    }

    /// The REST API root.
    pub fn api_url(&self) -> &Url {
        &self.api
    }

    /// `{api}{path}` (the API root may carry a path such as `/api/v3`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.api.as_str().trim_end_matches('/'), path)
    }

    /// The shared HTTP client (User-Agent set).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The budget as last reported, with our own counters.
    pub fn budget(&self) -> RestBudget {
        self.budget.snapshot()
    }

    /// The tracker, so caches can record the calls they saved.
    pub fn budget_tracker(&self) -> &Arc<BudgetTracker> {
        &self.budget
    }

    /// Sends one PAT-authenticated request, honouring `retry-after` and retrying 5xx.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        if_none_match: Option<&str>,
    ) -> Result<reqwest::Response, GitHubError> {
        let url = self.url(path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.pat.expose())
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
            if let Some(tag) = if_none_match {
                req = req.header("If-None-Match", tag);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            self.budget.record_call();
            let last = attempt >= self.retry.attempts.max(1);
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    if last {
                        return Err(GitHubError::Transport {
                            path: path.to_string(),
                            message: crate::protocol::http::describe_reqwest(&e),
                        });
                    }
                    tokio::time::sleep(jitter(self.retry.server_error_delay)).await;
                    continue;
                }
            };
            self.budget.update_from_headers(resp.headers());
            let status = resp.status();
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                return Ok(resp);
            }
            let wait = budget::retry_after(resp.headers(), Utc::now());
            let limited = status == StatusCode::TOO_MANY_REQUESTS
                || (status == StatusCode::FORBIDDEN && wait.is_some());
            if limited {
                match wait {
                    Some(w) if !last && w <= self.retry.max_retry_after => {
                        tracing::warn!(
                            path,
                            status = status.as_u16(),
                            wait_s = w.as_secs(),
                            "GitHub REST rate limited; waiting"
                        );
                        tokio::time::sleep(w).await;
                        continue;
                    }
                    None if !last => {
                        tokio::time::sleep(jitter(self.retry.server_error_delay)).await;
                        continue;
                    }
                    _ => {
                        return Err(GitHubError::RateLimited {
                            status: status.as_u16(),
                            path: path.to_string(),
                            retry_after: wait,
                        });
                    }
                }
            }
            if status.is_server_error() && !last {
                tokio::time::sleep(jitter(self.retry.server_error_delay)).await;
                continue;
            }
            let text =
                crate::protocol::redact::read_capped(resp, crate::protocol::redact::MAX_SMALL_BODY)
                    .await
                    .unwrap_or_default();
            return Err(GitHubError::Status {
                status: status.as_u16(),
                method: method.to_string(),
                path: path.to_string(),
                message: crate::protocol::redact::redact(
                    &error_message(&text),
                    &[self.pat.expose()],
                ),
            });
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, GitHubError> {
        let resp = self.send(method, path, body, None).await?;
        decode(path, resp).await
    }

    async fn no_body(&self, method: Method, path: &str) -> Result<(), GitHubError> {
        self.send(method, path, None, None).await.map(|_| ())
    }

    async fn runner_token(&self, scope: &Scope, kind: &str) -> Result<RunnerToken, GitHubError> {
        let path = format!("{}/actions/runners/{kind}", scope.rest_prefix());
        let raw: types::RawRunnerToken = self.json(Method::POST, &path, None).await?;
        Ok(RunnerToken {
            token: Secret::new(raw.token),
            expires_at: raw.expires_at.with_timezone(&Utc),
        })
    }

    /// `POST {scope}/actions/runners/registration-token` (1 REST call).
    pub async fn create_registration_token(
        &self,
        scope: &Scope,
    ) -> Result<RunnerToken, GitHubError> {
        self.runner_token(scope, "registration-token").await
    }

    /// `POST {scope}/actions/runners/remove-token` (1 REST call).
    pub async fn create_remove_token(&self, scope: &Scope) -> Result<RunnerToken, GitHubError> {
        self.runner_token(scope, "remove-token").await
    }

    /// `GET {scope}/actions/runners?per_page=100[&name=…]`, all pages.
    pub async fn list_runners(
        &self,
        scope: &Scope,
        name: Option<&str>,
    ) -> Result<Vec<RunnerInfo>, GitHubError> {
        let mut out = Vec::new();
        for page in 1..=50u32 {
            let mut path = format!(
                "{}/actions/runners?per_page=100&page={page}",
                scope.rest_prefix()
            );
            if let Some(n) = name {
                path.push_str("&name=");
                path.push_str(&urlencode(n));
            }
            let p: types::RunnersPage = self.json(Method::GET, &path, None).await?;
            let got = p.runners.len();
            out.extend(p.runners);
            if got < 100 || out.len() as u64 >= p.total_count {
                break;
            }
        }
        Ok(out)
    }

    /// `DELETE {scope}/actions/runners/{id}` (204).
    pub async fn delete_runner(&self, scope: &Scope, runner_id: u64) -> Result<(), GitHubError> {
        let path = format!("{}/actions/runners/{runner_id}", scope.rest_prefix());
        self.no_body(Method::DELETE, &path).await
    }

    /// `GET /repos/{o}/{r}/actions/runs?status=…&per_page=100`, conditional on `etag`.
    /// A 304 is counted as a saved call.
    pub async fn list_workflow_runs(
        &self,
        repo: &RepoName,
        status: &str,
        etag: Option<&str>,
    ) -> Result<Conditional<WorkflowRunsPage>, GitHubError> {
        let path = format!(
            "/repos/{}/{}/actions/runs?status={}&per_page=100",
            repo.owner,
            repo.repo,
            urlencode(status)
        );
        let resp = self.send(Method::GET, &path, None, etag).await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            self.budget.record_saved(1);
            return Ok(Conditional::NotModified);
        }
        let new_etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let value = decode(&path, resp).await?;
        Ok(Conditional::Modified {
            value,
            etag: new_etag,
        })
    }

    /// `GET /repos/{o}/{r}/actions/runs/{run_id}/jobs?filter=latest&per_page=100`, all pages.
    pub async fn list_run_jobs(
        &self,
        repo: &RepoName,
        run_id: u64,
    ) -> Result<Vec<WorkflowJob>, GitHubError> {
        let mut out = Vec::new();
        for page in 1..=10u32 {
            let path = format!(
                "/repos/{}/{}/actions/runs/{run_id}/jobs?filter=latest&per_page=100&page={page}",
                repo.owner, repo.repo
            );
            let p: types::JobsPage = self.json(Method::GET, &path, None).await?;
            let got = p.jobs.len();
            out.extend(p.jobs);
            if got < 100 || out.len() as u64 >= p.total_count {
                break;
            }
        }
        Ok(out)
    }

    /// `GET /repos/{o}/{r}/actions/jobs/{job_id}`.
    pub async fn get_job(&self, repo: &RepoName, job_id: u64) -> Result<WorkflowJob, GitHubError> {
        let path = format!("/repos/{}/{}/actions/jobs/{job_id}", repo.owner, repo.repo);
        self.json(Method::GET, &path, None).await
    }

    /// `POST /repos/{o}/{r}/actions/runs/{run_id}/cancel` (202).
    pub async fn cancel_run(&self, repo: &RepoName, run_id: u64) -> Result<(), GitHubError> {
        let path = format!(
            "/repos/{}/{}/actions/runs/{run_id}/cancel",
            repo.owner, repo.repo
        );
        self.no_body(Method::POST, &path).await
    }

    /// `POST /repos/{o}/{r}/actions/runs/{run_id}/force-cancel` (202).
    pub async fn force_cancel_run(&self, repo: &RepoName, run_id: u64) -> Result<(), GitHubError> {
        let path = format!(
            "/repos/{}/{}/actions/runs/{run_id}/force-cancel",
            repo.owner, repo.repo
        );
        self.no_body(Method::POST, &path).await
    }

    /// `POST /repos/{o}/{r}/actions/jobs/{job_id}/rerun` (201).
    pub async fn rerun_job(&self, repo: &RepoName, job_id: u64) -> Result<(), GitHubError> {
        let path = format!(
            "/repos/{}/{}/actions/jobs/{job_id}/rerun",
            repo.owner, repo.repo
        );
        self.no_body(Method::POST, &path).await
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    path: &str,
    resp: reqwest::Response,
) -> Result<T, GitHubError> {
    let bytes =
        crate::protocol::redact::read_capped(resp, crate::protocol::redact::MAX_MESSAGE_BODY)
            .await
            .map_err(|message| GitHubError::Transport {
                path: path.to_string(),
                message,
            })?;
    serde_json::from_slice(&bytes).map_err(|e| GitHubError::Decode {
        path: path.to_string(),
        message: crate::protocol::redact::json_error(&e),
    })
}

/// GitHub's `{"message": …}`, shortened; never the raw body (it could echo a header).
fn error_message(body: &[u8]) -> String {
    let msg = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    msg.chars().take(200).collect()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A delay between `base` and twice `base`, so retries from many tasks spread out.
pub(crate) fn jitter(base: Duration) -> Duration {
    let factor: f64 = rand::random_range(1.0..2.0);
    base.mul_f64(factor)
}
