//! REST under `/api/v3`: tokens, runners, runs and jobs, cancel and re-run, the PAT budget in
//! `x-ratelimit-*` headers, and free `304` answers to `If-None-Match`.

mod sim_client;

use jsonwebtoken::Algorithm;
use megascaler::sim::{JobSpec, JobStatus, SimConfig, endpoint};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sim_client::*;

fn remaining(a: &Answer) -> u64 {
    a.headers["x-ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn tokens_budget_and_etags() {
    let (sim, c) = start(fast()).await;
    let api = format!("{}api/v3", sim.base_url());
    let t = c
        .call(
            Method::POST,
            &format!("{api}/orgs/octo/actions/runners/registration-token"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED);
    let expires =
        chrono::DateTime::parse_from_rfc3339(t.body["expires_at"].as_str().unwrap()).unwrap();
    let left = expires
        .signed_duration_since(chrono::Utc::now())
        .num_minutes();
    assert!((58..=60).contains(&left), "1 h expiry, got {left} min");
    assert_eq!(t.headers["x-ratelimit-limit"], "5000");
    let before = remaining(&t);
    let bad = c
        .call(
            Method::GET,
            &format!("{api}/repos/{REPO}/actions/runs"),
            Scheme::Bearer("ghp_wrong"),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.body["message"], "Bad credentials");

    sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let url = format!("{api}/repos/{REPO}/actions/runs?status=queued");
    let runs = c
        .call(Method::GET, &url, Scheme::Bearer(sim.pat()), None)
        .await;
    assert_eq!(runs.status, StatusCode::OK);
    assert_eq!(runs.body["total_count"], json!(1));
    assert_eq!(runs.body["workflow_runs"][0]["status"], "queued");
    assert_eq!(remaining(&runs), before - 1);
    let etag = runs.headers["etag"].to_str().unwrap().to_string();
    let calls = sim.counters().pat_calls;
    let cached = c
        .call_with(
            Method::GET,
            &url,
            Scheme::Bearer(sim.pat()),
            None,
            Some(UA),
            &[("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert_eq!(remaining(&cached), before - 1, "a 304 is free");
    assert_eq!(sim.counters().pat_calls, calls);
    assert_eq!(sim.counters().not_modified, 1);
    // A change makes the ETag stale.
    sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let fresh = c
        .call_with(
            Method::GET,
            &url,
            Scheme::Bearer(sim.pat()),
            None,
            Some(UA),
            &[("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(fresh.body["total_count"], json!(2));
    assert_eq!(
        sim.counters().get(endpoint::RUNS_LIST),
        4,
        "every call counts, refused ones too"
    );
    sim.shutdown();
}

#[tokio::test]
async fn the_budget_runs_out() {
    let (sim, c) = start(SimConfig {
        rest_rate_limit: 2,
        ..fast()
    })
    .await;
    let url = format!("{}api/v3/repos/{REPO}/actions/runs", sim.base_url());
    for _ in 0..2 {
        assert_eq!(
            c.call(Method::GET, &url, Scheme::Bearer(sim.pat()), None)
                .await
                .status,
            StatusCode::OK
        );
    }
    let out = c
        .call(Method::GET, &url, Scheme::Bearer(sim.pat()), None)
        .await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(remaining(&out), 0);
    assert!(out.headers.contains_key("x-ratelimit-reset"));
    assert_eq!(sim.counters().pat_calls, 2);
    sim.shutdown();
}

#[tokio::test]
async fn runs_jobs_cancel_and_rerun() {
    let (sim, c) = start(fast()).await;
    let api = format!("{}api/v3/repos/{REPO}/actions", sim.base_url());
    let pat = Scheme::Bearer(sim.pat());
    let id = sim.queue_job(JobSpec::new(REPO, &["linux", "x64"]));
    let run_id = sim.job(id).unwrap().run_id;
    let job = c
        .call(Method::GET, &format!("{api}/jobs/{id}"), pat, None)
        .await;
    assert_eq!(job.status, StatusCode::OK);
    for key in [
        "id",
        "run_id",
        "run_url",
        "status",
        "conclusion",
        "labels",
        "runner_name",
        "runner_id",
        "workflow_name",
        "check_run_url",
        "html_url",
    ] {
        assert!(job.body.get(key).is_some(), "job lacks {key}");
    }
    assert_eq!(job.body["labels"], json!(["linux", "x64"]));
    assert_eq!(job.body["runner_name"], serde_json::Value::Null);
    assert!(
        job.body["check_run_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/check-runs/{id}"))
    );
    let jobs = c
        .call(
            Method::GET,
            &format!("{api}/runs/{run_id}/jobs"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(jobs.body["total_count"], json!(1));
    let cancel = c
        .call(
            Method::POST,
            &format!("{api}/runs/{run_id}/cancel"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED);
    let j = sim.job(id).unwrap();
    assert_eq!(
        (j.status, j.conclusion.as_deref()),
        (JobStatus::Completed, Some("cancelled"))
    );
    let again = c
        .call(
            Method::POST,
            &format!("{api}/runs/{run_id}/cancel"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let rerun = c
        .call(
            Method::POST,
            &format!("{api}/jobs/{id}/rerun"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(rerun.status, StatusCode::CREATED);
    let latest = c
        .call(
            Method::GET,
            &format!("{api}/runs/{run_id}/jobs"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(latest.body["total_count"], json!(1));
    assert_eq!(latest.body["jobs"][0]["run_attempt"], json!(2));
    assert_eq!(latest.body["jobs"][0]["status"], "queued");
    let first = c
        .call(
            Method::GET,
            &format!("{api}/runs/{run_id}/attempts/1/jobs"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(first.body["jobs"][0]["id"], json!(id));
    let run = c
        .call(
            Method::GET,
            &format!("{api}/runs/{run_id}"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(
        (
            run.body["status"].as_str(),
            run.body["run_attempt"].as_u64()
        ),
        (Some("queued"), Some(2))
    );
    let missing = c
        .call(
            Method::GET,
            &format!("{api}/jobs/1"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let calls = sim.counters().pat_calls;
    assert!(
        missing.headers.contains_key("x-ratelimit-remaining"),
        "errors count against the budget too"
    );
    let again = c
        .call(
            Method::GET,
            &format!("{api}/jobs/1"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(remaining(&again) + 1, remaining(&missing));
    assert_eq!(sim.counters().pat_calls, calls + 1);
    sim.shutdown();
}

#[tokio::test]
async fn runners_list_and_delete() {
    let (sim, c) = start(fast()).await;
    let api = format!("{}api/v3/repos/{REPO}/actions", sim.base_url());
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    let list = c
        .call(
            Method::GET,
            &format!("{api}/runners?per_page=100"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(list.body["total_count"], json!(1));
    let runner = &list.body["runners"][0];
    assert_eq!(runner["name"], json!(r.name));
    assert_eq!(runner["status"], "offline");
    assert_eq!(runner["labels"][0]["name"], "linux");
    // Busy runners are not deleted (422); idle ones are (204).
    let s = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    let sid = s.body["sessionId"].as_str().unwrap();
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let msg = poll(
        &c,
        &format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1")])),
        &r.token,
    )
    .await;
    let job: serde_json::Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
    let req = job["requestId"].as_u64().unwrap().to_string();
    c.call(
        Method::PATCH,
        &r.url(JOBREQUESTS, &[("poolId", "1"), ("requestId", &req)]),
        Scheme::Bearer(&r.token),
        Some(json!({ "requestId": job["requestId"] })),
    )
    .await;
    assert_eq!(sim.job(id).unwrap().status, JobStatus::InProgress);
    let rid = r.agent_id();
    let busy = c
        .call(
            Method::DELETE,
            &format!("{api}/runners/{rid}"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(busy.status, StatusCode::UNPROCESSABLE_ENTITY);
    let online = c
        .call(
            Method::GET,
            &format!("{api}/runners/{rid}"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(
        (
            online.body["status"].as_str(),
            online.body["busy"].as_bool()
        ),
        (Some("online"), Some(true))
    );
    let idle = register_v1(&sim, &c, &["gpu"], Algorithm::RS256).await;
    let del = c
        .call(
            Method::DELETE,
            &format!("{api}/runners/{}", idle.agent_id()),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(sim.runners().len(), 1);
    sim.shutdown();
}

#[tokio::test]
async fn latest_lists_every_job_of_the_newest_attempt() {
    let (sim, c) = start(fast()).await;
    let a = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let run = sim.job(a).unwrap().run_id;
    let b = sim.queue_job(JobSpec {
        run_id: Some(run),
        ..JobSpec::new(REPO, &["linux"])
    });
    let url = format!(
        "{}api/v3/repos/{REPO}/actions/runs/{run}/jobs?filter=latest",
        sim.base_url()
    );
    let ids = |body: &serde_json::Value| -> Vec<u64> {
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_u64().unwrap())
            .collect()
    };
    // Two jobs of one name in one attempt (a matrix) are both listed.
    let jobs = c
        .call(Method::GET, &url, Scheme::Bearer(sim.pat()), None)
        .await
        .body;
    assert_eq!(ids(&jobs), vec![a, b]);
    sim.cancel_run(run);
    let rerun = sim.rerun_job(a).unwrap();
    let jobs = c
        .call(Method::GET, &url, Scheme::Bearer(sim.pat()), None)
        .await
        .body;
    assert_eq!(
        ids(&jobs),
        vec![rerun],
        "the re-run attempt replaces that name's jobs"
    );
    let all = c
        .call(
            Method::GET,
            &url.replace("latest", "all"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await
        .body;
    assert_eq!(all["total_count"], json!(3));
    sim.shutdown();
}
