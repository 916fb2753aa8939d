//! `megascaler worker-adapter PATH/TO/Runner.Worker`: actions/runner's `Runner.Worker` behind
//! megascaler's stdin frames (spec §6.3). Replaces the seed's PowerShell and Python wrappers.
//!
//! Reads frames from stdin (u32 big-endian type and length, UTF-8 body), re-encodes each for
//! `Runner.Worker spawnclient <in-fd> <out-fd>`: little-endian type and byte length, body as
//! UTF-16LE without BOM, written to an anonymous pipe whose read end the worker inherits.
//! Reads are exact, so large job messages survive short pipe reads. Exit code: 0 when the worker
//! exits 100–105 (it reported the job itself), else 1 (megascaler then fails the job).
//!
//! `Runner.Worker` needs a `.runner` file in the parent of the directory holding it (the
//! runner's root, e.g. `/opt/actions-runner/.runner` for `/opt/actions-runner/bin/Runner.Worker`),
//! at least `{"workFolder": "_work"}`; see `assets/workers/README.md`.

use crate::worker::frames;
use anyhow::Context;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

/// Re-encodes one frame for `Runner.Worker`: LE type, LE byte length, UTF-16LE body.
pub fn encode_for_runner_worker(kind: u32, body_utf8: &[u8]) -> anyhow::Result<Vec<u8>> {
    let text = std::str::from_utf8(body_utf8).context("frame body is not UTF-8")?;
    let body: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let len = i32::try_from(body.len()).context("frame body too large for Runner.Worker")?;
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Translates every frame from `input` to `output` until `input` ends.
pub fn forward_frames<R: Read, W: Write>(input: &mut R, output: &mut W) -> anyhow::Result<()> {
    while let Some((kind, body)) =
        frames::read_frame(input).context("reading a frame from stdin")?
    {
        output
            .write_all(&encode_for_runner_worker(kind, &body)?)
            .context("writing a frame to Runner.Worker")?;
        output.flush()?;
    }
    Ok(())
}

/// Marks one of our own pipe ends close-on-exec, so the worker does not inherit it (it would
/// then never see end-of-input on its channel).
fn keep_private(fd: &OwnedFd) -> anyhow::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("fcntl(FD_CLOEXEC)")?;
    Ok(())
}

/// Maps `Runner.Worker`'s exit code to the adapter's: 0 for 100–105, else 1.
pub fn exit_code_for(worker_code: Option<i32>) -> u8 {
    match worker_code {
        Some(100..=105) => 0,
        _ => 1,
    }
}

/// Runs the adapter; returns the exit code.
pub fn run(worker: &Path) -> anyhow::Result<u8> {
    // nix's pipe() leaves both ends inheritable; only the worker's ends may cross into it.
    let (worker_reads, we_write) = nix::unistd::pipe().context("pipe")?;
    let (we_read, worker_writes) = nix::unistd::pipe().context("pipe")?;
    keep_private(&we_write)?;
    keep_private(&we_read)?;
    let in_fd = worker_reads.as_raw_fd().to_string();
    let out_fd = worker_writes.as_raw_fd().to_string();
    let mut command = if worker.extension().is_some_and(|e| e == "dll") {
        let mut c = Command::new("dotnet");
        c.arg(worker);
        c
    } else {
        Command::new(worker)
    };
    let mut child = command
        .args(["spawnclient", &in_fd, &out_fd])
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", worker.display()))?;
    drop(worker_reads);
    drop(worker_writes);

    // Runner.Worker sends nothing we need back; drain its channel so it never blocks on it.
    let mut from_worker = File::from(we_read);
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        while matches!(from_worker.read(&mut sink), Ok(n) if n > 0) {}
    });
    let mut to_worker = File::from(we_write);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        if let Err(e) = forward_frames(&mut stdin, &mut to_worker) {
            eprintln!("megascaler worker-adapter: {e:#}");
        }
        // Keep the pipe open until stdin ends: closing it early would look like a cancel.
    });
    let status = child.wait().context("waiting for Runner.Worker")?;
    let code = status.code();
    eprintln!(
        "megascaler worker-adapter: Runner.Worker exited with {}",
        code.map(|c| c.to_string())
            .unwrap_or_else(|| status.to_string())
    );
    Ok(exit_code_for(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_little_endian_utf16() {
        let mut input = frames::encode(1, "{\"é\":1}".as_bytes());
        input.extend(frames::encode(2, b""));
        let mut out = Vec::new();
        forward_frames(&mut &input[..], &mut out).unwrap();
        let body: Vec<u8> = "{\"é\":1}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(&out[..4], &1u32.to_le_bytes());
        assert_eq!(&out[4..8], &(body.len() as i32).to_le_bytes());
        assert_eq!(&out[8..8 + body.len()], &body[..]);
        assert_eq!(&out[8 + body.len()..], &[2, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn exit_codes() {
        for c in 100..=105 {
            assert_eq!(exit_code_for(Some(c)), 0);
        }
        for c in [Some(0), Some(1), Some(99), Some(106), None] {
            assert_eq!(exit_code_for(c), 1);
        }
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let input = frames::encode(1, &[0xff, 0xfe]);
        assert!(forward_frames(&mut &input[..], &mut Vec::new()).is_err());
    }
}
