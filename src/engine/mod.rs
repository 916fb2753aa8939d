//! The engine: intake, decisions, the driver that performs them, supervised workers.
//!
//! [`event`] is the contract with its consumers (`serve`, the dashboard).

pub mod binding;
pub mod dispatch;
pub mod event;
pub mod intake;
pub mod jobs;
pub mod matching;
pub mod reconcile;
pub mod serve;
pub mod supervisor;
