//! `megascaler sim`: the simulator on its own.

/// Flags of `megascaler sim`.
#[derive(Debug, Clone)]
pub struct Options {
    pub address: String,
    pub webhook_url: Option<String>,
    pub secret: Option<String>,
}

/// Runs the simulator until interrupted.
pub async fn run(_options: Options) -> anyhow::Result<()> {
    anyhow::bail!("`sim` is not implemented yet")
}
