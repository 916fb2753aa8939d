//! REST for workflow runs and jobs: list runs by status, jobs of a run, one job, cancel,
//! force-cancel and re-run.
//!
//! Owns the run and job body shapes (as `tests/fixtures/rest/examples`) and deriving a run's
//! status and conclusion from its jobs. Authentication and budget are `rest`'s.

use super::http::{SimState, begin, github_time, query_param, rest_error};
use super::model::{JobStatus, SimJob, endpoint};
use super::rest::{RestAuth, answer, authorize, charge, paging};
use super::server::Shared;
use super::world::{Run, World};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::HashMap;

type Q = Query<HashMap<String, String>>;

pub(crate) fn job_json(w: &World, j: &SimJob) -> Value {
    let api = w.api_url();
    let base = w.base.as_str();
    let repo = &j.repository;
    let head_sha = w
        .runs
        .get(&j.run_id)
        .map(|r| r.head_sha.clone())
        .unwrap_or_default();
    json!({
        "id": j.id,
        "run_id": j.run_id,
        "run_url": format!("{api}/repos/{repo}/actions/runs/{}", j.run_id),
        "run_attempt": j.run_attempt,
        "node_id": format!("CR_sim{}", j.id),
        "head_sha": head_sha,
        "url": format!("{api}/repos/{repo}/actions/jobs/{}", j.id),
        "html_url": format!("{base}{repo}/actions/runs/{}/job/{}", j.run_id, j.id),
        "status": j.status.as_str(),
        "conclusion": j.conclusion,
        "created_at": github_time(j.created_at),
        "started_at": github_time(j.started_at.unwrap_or(j.created_at)),
        "completed_at": j.completed_at.map(github_time),
        "name": j.job_name,
        "steps": [],
        "check_run_url": format!("{api}/repos/{repo}/check-runs/{}", j.id),
        "labels": j.labels,
        "runner_id": j.runner_id,
        "runner_name": j.runner_name,
        "runner_group_id": j.runner_id.map(|_| 1),
        "runner_group_name": j.runner_id.map(|_| "Default"),
        "workflow_name": j.workflow_name,
        "head_branch": "main",
    })
}

/// Every job of every run, indexed by run id: one pass over the jobs per request.
fn jobs_by_run(w: &World) -> HashMap<u64, Vec<&SimJob>> {
    let mut index: HashMap<u64, Vec<&SimJob>> = HashMap::new();
    for j in w.jobs.values().map(|j| &j.snapshot) {
        index.entry(j.run_id).or_default().push(j);
    }
    index
}

/// The jobs of one run.
fn run_jobs_of(w: &World, run_id: u64) -> Vec<&SimJob> {
    w.jobs
        .values()
        .map(|j| &j.snapshot)
        .filter(|j| j.run_id == run_id)
        .collect()
}

/// The jobs of a run's latest attempt of each job name (what `filter=latest` lists): a job
/// re-run later is replaced by its newest attempt; several jobs of one name in the same
/// attempt (a matrix) are all listed.
fn latest<'a>(jobs: &[&'a SimJob]) -> Vec<&'a SimJob> {
    let newest = |name: &str| {
        jobs.iter()
            .filter(|j| j.job_name == name)
            .map(|j| j.run_attempt)
            .max()
            .unwrap_or(0)
    };
    jobs.iter()
        .filter(|j| j.run_attempt == newest(&j.job_name))
        .copied()
        .collect()
}

/// A run's (status, conclusion), from its latest jobs.
fn run_state(jobs: &[&SimJob]) -> (&'static str, Option<&'static str>) {
    let jobs = latest(jobs);
    if jobs.iter().all(|j| j.status == JobStatus::Completed) {
        let c = |name: &str| jobs.iter().any(|j| j.conclusion.as_deref() == Some(name));
        let conclusion = if c("failure") {
            "failure"
        } else if c("cancelled") {
            "cancelled"
        } else {
            "success"
        };
        ("completed", Some(conclusion))
    } else if jobs.iter().all(|j| j.status == JobStatus::Queued) {
        ("queued", None)
    } else {
        ("in_progress", None)
    }
}

/// The last change of a run: derived from its jobs, so an unchanged run keeps its ETag.
fn updated_at(r: &Run, jobs: &[&SimJob]) -> chrono::DateTime<chrono::Utc> {
    jobs.iter()
        .flat_map(|j| [Some(j.created_at), j.started_at, j.completed_at])
        .flatten()
        .max()
        .unwrap_or(r.created_at)
}

