//! Black-box: the catalog REST API's details that the JS client does not
//! exercise — Link headers, errors, predicates, uid lookups, status, metrics.

use crate::support::{FakeServer, TestApp, mount_mixed_catalog, names, server_config};
use serde_json::{Value, json};

async fn app() -> (FakeServer, TestApp) {
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |_| true).await;
    (fake, app)
}

#[tokio::test]
async fn filters_follow_backstage_semantics() {
    let (_fake, app) = app().await;
    let cases: &[(&str, &[&str])] = &[
        ("filter=kind=api", &["billing-api", "users-api"]),
        (
            "filter=KIND=Component,spec.type=service",
            &["billing", "payments", "search"],
        ),
        (
            "filter=kind=component,spec.type=service,spec.type=website",
            &["billing", "checkout", "payments", "search"],
        ),
        (
            "filter=metadata.tags=java&filter=kind=api",
            &["billing-api", "users-api", "billing", "ledger", "payments"],
        ),
        ("filter=metadata.tags.money", &["billing", "payments"]),
        ("filter=metadata.tags.go=true", &["search"]),
        ("filter=spec.definition", &["billing-api", "users-api"]),
        (
            "filter=relations.ownedby=group:default/team-a,kind=api",
            &["billing-api", "users-api"],
        ),
        ("filter=relations.ownedby=group:default/team-b", &[]),
        (
            "filter=metadata.namespace=default,kind=api",
            &["billing-api", "users-api"],
        ),
    ];
    for (query, expected) in cases {
        let got = app
            .get_json(&format!("/api/catalog/entities?{query}"))
            .await;
        assert_eq!(names(&got), *expected, "{query}");
    }
}

#[tokio::test]
async fn paging_follows_the_link_header_to_the_end() {
    let (_fake, app) = app().await;
    let mut url =
        "/api/catalog/entities?filter=kind%3Dcomponent&order=desc:metadata.name&limit=2".to_owned();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let response = app.get(&url).await;
        assert_eq!(response.status(), 200);
        let link = response
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        seen.extend(names(&response.json().await.unwrap()));
        match link {
            Some(link) => {
                assert!(link.ends_with(">; rel=\"next\""), "{link}");
                url = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned();
                assert!(
                    url.starts_with("/api/catalog/entities?") && url.contains("after="),
                    "{url}"
                );
            }
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec!["search", "payments", "ledger", "checkout", "billing"]
    );
}

#[tokio::test]
async fn bad_parameters_are_400_input_errors_in_backstage_shape() {
    let (_fake, app) = app().await;
    let cases = [
        (
            "/api/catalog/entities?limit=abc",
            "request/query/limit must be integer",
        ),
        (
            "/api/catalog/entities?limit=-1",
            "request/query/limit must be >= 0",
        ),
        (
            "/api/catalog/entities?limit=0",
            "Invalid limit, must be greater than zero",
        ),
        (
            "/api/catalog/entities?order=sideways:name",
            "Invalid order parameter \"sideways:name\", expected \"<asc or desc>:<field name>\"",
        ),
        (
            "/api/catalog/entities?filter=%3Dx",
            "Invalid filter, '=x' is not a valid statement (expected a string on the form a=b or a= or a)",
        ),
        (
            "/api/catalog/entities?fields=relations[0]",
            "Invalid field \"relations[0]\", array type fields are not supported",
        ),
        (
            "/api/catalog/entities?bogus=1",
            "Unknown query parameter 'bogus'",
        ),
        (
            "/api/catalog/entities?after=not-base64",
            "Malformed after cursor, could not be parsed",
        ),
        (
            "/api/catalog/entities/by-query?cursor=%21%21",
            "Malformed cursor",
        ),
        (
            "/api/catalog/entities/by-query?orderField=metadata.name,up",
            "Invalid order field order, must be asc or desc",
        ),
        (
            "/api/catalog/entities/by-query?totalItems=maybe",
            "Invalid totalItems parameter \"maybe\", expected one of: include, exclude",
        ),
        ("/api/catalog/entity-facets", "Missing facet parameter"),
    ];
    for (url, message) in cases {
        let response = app.get(url).await;
        assert_eq!(response.status(), 400, "{url}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{url}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["name"], "InputError", "{url}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(message),
            "{url}: {body}"
        );
        assert_eq!(body["request"]["method"], "GET");
        assert_eq!(body["request"]["url"], url);
        assert_eq!(body["response"]["statusCode"], 400);
    }
}

