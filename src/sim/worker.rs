//! The simulator's worker (`megascaler sim-worker`).

/// Reads a job from stdin frames and reports it; returns the exit code.
pub async fn run() -> anyhow::Result<u8> {
    anyhow::bail!("`sim-worker` is not implemented yet")
}
