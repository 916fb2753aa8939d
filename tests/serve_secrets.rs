//! No PAT, webhook secret or runner credential reaches a worker's environment, arguments or
//! stdin, or any log file. The worker is a wrapper that records all three, then runs sim-worker.

mod serve_support;

use megascaler::sim::Assignment;
use serve_support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn no_credential_reaches_a_worker_or_a_log_file() {
    let capture = tempfile::tempdir().unwrap();
    let wrapper = capture.path().join("capture-worker.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nd={d}/$MEGASCALER_JOB_ID\nmkdir -p $d\nenv > $d/env\necho \"$0 $*\" > $d/args\ntee $d/stdin | {BIN} sim-worker --labels self-hosted,linux\n",
            d = capture.path().display()
        ),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&wrapper, perm).unwrap();
    let mut worker = Worker::sim(&["self-hosted", "linux"]);
    worker.args = vec![wrapper.display().to_string(), "--flag".into()];
    let sim = simulator(Assignment::First).await;
    let mut setup = Setup::new(vec![worker]);
    // The PAT is also in serve's own environment, as a deployment would have it.
    setup.extra_env = vec![("MEGASCALER_PAT".into(), sim.pat().to_string())];
    let mut serve = start_serve(&sim, setup).await;
    let ids = queue(&sim, 3, &[&["self-hosted", "linux"]], None);
    all_done(
        &sim,
        &serve,
        &ids.iter().map(|j| j.0).collect::<Vec<_>>(),
        Duration::from_secs(200),
    )
    .await;
    assert_eq!(
        serve
            .signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(60))
            .await,
        Some(0)
    );

    let mut needles: Vec<String> = vec![
        sim.pat().to_string(),
        SECRET.to_string(),
        "PRIVATE KEY".to_string(),
    ];
    needles.extend(issued_secrets(&sim));
    let mut files = files_under(capture.path());
    let captured = files.len();
    assert!(
        captured >= 9,
        "env, args and stdin of 3 workers were captured: {files:?}"
    );
    files.extend(files_under(&serve.state_dir()));
    files.push(serve.stderr_path.clone());
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).to_string();
        for n in &needles {
            assert!(
                !text.contains(n.as_str()),
                "{} contains a credential ({}…)",
                f.display(),
                &n[..n.len().min(4)]
            );
        }
    }
    // The capture really saw the job message and the job's variables.
    let env = std::fs::read_to_string(capture.path().join(format!("{}/env", ids[0].0))).unwrap();
    assert!(
        env.contains(&format!("MEGASCALER_JOB_ID={}", ids[0].0)),
        "{env}"
    );
    assert!(!env.contains("MEGASCALER_PAT"), "{env}");
}

/// Every registration/remove token, registration JWT and runner OAuth token the simulator issued.
fn issued_secrets(sim: &megascaler::sim::SimHandle) -> Vec<String> {
    let issued = sim.issued_secrets();
    assert!(
        !issued.is_empty(),
        "the simulator issued runner credentials"
    );
    issued
}
