//! How fast the simulated GitHub serves what tests and the demo ask of it: one v1 job end to
//! end over HTTP (session, long poll, ack, renew, JobCompleted), and the REST runs list as the
//! number of runs grows (what a polling engine pays per call).

#[path = "../tests/sim_client/mod.rs"]
mod sim_client;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use megascaler::sim::{JobSpec, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};
use sim_client::*;
use std::time::Duration;

fn v1_job_end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (sim, client) = rt.block_on(start(SimConfig {
        long_poll_hold: Duration::from_secs(5),
        ..SimConfig::default()
    }));
    c.bench_function("sim/v1 job: register+oauth+session+poll+ack+renew+complete", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = register_v1(&sim, &client, &["linux"], Algorithm::RS256).await;
                let s = client.call(Method::POST, &r.url(SESSIONS, &[("poolId", "1")]), Scheme::Bearer(&r.token), Some(json!({}))).await;
                let sid = s.body["sessionId"].as_str().unwrap().to_string();
                sim.queue_job(JobSpec::new(REPO, &["linux"]));
                let msg = poll(&client, &format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1")])), &r.token).await;
                let job: Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
                let mid = msg["messageId"].as_u64().unwrap().to_string();
                client
                    .call(Method::DELETE, &format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1"), ("messageId", &mid)])), Scheme::Bearer(&r.token), None)
                    .await;
                let req = job["requestId"].as_u64().unwrap().to_string();
                client
                    .call(Method::PATCH, &r.url(JOBREQUESTS, &[("poolId", "1"), ("requestId", &req)]), Scheme::Bearer(&r.token), Some(json!({ "requestId": job["requestId"] })))
                    .await;
                let (_, token) = vss(&job);
                let plan = &job["plan"];
                let events = r.url(
                    PLAN_EVENTS,
                    &[
                        ("scopeIdentifier", plan["scopeIdentifier"].as_str().unwrap()),
                        ("hubName", plan["planType"].as_str().unwrap()),
                        ("planId", plan["planId"].as_str().unwrap()),
                    ],
                );
                let done = client
                    .call(Method::POST, &events, Scheme::Bearer(&token), Some(json!({ "name": "JobCompleted", "jobId": job["jobId"], "result": "succeeded" })))
                    .await;
                assert!(done.status.is_success());
            })
        })
    });
    sim.shutdown();
}

fn rest_runs_list(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for runs in [10usize, 1000] {
        let (sim, client) = rt.block_on(start(SimConfig {
            rest_rate_limit: u32::MAX,
            ..SimConfig::default()
        }));
        for _ in 0..runs {
            sim.queue_job(JobSpec::new(REPO, &["linux"]));
        }
        let url = format!(
            "{}api/v3/repos/{REPO}/actions/runs?status=queued&per_page=100",
            sim.base_url()
        );
        c.bench_function(&format!("sim/REST runs list, {runs} runs"), |b| {
            b.iter(|| rt.block_on(client.call(Method::GET, &url, Scheme::Bearer(sim.pat()), None)))
        });
        sim.shutdown();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = v1_job_end_to_end, rest_runs_list
}
criterion_main!(benches);
