//! The runner's cryptography: its RSA key, the OAuth client assertion, message decryption.
//!
//! Owns the RSA-2048 key of one runner (spec §3.5) and everything done with it: the v1 and
//! runner-admin public-key encodings, RS256/PS256 client assertions (§3.7), RSA-OAEP unwrapping
//! of the session key and AES-CBC decryption of message bodies (§4.4). All primitives come from
//! aws-lc-rs and jsonwebtoken; nothing is hand-rolled. Key material never prints itself.

use crate::secret::Secret;
use aws_lc_rs::cipher::{
    AES_128, AES_192, AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey,
};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey,
    PrivateDecryptingKey, PublicKeyComponents,
};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt;

/// A cryptographic operation failed. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("RSA key generation failed")]
    KeyGeneration,
    #[error("signing the client assertion failed: {0}")]
    Signing(String),
    #[error("decrypting the session key failed (RSA-OAEP)")]
    SessionKey,
    #[error("decrypting the message body failed (AES-CBC): {0}")]
    Body(&'static str),
    #[error("message body is not valid base64 or UTF-8: {0}")]
    Encoding(&'static str),
}

/// The signature algorithm of the client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAlg {
    Rs256,
    Ps256,
}

impl AssertionAlg {
    /// The other one (for the retry on `invalid_client`).
    pub fn other(self) -> Self {
        match self {
            AssertionAlg::Rs256 => AssertionAlg::Ps256,
            AssertionAlg::Ps256 => AssertionAlg::Rs256,
        }
    }

    /// Spec §3.7 recommendation: PS256 when the agent requires FIPS cryptography (absent means
    /// true, as actions/runner defaults) or when it has a broker URL; RS256 otherwise.
    pub fn choose(require_fips: Option<bool>, has_server_url_v2: bool) -> Self {
        if require_fips.unwrap_or(true) || has_server_url_v2 {
            AssertionAlg::Ps256
        } else {
            AssertionAlg::Rs256
        }
    }

    fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            AssertionAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
            AssertionAlg::Ps256 => jsonwebtoken::Algorithm::PS256,
        }
    }
}

/// One runner's RSA-2048 key.
pub struct RunnerKey {
    pkcs8: Vec<u8>,
    signing: jsonwebtoken::EncodingKey,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

impl fmt::Debug for RunnerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RunnerKey(***)")
    }
}

#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

