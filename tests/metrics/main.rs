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
