//! Every credential the simulator issues, with its owner and expiry.
//!
//! Owns minting and looking up registration/remove tokens (per scope, 1 h), registration JWTs
//! (per scope, with `exp`), runner OAuth access tokens (per runner) and job tokens (per job).
//! An unknown or expired token is refused; tests can expire a whole kind early. Token values
//! never leave this store except in the HTTP answer that hands them out.

use super::crypto::{IssuedClaims, issue_jwt, new_signing_key};
use super::model::TokenKind;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use jsonwebtoken::EncodingKey;
use std::collections::HashMap;
use std::time::Duration;

/// What a token was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Registration (`remove == false`) or remove token for a scope (`owner/repo` or `org`).
    Registration { scope: String, remove: bool },
    /// Registration JWT ("admin token") for a scope.
    Jwt { scope: String },
    /// Runner OAuth access token.
    OAuth { agent_id: u64 },
    /// Job token (SystemVssConnection).
    Job { job_id: u64 },
}

impl Grant {
    fn kind(&self) -> TokenKind {
        match self {
            Grant::Registration { .. } => TokenKind::RegistrationTokens,
            Grant::Jwt { .. } => TokenKind::Jwts,
            Grant::OAuth { .. } => TokenKind::OAuthTokens,
            Grant::Job { .. } => TokenKind::JobTokens,
        }
    }
}

#[derive(Debug, Clone)]
struct Issued {
    grant: Grant,
    expires: DateTime<Utc>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    Unknown,
    Expired,
}

/// The token store.
pub(crate) struct Tokens {
    issued: HashMap<String, Issued>,
    key: EncodingKey,
    issuer: String,
}

pub(crate) fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + ChronoDuration::from_std(d).unwrap_or(ChronoDuration::days(3650))
}

fn random_alnum(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..len)
        .map(|_| CHARS[rand::random_range(0..CHARS.len())] as char)
        .collect()
}

impl Tokens {
    pub fn new(issuer: String) -> Self {
        Tokens {
            issued: HashMap::new(),
            key: new_signing_key(),
            issuer,
        }
    }

    /// A registration or remove token: 29 upper-case characters, like GitHub's.
    pub fn mint_registration(
        &mut self,
        scope: &str,
        remove: bool,
        now: DateTime<Utc>,
        lifetime: Duration,
    ) -> (String, DateTime<Utc>) {
        let token = random_alnum(29);
        let expires = after(now, lifetime);
        self.issued.insert(
            token.clone(),
            Issued {
                grant: Grant::Registration {
                    scope: scope.to_string(),
                    remove,
                },
                expires,
            },
        );
        (token, expires)
    }

    /// A JWT whose `exp` is the grant's expiry.
    pub fn mint_jwt(
        &mut self,
        grant: Grant,
        audience: &str,
        orch_id: Option<String>,
        now: DateTime<Utc>,
        lifetime: Duration,
    ) -> (String, DateTime<Utc>) {
        let expires = after(now, lifetime);
        let subject = match &grant {
            Grant::Registration { scope, .. } | Grant::Jwt { scope } => scope.clone(),
            Grant::OAuth { agent_id } => format!("agent:{agent_id}"),
            Grant::Job { job_id } => format!("job:{job_id}"),
        };
        let claims = IssuedClaims {
            iss: &self.issuer,
            sub: &subject,
            aud: audience,
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: expires.timestamp(),
            orch_id,
            scp: Some(match grant {
                Grant::Jwt { .. } => "Actions.RunnerRegistration",
                Grant::OAuth { .. } => "Actions.Runner",
                _ => "Actions.Results Actions.GenericRead",
            }),
        };
        let token = issue_jwt(&self.key, &claims);
        self.issued.insert(token.clone(), Issued { grant, expires });
        (token, expires)
    }

    /// What the token grants, if it is known and not expired.
    pub fn check(&self, token: &str, now: DateTime<Utc>) -> Result<&Grant, TokenRefusal> {
        let issued = self.issued.get(token).ok_or(TokenRefusal::Unknown)?;
        if issued.expires <= now {
            return Err(TokenRefusal::Expired);
        }
        Ok(&issued.grant)
    }

    /// The kind of a known token, expired or not.
    pub fn kind_of(&self, token: &str) -> Option<TokenKind> {
        self.issued.get(token).map(|i| i.grant.kind())
    }

    /// Expires every token of a kind now.
    pub fn expire_kind(&mut self, kind: TokenKind, now: DateTime<Utc>) {
        for issued in self.issued.values_mut() {
            if issued.grant.kind() == kind && issued.expires > now {
                issued.expires = now;
            }
        }
    }

    /// Every credential value issued so far except job tokens (which legitimately reach
    /// workers): registration and remove tokens, registration JWTs, runner OAuth tokens.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.issued
            .iter()
            .filter(|(_, i)| !matches!(i.grant, Grant::Job { .. }))
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Expires one token now.
    pub fn expire_token(&mut self, token: &str) {
        if let Some(issued) = self.issued.get_mut(token) {
            issued.expires = issued.expires.min(Utc::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_unknown_ones_are_refused() {
        let mut t = Tokens::new("sim".into());
        let now = Utc::now();
        let (reg, _) = t.mint_registration("o/r", false, now, Duration::from_secs(3600));
        assert_eq!(reg.len(), 29);
        assert!(matches!(t.check(&reg, now), Ok(Grant::Registration { .. })));
        let (jwt, exp) = t.mint_jwt(
            Grant::Jwt {
                scope: "o/r".into(),
            },
            "aud",
            None,
            now,
            Duration::from_secs(60),
        );
        assert_eq!(jwt.split('.').count(), 3);
        assert!(t.check(&jwt, exp).is_err());
        t.expire_kind(TokenKind::RegistrationTokens, now);
        assert_eq!(t.check(&reg, now), Err(TokenRefusal::Expired));
        assert!(t.check(&jwt, now).is_ok());
        assert_eq!(t.check("nope", now), Err(TokenRefusal::Unknown));
    }
}
