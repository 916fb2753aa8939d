//! Unit tests of the world's job transitions: plain data in, plain data out, no IO.

use super::jobs::conclusion_for;
use super::*;
use crate::sim::config::{Assignment, SimConfig};
use crate::sim::crypto::RunnerKey;
use crate::sim::model::{CompletionPath, JobSpec, JobStatus};
use crate::sim::world::NewAgent;
use chrono::Utc;

fn world(assignment: Assignment) -> World {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let cfg = SimConfig {
        assignment,
        ..SimConfig::default()
    };
    World::new(cfg, "http://127.0.0.1:1/".parse().unwrap(), tx)
}

/// A registered runner with an open session; its id.
fn online(w: &mut World, name: &str, labels: &[&str], ephemeral: bool) -> u64 {
    let key = RunnerKey {
        modulus: vec![0xC5; 256],
        exponent: vec![1, 0, 1],
    };
    let agent = w
        .add_agent(NewAgent {
            scope: "o/r".into(),
            name: name.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ephemeral,
            key,
            version: "3.0.0".into(),
            os_description: String::new(),
            runner_admin: false,
        })
        .unwrap();
    w.create_session(agent.id, false, "t".into()).unwrap();
    agent.id
}

#[test]
fn a_job_goes_to_the_runner_the_rule_picks_and_only_once() {
    let mut w = world(Assignment::MostLabels);
    let small = online(&mut w, "small", &["linux"], true);
    let big = online(&mut w, "big", &["linux", "gpu"], true);
    let j1 = w.queue_job(JobSpec::new("o/r", &["linux"]));
    assert_eq!(
        w.jobs[&j1].offered_to,
        Some(big),
        "worst choice: the runner with most labels"
    );
    let j2 = w.queue_job(JobSpec::new("o/r", &["linux"]));
    assert_eq!(w.jobs[&j2].offered_to, Some(small));
    let j3 = w.queue_job(JobSpec::new("o/r", &["linux"]));
    assert_eq!(w.jobs[&j3].offered_to, None, "one-job rule: nobody is left");
    w.take(j1, big, "t").unwrap();
    w.renew(j1).unwrap();
    assert_eq!(w.jobs[&j1].snapshot.status, JobStatus::InProgress);
    w.complete(j1, "succeeded", CompletionPath::PlanEvent, None)
        .unwrap();
    assert!(
        !w.agents.contains_key(&big),
        "ephemeral runner deleted after its job"
    );
    assert_eq!(
        w.complete(j1, "failed", CompletionPath::PlanEvent, None),
        Err(TakeError::Completed)
    );
    assert_eq!(w.jobs[&j3].offered_to, None);
}

#[test]
fn an_untaken_job_is_rerouted_and_a_taken_one_is_not() {
    let mut w = world(Assignment::First);
    let a = online(&mut w, "a", &["linux"], true);
    let j = w.queue_job(JobSpec::new("o/r", &["linux"]));
    assert_eq!(w.jobs[&j].offered_to, Some(a));
    let session = w.agents[&a].session.clone().unwrap();
    w.delete_session(&session);
    assert_eq!(w.jobs[&j].offered_to, None);
    let b = online(&mut w, "b", &["linux"], true);
    assert_eq!(w.jobs[&j].offered_to, Some(b));
    w.take(j, b, "t").unwrap();
    let session = w.agents[&b].session.clone().unwrap();
    w.delete_session(&session);
    assert_eq!(
        w.jobs[&j].offered_to,
        Some(b),
        "taken: stays with its runner"
    );
    assert_eq!(w.take(j, a, "t"), Err(TakeError::NotYours));
    // The offer never reached `a`, so its one job is not used up.
    assert!(!w.agents[&a].had_job);
    w.create_session(a, false, "t".into()).unwrap();
    let j2 = w.queue_job(JobSpec::new("o/r", &["linux"]));
    assert_eq!(w.jobs[&j2].offered_to, Some(a));
}

#[test]
fn locks_and_cancel_deadlines_expire() {
    let mut w = world(Assignment::First);
    let a = online(&mut w, "a", &["linux"], false);
    let j = w.queue_job(JobSpec::new("o/r", &["linux"]));
    w.take(j, a, "t").unwrap();
    w.renew(j).unwrap();
    let run = w.jobs[&j].snapshot.run_id;
    let queued = w.queue_job(JobSpec {
        run_id: Some(run),
        ..JobSpec::new("o/r", &["gpu"])
    });
    assert!(w.cancel_run(run, false));
    assert_eq!(
        w.jobs[&queued].snapshot.conclusion.as_deref(),
        Some("cancelled")
    );
    assert_eq!(w.jobs[&j].snapshot.status, JobStatus::InProgress);
    assert!(
        matches!(w.agents[&a].inbox.back().map(|m| m.kind.clone()), Some(InboxKind::Cancel(x)) if x == j)
    );
    let later = Utc::now() + chrono::Duration::days(1);
    assert!(w.expire_locks(later));
    assert_eq!(
        w.jobs[&j].snapshot.completed_via,
        Some(CompletionPath::Cancelled)
    );
    assert!(w.agents.contains_key(&a), "a non-ephemeral runner stays");
    let rerun = w.rerun_job(j).unwrap();
    assert_eq!(w.jobs[&rerun].snapshot.run_attempt, 2);
    assert_eq!(
        w.jobs[&rerun].offered_to,
        Some(a),
        "a non-ephemeral runner takes the next job"
    );
}

#[test]
fn runner_results_map_to_webhook_conclusions() {
    assert_eq!(conclusion_for("Succeeded"), Some("success"));
    assert_eq!(conclusion_for("failed"), Some("failure"));
    assert_eq!(conclusion_for("canceled"), Some("cancelled"));
    assert_eq!(conclusion_for("abandoned"), Some("failure"));
    assert_eq!(conclusion_for("bogus"), None);
}
