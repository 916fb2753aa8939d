//! The dashboard (`megascaler tui`) and `megascaler demo`.

use crate::config::Config;

pub mod app;
pub mod demo;
pub mod explain;
pub mod keymap;
pub mod model;
#[cfg(test)]
mod sample;
#[cfg(test)]
mod snapshot_tests;
pub mod theme;
pub mod views;

/// Runs the dashboard over a fresh engine.
pub async fn run(_config: Config) -> anyhow::Result<()> {
    anyhow::bail!("`tui` is not implemented yet")
}
