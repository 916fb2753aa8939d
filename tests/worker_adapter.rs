//! `megascaler worker-adapter` with a stand-in `Runner.Worker` (a shell script that reads the
//! spawnclient pipe the way actions/runner does: LE type, LE length, UTF-16LE body).

use megascaler::worker::frames;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const STAND_IN: &str = r#"#!/bin/sh
# Stand-in Runner.Worker: spawnclient <in-fd> <out-fd>
[ "$#" -eq 3 ] && [ "$1" = spawnclient ] || { echo "bad args: $*"; exit 1; }
in=/proc/self/fd/$2
exec 3<"$in"
header() { head -c 8 <&3 | od -An -tu4 -v; }
set -- $(header)
kind=$1; len=$2
echo "frame1 type=$kind len=$len"
head -c "$len" <&3 | iconv -f UTF-16LE -t UTF-8 > "$WORK/body.json"
set -- $(header)
echo "frame2 type=$1 len=$2"
exit "$EXIT_WITH"
"#;

fn stand_in(dir: &Path) -> String {
    let p = dir.join("Runner.Worker");
    std::fs::write(&p, STAND_IN).unwrap();
    let mut perm = std::fs::metadata(&p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&p, perm).unwrap();
    p.display().to_string()
}

fn run_adapter(dir: &Path, body: &str, exit_with: i32) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_megascaler"))
        .args(["worker-adapter", &stand_in(dir)])
        .env("WORK", dir)
        .env("EXIT_WITH", exit_with.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut wire = frames::encode(1, body.as_bytes());
    wire.extend(frames::encode(2, b""));
    // Written in small pieces from another thread, so the adapter sees short reads.
    let writer = std::thread::spawn(move || {
        for chunk in wire.chunks(1000) {
            stdin.write_all(chunk).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn large_job_message_arrives_exactly_and_exit_102_means_reported() {
    let dir = tempfile::tempdir().unwrap();
    // Over a megabyte, with non-ASCII, far beyond any pipe buffer.
    let body = format!("{{\"text\":\"{}\"}}", "äbc€".repeat(300_000));
    let (code, output) = run_adapter(dir.path(), &body, 102);
    assert_eq!(code, 0, "{output}");
    let utf16_len: usize = body.encode_utf16().count() * 2;
    assert!(
        output.contains(&format!("frame1 type=1 len={utf16_len}")),
        "{output}"
    );
    assert!(output.contains("frame2 type=2 len=0"), "{output}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("body.json")).unwrap(),
        body
    );
    assert!(output.contains("Runner.Worker exited with 102"), "{output}");
}

#[test]
fn crash_codes_map_to_1() {
    for c in [1, 99, 106] {
        let dir = tempfile::tempdir().unwrap();
        let (code, output) = run_adapter(dir.path(), "{}", c);
        assert_eq!(code, 1, "worker exit {c}: {output}");
    }
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run_adapter(dir.path(), "{}", 105).0, 0);
}

#[test]
fn missing_worker_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_megascaler"))
        .args(["worker-adapter", "/nonexistent/Runner.Worker"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot start"));
}
