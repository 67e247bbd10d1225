//! Start-up and queries at scale: `cargo bench --bench queries [-- ENTITIES]`
//! (default 100,000; issue 29 asks for 1,000,000). `QUERIES_BENCH_DB=pg`
//! runs on PostgreSQL (127.0.0.1:5432, user `postgres`, trust; a database
//! of its own, dropped at the end) with a leader and a follower instead of
//! one daemon on SQLite. `QUERIES_BENCH_SQLITE=FILE` keeps the SQLite store
//! in FILE: seeded when it does not exist, reused as it is when it does;
//! `QUERIES_BENCH_IN_PROCESS=1` runs only the in-process part.
//!
//! Seeds ENTITIES entities (components and APIs with tags, owners and
//! systems, one repository each) across four providers of two integrations,
//! in batches, as provider runs leave them; starts the real daemon (`serve`)
//! on the store as a child process and measures: process start to ready,
//! how long the background settling takes, RSS; sorted by-query pages,
//! facets, a full `GET /entities` (time, size, RSS and peak RSS before and
//! after); by-name and by-query latency under load from a small load
//! generator in this process (4 and 16 connections, 10 s; `wrk` is not
//! needed). Then it restarts the daemon on the store it left (ready after
//! restart, RSS) and, with the daemon stopped, restores the store in this
//! process (streamed load, settling) and times one-repository changes
//! through the applier (served and stored), p50/p95. Times are medians and
//! bests of N runs.

mod support;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_catalogd::{
    Applier, Batch, Catalog, CatalogStore, Entity, EntityKey, PostgresStore, RunReport,
    SqliteStore, UnitEntities, UnitUpdate, postgres_connection,
};

/// Providers, the first two on one integration, the others on another.
const SOURCES: [&str; 4] = ["bench-a", "bench-b", "bench-c", "bench-d"];
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// The process's user + system CPU time, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.to_owned();
            let fields: Vec<&str> = after.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

fn entity(i: usize, description: &str) -> Entity {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": if i % 5 == 0 { "API" } else { "Component" },
        "metadata": {
            "name": format!("service-{i:07}"),
            "description": description,
            "tags": ["java", if i % 2 == 0 { "web" } else { "batch" }],
            "annotations": {
                "backstage.io/managed-by-location": format!("url:{}", unit(i)),
                "backstage.io/managed-by-origin-location": format!("url:{}", unit(i)),
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

const DESCRIPTION: &str =
    "A service of the benchmark catalog, with a description of ordinary length.";

/// Entity `i`'s repository (its unit).
fn unit(i: usize) -> String {
    format!(
        "https://bitbucket.example.com/projects/P{}/repos/service-{i:07}/browse/catalog-info.yaml",
        i % 200
    )
}

/// Entity `i`'s provider.
fn source(i: usize) -> &'static str {
    SOURCES[i % SOURCES.len()]
}

/// Where the catalog is stored.
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, name: String },
}

impl Db {
    async fn open(&self) -> Arc<dyn CatalogStore> {
        match self {
            Db::Sqlite(path) => Arc::new(SqliteStore::open(path).await.expect("sqlite")),
            Db::Postgres { url, .. } => {
                let connection = postgres_connection(Some(&serde_json::Value::String(url.clone())))
                    .expect("url");
                Arc::new(PostgresStore::open(&connection).await.expect("postgres"))
            }
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Db::Sqlite(path) => vec![(
                "APP_CONFIG_backend_database_connection",
                path.display().to_string(),
            )],
            Db::Postgres { url, .. } => vec![
                ("APP_CONFIG_backend_database_client", "pg".into()),
                ("APP_CONFIG_backend_database_connection", url.clone()),
            ],
        }
    }

