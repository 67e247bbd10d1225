//! Black-box regression tests for issue 14 (hardening): what an
//! unauthenticated client, a hostile repository author, a hostile or broken
//! Bitbucket and a careless operator can no longer do. One test per item,
//! each asserting the bounded outcome.

mod connections;
mod hostile_bitbucket;
mod hostile_files;
mod operator;
mod requests;

use std::time::{Duration, Instant};

use crate::support::{FakeServer, TestApp, assert_backstage_error, component, server_config};
use serde_json::{Value, json};

/// A provider `main` serving `count` components from one repository.
async fn big_catalog(count: usize) -> (FakeServer, TestApp) {
    let fake = FakeServer::builder().repo("PLAT", "big").start().await;
    let file: Vec<String> = (0..count).map(|i| component(&format!("c{i}"))).collect();
    fake.mount_file("PLAT", "big", "catalog-info.yaml", &file.join("---\n"))
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["entities"] == count).await;
    (fake, app)
}

/// A predicate of `terms` conditions that all have to be evaluated.
fn wide_query(terms: usize) -> Value {
    let any: Vec<Value> = (0..terms)
        .map(|i| json!({"metadata.name": format!("nothing-{i}")}))
        .collect();
    json!({"query": {"$any": any}})
}
