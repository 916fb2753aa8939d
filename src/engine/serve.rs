//! `megascaler serve`: the engine with events written to the log.

use crate::config::Config;

/// Runs the engine headless until SIGINT or SIGTERM.
pub async fn run(_config: Config) -> anyhow::Result<()> {
    anyhow::bail!("`serve` is not implemented yet")
}
