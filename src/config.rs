//! The configuration file: its YAML shape, defaults, environment overrides and validation.
//!
//! Owns turning `config.yml` (plus `MEGASCALER_*` environment variables) into a [`Config`] that
//! the rest of megascaler can trust. Every rejection names the key and says how to fix it.
//! It does no network IO and starts nothing; [`resolve`] is a pure function of its inputs so
//! the precedence rules are table-tested.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Environment variable that overrides `pat`.
pub const ENV_PAT: &str = "MEGASCALER_PAT";
/// Environment variable that overrides `secret`.
pub const ENV_WEBHOOK_SECRET: &str = "MEGASCALER_WEBHOOK_SECRET";

/// Why a configuration was refused. The message always names the key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The YAML did not parse, or had an unknown key; serde_yaml's message carries line and column.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// A key has a value that cannot work.
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// How a worker entry's labels are compared with a job's `runs-on` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// The job's labels equal the entry's labels, ignoring case (the seed's rule).
    #[default]
    Exact,
    /// The job's labels are a subset of the entry's labels, ignoring case.
    Subset,
}

/// One `worker:` entry as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    allocate: Vec<String>,
    #[serde(default)]
    release: Vec<String>,
    #[serde(default)]
    max: Option<usize>,
    #[serde(default, rename = "match")]
    match_mode: MatchMode,
}

/// The file as written. Every key is optional here; [`resolve`] decides what is required.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    worker: Vec<RawWorker>,
    address: Option<String>,
    secret: Option<String>,
    #[serde(default)]
    insecure_unsigned_webhooks: bool,
    pat: Option<String>,
    pat_file: Option<PathBuf>,
    github_url: Option<String>,
    max_parallel: Option<usize>,
    #[serde(default)]
    repositories: Vec<String>,
    poll_interval: Option<String>,
    state_dir: Option<PathBuf>,
    runner_group: Option<String>,
    runner_name_prefix: Option<String>,
    identify_timeout: Option<String>,
    cancel_grace: Option<String>,
}

/// A worker entry: which jobs it serves and how to start it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerEntry {
    /// The `runs-on` labels this entry serves.
    pub labels: Vec<String>,
    /// Program and arguments; `{target}` is replaced by the `allocate` command's output.
    pub args: Vec<String>,
    /// Extra environment for the worker (after the allowlist). Values are printed as `***`
    /// by `check-config`, because operators keep credentials for their worker scripts here.
    #[serde(serialize_with = "redacted_values")]
    pub env: BTreeMap<String, String>,
    /// Optional command whose trimmed stdout becomes `{target}`.
    pub allocate: Vec<String>,
    /// Optional command run after the worker exits, whatever happened.
    pub release: Vec<String>,
    /// At most this many concurrent workers of this entry.
    pub max: Option<usize>,
    /// How labels are compared.
    #[serde(rename = "match")]
    pub match_mode: MatchMode,
}

/// A repository named `owner/repo`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RepoName {
    pub owner: String,
    pub repo: String,
}

impl RepoName {
    /// Parses `owner/repo`.
    pub fn parse(s: &str) -> Option<Self> {
        let (owner, repo) = s.trim().split_once('/')?;
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (ok(owner) && ok(repo)).then(|| RepoName {
            owner: owner.to_string(),
            repo: repo.to_string(),
        })
    }

    /// `owner/repo`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.repo)
    }
}

/// The validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Worker entries in file order (the order decides ties).
    pub workers: Vec<WorkerEntry>,
    /// Webhook listener address; `None`: no listener.
    pub address: Option<SocketAddr>,
    /// Webhook HMAC secret.
    pub secret: Option<Secret>,
    /// Accept unsigned webhooks when no secret is set (explicit opt-in).
    pub insecure_unsigned_webhooks: bool,
    /// The PAT used for REST calls.
    pub pat: Secret,
    /// `https://github.com` or a GHES base URL.
    pub github_url: Url,
    /// Maximum concurrent workers; `None`: unbounded.
    pub max_parallel: Option<usize>,
    /// Repositories polled for queued jobs.
    pub repositories: Vec<RepoName>,
    /// Poll period; `None`: no polling.
    #[serde(with = "opt_duration")]
    pub poll_interval: Option<Duration>,
    /// Where logs, per-job output and state go.
    pub state_dir: PathBuf,
    /// Runner group (pool) name; `None`: the first self-hosted one.
    pub runner_group: Option<String>,
    /// Prefix of the names of runners megascaler registers, so it can recognise its own.
    pub runner_name_prefix: String,
    /// How long a received job may wait for its identity before it is failed.
    #[serde(with = "humantime_serde_compat")]
    pub identify_timeout: Duration,
    /// Minimum grace a cancelled worker gets before signals (the job's own timeout may raise it).
    #[serde(with = "humantime_serde_compat")]
    pub cancel_grace: Duration,
}

impl Config {
    /// The REST API root: `https://api.github.com` for github.com, `{github_url}/api/v3` otherwise.
    pub fn api_url(&self) -> Url {
        api_url_for(&self.github_url)
    }
}

