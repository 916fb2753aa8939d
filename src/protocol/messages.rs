//! Messages a runner receives, and what to do with each (spec §4.7, §4.8).
//!
//! Owns parsing a polled message into a [`Message`] and the pure decision [`decide`], which
//! looks at the message type *before* any acknowledgement: a second job offered to a one-job
//! runner is never acknowledged, so the service can give it to another runner (E16; the
//! original acked first and lost such jobs). No IO.

use super::context::get_ci;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// A message as polled (before decryption). Its `Debug` omits the body, which can hold a job
/// token.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RawMessage {
    #[serde(default)]
    pub message_id: Option<u64>,
    #[serde(default)]
    pub message_type: String,
    #[serde(default)]
    pub iv: Option<String>,
    #[serde(default)]
    pub body: String,
}

impl std::fmt::Debug for RawMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMessage")
            .field("message_id", &self.message_id)
            .field("message_type", &self.message_type)
            .field("encrypted", &self.iv.is_some())
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// A `RunnerJobRequest` reference (broker / run service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReference {
    pub runner_request_id: String,
    pub run_service_url: Option<String>,
    pub billing_owner_id: Option<String>,
    pub should_acknowledge: bool,
}

/// A decrypted message, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `PipelineAgentJobRequest`: the job message itself.
    InlineJob(JobText),
    /// `RunnerJobRequest`: acquire the job from the run service.
    JobReference(JobReference),
    /// `JobCancellation` for the job with this orchestration id.
    Cancellation {
        job_id: String,
        timeout: Option<Duration>,
    },
    /// `BrokerMigration`: fetch the real message from this broker.
    BrokerMigration { broker_base_url: String },
    /// `ForceTokenRefresh`.
    ForceTokenRefresh,
    /// Anything else (self-update requests, config refreshes, unknown types): ack and ignore.
    Other(String),
}

/// A job message's text; its `Debug` shows only the length (the text holds the job token).
#[derive(Clone, PartialEq, Eq)]
pub struct JobText(pub String);

impl std::fmt::Debug for JobText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JobText(<{} bytes>)", self.0.len())
    }
}

/// A message body that is not what its type promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {kind} message: {reason}")]
pub struct MessageError {
    pub kind: String,
    pub reason: String,
}

