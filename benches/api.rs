//! Serving performance with a large stored catalog: `cargo bench --bench api [-- ENTITIES]`.
//!
//! Seeds a SQLite store with ENTITIES (default 10,000) entities, starts the
//! real daemon (`serve`) on it as a child process and measures: time from
//! process start to ready, the daemon's RSS, a full listing, a sorted
//! by-query page, facets, and by-name latency/throughput under `wrk`
//! (if installed) at two connection counts (`API_BENCH_WRK=0` skips it);
//! then restarts the daemon on the store it left and measures ready time,
//! RSS and a full listing again. `API_BENCH_SEED_ONLY=FILE` only seeds FILE
//! (e.g. to run `serve` on it under a heap profiler).

mod support;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use bitbucket_catalogd::RunReport;
use bitbucket_catalogd::{CatalogStore, SqliteStore};
use bitbucket_catalogd::{Entity, UnitEntities};
use support::serve::{serve_until_ready, stop};

fn entity(i: usize) -> Entity {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": if i % 5 == 0 { "API" } else { "Component" },
        "metadata": {
            "name": format!("service-{i:06}"),
            "description": "A service of the benchmark catalog, with a description of ordinary length.",
            "tags": ["java", if i % 2 == 0 { "web" } else { "batch" }],
            "annotations": {
                "backstage.io/managed-by-location": format!("url:https://bitbucket.example.com/projects/P{}/repos/service-{i:06}/browse/catalog-info.yaml", i % 200),
                "backstage.io/managed-by-origin-location": format!("url:https://bitbucket.example.com/projects/P{}/repos/service-{i:06}/browse/catalog-info.yaml", i % 200),
            },
        },
        "spec": if i % 5 == 0 {
            serde_json::json!({"type": "openapi", "lifecycle": "production", "owner": format!("team-{}", i % 40), "definition": "openapi: 3.0.0"})
        } else {
            serde_json::json!({"type": if i % 3 == 0 { "website" } else { "service" }, "lifecycle": "production", "owner": format!("team-{}", i % 40), "system": format!("system-{}", i % 100)})
        },
    }))
    .expect("valid entity")
}

/// Renders the entities the way a run does (stitched) and stores them.
async fn seed(db: &Path, count: usize) {
    // One repository (unit) per entity, as a provider run keeps them.
    let units = (0..count)
        .map(|i| UnitEntities {
            unit: format!("https://bitbucket.example.com/projects/P{}/repos/service-{i:06}/browse/catalog-info.yaml", i % 200),
            entities: vec![entity(i).into()],
        })
        .collect();
    let store = SqliteStore::open(db).await.expect("store");
    support::seed_units(&store, units).await;
    store
        .save_run("bench", &RunReport::new("bench"))
        .await
        .expect("seed");
    store.close().await;
}

/// `serve` on the store at `db` with a provider that never runs during the
/// benchmark (manual, first run in an hour).
fn start_daemon(dir: &Path, db: &Path) -> (Child, String, Duration) {
    let config = dir.join("app-config.yaml");
    std::fs::write(
        &config,
        "integrations:\n  bitbucketServer:\n    - host: 127.0.0.1:9\n      apiBaseUrl: http://127.0.0.1:9/rest/api/1.0\ncatalog:\n  providers:\n    bitbucketServer:\n      bench:\n        host: 127.0.0.1:9\n        schedule:\n          frequency: { trigger: manual }\n          initialDelay: { hours: 1 }\n",
    )
    .expect("write config");
    let db = [(
        "APP_CONFIG_backend_database_connection",
        db.display().to_string(),
    )];
    serve_until_ready(&config, &db, Duration::from_secs(60))
}

async fn timed_get(http: &reqwest::Client, url: &str, runs: u32) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let body = http
            .get(url)
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        best = best.min(started.elapsed());
        size = body.len();
    }
    (best, size)
}

