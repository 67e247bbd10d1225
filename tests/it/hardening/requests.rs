//! What an unauthenticated or careless API client can no longer do: costly
//! queries, metric label growth, open writes, odd names, oversized values; and
//! every error keeps Backstage's shape.

use super::*;

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
    let (answered, samples) = app
        .liveness_under_load(4, move |http| {
            let url = url.clone();
            async move {
                let mut answered = 0;
                for body in [wide_query(999), wide_query(20_000)] {
                    let response = http.post(&url).json(&body).send().await.unwrap();
                    let status = response.status();
                    assert!(
                        status == 200 || status == 400,
                        "{status}: {}",
                        response.text().await.unwrap_or_default()
                    );
                    answered += 1;
                }
                answered
            }
        })
        .await;
    assert!(answered > 4, "the hostile load ran ({answered} answers)");
    // Under 100 ms, allowing for a scheduling hiccup of a shared CI machine.
    let (p90, slowest) = (samples[26], samples[29]);
    assert!(
        p90 < Duration::from_millis(100) && slowest < Duration::from_millis(500),
        "liveness under query load: p90 {p90:?}, slowest {slowest:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn order_parameters_are_deduplicated_and_capped() {
    let (_fake, app) = big_catalog(3).await;
    // Thousands of one field: one key per entity, the same answer.
    let repeated = vec!["order=desc:metadata.name"; 2_000].join("&");
    let response = app
        .get(&format!(
            "/api/catalog/entities?{repeated}&fields=metadata.name"
        ))
        .await;
    assert_eq!(response.status(), 200);
    let names: Vec<Value> = response.json().await.unwrap();
    assert_eq!(
        names,
        vec![
            json!({"metadata": {"name": "c2"}}),
            json!({"metadata": {"name": "c1"}}),
            json!({"metadata": {"name": "c0"}}),
        ]
    );
    // More distinct fields than MAX_FIELDS (100): a Backstage-shaped 400.
    let distinct: Vec<String> = (0..101).map(|i| format!("order=asc:f{i}")).collect();
    let response = app
        .get(&format!("/api/catalog/entities?{}", distinct.join("&")))
        .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_backstage_error(&error, 400, "InputError");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("100"),
        "{error:#}"
    );
    app.stop().await;
}

// ---------------------------------------------------------------- 10: open writes

#[tokio::test]
async fn open_writes_are_capped_rate_limited_and_cannot_force() {
    let fake = FakeServer::builder().project("PLAT").start().await;
    for i in 0..8 {
        fake.mount_file(
            "LOC",
            &format!("r{i}"),
            "catalog-info.yaml",
            &component(&format!("r{i}")),
        )
        .await;
    }
    let yaml = format!(
        "{}  maxRegisteredLocations: 3\n  registrationsPerMinute: 5\n",
        server_config(&fake, "", "")
    );
    let app = TestApp::spawn(&yaml).await;
    let target = |i: usize| {
        format!(
            "{}/projects/LOC/repos/r{i}/browse/catalog-info.yaml",
            fake.server.uri()
        )
    };
    for i in 0..3 {
        let (status, body) = app.register(&target(i), "", None).await;
        assert_eq!(status, 201, "{body:#}");
    }
    let (status, body) = app.register(&target(3), "", None).await;
    assert_eq!(status, 403, "{body:#}");
    assert_backstage_error(&body, 403, "NotAllowedError");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("catalog.maxRegisteredLocations")
    );
    let mut limited = None;
    for i in 4..8 {
        let (status, body) = app.register(&target(i), "", None).await;
        if status == 429 {
            limited = Some(body);
            break;
        }
    }
    let limited = limited.expect("registrations are rate-limited");
    assert_backstage_error(&limited, 429, "TooManyRequestsError");
    assert_eq!(
        app.get_json("/api/catalog/locations")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Writes are open, but forcing past the deletion guard needs a token.
    let (status, body) = app
        .send(
            reqwest::Method::POST,
            "/api/catalog/providers/main/refresh?force=true",
            None,
            None,
        )
        .await;
    assert_eq!(status, 403, "{body:#}");
    assert_backstage_error(&body, 403, "NotAllowedError");
    let (status, _) = app
        .send(
            reqwest::Method::POST,
            "/api/catalog/providers/main/refresh",
            None,
            None,
        )
        .await;
    assert_eq!(status, 202);
    app.stop().await;
}

