use super::*;
use crate::engine::event::{DecisionKind, Stream};
use crate::tui::sample::{self, at, job, t0};

fn model_of(events: Vec<Event>) -> Model {
    let mut m = Model::default();
    for e in events {
        m.apply(e, t0());
    }
    m
}

fn out(text: &str) -> OutputLine {
    OutputLine {
        stream: Stream::Stdout,
        text: text.into(),
    }
}

#[test]
fn job_events_replace_the_view_and_record_each_distinct_state() {
    let mut j = job(1, "build", &["a"], JobState::Queued);
    let mut m = model_of(vec![Event::Job(j.clone())]);
    j.state = JobState::WorkerRunning;
    m.apply(Event::Job(j.clone()), t0());
    m.apply(Event::Job(j.clone()), t0());
    j.state = JobState::Completed;
    j.conclusion = Some("success".into());
    m.apply(Event::Job(j), t0());
    let r = &m.jobs[&1];
    assert_eq!(
        r.states,
        vec![
            JobState::Queued,
            JobState::WorkerRunning,
            JobState::Completed
        ]
    );
    assert_eq!(r.view.conclusion.as_deref(), Some("success"));
}

#[test]
fn decisions_go_to_the_feed_and_to_their_job_even_when_they_came_first() {
    let d = |job| {
        Event::Decision(Decision {
            at: at(0),
            job,
            kind: DecisionKind::Match,
            message: "m".into(),
        })
    };
    let m = model_of(vec![
        d(Some(7)),
        Event::Job(job(7, "x", &["a"], JobState::Queued)),
        d(Some(7)),
        d(None),
        d(Some(8)),
    ]);
    assert_eq!(m.feed.len(), 4);
    assert_eq!(m.jobs[&7].decisions.len(), 2);
}

#[test]
fn output_is_kept_per_job_in_a_bounded_ring() {
    let mut m = model_of(vec![Event::Job(job(
        1,
        "x",
        &["a"],
        JobState::WorkerRunning,
    ))]);
    let lines: Vec<_> = (0..OUTPUT_LINES_PER_JOB + 5)
        .map(|i| out(&format!("line {i}")))
        .collect();
    m.apply(Event::WorkerOutput { job: 1, lines }, t0());
    let ring = &m.jobs[&1].output;
    assert_eq!(ring.len(), OUTPUT_LINES_PER_JOB);
    assert_eq!(ring.evicted, 5);
    assert_eq!(
        ring.lines().front().map(|l| l.text.as_str()),
        Some("line 5")
    );
}

#[test]
fn long_output_lines_are_cut() {
    let mut ring = OutputRing::default();
    ring.push(out(&"é".repeat(OUTPUT_LINE_CHARS + 10)));
    let kept = &ring.lines()[0].text;
    assert_eq!(kept.chars().count(), OUTPUT_LINE_CHARS + 1);
    assert!(kept.ends_with('…'));
}

#[test]
fn output_for_an_unknown_job_is_counted_not_kept() {
    let m = model_of(vec![Event::WorkerOutput {
        job: 9,
        lines: vec![out("a"), out("b")],
    }]);
    assert!(m.jobs.is_empty());
    assert_eq!(m.orphan_output_lines, 2);
}

#[test]
fn the_feed_is_bounded() {
    let events = (0..FEED_DECISIONS + 3)
        .map(|i| {
            Event::Decision(Decision {
                at: at(i as i64),
                job: None,
                kind: DecisionKind::Intake,
                message: format!("d{i}"),
            })
        })
        .collect();
    let m = model_of(events);
    assert_eq!(m.feed.len(), FEED_DECISIONS);
    assert_eq!(m.feed.front().map(|d| d.message.as_str()), Some("d3"));
}

#[test]
fn oldest_finished_jobs_are_forgotten_first_and_live_ones_never() {
    let mut events = vec![Event::Job(job(0, "live", &["a"], JobState::WorkerRunning))];
    for id in 1..=(FINISHED_JOBS_KEPT as u64 + 2) {
        events.push(Event::Job(job(id, "done", &["a"], JobState::Completed)));
    }
    let m = model_of(events);
    assert!(m.jobs.contains_key(&0));
    assert!(!m.jobs.contains_key(&1) && !m.jobs.contains_key(&2));
    assert!(m.jobs.contains_key(&3));
    assert_eq!(m.jobs.len(), FINISHED_JOBS_KEPT + 1);
}

