//! The simulated GitHub: REST, runner registration, pipelines, broker, run service, webhooks.

pub mod standalone;
pub mod worker;
