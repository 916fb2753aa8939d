//! Registration scopes: which URL registers a runner where (spec §3.1).
//!
//! Owns parsing a scope URL (`https://github.com/OWNER/REPO`, `…/ORG`, `…/enterprises/SLUG`, or the
//! same under a GHES root) into the scoped REST prefix. Pure; no IO.

use url::Url;

/// What a runner is registered for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    Repository { owner: String, repo: String },
    Organization { org: String },
    Enterprise { slug: String },
}

/// A registration scope: the URL as given (sent to `runner-registration` verbatim) and its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The scope URL without a trailing slash, e.g. `https://github.com/owner/repo`.
    pub url: String,
    pub kind: ScopeKind,
    /// The GitHub base (scheme, host, port, and any path prefix before the scope segments).
    pub github_url: Url,
}

/// A scope URL megascaler cannot register at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported registration url `{0}`: use https://HOST/OWNER/REPO, https://HOST/ORG or https://HOST/enterprises/SLUG"
)]
pub struct ScopeError(pub String);

impl Scope {
    /// Parses a scope URL (spec §3.1 table).
    pub fn parse(url: &Url) -> Result<Scope, ScopeError> {
        let err = || ScopeError(url.to_string());
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(err());
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let valid = |s: &str| !s.contains(['?', '#', ' ']);
        if !segments.iter().all(|s| valid(s)) {
            return Err(err());
        }
        let kind = match segments.as_slice() {
            [org] => ScopeKind::Organization {
                org: (*org).to_string(),
            },
            [first, slug] if first.eq_ignore_ascii_case("enterprises") => ScopeKind::Enterprise {
                slug: (*slug).to_string(),
            },
            [owner, repo] => ScopeKind::Repository {
                owner: (*owner).to_string(),
                repo: (*repo).to_string(),
            },
            _ => return Err(err()),
        };
        let mut github_url = url.clone();
        github_url.set_path("");
        github_url.set_query(None);
        github_url.set_fragment(None);
        let text = url.as_str().trim_end_matches('/').to_string();
        Ok(Scope {
            url: text,
            kind,
            github_url,
        })
    }

    /// The scope for a repository under a GitHub base URL.
    pub fn repository(github_url: &Url, owner: &str, repo: &str) -> Scope {
        let base = github_url.as_str().trim_end_matches('/');
        let mut gh = github_url.clone();
        gh.set_path("");
        Scope {
            url: format!("{base}/{owner}/{repo}"),
            kind: ScopeKind::Repository {
                owner: owner.to_string(),
                repo: repo.to_string(),
            },
            github_url: gh,
        }
    }

    /// The scoped REST prefix (`/repos/O/R`, `/orgs/O`, `/enterprises/E`), without a trailing slash.
    pub fn rest_prefix(&self) -> String {
        match &self.kind {
            ScopeKind::Repository { owner, repo } => format!("/repos/{owner}/{repo}"),
            ScopeKind::Organization { org } => format!("/orgs/{org}"),
            ScopeKind::Enterprise { slug } => format!("/enterprises/{slug}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Scope, ScopeError> {
        Scope::parse(&Url::parse(s).unwrap())
    }

    #[test]
    fn the_three_scopes() {
        assert_eq!(
            p("https://github.com/o/r").unwrap().rest_prefix(),
            "/repos/o/r"
        );
        assert_eq!(
            p("https://github.com/o/r/").unwrap().url,
            "https://github.com/o/r"
        );
        assert_eq!(
            p("https://github.com/org").unwrap().rest_prefix(),
            "/orgs/org"
        );
        assert_eq!(
            p("https://github.com/Enterprises/acme")
                .unwrap()
                .rest_prefix(),
            "/enterprises/acme"
        );
        assert_eq!(
            p("http://127.0.0.1:9000/o/r").unwrap().github_url.as_str(),
            "http://127.0.0.1:9000/"
        );
    }

    #[test]
    fn unsupported_urls() {
        assert!(p("https://github.com/").is_err());
        assert!(p("https://github.com/a/b/c").is_err());
        assert!(p("ftp://github.com/a/b").is_err());
    }

    #[test]
    fn repository_constructor_matches_parse() {
        let gh = Url::parse("https://ghe.example.com").unwrap();
        let s = Scope::repository(&gh, "o", "r");
        assert_eq!(s, p("https://ghe.example.com/o/r").unwrap());
    }
}
