//! Issue 30, safe by default: writes closed without a token, removals
//! through the API under the deletion guard, requests that cost Bitbucket
//! requests paced, `validate` bounded.

use reqwest::Method;

use crate::support::{
    FakeServer, OPEN_WRITES, TestApp, assert_backstage_error, run_on_config, server_config, text,
    write_config,
};

/// Without `backend.auth` every write answers 401 and says how to open
/// it; reads stay open.
#[tokio::test]
async fn writes_are_closed_without_backend_auth() {
    let fake = FakeServer::builder().start().await;
    let app =
        TestApp::spawn_with_env(&server_config(&fake, "", ""), &[(OPEN_WRITES, "false")]).await;
    let writes = [
        (Method::DELETE, "/api/catalog/entities/by-uid/anything"),
        (Method::POST, "/api/catalog/providers/main/refresh"),
        (Method::POST, "/api/catalog/refresh"),
        (Method::POST, "/api/catalog/locations"),
        (Method::DELETE, "/api/catalog/locations/anything"),
        (Method::POST, "/api/catalog/analyze-location"),
        (Method::POST, "/api/catalog/validate-entity"),
    ];
    for (method, path) in writes {
        let body = serde_json::json!({"type": "url", "target": "https://example.com/x.yaml", "entityRef": "component:default/x", "location": "url:https://example.com/x.yaml", "entity": {}});
        let (status, answer) = app.send(method.clone(), path, Some(body), None).await;
        assert_eq!(status, 401, "{method} {path}: {answer:#}");
        assert_backstage_error(&answer, 401, "AuthenticationError");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("backend.auth.externalAccess")
                && message.contains("dangerouslyDisableDefaultAuthPolicy"),
            "{message}"
        );
    }
    assert_eq!(app.get("/api/catalog/entities").await.status(), 200);
    app.stop().await;
}

/// The explicit, loudly named opening lets writes through without a
/// token, and `config check` says so.
#[tokio::test]
async fn the_named_setting_opens_writes_and_config_check_says_so() {
    let fake = FakeServer::builder().start().await;
    let yaml = format!(
        "{}backend:\n  auth:\n    dangerouslyDisableDefaultAuthPolicy: true\n",
        server_config(&fake, "", "")
    );
    let app = TestApp::spawn(&yaml).await;
    let (status, body) = app
        .send(
            Method::POST,
            "/api/catalog/providers/main/refresh",
            None,
            None,
        )
        .await;
    assert_eq!(status, 202, "{body:#}");
    app.stop().await;

    let (_dir, file) = write_config(&yaml);
    let out = run_on_config(&["config", "check"], &file).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("are OPEN to anyone"),
        "{}",
        text(&out.stderr)
    );
    let (_dir, file) = write_config(&server_config(&fake, "", ""));
    let out = run_on_config(&["config", "check"], &file).await;
    assert!(
        text(&out.stderr).contains("are closed"),
        "{}",
        text(&out.stderr)
    );
}

/// The simulator's fragment (the README's quick start) opens writes.
#[tokio::test]
async fn the_simulator_fragment_opens_writes_for_the_quick_start() {
    let sim = crate::support::sim::components_simulator(1, 1).await;
    let (_dir, file) = write_config(&sim.app_config_snippet());
    let out = run_on_config(&["config", "check"], &file).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("are OPEN to anyone"),
        "{}",
        text(&out.stderr)
    );
}
