//! Keeping credentials and oversized bodies out of errors, logs and memory.
//!
//! Owns two defences for text that comes from a server: [`redact`] replaces the credential a
//! request presented, and anything shaped like a GitHub token (`ghp_…`, `ghs_…`…) or a JWT
//! (`eyJ….….…`), with `***`, so a service that echoes a token cannot leak it through an error
//! message; [`read_capped`] reads a response body up to a limit, so a broken or hostile endpoint
//! cannot exhaust memory. Pure, apart from reading the body.

use bytes::{Bytes, BytesMut};

/// Largest body accepted where a job message may arrive (a worker could not take more).
pub const MAX_MESSAGE_BODY: usize = 50 * 1024 * 1024;
/// Largest body accepted anywhere else (error bodies, tokens, lists).
pub const MAX_SMALL_BODY: usize = 1024 * 1024;

/// Replaces `secrets` and token-shaped words in `text` with `***`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(*s, "***");
    }
    let b = out.as_bytes();
    let tokenish = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let jwtish = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
    let mut result = String::with_capacity(out.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let at_word_start = i == 0 || !tokenish(b[i - 1]);
        let gh = at_word_start
            && b.len() > i + 4
            && &b[i..i + 2] == b"gh"
            && matches!(b[i + 2], b'p' | b'o' | b'u' | b's' | b'r')
            && b[i + 3] == b'_';
        let jwt = at_word_start && b[i..].starts_with(b"eyJ");
        if gh || jwt {
            let mut j = i;
            while j < b.len() && (if gh { tokenish(b[j]) } else { jwtish(b[j]) }) {
                j += 1;
            }
            let dots = b[i..j].iter().filter(|c| **c == b'.').count();
            if gh || dots >= 2 {
                result.push_str(&out[copied..i]);
                result.push_str("***");
                copied = j;
                i = j;
                continue;
            }
        }
        i += 1;
    }
    result.push_str(&out[copied..]);
    result
}

/// Reads a body, refusing more than `cap` bytes (by `Content-Length` up front, or while reading).
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Bytes, String> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(format!("response body larger than {cap} bytes"));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| super::http::describe_reqwest(&e))?
    {
        if buf.len() + chunk.len() > cap {
            return Err(format!("response body larger than {cap} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A serde_json error without the offending value (serde quotes it; it could be a token).
pub fn json_error(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_the_presented_credential_are_removed() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let text =
            format!("token ghs_abcDEF123 is invalid; jwt {jwt}; mine=s3cr3t-value; ok ghx_no");
        let r = redact(&text, &["s3cr3t-value"]);
        assert_eq!(r, "token *** is invalid; jwt ***; mine=***; ok ghx_no");
        assert_eq!(redact("eyJ alone", &[]), "eyJ alone");
        assert_eq!(redact("", &[""]), "");
        assert_eq!(redact("highs_x", &[]), "highs_x", "only at a word start");
    }

    #[test]
    fn json_errors_do_not_quote_values() {
        let e = serde_json::from_str::<u32>("\"ghp_secret\"").unwrap_err();
        assert!(!json_error(&e).contains("ghp_secret"));
    }
}
