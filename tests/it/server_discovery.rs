//! Black-box: the real daemon against a wiremock Bitbucket Server.

use crate::support::{FakeServer, TestApp, component, server_config};
use serde_json::Value;

/// A Bitbucket with paging everywhere, filters to apply, an archived repo,
/// a missing file, a multi-document file and a broken one.
async fn populated_fake(fake: &FakeServer) {
    fake.mount_projects(&["PLAT", "PAY", "OLD", "~ALICE"], 2)
        .await;
    fake.mount_repos(
        "PLAT",
        &[
            ("api-gateway", false),
            ("auth-service", false),
            ("legacy-service", true),
            ("docs", false),
            ("no-catalog-service", false),
        ],
        2,
    )
    .await;
    fake.mount_repos(
        "PAY",
        &[("billing-service", false), ("broken-service", false)],
        1,
    )
    .await;
    fake.mount_repos("~ALICE", &[("scratch-service", false)], 1000)
        .await;
    fake.mount_file(
        "PLAT",
        "api-gateway",
        "catalog-info.yaml",
        &component("api-gateway"),
    )
    .await;
    fake.mount_file("PLAT", "auth-service", "catalog-info.yaml", &format!("{}---\n{}", component("auth-service"), "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: auth-api\nspec:\n  type: openapi\n  lifecycle: production\n  owner: team-a\n  definition: x\n")).await;
    fake.mount_file(
        "PLAT",
        "legacy-service",
        "catalog-info.yaml",
        &component("legacy-service"),
    )
    .await;
    fake.mount_file("PLAT", "docs", "catalog-info.yaml", &component("docs"))
        .await;
    fake.mount_file(
        "PAY",
        "billing-service",
        "catalog-info.yaml",
        &component("billing-service"),
    )
    .await;
    fake.mount_file(
        "PAY",
        "broken-service",
        "catalog-info.yaml",
        "apiVersion: [unclosed\n",
    )
    .await;
    fake.mount_file(
        "~ALICE",
        "scratch-service",
        "catalog-info.yaml",
        &component("scratch"),
    )
    .await;
    // OLD's repositories are never listed: the project filter drops it.
}

#[tokio::test]
async fn discovers_exactly_the_entities_of_repos_that_pass_the_filters() {
    let fake = FakeServer::start().await;
    populated_fake(&fake).await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        filters:\n          projectKey: 'PLAT|PAY|ALICE'\n          repoSlug: service|gateway\n          skipArchivedRepos: true\n",
    ))
    .await;

    let status = app.wait_for_run("main", |_| true).await;
    let run = &status["lastRun"];
    assert_eq!(run["outcome"]["status"], "succeeded", "{status:#}");
    assert_eq!(run["projectsSeen"], 4);
    assert_eq!(run["reposSeen"], 8);
    // docs (slug filter) and legacy-service (archived) are dropped.
    assert_eq!(run["reposMatched"], 6);
    assert_eq!(run["filesFound"], 5);
    assert_eq!(run["entities"], 5);
    // 1 project page per 2 keys (2) + PLAT 3 + PAY 2 + ~ALICE 1 + 6 files.
    assert_eq!(run["requests"], 14);

    let mut names = app.entity_names().await;
    names.sort();
    assert_eq!(
        names,
        vec![
            "api-gateway",
            "auth-api",
            "auth-service",
            "billing-service",
            "scratch"
        ]
    );

    let problems = run["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0]["kind"], "parse");
    assert!(
        problems[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/projects/PAY/repos/broken-service/browse/catalog-info.yaml")
    );

    // The filtered-out repos' files were never requested.
    assert_eq!(
        fake.requests_to("/repos/docs/raw/catalog-info.yaml").await,
        0
    );
    assert_eq!(
        fake.requests_to("/repos/legacy-service/raw/catalog-info.yaml")
            .await,
        0
    );
    assert_eq!(fake.requests_to("/projects/OLD/repos").await, 0);
    // Personal projects (~USER) are listed like any other.
    assert_eq!(fake.requests_to("/projects/~ALICE/repos").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn entities_carry_their_location() {
    let fake = FakeServer::builder().component("PLAT", "svc").start().await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |_| true).await;

    let entity = app
        .get_json("/api/catalog/entities/by-name/component/default/svc")
        .await;
    let expected = format!(
        "url:{}/projects/PLAT/repos/svc/browse/catalog-info.yaml",
        fake.server.uri()
    );
    assert_eq!(
        entity["metadata"]["annotations"]["backstage.io/managed-by-location"],
        expected.as_str()
    );
    assert_eq!(
        entity["metadata"]["annotations"]["backstage.io/managed-by-origin-location"],
        expected.as_str()
    );
    assert_eq!(entity["metadata"]["namespace"], "default");
    assert_eq!(entity["spec"]["owner"], "team-a");
    app.stop().await;
}

#[tokio::test]
async fn a_configured_branch_is_read_and_shown_in_the_location() {
    let fake = FakeServer::builder().repo("PLAT", "svc").start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path(
            "/rest/api/1.0/projects/PLAT/repos/svc/raw/catalog/info.yaml",
        ))
        .and(wiremock::matchers::query_param("at", "release/2.0"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string(component("svc")))
        .mount(&fake.server)
        .await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        catalogPath: catalog/info.yaml\n        filters:\n          branch: release/2.0\n",
    ))
    .await;
    let status = app.wait_for_run("main", |_| true).await;
    assert_eq!(status["lastRun"]["entities"], 1, "{status:#}");
    let entity = app
        .get_json("/api/catalog/entities/by-name/Component/default/svc")
        .await;
    let location = entity["metadata"]["annotations"]["backstage.io/managed-by-location"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        location.ends_with("/repos/svc/browse/catalog/info.yaml?at=release%2F2.0"),
        "{location}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bearer_token_is_sent() {
    let fake = FakeServer::builder()
        .authorization("Bearer s3cret-token")
        .component("PLAT", "svc")
        .start()
        .await;
    let app = TestApp::spawn(&server_config(&fake, "      token: s3cret-token\n", "")).await;
    let status = app.wait_for_run("main", |_| true).await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    assert_eq!(app.entity_names().await, vec!["svc"]);
    assert!(!status.to_string().contains("s3cret-token"));
    app.stop().await;
}

#[tokio::test]
async fn basic_auth_is_sent() {
    // base64("svc-user:pa55word")
    let fake = FakeServer::builder()
        .authorization("Basic c3ZjLXVzZXI6cGE1NXdvcmQ=")
        .component("PLAT", "svc")
        .start()
        .await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "      username: svc-user\n      password: pa55word\n",
        "",
    ))
    .await;
    let status = app.wait_for_run("main", |_| true).await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    assert_eq!(app.entity_names().await, vec!["svc"]);
    app.stop().await;
}

