//! The REST client against the simulator: every call the engine uses, conditional requests,
//! the budget, and 5xx / 429 storms with `Retry-After` honoured (E39).

use megascaler::config::RepoName;
use megascaler::github::{Conditional, GitHubClient, GitHubError, RestRetry, Scope};
use megascaler::secret::Secret;
use megascaler::sim::{Fault, JobSpec, JobStatus, SimConfig, SimHandle, Simulator, endpoint};
use std::time::Duration;

const REPO: &str = "octo/hello";

async fn start() -> (SimHandle, GitHubClient) {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let client = GitHubClient::new(&sim.base_url(), Secret::new(sim.pat())).with_retry(RestRetry {
        attempts: 3,
        server_error_delay: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(5),
    });
    (sim, client)
}

fn repo() -> RepoName {
    RepoName::parse(REPO).unwrap()
}

fn scope(sim: &SimHandle) -> Scope {
    Scope::parse(&sim.base_url().join(REPO).unwrap()).unwrap()
}

#[tokio::test]
async fn registration_and_remove_tokens_update_the_budget() {
    let (sim, gh) = start().await;
    let t = gh.create_registration_token(&scope(&sim)).await.unwrap();
    assert!(t.expires_at > chrono::Utc::now());
    assert!(!format!("{t:?}").contains(t.token.expose()));
    gh.create_remove_token(&scope(&sim)).await.unwrap();
    let b = gh.budget();
    assert_eq!(b.calls, 2);
    assert!(b.limit.is_some() && b.remaining.is_some() && b.reset.is_some());
    assert_eq!(sim.counters().pat_calls, 2);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[tokio::test]
async fn org_scope_tokens() {
    let (sim, gh) = start().await;
    let org = Scope::parse(&sim.base_url().join("octo").unwrap()).unwrap();
    gh.create_registration_token(&org).await.unwrap();
    assert_eq!(sim.counters().get(endpoint::REGISTRATION_TOKEN), 1);
}

#[tokio::test]
async fn runs_are_conditional_and_304_is_saved() {
    let (sim, gh) = start().await;
    let job = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let Conditional::Modified { value, etag } = gh
        .list_workflow_runs(&repo(), "queued", None)
        .await
        .unwrap()
    else {
        panic!("first request is never 304")
    };
    assert_eq!(value.workflow_runs.len(), 1);
    // An unchanged answer is a free 304.
    let calls = gh.budget().calls;
    let again = gh
        .list_workflow_runs(&repo(), "queued", etag.as_deref())
        .await
        .unwrap();
    assert_eq!(again, Conditional::NotModified);
    assert_eq!(gh.budget().saved, 1);
    assert_eq!(gh.budget().calls, calls + 1);
    assert_eq!(sim.counters().not_modified, 1);
    let run_id = value.workflow_runs[0].id;
    let jobs = gh.list_run_jobs(&repo(), run_id).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, job);
    assert_eq!(jobs[0].labels, vec!["linux".to_string()]);
    let one = gh.get_job(&repo(), job).await.unwrap();
    assert_eq!(one.status, "queued");
    assert_eq!(one.run_id, run_id);
}

#[tokio::test]
async fn cancel_force_cancel_and_rerun() {
    let (sim, gh) = start().await;
    let job = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let run = sim.job(job).unwrap().run_id;
    gh.cancel_run(&repo(), run).await.unwrap();
    assert!(
        sim.wait_until(
            |s| s.job(job).is_some_and(|j| j.status == JobStatus::Completed),
            Duration::from_secs(10)
        )
        .await
    );
    gh.force_cancel_run(&repo(), run).await.ok();
    assert_eq!(sim.counters().get(endpoint::RUN_FORCE_CANCEL), 1);
    gh.rerun_job(&repo(), job).await.unwrap();
    assert_eq!(sim.counters().get(endpoint::JOB_RERUN), 1);
}

#[tokio::test]
async fn runners_list_by_name_and_delete() {
    let (sim, gh) = start().await;
    assert!(
        gh.list_runners(&scope(&sim), None)
            .await
            .unwrap()
            .is_empty()
    );
    let missing = gh.delete_runner(&scope(&sim), 424242).await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
}

