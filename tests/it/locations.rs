//! Black-box: locations given by URL — static ones from `catalog.locations`,
//! registration over HTTP (catalog-import: register, dry run, conflicts,
//! refresh, delete), refusal of URLs outside the integrations, survival
//! across restarts, and the token that protects the write endpoints.

use crate::support::{FakeServer, TestApp, component, integration_config};
use bitbucket_catalogd::{location_entity_name, location_id};
use reqwest::Method;
use serde_json::{Value, json};

fn browse(fake: &FakeServer, project: &str, slug: &str, file: &str) -> String {
    format!(
        "{}/projects/{project}/repos/{slug}/browse/{file}",
        fake.server.uri()
    )
}

fn location_entity(name: &str, target: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\nspec:\n  target: {target}\n"
    )
}

/// PLAT/svc holds `svc` and a Location to `./more.yaml` (`more`); PLAT/other
/// holds `other`; PLAT/discovered is what the provider (if any) finds.
async fn fake_with_files() -> FakeServer {
    FakeServer::builder()
        .page_size(1000)
        .component("PLAT", "discovered")
        .file(
            "PLAT",
            "svc",
            "catalog-info.yaml",
            &format!(
                "{}---\n{}",
                component("svc"),
                location_entity("svc-more", "./more.yaml")
            ),
        )
        .file("PLAT", "svc", "more.yaml", &component("more"))
        .file("PLAT", "other", "catalog-info.yaml", &component("other"))
        .start()
        .await
}

fn with_provider(fake: &FakeServer) -> String {
    format!(
        "{}catalog:\n  providers:\n    bitbucketServer:\n      main:\n        host: {}\n",
        integration_config(fake),
        fake.host()
    )
}

async fn sorted_names(app: &TestApp) -> Vec<String> {
    let mut names = app.entity_names().await;
    names.sort();
    names
}

/// The sorted names of `entities` (none if it is not an array).
fn entity_names(entities: &Value) -> Vec<String> {
    let mut names = if entities.is_array() {
        crate::support::names(entities)
    } else {
        Vec::new()
    };
    names.sort();
    names
}

