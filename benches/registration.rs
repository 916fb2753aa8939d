//! Registration throughput against the in-process simulator (a bench program, not a test).
//!
//! Prints: registrations per second with a warm cache (token cache and key pool warm),
//! milliseconds from request to listening session (p50, p99), and PAT-authenticated REST
//! calls per 1,000 runners. Run with `cargo bench --bench registration`.

use megascaler::protocol::api::{RunnerEnvelope, RunnerEvent, RunnerRequest};
use megascaler::protocol::{FleetSettings, RunnerFleet, RunnerHandle, Tunables};
use megascaler::secret::Secret;
use megascaler::sim::{SimConfig, Simulator};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const REPO: &str = "octo/hello";
const BURST: usize = 200;
const TOTAL: usize = 1000;
const SEQUENTIAL: usize = 50;

struct Burst {
    registered: Duration,
    to_listening_ms: Vec<f64>,
}

async fn burst(
    fleet: &RunnerFleet,
    scope: &url::Url,
    n: usize,
    rx: &mut mpsc::Receiver<RunnerEnvelope>,
    tx: &mpsc::Sender<RunnerEnvelope>,
) -> (Burst, Vec<RunnerHandle>) {
    let start = Instant::now();
    let mut started = HashMap::new();
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let name = RunnerFleet::runner_name("megascaler-");
        started.insert(name.clone(), Instant::now());
        handles.push(fleet.spawn(
            RunnerRequest {
                scope_url: scope.clone(),
                labels: vec!["bench".into()],
                name,
            },
            tx.clone(),
        ));
    }
    let (mut registered, mut listening) = (0, Vec::with_capacity(n));
    let mut all_registered = Duration::ZERO;
    while listening.len() < n {
        let Some(env) = rx.recv().await else { break };
        match env.event {
            RunnerEvent::Registered { .. } => {
                registered += 1;
                if registered == n {
                    all_registered = start.elapsed();
                }
            }
            RunnerEvent::Listening => {
                // Removed on first sight: each runner counts once even if it announced twice.
                if let Some(t) = started.remove(&env.runner) {
                    listening.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            RunnerEvent::Failed { reason } => panic!("runner failed: {reason}"),
            _ => {}
        }
    }
    listening.sort_by(f64::total_cmp);
    (
        Burst {
            registered: all_registered,
            to_listening_ms: listening,
        },
        handles,
    )
}

async fn stop_all(handles: Vec<RunnerHandle>, rx: &mut mpsc::Receiver<RunnerEnvelope>) {
    let n = handles.len();
    for h in &handles {
        h.stop().await;
    }
    let mut ended = 0;
    while ended < n {
        match rx.recv().await.map(|e| e.event) {
            Some(RunnerEvent::Removed | RunnerEvent::Failed { .. }) => ended += 1,
            Some(_) => {}
            None => break,
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sim = Simulator::start(SimConfig {
        long_poll_hold: Duration::from_secs(30),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let mut settings = FleetSettings::new(sim.base_url(), Secret::new(sim.pat()));
    settings.tunables = Tunables {
        keypool_size: BURST + 8,
        ..Tunables::default()
    };
    let fleet = RunnerFleet::new(settings);
    let scope = sim.base_url().join(REPO).expect("scope");
    let (tx, mut rx) = mpsc::channel(4096);

    let t = Instant::now();
    fleet.keys().fill_now().await.expect("keys");
    let keygen = t.elapsed();
    // Warm the token cache with one runner.
    let (_, warm) = burst(&fleet, &scope, 1, &mut rx, &tx).await;
    fleet.keys().fill_now().await.expect("keys");

    let (b, handles) = burst(&fleet, &scope, BURST, &mut rx, &tx).await;
    stop_all(handles, &mut rx).await;
    stop_all(warm, &mut rx).await;
    let rate = BURST as f64 / b.registered.as_secs_f64();

    // One at a time: the latency of a single request with nothing else going on.
    fleet.keys().fill_now().await.expect("keys");
    let mut single = Vec::new();
    for _ in 0..SEQUENTIAL {
        let (one, hs) = burst(&fleet, &scope, 1, &mut rx, &tx).await;
        single.extend(one.to_listening_ms);
        stop_all(hs, &mut rx).await;
    }
    single.sort_by(f64::total_cmp);

    // PAT spend over 1,000 runners (cold key pool from here on: keys are made on demand).
    let pat_before = sim.counters().pat_calls;
    let runners_before = 1 + BURST + SEQUENTIAL;
    let mut done = 0;
    while done < TOTAL - runners_before {
        let n = (TOTAL - runners_before - done).min(BURST);
        let (_, hs) = burst(&fleet, &scope, n, &mut rx, &tx).await;
        stop_all(hs, &mut rx).await;
        done += n;
    }
    let c = sim.counters();
    let violations = sim.violations();

    println!(
        "registration benchmark (in-process simulator, loopback, {} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  RSA-2048 key pool fill: {} keys in {:.2} s ({:.1} ms/key)",
        BURST + 8,
        keygen.as_secs_f64(),
        keygen.as_secs_f64() * 1000.0 / (BURST + 8) as f64
    );
    println!(
        "  warm cache burst of {BURST}: all registered in {:.3} s => {rate:.1} registrations/s",
        b.registered.as_secs_f64()
    );
    println!(
        "  request -> listening session, within the burst of {BURST}: p50 {:.1} ms, p99 {:.1} ms (max {:.1} ms)",
        pct(&b.to_listening_ms, 0.5),
        pct(&b.to_listening_ms, 0.99),
        pct(&b.to_listening_ms, 1.0)
    );
    println!(
        "  request -> listening session, one runner at a time ({SEQUENTIAL}): p50 {:.1} ms, p99 {:.1} ms",
        pct(&single, 0.5),
        pct(&single, 0.99)
    );
    println!(
        "  PAT REST calls for {TOTAL} runners: {} total ({} in the first {runners_before}, {} in the rest) => {:.1} per 1,000 runners",
        c.pat_calls,
        pat_before,
        c.pat_calls - pat_before,
        c.pat_calls as f64 * 1000.0 / TOTAL as f64
    );
    println!(
        "  runner-registration calls: {}, pools listed: {}, agents added: {}",
        c.get(megascaler::sim::endpoint::RUNNER_REGISTRATION),
        c.get(megascaler::sim::endpoint::POOLS_LIST),
        c.get(megascaler::sim::endpoint::AGENTS_ADD)
    );
    println!(
        "  protocol violations seen by the simulator: {}",
        violations.len()
    );
    sim.shutdown();
}