    async fn drop(&self) {
        use sqlx::Connection;
        let Db::Postgres { name, .. } = self else {
            return;
        };
        if let Ok(mut conn) = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres")).await {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

/// Stores `count` entities as provider runs would: each batch prepared by
/// the catalog (rendered, stitched, search rows and references built) and
/// written by the store's own `apply`, one transaction per provider and
/// batch, so the rows are those a run writes. The entities of different
/// batches relate to nothing in another, so each batch is prepared in a
/// catalog of its own (the seeding process never holds the whole catalog),
/// on a thread of its own while the store writes the previous one.
async fn seed(store: &dyn CatalogStore, count: usize) {
    const BATCH: usize = 20_000;
    let (tx, mut rx) = tokio::sync::mpsc::channel(SOURCES.len());
    let preparing = tokio::task::spawn_blocking(move || {
        let mut seq = 0;
        for from in (0..count).step_by(BATCH) {
            let catalog = Catalog::new();
            catalog.restore(std::iter::empty(), std::iter::empty(), seq, 0);
            for source in SOURCES {
                let units = (from..count.min(from + BATCH))
                    .filter(|i| self::source(*i) == source)
                    .map(|i| UnitEntities {
                        unit: unit(i),
                        entities: vec![entity(i, DESCRIPTION).into()],
                    })
                    .collect();
                let applied = catalog.prepare(source, units);
                seq = applied.changes.iter().map(|c| c.seq()).max().unwrap_or(seq);
                if tx.blocking_send((source, applied)).is_err() {
                    return;
                }
            }
        }
    });
    while let Some((source, applied)) = rx.recv().await {
        store
            .apply(Batch {
                source,
                changes: &applied.changes,
                repositories: &[],
                forgotten: &[],
                withheld: &[],
            })
            .await
            .expect("seed");
    }
    preparing.await.expect("prepared");
    for source in SOURCES {
        store
            .save_run(source, &RunReport::new(source))
            .await
            .expect("seed");
    }
}

fn start_daemon(dir: &Path, db: &[(&'static str, String)]) -> (Child, String, Duration) {
    let config = dir.join("app-config.yaml");
    // Providers that never run during the benchmark (manual, first run in an hour).
    let provider = |id: &str, host: &str| {
        format!(
            "      {id}:\n        host: {host}\n        schedule:\n          frequency: {{ trigger: manual }}\n          initialDelay: {{ hours: 1 }}\n"
        )
    };
    let providers: String = SOURCES
        .iter()
        .enumerate()
        .map(|(n, id)| provider(id, if n < 2 { "127.0.0.1:9" } else { "localhost:9" }))
        .collect();
    std::fs::write(
        &config,
        format!("integrations:\n  bitbucketServer:\n    - host: 127.0.0.1:9\n      apiBaseUrl: http://127.0.0.1:9/rest/api/1.0\n    - host: localhost:9\n      apiBaseUrl: http://localhost:9/rest/api/1.0\ncatalog:\n  providers:\n    bitbucketServer:\n{providers}"),
    )
    .expect("write config");
    support::serve::serve_until_ready(&config, db, Duration::from_secs(600))
}

/// Waits until the daemon used under 5 % of a core over 2 s (the
/// background settling is done), at most `limit`; the time until the
/// quiet 2 s began.
fn wait_idle(pid: u32, limit: Duration) -> Duration {
    let started = Instant::now();
    let ticks_per_s = 100.0;
    loop {
        let at = started.elapsed();
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(2));
        let used = (cpu_ticks(pid) - before) as f64 / ticks_per_s;
        if used < 0.1 || started.elapsed() > limit {
            return at;
        }
    }
}

/// Median and best time of `runs` GETs of `url`, and the body's size.
async fn timed_get(http: &reqwest::Client, url: &str, runs: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let response = http.get(url).send().await.expect("get");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        let body = response.bytes().await.expect("body");
        times.push(started.elapsed());
        size = body.len();
    }
    times.sort();
    (times[times.len() / 2], times[0], size)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// What a load run measured.
struct Load {
    rate: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// Answers that were not a success (e.g. 503 over the query budget).
    failed: usize,
}

/// `connections` clients sending GETs of `path(i)` back to back for
/// `length`, `i` rotating over the catalog.
async fn load(
    address: &str,
    count: usize,
    connections: usize,
    length: Duration,
    path: fn(usize) -> String,
) -> Load {
    let address: Arc<str> = Arc::from(address);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let address = Arc::clone(&address);
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut failed = 0;
            let mut i = c * 7919;
            while started.elapsed() < length {
                i = (i + 7919) % count;
                let url = format!("{address}{}", path(i));
                let sent = Instant::now();
                let response = http.get(&url).send().await.expect("get");
                let success = response.status().is_success();
                let _ = response.bytes().await.expect("body");
                latencies.push(sent.elapsed());
                failed += usize::from(!success);
            }
            (latencies, failed)
        }));
    }
    let mut all = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (latencies, failures) = task.await.expect("load task");
        all.extend(latencies);
        failed += failures;
    }
    let elapsed = started.elapsed();
    all.sort();
    Load {
        rate: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        max: all[all.len() - 1],
        failed,
    }
}

/// A component's by-name path (every fifth entity is an API).
fn by_name(i: usize) -> String {
    let i = if i % 5 == 0 { i + 1 } else { i };
    format!("/api/catalog/entities/by-name/component/default/service-{i:07}")
}

/// One of the first ten sorted pages of 100 components (by offset).
fn by_query(i: usize) -> String {
    format!(
        "/api/catalog/entities/by-query?limit=100&orderField=metadata.name,asc&filter=kind%3Dcomponent&offset={}",
        (i % 10) * 100
    )
}

