//! The worker side: stdin frames and the `Runner.Worker` adapter.

pub mod adapter;
pub mod env;
pub mod frames;