fn field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    get_ci(v, k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Interprets a decrypted body by the message type (compared case-insensitively).
pub fn parse(message_type: &str, body: &str) -> Result<Message, MessageError> {
    let err = |reason: &str| MessageError {
        kind: message_type.to_string(),
        reason: reason.to_string(),
    };
    let json = || serde_json::from_str::<Value>(body).map_err(|e| err(&e.to_string()));
    let t = message_type.to_ascii_lowercase();
    Ok(match t.as_str() {
        "pipelineagentjobrequest" => {
            json()?;
            Message::InlineJob(JobText(body.to_string()))
        }
        "runnerjobrequest" => {
            let v = json()?;
            Message::JobReference(JobReference {
                runner_request_id: field(&v, "runner_request_id")
                    .ok_or_else(|| err("no runner_request_id"))?
                    .to_string(),
                run_service_url: field(&v, "run_service_url").map(str::to_string),
                billing_owner_id: field(&v, "billing_owner_id").map(str::to_string),
                should_acknowledge: get_ci(&v, "should_acknowledge")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        }
        "jobcancellation" => {
            let v = json()?;
            Message::Cancellation {
                job_id: field(&v, "jobId")
                    .ok_or_else(|| err("no jobId"))?
                    .to_string(),
                timeout: field(&v, "timeout").and_then(parse_timespan),
            }
        }
        "brokermigration" => {
            let v = json()?;
            Message::BrokerMigration {
                broker_base_url: field(&v, "brokerBaseUrl")
                    .ok_or_else(|| err("no brokerBaseUrl"))?
                    .to_string(),
            }
        }
        "forcetokenrefresh" => Message::ForceTokenRefresh,
        _ => Message::Other(message_type.to_string()),
    })
}

/// The longest cancellation timeout taken from a message.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// A .NET TimeSpan text `[-][d.]hh:mm:ss[.fffffff]`.
pub fn parse_timespan(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.starts_with('-') {
        return Some(Duration::ZERO);
    }
    let (days, rest) = match s.split_once('.') {
        Some((d, r)) if !d.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, s),
    };
    let mut parts = rest.split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let sec_text = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let secs: f64 = sec_text.parse().ok()?;
    if !(0.0..60.0).contains(&secs) || h >= 24 || m >= 60 {
        return None;
    }
    let whole = days.checked_mul(86_400)?.checked_add(h * 3600 + m * 60)?;
    // Capped: a server-chosen timeout becomes a grace period; a day is plenty.
    let total = Duration::from_secs(whole).checked_add(Duration::from_secs_f64(secs))?;
    Some(total.min(MAX_TIMEOUT))
}

/// What the runner does with a message, decided before any acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Acknowledge, then take this job.
    TakeJob,
    /// Do not acknowledge: this runner already has its one job (E16).
    LeaveForAnotherRunner,
    /// The running job was cancelled: tell the worker (acknowledge).
    CancelRunningJob { timeout: Option<Duration> },
    /// Fetch from the broker and decide again on what it returns.
    FollowMigration(String),
    /// Drop the cached OAuth token (acknowledge).
    RefreshToken,
    /// Acknowledge and ignore.
    Ignore,
}

/// The decision (spec §4.8), from the message and whether this runner already has a job, and
/// the orchestration id of that job.
pub fn decide(message: &Message, running_job: Option<&str>) -> Decision {
    match message {
        Message::InlineJob(_) | Message::JobReference(_) => match running_job {
            Some(_) => Decision::LeaveForAnotherRunner,
            None => Decision::TakeJob,
        },
        Message::Cancellation { job_id, timeout } => match running_job {
            Some(j) if j.eq_ignore_ascii_case(job_id) => {
                Decision::CancelRunningJob { timeout: *timeout }
            }
            _ => Decision::Ignore,
        },
        Message::BrokerMigration { broker_base_url } => {
            Decision::FollowMigration(broker_base_url.clone())
        }
        Message::ForceTokenRefresh => Decision::RefreshToken,
        Message::Other(_) => Decision::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("00:05:00"), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_timespan("0.02:00:01"),
            Some(Duration::from_secs(7_201))
        );
        assert_eq!(
            parse_timespan("1.02:00:01"),
            Some(MAX_TIMEOUT),
            "capped at a day"
        );
        assert_eq!(
            parse_timespan("00:00:01.5"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_timespan("nonsense"), None);
        assert_eq!(parse_timespan("00:00:99"), None);
        assert_eq!(parse_timespan("99999999999999999.00:00:00"), None);
        assert_eq!(parse_timespan("400.00:00:00"), Some(MAX_TIMEOUT));
    }

    #[test]
    fn types_are_case_insensitive_and_bodies_checked() {
        let m = parse("runnerJobRequest", r#"{"runner_request_id":"r1","run_service_url":"https://rs/","should_acknowledge":true}"#).unwrap();
        assert!(
            matches!(&m, Message::JobReference(r) if r.runner_request_id == "r1" && r.should_acknowledge)
        );
        assert!(parse("RunnerJobRequest", "{}").is_err());
        assert!(parse("PipelineAgentJobRequest", "not json").is_err());
        assert_eq!(
            parse("BrokerMigration", r#"{"brokerBaseUrl":"https://b/"}"#).unwrap(),
            Message::BrokerMigration {
                broker_base_url: "https://b/".into()
            }
        );
        assert_eq!(
            parse("AgentRefresh", "{}").unwrap(),
            Message::Other("AgentRefresh".into())
        );
    }

    #[test]
    fn a_second_job_is_never_taken_or_acked() {
        let job = Message::InlineJob(JobText("{}".into()));
        assert_eq!(format!("{job:?}"), "InlineJob(JobText(<2 bytes>))");
        assert_eq!(decide(&job, None), Decision::TakeJob);
        assert_eq!(decide(&job, Some("j1")), Decision::LeaveForAnotherRunner);
        let cancel = Message::Cancellation {
            job_id: "J1".into(),
            timeout: None,
        };
        assert_eq!(
            decide(&cancel, Some("j1")),
            Decision::CancelRunningJob { timeout: None }
        );
        assert_eq!(decide(&cancel, Some("other")), Decision::Ignore);
        assert_eq!(decide(&cancel, None), Decision::Ignore);
    }
}