async fn report_load(address: &str, count: usize) {
    for (what, connections, path) in [
        ("by-name", 4, by_name as fn(usize) -> String),
        ("by-name", 16, by_name),
        ("by-query page (sorted, first 10 pages)", 4, by_query),
    ] {
        let Load {
            rate,
            p50,
            p99,
            max,
            failed,
        } = load(
            address,
            count.saturating_sub(1).max(1),
            connections,
            Duration::from_secs(10),
            path,
        )
        .await;
        println!(
            "{what} under load, {connections:>2} connections, 10 s: {rate:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, {failed} not 2xx",
            ms(p50),
            ms(p99),
            ms(max)
        );
    }
}

async fn report_queries(http: &reqwest::Client, address: &str) {
    let runs = 20;
    let queries = [
        (
            "by-query, filter kind, sorted name, 100",
            "entities/by-query?limit=100&orderField=metadata.name,asc&filter=kind%3Dcomponent",
        ),
        (
            "by-query, sorted name desc, 100",
            "entities/by-query?limit=100&orderField=metadata.name,desc",
        ),
        (
            "by-query, sorted spec.owner, 100",
            "entities/by-query?limit=100&orderField=spec.owner,asc",
        ),
        (
            "entity-facets (spec.type, metadata.tags)",
            "entity-facets?facet=spec.type&facet=metadata.tags",
        ),
        (
            "entity-facets (kind, spec.owner)",
            "entity-facets?facet=kind&facet=spec.owner",
        ),
    ];
    for (what, path) in queries {
        let (median, best, _) =
            timed_get(http, &format!("{address}/api/catalog/{path}"), runs).await;
        println!(
            "{what:<42} median {:.2} ms, best {:.2} ms",
            ms(median),
            ms(best)
        );
    }
    // A next page through the cursor of the first page.
    let first: serde_json::Value = http
        .get(format!("{address}/api/catalog/entities/by-query?limit=100&orderField=metadata.name,asc&offset=0"))
        .send()
        .await
        .expect("page")
        .json()
        .await
        .expect("json");
    let cursor = first["pageInfo"]["nextCursor"]
        .as_str()
        .expect("next cursor");
    let cursor: String = url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
    let (median, best, _) = timed_get(
        http,
        &format!("{address}/api/catalog/entities/by-query?limit=100&cursor={cursor}"),
        runs,
    )
    .await;
    println!(
        "{:<42} median {:.2} ms, best {:.2} ms",
        "by-query next page (cursor)",
        ms(median),
        ms(best)
    );
}

async fn report_full_listing(http: &reqwest::Client, address: &str, pid: u32) {
    let url = format!("{address}/api/catalog/entities");
    let (rss, peak) = (
        support::status_kib(pid, "VmRSS:"),
        support::status_kib(pid, "VmHWM:"),
    );
    let (median, best, size) = timed_get(http, &url, 5).await;
    println!(
        "{:<42} median {:.0} ms, best {:.0} ms, {:.1} MiB; RSS {:.1} → {:.1} MiB, peak RSS {:.1} → {:.1} MiB",
        "GET /entities (all, collected)",
        ms(median),
        ms(best),
        size as f64 / 1048576.0,
        mib(rss),
        mib(support::status_kib(pid, "VmRSS:")),
        mib(peak),
        mib(support::status_kib(pid, "VmHWM:")),
    );
    // The same answer read as it arrives (a client that parses as it
    // reads holds no copy of it): time to the last byte.
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let mut response = http.get(&url).send().await.expect("get");
        assert!(response.status().is_success(), "{url}");
        let mut received = 0;
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            received += chunk.len();
        }
        times.push(started.elapsed());
        assert_eq!(received, size, "the same answer");
    }
    times.sort();
    println!(
        "{:<42} median {:.0} ms, best {:.0} ms",
        "GET /entities (all, read as it arrives)",
        ms(times[times.len() / 2]),
        ms(times[0]),
    );
}

