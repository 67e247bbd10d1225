//! Discovery against the simulator (200 projects × 50 repos by default):
//! `cargo bench --bench discovery -- [plain|rate-limited|faults|all] [--projects N] [--concurrency N]`
//!
//! The simulator runs in this process; the daemon runs as `run-once` in a
//! child process, so its wall time and peak RSS are its own.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitbucket_sim::{Behaviour, DatasetConfig, Faults, RateLimit, SimConfig, Simulator};

struct Outcome {
    wall: Duration,
    peak_rss_kib: u64,
    refs: BTreeSet<String>,
    summary: String,
    exit: Option<i32>,
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn run_once(sim: &Simulator, concurrency: usize, dir: &std::path::Path) -> Outcome {
    let config = dir.join("bench.yaml");
    std::fs::write(
        &config,
        format!(
            "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n      maxConcurrentRequests: {concurrency}\n      maxRetries: 8\ncatalog:\n  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n        concurrency: {concurrency}\n        schedule:\n          timeout: {{ hours: 2 }}\n",
            host = sim.host(),
            api = sim.server_api_base()
        ),
    )
    .expect("config");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
        .args(["run-once", "--config"])
        .arg(&config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run-once starts");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let out_reader =
        std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err_reader =
        std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut peak = 0;
    let status = loop {
        if let Some(rss) = peak_rss_kib(pid) {
            peak = peak.max(rss);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => panic!("wait: {err}"),
        }
    };
    let wall = started.elapsed();
    let stdout = out_reader.join().unwrap_or_default();
    let summary = err_reader
        .join()
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("provider "))
        .unwrap_or_default()
        .to_owned();
    let entities: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    let refs = entities
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| {
                    format!(
                        "{}:{}/{}",
                        e["kind"].as_str().unwrap_or_default(),
                        e["metadata"]["namespace"].as_str().unwrap_or_default(),
                        e["metadata"]["name"].as_str().unwrap_or_default()
                    )
                    .to_lowercase()
                })
                .collect()
        })
        .unwrap_or_default();
    Outcome {
        wall,
        peak_rss_kib: peak,
        refs,
        summary,
        exit: status.code(),
    }
}

async fn scenario(name: &str, projects: usize, concurrency: usize, behaviour: Behaviour) {
    let sim = Simulator::start(SimConfig {
        seed: 1,
        dataset: DatasetConfig {
            projects,
            repos_per_project: 50,
            catalog_ratio: 0.6,
            ..Default::default()
        },
        behaviour,
        ..Default::default()
    })
    .await
    .expect("simulator");
    let dataset = sim.dataset().clone();
    let minimum = dataset.server_minimum_requests_with_targets(1000);
    let expected = dataset.expected_server_tree_refs(false);
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = tokio::task::block_in_place(|| run_once(&sim, concurrency, dir.path()));
    let stats = sim.stats();
    let lost = expected.difference(&outcome.refs).count();
    let unexpected = outcome.refs.difference(&expected).count();
    println!(
        "== {name}: {} repos, concurrency {concurrency}",
        dataset.server_repos().count()
    );
    println!("   exit {:?}; {}", outcome.exit, outcome.summary);
    println!(
        "   wall {:.1} s, peak RSS {:.1} MiB",
        outcome.wall.as_secs_f64(),
        outcome.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "   requests {} (minimum {minimum}, {:+.2} %), repeated {}, 429s {}, faults injected {:?}",
        stats.requests,
        (stats.requests as f64 / minimum as f64 - 1.0) * 100.0,
        stats.repeated_requests(),
        stats.status("429"),
        stats.faults
    );
    if let Some(rate) = &sim.config().behaviour.rate_limit {
        // A 429 costs no token: the bound counts the requests that were served.
        let bound = (stats.requests - stats.status("429")).saturating_sub(u64::from(rate.burst))
            as f64
            / rate.per_second;
        println!(
            "   bound (served requests beyond the burst / {} per s) {bound:.1} s; wall / bound {:.3}",
            rate.per_second,
            outcome.wall.as_secs_f64() / bound
        );
    }
    println!(
        "   entities {} of {} expected: {lost} lost, {unexpected} unexpected",
        outcome.refs.len(),
        expected.len()
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
    let projects = value("--projects").unwrap_or(200);
    let concurrency = value("--concurrency").unwrap_or(8);
    let which = args
        .iter()
        .find(|a| ["plain", "rate-limited", "faults", "all"].contains(&a.as_str()))
        .map_or("all", String::as_str);
    let latency = Duration::from_millis(20);
    if matches!(which, "plain" | "all") {
        scenario(
            "1. no rate limit, 20 ms latency",
            projects,
            concurrency,
            Behaviour {
                latency,
                ..Default::default()
            },
        )
        .await;
    }
    if matches!(which, "faults" | "all") {
        let faults = Faults {
            server_error: 0.05,
            reset: 0.05,
            ..Default::default()
        };
        scenario(
            "3. 5 % 5xx + 5 % connection resets, 20 ms latency",
            projects,
            concurrency,
            Behaviour {
                latency,
                faults,
                ..Default::default()
            },
        )
        .await;
    }
    if matches!(which, "rate-limited" | "all") {
        let rate_limit = Some(RateLimit {
            burst: 60,
            per_second: 5.0,
        });
        scenario(
            "2. token bucket 60 burst / 5 per s, 20 ms latency",
            projects,
            concurrency,
            Behaviour {
                latency,
                rate_limit,
                ..Default::default()
            },
        )
        .await;
    }
}
