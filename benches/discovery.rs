//! Discovery against the simulator (200 projects × 50 repos by default):
//! `cargo bench --bench discovery -- [plain|rate-limited|faults|all] [--projects N] [--concurrency N]`
//!
//! The simulator runs in this process; the daemon runs as `run-once` in a
//! child process, so its wall time and peak RSS are its own.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use bitbucket_sim::{Behaviour, DatasetConfig, Faults, RateLimit, SimConfig, Simulator};
use support::args::Args;
use support::run_once::RunOnce;
use support::sim::SimProviderConfig;

struct Outcome {
    wall: Duration,
    peak_rss_kib: u64,
    refs: BTreeSet<String>,
    summary: String,
    exit: Option<i32>,
}

fn run_once(sim: &Simulator, concurrency: usize, dir: &std::path::Path) -> Outcome {
    let config = SimProviderConfig::new(sim)
        .integration_extra(&format!(
            "      maxConcurrentRequests: {concurrency}\n      maxRetries: 8\n"
        ))
        .provider_extra(&format!("        concurrency: {concurrency}\n"))
        .schedule("timeout: { hours: 2 }")
        .yaml();
    let run = RunOnce::run(dir, &config, "error");
    Outcome {
        wall: run.wall,
        peak_rss_kib: run.peak_rss_kib,
        refs: run.entity_refs(),
        summary: run
            .stderr
            .lines()
            .find(|l| l.starts_with("provider "))
            .unwrap_or_default()
            .to_owned(),
        exit: run.status.code(),
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
    let args = Args::from_env();
    let projects = args.value("--projects").unwrap_or(200);
    let concurrency = args.value("--concurrency").unwrap_or(8);
    let which = args
        .one_of(&["plain", "rate-limited", "faults", "all"])
        .unwrap_or("all");
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
