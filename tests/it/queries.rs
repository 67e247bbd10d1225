//! Sorted by-query pages and facets come from indexes kept as entities
//! change: after a repository is added, changed and removed, every page
//! and count matches what the full list says. Large by-query answers are
//! streamed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{FakeServer, TestApp, big_catalog, server_config};

const MANUAL: &str = "        schedule:\n          frequency: { trigger: manual }\n";

/// An entity of `kind` with `spec.type`, tags and, when given, a
/// lifecycle (Resources may have none).
fn doc(kind: &str, name: &str, spec_type: &str, tags: &[&str], lifecycle: Option<&str>) -> String {
    let mut lifecycle = lifecycle
        .map(|l| format!("  lifecycle: {l}\n"))
        .unwrap_or_default();
    if kind == "API" {
        lifecycle.push_str("  definition: \"openapi: 3.0.0\"\n");
    }
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n  tags: [{}]\nspec:\n  type: {spec_type}\n  owner: team-a\n{lifecycle}",
        tags.join(", ")
    )
}

/// The repositories of `files`, each with its catalog file.
async fn serve(fake: &FakeServer, files: &[(&str, String)]) {
    fake.server.reset().await;
    let mut builder = FakeServer::builder();
    for (slug, body) in files {
        builder = builder.catalog("PLAT", slug, body);
    }
    builder.mount(fake).await;
}