impl RunnerKey {
    /// Generates a fresh key. CPU-heavy (tens of milliseconds): call it on a blocking thread,
    /// which is what [`super::keypool::KeyPool`] does.
    pub fn generate() -> Result<Self, CryptoError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| CryptoError::KeyGeneration)?;
        let pkcs8 = pair
            .as_der()
            .map_err(|_| CryptoError::KeyGeneration)?
            .as_ref()
            .to_vec();
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        // jsonwebtoken takes an RSA key as PEM (it extracts the PKCS#1 part itself).
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            B64.encode(&pkcs8)
        );
        let signing = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|_| CryptoError::KeyGeneration)?;
        Ok(RunnerKey {
            pkcs8,
            signing,
            modulus: strip_leading_zeros(&components.n).to_vec(),
            exponent: strip_leading_zeros(&components.e).to_vec(),
        })
    }

    /// Base64 of the modulus, unsigned big-endian without leading zeros (v1 `publicKey`).
    pub fn modulus_b64(&self) -> String {
        B64.encode(&self.modulus)
    }

    /// Base64 of the exponent (65537 → `AQAB`).
    pub fn exponent_b64(&self) -> String {
        B64.encode(&self.exponent)
    }

    /// The runner-admin form: `<RSAKeyValue><Modulus>…</Modulus><Exponent>…</Exponent></RSAKeyValue>`.
    pub fn xml_public_key(&self) -> String {
        format!(
            "<RSAKeyValue><Modulus>{}</Modulus><Exponent>{}</Exponent></RSAKeyValue>",
            self.modulus_b64(),
            self.exponent_b64()
        )
    }

    /// The OAuth client assertion: `iss` = `sub` = client id, `aud` = the token URL, 5 minutes,
    /// back-dated 30 s for clock skew (spec §3.7).
    pub fn client_assertion(
        &self,
        alg: AssertionAlg,
        client_id: &str,
        audience: &str,
    ) -> Result<Secret, CryptoError> {
        let now = chrono::Utc::now().timestamp() - 30;
        let claims = AssertionClaims {
            sub: client_id,
            iss: client_id,
            aud: audience,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + 300,
        };
        let mut header = jsonwebtoken::Header::new(alg.jwt());
        header.typ = Some("JWT".to_string());
        jsonwebtoken::encode(&header, &claims, &self.signing)
            .map(Secret::new)
            .map_err(|e| CryptoError::Signing(format!("{:?}", e.kind())))
    }

    /// RSA-OAEP decryption with SHA-1 (or SHA-256 when `sha256`) and an empty label.
    pub fn oaep_decrypt(&self, ciphertext: &[u8], sha256: bool) -> Result<Vec<u8>, CryptoError> {
        let key =
            PrivateDecryptingKey::from_pkcs8(&self.pkcs8).map_err(|_| CryptoError::SessionKey)?;
        let key = OaepPrivateDecryptingKey::new(key).map_err(|_| CryptoError::SessionKey)?;
        let alg = if sha256 {
            &OAEP_SHA256_MGF1SHA256
        } else {
            &OAEP_SHA1_MGF1SHA1
        };
        let mut out = vec![0u8; key.min_output_size()];
        let plain = key
            .decrypt(alg, ciphertext, &mut out, None)
            .map_err(|_| CryptoError::SessionKey)?;
        Ok(plain.to_vec())
    }

    /// The public modulus and exponent (big-endian, no leading zeros), for tests and
    /// simulators that encrypt to this runner or verify its assertions.
    pub fn public_key_components(&self) -> (Vec<u8>, Vec<u8>) {
        (self.modulus.clone(), self.exponent.clone())
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|x| **x == 0).count();
    b.get(n..).unwrap_or_default()
}

/// AES-CBC with PKCS#7 padding; the key length (16, 24, 32) picks AES-128/192/256.
pub fn aes_cbc_decrypt(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let alg = match key.len() {
        16 => &AES_128,
        24 => &AES_192,
        32 => &AES_256,
        _ => return Err(CryptoError::Body("session key has an unsupported length")),
    };
    let iv: [u8; 16] = iv
        .try_into()
        .map_err(|_| CryptoError::Body("iv is not 16 bytes"))?;
    let key = UnboundCipherKey::new(alg, key).map_err(|_| CryptoError::Body("bad key"))?;
    let key = PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| CryptoError::Body("bad key"))?;
    let mut buf = ciphertext.to_vec();
    let plain = key
        .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
        .map_err(|_| CryptoError::Body("bad ciphertext or padding"))?;
    Ok(plain.to_vec())
}

/// Removes a leading UTF-8 byte-order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes)
}

/// The session's message key: base64 of the key, RSA-OAEP wrapped when `encrypted`.
#[derive(Clone)]
pub struct SessionKey(Vec<u8>);

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(***)")
    }
}

impl SessionKey {
    /// Unwraps `encryptionKey` of a session response (spec §4.4 step 1).
    pub fn unwrap(
        runner: &RunnerKey,
        value_b64: &str,
        encrypted: bool,
        use_fips: bool,
    ) -> Result<Self, CryptoError> {
        let raw = B64
            .decode(value_b64.trim())
            .map_err(|_| CryptoError::Encoding("encryptionKey.value"))?;
        let key = if encrypted {
            runner.oaep_decrypt(&raw, use_fips)?
        } else {
            raw
        };
        Ok(SessionKey(key))
    }

