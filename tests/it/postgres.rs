//! Black-box: the PostgreSQL store (`backend.database.client: pg`) does
//! what the embedded SQLite store does — a restarted daemon serves its last
//! catalog before any Bitbucket call, unchanged repositories are not read
//! again, providers dropped from the config lose their entities, registered
//! locations survive restarts and removal, the change feed's cursors carry
//! over — on a database of each test's own, which the daemon creates.

use crate::support::{
    FakeServer, PgDatabase, TestApp, component, integration_config, mount_mixed_catalog,
    server_config,
};
use bitbucket_catalogd::location_id;
use serde_json::json;

#[tokio::test]
async fn a_restarted_daemon_serves_its_last_catalog_before_calling_bitbucket() {
    let db = PgDatabase::fresh();
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    let config = server_config(&fake, "", "");
    let first = TestApp::spawn_on_postgres(&config, &db).await;
    first.wait_for_entities(7).await;
    let before = first.get_json("/api/catalog/entities").await;
    let cursor = first.get_json("/api/catalog/changes").await["cursor"].clone();
    first.stop().await;

    fake.fail_everything().await;
    let second = TestApp::spawn_on_postgres(&config, &db).await;
    assert_eq!(second.get_json("/api/catalog/entities").await, before);
    let status = second.get_json("/api/catalog/providers/main").await;
    assert!(status["lastRun"]["outcome"].is_object(), "{status}");
    // The feed's cursor from before the restart is still valid and current.
    let feed = second
        .get(&format!(
            "/api/catalog/changes?after={}",
            cursor.as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(feed.status(), 200);
    let feed: serde_json::Value = feed.json().await.unwrap();
    assert_eq!(feed["items"], json!([]), "{feed:#}");
    second
        .wait_for_run("main", |s| s["lastRun"]["outcome"]["status"] == "failed")
        .await;
    assert_eq!(second.get_json("/api/catalog/entities").await, before);
    second.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn repository_records_are_kept_per_repository_across_a_restart() {
    let db = PgDatabase::fresh();
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    let config = server_config(&fake, "", "");
    let first = TestApp::spawn_on_postgres(&config, &db).await;
    first.wait_for_entities(7).await;
    first
        .wait_for_run("main", |s| s["inProgress"] == false)
        .await;
    let before = first
        .get_json("/api/catalog/providers/main/repositories")
        .await;
    assert!(
        before.to_string().contains("catalog-info.yaml"),
        "{before:#}"
    );
    first.stop().await;

    // Bitbucket down: what is known about each repository comes from the store.
    fake.fail_everything().await;
    let second = TestApp::spawn_on_postgres(&config, &db).await;
    assert_eq!(
        second
            .get_json("/api/catalog/providers/main/repositories")
            .await,
        before
    );
    second.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn entities_of_a_provider_removed_from_the_config_are_dropped_on_restart() {
    let db = PgDatabase::fresh();
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    let first = TestApp::spawn_on_postgres(&server_config(&fake, "", ""), &db).await;
    first.wait_for_entities(7).await;
    first.stop().await;

    let no_providers = integration_config(&fake);
    let second = TestApp::spawn_on_postgres(&no_providers, &db).await;
    assert_eq!(second.get_json("/api/catalog/entities").await, json!([]));
    // Their removals are numbered changes a feed follower sees.
    let feed = second.get_json("/api/catalog/changes?after=0").await;
    assert!(
        feed["items"].as_array().is_some_and(|i| !i.is_empty()),
        "{feed:#}"
    );
    second.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn registered_locations_survive_a_restart_and_stay_gone_once_deleted() {
    let db = PgDatabase::fresh();
    let fake = FakeServer::start().await;
    fake.mount_file("PLAT", "other", "catalog-info.yaml", &component("other"))
        .await;
    let yaml = integration_config(&fake);
    let target = format!(
        "{}/projects/PLAT/repos/other/browse/catalog-info.yaml",
        fake.server.uri()
    );

    let first = TestApp::spawn_on_postgres(&yaml, &db).await;
    let (status, body) = first.register(&target, "", None).await;
    assert_eq!(status, 201, "{body:#}");
    first.stop().await;

    let second = TestApp::spawn_on_postgres(&yaml, &db).await;
    let mut names = second.entity_names().await;
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"other".to_owned()));
    let locations = second.get_json("/api/catalog/locations").await;
    assert_eq!(locations[0]["data"]["target"], target.as_str());
    let (status, _) = second.delete_location(&location_id(&target)).await;
    assert_eq!(status, 204);
    second.stop().await;

    let third = TestApp::spawn_on_postgres(&yaml, &db).await;
    third.assert_serves_nothing().await;
    third.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn a_standalone_daemon_on_postgres_leads_and_says_so() {
    let db = PgDatabase::fresh();
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    let app = TestApp::spawn_on_postgres(&server_config(&fake, "", ""), &db).await;
    let replica = app.get_json("/api/catalog/replica").await;
    assert_eq!(replica["role"], "leader", "{replica:#}");
    assert_eq!(replica["leader"], replica["identity"]);
    let ready = app.get("/.backstage/health/v1/readiness").await;
    assert_eq!(ready.status(), 200);
    app.stop().await;
    db.drop_database().await;
}

/// Runs the binary with `args` and `env`; `(exit code, stdout, stderr)`.
async fn run_binary(args: Vec<String>, env: Vec<(&'static str, String)>) -> (i32, String, String) {
    let out = crate::support::run_binary(args, env).await;
    (
        out.status.code().unwrap_or(-1),
        crate::support::text(&out.stdout),
        crate::support::text(&out.stderr),
    )
}

#[tokio::test]
async fn the_database_password_never_shows() {
    const PASSWORD: &str = "pg-pa55word-never-shown";
    let (_dir, file) = crate::support::write_config(
        "backend:\n  database:\n    client: pg\n    connection:\n      host: 127.0.0.1\n      port: 1\n      user: catalogd\n      password: ${PG_PASSWORD}\n",
    );
    let config = file.display().to_string();
    let env = || vec![("PG_PASSWORD", PASSWORD.to_owned())];

    // config check: the connection is shown, the password is not.
    let (code, stdout, stderr) = run_binary(
        vec![
            "config".into(),
            "check".into(),
            "--config".into(),
            config.clone(),
        ],
        env(),
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("127.0.0.1"), "{stdout}");
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));

    // A database that cannot be reached: the error names where, not how.
    let (code, stdout, stderr) = run_binary(
        vec!["serve".into(), "--config".into(), config],
        [
            env(),
            vec![("APP_CONFIG_backend_listen_port", "0".to_owned())],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "{stderr}"
    );

    // A connection URL with the password in it, mistyped.
    let (_dir, bad) = crate::support::write_config(&format!(
        "backend:\n  database:\n    client: pg\n    connection: postgres://catalogd:{PASSWORD}@db/x?sslmode=sometimes\n"
    ));
    let (code, stdout, stderr) = run_binary(
        vec![
            "config".into(),
            "check".into(),
            "--config".into(),
            bad.display().to_string(),
        ],
        vec![],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("backend.database.connection"), "{stderr}");
    assert!(stderr.contains("sslmode"), "{stderr}");
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "{stderr}"
    );
}
