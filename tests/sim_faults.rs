//! Faults and oracles beyond the basic flows: raw hostile bodies, credential echoes, tokens
//! at the wrong service, assertion replay, the session's FIPS answer, key encodings, and
//! forged or late webhooks.

mod sim_client;

use axum::body::Bytes;
use axum::http::HeaderMap;
use jsonwebtoken::Algorithm;
use megascaler::sim::{
    Fault, JobSpec, SimConfig, WebhookFaults, WebhookTarget, endpoint, sign_webhook,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim_client::*;
use std::time::Duration;
use tokio::sync::mpsc;

#[tokio::test]
async fn raw_and_echo_faults() {
    let (sim, c) = start(fast()).await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    let hostile = r#"{"lockedUntil":"+262143-12-31T23:59:59Z","requestId":1}"#;
    sim.inject(
        endpoint::JOB_REQUEST_UPDATE,
        Fault::Raw {
            status: 200,
            body: hostile.into(),
        },
        1,
    );
    let url = r.url(JOBREQUESTS, &[("poolId", "1"), ("requestId", "1")]);
    let a = c
        .call(
            Method::PATCH,
            &url,
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["lockedUntil"], "+262143-12-31T23:59:59Z");
    sim.inject(
        endpoint::POOLS_LIST,
        Fault::EchoCredential { status: 401 },
        1,
    );
    let e = c
        .call(
            Method::GET,
            &r.url(POOLS, &[]),
            Scheme::Bearer(&r.jwt),
            None,
        )
        .await;
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    assert!(
        e.body["message"].as_str().unwrap().contains(&r.jwt),
        "the oracle quotes the credential"
    );
    sim.shutdown();
}

#[tokio::test]
async fn credentials_at_the_wrong_service_are_violations() {
    let (sim, c) = start(fast()).await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    let pat = c
        .call(
            Method::GET,
            &r.url(POOLS, &[]),
            Scheme::Bearer(sim.pat()),
            None,
        )
        .await;
    assert_eq!(pat.status, StatusCode::UNAUTHORIZED);
    assert!(violated(&sim, "the PAT sent where"));
    let api = format!("{}api/v3/repos/{REPO}/actions/runs", sim.base_url());
    let runner = c
        .call(Method::GET, &api, Scheme::Bearer(&r.token), None)
        .await;
    assert_eq!(runner.status, StatusCode::UNAUTHORIZED);
    assert!(violated(&sim, "a runner OAuth token sent to the REST API"));
    // A VSS call without an api-version anywhere is recorded (§2.2).
    let bare = c
        .http
        .get(r.url(POOLS, &[]))
        .header("User-Agent", UA)
        .bearer_auth(&r.jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::OK);
    assert!(violated(&sim, "no api-version"));
    sim.shutdown();
}

#[tokio::test]
async fn assertions_are_single_use_and_keys_are_checked() {
    let (sim, c) = start(fast()).await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    let url = r.agent["authorization"]["authorizationUrl"]
        .as_str()
        .unwrap();
    let client = r.agent["authorization"]["clientId"].as_str().unwrap();
    let assertion = r.key.assertion(client, url, Algorithm::RS256, 300);
    assert!(oauth_with(&c, url, &assertion).await.is_ok());
    assert_eq!(
        oauth_with(&c, url, &assertion).await.unwrap_err()["error"],
        "invalid_client"
    );
    assert!(violated(&sim, "replayed"));
    // A modulus with a leading zero byte breaks §3.5.
    let (tenant, jwt, _) = tenant(&sim, &c).await;
    let mut modulus = vec![0u8];
    modulus.extend(base64_decode(&r.key.modulus));
    let body = json!({ "name": "padded", "authorization": { "publicKey": { "exponent": "AQAB", "modulus": base64_encode(&modulus) } } });
    let added = c
        .call(
            Method::POST,
            &format!("{tenant}_apis/distributedtask/pools/1/agents"),
            Scheme::Bearer(&jwt),
            Some(body),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK);
    assert!(violated(&sim, "leading zero bytes"));
    sim.shutdown();
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn the_session_answer_decides_the_oaep_hash() {
    let (sim, c) = start(SimConfig {
        encrypt_messages: true,
        session_fips: Some(true),
        ..fast()
    })
    .await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    let s = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({ "useFipsEncryption": false })),
        )
        .await;
    assert_eq!(s.body["useFipsEncryption"], json!(true));
    // session_key() follows the answer: SHA-256 OAEP.
    assert_eq!(r.key.session_key(&s.body).len(), 32);
    sim.shutdown();
}

