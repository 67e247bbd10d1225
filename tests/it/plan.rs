//! Black-box: `bitbucket-catalogd plan` against the simulator and a daemon
//! running on the same SQLite store — what a narrowed or widened filter, a
//! new provider and a removed one would change, with the exit code, the
//! JSON shape, no write to the store and no catalog file read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bitbucket_sim::{EndpointKind, Simulator};
use serde_json::Value;

use crate::support::sim::{SimProviderConfig, components_simulator};
use crate::support::{TestApp, run_binary, text, write_config};

/// The simulator, a daemon on a SQLite store that has run once with `yaml`.
struct Setup {
    sim: Simulator,
    app: TestApp,
    dir: tempfile::TempDir,
    database: PathBuf,
}

async fn running(yaml_for: impl Fn(&Simulator) -> String) -> Setup {
    let sim = components_simulator(3, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("catalog.sqlite");
    let app = TestApp::spawn_with_database(&yaml_for(&sim), database.to_str().unwrap()).await;
    let status = app.refresh("sim", "").await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    Setup {
        sim,
        app,
        dir,
        database,
    }
}

/// What a write would change: the database file and its write-ahead log.
fn store_bytes(database: &Path) -> Vec<Vec<u8>> {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    [database.to_path_buf(), PathBuf::from(wal)]
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}

/// Runs `plan --format json` with `yaml` on the daemon's store; checks it
/// wrote nothing and read no file. Returns the exit code and the JSON.
async fn plan(setup: &Setup, yaml: &str) -> (i32, Value) {
    let (_config_dir, file) = write_config(yaml);
    let before = store_bytes(&setup.database);
    let entities = setup.app.entity_refs().await;
    let reads_before = setup.sim.stats().kind_requests(EndpointKind::ServerRaw);
    let listings_before = setup.sim.stats().kind_requests(EndpointKind::ServerRepos);
    let output = run_binary(
        vec![
            "plan".into(),
            "--format".into(),
            "json".into(),
            "--config".into(),
            file.display().to_string(),
        ],
        vec![(
            "APP_CONFIG_backend_database_connection",
            setup.database.display().to_string(),
        )],
    )
    .await;
    let stdout = text(&output.stdout);
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", text(&output.stderr)));
    assert_eq!(
        setup.sim.stats().kind_requests(EndpointKind::ServerRaw),
        reads_before,
        "plan read no catalog file"
    );
    assert!(
        setup.sim.stats().kind_requests(EndpointKind::ServerRepos) > listings_before,
        "plan listed"
    );
    assert!(
        before == store_bytes(&setup.database),
        "plan wrote to the store"
    );
    assert_eq!(setup.app.entity_refs().await, entities);
    assert!(setup.dir.path().exists());
    (output.status.code().unwrap_or(-1), json)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn provider<'a>(json: &'a Value, id: &str) -> &'a Value {
    json["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no provider {id}: {json:#}"))
}

/// Every repository of the simulator, as `plan` names them (`project/slug`).
async fn all_repositories(setup: &Setup, yaml: &str) -> Vec<String> {
    let (code, json) = plan(setup, yaml).await;
    assert_eq!(code, 0, "{json:#}");
    strings(&provider(&json, "sim")["reads"])
}

