//! No PAT, webhook secret or runner credential reaches a worker's or its allocate/release
//! commands' environment, arguments or stdin, serve's stdout or stderr (at `RUST_LOG=trace`), or
//! any file in the state directory. The worker, allocate and release commands are wrappers that
//! record what they got; the worker wrapper then runs sim-worker.

mod serve_support;

use megascaler::sim::{Assignment, Fault, endpoint};
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
    let helper = |name: &str, print: &str| {
        let path = capture.path().join(format!("{name}.sh"));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nd={d}/$MEGASCALER_JOB_ID-{name}\nmkdir -p $d\nenv > $d/env\necho \"$0 $*\" > $d/args\n{print}\n",
                d = capture.path().display()
            ),
        )
        .unwrap();
        let mut perm = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&path, perm).unwrap();
        path.display().to_string()
    };
    let mut worker = Worker::sim(&["self-hosted", "linux"]);
    worker.args = vec![wrapper.display().to_string(), "--flag".into()];
    worker.allocate = vec![helper("allocate", "echo target-1"), "--a".into()];
    worker.release = vec![helper("release", "true"), "{target}".into()];
    let sim = simulator(Assignment::First).await;
    let mut setup = Setup::new(vec![worker]);
    // The PAT is also in serve's own environment, as a deployment would have it, and so is an
    // unrelated credential: neither may pass serve's environment allowlist.
    setup.extra_env = vec![
        ("MEGASCALER_PAT".into(), sim.pat().to_string()),
        ("AWS_SECRET_ACCESS_KEY".into(), CANARY.into()),
    ];
    // Debug and trace lines are where a credential leaks most easily.
    setup.rust_log = "trace".into();
    // Error paths: one answer of each of these quotes the request's credential (PAT, runner
    // OAuth client assertion, runner bearer token) in its error text, which must not reach a log.
    for ep in ECHOED {
        sim.inject(ep, Fault::EchoCredential { status: 500 }, 1);
    }
    let mut serve = start_serve(&sim, setup).await;
    let ids = queue(&sim, 3, &[&["self-hosted", "linux"]], None);
    all_done(
        &sim,
        &serve,
        &ids.iter().map(|j| j.0).collect::<Vec<_>>(),
        Duration::from_secs(200),
    )
    .await;
    serve.assert_clean_exit().await;

    let counters = sim.counters();
    for ep in ECHOED {
        assert!(
            counters.get(ep) >= 2,
            "{ep} was called again after its echoing error"
        );
    }
    let mut needles: Vec<String> = vec![
        sim.pat().to_string(),
        SECRET.to_string(),
        CANARY.to_string(),
        // A runner private key in any text form: PEM, .NET XML (the runner's
        // .credentials_rsaparams holds D/P/Q/DP/DQ/InverseQ), JWK private members.
        "PRIVATE KEY".to_string(),
        "BEGIN ".to_string(),
        "RSAKeyValue".to_string(),
        "<D>".to_string(),
        "<P>".to_string(),
        "InverseQ".to_string(),
        "\"d\":\"".to_string(),
        "\"qi\":\"".to_string(),
    ];
    needles.extend(issued_secrets(&sim));
    let mut files = files_under(capture.path());
    let captured = files.len();
    assert!(
        captured >= 3 * (3 + 2 + 2),
        "env, args and stdin of 3 workers and env and args of their allocate and release were captured: {files:?}"
    );
    let serve_logs = [serve.stderr_path.clone(), serve.stdout_path.clone()];
    files.extend(files_under(&serve.state_dir()));
    files.extend(serve_logs.iter().cloned());
    assert!(
        serve.stderr().contains("DEBUG") || serve.stderr().contains("TRACE"),
        "serve logged at debug/trace"
    );
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).to_string();
        // A JWT (sim-issued registration JWTs, OAuth tokens) starts with base64 `{"`. Only the
        // worker's stdin may hold one: the job message carries the per-job token by design.
        let is_stdin = f.file_name().is_some_and(|n| n == "stdin");
        if !is_stdin {
            assert!(
                !text.contains("eyJ"),
                "{} contains what looks like a JWT",
                f.display()
            );
        }
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
    assert!(!env.contains("AWS_SECRET_ACCESS_KEY"), "{env}");
    for helper in ["allocate", "release"] {
        let dir = capture.path().join(format!("{}-{helper}", ids[0].0));
        let env = std::fs::read_to_string(dir.join("env")).unwrap();
        assert!(
            env.contains(&format!("MEGASCALER_JOB_ID={}", ids[0].0)),
            "{helper}: {env}"
        );
        assert!(!env.contains("AWS_SECRET_ACCESS_KEY"), "{helper}: {env}");
    }
    let release_args =
        std::fs::read_to_string(capture.path().join(format!("{}-release/args", ids[0].0))).unwrap();
    assert!(release_args.contains("target-1"), "{release_args}");
}

/// Endpoints whose first answer echoes the credential the request carried.
const ECHOED: [&str; 6] = [
    endpoint::RUNS_LIST,
    endpoint::REGISTRATION_TOKEN,
    endpoint::RUNNER_REGISTRATION,
    endpoint::OAUTH_TOKEN,
    endpoint::MESSAGES_GET,
    endpoint::JOB_REQUEST_UPDATE,
];

/// An unrelated credential in serve's environment that no worker may inherit.
const CANARY: &str = "canary-aws-secret-4f1c9e";

/// Every registration/remove token, registration JWT and runner OAuth token the simulator issued.
fn issued_secrets(sim: &megascaler::sim::SimHandle) -> Vec<String> {
    let issued = sim.issued_secrets();
    assert!(
        !issued.is_empty(),
        "the simulator issued runner credentials"
    );
    issued
}
