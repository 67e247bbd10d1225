//! Issues 26 and 30: interactive work (webhook reads, entity refreshes)
//! goes ahead of a sweep's requests in the integration's pacer, and the
//! number of requests in flight adapts to the server.

use std::time::{Duration, Instant};

use bitbucket_sim::{Behaviour, DatasetConfig, RateLimit, RepoRef, SimConfig, Simulator};
use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, WRITE_TOKEN, component};

const SECRET: &str = "webhook-s3cret";
/// Issue 26's target: interactive work is served within 2 s at any sweep
/// size under Data Center's default bucket.
const BOUND: Duration = Duration::from_secs(2);

/// Provider `team` (project P0001, read before the bucket is on) and
/// provider `all` (2,000 repositories in P0002–P0021, never read) on one
/// Data Center integration.
fn two_providers(sim: &Simulator) -> String {
    format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n      webhookSecret: {SECRET}\n\
         catalog:\n  providers:\n    bitbucketServer:\n\
         \x20     team:\n        host: {host}\n        filters: {{projectKey: '^P0001$'}}\n        schedule: {{frequency: {{trigger: manual}}}}\n\
         \x20     all:\n        host: {host}\n        filters: {{projectKey: '^P00(0[2-9]|1[0-9]|2[01])$'}}\n        schedule: {{frequency: {{trigger: manual}}, timeout: {{minutes: 30}}}}\n",
        host = sim.host(),
        api = sim.server_api_base(),
    )
}

async fn wait_served(app: &TestApp, name: &str, started: Instant) -> Duration {
    let path = format!("/api/catalog/entities/by-name/component/default/{name}");
    while app.get(&path).await.status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name} was not served within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// During a provider refresh of 2,000 repositories against Data Center's
