//! Tests that read the daemon's process-wide metrics registry whole, in a
//! binary of their own: `cargo test` runs a binary's tests in one process,
//! where every other integration test's series would count against them
//! (nextest gives each test a process of its own anyway). Issue 14, item 2.

#[allow(dead_code, unused_imports)] // this binary uses a small part of the fixtures
#[path = "../it/support/mod.rs"]
mod support;

use support::big_catalog;

#[tokio::test]
async fn invented_methods_do_not_grow_metrics() {
    let (_fake, app) = big_catalog(1).await;
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("X{i}RANDOM").as_bytes()).unwrap();
        app.http
            .request(method, format!("{}/api/catalog/entities", app.address))
            .send()
            .await
            .unwrap();
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.contains("RANDOM"),
        "invented methods became labels"
    );
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    app.stop().await;
}

/// Every provider series the shipped alerts read is scraped before any
/// run: `increase()` misses the first event of a series that appears with
/// it, so a failed or held first run after a restart would never alert.
/// `bitbucket_requests_total` is labelled by endpoint and status as
/// requests come, so it cannot exist before the first request.
#[tokio::test]
async fn alerted_provider_series_exist_before_any_run() {
    let fake = support::FakeServer::builder().start().await;
    let schedule = "        schedule:\n          frequency: { hours: 1 }\n          initialDelay: { hours: 1 }\n";
    let app = support::TestApp::spawn(&support::server_config(&fake, "", schedule)).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();

    let rules: serde_json::Value =
        serde_saphyr::from_str(include_str!("../../deploy/prometheus/alerts.yaml")).unwrap();
    let name = regex::Regex::new(r"\b(?:catalog|bitbucket)[a-z]*_[a-z_]+\b").unwrap();
    let mut checked = 0;
    for rule in rules["groups"][0]["rules"].as_array().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        for metric in name.find_iter(expr).map(|m| m.as_str()) {
            if metric == "bitbucket_requests_total" {
                continue;
            }
            assert!(
                metrics.contains(&format!("{metric}{{provider=\"main\"")),
                "{metric} (deploy/prometheus/alerts.yaml) is not scraped before the first run:\n{metrics}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} metric names found");
    for outcome in ["succeeded", "failed", "held"] {
        assert!(
            metrics.contains(&format!(
                "catalog_provider_runs_total{{provider=\"main\",outcome=\"{outcome}\"}} 0"
            )),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("catalog_provider_deletions_held_total{provider=\"main\"} 0"),
        "{metrics}"
    );
    app.stop().await;
}
