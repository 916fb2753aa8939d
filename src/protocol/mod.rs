//! In-memory ephemeral runners that speak GitHub's runner protocol.
//!
//! [`api`] is the contract with the dispatcher.

pub mod api;
pub mod context;
pub mod crypto;
pub mod http;
pub mod keypool;
pub mod rawjson;

pub use crate::github::{Scope, ScopeKind};
pub use context::{ContextError, MegascalerContext, parse_job_identity, splice_megascaler_context};
pub mod location;
pub mod messages;
pub mod oauth;
pub mod registrar;
pub mod registration;
pub mod token_cache;
