//! A plain HTTP client for driving the simulator in tests: reqwest + serde_json::Value only,
//! deliberately independent of megascaler's own protocol code, so the simulator is checked
//! against the spec rather than against the client it is meant to test.
#![allow(dead_code)]

use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey,
    PrivateDecryptingKey, PublicKeyComponents,
};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use megascaler::sim::{SimConfig, SimHandle, Simulator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

pub const UA: &str = "sim-tests/1.0";
pub const REPO: &str = "octo/hello";

/// A runner's RSA key, as a runner would hold it.
pub struct RunnerKey {
    pkcs8: Vec<u8>,
    pub modulus: String,
    pub exponent: String,
}

impl RunnerKey {
    pub fn generate() -> RunnerKey {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("keygen");
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
            .expect("pkcs8")
            .as_ref()
            .to_vec();
        let c = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let strip = |b: &[u8]| {
            let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
            b[first..].to_vec()
        };
        RunnerKey {
            pkcs8,
            modulus: STANDARD.encode(strip(&c.n)),
            exponent: STANDARD.encode(strip(&c.e)),
        }
    }

    fn pem(&self) -> Vec<u8> {
        let b64 = STANDARD.encode(&self.pkcs8);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
        .into_bytes()
    }

    /// A client assertion (§3.7) with the given algorithm and lifetime.
    pub fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        alg: Algorithm,
        lifetime_secs: i64,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": client_id, "sub": client_id, "aud": token_url,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now - 30, "iat": now - 30, "exp": now - 30 + lifetime_secs,
        });
        let key = EncodingKey::from_rsa_pem(&self.pem()).expect("pem");
        jsonwebtoken::encode(&Header::new(alg), &claims, &key).expect("sign")
    }

    pub fn xml(&self) -> String {
        format!(
            "<RSAKeyValue><Modulus>{}</Modulus><Exponent>{}</Exponent></RSAKeyValue>",
            self.modulus, self.exponent
        )
    }

    /// Decrypts the session key of a v1 session (§4.4).
    pub fn session_key(&self, session: &Value) -> Vec<u8> {
        let enc = &session["encryptionKey"];
        let value = STANDARD
            .decode(enc["value"].as_str().expect("key value"))
            .expect("b64");
        assert_eq!(enc["encrypted"], json!(true));
        let fips = session["useFipsEncryption"].as_bool().unwrap_or(false);
        let private = PrivateDecryptingKey::from_pkcs8(&self.pkcs8).expect("key");
        let oaep = OaepPrivateDecryptingKey::new(private).expect("oaep");
        let alg = if fips {
            &OAEP_SHA256_MGF1SHA256
        } else {
            &OAEP_SHA1_MGF1SHA1
        };
        let mut out = vec![0u8; oaep.min_output_size()];
        oaep.decrypt(alg, &value, &mut out, None)
            .expect("OAEP decrypt")
            .to_vec()
    }
}

/// AES-CBC-decrypts a message body and strips a BOM (§4.4).
pub fn decrypt_body(key: &[u8], message: &Value) -> String {
    let iv: [u8; 16] = STANDARD
        .decode(message["iv"].as_str().expect("iv"))
        .expect("b64")
        .try_into()
        .expect("16-byte iv");
    let mut body = STANDARD
        .decode(message["body"].as_str().expect("body"))
        .expect("b64");
    let k =
        PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, key).unwrap()).unwrap();
    let plain = k
        .decrypt(&mut body, DecryptionContext::Iv128(FixedLength::from(iv)))
        .expect("AES");
    let plain = plain.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(plain);
    String::from_utf8(plain.to_vec()).expect("utf8")
}

/// Answer of a call: status and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

pub struct Client {
    pub http: reqwest::Client,
}

