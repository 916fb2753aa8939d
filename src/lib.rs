//! megascaler: an autoscaler for GitHub Actions self-hosted runners, with a live dashboard.
//!
//! GitHub queues a job; megascaler learns of it (webhook or REST polling), registers an
//! ephemeral runner that exists only in its memory, speaks the runner protocol itself, and when
//! the runner receives a job, picks the worker for the job it *really* got (late binding) and
//! hands the job message to that worker process over stdin.
//!
//! # Layout
//!
//! - [`config`], [`secret`]: the configuration file and the redacting secret type.
//! - [`cli`], [`logging`]: the command line and where logs go; `main.rs` only calls [`cli::main`].
//! - [`github`]: the REST client with the PAT's rate-limit budget.
//! - [`protocol`]: in-memory runners: registration and token caches, OAuth, sessions, the
//!   message loop, job locks and completion. [`protocol::api`] is its contract.
//! - [`engine`]: intake (webhooks, polling), the pure decisions (matching, reconciliation, job
//!   states), the driver that performs them, and supervised worker processes.
//!   [`engine::event`] is the contract with `serve` and the dashboard.
//! - [`tui`]: the dashboard and `megascaler demo`.
//! - [`sim`]: the simulated GitHub the tests and the demo run against.
//! - [`worker`]: the worker side: stdin frames, the `Runner.Worker` adapter.

pub mod cli;
pub mod config;
pub mod engine;
pub mod github;
pub mod logging;
pub mod protocol;
pub mod secret;
pub mod sim;
pub mod tui;
pub mod worker;

/// `megascaler/<version>`: the User-Agent of every HTTP request megascaler sends.
pub const USER_AGENT: &str = concat!("megascaler/", env!("CARGO_PKG_VERSION"));
