//! Issue 30: the API's paces are config keys (`backend.apiRateLimit`),
//! checked, shown by `config check` and applied.

use reqwest::Method;
use serde_json::json;

use crate::support::{FakeServer, TestApp, run_on_config, server_config, text, write_config};

const PACES: &str = "backend:\n  apiRateLimit:\n    bitbucketReads:\n      perCaller: {perMinute: 1, burst: 1}\n    deletions: {perMinute: 1, burst: 1}\n";

async fn fake() -> FakeServer {
    ["a", "b", "c", "d"]
        .iter()
        .fold(FakeServer::builder(), |fake, slug| {
            fake.component("PLAT", slug)
        })
        .start()
        .await
}

#[tokio::test]
async fn configured_paces_apply_and_their_429_names_the_key() {
    let fake = fake().await;
    let app = TestApp::spawn(&format!("{}{PACES}", server_config(&fake, "", ""))).await;
    app.wait_for_run("main", |s| s["entities"] == 4).await;

    let refresh = |name: &str| json!({"entityRef": format!("component:default/{name}")});
    let (status, body) = app
        .send(
            Method::POST,
            "/api/catalog/refresh",
            Some(refresh("a")),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    let (status, body) = app
        .send(
            Method::POST,
            "/api/catalog/refresh",
            Some(refresh("b")),
            None,
        )
        .await;
    assert_eq!(status, 429, "{body:#}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("backend.apiRateLimit.bitbucketReads.perCaller")
            && message.contains("1 a minute, 1 at once"),
        "{message}"
    );

    let entities = app.get_json("/api/catalog/entities").await;
    let uids: Vec<String> = entities
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().expect("uid").to_owned())
        .collect();
    let delete = |uid: &str| format!("/api/catalog/entities/by-uid/{uid}");
    let (status, body) = app
        .send(Method::DELETE, &delete(&uids[0]), None, None)
        .await;
    assert_eq!(status, 204, "{body:#}");
    let (status, body) = app
        .send(Method::DELETE, &delete(&uids[1]), None, None)
        .await;
    assert_eq!(status, 429, "{body:#}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("backend.apiRateLimit.deletions"),
        "{message}"
    );
    app.stop().await;
}

#[tokio::test]
async fn config_check_shows_the_paces_refuses_zero_and_suggests_spellings() {
    let fake = fake().await;
    let (_dir, file) = write_config(&server_config(&fake, "", ""));
    let out = run_on_config(&["config", "check"], &file).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "backend.apiRateLimit: requests that read Bitbucket (refresh, validate-entity, analyze-location) 30 a minute, 10 at once per caller and 120 a minute, 20 at once overall; API removals 60 a minute, 10 at once"
        ),
        "{}",
        text(&out.stderr)
    );

    let (_dir, file) = write_config(&format!("{}{PACES}", server_config(&fake, "", "")));
    let out = run_on_config(&["config", "check"], &file).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("1 a minute, 1 at once per caller"),
        "{}",
        text(&out.stderr)
    );

    let zero = "backend:\n  apiRateLimit:\n    deletions: {perMinute: 0}\n";
    let (_dir, file) = write_config(&format!("{}{zero}", server_config(&fake, "", "")));
    let out = run_on_config(&["config", "check"], &file).await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("backend.apiRateLimit.deletions.perMinute"),
        "{}",
        text(&out.stderr)
    );

    let typo = "backend:\n  apiRateLimit:\n    deletons: {perMinute: 5}\n";
    let (_dir, file) = write_config(&format!("{}{typo}", server_config(&fake, "", "")));
    let out = run_on_config(&["config", "check"], &file).await;
    assert!(
        text(&out.stderr).contains("did you mean `deletions`"),
        "{}",
        text(&out.stderr)
    );
}
