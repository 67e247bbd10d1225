//! Pacing against the simulator's token bucket (issue 10):
//! `cargo bench --bench pacing -- [--latency-ms N] [--concurrency N] [--only N]`
//! (`PACING_LOG=info` shows the daemon's log, where each 429 logs the pace)
//!
//! Three buckets, default config (no `rateLimit`): the daemon runs `run-once`
//! in a child process against a Server provider; the wall time is compared
//! with the bound, (served requests − burst) / refill.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitbucket_sim::{Behaviour, DatasetConfig, RateLimit, SimConfig, Simulator};

struct Bucket {
    burst: u32,
    per_second: f64,
    repos: usize,
}

const BUCKETS: [Bucket; 3] = [
    Bucket {
        burst: 60,
        per_second: 5.0,
        repos: 400,
    },
    Bucket {
        burst: 20,
        per_second: 100.0,
        repos: 1000,
    },
    Bucket {
        burst: 100,
        per_second: 50.0,
        repos: 1000,
    },
];

/// Runs `run-once` against `sim`; the wall time and whether it succeeded.
fn run_once(sim: &Simulator, concurrency: usize, dir: &std::path::Path) -> (Duration, bool) {
    let config = dir.join("bench.yaml");
    std::fs::write(
        &config,
        format!(
            "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n      maxConcurrentRequests: {concurrency}\ncatalog:\n  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n        concurrency: {concurrency}\n        schedule:\n          timeout: {{ hours: 1 }}\n",
            host = sim.host(),
            api = sim.server_api_base()
        ),
    )
    .expect("config");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
        .args(["run-once", "--config"])
        .arg(&config)
        .env(
            "RUST_LOG",
            std::env::var("PACING_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run-once runs");
    let wall = started.elapsed();
    if !output.status.success() || std::env::var_os("PACING_LOG").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    (wall, output.status.success())
}

async fn bucket(bucket: &Bucket, latency: Duration, concurrency: usize) {
    let rate_limit = RateLimit {
        burst: bucket.burst,
        per_second: bucket.per_second,
    };
    let sim = Simulator::start(SimConfig {
        seed: 1,
        dataset: DatasetConfig {
            projects: bucket.repos / 50,
            repos_per_project: 50,
            catalog_ratio: 0.6,
            ..Default::default()
        },
        behaviour: Behaviour {
            latency,
            rate_limit: Some(rate_limit),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let (wall, ok) = tokio::task::block_in_place(|| run_once(&sim, concurrency, dir.path()));
    let stats = sim.stats();
    let limited = stats.status("429");
    // A 429 costs no token: the bound counts the requests that were served.
    let served = stats.requests - limited;
    let bound = served.saturating_sub(u64::from(bucket.burst)) as f64 / bucket.per_second;
    println!(
        "| {}, {}/s ({} repos) | {:.1} s | {bound:.1} s | {:.2}× | {limited} | {served} |{}",
        bucket.burst,
        bucket.per_second,
        bucket.repos,
        wall.as_secs_f64(),
        wall.as_secs_f64() / bound,
        if ok { "" } else { " run failed" }
    );
    sim.shutdown().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let latency = Duration::from_millis(value("--latency-ms").unwrap_or(10) as u64);
    let concurrency = value("--concurrency").unwrap_or(8);
    let only = value("--only");
    println!(
        "latency {} ms, concurrency {concurrency}, no rateLimit configured",
        latency.as_millis()
    );
    println!("| bucket (burst, refill) | wall | bound | wall / bound | 429s | served |");
    println!("|---|---|---|---|---|---|");
    for (i, b) in BUCKETS.iter().enumerate() {
        if only.is_none_or(|o| o == i + 1) {
            bucket(b, latency, concurrency).await;
        }
    }
}
