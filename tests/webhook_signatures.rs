//! The webhook listener against GitHub's published payloads with their signatures, tampered
//! copies of them, and the signature vectors.

use megascaler::engine::dispatch::Input;
use megascaler::engine::intake::IntakeCounters;
use megascaler::engine::intake::dedupe::DeliveryLog;
use megascaler::engine::intake::webhook::{self, ListenerState, sign, verify_signature};
use megascaler::secret::Secret;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhooks/");

struct Listener {
    url: String,
    inputs: mpsc::Receiver<Input>,
    counters: Arc<IntakeCounters>,
    stop: CancellationToken,
}

async fn start(secret: Option<&str>) -> Listener {
    start_with_capacity(secret, 100).await
}

async fn start_with_capacity(secret: Option<&str>, capacity: usize) -> Listener {
    let (tx, rx) = mpsc::channel(capacity);
    let counters = Arc::new(IntakeCounters::default());
    let state = Arc::new(ListenerState {
        secret: secret.map(Secret::new),
        inputs: tx,
        counters: counters.clone(),
        deliveries: Mutex::new(DeliveryLog::new(1000)),
    });
    let stop = CancellationToken::new();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (bound, _task) = webhook::serve(addr, state, stop.clone()).await.unwrap();
    Listener {
        url: format!("http://{bound}/webhook"),
        inputs: rx,
        counters,
        stop,
    }
}

/// The next input the listener sent, within 60 s.
async fn next_input(l: &mut Listener) -> Option<Input> {
    tokio::time::timeout(std::time::Duration::from_secs(60), l.inputs.recv())
        .await
        .expect("an input within 60 s")
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DIR}manifest.json")).unwrap()).unwrap()
}

async fn post(
    url: &str,
    event: &str,
    delivery: &str,
    sig: Option<&str>,
    body: Vec<u8>,
    form: bool,
) -> u16 {
    let client = reqwest::Client::new();
    let mut req = client
        .post(url)
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery)
        .header(
            "Content-Type",
            if form {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            },
        )
        .body(body);
    if let Some(s) = sig {
        req = req.header("X-Hub-Signature-256", s);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn fixtures_with_their_signatures_are_accepted() {
    let m = manifest();
    let mut l = start(Some(m["secret"].as_str().unwrap())).await;
    let mut jobs = 0;
    for (i, f) in m["fixtures"].as_array().unwrap().iter().enumerate() {
        let body = std::fs::read(format!("{DIR}{}", f["file"].as_str().unwrap())).unwrap();
        let event = f["event"].as_str().unwrap();
        let status = post(
            &l.url,
            event,
            &format!("d-{i}"),
            f["x_hub_signature_256"].as_str(),
            body,
            false,
        )
        .await;
        let want = if event == "ping" { 200 } else { 202 };
        assert_eq!(status, want, "{}", f["file"]);
        if event == "workflow_job" {
            jobs += 1;
        }
    }
    for _ in 0..jobs {
        let input = tokio::time::timeout(std::time::Duration::from_secs(60), l.inputs.recv())
            .await
            .expect("an input within 60 s");
        assert!(matches!(input, Some(Input::Observed { .. })));
    }
    assert_eq!(l.counters.snapshot().rejected, 0);
    l.stop.cancel();
}

#[tokio::test]
async fn tampered_fixtures_are_refused_with_401() {
    let m = manifest();
    let secret = m["secret"].as_str().unwrap();
    let mut l = start(Some(secret)).await;
    let fixtures = m["fixtures"].as_array().unwrap();
    for (i, f) in fixtures.iter().enumerate() {
        let name = f["file"].as_str().unwrap();
        let event = f["event"].as_str().unwrap();
        let body = std::fs::read(format!("{DIR}{name}")).unwrap();
        let sig = f["x_hub_signature_256"].as_str().unwrap();
        // A changed byte.
        let mut changed = body.clone();
        let at = changed.len() / 2;
        changed[at] ^= 0x01;
        assert_eq!(
            post(&l.url, event, &format!("t1-{i}"), Some(sig), changed, false).await,
            401,
            "{name}: changed byte"
        );
        // A valid HMAC-SHA1 of the body (the legacy `sha1=` format) is not a SHA-256 signature.
        let sha1 = format!("sha1={}", hmac_sha1_hex(secret.as_bytes(), &body));
        assert_eq!(
            post(
                &l.url,
                event,
                &format!("t2-{i}"),
                Some(&sha1),
                body.clone(),
                false
            )
            .await,
            401,
            "{name}: sha1"
        );
        // No signature.
        assert_eq!(
            post(&l.url, event, &format!("t3-{i}"), None, body.clone(), false).await,
            401,
            "{name}: unsigned"
        );
        // The same JSON re-serialised (pretty): the signature is over bytes, not meaning.
        let v: Value = serde_json::from_slice(&body).unwrap();
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        assert_ne!(pretty, body);
        assert_eq!(
            post(&l.url, event, &format!("t4-{i}"), Some(sig), pretty, false).await,
            401,
            "{name}: re-serialised"
        );
    }
    assert_eq!(l.counters.snapshot().rejected, 4 * fixtures.len() as u64);
    assert!(
        l.inputs.try_recv().is_err(),
        "nothing refused reaches the engine"
    );
    l.stop.cancel();
}

fn hmac_sha1_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn malformed_oversized_duplicate_form_and_other_events() {
    let secret = "s3cret";
    let mut l = start(Some(secret)).await;
    let bad = b"{not json".to_vec();
    assert_eq!(
        post(
            &l.url,
            "workflow_job",
            "m1",
            Some(&sign(secret.as_bytes(), &bad)),
            bad,
            false
        )
        .await,
        400
    );

    let big = vec![b' '; 25 * 1024 * 1024 + 1];
    let status = post(
        &l.url,
        "workflow_job",
        "m2",
        Some(&sign(secret.as_bytes(), &big)),
        big,
        false,
    )
    .await;
    assert_eq!(status, 413);

    let body = std::fs::read(format!("{DIR}workflow_job.05.queued.json")).unwrap();
    let sig = sign(secret.as_bytes(), &body);
    assert_eq!(
        post(
            &l.url,
            "workflow_job",
            "dup",
            Some(&sig),
            body.clone(),
            false
        )
        .await,
        202
    );
    assert_eq!(
        post(
            &l.url,
            "workflow_job",
            "dup",
            Some(&sig),
            body.clone(),
            false
        )
        .await,
        200
    );
    assert!(matches!(
        next_input(&mut l).await,
        Some(Input::Observed { .. })
    ));
    assert!(
        l.inputs.try_recv().is_err(),
        "the duplicate was not enqueued"
    );
    assert_eq!(l.counters.snapshot().duplicates, 1);

    let form = serde_urlencoded::to_string([("payload", String::from_utf8(body).unwrap())])
        .unwrap()
        .into_bytes();
    let sig = sign(secret.as_bytes(), &form);
    assert_eq!(
        post(&l.url, "workflow_job", "form", Some(&sig), form, true).await,
        202
    );
    assert!(matches!(
        next_input(&mut l).await,
        Some(Input::Observed { .. })
    ));

    let push = b"{}".to_vec();
    assert_eq!(
        post(
            &l.url,
            "push",
            "p",
            Some(&sign(secret.as_bytes(), &push)),
            push,
            false
        )
        .await,
        202
    );
    assert!(l.inputs.try_recv().is_err(), "other events are ignored");
    l.stop.cancel();
}

#[tokio::test]
async fn unsigned_listener_only_with_the_explicit_opt_in() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let err = webhook::secret_for(addr, None, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("secret") && err.contains("insecure_unsigned_webhooks"),
        "{err}"
    );
    assert!(webhook::secret_for(addr, None, true).unwrap().is_none());
    let mut l = start(None).await;
    let body = std::fs::read(format!("{DIR}workflow_job.05.queued.json")).unwrap();
    assert_eq!(
        post(&l.url, "workflow_job", "u", None, body, false).await,
        202
    );
    assert!(matches!(
        next_input(&mut l).await,
        Some(Input::Observed { .. })
    ));
    l.stop.cancel();
}

