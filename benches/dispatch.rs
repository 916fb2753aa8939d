//! How much one dispatcher decision costs with many open jobs and runners, and what webhook
//! verification costs per delivery.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use megascaler::config::{MatchMode, WorkerEntry};
use megascaler::engine::dispatch::{
    Dispatcher, Effect, Input, ObservedJob, ObservedStatus, Settings, Source,
};
use megascaler::engine::intake::webhook::{sign, verify_signature};
use megascaler::protocol::api::{RunnerEnvelope, RunnerEvent};
use std::hint::black_box;
use std::time::Duration;

fn entry(labels: &[&str]) -> WorkerEntry {
    WorkerEntry {
        labels: labels.iter().map(|s| s.to_string()).collect(),
        args: vec!["w".into()],
        env: Default::default(),
        allocate: vec![],
        release: vec![],
        max: None,
        match_mode: MatchMode::Exact,
    }
}

fn observed(id: u64, labels: &[&str]) -> Input {
    Input::Observed {
        job: ObservedJob {
            id,
            repository: "o/r".into(),
            run_id: id,
            run_attempt: 1,
            workflow_name: "CI".into(),
            name: format!("job-{id}"),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            status: ObservedStatus::Queued,
            conclusion: None,
            runner_name: None,
            html_url: None,
            created_at: None,
        },
        source: Source::Webhook,
    }
}

fn loaded(open_jobs: u64) -> Dispatcher {
    let mut d = Dispatcher::new(Settings {
        workers: vec![
            entry(&["self-hosted", "linux"]),
            entry(&["self-hosted", "linux", "big"]),
            entry(&["windows"]),
        ],
        max_parallel: None,
        github_url: "https://github.com".parse().unwrap(),
        runner_name_prefix: "megascaler-".into(),
        identify_timeout: Duration::from_secs(300),
        cancel_grace: Duration::from_secs(45),
        registration_backoff: Duration::from_secs(5),
    });
    let sets: [&[&str]; 3] = [
        &["self-hosted", "linux"],
        &["self-hosted", "linux", "big"],
        &["windows"],
    ];
    for id in 0..open_jobs {
        d.handle(observed(id, sets[(id % 3) as usize]), chrono::Utc::now());
    }
    d
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatcher");
    for n in [100u64, 1000] {
        let mut d = loaded(n);
        g.bench_with_input(BenchmarkId::new("tick_with_open_jobs", n), &n, |b, _| {
            b.iter(|| black_box(d.handle(Input::Tick, chrono::Utc::now())))
        });
        // A job's whole life at constant load: queued, runner registered, completed while
        // queued, runner removed.
        let mut next = n;
        g.bench_with_input(
            BenchmarkId::new("job_lifecycle_with_open_jobs", n),
            &n,
            |b, _| {
                b.iter(|| {
                    next += 1;
                    let effects = d.handle(
                        observed(next, &["self-hosted", "linux"]),
                        chrono::Utc::now(),
                    );
                    let runner = effects.iter().find_map(|e| match e {
                        Effect::RegisterRunner(r) => Some(r.name.clone()),
                        _ => None,
                    });
                    let mut done = observed(next, &["self-hosted", "linux"]);
                    if let Input::Observed { job, .. } = &mut done {
                        job.status = ObservedStatus::Completed;
                        job.conclusion = Some("cancelled".into());
                    }
                    d.handle(done, chrono::Utc::now());
                    if let Some(runner) = runner {
                        d.handle(
                            Input::Runner(RunnerEnvelope {
                                runner,
                                event: RunnerEvent::Removed,
                            }),
                            chrono::Utc::now(),
                        );
                    }
                    // Keep the load constant: forget the finished job at once.
                    black_box(
                        d.handle(Input::Tick, chrono::Utc::now() + chrono::Duration::hours(2)),
                    )
                })
            },
        );
    }
    g.finish();
}

fn webhook(c: &mut Criterion) {
    let body = vec![b'x'; 25_000];
    let sig = sign(b"secret", &body);
    c.bench_function("verify_signature_25kB", |b| {
        b.iter(|| black_box(verify_signature(b"secret", Some(&sig), &body).is_ok()))
    });
}

criterion_group!(benches, dispatch, webhook);
criterion_main!(benches);
