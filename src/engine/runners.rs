//! The production [`RunnerLauncher`]: in-memory runners speaking GitHub's runner protocol
//! (`crate::protocol::RunnerFleet`).
//!
//! Owns only the adaptation from the driver's small trait to the fleet.

use crate::engine::driver::RunnerLauncher;
use crate::engine::event::ScopeTokens;
use crate::protocol::RunnerFleet;
use crate::protocol::api::{RunnerCommand, RunnerEnvelope, RunnerRequest};
use tokio::sync::mpsc;

/// Runners from a [`RunnerFleet`], reporting on one shared channel.
pub struct FleetLauncher {
    pub fleet: RunnerFleet,
    pub events: mpsc::Sender<RunnerEnvelope>,
}

impl RunnerLauncher for FleetLauncher {
    fn launch(&mut self, request: RunnerRequest) -> Result<mpsc::Sender<RunnerCommand>, String> {
        Ok(self.fleet.spawn(request, self.events.clone()).commands)
    }

    fn tokens(&self) -> Option<Vec<ScopeTokens>> {
        Some(self.fleet.token_status())
    }
}
