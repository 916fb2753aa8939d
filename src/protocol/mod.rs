//! In-memory ephemeral runners that speak GitHub's runner protocol.
//!
//! [`api`] is the contract with the dispatcher.

pub mod api;