// ---------------------------------------------------------------- 12: names in location URLs

#[tokio::test]
async fn encoded_slashes_and_dot_segments_in_repository_names_are_refused() {
    let fake = FakeServer::builder().project("PLAT").start().await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;
    let web = fake.server.uri();
    let before = fake.server.received_requests().await.unwrap().len();
    for target in [
        format!("{web}/projects/PLAT%2F..%2F..%2Fadmin/repos/svc/browse/catalog-info.yaml"),
        format!("{web}/projects/PLAT/repos/%2E%2E/browse/catalog-info.yaml"),
        format!("{web}/users/%2E%2E/repos/svc/browse/catalog-info.yaml"),
        format!("{web}/projects/PLAT/repos/a%5Cb/browse/catalog-info.yaml"),
    ] {
        let (status, body) = app.register(&target, "", None).await;
        assert_eq!(status, 400, "{target}: {body:#}");
        assert_backstage_error(&body, 400, "InputError");
    }
    let after = fake.server.received_requests().await.unwrap().len();
    assert_eq!(after, before, "no request reached Bitbucket");
    app.stop().await;
}

// ---------------------------------------------------------------- 17: oversized values

#[tokio::test]
async fn oversized_values_are_not_repeated_in_full() {
    let fake = FakeServer::builder()
        .repo("PLAT", "huge")
        .repo("PLAT", "ok")
        .start()
        .await;
    let name = "n".repeat(600 * 1024);
    fake.mount_file("PLAT", "huge", "catalog-info.yaml", &component(&name))
        .await;
    fake.mount_file("PLAT", "ok", "catalog-info.yaml", &component("ok"))
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;
    assert_eq!(app.entity_names().await, vec!["ok".to_owned()]);
    let errors = app
        .get("/api/catalog/providers/main/errors")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        errors.contains("nnnnnnnn"),
        "the problem quotes the start: {}",
        &errors[..errors.len().min(500)]
    );
    assert!(
        errors.len() < 16 * 1024,
        "/errors is {} bytes",
        errors.len()
    );
    app.stop().await;
}

// ---------------------------------------------------------------- 20: error shapes, 409

#[tokio::test]
async fn every_error_has_backstages_shape_and_registrations_never_claim_others_entities() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["svc"]).await;
    fake.mount_file("LOC", "copy", "catalog-info.yaml", &component("svc"))
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["entities"] == 1).await;

    let big = format!(
        "{{\"query\": {{\"kind\": \"{}\"}}}}",
        "x".repeat(3 * 1024 * 1024)
    );
    let response = app
        .http
        .post(format!("{}/api/catalog/entities/by-query", app.address))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_backstage_error(&response.json().await.unwrap(), 413, "PayloadTooLargeError");

    // A 405 keeps its Allow header.
    let response = app
        .http
        .delete(format!("{}/api/catalog/entities", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let allow = response.headers().get("allow").cloned();
    assert_backstage_error(
        &response.json().await.unwrap(),
        405,
        "MethodNotAllowedError",
    );
    assert!(
        allow.is_some_and(|a| a.to_str().unwrap_or_default().contains("GET")),
        "no Allow header"
    );

    let response = app
        .get("/api/catalog/entities/by-name/component/default/%FF%FE")
        .await;
    assert_eq!(response.status(), 400);
    assert_backstage_error(&response.json().await.unwrap(), 400, "InputError");

    let target = format!(
        "{}/projects/LOC/repos/copy/browse/catalog-info.yaml",
        fake.server.uri()
    );
    let (status, body) = app.register(&target, "", None).await;
    assert_eq!(status, 409, "{body:#}");
    assert_backstage_error(&body, 409, "ConflictError");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("component:default/svc")
    );
    let locations = app.get_json("/api/catalog/locations").await;
    assert!(!locations.to_string().contains("/LOC/"), "{locations:#}");
    app.stop().await;
}
