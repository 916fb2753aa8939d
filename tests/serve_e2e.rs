//! `megascaler serve` end to end against the simulator with real `sim-worker` processes.

mod serve_support;

use megascaler::sim::{Assignment, JobStatus, WebhookFaults, WorkerScript};
use serve_support::*;
use std::time::Duration;

fn three_label_sets() -> Vec<Worker> {
    vec![
        Worker::sim(&["self-hosted", "linux"]),
        // Overlaps the first: GitHub may give a [self-hosted, linux] job to its runners.
        Worker::sim(&["self-hosted", "linux", "big"]),
        Worker::sim(&["self-hosted", "windows"]),
    ]
}

const SETS: &[&[&str]] = &[
    &["self-hosted", "linux"],
    &["self-hosted", "linux", "big"],
    &["self-hosted", "windows"],
];

fn assert_all_succeeded(sim: &megascaler::sim::SimHandle, ids: &[(u64, Vec<String>)]) {
    for (id, labels) in ids {
        let j = sim.job(*id).unwrap();
        assert_eq!(j.status, JobStatus::Completed, "job {id}");
        // sim-worker checks its `--labels` against the job's true labels, which the simulator
        // writes into the job message (not megascaler's splice), and reports failure with the
        // reason on a mismatch: success proves the worker for this job's own labels ran it.
        assert_eq!(
            j.conclusion.as_deref(),
            Some("success"),
            "job {id} {labels:?}: {j:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_jobs_with_the_worst_runner_choice_each_run_their_own_worker() {
    let sim = simulator(Assignment::MostLabels).await;
    let mut serve = start_serve(&sim, Setup::new(three_label_sets())).await;
    let ids = queue(&sim, 50, SETS, None);
    all_done(
        &sim,
        &serve,
        &ids.iter().map(|j| j.0).collect::<Vec<_>>(),
        Duration::from_secs(400),
    )
    .await;
    assert_all_succeeded(&sim, &ids);
    let log = serve.stderr();
    assert!(
        log.contains("the runner was registered for job"),
        "no job landed on another job's runner, so the wrong-runner path was not exercised"
    );
    assert!(
        sim.runners().is_empty(),
        "runners left: {:?}",
        sim.runners()
    );
    // sim-worker also compared megascaler's splice with the truth (not skipped as absent).
    for (id, labels) in &ids {
        let log = std::fs::read_to_string(serve.state_dir().join(format!("jobs/{id}.log")))
            .unwrap_or_default();
        let want = format!(
            "identity checked: true job {id} [{l}]; megascaler's splice: job {id} [{l}]",
            l = labels.join(", ")
        );
        assert!(log.contains(&want), "job {id}: {log}");
    }
    assert!(
        sim.violations().is_empty(),
        "protocol violations: {:?}",
        sim.violations()
    );
    serve.assert_clean_exit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_only() {
    nine_jobs_complete(|setup| setup.polling = false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn polling_only() {
    nine_jobs_complete(|setup| setup.webhooks = false).await;
}

/// Nine jobs over the three label sets with the worst runner choice all succeed, and serve
/// exits cleanly; `intake` narrows how serve learns of jobs.
async fn nine_jobs_complete(intake: impl FnOnce(&mut Setup)) {
    let sim = simulator(Assignment::MostLabels).await;
    let mut setup = Setup::new(three_label_sets());
    intake(&mut setup);
    let mut serve = start_serve(&sim, setup).await;
    let ids = queue(&sim, 9, SETS, None);
    all_done(
        &sim,
        &serve,
        &ids.iter().map(|j| j.0).collect::<Vec<_>>(),
        Duration::from_secs(300),
    )
    .await;
    assert_all_succeeded(&sim, &ids);
    serve.assert_clean_exit().await;
}

/// 30 % dropped, 20 % duplicated, 20 % reordered, 10 % signed with the wrong secret (refused).
#[tokio::test(flavor = "multi_thread")]
async fn lossy_webhooks_with_polling() {
    let sim = simulator(Assignment::MostLabels).await;
    sim.set_webhook_faults(WebhookFaults {
        drop: 0.3,
        duplicate: 0.2,
        reorder: 0.2,
        bad_signature: 0.1,
        ..Default::default()
    });
    let mut serve = start_serve(&sim, Setup::new(three_label_sets())).await;
    let ids = queue(&sim, 20, SETS, None);
    all_done(
        &sim,
        &serve,
        &ids.iter().map(|j| j.0).collect::<Vec<_>>(),
        Duration::from_secs(300),
    )
    .await;
    assert_all_succeeded(&sim, &ids);
    serve.assert_clean_exit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crashing_worker_fails_its_job_with_the_reason() {
    // A worker that reads its job and dies without reporting.
    let dir = tempfile::tempdir().unwrap();
    let crash = dir.path().join("crash.sh");
    std::fs::write(
        &crash,
        "#!/bin/sh\nhead -c 8 >/dev/null\necho 'fatal: out of disk space' >&2\nexit 3\n",
    )
    .unwrap();
    let mut perm = std::fs::metadata(&crash).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&crash, perm).unwrap();
    let mut worker = Worker::sim(&["self-hosted", "linux"]);
    worker.args = vec![crash.display().to_string()];
    let sim = simulator(Assignment::First).await;
    let mut serve = start_serve(&sim, Setup::new(vec![worker])).await;
    let ids = queue(&sim, 1, &[&["self-hosted", "linux"]], None);
    let id = ids[0].0;
    all_done(&sim, &serve, &[id], Duration::from_secs(120)).await;
    let job = sim.job(id).unwrap();
    assert_eq!(job.conclusion.as_deref(), Some("failure"), "{job:?}");
    // The reason is in the job's own log file, where an operator looks first.
    let path = serve.state_dir().join(format!("jobs/{id}.log"));
    let job_log = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        job_log.contains("fatal: out of disk space"),
        "the worker's last output is in {}: {job_log}",
        path.display()
    );
    assert!(
        job_log.contains("exit status: 3"),
        "the exit status is in {}: {job_log}",
        path.display()
    );
    let log = serve.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("job {id}: running -> failed"))
                && l.contains("exit status: 3")),
        "the reason is logged: {log}"
    );
    assert!(
        log.contains("fatal: out of disk space"),
        "last output in the reason: {log}"
    );
    serve.assert_clean_exit().await;
}

/// The same with `sim-worker`'s own scripted crash.
#[tokio::test(flavor = "multi_thread")]
async fn crashing_sim_worker_fails_its_job() {
    let sim = simulator(Assignment::First).await;
    let mut serve = start_serve(
        &sim,
        Setup::new(vec![Worker::sim(&["self-hosted", "linux"])]),
    )
    .await;
    let script = WorkerScript {
        steps: 1,
        step_millis: 10,
        crash: true,
        ..Default::default()
    };
    let ids = queue(&sim, 1, &[&["self-hosted", "linux"]], Some(script));
    all_done(&sim, &serve, &[ids[0].0], Duration::from_secs(120)).await;
    assert_eq!(
        sim.job(ids[0].0).unwrap().conclusion.as_deref(),
        Some("failure")
    );
    serve.assert_clean_exit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_hanging_on_cancel_is_ended_by_the_escalation() {
    let sim = simulator(Assignment::First).await;
    let mut serve = start_serve(
        &sim,
        Setup::new(vec![Worker::sim(&["self-hosted", "linux"])]),
    )
    .await;
    let script = WorkerScript {
        steps: 1000,
        step_millis: 100,
        hang_on_cancel: true,
        ..Default::default()
    };
    let ids = queue(&sim, 1, &[&["self-hosted", "linux"]], Some(script));
    let id = ids[0].0;
    assert!(
        sim.wait_until(
            |s| s.job(id).is_some_and(|j| j.status == JobStatus::InProgress),
            Duration::from_secs(120)
        )
        .await,
        "job never started: {}",
        serve.stderr()
    );
    // GitHub cancels the run only once the worker runs (it installed its signal handlers
    // before it prints that it started).
    let path = serve.state_dir().join(format!("jobs/{id}.log"));
    assert!(
        wait_for_file(
            &path,
            |l| l.contains("Run step 1 of"),
            Duration::from_secs(120)
        )
        .await,
        "worker never started: {}",
        serve.stderr()
    );
    let run = sim.job(id).unwrap().run_id;
    sim.cancel_run(run);
    all_done(&sim, &serve, &[id], Duration::from_secs(120)).await;
    // The simulator may complete the cancelled job itself before the escalation ends the worker:
    // wait for the worker's last line in its log.
    wait_for_file(
        &path,
        |l| l.contains("[megascaler] cancelled:"),
        Duration::from_secs(60),
    )
    .await;
    let log = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(log.contains("cancel request (type 2) ignored"), "{log}");
    assert!(log.contains("signal: 9"), "SIGKILL ended it: {log}");
    serve.assert_clean_exit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_with_jobs_running() {
    let sim = simulator(Assignment::First).await;
    let mut serve = start_serve(
        &sim,
        Setup::new(vec![Worker::sim(&["self-hosted", "linux"])]),
    )
    .await;
    let script = WorkerScript {
        steps: 1000,
        step_millis: 100,
        ..Default::default()
    };
    let ids = queue(&sim, 3, &[&["self-hosted", "linux"]], Some(script));
    assert!(
        sim.wait_until(
            |s| ids.iter().all(|(id, _)| s
                .job(*id)
                .is_some_and(|j| j.status == JobStatus::InProgress)),
            Duration::from_secs(120)
        )
        .await,
        "jobs never started: {}",
        serve.stderr()
    );
    for (id, _) in &ids {
        let path = serve.state_dir().join(format!("jobs/{id}.log"));
        assert!(
            wait_for_file(
                &path,
                |l| l.contains("Run step 1 of"),
                Duration::from_secs(120)
            )
            .await,
            "worker of job {id} never started: {}",
            serve.stderr()
        );
    }
    let code = serve
        .signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(90))
        .await;
    assert_eq!(code, Some(0), "{}", serve.stderr());
    assert_eq!(
        serve.marked_processes(),
        Vec::<i32>::new(),
        "worker processes outlived a graceful shutdown"
    );
    for (id, _) in &ids {
        let j = sim.job(*id).unwrap();
        assert_eq!(
            j.status,
            JobStatus::Completed,
            "job {id} completed at shutdown: {j:?}"
        );
        assert_eq!(j.conclusion.as_deref(), Some("cancelled"), "{j:?}");
    }
    assert!(
        sim.runners().is_empty(),
        "runners left: {:?}",
        sim.runners()
    );
    assert!(serve.stderr().contains("shutting down"));
}

#[tokio::test(flavor = "multi_thread")]
async fn job_through_the_ssh_worker_scripts_against_a_local_sshd() {
    let sshd_dir = tempfile::tempdir().unwrap();
    let sshd = match sshd::start_sshd(sshd_dir.path()) {
        Ok(s) => s,
        Err(why) => {
            sshd::skip_or_fail(
                "job_through_the_ssh_worker_scripts_against_a_local_sshd",
                &why,
            );
            return;
        }
    };
    let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/workers/");
    let target = format!("root@127.0.0.1:{}", sshd.port);
    let worker = Worker {
        labels: vec!["self-hosted".into(), "ssh".into()],
        allocate: vec![format!("{assets}ssh-allocate.sh"), target.clone()],
        args: vec![format!("{assets}ssh-worker.sh"), "{target}".into()],
        release: vec![format!("{assets}ssh-release.sh"), "{target}".into()],
        env: vec![
            ("HOME".into(), sshd_dir.path().display().to_string()),
            (
                "MEGASCALER_SSH_STATE".into(),
                sshd_dir.path().join("slots").display().to_string(),
            ),
            (
                "MEGASCALER_SSH_OPTS".into(),
                format!(
                    "-i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                    sshd.client_key.display()
                ),
            ),
            (
                "MEGASCALER_SSH_WORKER".into(),
                format!("{BIN} sim-worker --labels self-hosted,ssh"),
            ),
        ],
    };
    let sim = simulator(Assignment::First).await;
    let mut serve = start_serve(&sim, Setup::new(vec![worker])).await;
    let ids = queue(&sim, 2, &[&["self-hosted", "ssh"]], None);
    all_done(
        &sim,
        &serve,
        &ids.iter().map(|j| j.0).collect::<Vec<_>>(),
        Duration::from_secs(200),
    )
    .await;
    assert_all_succeeded(&sim, &ids);
    for (id, _) in &ids {
        let log =
            std::fs::read_to_string(serve.state_dir().join(format!("jobs/{id}.log"))).unwrap();
        assert!(
            log.contains(&format!("allocated target: {target}")),
            "{log}"
        );
        assert!(log.contains("ssh-worker.sh"), "{log}");
    }
    serve.assert_clean_exit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once_and_takes_the_workers_with_it() {
    let sim = simulator(Assignment::First).await;
    let mut serve = start_serve(
        &sim,
        Setup::new(vec![Worker::sim(&["self-hosted", "linux"])]),
    )
    .await;
    // Workers that ignore cancellation: the graceful path would take the whole escalation.
    let script = WorkerScript {
        steps: 1000,
        step_millis: 100,
        hang_on_cancel: true,
        ..Default::default()
    };
    let ids = queue(&sim, 2, &[&["self-hosted", "linux"]], Some(script));
    assert!(
        sim.wait_until(
            |s| ids.iter().all(|(id, _)| s
                .job(*id)
                .is_some_and(|j| j.status == JobStatus::InProgress)),
            Duration::from_secs(120)
        )
        .await
    );
    let started_pids = |log: &str| -> Vec<i32> {
        log.lines()
            .filter_map(|l| l.split("worker started (pid ").nth(1))
            .filter_map(|rest| rest.split(')').next()?.parse().ok())
            .collect()
    };
    let (log, ok) = serve
        .wait_for_stderr(|l| started_pids(l).len() == 2, Duration::from_secs(120))
        .await;
    assert!(ok, "two workers never started: {log}");
    let pids = started_pids(&log);
    let marked = serve.marked_processes();
    assert!(
        pids.iter().all(|p| marked.contains(p)),
        "the workers carry the drop guard's marker: started {pids:?}, marked {marked:?}"
    );
    let child = serve.child.as_ref().unwrap().id() as i32;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child),
        nix::sys::signal::Signal::SIGTERM,
    );
    // The second signal goes in once serve is shutting down (not before it saw the first).
    let (log, ok) = serve
        .wait_for_stderr(|l| l.contains("shutting down"), Duration::from_secs(60))
        .await;
    assert!(ok, "serve did not start shutting down: {log}");
    let code = serve
        .signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30))
        .await;
    assert_eq!(code, Some(130), "{}", serve.stderr());
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "worker {pid} still runs: {stat}"
        );
    }
    assert_eq!(
        serve.marked_processes(),
        Vec::<i32>::new(),
        "processes left"
    );
}

