//! Serving performance with a large stored catalog: restart-to-ready time,
//! RSS, full listing, by-query pages, and by-name latency/throughput under
//! `wrk` (if installed) — `cargo bench --bench api [-- ENTITIES]`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bitbucket_catalogd::Application;
use bitbucket_catalogd::catalog::Entity;
use bitbucket_catalogd::config::{Config, Environment};
use bitbucket_catalogd::discovery::RunReport;
use bitbucket_catalogd::store::{CatalogStore, SqliteStore};
use tokio_util::sync::CancellationToken;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

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
        "spec": {"type": if i % 3 == 0 { "website" } else { "service" }, "lifecycle": "production", "owner": format!("team-{}", i % 40), "system": format!("system-{}", i % 100)},
    }))
    .expect("valid entity")
}

async fn seed(db: &Path, count: usize) {
    let store = SqliteStore::open(db).await.expect("store");
    let entities: Vec<Entity> = (0..count).map(entity).collect();
    store
        .save_source("bench", &entities, &RunReport::new("bench"))
        .await
        .expect("seed");
    store.close().await;
}

fn config(db: &Path) -> Config {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app-config.yaml");
    // A provider that never runs during the benchmark (manual, first run in an hour).
    std::fs::write(
        &file,
        "integrations:\n  bitbucketServer:\n    - host: 127.0.0.1:9\n      apiBaseUrl: http://127.0.0.1:9/rest/api/1.0\ncatalog:\n  providers:\n    bitbucketServer:\n      bench:\n        host: 127.0.0.1:9\n        schedule:\n          frequency: { trigger: manual }\n          initialDelay: { hours: 1 }\n",
    )
    .expect("write config");
    let env = Environment::from_pairs([
        ("APP_CONFIG_backend_listen_host", "127.0.0.1"),
        ("APP_CONFIG_backend_listen_port", "0"),
        (
            "APP_CONFIG_backend_database_connection",
            db.to_str().unwrap_or_default(),
        ),
    ]);
    Config::load(&[file], &env).expect("config").config
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("catalog.sqlite");
    seed(&db, count).await;
    let rss_before = status_kib("VmRSS:");

    let started = Instant::now();
    let app = Application::build(config(&db)).await.expect("app");
    let restart = started.elapsed();
    let address = format!("http://{}", app.local_addr());
    let stop = CancellationToken::new();
    let token = stop.clone();
    let server =
        tokio::spawn(async move { app.run_until(async move { token.cancelled().await }).await });
    println!("entities                      {count}");
    println!(
        "restart to ready              {:.0} ms (open store, load, index, bind)",
        restart.as_secs_f64() * 1e3
    );
    println!(
        "RSS after load                {} KiB (before build: {rss_before} KiB)",
        status_kib("VmRSS:")
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
    println!("RSS after queries             {} KiB", status_kib("VmRSS:"));

    let script = dir.path().join("by-name.lua");
    std::fs::write(
        &script,
        format!("counter = 0\nrequest = function()\n  counter = counter + 1\n  local i = (counter * 7919) % {count}\n  if i % 5 == 0 then i = i + 1 end\n  if i >= {count} then i = 1 end\n  return wrk.format('GET', string.format('/api/catalog/entities/by-name/component/default/service-%06d', i))\nend\n"),
    )
    .expect("script");
    let url = address.clone();
    let wrk = tokio::task::spawn_blocking(move || {
        Command::new("wrk")
            .args(["-t1", "-c16", "-d10s", "--latency", "-s"])
            .arg(&script)
            .arg(url)
            .output()
    })
    .await;
    match wrk {
        Ok(Ok(out)) if out.status.success() => println!(
            "wrk -t1 -c16 -d10s --latency (by-name, rotating names):\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        _ => println!(
            "wrk not available: install it (apt-get install wrk) for the by-name load test"
        ),
    }
    stop.cancel();
    let _ = server.await;
}
