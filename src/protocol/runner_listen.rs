//! How a runner reacts to the outcome of its current activity: a session opened or refused, a
//! poll answered or failed (spec §4.2–§4.5, E6–E15).
//!
//! Owns applying [`super::classify`]'s verdicts to the runner: back-off with jitter (honouring
//! `Retry-After`), recreating sessions, the session-conflict window, the clock-skew window, and
//! "the runner is gone" (fatal when idle; while a job runs, the job is kept).

use super::api::RunnerEvent;
use super::classify::{self, PollFailure, SessionFailure};
use super::messages::RawMessage;
use super::oauth::OAuthError;
use super::runner::{End, OpenError, Runner, Step};
use super::session::{Listener, Session};
use std::time::Instant;

impl Runner {
    /// The runner no longer exists server-side: end when idle, keep the job otherwise.
    pub(super) fn gone(&mut self, why: String) -> Step {
        if self.job.is_some() {
            tracing::warn!(runner = %self.name, %why, "runner gone while its job runs; waiting for the worker");
            self.listening = false;
            Step::Continue
        } else {
            Step::End(End::Failed(why))
        }
    }

    fn oauth_failure(&mut self, e: OAuthError) -> Step {
        let t = &self.shared.tunables;
        match e {
            OAuthError::RunnerGone(code) => {
                self.gone(format!("the runner was deleted server-side (OAuth {code})"))
            }
            OAuthError::ClockSkew => {
                let since = *self.skew_since.get_or_insert_with(Instant::now);
                if since.elapsed() > t.clock_skew_window {
                    return Step::End(End::Failed("clock skew for too long (E7)".into()));
                }
                self.next_delay = t.session_retry;
                Step::Continue
            }
            OAuthError::Call(c) => {
                self.next_delay = c.service().and_then(|s| s.retry_after).unwrap_or_else(|| {
                    classify::poll_backoff(t.poll_error_backoff, self.poll_errors)
                });
                Step::Continue
            }
        }
    }

    pub(super) async fn on_open(&mut self, r: Result<Session, OpenError>) -> Step {
        let t = self.shared.tunables.clone();
        match r {
            Ok(s) => {
                self.skew_since = None;
                if let (Some(url), Listener::V1 { .. }, false) =
                    (&s.broker_migration, &self.listener, self.migrated_session)
                {
                    self.migrated_session = true;
                    self.listener = Listener::Broker { base: url.clone() };
                    return Step::Continue;
                }
                self.session = Some(s);
                self.conflict_since = None;
                self.last_ok_poll = Instant::now();
                if !self.announced {
                    self.announced = true;
                    self.emit(RunnerEvent::Listening).await;
                }
                Step::Continue
            }
            Err(OpenError::OAuth(e)) => self.oauth_failure(e),
            Err(OpenError::Call(e)) => match classify::session_failure(&e) {
                SessionFailure::Conflict => {
                    let since = *self.conflict_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= t.conflict_window {
                        return Step::End(End::Failed(format!(
                            "session conflict did not clear (E9): {e}"
                        )));
                    }
                    self.next_delay = t.session_retry;
                    Step::Continue
                }
                SessionFailure::RunnerGone => {
                    self.gone(format!("the runner was deleted server-side (E10): {e}"))
                }
                SessionFailure::Fatal => Step::End(End::Failed(format!("session refused: {e}"))),
                SessionFailure::Unauthorized | SessionFailure::Retry(None) => {
                    self.next_delay = t.session_retry;
                    Step::Continue
                }
                SessionFailure::Retry(Some(ra)) => {
                    self.next_delay = ra.max(t.session_retry);
                    Step::Continue
                }
            },
        }
    }

    pub(super) async fn on_poll(&mut self, r: Result<Option<RawMessage>, OpenError>) -> Step {
        let t = self.shared.tunables.clone();
        match r {
            Ok(m) => {
                self.poll_errors = 0;
                self.skew_since = None;
                self.last_ok_poll = Instant::now();
                match m {
                    None => {
                        // AR's empty-poll guard: a server answering "nothing" at once, over
                        // and over, would otherwise be hammered.
                        if classify::empty_poll_guard(
                            &mut self.empty_polls,
                            Instant::now(),
                            t.empty_poll_window,
                            t.empty_poll_limit,
                        ) {
                            self.next_delay = classify::poll_backoff(t.poll_error_backoff, 1);
                        }
                        Step::Continue
                    }
                    Some(raw) => self.handle_message(raw).await,
                }
            }
            Err(OpenError::OAuth(e)) => {
                self.poll_errors += 1;
                self.oauth_failure(e)
            }
            Err(OpenError::Call(e)) => {
                self.poll_errors += 1;
                let stale = self.last_ok_poll.elapsed() >= t.session_stale;
                match classify::poll_failure(&e) {
                    PollFailure::RecreateSession => {
                        self.drop_session();
                        Step::Continue
                    }
                    PollFailure::RunnerGone => {
                        self.gone(format!("the runner was deleted server-side (E13): {e}"))
                    }
                    PollFailure::Fatal => {
                        let why = format!("the service refuses this runner: {e}");
                        if self.job.is_some() {
                            self.gone(why)
                        } else {
                            Step::End(End::Failed(why))
                        }
                    }
                    PollFailure::Backoff(ra) => {
                        tracing::debug!(runner = %self.name, error = %e, "poll failed; backing off");
                        if stale {
                            // E15: nothing worked for a long time; start over with a new session.
                            self.drop_session();
                        }
                        self.next_delay = ra.unwrap_or_else(|| {
                            classify::poll_backoff(t.poll_error_backoff, self.poll_errors)
                        });
                        Step::Continue
                    }
                }
            }
        }
    }
}
