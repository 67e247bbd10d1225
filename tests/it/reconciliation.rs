//! Black-box: safe reconciliation — nothing short of `force` shrinks a
//! provider past its deletion threshold, credential failures fail loudly, and
//! the repositories without a catalog file are listed exactly.

use crate::support::{FakeServer, TestApp, component, server_config};
use serde_json::{Value, json};
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

const MANUAL: &str = "        schedule:\n          frequency: { trigger: manual }\n";

fn slugs(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("svc-{i:02}")).collect()
}

/// PLAT with `with_file` repositories that have a catalog file and
/// `without_file` that do not.
async fn mount(fake: &FakeServer, with_file: &[String], without_file: &[String]) {
    fake.mount_projects(&["PLAT"], 25).await;
    let all: Vec<(&str, bool)> = with_file
        .iter()
        .chain(without_file)
        .map(|s| (s.as_str(), false))
        .collect();
    fake.mount_repos("PLAT", &all, 25).await;
    for slug in with_file {
        fake.mount_file("PLAT", slug, "catalog-info.yaml", &component(slug))
            .await;
    }
}

async fn refresh(app: &TestApp, query: &str) -> Value {
    app.refresh("main", query).await
}

#[tokio::test]
async fn an_empty_listing_after_a_full_one_is_held_until_forced() {
    let fake = FakeServer::start().await;
    mount(&fake, &slugs(12), &[]).await;
    let app = TestApp::spawn(&crate::support::with_write_token(&server_config(
        &fake, "", MANUAL,
    )))
    .await;
    app.refresh("main", "").await;
    assert_eq!(app.entity_names().await.len(), 12);

    // A token that lost its permissions: Bitbucket answers 200 with nothing.
    fake.server.reset().await;
    FakeServer::builder().mount(&fake).await;
    let status = refresh(&app, "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "held", "{status:#}");
    assert_eq!(status["lastRun"]["outcome"]["wouldRemove"], 12);
    assert_eq!(status["lastRun"]["outcome"]["of"], 12);
    assert!(
        status["lastRun"]["outcome"]["message"]
            .as_str()
            .unwrap()
            .starts_with("held: would remove 12 of 12")
    );
    assert_eq!(app.entity_names().await.len(), 12);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("catalog_provider_deletions_held_total{provider=\"main\"}"),
        "{metrics}"
    );

    // Held again on the next ordinary run; applied on purpose with force.
    assert_eq!(
        refresh(&app, "").await["lastRun"]["outcome"]["status"],
        "held"
    );
    let forced = refresh(&app, "?force=true").await;
    assert_eq!(
        forced["lastRun"]["outcome"]["status"], "succeeded",
        "{forced:#}"
    );
    assert_eq!(app.entity_names().await, Vec::<String>::new());
    app.stop().await;
}

#[tokio::test]
async fn removals_within_the_threshold_apply_and_small_sources_are_exempt() {
    let fake = FakeServer::start().await;
    let all = slugs(12);
    mount(&fake, &all, &[]).await;
    let app = TestApp::spawn(&server_config(&fake, "", MANUAL)).await;
    app.refresh("main", "").await;

    // Two repositories deleted for real: applied (2 of 12 < 50 %).
    fake.server.reset().await;
    mount(&fake, &all[..10], &[]).await;
    assert_eq!(
        refresh(&app, "").await["lastRun"]["outcome"]["status"],
        "succeeded"
    );
    assert_eq!(app.entity_names().await.len(), 10);

    // Most of the rest gone at once (8 of 10): held.
    fake.server.reset().await;
    mount(&fake, &all[..2], &[]).await;
    assert_eq!(
        refresh(&app, "").await["lastRun"]["outcome"]["status"],
        "held"
    );
    app.stop().await;

    let small = FakeServer::start().await;
    mount(&small, &slugs(3), &[]).await;
    let app = TestApp::spawn(&server_config(&small, "", MANUAL)).await;
    app.refresh("main", "").await;
    small.server.reset().await;
    small.mount_projects(&[], 25).await;
    assert_eq!(
        refresh(&app, "").await["lastRun"]["outcome"]["status"],
        "succeeded",
        "fewer than 10 entities are not guarded"
    );
    assert!(app.entity_names().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_threshold_is_configurable() {
    let fake = FakeServer::start().await;
    let all = slugs(12);
    mount(&fake, &all, &[]).await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        &format!("        deletionThreshold: '100%'\n{MANUAL}"),
    ))
    .await;
    app.refresh("main", "").await;
    fake.server.reset().await;
    FakeServer::builder().mount(&fake).await;
    assert_eq!(
        refresh(&app, "").await["lastRun"]["outcome"]["status"],
        "succeeded"
    );
    assert!(app.entity_names().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_401_mid_listing_fails_the_run_with_an_actionable_message() {
    let fake = FakeServer::start().await;
    mount(&fake, &slugs(12), &[]).await;
    let app = TestApp::spawn(&server_config(&fake, "      token: t0ken\n", MANUAL)).await;
    app.refresh("main", "").await;

    fake.server.reset().await;
    fake.mount_projects(&["PLAT"], 25).await;
    Mock::given(path("/rest/api/1.0/projects/PLAT/repos"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&fake.server)
        .await;
    let status = refresh(&app, "").await;
    let error = status["lastRun"]["outcome"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(status["lastRun"]["outcome"]["status"], "failed");
    assert!(
        error.contains(&format!(
            "the token for {} was rejected (401): check integrations.bitbucketServer[0].token",
            fake.host()
        )),
        "{error}"
    );
    assert!(!status.to_string().contains("t0ken"));
    assert_eq!(app.entity_names().await.len(), 12);
    app.stop().await;
}

#[tokio::test]
async fn a_renamed_repository_keeps_its_entity_uids() {
    let fake = FakeServer::start().await;
    mount(&fake, &slugs(3), &[]).await;
    let app = TestApp::spawn(&server_config(&fake, "", MANUAL)).await;
    app.refresh("main", "").await;
    let before = app
        .get_json("/api/catalog/entities/by-name/component/default/svc-01")
        .await;

    // svc-01's repository is renamed (same file) and moves project.
    fake.server.reset().await;
    FakeServer::builder()
        .repo("PLAT", "svc-00")
        .repo("PLAT", "svc-02")
        .repo("CORE", "renamed-svc")
        .mount(&fake)
        .await;
    for slug in ["svc-00", "svc-02"] {
        fake.mount_file("PLAT", slug, "catalog-info.yaml", &component(slug))
            .await;
    }
    fake.mount_file(
        "CORE",
        "renamed-svc",
        "catalog-info.yaml",
        &component("svc-01"),
    )
    .await;
    assert_eq!(
        refresh(&app, "").await["lastRun"]["outcome"]["status"],
        "succeeded"
    );
    let after = app
        .get_json("/api/catalog/entities/by-name/component/default/svc-01")
        .await;
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert!(
        after["metadata"]["annotations"]["backstage.io/managed-by-location"]
            .as_str()
            .unwrap()
            .contains("/projects/CORE/repos/renamed-svc/")
    );
    app.stop().await;
}

#[tokio::test]
async fn the_repositories_without_a_catalog_file_are_listed_exactly() {
    let fake = FakeServer::start().await;
    let with_file = vec!["api".to_owned(), "web".to_owned()];
    let without = vec![
        "infra".to_owned(),
        "scripts".to_owned(),
        "sandbox".to_owned(),
    ];
    mount(&fake, &with_file, &without).await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        &format!("        filters:\n          repoSlug: '^(api|web|infra|scripts)$'\n{MANUAL}"),
    ))
    .await;
    let status = app.refresh("main", "").await;
    assert_eq!(
        status["repositories"],
        json!({"total": 4, "withCatalog": 2, "withoutCatalog": 2, "unknown": 0})
    );

    let repo = |slug: &str, catalog: &str, entities: usize| {
        let web = format!("{}/projects/PLAT/repos/{slug}/browse", fake.server.uri());
        json!({"project": "PLAT", "slug": slug, "url": web, "catalogUrl": format!("{web}/catalog-info.yaml"), "catalog": catalog, "entities": entities})
    };
    // Each record also says when it was read and what its read found wrong.
    let listed = |query: &str| {
        let app = &app;
        let query = query.to_owned();
        async move {
            let all = app
                .get_json(&format!("/api/catalog/providers/main/repositories{query}"))
                .await;
            all.as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    assert!(r["readAt"].is_string(), "{r}");
                    assert_eq!(r["problems"], json!([]));
                    json!({"project": r["project"], "slug": r["slug"], "url": r["url"], "catalogUrl": r["catalogUrl"], "catalog": r["catalog"], "entities": r["entities"]})
                })
                .collect::<Vec<_>>()
        }
    };
    let requests_before = fake.server.received_requests().await.unwrap().len();
    assert_eq!(
        listed("?catalog=missing").await,
        [repo("infra", "missing", 0), repo("scripts", "missing", 0)]
    );
    assert_eq!(
        listed("?catalog=present").await,
        [repo("api", "present", 1), repo("web", "present", 1)]
    );
    assert_eq!(
        app.get_json("/api/catalog/providers/main/repositories")
            .await
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        fake.server.received_requests().await.unwrap().len(),
        requests_before,
        "no Bitbucket request is spent on this"
    );
    let bad = app
        .get("/api/catalog/providers/main/repositories?catalog=maybe")
        .await;
    assert_eq!(bad.status(), 400);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("catalog_provider_repositories{provider=\"main\",catalog=\"missing\"} 2"),
        "{metrics}"
    );
    app.stop().await;
}

