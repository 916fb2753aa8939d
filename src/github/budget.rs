//! The PAT's REST budget: what GitHub's rate-limit headers last said, and what we spent.
//!
//! Owns the counters behind [`crate::engine::event::RestBudget`]. Updated from every REST
//! response's headers; read as a snapshot. No IO.

use crate::engine::event::RestBudget;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::header::HeaderMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `(limit, remaining, reset)` as GitHub last reported them.
type LastReported = (Option<u64>, Option<u64>, Option<DateTime<Utc>>);

/// Shared, lock-light budget bookkeeping.
#[derive(Debug, Default)]
pub struct BudgetTracker {
    calls: AtomicU64,
    saved: AtomicU64,
    last: Mutex<LastReported>,
}

impl BudgetTracker {
    /// One PAT-authenticated call was sent.
    pub fn record_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// A cache or a conditional request saved `n` calls.
    pub fn record_saved(&self, n: u64) {
        self.saved.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `x-ratelimit-limit`, `-remaining` and `-reset` when present.
    pub fn update_from_headers(&self, headers: &HeaderMap) {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let limit = num("x-ratelimit-limit");
        let remaining = num("x-ratelimit-remaining");
        let reset = num("x-ratelimit-reset")
            .and_then(|s| i64::try_from(s).ok())
            .and_then(|s| Utc.timestamp_opt(s, 0).single());
        if limit.is_none() && remaining.is_none() && reset.is_none() {
            return;
        }
        if let Ok(mut last) = self.last.lock() {
            if limit.is_some() {
                last.0 = limit;
            }
            if remaining.is_some() {
                last.1 = remaining;
            }
            if reset.is_some() {
                last.2 = reset;
            }
        }
    }

    /// A snapshot for the dashboard.
    pub fn snapshot(&self) -> RestBudget {
        let (limit, remaining, reset) = self.last.lock().map(|l| *l).unwrap_or_default();
        RestBudget {
            limit,
            remaining,
            reset,
            calls: self.calls.load(Ordering::Relaxed),
            saved: self.saved.load(Ordering::Relaxed),
        }
    }
}

/// How long GitHub asks us to wait: `retry-after` seconds, else, when the primary limit is
/// exhausted, until `x-ratelimit-reset` (spec E39).
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header("x-ratelimit-remaining").map(str::trim) == Some("0") {
        let reset = header("x-ratelimit-reset")?.trim().parse::<i64>().ok()?;
        let wait = reset - now.timestamp();
        return Some(Duration::from_secs(u64::try_from(wait.max(0)).unwrap_or(0)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn headers_update_the_snapshot() {
        let t = BudgetTracker::default();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit", HeaderValue::from_static("5000"));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("4990"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1700000000"));
        t.update_from_headers(&h);
        t.record_call();
        t.record_saved(2);
        let s = t.snapshot();
        assert_eq!(
            (s.limit, s.remaining, s.calls, s.saved),
            (Some(5000), Some(4990), 1, 2)
        );
        assert_eq!(s.reset.unwrap().timestamp(), 1_700_000_000);
    }

    #[test]
    fn retry_after_prefers_the_header_then_the_reset() {
        let now = Utc.timestamp_opt(1_000, 0).unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1030"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
    }
}
