//! The simulator's knobs: which protocol variants it speaks and how it behaves.
//!
//! Owns [`SimConfig`] and its defaults. Where the spec marks a behaviour **[UNSURE]**, both
//! variants exist here behind a switch so megascaler can be tested against each. Nothing here
//! does IO.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

/// How the simulator behaves. `Default`: v1 flow, no encryption, `check_run_id` on,
/// [`Assignment::First`], 2 s long-poll hold.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `runner-registration` answers `use_v2_flow=true`: runners register through the
    /// runner-admin endpoints (§3.6) and then use the broker.
    pub use_v2_flow: bool,
    /// How v1-registered runners reach the broker (§4.1, §4.6).
    pub broker: BrokerMode,
    /// v1 sessions get an RSA-OAEP encrypted AES key; v1 message bodies are AES-CBC encrypted.
    pub encrypt_messages: bool,
    /// Encrypted bodies start with a UTF-8 BOM, as .NET writes them (§4.4 "may start").
    pub bom_in_encrypted_body: bool,
    /// Overrides the `useFipsEncryption` of v1 session answers (None: echo the request). The
    /// OAEP hash follows the answer (§4.4), so this tests that runners read it.
    pub session_fips: Option<bool>,
    /// The `RequireFipsCryptography` agent property (None: not sent).
    pub require_fips: Option<bool>,
    /// Put `contextData.job.check_run_id` (= REST job id) into job messages (§5.2, open Q7).
    pub check_run_id_in_message: bool,
    /// Which idle runner gets a queued job.
    pub assignment: Assignment,
    /// How long a message long poll is held when there is nothing to say (real: ≈50 s).
    pub long_poll_hold: Duration,
    /// A session nobody polls for this long is dropped (its next poll answers
    /// `TaskAgentSessionExpiredException` / `RunnerSessionInvalid`, untaken offers are
    /// re-routed). Must exceed `long_poll_hold`. None: sessions live until deleted.
    pub session_idle_timeout: Option<Duration>,
    /// `lockedUntil = now + lock_duration` at assignment and at every renewal.
    pub lock_duration: Duration,
    /// `plan.version` of job messages (≥ 8: the worker raises `JobCompleted` itself).
    pub plan_version: u32,
    /// Where signed `workflow_job` webhooks go.
    pub webhook: Option<WebhookTarget>,
    /// Lifetime of registration and remove tokens (GitHub: 1 h).
    pub registration_token_lifetime: Duration,
    /// `exp` of the registration JWT (spec: [UNSURE], "short").
    pub registration_jwt_lifetime: Duration,
    /// `expires_in` of runner OAuth access tokens.
    pub oauth_token_lifetime: Duration,
    /// Lifetime of job tokens (from the job's assignment).
    pub job_token_lifetime: Duration,
    /// The valid PAT.
    pub pat: String,
    /// The PAT's primary REST budget per hour (GitHub: 5000 for a classic PAT).
    pub rest_rate_limit: u32,
    /// Which client-assertion algorithms the token endpoint accepts (open Q10).
    pub assertion_algorithms: AssertionAlgorithms,
    /// Which credential the runner-admin endpoints accept (§3.6 [UNSURE]).
    pub admin_auth: AdminAuth,
    /// `RunnerJobRequest`s carry an empty `run_service_url`: runners fetch the job from the
    /// legacy pipelines resource `25adab70-…` (§5.1) instead of `acquirejob`.
    pub legacy_job_message: bool,
    /// How a long poll answers when there is no message (§4.3: "202/204 or empty body").
    pub empty_poll: EmptyPoll,
    /// `should_acknowledge` of `RunnerJobRequest`s (AR acknowledges only when true).
    pub should_acknowledge: bool,
    /// Broker session answers include `agent` (a third-party report says they may not).
    pub broker_session_agent: bool,
    /// `run_service_url` of `RunnerJobRequest`s differs from the job's `SystemVssConnection.url`
    /// (§5.4 [UNSURE] "believed identical"): both serve the run service; calls through the
    /// message's URL also count as `run.via_message_url`.
    pub run_service_url_differs: bool,
    /// A `BrokerMigration` message carries a `messageId` (§4.1: possibly without [UNSURE]).
    pub migration_message_id: bool,
    /// Deleting a busy runner is refused with 422 (§3.8 [UNSURE]); when false it is deleted.
    pub refuse_busy_runner_deletion: bool,
    /// How long a [`crate::sim::Fault::Timeout`] holds the request before answering 504.
    pub fault_timeout: Duration,
    /// The `JobCancellation` timeout sent to runners.
    pub cancel_timeout: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            use_v2_flow: false,
            broker: BrokerMode::Off,
            encrypt_messages: false,
            bom_in_encrypted_body: true,
            session_fips: None,
            require_fips: None,
            check_run_id_in_message: true,
            assignment: Assignment::First,
            long_poll_hold: Duration::from_secs(2),
            session_idle_timeout: Some(Duration::from_secs(300)),
            lock_duration: Duration::from_secs(600),
            plan_version: 12,
            webhook: None,
            registration_token_lifetime: Duration::from_secs(3600),
            registration_jwt_lifetime: Duration::from_secs(3600),
            oauth_token_lifetime: Duration::from_secs(3600),
            job_token_lifetime: Duration::from_secs(6 * 3600),
            pat: "ghp_simulated".to_string(),
            rest_rate_limit: 5000,
            assertion_algorithms: AssertionAlgorithms::Both,
            admin_auth: AdminAuth::Either,
            legacy_job_message: false,
            run_service_url_differs: false,
            empty_poll: EmptyPoll::Accepted,
            should_acknowledge: true,
            broker_session_agent: true,
            migration_message_id: true,
            refuse_busy_runner_deletion: true,
            fault_timeout: Duration::from_secs(30),
            cancel_timeout: Duration::from_secs(300),
        }
    }
}

