//! The configuration file: the example parses, and every invalid config says which key and how to fix it.

use megascaler::config::{self, EnvOverrides, MatchMode};
use std::process::Command;

fn env() -> EnvOverrides {
    EnvOverrides::default()
}

#[test]
fn example_config_parses_and_documents_every_key() {
    let text = include_str!("../config.example.yml");
    let c = config::parse("config.example.yml", text, &env()).expect("example parses");
    assert_eq!(c.workers.len(), 5);
    assert_eq!(c.workers[0].max, Some(4));
    assert_eq!(c.workers[3].match_mode, MatchMode::Subset);
    assert_eq!(c.max_parallel, Some(8));
    assert_eq!(c.poll_interval, Some(std::time::Duration::from_secs(30)));
    for key in [
        "worker:",
        "labels:",
        "args:",
        "env:",
        "allocate:",
        "release:",
        "max:",
        "match:",
        "address:",
        "secret:",
        "insecure_unsigned_webhooks:",
        "pat:",
        "pat_file",
        "github_url:",
        "max_parallel:",
        "repositories:",
        "poll_interval:",
        "state_dir:",
        "runner_group:",
        "runner_name_prefix:",
        "identify_timeout:",
        "cancel_grace:",
    ] {
        assert!(
            text.contains(key),
            "config.example.yml does not document {key}"
        );
    }
}

fn error_of(yaml: &str) -> String {
    config::parse("test.yml", yaml, &env())
        .expect_err("config should be refused")
        .to_string()
}

const W: &str = "worker:\n- labels: [a]\n  args: [w]\n";

#[test]
fn each_invalid_config_names_the_key_and_the_fix() {
    let cases: &[(String, &[&str])] = &[
        (W.to_string(), &["`pat`", "MEGASCALER_PAT"]),
        (
            format!("pat: x\n{W}address: nowhere\n"),
            &["`address`", "0.0.0.0:9403"],
        ),
        (
            "pat: x\nworker:\n- labels: []\n  args: [w]\n".into(),
            &["worker[0].labels", "runs-on"],
        ),
        (
            "pat: x\nworker:\n- labels: [a]\n  args: []\n".into(),
            &["worker[0].args", "program"],
        ),
        (
            "pat: x\nworker:\n- labels: [a, B]\n  args: [w]\n- labels: [b, A]\n  args: [v]\n"
                .into(),
            &["worker[1].labels", "worker[0]"],
        ),
        (
            format!("pat: x\n{W}poll_interval: soon\n"),
            &["poll_interval", "30s"],
        ),
        (
            format!("pat: x\n{W}poll_interval: 30s\n"),
            &["repositories"],
        ),
        (format!("pat: x\n{W}max_parallel: 0\n"), &["max_parallel"]),
        (format!("pat: x\n{W}github_url: ftp://x\n"), &["github_url"]),
        (
            format!("pat: x\n{W}repositories: [justone]\n"),
            &["repositories[0]", "owner/repo"],
        ),
        (format!("pat: x\n{W}pat_file: /p\n"), &["pat_file"]),
        ("pat: x\n".into(), &["`worker`"]),
        (
            format!("pat: x\n{W}colour: blue\n"),
            &["colour", "line 5", "column"],
        ),
        (format!("pat: x\n{W}worker_typo: 1\n"), &["worker_typo"]),
    ];
    for (yaml, needles) in cases {
        let msg = error_of(yaml);
        for n in *needles {
            assert!(msg.contains(n), "message {msg:?} lacks {n:?} for:\n{yaml}");
        }
    }
}

#[test]
fn pat_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pat");
    std::fs::write(&p, "ghp_fromfile\n").unwrap();
    let c = config::parse("t", &format!("{W}pat_file: {}\n", p.display()), &env()).unwrap();
    assert_eq!(c.pat.expose(), "ghp_fromfile");
}

#[test]
fn check_config_binary_succeeds_on_the_example_and_redacts() {
    let out = Command::new(env!("CARGO_BIN_EXE_megascaler"))
        .args(["check-config", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yml"))
        .env_remove("MEGASCALER_PAT")
        .env_remove("MEGASCALER_WEBHOOK_SECRET")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("max_parallel: 8"), "{stdout}");
    assert!(
        !stdout.contains("ghp_replace_me") && !stdout.contains("change-me"),
        "{stdout}"
    );
}

#[test]
fn check_config_binary_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yml");
    std::fs::write(&p, format!("pat: x\n{W}address: 999.1.1.1:1\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_megascaler"))
        .args(["check-config", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`address`"));
}