fn run_json(w: &World, r: &Run, jobs: &[&SimJob]) -> Value {
    let api = w.api_url();
    let repo = &r.repository;
    let (status, conclusion) = run_state(jobs);
    let url = format!("{api}/repos/{repo}/actions/runs/{}", r.id);
    json!({
        "id": r.id,
        "name": r.workflow_name,
        "node_id": format!("WFR_sim{}", r.id),
        "head_branch": "main",
        "head_sha": r.head_sha,
        "path": ".github/workflows/ci.yml",
        "run_number": r.id % 10_000,
        "run_attempt": r.attempt,
        "event": "push",
        "display_title": r.workflow_name,
        "status": status,
        "conclusion": conclusion,
        "workflow_id": 1,
        "url": url,
        "html_url": format!("{}{repo}/actions/runs/{}", w.base, r.id),
        "jobs_url": format!("{url}/jobs"),
        "cancel_url": format!("{url}/cancel"),
        "rerun_url": format!("{url}/rerun"),
        "created_at": github_time(r.created_at),
        "updated_at": github_time(updated_at(r, jobs)),
        "run_started_at": github_time(r.created_at),
        "pull_requests": [],
        "repository": { "full_name": repo, "html_url": format!("{}{repo}", w.base) },
    })
}

async fn guard(shared: &Shared, headers: &HeaderMap, ep: &str) -> Result<RestAuth, Response> {
    begin(shared, ep, headers).await?;
    authorize(shared, headers, None, ep)
}

pub(crate) async fn list_runs(
    axum::extract::State(s): SimState,
    Path((o, r)): Path<(String, String)>,
    h: HeaderMap,
    Query(q): Q,
) -> Response {
    let auth = match guard(&s, &h, endpoint::RUNS_LIST).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let repo = format!("{o}/{r}");
    let status = query_param(&q, "status").map(str::to_string);
    let (per_page, page) = paging(&q);
    let body = {
        let w = s.lock();
        let index = jobs_by_run(&w);
        let none = Vec::new();
        let runs: Vec<(&Run, &Vec<&SimJob>)> = w
            .runs
            .values()
            .rev()
            .filter(|run| run.repository.eq_ignore_ascii_case(&repo))
            .map(|run| (run, index.get(&run.id).unwrap_or(&none)))
            .filter(|(_, jobs)| {
                let (st, c) = run_state(jobs);
                status.as_deref().is_none_or(|f| f == st || Some(f) == c)
            })
            .collect();
        let total = runs.len();
        let page: Vec<Value> = runs
            .into_iter()
            .skip(page.saturating_sub(1).saturating_mul(per_page))
            .take(per_page)
            .map(|(run, jobs)| run_json(&w, run, jobs))
            .collect();
        json!({ "total_count": total, "workflow_runs": page })
    };
    answer(&s, &h, auth, StatusCode::OK, Some(body))
}

pub(crate) async fn get_run(
    axum::extract::State(s): SimState,
    Path((o, r, run)): Path<(String, String, u64)>,
    h: HeaderMap,
) -> Response {
    let auth = match guard(&s, &h, endpoint::RUN_GET).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let body = {
        let w = s.lock();
        w.runs
            .get(&run)
            .filter(|x| x.repository.eq_ignore_ascii_case(&format!("{o}/{r}")))
            .map(|x| run_json(&w, x, &run_jobs_of(&w, x.id)))
    };
    match body {
        Some(b) => answer(&s, &h, auth, StatusCode::OK, Some(b)),
        None => charge(&s, auth, rest_error(StatusCode::NOT_FOUND, "Not Found")),
    }
}

async fn jobs_of(
    s: &Shared,
    h: &HeaderMap,
    repo: String,
    run: u64,
    attempt: Option<u32>,
    q: &HashMap<String, String>,
) -> Response {
    let auth = match guard(s, h, endpoint::RUN_JOBS).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let all = query_param(q, "filter") == Some("all");
    let (per_page, page) = paging(q);
    let body = 'body: {
        let w = s.lock();
        if w.runs
            .get(&run)
            .is_none_or(|x| !x.repository.eq_ignore_ascii_case(&repo))
        {
            break 'body None;
        }
        let jobs: Vec<&SimJob> = match attempt {
            Some(n) => w
                .jobs
                .values()
                .map(|j| &j.snapshot)
                .filter(|j| j.run_id == run && j.run_attempt == n)
                .collect(),
            None if all => w
                .jobs
                .values()
                .map(|j| &j.snapshot)
                .filter(|j| j.run_id == run)
                .collect(),
            None => latest(&run_jobs_of(&w, run)),
        };
        let total = jobs.len();
        let jobs: Vec<Value> = jobs
            .into_iter()
            .skip(page.saturating_sub(1).saturating_mul(per_page))
            .take(per_page)
            .map(|j| job_json(&w, j))
            .collect();
        Some(json!({ "total_count": total, "jobs": jobs }))
    };
    match body {
        Some(body) => answer(s, h, auth, StatusCode::OK, Some(body)),
        None => charge(s, auth, rest_error(StatusCode::NOT_FOUND, "Not Found")),
    }
}