#[test]
fn every_signature_vector_verifies() {
    let text = std::fs::read_to_string(format!("{DIR}signature-vectors.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let secret = v["secret"].as_str().unwrap().as_bytes();
        let payload = hex::decode(v["payload_hex"].as_str().unwrap()).unwrap();
        let expected = v["expected"].as_str().unwrap();
        let ok = verify_signature(secret, Some(expected), &payload).is_ok();
        assert_eq!(ok, v["verify"].as_bool().unwrap(), "{line}");
        if v["sign_ok"].as_bool() == Some(true) {
            assert_eq!(sign(secret, &payload), expected, "{line}");
        }
        // A wrong secret never verifies.
        assert!(verify_signature(b"other", Some(expected), &payload).is_err());
        n += 1;
    }
    assert!(n >= 2);
}

#[tokio::test]
async fn a_delivery_refused_as_busy_can_be_redelivered_and_long_ids_are_refused() {
    let secret = "s3cret";
    let mut l = start_with_capacity(Some(secret), 1).await;
    let body = std::fs::read(format!("{DIR}workflow_job.05.queued.json")).unwrap();
    let sig = sign(secret.as_bytes(), &body);
    assert_eq!(
        post(&l.url, "workflow_job", "a", Some(&sig), body.clone(), false).await,
        202
    );
    // The engine's queue is full: refused, not recorded.
    assert_eq!(
        post(&l.url, "workflow_job", "b", Some(&sig), body.clone(), false).await,
        503
    );
    assert!(next_input(&mut l).await.is_some());
    // GitHub's redelivery reuses the id: it is accepted now, not taken for a duplicate.
    assert_eq!(
        post(&l.url, "workflow_job", "b", Some(&sig), body.clone(), false).await,
        202
    );
    assert!(next_input(&mut l).await.is_some());
    let long = "x".repeat(65);
    assert_eq!(
        post(&l.url, "workflow_job", &long, Some(&sig), body, false).await,
        400
    );
    l.stop.cancel();
}
