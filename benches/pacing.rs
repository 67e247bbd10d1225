//! Pacing against the simulator's token bucket (issues 10 and 26):
//! `cargo bench --bench pacing -- [--latency-ms N] [--concurrency N] [--only N]`
//! (`PACING_LOG=info` shows the daemon's log, where each 429 logs the pace)
//!
//! Buckets 1-3 and 5: default config (no `rateLimit`): the daemon runs
//! `run-once` in a child process against a Server provider; the wall time is
//! compared with the bound, (served requests − burst) / refill. Buckets 4
//! and 6: a co-tenant on the same token sends 8 requests back to back every
//! 3 s during the sweep, with `rateLimit: {share: 0.5}` (4) and without (6);
//! its share of 429s is the figure.

mod support;

use std::time::Duration;

use bitbucket_sim::{Behaviour, DatasetConfig, RateLimit, SimConfig, Simulator};
use support::args::Args;
use support::co_tenant::CoTenant;
use support::run_once::RunOnce;
use support::sim::SimProviderConfig;

struct Bucket {
    burst: u32,
    per_second: f64,
    repos: usize,
    /// `rateLimit.share` for the integration.
    share: Option<f64>,
    /// A bursty co-tenant on the same token during the sweep.
    co_tenant: bool,
}

const fn bucket_of(burst: u32, per_second: f64, repos: usize) -> Bucket {
    Bucket {
        burst,
        per_second,
        repos,
        share: None,
        co_tenant: false,
    }
}

const BUCKETS: [Bucket; 6] = [
    bucket_of(60, 5.0, 400),
    bucket_of(20, 100.0, 1000),
    bucket_of(100, 50.0, 1000),
    Bucket {
        share: Some(0.5),
        co_tenant: true,
        ..bucket_of(10, 10.0, 400)
    },
    // About 400 reads.
    bucket_of(20, 100.0, 330),
    Bucket {
        co_tenant: true,
        ..bucket_of(10, 10.0, 400)
    },
];

/// Runs `run-once` against `sim`; the wall time and whether it succeeded.
fn run_once(
    sim: &Simulator,
    concurrency: usize,
    share: Option<f64>,
    dir: &std::path::Path,
) -> (Duration, bool) {
    let share = share
        .map(|s| format!("      rateLimit: {{share: {s}}}\n"))
        .unwrap_or_default();
    let config = SimProviderConfig::new(sim)
        .integration_extra(&format!(
            "      maxConcurrentRequests: {concurrency}\n{share}"
        ))
        .provider_extra(&format!("        concurrency: {concurrency}\n"))
        .schedule("timeout: { hours: 1 }")
        .yaml();
    let log = std::env::var("PACING_LOG").unwrap_or_else(|_| "error".into());
    let run = RunOnce::run(dir, &config, &log);
    if !run.status.success() || std::env::var_os("PACING_LOG").is_some() {
        eprintln!("{}", run.stderr);
    }
    (run.wall, run.status.success())
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
    let tenant = bucket
        .co_tenant
        .then(|| CoTenant::start(format!("{}/projects?limit=1", sim.server_api_base())));
    let (wall, ok) =
        tokio::task::block_in_place(|| run_once(&sim, concurrency, bucket.share, dir.path()));
    let tenant = match tenant {
        Some(tenant) => {
            let got = tenant.stop().await;
            format!(
                " co-tenant {}/{} × 429 ({:.1} %), share {} |",
                got.limited,
                got.sent,
                100.0 * got.limited_share(),
                bucket
                    .share
                    .map_or_else(|| "none".to_owned(), |s| s.to_string())
            )
        }
        None => " |".to_owned(),
    };
    let stats = sim.stats();
    let limited = stats.status("429");
    // A 429 costs no token: the bound counts the requests that were served.
    let served = stats.requests - limited;
    let bound = served.saturating_sub(u64::from(bucket.burst)) as f64 / bucket.per_second;
    println!(
        "| {}, {}/s ({} repos) | {:.1} s | {bound:.1} s | {:.2}× | {limited} | {served} |{tenant}{}",
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
    let args = Args::from_env();
    let latency = Duration::from_millis(args.value("--latency-ms").unwrap_or(10) as u64);
    let concurrency = args.value("--concurrency").unwrap_or(8);
    let only = args.value("--only");
    println!(
        "latency {} ms, concurrency {concurrency}, no rateLimit configured unless a share is shown",
        latency.as_millis()
    );
    println!(
        "| bucket (burst, refill) | wall | bound | wall / bound | 429s | served | co-tenant |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, b) in BUCKETS.iter().enumerate() {
        if only.is_none_or(|o| o == i + 1) {
            bucket(b, latency, concurrency).await;
        }
    }
}