pub(crate) async fn run_jobs(
    axum::extract::State(s): SimState,
    Path((o, r, run)): Path<(String, String, u64)>,
    h: HeaderMap,
    Query(q): Q,
) -> Response {
    jobs_of(&s, &h, format!("{o}/{r}"), run, None, &q).await
}

pub(crate) async fn attempt_jobs(
    axum::extract::State(s): SimState,
    Path((o, r, run, attempt)): Path<(String, String, u64, u32)>,
    h: HeaderMap,
    Query(q): Q,
) -> Response {
    jobs_of(&s, &h, format!("{o}/{r}"), run, Some(attempt), &q).await
}

pub(crate) async fn get_job(
    axum::extract::State(s): SimState,
    Path((o, r, job)): Path<(String, String, u64)>,
    h: HeaderMap,
) -> Response {
    let auth = match guard(&s, &h, endpoint::JOB_GET).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let body = {
        let w = s.lock();
        w.jobs
            .get(&job)
            .filter(|j| {
                j.snapshot
                    .repository
                    .eq_ignore_ascii_case(&format!("{o}/{r}"))
            })
            .map(|j| job_json(&w, &j.snapshot))
    };
    match body {
        Some(b) => answer(&s, &h, auth, StatusCode::OK, Some(b)),
        None => charge(&s, auth, rest_error(StatusCode::NOT_FOUND, "Not Found")),
    }
}

async fn cancel_with(s: &Shared, h: &HeaderMap, repo: String, run: u64, force: bool) -> Response {
    let ep = if force {
        endpoint::RUN_FORCE_CANCEL
    } else {
        endpoint::RUN_CANCEL
    };
    let auth = match guard(s, h, ep).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let outcome = s.update(|w| {
        let Some(r) = w
            .runs
            .get(&run)
            .filter(|x| x.repository.eq_ignore_ascii_case(&repo))
        else {
            return Err(StatusCode::NOT_FOUND);
        };
        if run_state(&run_jobs_of(w, r.id)).0 == "completed" {
            return Err(StatusCode::CONFLICT);
        }
        w.cancel_run(run, force);
        Ok(())
    });
    match outcome {
        Ok(()) => answer(s, h, auth, StatusCode::ACCEPTED, Some(json!({}))),
        Err(StatusCode::CONFLICT) => charge(
            s,
            auth,
            rest_error(
                StatusCode::CONFLICT,
                "Cannot cancel a workflow run that is completed.",
            ),
        ),
        Err(code) => charge(s, auth, rest_error(code, "Not Found")),
    }
}

pub(crate) async fn cancel(
    axum::extract::State(s): SimState,
    Path((o, r, run)): Path<(String, String, u64)>,
    h: HeaderMap,
) -> Response {
    cancel_with(&s, &h, format!("{o}/{r}"), run, false).await
}

pub(crate) async fn force_cancel(
    axum::extract::State(s): SimState,
    Path((o, r, run)): Path<(String, String, u64)>,
    h: HeaderMap,
) -> Response {
    cancel_with(&s, &h, format!("{o}/{r}"), run, true).await
}

pub(crate) async fn rerun(
    axum::extract::State(s): SimState,
    Path((o, r, job)): Path<(String, String, u64)>,
    h: HeaderMap,
) -> Response {
    let auth = match guard(&s, &h, endpoint::JOB_RERUN).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let repo = format!("{o}/{r}");
    let outcome = s.update(|w| {
        let Some(j) = w
            .jobs
            .get(&job)
            .filter(|j| j.snapshot.repository.eq_ignore_ascii_case(&repo))
        else {
            return Err(rest_error(StatusCode::NOT_FOUND, "Not Found"));
        };
        if j.snapshot.status != JobStatus::Completed {
            return Err(rest_error(
                StatusCode::FORBIDDEN,
                "This job is not completed and cannot be re-run.",
            ));
        }
        w.rerun_job(job)
            .ok_or_else(|| rest_error(StatusCode::NOT_FOUND, "Not Found"))
    });
    match outcome {
        Ok(_) => answer(&s, &h, auth, StatusCode::CREATED, Some(json!({}))),
        Err(r) => charge(&s, auth, r),
    }
}