async fn targets(app: &TestApp) -> Vec<String> {
    app.get_json("/api/catalog/locations")
        .await
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["data"]["target"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn generated(target: &str) -> String {
    location_entity_name(target)
}

#[tokio::test]
async fn static_locations_are_read_like_a_provider_and_listed() {
    let fake = fake_with_files().await;
    let target = browse(&fake, "PLAT", "svc", "catalog-info.yaml");
    let yaml = format!(
        "{}catalog:\n  locations:\n    - type: url\n      target: {target}\n    - type: url\n      target: https://github.com/acme/x/blob/main/catalog-info.yaml\n    - type: file\n      target: ../examples/all.yaml\n",
        integration_config(&fake)
    );
    let app = TestApp::spawn(&yaml).await;
    let source = format!("location:{}", location_id(&target));
    let status = app.wait_for_run(&source, |_| true).await;
    assert_eq!(status["type"], "location");
    assert_eq!(status["origin"], "static");
    assert_eq!(status["target"], target);
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    let mut expected = vec![
        generated(&target),
        "more".into(),
        "svc".into(),
        "svc-more".into(),
    ];
    expected.sort();
    assert_eq!(sorted_names(&app).await, expected);

    // The generated Location entity, as Backstage's config locations make it.
    let location = app
        .get_json(&format!(
            "/api/catalog/entities/by-name/location/default/{}",
            generated(&target)
        ))
        .await;
    assert_eq!(location["spec"], json!({"type": "url", "target": target}));
    assert_eq!(
        location["metadata"]["annotations"]["backstage.io/managed-by-origin-location"],
        format!("url:{target}")
    );
    let svc = app
        .get_json("/api/catalog/entities/by-name/component/default/svc")
        .await;
    assert_eq!(
        svc["metadata"]["annotations"]["backstage.io/managed-by-origin-location"],
        format!("url:{target}")
    );

    assert_eq!(targets(&app).await, vec![target.clone()]);
    let one = app
        .get_json(&format!("/api/catalog/locations/{}", location_id(&target)))
        .await;
    assert_eq!(
        one,
        json!({"id": location_id(&target), "type": "url", "target": target,
               "entityRef": format!("location:default/{}", generated(&target))})
    );
    app.stop().await;
}

#[tokio::test]
async fn registering_dry_runs_conflicts_refresh_and_removal() {
    let fake = fake_with_files().await;
    let app = TestApp::spawn(&with_provider(&fake)).await;
    app.wait_for_run("main", |_| true).await;
    let target = browse(&fake, "PLAT", "svc", "catalog-info.yaml");
    let id = location_id(&target);
    let mut expected = vec![
        generated(&target),
        "more".into(),
        "svc".into(),
        "svc-more".into(),
    ];
    expected.sort();

    // A dry run reads but stores nothing.
    let (status, body) = app.register(&target, "?dryRun=true", None).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["exists"], false);
    assert_eq!(body["location"]["id"], id.as_str());
    assert_eq!(entity_names(&body["entities"]), expected);
    assert_eq!(sorted_names(&app).await, vec!["discovered"]);
    assert!(!targets(&app).await.contains(&target));

    let (status, body) = app.register(&target, "", None).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(
        body["location"],
        json!({"id": id, "type": "url", "target": target,
               "entityRef": format!("location:default/{}", generated(&target))})
    );
    assert_eq!(entity_names(&body["entities"]), expected);
    assert_eq!(body.get("exists"), None);
    let mut served = expected.clone();
    served.push("discovered".into());
    served.sort();
    assert_eq!(sorted_names(&app).await, served);
    let listed = targets(&app).await;
    assert!(listed.contains(&target), "{listed:?}");
    assert!(
        listed.contains(&browse(&fake, "PLAT", "discovered", "catalog-info.yaml")),
        "{listed:?}"
    );
    let providers = app.get_json("/api/catalog/providers").await;
    let registered = providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["locationId"] == id.as_str())
        .expect("the location is a source");
    assert_eq!(registered["origin"], "registered");
    assert_eq!(registered["entities"], 4);

    // Registering it again is a conflict, unless asked to refresh.
    let (status, body) = app.register(&target, "", None).await;
    assert_eq!(status, 409, "{body:#}");
    assert_eq!(body["error"]["name"], "ConflictError");
    assert_eq!(body["response"]["statusCode"], 409);
    let (status, body) = app.register(&target, "?dryRun=true", None).await;
    assert_eq!((status, &body["exists"]), (201, &json!(true)));
    let reads = fake.requests_to("/repos/svc/raw/catalog-info.yaml").await;
    let (status, body) = app.register(&target, "?onConflict=refresh", None).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(entity_names(&body["entities"]), expected);
    assert_eq!(
        fake.requests_to("/repos/svc/raw/catalog-info.yaml").await,
        reads + 1
    );
    // A file a provider discovers is not registered a second time.
    let discovered = browse(&fake, "PLAT", "discovered", "catalog-info.yaml");
    let (status, body) = app.register(&discovered, "", None).await;
    assert_eq!(status, 409, "{body:#}");

    // Deleting takes the location and exactly its entities away.
    let (status, body) = app.delete_location(&id).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(sorted_names(&app).await, vec!["discovered"]);
    assert!(!targets(&app).await.contains(&target));
    assert_eq!(
        app.get(&format!("/api/catalog/locations/{id}"))
            .await
            .status(),
        404
    );
    let (status, body) = app.delete_location(&id).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["name"], "NotFoundError");
    // A discovered location is not removable over HTTP.
    let (status, body) = app.delete_location(&location_id(&discovered)).await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not registered over HTTP"),
        "{body:#}"
    );
    app.stop().await;
}

#[tokio::test]
async fn urls_outside_the_integrations_are_refused_without_a_request() {
    let fake = fake_with_files().await;
    let elsewhere = FakeServer::start().await;
    elsewhere
        .mount_file("PLAT", "x", "catalog-info.yaml", &component("x"))
        .await;
    let outside = browse(&elsewhere, "PLAT", "x", "catalog-info.yaml");
    // A configured file whose Location points outside.
    fake.mount_file(
        "PLAT",
        "pointer",
        "catalog-info.yaml",
        &format!(
            "{}---\n{}",
            component("pointer"),
            location_entity("out", &outside)
        ),
    )
    .await;
    let app = TestApp::spawn(&integration_config(&fake)).await;

    let (status, body) = app.register(&outside, "", None).await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["error"]["name"], "InputError");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("is not a configured Bitbucket integration"),
        "{message}"
    );
    let (status, _) = app.register(&outside, "?dryRun=true", None).await;
    assert_eq!(status, 400);

    let pointer = browse(&fake, "PLAT", "pointer", "catalog-info.yaml");
    let (status, body) = app.register(&pointer, "", None).await;
    assert_eq!(status, 201, "{body:#}");
    // The Location stays; only its refused target is not read.
    assert_eq!(
        entity_names(&body["entities"]),
        vec![generated(&pointer), "out".into(), "pointer".into()]
    );
    assert_eq!(body["problems"][0]["kind"], "location", "{body:#}");
    assert!(
        elsewhere
            .server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );

    // Not a file, not a URL, not a url location, missing: nothing registered.
    for (input, expected) in [
        (
            json!({"type": "url", "target": format!("{}/projects/PLAT/repos/svc/browse", fake.server.uri())}),
            400,
        ),
        (json!({"type": "url", "target": "not a url"}), 400),
        (json!({"type": "file", "target": "/etc/passwd"}), 400),
        (json!({"type": "url"}), 400),
        (
            json!({"type": "url", "target": browse(&fake, "PLAT", "missing", "catalog-info.yaml")}),
            404,
        ),
    ] {
        let (status, body) = app
            .send(
                Method::POST,
                "/api/catalog/locations",
                Some(input.clone()),
                None,
            )
            .await;
        assert_eq!(status, expected, "{input}: {body:#}");
    }
    let (status, _) = app
        .send(
            Method::POST,
            "/api/catalog/locations?dryRun=maybe",
            Some(json!({"type": "url", "target": pointer})),
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(targets(&app).await, vec![pointer]);
    app.stop().await;
}

