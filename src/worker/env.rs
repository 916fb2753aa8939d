//! The environment a worker process gets: cleared, then an allowlist, then the job's
//! `MEGASCALER_JOB_*` variables, then the worker entry's own `env`.
//!
//! Owns the rule that megascaler's credentials never reach a worker: nothing outside the
//! allowlist is inherited, and any variable whose value contains a credential is dropped, even
//! one the config put there.

use crate::secret::Secret;

/// Variables inherited from megascaler's own environment. Credential-like ones (SSH_AUTH_SOCK,
/// KUBECONFIG, DOCKER_HOST) are not among them: an entry that needs one sets it in its `env:`.
pub const ALLOWED: &[&str] = &[
    "PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "SHELL",
    "TMPDIR", "TERM",
];

/// The worker's environment, in the order it is applied.
pub fn worker_env<'a>(
    inherited: impl IntoIterator<Item = (String, String)>,
    job_env: &'a [(String, String)],
    entry_env: impl IntoIterator<Item = (&'a String, &'a String)>,
    credentials: &[&Secret],
) -> Vec<(String, String)> {
    let leaks = |v: &str| {
        credentials
            .iter()
            .any(|c| !c.is_empty() && v.contains(c.expose()))
    };
    let mut out: Vec<(String, String)> = inherited
        .into_iter()
        .filter(|(k, _)| ALLOWED.contains(&k.as_str()))
        .collect();
    out.extend(job_env.iter().cloned());
    out.extend(entry_env.into_iter().map(|(k, v)| (k.clone(), v.clone())));
    out.retain(|(k, v)| {
        let bad = leaks(v);
        if bad {
            tracing::warn!(
                "not passing variable {k} to the worker: its value holds a megascaler credential"
            );
        }
        !bad
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn only_the_allowlist_and_job_variables_pass() {
        let inherited = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("MEGASCALER_PAT".to_string(), "ghp_x".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "k".to_string()),
        ];
        let job = vec![("MEGASCALER_JOB_ID".to_string(), "7".to_string())];
        let mut entry = BTreeMap::new();
        entry.insert("TOOLS".to_string(), "/opt".to_string());
        entry.insert("LEAK".to_string(), "token=ghp_x".to_string());
        let pat = Secret::new("ghp_x");
        let env = worker_env(inherited, &job, &entry, &[&pat]);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["PATH", "MEGASCALER_JOB_ID", "TOOLS"]);
    }
}
