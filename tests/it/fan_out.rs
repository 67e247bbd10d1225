//! Issue 26: a provider's reads fan out as wide as the integration's
//! adaptive concurrency limit allows, unless its `concurrency` caps them.

use std::time::Duration;

use bitbucket_sim::{Behaviour, DatasetConfig, SimConfig, Simulator};

use crate::support::TestApp;
use crate::support::sim::SimProviderConfig;

/// `repos` repositories of one Component each, 100 ms per request (well
/// above a busy test machine's scheduling jitter) and no limit.
async fn fast_simulator(projects: usize, repos_per_project: usize) -> Simulator {
    Simulator::start(SimConfig {
        dataset: DatasetConfig::components_only(projects, repos_per_project),
        behaviour: Behaviour {
            latency: Duration::from_millis(100),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

#[tokio::test]
async fn a_providers_reads_go_past_16_in_flight_against_a_fast_bitbucket() {
    let sim = fast_simulator(6, 100).await;
    let app = TestApp::spawn(&SimProviderConfig::new(&sim).yaml()).await;
    let status = app.refresh("sim", "").await;
    let stats = sim.stats();
    eprintln!(
        "{} requests, at most {} in flight",
        stats.requests, stats.max_in_flight
    );
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    assert_eq!(app.entity_refs().await.len(), 600);
    // The old fixed fan-out was 16 reads.
    assert!(
        stats.max_in_flight > 16,
        "at most {} requests in flight",
        stats.max_in_flight
    );
    app.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_providers_concurrency_caps_its_reads() {
    let sim = fast_simulator(2, 100).await;
    let config = SimProviderConfig::new(&sim)
        .provider_extra("        concurrency: 4\n")
        .yaml();
    let app = TestApp::spawn(&config).await;
    let status = app.refresh("sim", "").await;
    let stats = sim.stats();
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    assert_eq!(app.entity_refs().await.len(), 200);
    // One request per read (plain Components): at most 4 in flight.
    assert!(
        (2..=4).contains(&stats.max_in_flight),
        "at most {} requests in flight",
        stats.max_in_flight
    );
    app.stop().await;
    sim.shutdown().await;
}
