//! Black-box: the embedded SQLite store — a restarted daemon serves its last
//! catalog before any Bitbucket call, and `kill -9` never leaves a mix.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    FakeServer, component, integration_config, mount_mixed_catalog, server_config, write_config,
};
use bitbucket_catalogd::Application;
use bitbucket_catalogd::{Catalog, CatalogStore, SqliteStore};
use bitbucket_catalogd::{Config, Environment};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wiremock::{Mock, ResponseTemplate};

/// The daemon on a free port with its database at `db`.
struct Daemon {
    address: String,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

async fn start(yaml: &str, db: &Path) -> Daemon {
    let (_dir, file) = write_config(yaml);
    let db = db.display().to_string();
    let env = Environment::from_pairs([
        ("APP_CONFIG_backend_listen_host", "127.0.0.1"),
        ("APP_CONFIG_backend_listen_port", "0"),
        ("APP_CONFIG_backend_database_connection", db.as_str()),
    ]);
    let config = Config::load(&[file], &env).expect("config").config;
    let app = Application::build(config).await.expect("app builds");
    let address = format!("http://{}", app.local_addr());
    let stop = CancellationToken::new();
    let token = stop.clone();
    let handle = tokio::spawn(async move {
        app.run_until(async move { token.cancelled().await })
            .await
            .expect("runs")
    });
    Daemon {
        address,
        stop,
        handle,
    }
}

impl Daemon {
    async fn get_json(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.address))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn wait_for_entities(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .get_json("/api/catalog/entities")
            .await
            .as_array()
            .map_or(0, Vec::len)
            != count
        {
            assert!(Instant::now() < deadline, "never reached {count} entities");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("stops")
            .expect("clean");
    }
}

#[tokio::test]
async fn a_restarted_daemon_serves_its_last_catalog_before_calling_bitbucket() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/catalog.sqlite");
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    let config = server_config(&fake, "", "");
    let first = start(&config, &db).await;
    first.wait_for_entities(7).await;
    let before = first.get_json("/api/catalog/entities").await;
    first.stop().await;

    // Bitbucket is now down; the restarted daemon must still serve everything.
    fake.fail_everything().await;
    let second = start(&config, &db).await;
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
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.sqlite");
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    let first = start(&server_config(&fake, "", ""), &db).await;
    first.wait_for_entities(7).await;
    first.stop().await;

    let no_providers = integration_config(&fake);
    let second = start(&no_providers, &db).await;
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

async fn stored_body(db: &Path, key: &str) -> String {
    let store = SqliteStore::open(db).await.unwrap();
    let catalog = Catalog::new();
    store.restore(usize::MAX, &catalog).await.unwrap();
    store.close().await;
    let stored = catalog.snapshot();
    let entity = stored
        .iter()
        .find(|e| e.key.as_str() == key)
        .expect("still stored");
    entity.json.to_string()
}

async fn entities_text(daemon: &Daemon) -> String {
    reqwest::get(format!("{}/api/catalog/entities", daemon.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Complete applies leave a marker: a restart serves the stored bodies as
/// they are (byte for byte) and re-renders none, even one whose relations
/// a test took away behind the daemon's back.
#[tokio::test]
async fn a_restart_after_complete_applies_serves_the_stored_entities_without_restitching() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.sqlite");
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    let config = server_config(&fake, "", "");
    let first = start(&config, &db).await;
    first.wait_for_entities(7).await;
    let before = entities_text(&first).await;
    first.stop().await;

    fake.fail_everything().await;
    let second = start(&config, &db).await;
    assert_eq!(entities_text(&second).await, before, "byte for byte");
    second.stop().await;

    let (key, unstitched) = unstitch_one(&db, false).await;
    let third = start(&config, &db).await;
    assert!(entities_text(&third).await.contains(&unstitched));
    // Stopping waits for start-up's settling, which stores what it re-renders.
    third.stop().await;
    assert_eq!(stored_body(&db, &key).await, unstitched, "not re-rendered");
}

/// A store whose newest write no complete apply covers (an apply that
/// never ended) is re-stitched at start-up.
#[tokio::test]
async fn a_store_left_by_an_interrupted_apply_is_restitched_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.sqlite");
    let fake = FakeServer::start().await;
    mount_mixed_catalog(&fake).await;
    let config = server_config(&fake, "", "");
    let first = start(&config, &db).await;
    first.wait_for_entities(7).await;
    let before = first.get_json("/api/catalog/entities").await;
    first.stop().await;

    let (key, unstitched) = unstitch_one(&db, true).await;
    fake.fail_everything().await;
    let second = start(&config, &db).await;
    second.stop().await;
    let restitched = stored_body(&db, &key).await;
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
