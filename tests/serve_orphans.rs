//! Polling finds runners with megascaler's prefix that nothing owns (left by a crashed
//! instance) and removes them.

mod serve_support;

use megascaler::protocol::api::RunnerRequest;
use megascaler::protocol::{FleetSettings, RunnerFleet};
use megascaler::sim::Assignment;
use serve_support::*;
use std::time::Duration;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread")]
async fn orphaned_runner_with_our_prefix_is_removed_by_polling() {
    let sim = simulator(Assignment::First).await;
    // A runner registered by "another megascaler" that then disappeared.
    let fleet = RunnerFleet::new(FleetSettings::new(sim.base_url(), sim.pat().into()));
    let (tx, _rx) = mpsc::channel(64);
    let name = RunnerFleet::runner_name("megascaler-");
    let _orphan = fleet.spawn(
        RunnerRequest {
            scope_url: format!("{}{REPO}", sim.base_url()).parse().unwrap(),
            labels: vec!["self-hosted".into(), "linux".into()],
            name: name.clone(),
        },
        tx,
    );
    assert!(
        sim.wait_until(
            |s| s.runners().iter().any(|r| r.name == name),
            Duration::from_secs(60)
        )
        .await,
        "the orphan registered"
    );
    let mut setup = Setup::new(vec![Worker::sim(&["self-hosted", "linux"])]);
    setup.webhooks = false;
    let mut serve = start_serve(&sim, setup).await;
    assert!(
        sim.wait_until(
            |s| !s.runners().iter().any(|r| r.name == name),
            Duration::from_secs(60)
        )
        .await,
        "orphan still registered: {}",
        serve.stderr()
    );
    // The decision line is logged from the event stream, which may trail the REST call.
    let (log, ok) = serve
        .wait_for_stderr(
            |l| l.contains("nothing here owns it"),
            Duration::from_secs(60),
        )
        .await;
    assert!(ok, "{log}");
    serve.assert_clean_exit().await;
}