async fn receiver() -> (url::Url, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: HeaderMap, b: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((h, b));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

#[tokio::test]
async fn forged_and_held_back_webhooks() {
    let (url, mut rx) = receiver().await;
    let secret = "s3cret";
    let (sim, _c) = start(SimConfig {
        webhook: Some(WebhookTarget {
            url,
            secret: secret.into(),
        }),
        ..fast()
    })
    .await;
    sim.set_webhook_faults(WebhookFaults {
        bad_signature: 1.0,
        ..Default::default()
    });
    sim.queue_job(JobSpec::new(REPO, &["x"]));
    let (h, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        h["x-hub-signature-256"].to_str().unwrap(),
        sign_webhook(secret.as_bytes(), &body)
    );
    // A held-back delivery is flushed even when nothing follows it.
    sim.set_webhook_faults(WebhookFaults {
        reorder: 1.0,
        ..Default::default()
    });
    let id = sim.queue_job(JobSpec::new(REPO, &["x"]));
    let (h, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        h["x-hub-signature-256"].to_str().unwrap(),
        sign_webhook(secret.as_bytes(), &body)
    );
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["workflow_job"]["id"], json!(id));
    let created = payload["workflow_job"]["created_at"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && !created.contains('.'),
        "GitHub time format: {created}"
    );
    sim.shutdown();
}

#[tokio::test]
async fn idle_sessions_expire_and_their_offers_are_rerouted() {
    let cfg = SimConfig {
        session_idle_timeout: Some(Duration::from_millis(400)),
        long_poll_hold: Duration::from_millis(100),
        ..SimConfig::default()
    };
    let (sim, c) = start(cfg).await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    let s = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    let sid = s.body["sessionId"].as_str().unwrap().to_string();
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    assert_eq!(
        sim.job(id).unwrap().offered_to.as_deref(),
        Some(r.name.as_str())
    );
    // The runner went away without deleting its session.
    let rerouted = sim
        .wait_until(
            |s| s.job(id).is_some_and(|j| j.offered_to.is_none()),
            Duration::from_secs(30),
        )
        .await;
    assert!(rerouted);
    assert!(!sim.runners()[0].online);
    let poll = c
        .call(
            Method::GET,
            &format!("{}?sessionId={sid}", r.url(MESSAGES, &[("poolId", "1")])),
            Scheme::Bearer(&r.token),
            None,
        )
        .await;
    assert_eq!(poll.body["typeKey"], "TaskAgentSessionExpiredException");
    // A new session works (no 409 forever after a crash).
    let again = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    sim.shutdown();
}

#[tokio::test]
async fn a_runner_told_to_use_the_broker_gets_no_job_over_v1() {
    let (sim, c) = start(SimConfig {
        broker: megascaler::sim::BrokerMode::AgentProperties,
        ..fast()
    })
    .await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::PS256).await;
    let s = c
        .call(
            Method::POST,
            &r.url(SESSIONS, &[("poolId", "1")]),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(violated(&sim, "told to use the broker"));
    let id = sim.queue_job(JobSpec::new(REPO, &["linux"]));
    assert_eq!(sim.job(id).unwrap().offered_to, None);
    sim.shutdown();
}