/// Starts a daemon on `db`, reports its ready time and settling, and
/// returns it with its address.
async fn started(dir: &Path, db: &Db, label: &str) -> (Child, String) {
    let (dir_path, env) = (dir.to_owned(), db.env());
    let (child, address, ready) =
        tokio::task::spawn_blocking(move || start_daemon(&dir_path, &env))
            .await
            .expect("start");
    let pid = child.id();
    let rss_at_ready = support::status_kib(pid, "VmRSS:");
    println!(
        "{label:<34} ready {:.0} ms (process start to readiness 200); RSS then {:.1} MiB",
        ms(ready),
        mib(rss_at_ready)
    );
    let idle = tokio::task::spawn_blocking(move || wait_idle(pid, Duration::from_secs(600)))
        .await
        .expect("idle");
    println!(
        "{:<34} idle {:.1} s after ready (background settling); RSS {:.1} MiB, peak {:.1} MiB",
        "",
        idle.as_secs_f64(),
        mib(support::status_kib(pid, "VmRSS:")),
        mib(support::status_kib(pid, "VmHWM:"))
    );
    (child, address)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// With no daemon running: restores the store in this process as start-up
/// does, settles, and times one-repository changes (served and stored).
async fn one_repository_changes(db: &Db, count: usize) {
    let store = db.open().await;
    let catalog = Arc::new(Catalog::new());
    let loading = Instant::now();
    let restored = store.restore(usize::MAX, &catalog).await.expect("restore");
    let loaded = loading.elapsed();
    let applier = Applier::new(Arc::clone(&catalog), Arc::clone(&store));
    let settling = Instant::now();
    applier.settle();
    // The first apply waits for settling to finish.
    applier.apply(SOURCES[0], Vec::new()).await;
    println!(
        "in process: streamed restore of {} entities {:.0} ms; settling (relation index) {:.0} ms",
        restored.entities,
        ms(loaded),
        ms(settling.elapsed())
    );
    let mut walls = Vec::new();
    for round in 0..50 {
        let i = (4243 + round * 7919) % count;
        let key = EntityKey::new(
            if i % 5 == 0 { "api" } else { "component" },
            "default",
            &format!("service-{i:07}"),
        );
        let description = format!("round {round}: a changed description");
        let update = UnitUpdate {
            unit: unit(i),
            record: None,
            entities: Some(vec![entity(i, &description).into()]),
        };
        let wall = Instant::now();
        let problems = applier.apply(source(i), vec![update]).await;
        let wall = wall.elapsed();
        assert!(problems.is_empty(), "{problems:?}");
        let served = catalog.get(&key).expect("served");
        assert!(served.json.contains(&description), "the change is served");
        walls.push(wall);
    }
    walls.sort();
    println!(
        "one-repository change (served + stored), 50 rounds: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        ms(percentile(&walls, 0.5)),
        ms(percentile(&walls, 0.95)),
        ms(walls[walls.len() - 1]),
    );
    applier.close().await;
    store.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    // A SQLite file of one's own is seeded once and kept (later runs skip seeding).
    let kept = std::env::var_os("QUERIES_BENCH_SQLITE").map(std::path::PathBuf::from);
    let seeded = kept.as_ref().is_some_and(|file| file.exists());
    let db = if let Some(file) = kept {
        Db::Sqlite(file)
    } else if std::env::var("QUERIES_BENCH_DB").as_deref() == Ok("pg") {
        let name = format!("catalogd_bench_queries_{}", std::process::id());
        Db::Postgres {
            url: format!("{POSTGRES}/{name}"),
            name,
        }
    } else {
        Db::Sqlite(dir.path().join("catalog.sqlite"))
    };
    let seeding = Instant::now();
    if !seeded {
        let store = db.open().await;
        seed(&*store, count).await;
        store.close().await;
    }
    println!(
        "entities                           {count} across {} providers of 2 integrations, {} (seeded in {:.1} s)",
        SOURCES.len(),
        match db {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres { .. } => "PostgreSQL",
        },
        seeding.elapsed().as_secs_f64()
    );

    // `QUERIES_BENCH_IN_PROCESS=1`: only the in-process part (no daemon).
    if std::env::var("QUERIES_BENCH_IN_PROCESS").as_deref() == Ok("1") {
        one_repository_changes(&db, count).await;
        db.drop().await;
        return;
    }
    let http = reqwest::Client::new();
    let (child, address) = started(dir.path(), &db, "first start").await;
    let pid = child.id();
    report_queries(&http, &address).await;
    report_full_listing(&http, &address, pid).await;
    report_load(&address, count).await;
    println!(
        "daemon RSS at the end              {:.1} MiB",
        mib(support::status_kib(pid, "VmRSS:"))
    );
    stop(child);

    let (leader, address) = started(dir.path(), &db, "restart on the store it left").await;
    if matches!(db, Db::Postgres { .. }) {
        let (follower, follower_address) = started(dir.path(), &db, "follower (leader up)").await;
        let pid = follower.id();
        report_full_listing(&http, &follower_address, pid).await;
        println!("on the follower:");
        report_load(&follower_address, count).await;
        stop(follower);
    }
    report_full_listing(&http, &address, leader.id()).await;
    stop(leader);

    one_repository_changes(&db, count).await;
    db.drop().await;
}
