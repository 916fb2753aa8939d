//! assets/workers/ssh-*.sh against a real sshd on 127.0.0.1 (started by the test on a free port
//! with a temporary host key and authorized_keys). Skipped, with the reason printed, only when no
//! sshd binary exists or the test does not run as root, and never under CI (`CI` set): there it fails.

use megascaler::config::{MatchMode, WorkerEntry};
use megascaler::engine::dispatch::Input;
use megascaler::engine::supervisor::{self, Escalation, OutputSink, WorkerSpec};
use megascaler::protocol::api::WorkerOutcome;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::mpsc;

#[path = "serve_support/sshd.rs"]
mod sshd;

use sshd::start_sshd;

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/workers/");

#[tokio::test]
async fn job_runs_over_ssh_with_allocate_and_release() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = match start_sshd(dir.path()) {
        Ok(s) => s,
        Err(why) => {
            sshd::skip_or_fail("job_runs_over_ssh_with_allocate_and_release", &why);
            return;
        }
    };
    let remote = dir.path().join("remote-worker.sh");
    std::fs::write(
        &remote,
        format!(
            "#!/bin/sh\nhead -c 8 > /dev/null\nhead -c 11 > {d}/remote-body\necho remote ran job $MEGASCALER_JOB_ID on $(hostname)\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&remote).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&remote, perm).unwrap();
    let state = dir.path().join("ssh-state");
    let target = format!("root@127.0.0.1:{}", sshd.port);
    let entry = WorkerEntry {
        labels: vec!["ssh".into()],
        allocate: vec![format!("{ASSETS}ssh-allocate.sh"), target.clone()],
        args: vec![format!("{ASSETS}ssh-worker.sh"), "{target}".into()],
        release: vec![format!("{ASSETS}ssh-release.sh"), "{target}".into()],
        env: Default::default(),
        max: None,
        match_mode: MatchMode::Exact,
    };
    let env = vec![
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        ),
        ("HOME".to_string(), dir.path().display().to_string()),
        ("MEGASCALER_JOB_ID".to_string(), "7".to_string()),
        (
            "MEGASCALER_SSH_STATE".to_string(),
            state.display().to_string(),
        ),
        (
            "MEGASCALER_SSH_OPTS".to_string(),
            format!(
                "-i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                sshd.client_key.display()
            ),
        ),
        (
            "MEGASCALER_SSH_WORKER".to_string(),
            format!("MEGASCALER_JOB_ID=7 {}", remote.display()),
        ),
    ];
    let (itx, mut irx) = mpsc::channel(100);
    let (etx, _erx) = mpsc::channel(100);
    let log = dir.path().join("jobs/7.log");
    supervisor::spawn(
        WorkerSpec {
            job: 7,
            entry,
            message: Arc::from("{\"job\":\"7\"}"),
            env,
            log_path: log.clone(),
            escalation: Escalation::default(),
        },
        itx,
        OutputSink {
            events: etx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
    );
    let outcome = loop {
        match tokio::time::timeout(Duration::from_secs(120), irx.recv()).await {
            Ok(Some(Input::WorkerExited { outcome, .. })) => break outcome,
            Ok(Some(_)) => {}
            other => panic!("no exit: {other:?}"),
        }
    };
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(outcome, WorkerOutcome::Reported, "{log_text}");
    assert!(log_text.contains("remote ran job 7"), "{log_text}");
    assert!(
        log_text.contains(&format!("allocated target: {target}")),
        "{log_text}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("remote-body")).unwrap(),
        "{\"job\":\"7\"}"
    );
    let left: Vec<_> = std::fs::read_dir(&state).unwrap().collect();
    assert!(left.is_empty(), "release freed the host slot");
}