/// The REST API root for a GitHub base URL.
pub fn api_url_for(github_url: &Url) -> Url {
    let host = github_url.host_str().unwrap_or_default();
    if host == "github.com" || host.ends_with(".ghe.com") {
        let mut api = github_url.clone();
        let _ = api.set_host(Some(&format!("api.{host}")));
        api.set_path("");
        api
    } else {
        let mut base = github_url.as_str().trim_end_matches('/').to_string();
        base.push_str("/api/v3");
        Url::parse(&base).unwrap_or_else(|_| github_url.clone())
    }
}

fn redacted_values<S: serde::Serializer>(
    env: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(env.len()))?;
    for key in env.keys() {
        map.serialize_entry(key, "***")?;
    }
    map.end()
}

mod humantime_serde_compat {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

mod opt_duration {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// What the environment contributes; passed in so [`resolve`] stays pure.
#[derive(Debug, Clone, Default)]
pub struct EnvOverrides {
    /// `MEGASCALER_PAT`.
    pub pat: Option<String>,
    /// `MEGASCALER_WEBHOOK_SECRET`.
    pub webhook_secret: Option<String>,
    /// The per-user data directory used when `state_dir` is absent.
    pub default_state_dir: Option<PathBuf>,
}

impl EnvOverrides {
    /// Reads the real process environment.
    pub fn from_process() -> Self {
        EnvOverrides {
            pat: std::env::var(ENV_PAT).ok().filter(|v| !v.trim().is_empty()),
            webhook_secret: std::env::var(ENV_WEBHOOK_SECRET)
                .ok()
                .filter(|v| !v.trim().is_empty()),
            default_state_dir: directories::ProjectDirs::from("", "", "megascaler")
                .map(|d| d.data_local_dir().to_path_buf()),
        }
    }
}

/// Reads and validates a config file, with the process environment's overrides.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(
        &path.display().to_string(),
        &text,
        &EnvOverrides::from_process(),
    )
}

/// Parses and validates YAML text. `origin` names the text in messages.
pub fn parse(origin: &str, text: &str, env: &EnvOverrides) -> Result<Config, ConfigError> {
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?
    };
    resolve(raw, env)
}

fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(t).map_err(|e| {
        ConfigError::invalid(
            key,
            format!("`{t}` is not a duration ({e}); write it like `30s`, `5m` or `1h`"),
        )
    })
}