/// Every served entity, from the unfiltered list (no index involved).
async fn everything(app: &TestApp) -> Vec<Value> {
    app.get_json("/api/catalog/entities")
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn entity_ref(e: &Value) -> String {
    format!(
        "{}:{}/{}",
        e["kind"].as_str().unwrap(),
        e["metadata"]["namespace"].as_str().unwrap_or("default"),
        e["metadata"]["name"].as_str().unwrap()
    )
    .to_lowercase()
}

/// The refs Backstage's order gives: values (lowercased) in `desc` or not,
/// ties by ref the same way, entities without a value last.
fn expected_order(
    all: &[Value],
    pointer: &str,
    desc: bool,
    keep: &dyn Fn(&Value) -> bool,
) -> Vec<String> {
    let mut keyed: Vec<(Option<String>, String)> = all
        .iter()
        .filter(|e| keep(e))
        .map(|e| {
            let value = e
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_lowercase);
            (value, entity_ref(e))
        })
        .collect();
    keyed.sort_by(|(va, ra), (vb, rb)| match (va, vb) {
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        _ if desc => (vb, rb).cmp(&(va, ra)),
        _ => (va, ra).cmp(&(vb, rb)),
    });
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// Every page of a by-query walked with its next cursors: the refs, and
/// the total the first page gave.
async fn walk(app: &TestApp, query: &str) -> (Vec<String>, u64) {
    let mut page = app
        .get_json(&format!("/api/catalog/entities/by-query?limit=2&{query}"))
        .await;
    let total = page["totalItems"].as_u64().unwrap();
    let mut refs = Vec::new();
    for _ in 0..50 {
        refs.extend(page["items"].as_array().unwrap().iter().map(entity_ref));
        let Some(cursor) = page["pageInfo"]["nextCursor"].as_str() else {
            return (refs, total);
        };
        let cursor: String = url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
        page = app
            .get_json(&format!(
                "/api/catalog/entities/by-query?limit=2&cursor={cursor}"
            ))
            .await;
    }
    panic!("{query}: more pages than entities");
}

/// `{value: count}` of one facet in an `entity-facets` answer.
fn facet(answer: &Value, name: &str) -> BTreeMap<String, u64> {
    answer["facets"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap().to_owned(),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn counted(all: &[Value], pointer: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for e in all {
        let mut values: Vec<String> = match e.pointer(pointer) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => vec![],
        };
        values.dedup();
        for v in values {
            *counts.entry(v).or_default() += 1;
        }
    }
    counts
}

/// A by-query, the field it orders by (a JSON pointer), descending or
/// not, and which entities it keeps.
type Case<'a> = (&'a str, &'a str, bool, &'a dyn Fn(&Value) -> bool);

/// The sorted pages and facets agree with the full list.
async fn check(app: &TestApp, stage: &str) {
    let all = everything(app).await;
    let component = |e: &Value| e["kind"] == "Component";
    let cases: [Case<'_>; 6] = [
        (
            "orderField=metadata.name,asc",
            "/metadata/name",
            false,
            &|_| true,
        ),
        (
            "orderField=metadata.name,desc",
            "/metadata/name",
            true,
            &|_| true,
        ),
        (
            "orderField=spec.lifecycle,asc",
            "/spec/lifecycle",
            false,
            &|_| true,
        ),
        (
            "orderField=spec.lifecycle,desc",
            "/spec/lifecycle",
            true,
            &|_| true,
        ),
        (
            "orderField=metadata.name,asc&filter=kind=component",
            "/metadata/name",
            false,
            &component,
        ),
        (
            "orderField=spec.type,desc&filter=kind=component",
            "/spec/type",
            true,
            &component,
        ),
    ];
    for (query, pointer, desc, keep) in cases {
        let (refs, total) = walk(app, query).await;
        let expected = expected_order(&all, pointer, desc, keep);
        assert_eq!(refs, expected, "{stage}: {query}");
        assert_eq!(
            total as usize,
            expected.len(),
            "{stage}: {query} totalItems"
        );
    }
    let facets = app
        .get_json("/api/catalog/entity-facets?facet=spec.type&facet=metadata.tags&facet=kind")
        .await;
    assert_eq!(
        facet(&facets, "spec.type"),
        counted(&all, "/spec/type"),
        "{stage}"
    );
    assert_eq!(
        facet(&facets, "metadata.tags"),
        counted(&all, "/metadata/tags"),
        "{stage}"
    );
    assert_eq!(facet(&facets, "kind"), counted(&all, "/kind"), "{stage}");
}

#[tokio::test]
async fn sorted_pages_and_facets_follow_one_repository_changes() {
    let fake = FakeServer::start().await;
    let mut files = vec![
        (
            "alpha",
            doc(
                "Component",
                "alpha",
                "service",
                &["java", "web"],
                Some("production"),
            ),
        ),
        ("bravo", doc("Resource", "Bravo", "website", &["web"], None)),
        (
            "charlie",
            doc("API", "charlie", "openapi", &["java"], Some("experimental")),
        ),
        (
            "delta",
            doc("Component", "delta", "service", &[], Some("Production")),
        ),
        (
            "echo",
            doc("Resource", "echo", "database", &["people"], None),
        ),
    ];
    serve(&fake, &files).await;
    // Resources, which may have no lifecycle, allowed besides the defaults.
    let config = format!(
        "{}  rules:\n    - allow: [Component, API, Resource, Location]\n",
        server_config(&fake, "", MANUAL)
    );
    let app = TestApp::spawn(&config).await;
    let status = app.refresh("main", "").await;
    assert_eq!(everything(&app).await.len(), 5, "{status:#}");
    check(&app, "first read").await;

    // One repository added, one changed (new type, tags and lifecycle, a
    // name that sorts elsewhere), one removed.
    files.push((
        "foxtrot",
        doc(
            "Component",
            "Aardvark",
            "library",
            &["rust"],
            Some("experimental"),
        ),
    ));
    files[0] = (
        "alpha",
        doc(
            "Component",
            "alpha",
            "library",
            &["rust", "web"],
            Some("deprecated"),
        ),
    );
    files.retain(|(slug, _)| *slug != "charlie");
    serve(&fake, &files).await;
    app.refresh("main", "").await;
    let all = everything(&app).await;
    assert_eq!(all.len(), 5);
    assert!(all.iter().any(|e| e["metadata"]["name"] == "Aardvark"));
    assert!(!all.iter().any(|e| e["metadata"]["name"] == "charlie"));
    check(&app, "after add, change and remove").await;
    let facets = app
        .get_json("/api/catalog/entity-facets?facet=spec.type")
        .await;
    assert_eq!(
        facet(&facets, "spec.type"),
        BTreeMap::from([
            ("library".to_owned(), 2),
            ("database".to_owned(), 1),
            ("service".to_owned(), 1),
            ("website".to_owned(), 1)
        ]),
        "openapi left with charlie"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_by_query_pages_are_streamed() {
    let (_fake, app) = big_catalog(1000).await;
    let get = app
        .get("/api/catalog/entities/by-query?limit=1000&orderField=metadata.name,desc")
        .await;
    let post = app
        .http
        .post(format!("{}/api/catalog/entities/by-query", app.address))
        .json(&json!({"limit": 1000, "query": {"kind": "component"}}))
        .send()
        .await
        .unwrap();
    for (what, response) in [("GET", get), ("POST", post)] {
        assert_eq!(response.status(), 200, "{what}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{what}"
        );
        // Written as produced: the length is not known before the end.
        assert!(
            response.headers().get("content-length").is_none(),
            "{what} by-query was built whole before it was sent"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["items"].as_array().unwrap().len(), 1000, "{what}");
        assert_eq!(body["totalItems"], 1000, "{what}");
        assert!(body["pageInfo"].is_object(), "{what}");
    }
    app.stop().await;
}
