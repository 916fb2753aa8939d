//! The engine: intake, decisions, the driver that performs them, supervised workers.
//!
//! [`event`] is the contract with its consumers (`serve`, the dashboard).

pub mod event;
pub mod serve;
