//! Catalog files the fakes serve.

use serde_json::Value;

use super::server::FakeServer;

/// A one-document catalog file for a component.
pub fn component(name: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
    )
}

/// An entity file for `kind` with `spec.type`.
pub fn entity_doc(kind: &str, name: &str, spec_type: &str, tags: &[&str]) -> String {
    let extra = if kind == "API" {
        "  definition: \"openapi: 3.0.0\"\n"
    } else {
        ""
    };
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n  tags: [{}]\nspec:\n  type: {spec_type}\n  lifecycle: production\n  owner: team-a\n{extra}",
        tags.join(", ")
    )
}

/// A small but varied catalog: 5 components, 2 APIs in 6 files over two
/// projects (one file holds two documents).
pub async fn mount_mixed_catalog(fake: &FakeServer) {
    fake.mount_projects(&["PAY", "PLAT"], 25).await;
    fake.mount_repos(
        "PLAT",
        &[("billing", false), ("checkout", false), ("users", false)],
        25,
    )
    .await;
    fake.mount_repos(
        "PAY",
        &[("payments", false), ("ledger", false), ("search", false)],
        25,
    )
    .await;
    let billing = format!(
        "{}---\n{}",
        entity_doc("Component", "billing", "service", &["java", "money"]),
        entity_doc("API", "billing-api", "openapi", &[])
    );
    fake.mount_file("PLAT", "billing", "catalog-info.yaml", &billing)
        .await;
    fake.mount_file(
        "PLAT",
        "checkout",
        "catalog-info.yaml",
        &entity_doc("Component", "checkout", "website", &["react"]),
    )
    .await;
    fake.mount_file(
        "PLAT",
        "users",
        "catalog-info.yaml",
        &entity_doc("API", "users-api", "openapi", &[]),
    )
    .await;
    fake.mount_file(
        "PAY",
        "payments",
        "catalog-info.yaml",
        &entity_doc("Component", "payments", "service", &["java", "money"]),
    )
    .await;
    fake.mount_file(
        "PAY",
        "ledger",
        "catalog-info.yaml",
        &entity_doc("Component", "ledger", "library", &["java"]),
    )
    .await;
    fake.mount_file(
        "PAY",
        "search",
        "catalog-info.yaml",
        &entity_doc("Component", "search", "service", &["go"]),
    )
    .await;
}

/// The `metadata.name` of each entity in a JSON array of entities.
pub fn names(entities: &Value) -> Vec<String> {
    entities
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            e["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}
