//! Issue 26: a budget per integration (`rateLimit: {share, perHour}`),
//! fast buckets, and providers splitting one integration's budget,
//! black-box against the simulator's token bucket.

use std::time::{Duration, Instant};

use bitbucket_sim::{Behaviour, DatasetConfig, RateLimit, SimConfig, Simulator};
use reqwest::Method;
use serde_json::Value;

use crate::support::co_tenant::CoTenant;
use crate::support::sim::SimProviderConfig;
use crate::support::{TestApp, WRITE_TOKEN, run_on_config, text, write_config};

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
    let tenant = CoTenant::start(format!("{}/projects?limit=1", sim.server_api_base()));
    let app = TestApp::spawn(&config(&sim, "      rateLimit: {share: 0.5}\n")).await;
    let status = first_run(&app, Duration::from_secs(240)).await;
    let got = tenant.stop().await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    let (sent, limited, share) = (got.sent, got.limited, got.limited_share());
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

/// Files `provider`'s running run has read so far.
async fn files_read(app: &TestApp, provider: &str) -> u64 {
    let status = app
        .get_json(&format!("/api/catalog/providers/{provider}"))
        .await;
    status["progress"]["read"].as_u64().unwrap_or(0)
}

/// Two providers sweep one integration whose bucket (10, 10 per second)
/// binds: `big` reads 32 repositories at once, `small` 4 (enough to use
/// half the bucket). Served first come first served, `big`'s queue took
/// about 32 of every 36 reads; round-robin between the providers waiting
/// gives each about half.
#[tokio::test]
async fn two_providers_sweeping_one_integration_split_its_budget() {
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig::components_only(20, 50),
        behaviour: Behaviour {
            latency: Duration::from_millis(10),
            rate_limit: Some(RateLimit {
                burst: 10,
                per_second: 10.0,
            }),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let provider = |name: &str, projects: &str, concurrency: usize| {
        format!(
            "\x20     {name}:\n        host: {host}\n        concurrency: {concurrency}\n        filters: {{projectKey: '{projects}'}}\n        schedule: {{frequency: {{trigger: manual}}, timeout: {{minutes: 10}}}}\n",
            host = sim.host(),
        )
    };
    let config = format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n\
         catalog:\n  providers:\n    bitbucketServer:\n{big}{small}",
        host = sim.host(),
        api = sim.server_api_base(),
        big = provider("big", "^P00(0[1-9]|10)$", 32),
        small = provider("small", "^P00(1[1-9]|20)$", 4),
    );
    let app = TestApp::spawn(&config).await;
    for name in ["big", "small"] {
        let (status, body) = app
            .send(
                Method::POST,
                &format!("/api/catalog/providers/{name}/refresh"),
                None,
                Some(WRITE_TOKEN),
            )
            .await;
        assert_eq!(status, 202, "{body:#}");
    }
    // Both past their listings and reading.
    let started = Instant::now();
    while files_read(&app, "big").await < 20 || files_read(&app, "small").await < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "both providers did not start reading within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = (
        files_read(&app, "big").await,
        files_read(&app, "small").await,
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = (
        files_read(&app, "big").await,
        files_read(&app, "small").await,
    );
    let (big, small) = (after.0 - before.0, after.1 - before.1);
    let share = big as f64 / (big + small).max(1) as f64;
    eprintln!(
        "over 10 s: big read {big}, small {small} (big {:.0} %); {} × 429",
        share * 100.0,
        sim.stats().rate_limited()
    );
    assert!(big + small >= 50, "too few reads to judge: {big} + {small}");
    assert!(
        (0.35..=0.65).contains(&share),
        "one provider took the integration: big {big}, small {small}"
    );
    app.stop().await;
    sim.shutdown().await;
}

/// A `rateLimit` that limits nothing (no key, or only `burst`) is refused
/// by `config check` with what to set; `share` alone is a budget.
#[tokio::test]
async fn config_check_refuses_a_rate_limit_that_limits_nothing() {
    let integration = |rate_limit: &str| {
        format!(
            "integrations:\n  bitbucketServer:\n    - host: bitbucket.example.com\n      rateLimit: {rate_limit}\n"
        )
    };
    for (rate_limit, says) in [
        ("{}", "set one, or remove rateLimit"),
        ("{burst: 10}", "burst is set without requestsPerSecond"),
        (
            "{share: 0.5, burst: 10}",
            "set requestsPerSecond or remove burst",
        ),
    ] {
        let (_dir, file) = write_config(&integration(rate_limit));
        let out = run_on_config(&["config", "check"], &file).await;
        let stderr = text(&out.stderr);
        assert_ne!(
            out.status.code(),
            Some(0),
            "rateLimit: {rate_limit}: {stderr}"
        );
        assert!(
            stderr.contains("rateLimit") && stderr.contains(says),
            "rateLimit: {rate_limit}: {stderr}"
        );
    }
    let (_dir, file) = write_config(&integration("{share: 0.5}"));
    let out = run_on_config(&["config", "check"], &file).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
