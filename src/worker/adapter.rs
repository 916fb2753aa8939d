//! `megascaler worker-adapter`: actions/runner's `Runner.Worker` behind stdin frames.

use std::path::Path;

/// Runs the adapter; returns the exit code.
pub fn run(_worker: &Path) -> anyhow::Result<u8> {
    anyhow::bail!("`worker-adapter` is not implemented yet")
}