#[tokio::test]
async fn by_query_post_takes_a_predicate_and_keeps_it_in_the_cursor() {
    let (_fake, app) = app().await;
    let post = |body: Value| {
        let http = app.http.clone();
        let url = format!("{}/api/catalog/entities/by-query", app.address);
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let first = post(json!({
        "query": {"$all": [{"kind": "component"}, {"$not": {"spec.type": "library"}}, {"metadata.tags": {"$in": ["java", "react"]}}]},
        "orderBy": [{"field": "metadata.name", "order": "desc"}],
        "limit": 2,
        "fields": ["metadata.name"],
    }))
    .await;
    assert_eq!(first["totalItems"], 3);
    assert_eq!(
        first["items"],
        json!([{"metadata": {"name": "payments"}}, {"metadata": {"name": "checkout"}}])
    );
    let cursor = first["pageInfo"]["nextCursor"].as_str().unwrap().to_owned();
    use base64::Engine;
    let decoded: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(&cursor)
            .unwrap(),
    )
    .unwrap();
    assert!(
        decoded.get("query").is_some(),
        "POST cursors keep the predicate under `query`: {decoded}"
    );
    let second = post(json!({"cursor": cursor, "fields": ["metadata.name"]})).await;
    assert_eq!(second["items"], json!([{"metadata": {"name": "billing"}}]));
    assert!(second["pageInfo"].get("nextCursor").is_none());
    assert!(second["pageInfo"]["prevCursor"].is_string());

    // GET cursors never carry `query`, so the JS client stays on GET.
    let get = app
        .get_json("/api/catalog/entities/by-query?filter=kind%3Dcomponent&limit=1")
        .await;
    let decoded: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(get["pageInfo"]["nextCursor"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(decoded.get("query").is_none(), "{decoded}");
    assert_eq!(get["totalItems"], 5);
}

#[tokio::test]
async fn uids_are_stable_and_etags_follow_content() {
    let (fake, app) = app().await;
    let entity = app
        .get_json("/api/catalog/entities/by-name/component/default/billing")
        .await;
    let uid = entity["metadata"]["uid"].as_str().unwrap().to_owned();
    let etag = entity["metadata"]["etag"].as_str().unwrap().to_owned();
    let by_uid = app
        .get_json(&format!("/api/catalog/entities/by-uid/{uid}"))
        .await;
    assert_eq!(by_uid["metadata"]["name"], "billing");
    let missing = app.get("/api/catalog/entities/by-uid/nope").await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["message"], "No entity with uid nope");

    // Same content again: same uid and etag. Changed content: same uid, new etag.
    app.refresh("main", "").await;
    let again = app
        .get_json("/api/catalog/entities/by-name/component/default/billing")
        .await;
    assert_eq!(again["metadata"]["uid"], uid.as_str());
    assert_eq!(again["metadata"]["etag"], etag.as_str());

    fake.server.reset().await;
    let deprecated =
        crate::support::entity_doc("Component", "billing", "service", &["java", "money"])
            .replace("production", "deprecated");
    FakeServer::builder()
        .catalog("PLAT", "billing", &deprecated)
        .mount(&fake)
        .await;
    app.refresh("main", "").await;
    let changed_entity = app
        .get_json("/api/catalog/entities/by-name/component/default/billing")
        .await;
    assert_eq!(changed_entity["metadata"]["uid"], uid.as_str());
    assert_ne!(changed_entity["metadata"]["etag"], etag.as_str());
    assert_eq!(changed_entity["spec"]["lifecycle"], "deprecated");
}

#[tokio::test]
async fn provider_status_refresh_metrics_and_openapi() {
    let (fake, app) = app().await;
    let status = app.get_json("/api/catalog/providers/main").await;
    assert_eq!(status["type"], "bitbucketServer");
    assert_eq!(status["entities"], 7);
    assert!(status["nextRun"].is_string(), "{status}");
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    assert!(
        status["lastRun"]["startedAt"].is_string() && status["lastRun"]["finishedAt"].is_string()
    );

    let missing = app
        .http
        .post(format!(
            "{}/api/catalog/providers/nope/refresh",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("known providers: main")
    );

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for needle in [
        "catalog_provider_runs_total",
        "bitbucket_requests_total",
        "catalog_provider_entities",
        "catalog_provider_run_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics");
    }
    // Per integration host; the build; when each provider last succeeded.
    let host = format!("host=\"{}\"", fake.host());
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("bitbucket_requests_total{") && l.contains(&host)),
        "{host} missing from bitbucket_requests_total"
    );
    assert!(
        metrics.contains(&format!(
            "bitbucketcatalogd_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "build info missing"
    );
    let last_success = metrics
        .lines()
        .find(|l| {
            l.starts_with("catalog_provider_last_success_timestamp_seconds{provider=\"main\"}")
        })
        .expect("last success of main");
    let at: f64 = last_success.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - at).abs() < 120.0, "{last_success}");
    assert_eq!(status["lastRun"]["trigger"], "start-up", "{status}");
    app.get("/api/catalog/entities").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("http_server_request_duration_seconds_bucket"),
        "API latency missing"
    );

    let openapi = app.get_json("/api/catalog/openapi.json").await;
    assert_eq!(openapi["openapi"], "3.0.3");
    for path in [
        "/entities",
        "/entities/by-query",
        "/entities/by-refs",
        "/entity-facets",
        "/locations",
        "/providers/{id}/refresh",
        "/entities/by-name/{kind}/{namespace}/{name}/ancestry",
        "/locations/by-query",
        "/locations/by-entity/{kind}/{namespace}/{name}",
        "/validate-entity",
        "/analyze-location",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "{path} missing from openapi.json"
        );
    }
    for (path, method) in [
        ("/locations/{id}", "put"),
        ("/entities/by-uid/{uid}", "delete"),
        ("/entity-facets", "post"),
    ] {
        assert!(
            openapi["paths"][path].get(method).is_some(),
            "{method} {path} missing from openapi.json"
        );
    }
}

