//! Replicas on PostgreSQL: `cargo bench --bench replicas [-- ROUNDS]`.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (user `postgres`, trust, as the
//! tests) and `wrk` for the throughput part. Runs the real daemon as child
//! processes and measures:
//!
//! 1. change propagation leader → follower: ROUNDS (default 100) pushes,
//!    each delivered to the leader as a webhook; the time from the leader
//!    serving the change to the follower serving it, both observed with
//!    change-feed long-polls started before the push (p50/p99/max);
//! 2. failover: `kill -9` of the leader → the follower leads, and → its
//!    first run has completed (5 hand-overs, a fresh follower each time);
//! 3. by-name throughput (wrk, 4 connections, 10 s, rotating names) over
//!    10,000 seeded entities: a daemon on SQLite, then the leader and a
//!    follower on PostgreSQL.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitbucket_catalogd::postgres_connection;
use bitbucket_catalogd::{CatalogStore, PostgresStore, SqliteStore};
use bitbucket_catalogd::{Entity, UnitEntities};
use bitbucket_sim::{FileKind, RepoRef, Simulator};
use serde_json::Value;
use support::sim::{SimProviderConfig, components_simulator};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
const SECRET: &str = "bench-s3cret";
const SEEDED: usize = 10_000;

struct Daemon {
    child: Child,
    address: String,
}

impl Daemon {
    /// Starts `serve` on `config` with `env`, and waits until it is ready.
    fn start(config: &Path, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut command = Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"));
        command
            .args(["serve", "--config"])
            .arg(config)
            .env("APP_CONFIG_backend_listen_host", "127.0.0.1")
            .env("APP_CONFIG_backend_listen_port", port.to_string())
            .env("RUST_LOG", "error,tower_http=off")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("daemon starts");
        let address = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while get_blocking(&format!("{address}/.backstage/health/v1/readiness")) != Some(200) {
            assert!(started.elapsed() < Duration::from_secs(60), "never ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, address }
    }

    fn kill_9(mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The status of a GET (std only, for the readiness loop).
fn get_blocking(url: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.get(9..12)?.parse().ok()
}

async fn json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .unwrap_or(Value::Null)
}

fn fresh_database(tag: &str) -> (String, String) {
    let name = format!("catalogd_bench_{tag}_{}", std::process::id());
    (format!("{POSTGRES}/{name}"), name)
}

async fn drop_database(name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres")).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn sim_config(dir: &Path, sim: &Simulator) -> std::path::PathBuf {
    let config = dir.join("replicas.yaml");
    let yaml = SimProviderConfig::new(sim)
        .webhook_secret(SECRET)
        .schedule("frequency: {minutes: 30}")
        .yaml();
    std::fs::write(&config, yaml).expect("config");
    config
}

/// The cursor after everything `address` serves now.
async fn cursor(http: &reqwest::Client, address: &str) -> String {
    let mut query = String::from("?limit=10000");
    loop {
        let page = json(http, &format!("{address}/api/catalog/changes{query}")).await;
        let next = page["cursor"].as_str().unwrap_or("0").to_owned();
        if page["hasMore"] != true {
            return next;
        }
        query = format!("?after={next}&limit=10000");
    }
}

/// When the feed of `address` moves past `after` (long-poll).
async fn published(http: reqwest::Client, address: String, after: String) -> (Instant, String) {
    loop {
        let page = json(
            &http,
            &format!("{address}/api/catalog/changes?after={after}&wait=30&limit=10000"),
        )
        .await;
        let at = Instant::now();
        if page["items"].as_array().is_some_and(|i| !i.is_empty()) {
            return (at, page["cursor"].as_str().unwrap_or_default().to_owned());
        }
    }
}

async fn propagation(rounds: usize) {
    let sim = components_simulator(4, 25).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = sim_config(dir.path(), &sim);
    let (url, name) = fresh_database("propagation");
    let env = [
        ("APP_CONFIG_backend_database_client", "pg"),
        ("APP_CONFIG_backend_database_connection", url.as_str()),
    ];
    let leader = Daemon::start(&config, &env);
    let follower = Daemon::start(&config, &env);
    let http = reqwest::Client::new();
    let started = Instant::now();
    while json(
        &http,
        &format!("{}/api/catalog/entities?fields=kind", follower.address),
    )
    .await
    .as_array()
    .map_or(0, Vec::len)
        < 100
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "follower never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let repos: Vec<RepoRef> = sim
        .dataset()
        .server_repos()
        .filter(|r| r.file_kind == FileKind::Component)
        .map(|r| RepoRef::Server {
            project: r.project_key.clone(),
            slug: r.slug.clone(),
        })
        .collect();
    let mut leader_cursor = cursor(&http, &leader.address).await;
    let mut follower_cursor = cursor(&http, &follower.address).await;
    let mut lags = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let on_leader = tokio::spawn(published(
            http.clone(),
            leader.address.clone(),
            leader_cursor.clone(),
        ));
        let on_follower = tokio::spawn(published(
            http.clone(),
            follower.address.clone(),
            follower_cursor.clone(),
        ));
        let repo = &repos[round % repos.len()];
        let body = format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: pushed-{round}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
        );
        let event = sim
            .push_file(repo, "catalog-info.yaml", &body)
            .expect("push");
        let status = event
            .deliver(
                &format!("{}/api/events/http/bitbucketServer", leader.address),
                Some(SECRET),
            )
            .await
            .expect("delivered");
        assert_eq!(status, 202);
        let (leader_at, next_leader) = on_leader.await.expect("leader long-poll");
        let (follower_at, next_follower) = on_follower.await.expect("follower long-poll");
        lags.push(follower_at.saturating_duration_since(leader_at));
        leader_cursor = next_leader;
        follower_cursor = next_follower;
    }
    lags.sort();
    println!(
        "propagation leader → follower over {rounds} pushes: p50 {}, p99 {}, max {}",
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 0.99)),
        ms(*lags.last().expect("rounds"))
    );
    leader.stop();
    follower.stop();
    drop_database(&name).await;
}