fn resolve(raw: RawConfig, env: &EnvOverrides) -> Result<Config, ConfigError> {
    let pat = match (&env.pat, &raw.pat, &raw.pat_file) {
        (Some(p), _, _) => Secret::new(p.clone()),
        (None, Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "pat",
                "both `pat` and `pat_file` are set; keep one of them",
            ));
        }
        (None, Some(p), None) => Secret::new(p.clone()),
        (None, None, Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                ConfigError::invalid(
                    "pat_file",
                    format!(
                        "cannot read {}: {e}; point it at a file holding the PAT",
                        file.display()
                    ),
                )
            })?;
            Secret::new(text)
        }
        (None, None, None) => Secret::default(),
    };
    if pat.is_empty() {
        return Err(ConfigError::invalid(
            "pat",
            format!(
                "no personal access token; set `pat:` or `pat_file:` in the config, or the {ENV_PAT} environment variable"
            ),
        ));
    }

    if raw.worker.is_empty() {
        return Err(ConfigError::invalid(
            "worker",
            "no worker entries; add at least one `- labels: [...]` with `args: [...]`",
        ));
    }
    let mut seen: Vec<(BTreeSet<String>, usize)> = Vec::new();
    let mut workers = Vec::with_capacity(raw.worker.len());
    for (i, w) in raw.worker.into_iter().enumerate() {
        if w.labels.is_empty() || w.labels.iter().any(|l| l.trim().is_empty()) {
            return Err(ConfigError::invalid(
                format!("worker[{i}].labels"),
                "is empty or has an empty label; list the `runs-on` labels this worker serves, e.g. `labels: [self-hosted, linux]`",
            ));
        }
        if w.args.is_empty() || w.args[0].trim().is_empty() {
            return Err(ConfigError::invalid(
                format!("worker[{i}].args"),
                "is empty; give the worker program and its arguments, e.g. `args: [/usr/local/bin/github-act-runner, worker]`",
            ));
        }
        if w.max == Some(0) {
            return Err(ConfigError::invalid(
                format!("worker[{i}].max"),
                "is 0, so this worker could never run; remove `max` or set it to 1 or more",
            ));
        }
        let key: BTreeSet<String> = w.labels.iter().map(|l| l.to_lowercase()).collect();
        if let Some((_, j)) = seen.iter().find(|(k, _)| *k == key) {
            return Err(ConfigError::invalid(
                format!("worker[{i}].labels"),
                format!(
                    "the same label set as worker[{j}] (labels compare ignoring case); merge the two entries or change one label set"
                ),
            ));
        }
        seen.push((key, i));
        workers.push(WorkerEntry {
            labels: w.labels,
            args: w.args,
            env: w.env,
            allocate: w.allocate,
            release: w.release,
            max: w.max,
            match_mode: w.match_mode,
        });
    }

    let address = match raw.address.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
            ConfigError::invalid(
                "address",
                format!("`{a}` is not an IP address with a port; write it like `0.0.0.0:9403` or `127.0.0.1:9403`"),
            )
        })?),
    };

    let secret = env
        .webhook_secret
        .clone()
        .or(raw.secret)
        .map(Secret::new)
        .filter(|s| !s.is_empty());

    let github_url_text = raw
        .github_url
        .unwrap_or_else(|| "https://github.com".to_string());
    let github_url = Url::parse(github_url_text.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| {
            ConfigError::invalid(
                "github_url",
                format!("`{github_url_text}` is not an http(s) URL; use `https://github.com` or your GHES address like `https://ghe.example.com`"),
            )
        })?;

    if raw.max_parallel == Some(0) {
        return Err(ConfigError::invalid(
            "max_parallel",
            "is 0, so no worker could ever start; remove it or set it to 1 or more",
        ));
    }

    let mut repositories = Vec::new();
    for (i, r) in raw.repositories.iter().enumerate() {
        let repo = RepoName::parse(r).ok_or_else(|| {
            ConfigError::invalid(
                format!("repositories[{i}]"),
                format!("`{r}` is not `owner/repo`"),
            )
        })?;
        repositories.push(repo);
    }

    let poll_interval = match raw.poll_interval.as_deref() {
        None => None,
        Some(t) => Some(parse_duration("poll_interval", t)?).filter(|d| !d.is_zero()),
    };
    if poll_interval.is_some() && repositories.is_empty() {
        return Err(ConfigError::invalid(
            "poll_interval",
            "is set but `repositories` is empty; list the `owner/repo` repositories to poll",
        ));
    }

    let identify_timeout = match raw.identify_timeout.as_deref() {
        None => Duration::from_secs(300),
        Some(t) => parse_duration("identify_timeout", t)?,
    };
    let cancel_grace = match raw.cancel_grace.as_deref() {
        None => Duration::from_secs(45),
        Some(t) => parse_duration("cancel_grace", t)?,
    };

    let state_dir = raw
        .state_dir
        .or_else(|| env.default_state_dir.clone())
        .unwrap_or_else(|| PathBuf::from(".megascaler"));

    let runner_name_prefix = raw
        .runner_name_prefix
        .unwrap_or_else(|| "megascaler-".to_string());
    if runner_name_prefix.is_empty()
        || !runner_name_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::invalid(
            "runner_name_prefix",
            "must be non-empty and use only letters, digits, `-` and `_`",
        ));
    }

    Ok(Config {
        workers,
        address,
        secret,
        insecure_unsigned_webhooks: raw.insecure_unsigned_webhooks,
        pat,
        github_url,
        max_parallel: raw.max_parallel,
        repositories,
        poll_interval,
        state_dir,
        runner_group: raw.runner_group.filter(|g| !g.trim().is_empty()),
        runner_name_prefix,
        identify_timeout,
        cancel_grace,
    })
}

/// The resolved configuration as YAML, secrets shown as `***`.
pub fn to_redacted_yaml(config: &Config) -> String {
    serde_yaml::to_string(config).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "pat: ghp_x\nworker:\n- labels: [a]\n  args: [w]\n";

    fn env() -> EnvOverrides {
        EnvOverrides::default()
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse("t", MINIMAL, &env()).unwrap();
        assert_eq!(c.github_url.as_str(), "https://github.com/");
        assert_eq!(c.api_url().as_str(), "https://api.github.com/");
        assert_eq!(c.identify_timeout, Duration::from_secs(300));
        assert!(c.address.is_none() && c.poll_interval.is_none());
        assert_eq!(c.workers[0].match_mode, MatchMode::Exact);
    }

    #[test]
    fn ghes_api_root() {
        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(api_url_for(&u).as_str(), "http://127.0.0.1:8080/api/v3");
    }

    #[test]
    fn environment_overrides_file() {
        let e = EnvOverrides {
            pat: Some("from-env".into()),
            webhook_secret: Some("s-env".into()),
            default_state_dir: None,
        };
        let c = parse("t", &format!("{MINIMAL}secret: s-file\n"), &e).unwrap();
        assert_eq!(c.pat.expose(), "from-env");
        assert_eq!(c.secret.unwrap().expose(), "s-env");
    }

    #[test]
    fn redacted_yaml_hides_secrets() {
        let text = format!("{MINIMAL}  env: {{CLOUD_KEY: k3y}}\nsecret: hush\n");
        let c = parse("t", &text, &env()).unwrap();
        let y = to_redacted_yaml(&c);
        assert!(
            !y.contains("ghp_x") && !y.contains("hush") && !y.contains("k3y"),
            "{y}"
        );
        assert!(y.contains("CLOUD_KEY"), "{y}");
        assert!(y.contains("***"));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse("t", &format!("{MINIMAL}max_paralel: 3\n"), &env()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("max_paralel") && msg.contains("line 5"),
            "{msg}"
        );
    }
}
