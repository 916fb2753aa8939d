//! `megascaler demo`: the dashboard against the embedded simulator.

/// Runs the demo.
pub async fn run() -> anyhow::Result<()> {
    anyhow::bail!("`demo` is not implemented yet")
}