#[tokio::test]
async fn rejected_credentials_fail_the_run_with_an_actionable_message() {
    let fake = FakeServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/rest/api/1.0/projects"))
        .respond_with(
            wiremock::ResponseTemplate::new(401)
                .set_body_string(r#"{"errors":[{"message":"Authentication failed"}]}"#),
        )
        .mount(&fake.server)
        .await;
    let app = TestApp::spawn(&server_config(&fake, "      token: wrong-token\n", "")).await;
    let status = app.wait_for_run("main", |_| true).await;
    let error = status["lastRun"]["outcome"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("401"), "{error}");
    assert!(
        error.contains("was rejected (401): check integrations.bitbucketServer[0].token"),
        "{error}"
    );
    assert!(error.contains("/rest/api/1.0/projects"), "{error}");
    assert!(!status.to_string().contains("wrong-token"));
    app.stop().await;
}

#[tokio::test]
async fn a_failed_run_keeps_the_previous_entities() {
    let fake = FakeServer::builder().component("PLAT", "svc").start().await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { seconds: 1 }\n",
    ))
    .await;
    app.wait_for_run("main", |s| s["lastRun"]["outcome"]["status"] == "succeeded")
        .await;
    assert_eq!(app.entity_names().await, vec!["svc"]);

    fake.server.reset().await;
    wiremock::Mock::given(wiremock::matchers::path("/rest/api/1.0/projects"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(&fake.server)
        .await;
    let status = app
        .wait_for_run("main", |s| s["lastRun"]["outcome"]["status"] == "failed")
        .await;
    assert!(
        status["lastRun"]["outcome"]["error"]
            .as_str()
            .unwrap()
            .contains("503")
    );
    assert_eq!(app.entity_names().await, vec!["svc"]);
    assert_eq!(status["entities"], 1);
    app.stop().await;
}

#[tokio::test]
async fn a_run_past_its_timeout_is_cancelled_and_counted_as_failed() {
    let fake = FakeServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/rest/api/1.0/projects"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(5)),
        )
        .mount(&fake.server)
        .await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          timeout: { milliseconds: 300 }\n",
    ))
    .await;
    let status = app.wait_for_run("main", |_| true).await;
    let error = status["lastRun"]["outcome"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("timeout"), "{error}");
    assert_eq!(status["inProgress"], false);
    app.stop().await;
}

#[tokio::test]
async fn by_name_is_case_insensitive_and_404s_in_backstage_shape() {
    let fake = FakeServer::builder()
        .catalog("PLAT", "svc", &component("My-Service"))
        .start()
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |_| true).await;

    let found = app
        .get("/api/catalog/entities/by-name/COMPONENT/Default/my-service")
        .await;
    assert_eq!(found.status(), 200);
    let found: Value = found.json().await.unwrap();
    assert_eq!(found["metadata"]["name"], "My-Service");

    let missing = app
        .get("/api/catalog/entities/by-name/component/default/nope")
        .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/json");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["name"], "NotFoundError");
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));
    assert_eq!(body["request"]["method"], "GET");
    assert_eq!(
        body["request"]["url"],
        "/api/catalog/entities/by-name/component/default/nope"
    );
    assert_eq!(body["response"]["statusCode"], 404);
    app.stop().await;
}

#[tokio::test]
async fn health_endpoints_answer() {
    let fake = FakeServer::start().await;
    let app = TestApp::spawn(&server_config(&fake, "", "        schedule:\n          frequency: { trigger: manual }\n          initialDelay: { hours: 1 }\n")).await;
    for endpoint in [
        "/.backstage/health/v1/liveness",
        "/.backstage/health/v1/readiness",
    ] {
        let response = app.get(endpoint).await;
        assert_eq!(response.status(), 200, "{endpoint}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
    }
    let unknown = app.get("/api/catalog/nope").await;
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}