/// default bucket (60, 5 per second), pushes and entity refreshes are each
/// served within [`BOUND`], 429 episodes meanwhile or not (the sweep waits
/// out `Retry-After`, interactive work only the bucket's next token); the
/// sweep still runs meanwhile. The last eight meet the 429 episodes of a
/// bucket that shrinks to 5 and 3 a second under the pace.
#[tokio::test]
async fn pushes_and_refreshes_are_served_within_2s_during_a_sweep_of_2000_repositories() {
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig::components_only(21, 100),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let app = TestApp::spawn(&two_providers(&sim)).await;
    app.refresh("team", "").await;
    let team: Vec<_> = sim
        .dataset()
        .server_repos()
        .filter(|r| r.project_key == "P0001")
        .cloned()
        .collect();
    assert_eq!(team.len(), 100);
    sim.set_behaviour(Behaviour {
        rate_limit: Some(RateLimit::data_center_default()),
        ..Behaviour::default()
    })
    .expect("rate limit");
    sim.reset_stats();

    // The sweep: a provider refresh, as `POST …/refresh` asks it.
    let (status, body) = app
        .send(
            Method::POST,
            "/api/catalog/providers/all/refresh",
            None,
            Some(WRITE_TOKEN),
        )
        .await;
    assert_eq!(status, 202, "{body:#}");
    // Past the bucket's burst and the pacer's first 429s (it learns the
    // bucket then): the sweep is paced and its reads queue.
    tokio::time::sleep(Duration::from_secs(20)).await;

    let mut served = Vec::new();
    for (i, repo) in team.iter().take(16).enumerate() {
        if i == 8 {
            // The bucket now holds 5 and refills at 3 a second (another
            // client took a share): the pace overruns it at once, and 429
            // episodes follow while the pacer learns the new rate.
            sim.set_behaviour(Behaviour {
                rate_limit: Some(RateLimit {
                    burst: 5,
                    per_second: 3.0,
                }),
                ..Behaviour::default()
            })
            .expect("slower bucket");
        }
        let at = RepoRef::Server {
            project: repo.project_key.clone(),
            slug: repo.slug.clone(),
        };
        let name = format!("interactive-{i}");
        let event = sim
            .push_file(&at, "catalog-info.yaml", &component(&name))
            .expect("push");
        let started = Instant::now();
        let limited = sim.stats().rate_limited();
        if i % 2 == 0 {
            let status = event
                .deliver(
                    &format!("{}/api/events/http/bitbucketServer", app.address),
                    Some(SECRET),
                )
                .await
                .expect("the event reaches the daemon");
            assert_eq!(status, 202);
        } else {
            // Not delivered: an entity refresh reads the change.
            let (status, body) = app
                .send(
                    Method::POST,
                    "/api/catalog/refresh",
                    Some(json!({"entityRef": repo.entity_refs[0]})),
                    Some(WRITE_TOKEN),
                )
                .await;
            assert_eq!(status, 200, "{body:#}");
        }
        let took = wait_served(&app, &name, started).await;
        let kind = if i % 2 == 0 { "push" } else { "refresh" };
        served.push((kind, took, sim.stats().rate_limited() - limited));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all = app.get_json("/api/catalog/providers/all").await;
    assert_eq!(all["inProgress"], true, "the sweep ended early: {all:#}");
    assert!(
        sim.stats().requests > 150,
        "the sweep made too few requests to bind the bucket: {:?}",
        sim.stats().requests
    );
    eprintln!("served (kind, after, 429s meanwhile): {served:?}");
    assert!(
        served.iter().any(|(_, _, limited)| *limited > 0),
        "no 429 came during interactive work: {served:?}"
    );
    // Nothing waits for the sweep, nor for a whole Retry-After.
    assert!(
        served.iter().all(|(_, took, _)| *took < BOUND),
        "interactive work waited behind the sweep or a Retry-After: {served:?}"
    );
    app.stop().await;
}

/// Against a Bitbucket that does not slow with load (50 ms per request,
/// well above a busy test machine's scheduling jitter; no bucket) more
/// than the old fixed 8 requests go out at once, and the limit shows on
/// `/metrics`.
#[tokio::test]
async fn concurrency_grows_past_8_against_a_fast_bitbucket() {
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig::components_only(5, 100),
        behaviour: Behaviour {
            latency: Duration::from_millis(50),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let config = crate::support::sim::SimProviderConfig::new(&sim).yaml();
    let app = TestApp::spawn(&config).await;
    app.refresh("sim", "").await;
    let stats = sim.stats();
    assert!(
        stats.max_in_flight > 8,
        "at most {} requests in flight",
        stats.max_in_flight
    );
    // Shown, whatever it is now that the run is over.
    let limit = concurrency_limit(&app, &sim.host()).await;
    eprintln!(
        "{} in flight at most; limit now {limit}",
        stats.max_in_flight
    );
    assert!(limit >= 2.0, "concurrency limit {limit}");
    app.stop().await;
}

/// Against a Bitbucket whose latency grows with what is in flight (10 ms
/// plus 40 ms per request), the limit comes down to a few requests.
#[tokio::test]
async fn concurrency_backs_off_when_latency_grows_with_load() {
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig::components_only(4, 100),
        behaviour: Behaviour {
            latency: Duration::from_millis(10),
            latency_per_in_flight: Duration::from_millis(40),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let config = crate::support::sim::SimProviderConfig::new(&sim).yaml();
    let app = TestApp::spawn(&config).await;
    let (status, _) = app
        .send(
            Method::POST,
            "/api/catalog/providers/sim/refresh",
            None,
            Some(WRITE_TOKEN),
        )
        .await;
    assert_eq!(status, 202);
    // Start-up, the listing and the first back-offs (40 answers) settle;
    // from then on few requests are in flight.
    let started = Instant::now();
    while sim.stats().requests < 40 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.reset_stats();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = sim.stats();
    let limit = concurrency_limit(&app, &sim.host()).await;
    eprintln!(
        "{} requests, {} in flight at most; limit now {limit}",
        stats.requests, stats.max_in_flight
    );
    assert!(stats.requests > 20, "{} requests", stats.requests);
    assert!(
        stats.max_in_flight <= 5,
        "{} requests in flight against a server that slows with load",
        stats.max_in_flight
    );
    assert!(limit <= 5.0, "concurrency limit {limit}");
    app.stop().await;
}

/// `bitbucket_integration_concurrency_limit{host=…}` on `/metrics`.
async fn concurrency_limit(app: &TestApp, host: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    let label = format!("host=\"{host}\"");
    text.lines()
        .find(|l| l.starts_with("bitbucket_integration_concurrency_limit{") && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no concurrency gauge for {host} in:\n{text}"))
}