#[tokio::test]
async fn registered_locations_survive_a_restart_and_stay_gone_once_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.sqlite").display().to_string();
    let fake = fake_with_files().await;
    let yaml = integration_config(&fake);
    let target = browse(&fake, "PLAT", "other", "catalog-info.yaml");
    let source = format!("location:{}", location_id(&target));

    let first = TestApp::spawn_with_database(&yaml, &db).await;
    let (status, body) = first.register(&target, "", None).await;
    assert_eq!(status, 201, "{body:#}");
    first.stop().await;

    // Bitbucket is down now: the restarted daemon serves the stored
    // entities, lists the location, and its failing refresh keeps them.
    fake.fail_everything().await;
    let second = TestApp::spawn_with_database(&yaml, &db).await;
    let mut expected = vec![generated(&target), "other".to_owned()];
    expected.sort();
    assert_eq!(sorted_names(&second).await, expected);
    assert_eq!(targets(&second).await, vec![target.clone()]);
    let status = second
        .wait_for_run(&source, |s| s["lastRun"]["outcome"]["status"] == "failed")
        .await;
    assert_eq!(status["origin"], "registered");
    assert_eq!(sorted_names(&second).await, expected);
    let (status, _) = second.delete_location(&location_id(&target)).await;
    assert_eq!(status, 204);
    second.stop().await;

    let third = TestApp::spawn_with_database(&yaml, &db).await;
    third.assert_serves_nothing().await;
    third.stop().await;
}