pub enum Scheme<'a> {
    None,
    Bearer(&'a str),
    RemoteAuth(&'a str),
}

impl Client {
    pub fn new() -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        url: &str,
        auth: Scheme<'_>,
        body: Option<Value>,
    ) -> Answer {
        self.call_with(method, url, auth, body, Some(UA), &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        url: &str,
        auth: Scheme<'_>,
        body: Option<Value>,
        ua: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Answer {
        // VSS calls carry their API version in the media type (§2.2); REST ignores it.
        let mut req = self
            .http
            .request(method, url)
            .header("Accept", "application/json; api-version=6.0-preview");
        if let Some(ua) = ua {
            req = req.header("User-Agent", ua);
        }
        req = match auth {
            Scheme::None => req,
            Scheme::Bearer(t) => req.header("Authorization", format!("Bearer {t}")),
            Scheme::RemoteAuth(t) => req.header("Authorization", format!("RemoteAuth {t}")),
        };
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
}

/// URL of a location GUID from connectionData (§3.4.1): substitute supplied route values,
/// drop the others with their leading slash.
pub fn location(
    tenant: &str,
    connection_data: &Value,
    guid: &str,
    values: &[(&str, &str)],
) -> String {
    let defs = connection_data["locationServiceData"]["serviceDefinitions"]
        .as_array()
        .expect("defs");
    let def = defs
        .iter()
        .find(|d| d["identifier"] == guid)
        .expect("guid in connectionData");
    let mut path = def["relativePath"].as_str().unwrap().to_string();
    path = path.replace("{area}", def["serviceType"].as_str().unwrap());
    path = path.replace("{resource}", def["displayName"].as_str().unwrap());
    for (k, v) in values {
        path = path.replace(&format!("{{{k}}}"), v);
    }
    while let Some(start) = path.find('{') {
        let end = path[start..].find('}').map(|e| e + start + 1).unwrap();
        let slash = path[..start].trim_end_matches('/').len();
        path.replace_range(slash..end, "");
    }
    format!("{}{}", tenant.trim_end_matches('/'), path)
}

pub const AGENTS: &str = "e298ef32-5878-4cab-993c-043836571f42";
pub const POOLS: &str = "a8c47e17-4d56-4a56-92bb-de7ea7dc65be";
pub const SESSIONS: &str = "134e239e-2df3-4794-a6f6-24f1f19ec8dc";
pub const MESSAGES: &str = "c3a054f6-7a8a-49c0-944e-3a8e5d7adfd7";
pub const JOBREQUESTS: &str = "fc825784-c92a-4299-9221-998a02d1b54f";
pub const PLAN_EVENTS: &str = "557624af-b29e-4c20-8ab0-0399d2204f3f";

/// A runner registered through the v1 flow, with its OAuth token.
pub struct Runner {
    pub key: RunnerKey,
    pub name: String,
    pub agent: Value,
    pub tenant: String,
    pub connection_data: Value,
    pub jwt: String,
    pub token: String,
}

impl Runner {
    /// A pipelines URL for this runner; job requests carry the zero lock token (§5.4).
    pub fn url(&self, guid: &str, values: &[(&str, &str)]) -> String {
        let url = location(&self.tenant, &self.connection_data, guid, values);
        if guid == JOBREQUESTS {
            format!("{url}?lockToken=00000000-0000-0000-0000-000000000000")
        } else {
            url
        }
    }
    pub fn agent_id(&self) -> u64 {
        self.agent["id"].as_u64().unwrap()
    }
}

pub async fn start(cfg: SimConfig) -> (SimHandle, Client) {
    (
        Simulator::start(cfg).await.expect("sim start"),
        Client::new(),
    )
}

/// PAT → registration token → runner-registration: (tenant URL, registration JWT, answer).
pub async fn tenant(sim: &SimHandle, c: &Client) -> (String, String, Value) {
    let api = format!("{}api/v3", sim.base_url());
    let reg = c
        .call(
            Method::POST,
            &format!("{api}/repos/{REPO}/actions/runners/registration-token"),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(reg.status, StatusCode::CREATED, "{:?}", reg.body);
    let token = reg.body["token"].as_str().unwrap().to_string();
    let body = json!({ "url": format!("{}{REPO}", sim.base_url()), "runner_event": "register" });
    let auth = c
        .call(
            Method::POST,
            &format!("{api}/actions/runner-registration"),
            Scheme::RemoteAuth(&token),
            Some(body),
        )
        .await;
    assert_eq!(auth.status, StatusCode::OK, "{:?}", auth.body);
    (
        auth.body["url"].as_str().unwrap().to_string(),
        auth.body["token"].as_str().unwrap().to_string(),
        auth.body,
    )
}

/// Registers a v1 runner with these labels and fetches its OAuth token with `alg`.
pub async fn register_v1(sim: &SimHandle, c: &Client, labels: &[&str], alg: Algorithm) -> Runner {
    let (tenant, jwt, _) = tenant(sim, c).await;
    let cd = c
        .call(
            Method::GET,
            &format!(
                "{tenant}_apis/connectionData?connectOptions=1&lastChangeId=-1&lastChangeId64=-1"
            ),
            Scheme::None,
            None,
        )
        .await;
    assert_eq!(cd.status, StatusCode::OK);
    let cd = cd.body;
    let pools = c
        .call(
            Method::GET,
            &location(&tenant, &cd, POOLS, &[]),
            Scheme::Bearer(&jwt),
            None,
        )
        .await;
    assert_eq!(pools.status, StatusCode::OK, "{:?}", pools.body);
    let pool = pools.body["value"][0]["id"].as_u64().unwrap().to_string();
    let key = RunnerKey::generate();
    let name = format!("ms-{}", uuid::Uuid::new_v4());
    let body = json!({
        "name": name, "version": "3.0.0", "osDescription": "test", "maxParallelism": 1,
        "ephemeral": true, "disableUpdate": true, "provisioningState": "Provisioned",
        "labels": labels.iter().map(|l| json!({ "id": 0, "name": l, "type": "user" })).collect::<Vec<_>>(),
        "authorization": { "publicKey": { "exponent": key.exponent, "modulus": key.modulus } },
    });
    let agent = c
        .call(
            Method::POST,
            &location(&tenant, &cd, AGENTS, &[("poolId", &pool)]),
            Scheme::Bearer(&jwt),
            Some(body),
        )
        .await;
    assert_eq!(agent.status, StatusCode::OK, "{:?}", agent.body);
    let agent = agent.body;
    let token = oauth(c, &key, &agent, alg).await.expect("oauth");
    Runner {
        key,
        name,
        agent,
        tenant,
        connection_data: cd,
        jwt,
        token,
    }
}

/// The OAuth exchange (§3.7); Err(answer body) when refused.
pub async fn oauth(
    c: &Client,
    key: &RunnerKey,
    agent: &Value,
    alg: Algorithm,
) -> Result<String, Value> {
    let url = agent["authorization"]["authorizationUrl"].as_str().unwrap();
    let client_id = agent["authorization"]["clientId"].as_str().unwrap();
    let assertion = key.assertion(client_id, url, alg, 300);
    oauth_with(c, url, &assertion).await
}

pub async fn oauth_with(c: &Client, url: &str, assertion: &str) -> Result<String, Value> {
    let form = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ];
    let resp = c
        .http
        .post(url)
        .header("User-Agent", UA)
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap();
    let ok = resp.status() == StatusCode::OK;
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if ok {
        Ok(body["access_token"].as_str().unwrap().to_string())
    } else {
        Err(body)
    }
}

/// Polls until a message arrives (each poll is held by the simulator).
pub async fn poll(c: &Client, url: &str, token: &str) -> Value {
    for _ in 0..30 {
        let a = c.call(Method::GET, url, Scheme::Bearer(token), None).await;
        if a.status == StatusCode::OK {
            return a.body;
        }
        assert_eq!(a.status, StatusCode::ACCEPTED, "poll failed: {:?}", a.body);
    }
    panic!("no message");
}

/// The SystemVssConnection endpoint of a job message: (url, job token).
pub fn vss(message: &Value) -> (String, String) {
    let e = message["resources"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SystemVssConnection")
        .unwrap();
    (
        e["url"].as_str().unwrap().to_string(),
        e["authorization"]["parameters"]["AccessToken"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// A short-hold config for tests.
pub fn fast() -> SimConfig {
    SimConfig {
        long_poll_hold: Duration::from_millis(300),
        ..SimConfig::default()
    }
}

/// True when the simulator recorded a violation whose message contains `needle`.
pub fn violated(sim: &SimHandle, needle: &str) -> bool {
    sim.violations().iter().any(|v| v.message.contains(needle))
}

/// A v1 runner with an open session: (runner, session id, poll URL).
pub async fn listening(sim: &SimHandle, c: &Client, labels: &[&str]) -> (Runner, String, String) {
    let r = register_v1(sim, c, labels, Algorithm::RS256).await;
    let s = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(s.status, StatusCode::OK);
    let sid = s.body["sessionId"].as_str().unwrap().to_string();
    let poll_url = format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1")]));
    (r, sid, poll_url)
}

/// The JSON inside a message's `body` string.
pub fn body_of(msg: &Value) -> Value {
    serde_json::from_str(msg["body"].as_str().unwrap()).unwrap()
}