async fn failover() {
    let sim = components_simulator(2, 10).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = sim_config(dir.path(), &sim);
    let (url, name) = fresh_database("failover");
    let env = [
        ("APP_CONFIG_backend_database_client", "pg"),
        ("APP_CONFIG_backend_database_connection", url.as_str()),
    ];
    let http = reqwest::Client::new();
    let mut leader = Daemon::start(&config, &env);
    let mut follower = Daemon::start(&config, &env);
    let (mut to_lead, mut to_run) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let provider = format!("{}/api/catalog/providers/sim", follower.address);
        let before = json(&http, &provider).await["lastRun"]["startedAt"].clone();
        let killed = Instant::now();
        leader.kill_9();
        let replica = format!("{}/api/catalog/replica", follower.address);
        while json(&http, &replica).await["role"] != "leader" {
            assert!(killed.elapsed() < Duration::from_secs(30), "no hand-over");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        to_lead.push(killed.elapsed());
        loop {
            let status = json(&http, &provider).await;
            if status["lastRun"]["startedAt"] != before
                && !status["lastRun"]["finishedAt"].is_null()
                && status["inProgress"] == false
            {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(60), "no run");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        to_run.push(killed.elapsed());
        leader = follower;
        follower = Daemon::start(&config, &env);
    }
    let show = |d: &[Duration]| d.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ");
    println!(
        "failover kill -9 → follower leads:           {}",
        show(&to_lead)
    );
    println!(
        "failover kill -9 → new leader's run complete: {}",
        show(&to_run)
    );
    leader.stop();
    follower.stop();
    drop_database(&name).await;
}

fn entity(i: usize) -> Entity {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": format!("service-{i:06}"), "tags": ["java"]},
        "spec": {"type": "service", "lifecycle": "production", "owner": format!("team-{}", i % 40)},
    }))
    .expect("valid entity")
}

/// 10,000 stitched entities, one unit each, stored in `store`.
async fn seed(store: &dyn CatalogStore) {
    let units = (0..SEEDED)
        .map(|i| UnitEntities {
            unit: format!("https://bitbucket.example.com/projects/P/repos/service-{i:06}/browse/catalog-info.yaml"),
            entities: vec![entity(i).into()],
        })
        .collect();
    support::seed_units(store, units).await;
    store.close().await;
}

/// Requests per second by name (wrk -c4, 10 s), or `None` without wrk.
fn wrk(address: &str, dir: &Path) -> Option<f64> {
    let pick = format!("  local i = (counter * 7919) % {SEEDED}\n");
    let report = support::wrk_by_name(address, dir, 4, &pick)?;
    let line = report.lines().find(|l| l.starts_with("Requests/sec:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("idle.yaml");
    // A provider that never runs during the measurement.
    std::fs::write(
        &config,
        "integrations:\n  bitbucketServer:\n    - host: 127.0.0.1:9\n      apiBaseUrl: http://127.0.0.1:9/rest/api/1.0\ncatalog:\n  providers:\n    bitbucketServer:\n      bench:\n        host: 127.0.0.1:9\n        schedule:\n          frequency: { trigger: manual }\n",
    )
    .expect("config");

    let sqlite = dir.path().join("catalog.sqlite");
    seed(&SqliteStore::open(&sqlite).await.expect("sqlite")).await;
    let sqlite = sqlite.display().to_string();
    let daemon = Daemon::start(
        &config,
        &[("APP_CONFIG_backend_database_connection", sqlite.as_str())],
    );
    // Relations settle in the background after start-up: let them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let Some(on_sqlite) = wrk(&daemon.address, dir.path()) else {
        println!("wrk not available: install it (apt-get install wrk) for the throughput part");
        daemon.stop();
        return;
    };
    daemon.stop();

    let (url, name) = fresh_database("throughput");
    let connection = postgres_connection(Some(&Value::String(url.clone()))).expect("url");
    seed(&PostgresStore::open(&connection).await.expect("pg")).await;
    let env = [
        ("APP_CONFIG_backend_database_client", "pg"),
        ("APP_CONFIG_backend_database_connection", url.as_str()),
    ];
    let leader = Daemon::start(&config, &env);
    let follower = Daemon::start(&config, &env);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let on_leader = wrk(&leader.address, dir.path()).unwrap_or_default();
    let on_follower = wrk(&follower.address, dir.path()).unwrap_or_default();
    let share = |rps: f64| (rps / on_sqlite - 1.0) * 100.0;
    println!("by-name, wrk -t1 -c4 -d10s, {SEEDED} entities:");
    println!("  SQLite daemon        {on_sqlite:>9.0} req/s");
    println!(
        "  PostgreSQL leader    {on_leader:>9.0} req/s ({:+.1} %)",
        share(on_leader)
    );
    println!(
        "  PostgreSQL follower  {on_follower:>9.0} req/s ({:+.1} %)",
        share(on_follower)
    );
    leader.stop();
    follower.stop();
    drop_database(&name).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    propagation(rounds).await;
    failover().await;
    throughput().await;
}