/// Waits (at most `timeout`) until the file's text satisfies `condition`.
async fn wait_for_file(
    path: &std::path::Path,
    condition: impl Fn(&str) -> bool,
    timeout: Duration,
) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if condition(&std::fs::read_to_string(path).unwrap_or_default()) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The check the other tests rely on bites: a worker entry that starts sim-worker for other
/// labels than the job's (a stand-in for megascaler choosing the wrong worker) fails the job,
/// with the reason in the job's log, although megascaler's own splice agrees with the entry.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_started_for_other_labels_fails_its_job() {
    let mut worker = Worker::sim(&["self-hosted", "linux"]);
    worker.args = vec![
        BIN.into(),
        "sim-worker".into(),
        "--labels".into(),
        "self-hosted,windows".into(),
    ];
    let sim = simulator(Assignment::First).await;
    let mut serve = start_serve(&sim, Setup::new(vec![worker])).await;
    let ids = queue(&sim, 1, &[&["self-hosted", "linux"]], None);
    let id = ids[0].0;
    all_done(&sim, &serve, &[id], Duration::from_secs(120)).await;
    let job = sim.job(id).unwrap();
    assert_eq!(job.conclusion.as_deref(), Some("failure"), "{job:?}");
    let log = std::fs::read_to_string(serve.state_dir().join(format!("jobs/{id}.log")))
        .unwrap_or_default();
    assert!(
        log.contains(
            "wrong worker: started for labels [self-hosted, windows] but the job needs [self-hosted, linux]"
        ),
        "{log}"
    );
    serve.assert_clean_exit().await;
}