#[tokio::test]
async fn write_endpoints_need_a_configured_static_token() {
    let fake = fake_with_files().await;
    let yaml = format!(
        "backend:\n  auth:\n    keys:\n      - secret: legacy\n    externalAccess:\n      - type: static\n        options:\n          token: full-access-token-1\n          subject: portal\n      - type: static\n        options:\n          token: import-only-token\n          subject: importer\n        accessRestrictions:\n          - plugin: catalog\n            permission: catalog.location.create\n{}",
        with_provider(&fake)
    );
    let app = TestApp::spawn(&yaml).await;
    let target = browse(&fake, "PLAT", "svc", "catalog-info.yaml");

    for token in [None, Some("wrong-token"), Some("full-access-token-12")] {
        let (status, body) = app.register(&target, "", token).await;
        assert_eq!(status, 401, "{token:?}: {body:#}");
        assert_eq!(body["error"]["name"], "AuthenticationError");
        assert_eq!(body["response"]["statusCode"], 401);
        assert_eq!(body["request"]["method"], "POST");
        assert!(!body.to_string().contains("full-access-token-1"), "{body}");
    }
    let raw = app
        .http
        .post(format!(
            "{}/api/catalog/providers/main/refresh",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    assert_eq!(raw.headers()["www-authenticate"], "Bearer");
    // Reads stay open.
    assert_eq!(app.get("/api/catalog/locations").await.status(), 200);
    assert_eq!(app.get("/api/catalog/entities").await.status(), 200);

    let (status, body) = app.register(&target, "", Some("import-only-token")).await;
    assert_eq!(status, 201, "{body:#}");
    let delete = format!("/api/catalog/locations/{}", location_id(&target));
    let (status, body) = app
        .send(Method::DELETE, &delete, None, Some("import-only-token"))
        .await;
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["error"]["name"], "NotAllowedError");
    let (status, _) = app.send(Method::DELETE, &delete, None, None).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .send(Method::DELETE, &delete, None, Some("full-access-token-1"))
        .await;
    assert_eq!(status, 204);
    let (status, body) = app
        .send(
            Method::POST,
            "/api/catalog/providers/main/refresh",
            None,
            Some("full-access-token-1"),
        )
        .await;
    assert_eq!(status, 202, "{body:#}");
    app.stop().await;
}

/// `@backstage/catalog-client`'s `updateLocation` then `getLocationById`:
/// a PUT to another target keeps the id, in the answer, in the list, and
/// across a restart; the old target can be registered again beside it.
#[tokio::test]
async fn a_location_pointed_elsewhere_keeps_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.sqlite").display().to_string();
    let fake = fake_with_files().await;
    let yaml = integration_config(&fake);
    let first_target = browse(&fake, "PLAT", "other", "catalog-info.yaml");
    let second_target = browse(&fake, "PLAT", "svc", "more.yaml");
    let id = location_id(&first_target);
    let path = format!("/api/catalog/locations/{id}");

    let app = TestApp::spawn_with_database(&yaml, &db).await;
    let (status, body) = app.register(&first_target, "", None).await;
    assert_eq!(status, 201, "{body:#}");
    let (status, body) = app
        .send(
            Method::PUT,
            &path,
            Some(json!({"type": "url", "target": second_target})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["id"], id.as_str(), "{body:#}");
    assert_eq!(body["target"], second_target.as_str());
    let found = app.get_json(&path).await;
    assert_eq!(found["id"], id.as_str(), "{found:#}");
    assert_eq!(found["target"], second_target.as_str());
    let mut expected = vec![generated(&second_target), "more".to_owned()];
    expected.sort();
    assert_eq!(sorted_names(&app).await, expected);
    let by_entity = app
        .get_json("/api/catalog/locations/by-entity/component/default/more")
        .await;
    assert_eq!(by_entity["id"], id.as_str(), "{by_entity:#}");

    // The old target registers again under an id of its own.
    let (status, body) = app.register(&first_target, "", None).await;
    assert_eq!(status, 201, "{body:#}");
    let again = body["location"]["id"].as_str().unwrap().to_owned();
    assert_ne!(again, id);
    app.stop().await;

    let restarted = TestApp::spawn_with_database(&yaml, &db).await;
    let found = restarted.get_json(&path).await;
    assert_eq!(found["target"], second_target.as_str(), "{found:#}");
    let found = restarted
        .get_json(&format!("/api/catalog/locations/{again}"))
        .await;
    assert_eq!(found["target"], first_target.as_str(), "{found:#}");
    let (status, _) = restarted.delete_location(&id).await;
    assert_eq!(status, 204);
    let mut expected = vec![generated(&first_target), "other".to_owned()];
    expected.sort();
    assert_eq!(sorted_names(&restarted).await, expected);
    restarted.stop().await;
}

/// A Cloud ref that climbs (`..%2F`) would make the REST call name another
/// resource with the integration's token; a CR/LF (raw, which URL parsing
/// drops, or `%0d%0a`) hides what is read. Both are refused, named, and
/// nothing is requested.
#[tokio::test]
async fn climbing_refs_and_control_characters_are_refused_by_name() {
    let cloud = crate::support::FakeCloud::start().await;
    cloud
        .mount_src(
            "acme",
            "svc",
            "main",
            "catalog-info.yaml",
            &component("svc"),
        )
        .await;
    let yaml = format!(
        "integrations:\n  bitbucketCloud:\n    - host: {}\n      apiBaseUrl: {}\n",
        cloud.host(),
        cloud.api_base()
    );
    let app = TestApp::spawn(&yaml).await;
    let web = cloud.web("acme", "svc");
    for (target, named) in [
        (
            format!("{web}/src/..%2F..%2Fother/catalog-info.yaml"),
            "climbs out",
        ),
        (
            format!("{web}/src/main%2F..%2F..%2F..%2Fx/catalog-info.yaml"),
            "climbs out",
        ),
        (
            format!("{web}/src/main/catalog-info.yaml%0d%0aX-A:%201"),
            "control character",
        ),
        (
            format!("{web}/src/main/catalog-info.yaml?at=main%0D%0A"),
            "control character",
        ),
        (
            format!("{web}/src/ma\r\nin/catalog-info.yaml"),
            "control character",
        ),
    ] {
        for query in ["", "?dryRun=true"] {
            let (status, body) = app.register(&target, query, None).await;
            assert_eq!(status, 400, "{target:?}: {body:#}");
            assert_eq!(body["error"]["name"], "InputError");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(named), "{target:?}: {message}");
            assert!(!message.contains(['\r', '\n']), "{message:?}");
        }
    }
    assert!(
        cloud.requests().await.is_empty(),
        "a refused URL was requested"
    );
    let (status, body) = app
        .register(&format!("{web}/src/main/catalog-info.yaml"), "", None)
        .await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(cloud.requests_to("/src/main/catalog-info.yaml").await, 1);
    app.stop().await;
}