#[test]
fn runners_come_and_go() {
    let m = model_of(sample::events());
    assert_eq!(
        m.runner_registered_for(101).map(|r| r.name.as_str()),
        Some("megascaler-101-a")
    );
    let mut m = m;
    m.apply(
        Event::RunnerRemoved {
            name: "megascaler-101-a".into(),
        },
        t0(),
    );
    assert!(m.runner_registered_for(101).is_none());
}

#[test]
fn status_events_replace_and_dropped_output_never_goes_back() {
    let mut m = model_of(sample::events());
    assert_eq!(m.capacity.max_parallel, Some(4));
    assert_eq!(m.tokens.len(), 1);
    m.apply(Event::OutputDropped { total: 12 }, t0());
    m.apply(Event::OutputDropped { total: 3 }, t0());
    assert_eq!(m.output_dropped, 12);
    m.apply(
        Event::Fault {
            component: "poller".into(),
            message: "HTTP 502".into(),
        },
        at(5),
    );
    assert_eq!(m.faults.back().map(|f| f.at), Some(at(5)));
    m.apply(
        Event::ShuttingDown {
            message: "cancelling 1 worker".into(),
        },
        t0(),
    );
    assert_eq!(m.shutting_down.as_deref(), Some("cancelling 1 worker"));
}

#[test]
fn running_workers_counts_jobs_or_the_engine_whichever_is_more() {
    let m = model_of(sample::events());
    assert_eq!(m.running_workers(), 1);
    let m = model_of(vec![
        Event::Job(job(1, "a", &["a"], JobState::WorkerRunning)),
        Event::Job(job(2, "b", &["a"], JobState::WorkerRunning)),
    ]);
    assert_eq!(m.running_workers(), 2);
}

#[test]
fn invisible_format_characters_and_tabs_are_made_visible_on_the_way_in() {
    let mut j = job(
        1,
        "de\u{202E}ploy\u{200B}",
        &["a\u{2066}"],
        JobState::WorkerRunning,
    );
    j.repository = "acme/\u{FEFF}widgets".into();
    let mut m = model_of(vec![Event::Job(j)]);
    m.apply(
        Event::WorkerOutput {
            job: 1,
            lines: vec![out("a\tb\u{2067}c")],
        },
        t0(),
    );
    let v = &m.jobs[&1].view;
    assert_eq!(v.job_name, "de\u{FFFD}ploy\u{FFFD}");
    assert_eq!(v.labels, vec!["a\u{FFFD}".to_string()]);
    assert_eq!(v.repository, "acme/\u{FFFD}widgets");
    assert_eq!(m.jobs[&1].output.lines()[0].text, "a b\u{FFFD}c");
    let mut plain = "ordinary text, ünïcödé and emoji 🚀".to_string();
    sanitize(&mut plain);
    assert_eq!(plain, "ordinary text, ünïcödé and emoji 🚀");
}

#[test]
fn a_job_remembers_whose_runner_it_took_after_the_runner_is_gone() {
    let mut m = model_of(sample::events());
    assert_eq!(m.jobs[&102].took_runner_of, Some(103));
    // The engine clears the runner's intended job when it receives another one; the job
    // still names the job the runner was registered for.
    let mut m2 = Model::default();
    let runner = |intended| RunnerView {
        name: "r".into(),
        labels: vec![],
        intended_job: intended,
        actual_job: None,
        status: "listening".into(),
        registered_at: t0(),
    };
    m2.apply(Event::Runner(runner(Some(5))), t0());
    m2.apply(Event::Runner(runner(None)), t0());
    let mut j = job(6, "x", &["a"], JobState::Assigned);
    j.runner_name = Some("r".into());
    j.runner_was_other_jobs = true;
    m2.apply(Event::Job(j), t0());
    assert_eq!(m2.jobs[&6].took_runner_of, Some(5));
    m.apply(
        Event::RunnerRemoved {
            name: "megascaler-103-b".into(),
        },
        t0(),
    );
    let mut v = m.jobs[&102].view.clone();
    v.state = JobState::Completed;
    m.apply(Event::Job(v), t0());
    assert_eq!(m.jobs[&102].took_runner_of, Some(103));
    assert_eq!(m.jobs[&101].took_runner_of, None);
}
