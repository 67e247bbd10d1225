//! Black-box: the embedded SQLite store — a restarted daemon serves its last
//! catalog before any Bitbucket call, and `kill -9` never leaves a mix.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    FakeServer, StoredCatalog, component, integration_config, serve_stored, server_config,
    stored_body, write_config,
};
use bitbucket_catalogd::{Catalog, CatalogStore, SqliteStore};
use serde_json::Value;
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn a_restarted_daemon_serves_its_last_catalog_before_calling_bitbucket() {
    let stored = StoredCatalog::mixed("data/catalog.sqlite").await;
    let before = stored.served_json();

    // Bitbucket is now down; the restarted daemon must still serve everything.
    stored.fake.fail_everything().await;
    let second = stored.restart().await;
    let after = second.get_json("/api/catalog/entities").await;
    assert_eq!(after, before);
    let ready = reqwest::get(format!("{}/.backstage/health/v1/readiness", second.address))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // The last run survives the restart in the status, too.
    let status = second.get_json("/api/catalog/providers/main").await;
    assert!(status["lastRun"]["outcome"].is_object(), "{status}");
    // And the failed run that follows keeps them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while second.get_json("/api/catalog/providers/main").await["lastRun"]["outcome"]["status"]
        != "failed"
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(second.get_json("/api/catalog/entities").await, before);
    second.stop().await;
}

#[tokio::test]
async fn entities_of_a_provider_removed_from_the_config_are_dropped_on_restart() {
    let stored = StoredCatalog::mixed("catalog.sqlite").await;
    let no_providers = integration_config(&stored.fake);
    let second = serve_stored(&no_providers, &stored.db).await;
    assert_eq!(
        second.get_json("/api/catalog/entities").await,
        serde_json::json!([])
    );
    second.stop().await;
}

/// `kill -9` at many points of runs over 1,500 repositories (two entities
/// each): every applied batch survives (the count never drops), no
/// repository is ever half applied, records and entities agree, and the
/// restarted daemon continues until the catalog is complete.
#[tokio::test]
async fn kill_9_during_a_run_keeps_every_applied_batch_and_never_half_a_repository() {
    const REPOS: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.sqlite");
    let fake = FakeServer::start().await;
    let slugs: Vec<String> = (0..REPOS).map(|i| format!("svc-{i:04}")).collect();
    let repos: Vec<(&str, bool)> = slugs.iter().map(|s| (s.as_str(), false)).collect();
    fake.mount_projects(&["PLAT"], 1000).await;
    fake.mount_repos("PLAT", &repos, 1000).await;
    // Two documents per file: a torn write would show as a count strictly
    // between nothing and the full set.
    Mock::given(wiremock::matchers::path_regex(r"/raw/catalog-info\.yaml$"))
        .respond_with(|request: &wiremock::Request| {
            let slug = request
                .url
                .path()
                .split('/')
                .nth_back(2)
                .unwrap_or("x")
                .to_owned();
            ResponseTemplate::new(200).set_body_string(format!(
                "{}---\n{}",
                component(&format!("{slug}-a")),
                component(&format!("{slug}-b"))
            ))
        })
        .mount(&fake.server)
        .await;
    let (_cfg_dir, file) = write_config(&server_config(
        &fake,
        "",
        "        concurrency: 32\n        schedule:\n          frequency: { seconds: 1 }\n",
    ));

    let mut consistent_states = Vec::new();
    for attempt in 0..6u64 {
        let mut child = crate::support::serve_command(&file, 0)
            .env(
                "APP_CONFIG_backend_database_connection",
                db.display().to_string(),
            )
            .spawn()
            .expect("serve starts");
        tokio::time::sleep(Duration::from_millis(300 + attempt * 1100)).await;
        Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status()
            .expect("kill");
        let _ = child.wait();

        let store = SqliteStore::open(&db)
            .await
            .expect("store opens after kill -9");
        let catalog = Catalog::new();
        store
            .restore(usize::MAX, &catalog)
            .await
            .expect("store loads after kill -9");
        let stored = catalog.snapshot();
        let mut per_repository: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        for entity in stored.iter() {
            let owner = catalog.owner(&entity.key).expect("restored with its owner");
            *per_repository.entry(owner.unit.to_string()).or_default() += 1;
        }
        assert!(
            per_repository.values().all(|&n| n == 2),
            "attempt {attempt}: a repository was half applied: {:?}",
            per_repository.iter().find(|(_, n)| **n != 2)
        );
        let count = stored.len();
        assert!(
            consistent_states
                .last()
                .is_none_or(|&before| count >= before),
            "attempt {attempt}: {count} entities after {consistent_states:?}: an applied batch was lost"
        );
        let records = store.repositories("main").await.expect("records load");
        let read = records.iter().filter(|r| r.read_at.is_some()).count();
        assert_eq!(
            read * 2,
            count,
            "attempt {attempt}: every repository recorded as read has its entities, and no others"
        );
        consistent_states.push(count);
        store.close().await;
    }
    assert!(
        consistent_states.contains(&(REPOS * 2)),
        "no run ever completed: {consistent_states:?}"
    );
}

