//! The simulator's cryptography, all through vetted crates.
//!
//! Owns webhook signatures (HMAC-SHA256), verification of runner client assertions (RS256 and
//! PS256 against the registered public key, via `jsonwebtoken`), the v1 session key
//! (RSA-OAEP via `aws-lc-rs`) and AES-CBC message bodies, and the JWTs the simulator issues.
//! It must not hand-roll any primitive or encoding.

use super::config::AssertionAlgorithms;
use aws_lc_rs::cipher::{AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey,
    PublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// `sha256=<hex HMAC-SHA256(secret, body)>`: the `X-Hub-Signature-256` header value.
pub fn sign_webhook(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A runner's public key as registered (base64 of big-endian bytes, §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunnerKey {
    pub modulus: Vec<u8>,
    pub exponent: Vec<u8>,
}

impl RunnerKey {
    /// From the v1 `{ exponent, modulus }` strings (standard base64).
    pub fn from_base64(modulus: &str, exponent: &str) -> Option<RunnerKey> {
        let modulus = STANDARD.decode(modulus.trim()).ok()?;
        let exponent = STANDARD.decode(exponent.trim()).ok()?;
        (modulus.len() >= 128 && !exponent.is_empty()).then_some(RunnerKey { modulus, exponent })
    }

    /// From the runner-admin XML `<RSAKeyValue><Modulus>…</Modulus><Exponent>…</Exponent>…`.
    pub fn from_xml(xml: &str) -> Option<RunnerKey> {
        fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
            let open = format!("<{name}>");
            let close = format!("</{name}>");
            let start = xml.find(&open)? + open.len();
            let end = xml[start..].find(&close)? + start;
            Some(&xml[start..end])
        }
        RunnerKey::from_base64(element(xml, "Modulus")?, element(xml, "Exponent")?)
    }

    /// How the key's encoding departs from §3.5 (RSA-2048, big-endian bytes with leading
    /// zero bytes stripped), if it does.
    pub fn encoding_problem(&self) -> Option<&'static str> {
        if self.modulus.first() == Some(&0) {
            Some("public key modulus has leading zero bytes")
        } else if self.exponent.first() == Some(&0) {
            Some("public key exponent has leading zero bytes")
        } else if self.modulus.len() != 256 {
            Some("public key is not RSA-2048")
        } else {
            None
        }
    }

    pub fn modulus_base64(&self) -> String {
        STANDARD.encode(&self.modulus)
    }

    pub fn exponent_base64(&self) -> String {
        STANDARD.encode(&self.exponent)
    }
}

/// Why a client assertion was refused; becomes an OAuth `invalid_client` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssertionRejected {
    pub reason: String,
    /// The client got the protocol wrong (claims, lifetime, signature), as opposed to a server
    /// policy (algorithm) or a clock matter (expired, not yet valid).
    pub violation: bool,
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// An accepted assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedAssertion {
    pub alg: Algorithm,
    /// `jti`, for replay detection until `exp`.
    pub jti: String,
    pub exp: i64,
}

/// Verifies a runner's client assertion (§3.7): signature with the registered key, `iss` and
/// `sub` equal to the client id, `aud` equal to the token URL, `exp` in the future and at most
/// five minutes ahead (a little slack for clock differences).
pub(crate) fn verify_client_assertion(
    assertion: &str,
    key: &RunnerKey,
    client_id: &str,
    token_url: &str,
    allowed: AssertionAlgorithms,
    now: DateTime<Utc>,
) -> Result<VerifiedAssertion, AssertionRejected> {
    let reject = |m: &str| AssertionRejected {
        reason: m.to_string(),
        violation: true,
    };
    let refuse = |m: &str| AssertionRejected {
        reason: m.to_string(),
        violation: false,
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| reject("client assertion is not a JWT"))?;
    let alg_ok = matches!(
        (header.alg, allowed),
        (
            Algorithm::RS256,
            AssertionAlgorithms::Both | AssertionAlgorithms::Rs256Only
        ) | (
            Algorithm::PS256,
            AssertionAlgorithms::Both | AssertionAlgorithms::Ps256Only
        )
    );
    if !alg_ok {
        return Err(refuse(
            "client assertion signature algorithm is not accepted",
        ));
    }
    let decoding = DecodingKey::from_rsa_components(
        &URL_SAFE_NO_PAD.encode(&key.modulus),
        &URL_SAFE_NO_PAD.encode(&key.exponent),
    )
    .map_err(|_| reject("registered public key is unusable"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_url]);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_string());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 0;
    validation.validate_nbf = false;
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<AssertionClaims>(assertion, &decoding, &validation)
        .map_err(|e| reject(&format!("client assertion rejected: {:?}", e.kind())))?;
    let now_s = now.timestamp();
    let server_time = format!("Current server time is {}.", now.to_rfc3339());
    if data.claims.exp <= now_s {
        return Err(refuse(&format!("client assertion expired. {server_time}")));
    }
    let start = data.claims.nbf.or(data.claims.iat).unwrap_or(now_s);
    if data.claims.exp > now_s + 300 + 5 || data.claims.exp - start > 300 + 5 {
        return Err(reject("client assertion lifetime exceeds 5 minutes"));
    }
    let Some(jti) = data.claims.jti.filter(|j| !j.is_empty()) else {
        return Err(reject("client assertion without jti"));
    };
    if data.claims.nbf.is_some_and(|nbf| nbf > now_s + 5) {
        return Err(refuse(&format!(
            "client assertion not yet valid. {server_time}"
        )));
    }
    Ok(VerifiedAssertion {
        alg: header.alg,
        jti,
        exp: data.claims.exp,
    })
}

