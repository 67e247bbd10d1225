//! Issue 30: `validate-entity` ignored `targetScope` and quoted the file it
//! read in its 400. A location outside the provider's filters is refused
//! without a Bitbucket read, targets and placeholders keep to the
//! provider's `targetScope`, and no error quotes what was read.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{FakeServer, TestApp, component, server_config};

const SECRET_TEXT: &str = "Top Secret Value from Bitbucket";

/// A provider reading project PLAT only; OTHER holds a secret file.
async fn setup() -> (FakeServer, TestApp) {
    let fake = FakeServer::builder()
        .component("PLAT", "svc")
        .file("PLAT", "svc", "name.txt", SECRET_TEXT)
        .catalog("OTHER", "secret", &component("other"))
        .file("OTHER", "secret", "secret.txt", SECRET_TEXT)
        .start()
        .await;
    let config = server_config(&fake, "", "        filters:\n          projectKey: PLAT\n");
    let app = TestApp::spawn(&config).await;
    app.wait_for_run("main", |s| s["entities"] == 1).await;
    (fake, app)
}

fn browse(fake: &FakeServer, project: &str, slug: &str, path: &str) -> String {
    format!(
        "{}/projects/{project}/repos/{slug}/browse/{path}",
        fake.server.uri()
    )
}

async fn validate(app: &TestApp, entity: Value, location: &str) -> (u16, Value) {
    app.send(
        Method::POST,
        "/api/catalog/validate-entity",
        Some(json!({"entity": entity, "location": format!("url:{location}")})),
        None,
    )
    .await
}

fn entity(name: Value, description: Value) -> Value {
    json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
        "metadata": {"name": name, "description": description},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}})
}

#[tokio::test]
async fn a_location_outside_the_filters_is_refused_without_a_read() {
    let (fake, app) = setup().await;
    let before = fake.requests_to("").await;
    let outside = browse(&fake, "OTHER", "secret", "catalog-info.yaml");
    let (status, body) = validate(&app, entity(json!("fine"), json!("ok")), &outside).await;
    assert_eq!(status, 400, "{body:#}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("outside every provider's filters"),
        "{body:#}"
    );
    assert_eq!(fake.requests_to("").await, before, "no Bitbucket request");
    app.stop().await;
}

#[tokio::test]
async fn placeholders_keep_to_the_providers_target_scope() {
    let (fake, app) = setup().await;
    let inside = browse(&fake, "PLAT", "svc", "catalog-info.yaml");
    let secret = browse(&fake, "OTHER", "secret", "secret.txt");
    let before = fake.requests_to("/OTHER/repos/secret/raw/secret.txt").await;
    let (status, body) = validate(
        &app,
        entity(json!("fine"), json!({"$text": secret})),
        &inside,
    )
    .await;
    assert_eq!(status, 400, "{body:#}");
    assert!(body.to_string().contains("targetScope"), "{body:#}");
    assert!(!body.to_string().contains("Top Secret"), "{body:#}");
    assert_eq!(
        fake.requests_to("/OTHER/repos/secret/raw/secret.txt").await,
        before,
        "the file outside targetScope is not read"
    );
    app.stop().await;
}

#[tokio::test]
async fn errors_name_the_problem_and_file_but_never_quote_what_was_read() {
    let (fake, app) = setup().await;
    let inside = browse(&fake, "PLAT", "svc", "catalog-info.yaml");
    // Placeholders are filled in after the envelope check: a tag is
    // checked with them, and its message quotes the value found.
    let mut tagged = entity(json!("fine"), json!("ok"));
    tagged["metadata"]["tags"] = json!([{"$text": "./name.txt"}]);
    let (status, body) = validate(&app, tagged, &inside).await;
    assert_eq!(status, 400, "{body:#}");
    let shown = body.to_string();
    assert!(!shown.contains("Top Secret"), "{body:#}");
    assert!(
        shown.contains("entity problem") && shown.contains("catalog-info.yaml"),
        "{body:#}"
    );
    // What the caller sent is still quoted: it is theirs.
    let (status, body) = validate(&app, entity(json!("Not Valid!"), json!("ok")), &inside).await;
    assert_eq!(status, 400, "{body:#}");
    assert!(body.to_string().contains("Not Valid!"), "{body:#}");
    app.stop().await;
}
