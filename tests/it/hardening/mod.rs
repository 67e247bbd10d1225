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

use crate::support::{
    FakeServer, TestApp, assert_backstage_error, big_catalog, component, server_config,
};
use serde_json::{Value, json};

/// A predicate of `terms` conditions that all have to be evaluated.
fn wide_query(terms: usize) -> Value {
    let any: Vec<Value> = (0..terms)
        .map(|i| json!({"metadata.name": format!("nothing-{i}")}))
        .collect();
    json!({"query": {"$any": any}})
}
