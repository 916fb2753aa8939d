//! The production [`RunnerLauncher`]: in-memory runners speaking GitHub's runner protocol.
//!
//! Owns only the adaptation from the driver's small trait to `crate::protocol`'s runner tasks.

use crate::config::Config;
use crate::engine::driver::RunnerLauncher;
use crate::protocol::api::{RunnerCommand, RunnerEnvelope, RunnerRequest};
use tokio::sync::mpsc;

struct Unavailable {
    events: mpsc::Sender<RunnerEnvelope>,
}

impl RunnerLauncher for Unavailable {
    fn launch(&mut self, request: RunnerRequest) -> Result<mpsc::Sender<RunnerCommand>, String> {
        let _ = (&self.events, request);
        Err("the runner protocol is not wired in yet".into())
    }
}

/// The launcher `serve` and the dashboard use.
pub fn protocol_launcher(
    _config: &Config,
    events: mpsc::Sender<RunnerEnvelope>,
) -> Box<dyn RunnerLauncher> {
    Box::new(Unavailable { events })
}
