//! A burst of 200 registrations for one repository: single-flight token refresh means exactly
//! one PAT-authenticated REST call, and the simulator sees no protocol violation.

mod protocol_support;

use megascaler::protocol::api::RunnerEvent;
use megascaler::sim::endpoint;
use protocol_support::*;
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_200_registrations_spends_one_pat_call() {
    let mut h = Harness::start(sim_config()).await;
    let handles: Vec<_> = (0..200)
        .map(|i| h.spawn(&["burst", if i % 2 == 0 { "even" } else { "odd" }]))
        .collect();
    let mut listening = HashSet::new();
    for r in &handles {
        h.expect(&r.name, "Listening", is_listening).await;
        listening.insert(r.name.clone());
    }
    assert_eq!(listening.len(), 200);
    let c = h.sim.counters();
    assert_eq!(c.pat_calls, 1, "{c:?}");
    assert_eq!(c.get(endpoint::REGISTRATION_TOKEN), 1);
    assert_eq!(
        c.get(endpoint::RUNNER_REGISTRATION),
        1,
        "one JWT for the burst"
    );
    assert_eq!(c.get(endpoint::POOLS_LIST), 1, "pool id cached per tenant");
    assert_eq!(c.get(endpoint::AGENTS_ADD), 200);
    assert_eq!(h.sim.runners().len(), 200);
    assert_eq!(h.fleet.budget().calls, 1);
    let status = h.fleet.token_status();
    assert_eq!(status[0].oauth_tokens, 200);
    assert!(status[0].cache_hits >= 199);

    for r in &handles {
        r.stop().await;
    }
    for r in &handles {
        assert!(matches!(h.terminal(&r.name).await, RunnerEvent::Removed));
    }
    assert!(h.sim.runners().is_empty());
    assert_eq!(h.sim.counters().pat_calls, 1, "removal used the cached JWT");
    h.assert_no_violations();
}