#[tokio::test]
async fn replacing_an_agent_keeps_its_id() {
    let (sim, c) = start(fast()).await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    let id = r.agent_id().to_string();
    let key = RunnerKey::generate();
    let body = json!({ "name": r.name, "labels": [ { "name": "gpu", "type": "user" } ],
        "authorization": { "publicKey": { "exponent": key.exponent, "modulus": key.modulus } } });
    let put = c
        .call(
            Method::PUT,
            &r.url(AGENTS, &[("poolId", "1"), ("agentId", &id)]),
            Scheme::Bearer(&r.jwt),
            Some(body),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(put.body["id"], r.agent["id"]);
    assert_eq!(sim.runners()[0].labels, vec!["gpu".to_string()]);
    // The new key signs the assertions now.
    assert!(oauth(&c, &key, &put.body, Algorithm::RS256).await.is_ok());
    assert!(
        oauth(&c, &r.key, &put.body, Algorithm::RS256)
            .await
            .is_err()
    );
    sim.shutdown();
}

#[tokio::test]
async fn unsure_variants_of_the_message_loop() {
    let cfg = SimConfig {
        broker: megascaler::sim::BrokerMode::AgentProperties,
        empty_poll: megascaler::sim::EmptyPoll::NoContent,
        should_acknowledge: false,
        broker_session_agent: false,
        require_fips: Some(true),
        ..fast()
    };
    let (sim, c) = start(cfg).await;
    let r = register_v1(&sim, &c, &["linux"], Algorithm::RS256).await;
    assert!(violated(&sim, "RequireFipsCryptography=true"));
    let broker = r.agent["properties"]["ServerUrlV2"]["$value"]
        .as_str()
        .unwrap()
        .to_string();
    let s = c
        .call(
            Method::POST,
            &format!("{broker}session"),
            Scheme::Bearer(&r.token),
            Some(json!({})),
        )
        .await;
    assert!(s.body.get("agent").is_none());
    let sid = s.body["sessionId"].as_str().unwrap().to_string();
    let url = format!("{broker}message?sessionId={sid}");
    assert_eq!(
        c.call(Method::GET, &url, Scheme::Bearer(&r.token), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    sim.queue_job(JobSpec::new(REPO, &["linux"]));
    let m = c
        .call(Method::GET, &url, Scheme::Bearer(&r.token), None)
        .await;
    let reference: Value = serde_json::from_str(m.body["body"].as_str().unwrap()).unwrap();
    assert_eq!(reference["should_acknowledge"], json!(false));
    sim.shutdown();
}

#[tokio::test]
async fn ping_unsigned_and_form_encoded_webhooks() {
    let (url, mut rx) = receiver().await;
    let secret = "s3cret";
    let (sim, _c) = start(fast()).await;
    sim.set_webhook_target(Some(WebhookTarget {
        url,
        secret: secret.into(),
    }));
    let (h, _) = next(&mut rx).await;
    assert_eq!(h["x-github-event"], "ping");
    sim.set_webhook_faults(WebhookFaults {
        unsigned: 1.0,
        ..Default::default()
    });
    sim.queue_job(JobSpec::new(REPO, &["x"]));
    let (h, _) = next(&mut rx).await;
    assert!(h.get("x-hub-signature-256").is_none());
    assert!(h["x-hub-signature"].to_str().unwrap().starts_with("sha1="));
    sim.set_webhook_faults(WebhookFaults {
        form_encoded: 1.0,
        ..Default::default()
    });
    let id = sim.queue_job(JobSpec::new(REPO, &["x"]));
    let (h, body) = next(&mut rx).await;
    assert_eq!(h["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(
        h["x-hub-signature-256"].to_str().unwrap(),
        sign_webhook(secret.as_bytes(), &body)
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap();
    let payload: Value = serde_json::from_str(&form[0].1).unwrap();
    assert_eq!(payload["workflow_job"]["id"], json!(id));
    sim.set_webhook_faults(WebhookFaults {
        malformed: 1.0,
        ..Default::default()
    });
    sim.queue_job(JobSpec::new(REPO, &["x"]));
    let (h, body) = next(&mut rx).await;
    assert_eq!(
        h["x-hub-signature-256"].to_str().unwrap(),
        sign_webhook(secret.as_bytes(), &body)
    );
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    sim.shutdown();
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) -> (HeaderMap, Bytes) {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap()
}
