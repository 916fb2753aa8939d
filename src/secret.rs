//! `Secret`: a string that never prints itself.
//!
//! Owns the redaction rule for every credential megascaler holds (PAT, webhook secret,
//! registration tokens, JWTs, OAuth tokens). `Debug`, `Display` and `Serialize` all print `***`,
//! so a secret can sit inside any struct that is logged, shown or dumped by `check-config`
//! without leaking. The only way to the value is [`Secret::expose`], which is easy to grep for.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A credential. Compare, clone and pass it around freely; read it only with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value. Leading and trailing white space is removed, because secrets read from
    /// files and environment variables commonly carry a trailing newline.
    pub fn new(value: impl Into<String>) -> Self {
        let value: String = value.into();
        Secret(value.trim().to_string())
    }

    /// The value itself. Call this only where the value leaves for its one legitimate use
    /// (an `Authorization` header, an HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rendering_is_redacted() {
        let s = Secret::new("ghp_supersecret\n");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "ghp_supersecret");
    }
}