#[tokio::test]
async fn e39_rate_limit_storm_honours_retry_after() {
    let (sim, gh) = start().await;
    sim.inject(
        endpoint::REGISTRATION_TOKEN,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        2,
    );
    gh.create_registration_token(&scope(&sim)).await.unwrap();
    assert_eq!(sim.counters().get(endpoint::REGISTRATION_TOKEN), 3);
    // The simulator records any request that comes before the Retry-After it was given
    // (see `e39_the_retry_after_check_catches_an_eager_client`).
    assert_eq!(sim.violations(), vec![]);
}

#[tokio::test]
async fn e39_secondary_limit_403_storm_honours_retry_after() {
    let (sim, gh) = start().await;
    sim.inject(
        endpoint::RUNS_LIST,
        Fault::SecondaryRateLimited {
            retry_after_secs: 1,
        },
        2,
    );
    assert!(gh.list_workflow_runs(&repo(), "queued", None).await.is_ok());
    assert_eq!(sim.counters().get(endpoint::RUNS_LIST), 3);
    assert_eq!(sim.violations(), vec![]);
}

#[tokio::test]
async fn e39_the_retry_after_check_catches_an_eager_client() {
    let (sim, _) = start().await;
    sim.inject(
        endpoint::REGISTRATION_TOKEN,
        Fault::RateLimited {
            retry_after_secs: 30,
        },
        1,
    );
    let url = format!(
        "{}api/v3/repos/{REPO}/actions/runners/registration-token",
        sim.base_url()
    );
    let http = reqwest::Client::new();
    let call = || {
        http.post(&url)
            .bearer_auth(sim.pat())
            .header("User-Agent", "eager-test-client")
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 429);
    // Retrying at once, as a client that ignores Retry-After would.
    assert_eq!(call().await.unwrap().status(), 201);
    let v = sim.violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].endpoint, endpoint::REGISTRATION_TOKEN);
    assert!(v[0].message.contains("Retry-After"), "{v:?}");
    assert!(!v[0].message.contains(sim.pat()));
}

#[tokio::test]
async fn e39_primary_limit_is_not_hammered_before_the_reset() {
    let sim = Simulator::start(SimConfig {
        rest_rate_limit: 1,
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let gh = GitHubClient::new(&sim.base_url(), Secret::new(sim.pat())).with_retry(RestRetry {
        attempts: 3,
        server_error_delay: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(5),
    });
    gh.list_workflow_runs(&repo(), "queued", None)
        .await
        .unwrap();
    // The budget is spent and resets in an hour: longer than we wait, so reported at once.
    let e = gh
        .list_workflow_runs(&repo(), "queued", None)
        .await
        .unwrap_err();
    assert!(matches!(e, GitHubError::RateLimited { .. }), "{e:?}");
    assert_eq!(sim.counters().get(endpoint::RUNS_LIST), 2);
    assert_eq!(sim.violations(), vec![]);
}

#[tokio::test]
async fn e39_rate_limit_longer_than_allowed_is_reported() {
    let (sim, gh) = start().await;
    sim.inject(
        endpoint::REGISTRATION_TOKEN,
        Fault::RateLimited {
            retry_after_secs: 3600,
        },
        1,
    );
    let e = gh
        .create_registration_token(&scope(&sim))
        .await
        .unwrap_err();
    assert!(
        matches!(e, GitHubError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 3600),
        "{e:?}"
    );
    assert_eq!(
        sim.counters().get(endpoint::REGISTRATION_TOKEN),
        1,
        "no retry before the reset"
    );
}

#[tokio::test]
async fn server_error_storm_is_retried_then_reported() {
    let (sim, gh) = start().await;
    sim.inject(endpoint::RUNS_LIST, Fault::Status(502), 2);
    assert!(gh.list_workflow_runs(&repo(), "queued", None).await.is_ok());
    sim.inject(endpoint::RUNS_LIST, Fault::Status(503), 3);
    let e = gh
        .list_workflow_runs(&repo(), "queued", None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert!(!e.to_string().contains(sim.pat()));
}

#[tokio::test]
async fn wrong_pat_is_a_401_without_the_pat_in_the_error() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let gh = GitHubClient::new(&sim.base_url(), Secret::new("ghp_wrong_and_secret"));
    let e = gh
        .create_registration_token(&scope(&sim))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(!e.to_string().contains("ghp_wrong_and_secret"));
}