/// Runs that each stay under the threshold cannot add up to more than it.
#[tokio::test]
async fn small_removals_cannot_add_up_past_the_threshold() {
    let fake = FakeServer::start().await;
    let all = slugs(20);
    mount(&fake, &all, &[]).await;
    let app = TestApp::spawn(&crate::support::with_write_token(&server_config(
        &fake, "", MANUAL,
    )))
    .await;
    app.refresh("main", "").await;

    // 6 of 20 (30 %): applied.
    fake.server.reset().await;
    mount(&fake, &all[..14], &[]).await;
    assert_eq!(
        refresh(&app, "").await["lastRun"]["outcome"]["status"],
        "succeeded"
    );
    assert_eq!(app.entity_names().await.len(), 14);

    // 6 of 14 (43 %) alone would pass, but 12 of the stable 20 (60 %) is held.
    fake.server.reset().await;
    mount(&fake, &all[..8], &[]).await;
    let held = refresh(&app, "").await;
    assert_eq!(held["lastRun"]["outcome"]["status"], "held", "{held:#}");
    assert_eq!(held["lastRun"]["outcome"]["wouldRemove"], 12);
    assert_eq!(held["lastRun"]["outcome"]["of"], 20);
    assert_eq!(app.entity_names().await.len(), 14);

    // Forced: applied, and the guard measures from there on.
    assert_eq!(
        refresh(&app, "?force=true").await["lastRun"]["outcome"]["status"],
        "succeeded"
    );
    assert_eq!(app.entity_names().await.len(), 8);
    app.stop().await;
}
