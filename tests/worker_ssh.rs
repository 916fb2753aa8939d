//! assets/workers/ssh-*.sh against a real sshd on 127.0.0.1 (started by the test on a free port
//! with a temporary host key and authorized_keys). Skipped, with the reason printed, only when no
//! sshd binary exists or the test does not run as root.

use megascaler::config::{MatchMode, WorkerEntry};
use megascaler::engine::dispatch::Input;
use megascaler::engine::supervisor::{self, Escalation, OutputSink, WorkerSpec};
use megascaler::protocol::api::WorkerOutcome;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::mpsc;

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/workers/");

/// A running sshd, killed on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub client_key: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd_binary() -> Option<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen failed");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

/// Starts sshd for root on 127.0.0.1, or says why it cannot.
pub fn start_sshd(dir: &Path) -> Result<Sshd, String> {
    let Some(sshd) = sshd_binary() else {
        return Err("no sshd binary (install openssh-server)".into());
    };
    if !is_root() {
        return Err("the ssh test logs in as root and must run as root".into());
    }
    std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile none\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n",
        d = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start sshd: {e}"))?;
    let sshd = Sshd {
        child,
        port,
        client_key: dir.join("client_key"),
    };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(sshd);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("sshd did not start listening".into())
}

#[tokio::test]
async fn job_runs_over_ssh_with_allocate_and_release() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = match start_sshd(dir.path()) {
        Ok(s) => s,
        Err(why) => {
            println!("SKIPPED job_runs_over_ssh_with_allocate_and_release: {why}");
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
