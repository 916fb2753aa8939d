//! What a failed session or poll call means for the runner (spec §4.2, §4.3, §4.5; E9–E14).
//!
//! Owns the pure mapping from a [`CallError`] (status plus `typeKey` / broker `errorKind`) to
//! the runner's next step. Message texts are never consulted. No IO.

use super::http::CallError;
use std::time::Duration;

/// After a failed session creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionFailure {
    /// E9: another session exists; retry until the conflict window closes.
    Conflict,
    /// E10: the registration is gone.
    RunnerGone,
    /// Access denied, pool gone, version too old: stop.
    Fatal,
    /// 401: re-authorise and retry (E8).
    Unauthorized,
    /// Anything else: retry after the given pause (or the default).
    Retry(Option<Duration>),
}

pub fn session_failure(e: &CallError) -> SessionFailure {
    let Some(s) = e.service() else {
        return SessionFailure::Retry(None);
    };
    if s.is("TaskAgentSessionConflictException") || s.status == 409 {
        SessionFailure::Conflict
    } else if s.is("TaskAgentNotFoundException") || s.is("RunnerNotFound") || s.status == 404 {
        SessionFailure::RunnerGone
    } else if s.is("AccessDeniedException")
        || s.is("TaskAgentPoolNotFoundException")
        || s.is("RunnerVersionTooOld")
        || s.status == 403
    {
        SessionFailure::Fatal
    } else if s.status == 401 {
        SessionFailure::Unauthorized
    } else {
        SessionFailure::Retry(s.retry_after)
    }
}

/// After a failed poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollFailure {
    /// E11/E12: the session expired or is invalid: open a new one.
    RecreateSession,
    /// E13: the runner was deleted server-side.
    RunnerGone,
    /// The service refuses this runner for good (`RunnerVersionTooOld`).
    Fatal,
    /// E14: timeout, 5xx, 429, network: back off (honouring `Retry-After`).
    Backoff(Option<Duration>),
}

pub fn poll_failure(e: &CallError) -> PollFailure {
    let Some(s) = e.service() else {
        return PollFailure::Backoff(None);
    };
    if s.is("TaskAgentSessionExpiredException")
        || s.is("RunnerSessionInvalid")
        || s.is("AccessDeniedException")
    {
        PollFailure::RecreateSession
    } else if s.is("TaskAgentNotFoundException") || s.is("RunnerNotFound") || s.status == 404 {
        PollFailure::RunnerGone
    } else if s.is("RunnerVersionTooOld") || s.is("HostedRunnerDeprovisioned") {
        PollFailure::Fatal
    } else {
        PollFailure::Backoff(s.retry_after)
    }
}

/// Poll back-off: jittered base–2×base for the first five consecutive errors, then 2×–4×.
pub fn poll_backoff(base: Duration, consecutive: u32) -> Duration {
    let (lo, hi) = if consecutive <= 5 {
        (1.0, 2.0)
    } else {
        (2.0, 4.0)
    };
    let factor: f64 = rand::random_range(lo..hi);
    base.mul_f64(factor)
}

/// Records an empty poll at `now`; true when more than `limit` fell within `window`, i.e. the
/// runner should pause (AR's empty-poll guard). The record is cleared when it fires.
pub fn empty_poll_guard(
    polls: &mut std::collections::VecDeque<std::time::Instant>,
    now: std::time::Instant,
    window: Duration,
    limit: u32,
) -> bool {
    polls.push_back(now);
    while polls
        .front()
        .is_some_and(|at| now.duration_since(*at) > window)
    {
        polls.pop_front();
    }
    if polls.len() > limit as usize {
        polls.clear();
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::parse_error_body;

    fn err(status: u16, body: &str) -> CallError {
        CallError::Service {
            what: "t".into(),
            error: Box::new(parse_error_body(
                status,
                body.as_bytes(),
                Some(Duration::from_secs(3)),
            )),
        }
    }

    #[test]
    fn session_failures() {
        assert_eq!(
            session_failure(&err(
                409,
                r#"{"typeKey":"TaskAgentSessionConflictException"}"#
            )),
            SessionFailure::Conflict
        );
        assert_eq!(
            session_failure(&err(404, r#"{"typeKey":"TaskAgentNotFoundException"}"#)),
            SessionFailure::RunnerGone
        );
        assert_eq!(session_failure(&err(403, "")), SessionFailure::Fatal);
        assert_eq!(session_failure(&err(401, "")), SessionFailure::Unauthorized);
        assert_eq!(
            session_failure(&err(503, "")),
            SessionFailure::Retry(Some(Duration::from_secs(3)))
        );
        let t = CallError::Transport {
            what: "t".into(),
            message: "reset".into(),
        };
        assert_eq!(session_failure(&t), SessionFailure::Retry(None));
    }

    #[test]
    fn poll_failures() {
        assert_eq!(
            poll_failure(&err(400, r#"{"errorKind":"RunnerSessionInvalid"}"#)),
            PollFailure::RecreateSession
        );
        assert_eq!(
            poll_failure(&err(
                404,
                r#"{"typeKey":"TaskAgentSessionExpiredException"}"#
            )),
            PollFailure::RecreateSession
        );
        assert_eq!(
            poll_failure(&err(404, r#"{"errorKind":"RunnerNotFound"}"#)),
            PollFailure::RunnerGone
        );
        assert_eq!(
            poll_failure(&err(400, r#"{"errorKind":"RunnerVersionTooOld"}"#)),
            PollFailure::Fatal
        );
        assert_eq!(
            poll_failure(&err(429, "")),
            PollFailure::Backoff(Some(Duration::from_secs(3)))
        );
    }

    #[test]
    fn backoff_grows_after_five_errors() {
        let b = Duration::from_secs(10);
        for _ in 0..20 {
            let first = poll_backoff(b, 1);
            assert!(first >= b && first < b * 2);
            let later = poll_backoff(b, 6);
            assert!(later >= b * 2 && later < b * 4);
        }
    }

    #[test]
    fn empty_poll_guard_fires_on_many_quick_empties_only() {
        use std::time::Instant;
        let mut q = std::collections::VecDeque::new();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        for i in 0..3 {
            assert!(!empty_poll_guard(&mut q, t0 + Duration::from_secs(i), w, 3));
        }
        assert!(empty_poll_guard(&mut q, t0 + Duration::from_secs(3), w, 3));
        assert!(q.is_empty());
        // Spread out over more than the window: never fires.
        for i in 0..10 {
            assert!(!empty_poll_guard(
                &mut q,
                t0 + Duration::from_secs(100 + 61 * i),
                w,
                3
            ));
        }
    }
}
