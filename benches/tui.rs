//! How much the dashboard costs: folding engine events into the model, and drawing a frame.
//!
//! `cargo bench --bench tui`. The reducer must keep up with many workers printing at once; a
//! frame must draw well within the 33 ms frame budget even with hundreds of jobs.

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use megascaler::engine::event::{Event, JobState, JobView, OutputLine, Stream};
use megascaler::tui::app::App;
use megascaler::tui::views;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::hint::black_box;
use std::time::Duration;

fn job(id: u64, state: JobState) -> JobView {
    let t = Utc
        .with_ymd_and_hms(2026, 12, 6, 3, 0, 0)
        .single()
        .unwrap_or_default();
    JobView {
        id,
        repository: format!("acme/repo-{}", id % 7),
        run_id: id * 10,
        run_attempt: 1,
        workflow_name: "CI".into(),
        job_name: format!("job number {id}"),
        labels: vec!["self-hosted".into(), "linux".into()],
        state,
        conclusion: None,
        reason: Some("a reason a person reads".into()),
        runner_name: Some(format!("megascaler-{id}")),
        runner_was_other_jobs: id % 5 == 0,
        worker_entry: Some(0),
        worker_pid: Some(1000 + id as u32),
        log_path: Some(format!("/var/lib/megascaler/jobs/{id}.log").into()),
        html_url: None,
        queued_at: t,
        started_at: Some(t),
        finished_at: None,
    }
}

fn batch(n: usize, seq: usize) -> Vec<OutputLine> {
    (0..n)
        .map(|i| OutputLine {
            stream: if i % 10 == 0 {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            text: format!("line {seq}-{i}: compiling something with a typical length of text"),
        })
        .collect()
}

fn app_with_jobs(jobs: u64) -> App {
    let now = Utc::now();
    let mut app = App::new(Vec::new(), Duration::from_secs(45));
    for id in 0..jobs {
        let state = if id % 3 == 0 {
            JobState::Completed
        } else {
            JobState::WorkerRunning
        };
        app.apply(Event::Job(job(id, state)), now);
    }
    app
}

fn reducer(c: &mut Criterion) {
    let now = Utc::now();
    c.bench_function(
        "apply 50-line output batches to 40 running jobs (x1000)",
        |b| {
            let batches: Vec<Event> = (0..1000)
                .map(|i| Event::WorkerOutput {
                    job: (i % 40) as u64,
                    lines: batch(50, i),
                })
                .collect();
            b.iter_batched(
                || (app_with_jobs(40), batches.clone()),
                |(mut app, batches)| {
                    for e in batches {
                        app.apply(e, now);
                    }
                    black_box(app.model.jobs.len())
                },
                criterion::BatchSize::LargeInput,
            );
        },
    );
}

fn frame(c: &mut Criterion) {
    let now = Utc::now();
    let mut app = app_with_jobs(500);
    app.selected = Some(1);
    for i in 0..40 {
        app.apply(
            Event::WorkerOutput {
                job: 1,
                lines: batch(50, i),
            },
            now,
        );
    }
    for (w, h) in [(120u16, 40u16), (80, 24)] {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        c.bench_function(&format!("draw a {w}x{h} frame with 500 jobs"), |b| {
            b.iter(|| {
                terminal
                    .draw(|f| views::render(f, &app, now))
                    .expect("draw");
            })
        });
    }
}

criterion_group!(benches, reducer, frame);
criterion_main!(benches);
