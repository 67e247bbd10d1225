//! Black-box regression tests for issue 14 (hardening): what an
//! unauthenticated client, a hostile repository author, a hostile or broken
//! Bitbucket and a careless operator can no longer do. One test per item,
//! each asserting the bounded outcome.

mod common;

use std::time::{Duration, Instant};

use common::{FakeServer, TestApp, component, server_config};
use serde_json::{Value, json};

/// A provider `main` serving `count` components from one repository.
async fn big_catalog(count: usize) -> (FakeServer, TestApp) {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &[("big", false)], 25).await;
    let file: Vec<String> = (0..count).map(|i| component(&format!("c{i}"))).collect();
    fake.mount_file("PLAT", "big", "catalog-info.yaml", &file.join("---\n"))
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["entities"] == count).await;
    (fake, app)
}

#[track_caller]
fn assert_backstage_error(body: &Value, status: u16, name: &str) {
    assert_eq!(body["error"]["name"], name, "{body:#}");
    assert_eq!(body["response"]["statusCode"], status, "{body:#}");
    assert!(body["request"]["method"].is_string(), "{body:#}");
}

/// A predicate of `terms` conditions that all have to be evaluated.
fn wide_query(terms: usize) -> Value {
    let any: Vec<Value> = (0..terms)
        .map(|i| json!({"metadata.name": format!("nothing-{i}")}))
        .collect();
    json!({"query": {"$any": any}})
}

// ---------------------------------------------------------------- 1: query CPU

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_are_bounded_and_liveness_stays_fast() {
    let (_fake, app) = big_catalog(300).await;
    let url = format!("{}/api/catalog/entities/by-query", app.address);

    // Over the bounds: a clear 400, not minutes of CPU.
    for (body, needle) in [
        (wide_query(20_000), "1000"),
        (
            json!({"query": (0..40).fold(json!({"kind": "component"}), |q, _| json!({"$not": q}))}),
            "nested deeper",
        ),
    ] {
        let started = Instant::now();
        let response = app.http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert_backstage_error(&error, 400, "InputError");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(needle),
            "{error:#}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let fields: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
    let response = app
        .get(&format!(
            "/api/catalog/entities?fields={}",
            fields.join(",")
        ))
        .await;
    assert_eq!(response.status(), 400);

    // Heavy queries inside the bounds, many at once, run off the async
    // workers: liveness answers quickly all along.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut load = Vec::new();
    for _ in 0..4 {
        let (http, url, stop) = (app.http.clone(), url.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut answered = 0;
            while !stop.is_cancelled() {
                for body in [wide_query(999), wide_query(20_000)] {
                    let response = http.post(&url).json(&body).send().await.unwrap();
                    assert!(response.status() == 200 || response.status() == 400);
                    answered += 1;
                }
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let started = Instant::now();
        let response = app.get("/.backstage/health/v1/liveness").await;
        assert_eq!(response.status(), 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let mut answered = 0;
    for task in load {
        answered += task.await.unwrap();
    }
    assert!(answered > 4, "the hostile load ran ({answered} answers)");
    assert!(
        slowest < Duration::from_millis(100),
        "liveness took {slowest:?} under query load"
    );
    app.stop().await;
}

// ---------------------------------------------------------------- 2: metrics labels

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
