//! In-memory ephemeral runners that speak GitHub's runner protocol.
//!
//! [`api`] is the contract with the dispatcher; [`RunnerFleet`] is its entry point: it spawns
//! one task per runner ([`RunnerFleet::spawn`]) that registers through the per-scope token cache
//! ([`token_cache`], [`registrar`]), authenticates ([`oauth`]), listens ([`session`]), takes at
//! most one job ([`job`], [`renewal`]) and reports [`api::RunnerEvent`]s. Pure decisions live in
//! [`messages`], [`classify`] and [`context`]; the wire layer in [`http`] and [`location`].

pub mod api;
pub mod classify;
pub mod completion;
pub mod context;
pub mod crypto;
pub mod fleet;
pub mod http;
pub mod job;
pub mod keypool;
pub mod location;
pub mod messages;
pub mod oauth;
pub mod rawjson;
pub mod redact;
pub mod registrar;
pub mod registration;
pub mod renewal;
mod runner;
pub mod runner_admin;
mod runner_listen;
mod runner_messages;
pub mod session;
pub mod token_cache;

pub use crate::github::{Scope, ScopeKind};
pub use context::{
    ContextError, MegascalerContext, job_identity, parse_job_identity, splice_megascaler_context,
};
pub use fleet::{FleetSettings, RunnerFleet, RunnerHandle, Tunables};