/// How v1-registered runners are moved to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerMode {
    /// Everything stays on the pipelines service (`PipelineAgentJobRequest`).
    #[default]
    Off,
    /// The added agent carries `ServerUrlV2` and `UseV2Flow=true`: sessions go to the broker.
    AgentProperties,
    /// v1 polls answer `BrokerMigration`; the job is a `RunnerJobRequest` at the broker.
    MigrationMessage,
    /// The v1 session answer carries `brokerMigrationMessage` (§4.1): the runner re-creates its
    /// session at the broker (which replaces the v1 one); jobs go only to broker sessions.
    SessionMigration,
}

/// The answer to a long poll that found no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyPoll {
    /// 202 Accepted, empty body.
    #[default]
    Accepted,
    /// 204 No Content.
    NoContent,
    /// 200 OK with an empty body.
    OkEmpty,
}

/// Which of the idle online runners whose labels cover a job's labels gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// The runner registered first.
    #[default]
    First,
    /// A random one.
    Random,
    /// The runner registered last.
    Newest,
    /// The one with the most labels: the "worst" choice, maximising wrong-runner landings.
    MostLabels,
}

/// Which algorithms the OAuth token endpoint accepts for client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssertionAlgorithms {
    #[default]
    Both,
    Rs256Only,
    Ps256Only,
}

/// Which credential the runner-admin endpoints (§3.6) accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminAuth {
    /// `RemoteAuth <registration token>` (actions/runner).
    RegistrationToken,
    /// `Bearer <registration JWT>` (github-act-runner HEAD).
    Jwt,
    /// Either.
    #[default]
    Either,
}

/// Where webhooks go and the HMAC secret they are signed with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTarget {
    pub url: Url,
    pub secret: String,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url.as_str())
            .field("secret", &"***")
            .finish()
    }
}

/// Faults applied to webhook deliveries (probabilities in 0..=1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookFaults {
    /// Probability that a delivery is never sent.
    #[serde(default)]
    pub drop: f64,
    /// Probability that a delivery is sent twice (same `X-GitHub-Delivery`).
    #[serde(default)]
    pub duplicate: f64,
    /// Probability that a delivery is held back and sent after the next one.
    #[serde(default)]
    pub reorder: f64,
    /// Probability that a delivery carries only the legacy `X-Hub-Signature` (SHA-1).
    #[serde(default)]
    pub unsigned: f64,
    /// Probability that a delivery is form-encoded (`payload=<json>`), as GitHub can send.
    #[serde(default)]
    pub form_encoded: f64,
    /// Extra delay for `in_progress` deliveries only (GitHub sends them 1-60 s late).
    #[serde(default, with = "humantime_serde_millis")]
    pub in_progress_delay: std::time::Duration,
    /// Probability that a delivery's body is truncated JSON (correctly signed).
    #[serde(default)]
    pub malformed: f64,
    /// Probability that a delivery is signed with the wrong secret.
    #[serde(default)]
    pub bad_signature: f64,
    /// Delay before every delivery.
    #[serde(default, with = "humantime_serde_millis")]
    pub delay: std::time::Duration,
}

/// `Duration` as whole milliseconds, so `/_sim/` scripts can write `"delay": 500`.
mod humantime_serde_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