/// The drop guard of a failed test: dropping `Serve` kills serve and every worker it started,
/// also workers that ignore signals and live in their own process groups.
#[tokio::test(flavor = "multi_thread")]
async fn dropping_serve_kills_the_workers_it_started() {
    let sim = simulator(Assignment::First).await;
    let serve = start_serve(
        &sim,
        Setup::new(vec![Worker::sim(&["self-hosted", "linux"])]),
    )
    .await;
    let script = WorkerScript {
        steps: 1000,
        step_millis: 100,
        hang_on_cancel: true,
        ..Default::default()
    };
    let ids = queue(&sim, 1, &[&["self-hosted", "linux"]], Some(script));
    let path = serve.state_dir().join(format!("jobs/{}.log", ids[0].0));
    assert!(
        wait_for_file(
            &path,
            |l| l.contains("Run step 1 of"),
            Duration::from_secs(120)
        )
        .await,
        "worker never started: {}",
        serve.stderr()
    );
    let marker = serve.marker.clone();
    let serve_pid = serve.child.as_ref().unwrap().id() as i32;
    let workers = serve.marked_processes();
    assert!(
        workers.iter().any(|p| *p != serve_pid),
        "a marked worker runs: {workers:?}"
    );
    drop(serve);
    assert_eq!(marked_processes(&marker), Vec::<i32>::new());
}