#[tokio::test]
async fn a_narrowed_filter_lists_what_leaves_and_exits_3_without_writing_or_reading_files() {
    let setup = running(|sim| SimProviderConfig::new(sim).yaml()).await;
    let yaml = SimProviderConfig::new(&setup.sim).yaml();
    let all = all_repositories(&setup, &yaml).await;
    assert_eq!(all.len(), 12);
    let (code, same) = plan(&setup, &yaml).await;
    assert_eq!(code, 0);
    let sim = provider(&same, "sim");
    assert_eq!(sim["entering"], serde_json::json!([]));
    assert_eq!(sim["leaving"], serde_json::json!([]));
    assert_eq!(sim["added"], false);
    assert_eq!(same["wouldRemove"], false);

    let narrowed = SimProviderConfig::new(&setup.sim)
        .provider_extra("        filters: {projectKey: '^P000[12]$'}\n")
        .yaml();
    let (code, json) = plan(&setup, &narrowed).await;
    assert_eq!(code, 3, "{json:#}");
    let sim = provider(&json, "sim");
    let leaving: Vec<String> = all
        .iter()
        .filter(|r| r.starts_with("P0003/"))
        .cloned()
        .collect();
    assert_eq!(leaving.len(), 4);
    assert_eq!(strings(&sim["leaving"]), leaving);
    assert_eq!(sim["entering"], serde_json::json!([]));
    let kept: Vec<String> = all
        .iter()
        .filter(|r| !r.starts_with("P0003/"))
        .cloned()
        .collect();
    assert_eq!(strings(&sim["reads"]), kept);
    let served = setup.app.entity_refs().await;
    let removed: BTreeSet<String> = served
        .iter()
        .filter(|r| r.contains("/p0003-"))
        .cloned()
        .collect();
    assert!(!removed.is_empty());
    assert_eq!(
        strings(&sim["removedEntities"])
            .into_iter()
            .collect::<BTreeSet<_>>(),
        removed
    );
    assert_eq!(sim["entitiesNow"], served.len());
    assert_eq!(
        sim["guardHolds"],
        removed.len() * 2 > served.len() && served.len() >= 10
    );
    // JSON shape.
    for key in [
        "store",
        "providers",
        "providersAdded",
        "providersRemoved",
        "wouldRemove",
        "errors",
    ] {
        assert!(json.get(key).is_some(), "{key}: {json:#}");
    }
    for key in [
        "type",
        "target",
        "listingRequests",
        "requests",
        "requestsPerSecond",
        "estimatedSeconds",
    ] {
        assert!(sim.get(key).is_some(), "{key}: {sim:#}");
    }
    assert_eq!(json["wouldRemove"], true);
    assert_eq!(json["errors"], 0);
    assert_eq!(
        sim["requests"].as_u64().unwrap(),
        sim["listingRequests"].as_u64().unwrap() + 8
    );
    setup.app.stop().await;
}

#[tokio::test]
async fn a_widened_filter_lists_what_enters_and_removes_nothing() {
    let narrowed = |sim: &Simulator| {
        SimProviderConfig::new(sim)
            .provider_extra("        filters: {projectKey: '^P0001$'}\n")
            .yaml()
    };
    let setup = running(narrowed).await;
    let all = all_repositories(&setup, &SimProviderConfig::new(&setup.sim).yaml()).await;
    // The paced integration: the cost is told in time.
    let widened = SimProviderConfig::new(&setup.sim)
        .integration_extra("      rateLimit: {requestsPerSecond: 4}\n")
        .yaml();
    let (code, json) = plan(&setup, &widened).await;
    assert_eq!(code, 0, "{json:#}");
    let sim = provider(&json, "sim");
    let entering: Vec<String> = all
        .iter()
        .filter(|r| !r.starts_with("P0001/"))
        .cloned()
        .collect();
    assert_eq!(entering.len(), 8);
    assert_eq!(strings(&sim["entering"]), entering);
    assert_eq!(sim["leaving"], serde_json::json!([]));
    assert_eq!(sim["removedEntities"], serde_json::json!([]));
    assert_eq!(json["wouldRemove"], false);
    assert_eq!(sim["requestsPerSecond"], 4.0);
    let requests = sim["requests"].as_f64().unwrap();
    assert!((sim["estimatedSeconds"].as_f64().unwrap() - requests / 4.0).abs() < 1e-9);
    setup.app.stop().await;
}