/// Prints wrk's report on by-name lookups of `count` entities' components.
fn wrk(address: &str, count: usize, connections: u32, dir: &Path) {
    let pick = format!(
        "  local i = (counter * 7919) % {count}\n  if i % 5 == 0 then i = i + 1 end\n  if i >= {count} then i = 1 end\n"
    );
    match support::wrk_by_name(address, dir, connections, &pick) {
        Some(report) => {
            println!("wrk -t1 -c{connections} -d10s --latency (by-name, rotating names):\n{report}")
        }
        None => println!(
            "wrk not available: install it (apt-get install wrk) for the by-name load test"
        ),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    // For heap profiles of `serve` on the same data: seed a store and stop.
    if let Ok(path) = std::env::var("API_BENCH_SEED_ONLY") {
        seed(Path::new(&path), count).await;
        println!("seeded {count} entities into {path}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("catalog.sqlite");
    seed(&db, count).await;

    let (mut child, address, ready) = start_daemon(dir.path(), &db);
    let pid = child.id();
    println!("entities                      {count}");
    println!(
        "process start to ready        {:.0} ms (open store, load, index, bind; settling relations continues in the background)",
        ready.as_secs_f64() * 1e3
    );
    tokio::time::sleep(Duration::from_secs(if count > 50_000 { 15 } else { 3 })).await;
    println!(
        "daemon RSS after load         {:.1} MiB (peak so far {:.1} MiB)",
        support::status_mib(pid, "VmRSS:"),
        support::status_mib(pid, "VmHWM:")
    );

    let http = reqwest::Client::new();
    let (full, size) = timed_get(&http, &format!("{address}/api/catalog/entities"), 5).await;
    println!(
        "GET /entities (all)           {:.1} ms, {:.1} MiB",
        full.as_secs_f64() * 1e3,
        size as f64 / 1048576.0
    );
    let (page, _) = timed_get(&http, &format!("{address}/api/catalog/entities/by-query?limit=100&orderField=metadata.name,asc&filter=kind%3Dcomponent"), 20).await;
    println!(
        "by-query page (100, sorted)   {:.1} ms",
        page.as_secs_f64() * 1e3
    );
    let (facets, _) = timed_get(
        &http,
        &format!("{address}/api/catalog/entity-facets?facet=spec.type&facet=metadata.tags"),
        20,
    )
    .await;
    println!(
        "entity-facets (2 facets)      {:.1} ms",
        facets.as_secs_f64() * 1e3
    );
    let (by_name, _) = timed_get(
        &http,
        &format!("{address}/api/catalog/entities/by-name/component/default/service-000001"),
        200,
    )
    .await;
    println!(
        "by-name (single request)      {:.3} ms",
        by_name.as_secs_f64() * 1e3
    );
    println!(
        "daemon RSS after queries      {:.1} MiB",
        support::status_mib(pid, "VmRSS:")
    );

    if std::env::var("API_BENCH_WRK").as_deref() != Ok("0") {
        let address_for_wrk = address.clone();
        let path = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            wrk(&address_for_wrk, count, 4, &path);
            wrk(&address_for_wrk, count, 16, &path);
        })
        .await
        .expect("wrk");
        println!(
            "daemon RSS after load test    {:.1} MiB",
            support::status_mib(pid, "VmRSS:")
        );
    }
    stop(&mut child);

    // Again on the store the first daemon settled and left.
    let (mut child, address, ready) = start_daemon(dir.path(), &db);
    let pid = child.id();
    println!(
        "ready after restart           {:.0} ms",
        ready.as_secs_f64() * 1e3
    );
    tokio::time::sleep(Duration::from_secs(if count > 50_000 { 15 } else { 3 })).await;
    println!(
        "RSS after restart             {:.1} MiB (peak {:.1} MiB)",
        support::status_mib(pid, "VmRSS:"),
        support::status_mib(pid, "VmHWM:")
    );
    let (full, _) = timed_get(&http, &format!("{address}/api/catalog/entities"), 3).await;
    println!(
        "GET /entities after restart   {:.1} ms; RSS then {:.1} MiB",
        full.as_secs_f64() * 1e3,
        support::status_mib(pid, "VmRSS:")
    );
    stop(&mut child);
}
