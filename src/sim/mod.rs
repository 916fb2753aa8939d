//! The simulated GitHub: REST, runner registration, pipelines, broker, run service, webhooks.
//!
//! Owns a faithful, strict stand-in for everything megascaler talks to, on one loopback port in
//! GHES layout (spec `actions-runner-protocol.md` §2–§7): what the real service rejects, it
//! rejects with the real error shapes, and every protocol violation it sees is recorded for tests.
//! It must not depend on megascaler's own client code (tests drive it with plain HTTP), and it
//! never sleeps to wait for state: long polls and [`SimHandle::wait_until`] await a change signal.
//!
//! Layout: [`config`] (the knobs), [`model`] (what tests read back, endpoint names), `world`
//! (the state and its transitions: runners, delivery, jobs, runs, reports), `assign` (GitHub's
//! pure assignment rule), `tokens`, `crypto`, `message` (the job message), `caller` (which
//! credential a request carries), the HTTP faces (`http` router and error shapes, `rest` and
//! `rest_runs`, `admin`, `pipelines`, `sessions`, `plan`, `oauth`, `broker`, `control` for
//! `/_sim/`), `server` ([`SimHandle`]), `webhook` (signed deliveries with faults), [`worker`]
//! (`megascaler sim-worker`) and [`standalone`] (`megascaler sim`).

mod admin;
mod assign;
mod broker;
mod caller;
pub mod config;
mod control;
mod crypto;
mod http;
mod message;
pub mod model;
mod oauth;
mod pipelines;
mod plan;
mod rest;
mod rest_runs;
mod server;
mod sessions;
pub mod standalone;
mod tokens;
mod webhook;
pub mod worker;
mod world;

pub use config::{
    AdminAuth, AssertionAlgorithms, Assignment, BrokerMode, EmptyPoll, SimConfig, WebhookFaults,
    WebhookTarget,
};
pub use crypto::sign_webhook;
pub use model::{
    CompletionPath, Counters, Fault, JobSpec, JobStatus, SimJob, SimRunner, TokenKind, Violation,
    WorkerScript, endpoint,
};
pub use server::{SimHandle, Simulator};

/// Name of the non-secret job variable that carries the [`WorkerScript`] as JSON.
pub const SCRIPT_VARIABLE: &str = "megascaler.sim.script";