/// A fresh AES-256 session key.
pub(crate) fn new_session_key() -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).ok()?;
    Some(key)
}

/// RSA-OAEP encryption of the session key with the runner's public key; SHA-256 when the
/// session asked for FIPS encryption, else SHA-1 (§4.4).
pub(crate) fn encrypt_session_key(key: &[u8], runner: &RunnerKey, fips: bool) -> Option<Vec<u8>> {
    let components = PublicKeyComponents {
        n: runner.modulus.as_slice(),
        e: runner.exponent.as_slice(),
    };
    let public: PublicEncryptingKey = components.try_into().ok()?;
    let oaep = OaepPublicEncryptingKey::new(public).ok()?;
    let algorithm = if fips {
        &OAEP_SHA256_MGF1SHA256
    } else {
        &OAEP_SHA1_MGF1SHA1
    };
    let mut out = vec![0u8; oaep.ciphertext_size()];
    let written = oaep.encrypt(algorithm, key, &mut out, None).ok()?;
    Some(written.to_vec())
}

/// AES-256-CBC with PKCS#7 padding under a fresh IV: `(iv, ciphertext)`.
pub(crate) fn encrypt_body(key: &[u8; 32], plaintext: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(&mut iv).ok()?;
    let unbound = UnboundCipherKey::new(&AES_256, key).ok()?;
    let encrypting = PaddedBlockEncryptingKey::cbc_pkcs7(unbound).ok()?;
    let mut buffer = plaintext.to_vec();
    encrypting
        .less_safe_encrypt(&mut buffer, EncryptionContext::Iv128(FixedLength::from(iv)))
        .ok()?;
    Some((iv.to_vec(), buffer))
}

/// Claims of the JWTs the simulator issues (registration JWT, OAuth and job tokens).
#[derive(Debug, Serialize)]
pub(crate) struct IssuedClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orch_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scp: Option<&'a str>,
}

/// An HS256 JWT signed with the simulator's own key.
pub(crate) fn issue_jwt(key: &EncodingKey, claims: &IssuedClaims<'_>) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key)
        .unwrap_or_else(|_| format!("sim-token-{}", claims.jti))
}

/// A random key for signing the simulator's JWTs.
pub(crate) fn new_signing_key() -> EncodingKey {
    let mut secret = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut secret).is_err() {
        secret = rand::random();
    }
    // HMAC keys of any length are valid; the fallback is never expected to be taken.
    EncodingKey::from_secret(&secret).unwrap_or_else(|_| EncodingKey::from_rsa_der(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_documented_signature_vector() {
        assert_eq!(
            sign_webhook(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn xml_public_key_parses() {
        let m = STANDARD.encode([7u8; 256]);
        let xml =
            format!("<RSAKeyValue><Modulus>{m}</Modulus><Exponent>AQAB</Exponent></RSAKeyValue>");
        let k = RunnerKey::from_xml(&xml).unwrap();
        assert_eq!(k.exponent, vec![1, 0, 1]);
        assert_eq!(k.modulus.len(), 256);
        assert!(RunnerKey::from_xml("<RSAKeyValue></RSAKeyValue>").is_none());
    }
}
