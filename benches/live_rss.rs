//! Resident memory of `serve` after a live discovery (issue 29):
//! `cargo bench --bench live_rss [-- --repos N] [--catalog-ratio R]`
//! (default 10,000 repositories: 200 projects × 50, 79 % with a catalog
//! file of the simulator's default mix: 11,043 entities, as many as the
//! issue's 11,028; no latency, no rate limit).
//!
//! The simulator runs in this process; the daemon runs `serve` in a child
//! process with a SQLite store and one Server provider over it. The bench
//! reads `/proc/PID/status` (VmRSS, RssAnon, RssFile, VmHWM) after the
//! start-up run, after a second run (`POST …/refresh`, nothing changed),
//! and after a restart on the store it left (at ready, and after the
//! restart's own start-up run). Each "settled" figure is read
//! [`SETTLE`] after the run ended, once the daemon's trim watcher (every
//! 2 s) has had its turn. `LIVE_RSS_HOLD=SECONDS` keeps the last daemon
//! running that long at the end (to attach a profiler).

mod support;

use std::time::{Duration, Instant};

use bitbucket_sim::{DatasetConfig, SimConfig, Simulator};
use serde_json::Value;
use support::{Daemon, status_kib};

const PROVIDER: &str = "sim";
/// After a run, before its figures are read: the trim watcher checks every 2 s.
const SETTLE: Duration = Duration::from_secs(6);

async fn status(http: &reqwest::Client, daemon: &Daemon) -> Option<Value> {
    let response = http
        .get(format!("{}/api/catalog/providers/{PROVIDER}", daemon.base))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

/// Waits until the provider has a finished run other than `before`, and
/// returns its report.
async fn finished(http: &reqwest::Client, daemon: &Daemon, before: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(now) = status(http, daemon).await
            && !now["lastRun"].is_null()
            && now["lastRun"]["startedAt"] != *before
            && now["inProgress"] == false
        {
            return now["lastRun"].clone();
        }
        assert!(Instant::now() < deadline, "the run ends");
    }
}

/// Waits until the daemon answers its readiness probe.
async fn ready(http: &reqwest::Client, daemon: &Daemon) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(response) = http
            .get(format!("{}/.backstage/health/v1/readiness", daemon.base))
            .send()
            .await
            && response.status().is_success()
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the daemon gets ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM, then waits until it exited: the daemon closes its store first.
fn stop(daemon: Daemon) {
    let pid = daemon.pid();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    // An exited child not yet waited for has no VmRSS.
    while status_kib(pid, "VmRSS:") > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(daemon);
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One line of figures for `pid`.
fn sample(label: &str, pid: u32) {
    println!(
        "{label:<44} VmRSS {:6.1} MiB  RssAnon {:6.1} MiB  RssFile {:5.1} MiB  VmHWM {:6.1} MiB",
        mib(status_kib(pid, "VmRSS:")),
        mib(status_kib(pid, "RssAnon:")),
        mib(status_kib(pid, "RssFile:")),
        mib(status_kib(pid, "VmHWM:")),
    );
}

fn run_line(report: &Value) -> String {
    format!(
        "{} repos matched, {} read, {} unchanged, {} entities, {} problems, {} requests, {} ms",
        report["reposMatched"],
        report["reposRead"],
        report["reposUnchanged"],
        report["entities"],
        report["problems"].as_array().map_or(0, Vec::len),
        report["requests"],
        report["durationMs"]
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let repos: usize = value("--repos")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let catalog_ratio: f64 = value("--catalog-ratio")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.79);
    let sim = Simulator::start(SimConfig {
        seed: 29,
        dataset: DatasetConfig {
            projects: repos.div_ceil(50).max(1),
            repos_per_project: 50,
            catalog_ratio,
            archived_ratio: 0.0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("simulator");
    println!(
        "{} repositories, {} entities expected",
        sim.dataset().server_repos().count(),
        sim.dataset().expected_server_tree_refs(false).len()
    );
    let store = tempfile::tempdir().expect("tempdir");
    let database = store.path().join("catalog.sqlite");
    let config = format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\ncatalog:\n  providers:\n    bitbucketServer:\n      {PROVIDER}:\n        host: {host}\n        schedule:\n          frequency: {{ hours: 24 }}\n          timeout: {{ hours: 1 }}\n",
        host = sim.host(),
        api = sim.server_api_base()
    );
    let spawn = || {
        Daemon::spawn_with(&config, |command| {
            command
                .env(
                    "APP_CONFIG_backend_auth_dangerouslyDisableDefaultAuthPolicy",
                    "true",
                )
                .env("APP_CONFIG_backend_database_connection", &database);
        })
    };
    let http = reqwest::Client::new();

    let daemon = spawn();
    let pid = daemon.pid();
    ready(&http, &daemon).await;
    sample("empty catalog, ready", pid);
    let first = finished(&http, &daemon, &Value::Null).await;
    println!("first run: {}", run_line(&first));
    sample("first run, at its end", pid);
    tokio::time::sleep(SETTLE).await;
    sample("first run, settled", pid);

    let response = http
        .post(format!(
            "{}/api/catalog/providers/{PROVIDER}/refresh",
            daemon.base
        ))
        .send()
        .await
        .expect("refresh reaches the daemon");
    assert_eq!(response.status(), 202, "refresh accepted");
    let second = finished(&http, &daemon, &first["startedAt"]).await;
    println!("second run: {}", run_line(&second));
    sample("second run, at its end", pid);
    tokio::time::sleep(SETTLE).await;
    sample("second run, settled", pid);
    stop(daemon);

    let daemon = spawn();
    let pid = daemon.pid();
    let took = ready(&http, &daemon).await;
    sample(&format!("restart, ready ({} ms)", took.as_millis()), pid);
    // The restored report is the second run's until the restart's ends.
    let third = finished(&http, &daemon, &second["startedAt"]).await;
    println!("restart's run: {}", run_line(&third));
    tokio::time::sleep(SETTLE).await;
    sample("restart's run, settled", pid);
    if let Some(hold) = std::env::var("LIVE_RSS_HOLD")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        println!("holding pid {pid} at {} for {hold} s", daemon.base);
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    drop(daemon);
    sim.shutdown().await;
}