#[tokio::test]
async fn newer_operations_answer_with_backstages_semantics_and_errors() {
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    let app = TestApp::spawn(&crate::support::with_write_token(&server_config(
        &fake, "", "",
    )))
    .await;
    app.wait_for_run("main", |_| true).await;
    let url = |path: &str| format!("{}{path}", app.address);

    // Unknown routes and methods keep Backstage's error body.
    let response = app.get("/api/catalog/no-such-route").await;
    assert_eq!(response.status(), 404);
    crate::support::assert_backstage_error(&response.json().await.unwrap(), 404, "NotFoundError");
    let response = app
        .http
        .patch(url("/api/catalog/validate-entity"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    crate::support::assert_backstage_error(
        &response.json().await.unwrap(),
        405,
        "MethodNotAllowedError",
    );

    // validate-entity applies catalog.rules for the given location.
    let billing = fake_file(&fake, "PLAT", "billing");
    let group = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Group",
        "metadata": {"name": "team"}, "spec": {"type": "team", "children": []}});
    let response = app
        .http
        .post(url("/api/catalog/validate-entity"))
        .json(&json!({"entity": group, "location": format!("url:{billing}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "validate-entity reads Bitbucket with the daemon's credentials"
    );
    let response = app
        .http
        .post(url("/api/catalog/validate-entity"))
        .bearer_auth(crate::support::WRITE_TOKEN)
        .json(&json!({"entity": group, "location": format!("url:{billing}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{body:#}"
    );
    let response = app
        .http
        .post(url("/api/catalog/validate-entity"))
        .bearer_auth(crate::support::WRITE_TOKEN)
        .json(&json!({"entity": group, "location": "file:/etc/catalog.yaml"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["name"], "InputError", "{body:#}");

    // analyze-location never requests a host without an integration.
    for target in [
        "https://elsewhere.example.com/projects/P/repos/svc",
        "https://elsewhere.example.com/projects/P/repos/svc/browse/catalog-info.yaml",
        "not a url",
    ] {
        let response = app
            .http
            .post(url("/api/catalog/analyze-location"))
            .bearer_auth(crate::support::WRITE_TOKEN)
            .json(&json!({"location": {"type": "url", "target": target}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{target}");
        crate::support::assert_backstage_error(&response.json().await.unwrap(), 400, "InputError");
    }
    let response = app
        .http
        .post(url("/api/catalog/analyze-location"))
        .json(&json!({"location": {"type": "url", "target": billing}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "analyze-location is a write");

    // Locations by query: a bad cursor is a 400 InputError.
    let response = app
        .http
        .post(url("/api/catalog/locations/by-query"))
        .json(&json!({"cursor": "not base64!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    crate::support::assert_backstage_error(&response.json().await.unwrap(), 400, "InputError");

    // A discovered location cannot be changed over HTTP.
    let location = app
        .get_json("/api/catalog/locations/by-entity/component/default/billing")
        .await;
    assert_eq!(location["target"], billing.as_str());
    let response = app
        .http
        .put(url(&format!(
            "/api/catalog/locations/{}",
            location["id"].as_str().unwrap()
        )))
        .bearer_auth(crate::support::WRITE_TOKEN)
        .json(&json!({"type": "url", "target": fake_file(&fake, "PLAT", "checkout")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    crate::support::assert_backstage_error(&body, 404, "NotFoundError");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was not registered over HTTP"),
        "{body:#}"
    );

    // Removing by uid is a write; the entity's file siblings stay.
    let billing_entity = app
        .get_json("/api/catalog/entities/by-name/component/default/billing")
        .await;
    let uid = billing_entity["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .http
        .delete(url(&format!("/api/catalog/entities/by-uid/{uid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .http
        .delete(url(&format!("/api/catalog/entities/by-uid/{uid}")))
        .bearer_auth(crate::support::WRITE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let refs = app.entity_refs().await;
    assert!(!refs.contains("component:default/billing"), "{refs:?}");
    assert!(refs.contains("api:default/billing-api"), "{refs:?}");

    // It comes back when its repository is read and applied again.
    let response = app
        .http
        .post(url("/api/catalog/refresh"))
        .bearer_auth(crate::support::WRITE_TOKEN)
        .json(&json!({"entityRef": "api:default/billing-api"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !app
        .entity_refs()
        .await
        .contains("component:default/billing")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the removed entity never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}

fn fake_file(fake: &FakeServer, project: &str, slug: &str) -> String {
    format!(
        "{}/projects/{project}/repos/{slug}/browse/catalog-info.yaml",
        fake.server.uri()
    )
}