    /// Decrypts a message body (spec §4.4 steps 2–3).
    pub fn decrypt_body(&self, iv_b64: &str, body_b64: &str) -> Result<String, CryptoError> {
        let iv = B64
            .decode(iv_b64.trim())
            .map_err(|_| CryptoError::Encoding("iv"))?;
        let body = B64
            .decode(body_b64.trim())
            .map_err(|_| CryptoError::Encoding("body"))?;
        let plain = aes_cbc_decrypt(&self.0, &iv, &body)?;
        String::from_utf8(strip_bom(&plain).to_vec()).map_err(|_| CryptoError::Encoding("utf-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::cipher::{EncryptionContext, PaddedBlockEncryptingKey};
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey};

    fn encrypt_to(key: &RunnerKey, plain: &[u8], sha256: bool) -> Vec<u8> {
        let (n, e) = key.public_key_components();
        let pk: PublicEncryptingKey = PublicKeyComponents { n, e }.try_into().unwrap();
        let pk = OaepPublicEncryptingKey::new(pk).unwrap();
        let alg = if sha256 {
            &OAEP_SHA256_MGF1SHA256
        } else {
            &OAEP_SHA1_MGF1SHA1
        };
        let mut out = vec![0u8; pk.ciphertext_size()];
        pk.encrypt(alg, plain, &mut out, None).unwrap().to_vec()
    }

    fn aes_encrypt(key: &[u8], iv: [u8; 16], plain: &[u8]) -> Vec<u8> {
        let k = PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, key).unwrap())
            .unwrap();
        let mut buf = plain.to_vec();
        k.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(iv.into()))
            .unwrap();
        buf
    }

    #[test]
    fn key_encodings() {
        let k = RunnerKey::generate().unwrap();
        assert_eq!(k.exponent_b64(), "AQAB");
        assert_eq!(B64.decode(k.modulus_b64()).unwrap().len(), 256);
        assert!(k.xml_public_key().starts_with("<RSAKeyValue><Modulus>"));
        assert_eq!(format!("{k:?}"), "RunnerKey(***)");
    }

    #[test]
    fn assertions_verify_with_the_public_key() {
        let k = RunnerKey::generate().unwrap();
        let (n, e) = k.public_key_components();
        let dk = jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e);
        for alg in [AssertionAlg::Rs256, AssertionAlg::Ps256] {
            let jwt = k
                .client_assertion(alg, "client-1", "https://t/token")
                .unwrap();
            let mut v = jsonwebtoken::Validation::new(alg.jwt());
            v.set_audience(&["https://t/token"]);
            v.set_issuer(&["client-1"]);
            let data = jsonwebtoken::decode::<serde_json::Value>(jwt.expose(), &dk, &v).unwrap();
            assert_eq!(data.claims["sub"], "client-1");
            assert_eq!(data.header.alg, alg.jwt());
            let exp = data.claims["exp"].as_i64().unwrap();
            let nbf = data.claims["nbf"].as_i64().unwrap();
            assert_eq!(exp - nbf, 300);
        }
    }

    #[test]
    fn algorithm_rule() {
        assert_eq!(AssertionAlg::choose(None, false), AssertionAlg::Ps256);
        assert_eq!(
            AssertionAlg::choose(Some(false), false),
            AssertionAlg::Rs256
        );
        assert_eq!(AssertionAlg::choose(Some(false), true), AssertionAlg::Ps256);
        assert_eq!(AssertionAlg::Rs256.other(), AssertionAlg::Ps256);
    }

    #[test]
    fn session_key_and_body_round_trip_with_bom() {
        let k = RunnerKey::generate().unwrap();
        let aes = [7u8; 32];
        let iv = [9u8; 16];
        let mut plain = vec![0xEF, 0xBB, 0xBF];
        plain.extend_from_slice(br#"{"jobId":"x"}"#);
        let body = B64.encode(aes_encrypt(&aes, iv, &plain));
        for sha256 in [false, true] {
            let wrapped = B64.encode(encrypt_to(&k, &aes, sha256));
            let sk = SessionKey::unwrap(&k, &wrapped, true, sha256).unwrap();
            assert_eq!(
                sk.decrypt_body(&B64.encode(iv), &body).unwrap(),
                r#"{"jobId":"x"}"#
            );
            // The wrong OAEP hash must not silently succeed.
            assert!(SessionKey::unwrap(&k, &wrapped, true, !sha256).is_err());
        }
        let plain_key = SessionKey::unwrap(&k, &B64.encode(aes), false, false).unwrap();
        assert!(plain_key.decrypt_body(&B64.encode(iv), "AAAA").is_err());
        assert!(plain_key.decrypt_body("!!", &body).is_err());
    }
}