/// Rewrites one stored entity that has relations as if they had never
/// been stitched (`relations: []`); `interrupted` numbers the write after
/// the last complete apply, as an apply that never ended would leave it.
/// Returns the entity's key and the body stored.
async fn unstitch_one(db: &Path, interrupted: bool) -> (String, String) {
    use sqlx::{Connection, Row};
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let row = sqlx::query(
        "SELECT entity_key, body FROM catalog_entities WHERE body LIKE '%\"relations\":[{%' LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .expect("an entity with relations");
    let key: String = row.get("entity_key");
    let mut body: Value = serde_json::from_str(row.get::<&str, _>("body")).unwrap();
    body["relations"] = serde_json::json!([]);
    let body = body.to_string();
    let statement = if interrupted {
        "UPDATE catalog_entities SET body = $1, seq = (SELECT MAX(seq) + 1 FROM catalog_entities) WHERE entity_key = $2"
    } else {
        "UPDATE catalog_entities SET body = $1 WHERE entity_key = $2"
    };
    sqlx::query(statement)
        .bind(&body)
        .bind(&key)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    (key, body)
}

/// Complete applies leave a marker: a restart serves the stored bodies as
/// they are (byte for byte) and re-renders none, even one whose relations
/// a test took away behind the daemon's back.
#[tokio::test]
async fn a_restart_after_complete_applies_serves_the_stored_entities_without_restitching() {
    let stored = StoredCatalog::mixed("catalog.sqlite").await;
    stored.fake.fail_everything().await;
    let second = stored.restart().await;
    assert_eq!(second.entities_text().await, stored.served, "byte for byte");
    second.stop().await;

    let (key, unstitched) = unstitch_one(&stored.db, false).await;
    let third = stored.restart().await;
    assert!(third.entities_text().await.contains(&unstitched));
    // Stopping waits for start-up's settling, which stores what it re-renders.
    third.stop().await;
    assert_eq!(
        stored_body(&stored.db, &key).await,
        unstitched,
        "not re-rendered"
    );
}

/// A store whose newest write no complete apply covers (an apply that
/// never ended) is re-stitched at start-up.
#[tokio::test]
async fn a_store_left_by_an_interrupted_apply_is_restitched_at_start_up() {
    let stored = StoredCatalog::mixed("catalog.sqlite").await;
    let before = stored.served_json();
    let (key, unstitched) = unstitch_one(&stored.db, true).await;
    stored.fake.fail_everything().await;
    let second = stored.restart().await;
    second.stop().await;
    let restitched = stored_body(&stored.db, &key).await;
    assert_ne!(restitched, unstitched, "re-rendered with its relations");
    let restitched: Value = serde_json::from_str(&restitched).unwrap();
    let expected = before
        .as_array()
        .unwrap()
        .iter()
        .find(|e| restitched["metadata"]["name"] == e["metadata"]["name"])
        .unwrap();
    assert_eq!(restitched["relations"], expected["relations"]);
    assert!(!expected["relations"].as_array().unwrap().is_empty());
}