#[tokio::test]
async fn a_new_provider_and_a_removed_one_are_named() {
    let setup = running(|sim| SimProviderConfig::new(sim).yaml()).await;
    let all = all_repositories(&setup, &SimProviderConfig::new(&setup.sim).yaml()).await;
    let served = setup.app.entity_refs().await;

    // Added beside the stored one: nothing removed.
    let added = format!(
        "{}      extra:\n        host: {}\n        filters: {{projectKey: '^P0002$'}}\n        schedule: {{frequency: {{trigger: manual}}}}\n",
        SimProviderConfig::new(&setup.sim).yaml(),
        setup.sim.host()
    );
    let (code, json) = plan(&setup, &added).await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["providersAdded"], serde_json::json!(["extra"]));
    assert_eq!(json["providersRemoved"], serde_json::json!([]));
    let extra = provider(&json, "extra");
    assert_eq!(extra["added"], true);
    let p0002: Vec<String> = all
        .iter()
        .filter(|r| r.starts_with("P0002/"))
        .cloned()
        .collect();
    assert_eq!(strings(&extra["entering"]), p0002);
    assert_eq!(strings(&extra["reads"]), p0002);

    // Only `other`: `sim` and all its entities go.
    let replaced = SimProviderConfig::new(&setup.sim)
        .yaml()
        .replace("      sim:\n", "      other:\n");
    let (code, json) = plan(&setup, &replaced).await;
    assert_eq!(code, 3, "{json:#}");
    assert_eq!(json["providersAdded"], serde_json::json!(["other"]));
    let removed = json["providersRemoved"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{json:#}");
    assert_eq!(removed[0]["id"], "sim");
    assert_eq!(
        strings(&removed[0]["removedEntities"])
            .into_iter()
            .collect::<BTreeSet<_>>(),
        served
    );
    assert!(removed[0]["guardHolds"].is_boolean());

    // The table says the same for people, and never a secret.
    let (_dir, file) = write_config(&format!(
        "{}\n",
        replaced.replace(
            "      apiBaseUrl:",
            "      token: plan-s3cret-token\n      apiBaseUrl:"
        )
    ));
    let output = run_binary(
        vec!["plan".into(), "--config".into(), file.display().to_string()],
        vec![(
            "APP_CONFIG_backend_database_connection",
            setup.database.display().to_string(),
        )],
    )
    .await;
    let table = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{table}{}",
        text(&output.stderr)
    );
    assert!(table.contains("provider removed: sim"), "{table}");
    assert!(
        !table.contains("plan-s3cret-token") && !text(&output.stderr).contains("plan-s3cret-token")
    );
    setup.app.stop().await;
}

#[tokio::test]
async fn on_postgresql_plan_reads_in_a_read_only_transaction_beside_the_daemon() {
    use crate::support::PgDatabase;
    let sim = components_simulator(2, 3).await;
    let database = PgDatabase::fresh();
    let app = TestApp::spawn_on_postgres(&SimProviderConfig::new(&sim).yaml(), &database).await;
    let status = app.refresh("sim", "").await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    let pool = database.pool().await;
    let rows = |pool: sqlx::PgPool| async move {
        let entities: Vec<(String, i64)> =
            sqlx::query_as("SELECT entity_key, seq FROM catalog_entities ORDER BY entity_key")
                .fetch_all(&pool)
                .await
                .unwrap();
        let repositories: Vec<(String, String)> =
            sqlx::query_as("SELECT unit, CAST(record AS TEXT) FROM repositories ORDER BY unit")
                .fetch_all(&pool)
                .await
                .unwrap();
        (entities, repositories)
    };
    let before = rows(pool.clone()).await;
    assert!(!before.0.is_empty());

    let narrowed = SimProviderConfig::new(&sim)
        .provider_extra("        filters: {projectKey: '^P0001$'}\n")
        .yaml();
    let (_dir, file) = write_config(&narrowed);
    let output = run_binary(
        vec![
            "plan".into(),
            "--format".into(),
            "json".into(),
            "--config".into(),
            file.display().to_string(),
        ],
        vec![
            ("APP_CONFIG_backend_database_client", "pg".to_owned()),
            (
                "APP_CONFIG_backend_database_connection",
                database.url.clone(),
            ),
        ],
    )
    .await;
    let stdout = text(&output.stdout);
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", text(&output.stderr)));
    assert_eq!(output.status.code(), Some(3), "{json:#}");
    let sim_plan = provider(&json, "sim");
    let leaving = strings(&sim_plan["leaving"]);
    assert_eq!(leaving.len(), 3, "{json:#}");
    assert!(
        leaving.iter().all(|r| r.starts_with("P0002/")),
        "{leaving:?}"
    );
    assert!(json["store"].as_str().unwrap().starts_with("PostgreSQL"));
    assert!(!stdout.contains(&database.url));
    assert_eq!(rows(pool.clone()).await, before, "plan wrote nothing");
    app.stop().await;
    pool.close().await;
    database.drop_database().await;
}
