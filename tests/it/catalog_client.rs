//! Compatibility: the real `@backstage/catalog-client` (npm) against the
//! spawned daemon, for every method it has (the script fails the test if
//! one is left uncalled). Needs
//! `npm ci --prefix tests/catalog-client` (the README's test command runs it).

use std::path::Path;

use crate::support::{
    FakeServer, TestApp, component, mount_mixed_catalog, node_json, server_config,
};
use serde_json::json;

#[tokio::test]
async fn backstage_catalog_client_works_against_the_daemon() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/catalog-client");
    assert!(
        dir.join("node_modules/@backstage/catalog-client").is_dir(),
        "@backstage/catalog-client is not installed: run `npm ci --prefix tests/catalog-client` (the README's test command does)"
    );
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    // Outside the provider's filter: only registering it brings it in.
    fake.mount_file("IMPORT", "svc", "catalog-info.yaml", &component("imported"))
        .await;
    let import = format!(
        "{}/projects/IMPORT/repos/svc/browse/catalog-info.yaml",
        fake.server.uri()
    );
    fake.mount_file(
        "IMPORT",
        "svc2",
        "catalog-info.yaml",
        &component("imported2"),
    )
    .await;
    let moved = format!(
        "{}/projects/IMPORT/repos/svc2/browse/catalog-info.yaml",
        fake.server.uri()
    );
    // No catalog file: analyze-location suggests one.
    let bare = format!("{}/projects/IMPORT/repos/New_Repo", fake.server.uri());
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |_| true).await;

    let out = node_json(
        dir,
        vec![
            "compat.mjs".into(),
            app.address.clone(),
            import.clone(),
            moved.clone(),
            bare.clone(),
        ],
    )
    .await;

    assert_eq!(
        out["getEntities"],
        json!([
            "billing-api",
            "users-api",
            "billing",
            "checkout",
            "ledger",
            "payments",
            "search"
        ])
    );
    assert_eq!(
        out["getEntitiesFiltered"],
        json!(["users-api", "search", "payments", "billing-api", "billing"])
    );
    let location = |project: &str, slug: &str| {
        format!(
            "url:{}/projects/{project}/repos/{slug}/browse/catalog-info.yaml",
            fake.server.uri()
        )
    };
    assert_eq!(
        out["getEntitiesFields"],
        json!([
            {"metadata": {"name": "checkout", "annotations": {"backstage.io/managed-by-location": location("PLAT", "checkout")}}},
            {"metadata": {"name": "ledger", "annotations": {"backstage.io/managed-by-location": location("PAY", "ledger")}}},
        ])
    );
    assert_eq!(out["queryTotal"], 5);
    assert_eq!(
        out["queryPages"],
        json!([["billing", "checkout"], ["ledger", "payments"], ["search"]])
    );
    assert_eq!(out["queryPrevious"], json!(["ledger", "payments"]));
    assert_eq!(out["queryFullText"], json!(["billing-api", "billing"]));
    assert_eq!(
        out["streamEntities"],
        json!([
            "billing-api",
            "users-api",
            "billing",
            "checkout",
            "ledger",
            "payments",
            "search"
        ])
    );
    assert_eq!(
        out["getEntitiesByRefs"],
        json!(["Component:billing", null, "API:billing-api"])
    );
    assert_eq!(out["getEntityByRef"], "billing");
    assert_eq!(out["getEntityByRefObject"], "billing");
    assert_eq!(out["getEntityByRefMissing"], true);
    assert_eq!(out["refreshEntity"], "ok");
    assert_eq!(
        out["refreshEntityMissing"],
        json!({"name": "ResponseError", "status": 404})
    );
    // The refresh re-read billing's file, and no other.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fake
        .requests_to("/repos/billing/raw/catalog-info.yaml")
        .await
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "refreshEntity read nothing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        fake.requests_to("/repos/checkout/raw/catalog-info.yaml")
            .await,
        1
    );
    assert_eq!(
        out["getEntityFacets"],
        json!({
            "kind": [{"value": "API", "count": 2}, {"value": "Component", "count": 5}],
            "spec.type": [{"value": "library", "count": 1}, {"value": "openapi", "count": 2}, {"value": "service", "count": 3}, {"value": "website", "count": 1}],
        })
    );
    let mut locations: Vec<String> = [
        ("PAY", "ledger"),
        ("PAY", "payments"),
        ("PAY", "search"),
        ("PLAT", "billing"),
        ("PLAT", "checkout"),
        ("PLAT", "users"),
    ]
    .iter()
    .map(|(p, s)| location(p, s).trim_start_matches("url:").to_owned())
    .collect();
    locations.sort();
    assert_eq!(out["getLocations"], json!(locations));
    assert!(
        out["getLocationById"]
            .as_str()
            .is_some_and(|t| locations.contains(&t.to_owned()))
    );
    assert_eq!(out["getLocationByIdMissing"], true);
    assert_eq!(
        out["badFilter"],
        json!({"name": "ResponseError", "status": 400})
    );
    assert_eq!(
        out["addLocationDryRun"],
        json!({"exists": false, "target": import, "kinds": ["Location", "Component"]})
    );
    assert_eq!(
        out["addLocation"],
        json!({"target": import, "kinds": ["Location", "Component"]})
    );
    assert_eq!(out["afterAdd"], "imported");
    assert_eq!(out["afterAddLocation"], import.as_str());
    assert_eq!(
        out["addAgain"],
        json!({"name": "ResponseError", "status": 409})
    );
    assert_eq!(out["afterRemove"], true);

    assert_eq!(
        out["uncalled"],
        json!([]),
        "every CatalogClient method is called"
    );
    assert!(out["methods"].as_u64().unwrap() >= 23, "{}", out["methods"]);
    assert_eq!(
        out["getEntityFacetsByPredicate"],
        json!({"spec.type": [{"value": "library", "count": 1}, {"value": "service", "count": 3}]})
    );
    assert_eq!(
        out["queryEntitiesByPredicate"],
        json!(["billing", "payments"])
    );
    assert_eq!(out["getEntityByName"], "checkout");
    assert_eq!(
        out["getEntityAncestors"],
        json!({"root": "component:default/billing", "items": [["billing", []]]})
    );
    let billing_file = location("PLAT", "billing")
        .trim_start_matches("url:")
        .to_owned();
    assert_eq!(out["getLocationByEntity"], billing_file.as_str());
    assert_eq!(out["getLocationByEntityMissing"], true);
    assert_eq!(out["getLocationByRef"], billing_file.as_str());
    assert_eq!(out["validateEntityValid"], json!({"valid": true}));
    assert_eq!(out["validateEntityServed"], false);
    assert_eq!(
        out["validateEntityInvalid"],
        json!({"valid": false, "names": ["InputError"], "mentionsName": true})
    );
    assert_eq!(
        out["queryLocations"],
        json!({"total": 6, "first": 4, "next": "string"})
    );
    assert_eq!(out["streamLocations"], json!(locations));
    // The registered file came through its generated Location entity.
    assert_eq!(
        out["importedAncestry"],
        json!([["Component", 1], ["Location", 0]])
    );
    assert_eq!(
        out["analyzeRegistered"],
        json!([["imported", true, import]])
    );
    assert_eq!(
        out["updateLocation"],
        json!({"target": moved, "idChanged": false, "found": moved})
    );
    assert_eq!(out["afterUpdate"], json!({"old": true, "now": "imported2"}));
    assert_eq!(
        out["analyzeBare"],
        json!({
            "existingEntityFiles": [],
            "generateEntities": [{
                "entity": {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "New_Repo"}, "spec": {"type": "other", "lifecycle": "unknown"}},
                "fields": [{"field": "spec.owner", "state": "needsUserInput", "value": null, "description": "The group or user that owns this component"}],
            }],
        })
    );
    assert_eq!(out["removeEntityByUid"], true);
    assert_eq!(
        out["removeEntityByUidAgain"],
        json!({"name": "ResponseError", "status": 404})
    );
    app.stop().await;
}
