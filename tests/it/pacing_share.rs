//! Issue 26: a budget per integration (`rateLimit: {share, perHour}`) and
//! fast buckets, black-box against the simulator's token bucket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bitbucket_sim::{Behaviour, DatasetConfig, RateLimit, SimConfig, Simulator};
use serde_json::Value;

use crate::support::TestApp;
use crate::support::sim::SimProviderConfig;

async fn simulator(repos: usize, rate_limit: Option<RateLimit>) -> Simulator {
    Simulator::start(SimConfig {
        seed: 1,
        dataset: DatasetConfig {
            projects: repos.div_ceil(50),
            repos_per_project: repos.min(50),
            catalog_ratio: 0.6,
            ..Default::default()
        },
        behaviour: Behaviour {
            latency: Duration::from_millis(10),
            rate_limit,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("simulator starts")
}

/// A provider that runs once at start-up, with `integration` keys.
fn config(sim: &Simulator, integration: &str) -> String {
    SimProviderConfig::new(sim)
        .integration_extra(integration)
        .schedule("frequency: {hours: 1}, timeout: {minutes: 10}")
        .yaml()
}

/// The provider's first finished run, polled for up to `within`.
async fn first_run(app: &TestApp, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let status = app.get_json("/api/catalog/providers/sim").await;
        if !status["lastRun"].is_null() && status["inProgress"] == false {
            return status;
        }
        assert!(Instant::now() < deadline, "no run finished: {status:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a co-tenant on the same (anonymous) token got: requests, 429s.
#[derive(Default)]
struct CoTenant {
    sent: AtomicU64,
    limited: AtomicU64,
    stop: AtomicBool,
}

/// Like a CI job: 8 requests back to back every 3 s, until stopped.
fn bursty_co_tenant(url: String) -> (Arc<CoTenant>, tokio::task::JoinHandle<()>) {
    let tenant = Arc::new(CoTenant::default());
    let counts = Arc::clone(&tenant);
    let task = tokio::spawn(async move {
        let http = reqwest::Client::new();
        while !counts.stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            for _ in 0..8 {
                let Ok(response) = http.get(&url).send().await else {
                    continue;
                };
                counts.sent.fetch_add(1, Ordering::Relaxed);
                if response.status() == 429 {
                    counts.limited.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep_until((started + Duration::from_secs(3)).into()).await;
        }
    });
    (tenant, task)
}

#[tokio::test]
async fn a_share_leaves_a_bursty_co_tenant_its_headroom() {
    // 200 repositories: the sweep outlasts 40 bursts at half of 10 a second.
    let sim = simulator(
        200,
        Some(RateLimit {
            burst: 10,
            per_second: 10.0,
        }),
    )
    .await;
    let (tenant, task) = bursty_co_tenant(format!("{}/projects?limit=1", sim.server_api_base()));
    let app = TestApp::spawn(&config(&sim, "      rateLimit: {share: 0.5}\n")).await;
    let status = first_run(&app, Duration::from_secs(240)).await;
    tenant.stop.store(true, Ordering::Relaxed);
    let _ = task.await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    let sent = tenant.sent.load(Ordering::Relaxed);
    let limited = tenant.limited.load(Ordering::Relaxed);
    let share = limited as f64 / sent.max(1) as f64;
    eprintln!(
        "co-tenant: {limited} × 429 of {sent} ({:.1} %)",
        share * 100.0
    );
    assert!(sent >= 100, "the co-tenant ran alongside the sweep: {sent}");
    assert!(share <= 0.05, "co-tenant 429s: {limited} of {sent}");

    // The status page shows the budget, what is used and a full run's cost.
    let page = app.get("/").await.text().await.expect("page");
    assert!(page.contains("50 % of"), "{page}");
    assert!(page.contains("sim: "), "{page}");
    app.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_per_hour_ceiling_holds() {
    // 36,000 an hour: 10 a second, one at a time.
    let sim = simulator(50, None).await;
    let app = TestApp::spawn(&config(&sim, "      rateLimit: {perHour: 36000}\n")).await;
    let status = first_run(&app, Duration::from_secs(60)).await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    let requests = sim.stats().requests;
    let took = status["lastRun"]["durationMs"]
        .as_f64()
        .expect("durationMs")
        / 1000.0;
    // Spread evenly: n requests take at least (n − 1) / 10 s.
    let least = (requests.saturating_sub(2)) as f64 / 10.0;
    assert!(requests >= 40, "{requests}");
    assert!(
        took >= least,
        "{requests} requests in {took:.2} s: faster than 36,000 an hour"
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("bitbucket_integration_budget_ceiling_requests_per_second{host=\"")
            && metrics.contains("} 10"),
        "{metrics}"
    );
    app.stop().await;
    sim.shutdown().await;
}

/// The first run's duration in seconds against `sim`, and its status.
async fn timed_run(sim: &Simulator) -> (f64, Value) {
    let app = TestApp::spawn(&config(sim, "")).await;
    let status = first_run(&app, Duration::from_secs(120)).await;
    app.stop().await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    let took = status["lastRun"]["durationMs"]
        .as_f64()
        .expect("durationMs")
        / 1000.0;
    (took, status)
}

#[tokio::test]
async fn a_fast_bucket_runs_within_one_and_a_half_times_its_bound() {
    // About 400 reads through a 20 burst / 100 per second bucket.
    let (burst, refill) = (20, 100.0);
    // What this machine takes for the same job with no limit: on a loaded
    // machine (or a debug build) that, not the bucket, may bind.
    let free = simulator(330, None).await;
    let (unlimited, _) = timed_run(&free).await;
    free.shutdown().await;
    let sim = simulator(
        330,
        Some(RateLimit {
            burst,
            per_second: refill,
        }),
    )
    .await;
    let (took, _) = timed_run(&sim).await;
    let stats = sim.stats();
    let served = stats.requests - stats.status("429");
    let bound = served.saturating_sub(u64::from(burst)) as f64 / refill;
    eprintln!(
        "{served} served, {} × 429, {took:.2} s, bound {bound:.2} s, unlimited {unlimited:.2} s",
        stats.status("429")
    );
    assert!(served >= 350, "{served}");
    assert!(
        took <= 1.5 * bound.max(unlimited),
        "{took:.2} s for {served} requests: over 1.5 × the bound {bound:.2} s (unlimited: {unlimited:.2} s)"
    );
    sim.shutdown().await;
}
