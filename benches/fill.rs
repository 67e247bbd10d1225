//! A large Data Center under its rate limit, with the daemon's default
//! settings: `cargo bench --bench fill [-- --projects N]` (default 200
//! projects × 50 repositories = 10,000, Atlassian's default bucket of 60
//! tokens refilled 5 per second, 20 ms latency).
//!
//! The daemon runs as `serve` in a child process with no schedule keys
//! (every 30 minutes, 15-minute timeout) and a SQLite store; the bench polls
//! its API and prints when the first entity is served, how the catalog
//! grows run by run, when it is complete, and the requests spent against
//! the minimum.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bitbucket_sim::{Behaviour, DatasetConfig, RateLimit, SimConfig, Simulator};
use support::Daemon;
use support::args::Args;

const POLL: Duration = Duration::from_secs(5);
const GIVE_UP: Duration = Duration::from_secs(3 * 3600);

async fn get(client: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let projects = Args::from_env().value("--projects").unwrap_or(200);
    let sim = Simulator::start(SimConfig {
        seed: 1,
        dataset: DatasetConfig {
            projects,
            repos_per_project: 50,
            catalog_ratio: 0.6,
            ..Default::default()
        },
        behaviour: Behaviour {
            latency: Duration::from_millis(20),
            rate_limit: Some(RateLimit {
                burst: 60,
                per_second: 5.0,
            }),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("simulator");
    let dataset = sim.dataset().clone();
    let expected: BTreeSet<String> = dataset.expected_server_tree_refs(false);
    let minimum = dataset.server_minimum_requests_with_targets(1000);

    let daemon = Daemon::spawn(&format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\ncatalog:\n  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n",
        host = sim.host(),
        api = sim.server_api_base()
    ));
    println!(
        "{} repositories, {} entities expected, minimum {minimum} requests; bucket 60 / 5 per s; default schedule (30 min, timeout 15 min)",
        dataset.server_repos().count(),
        expected.len()
    );
    let started = Instant::now();
    let client = reqwest::Client::new();
    let base = format!("{}/api/catalog", daemon.base);
    let mut first = None;
    let mut last_line = Instant::now() - Duration::from_secs(3600);
    let mut last_run = String::new();
    loop {
        tokio::time::sleep(POLL).await;
        let served = get(&client, &format!("{base}/entities?fields=metadata.name"))
            .await
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0);
        let status = get(&client, &format!("{base}/providers/sim")).await;
        let elapsed = started.elapsed();
        if served > 0 && first.is_none() {
            first = Some(elapsed);
            println!("first entity served after {:.1} s", elapsed.as_secs_f64());
        }
        let run = status
            .as_ref()
            .map(|s| {
                format!(
                    "{} (read {}, requests {}, 429s {})",
                    s["lastRun"]["outcome"]["status"],
                    s["lastRun"]["reposRead"],
                    s["lastRun"]["requests"],
                    s["lastRun"]["rateLimited"]
                )
            })
            .unwrap_or_default();
        if last_line.elapsed() >= Duration::from_secs(60) || run != last_run {
            let progress = status
                .as_ref()
                .map(|s| s["progress"].to_string())
                .unwrap_or_default();
            println!(
                "{:>6.0} s: {served} entities; last run {run}; progress {progress}",
                elapsed.as_secs_f64()
            );
            last_line = Instant::now();
            last_run = run;
        }
        if served >= expected.len() {
            let stats = sim.stats();
            let spent = stats.requests - stats.rate_limited();
            let bound = (minimum.saturating_sub(60)) as f64 / 5.0;
            println!(
                "complete after {:.0} s ({:.2}× the bound of {bound:.0} s for the minimum requests in one go); requests answered {spent} = minimum {minimum} {:+.1} %, 429s {}",
                elapsed.as_secs_f64(),
                elapsed.as_secs_f64() / bound,
                (spent as f64 / minimum as f64 - 1.0) * 100.0,
                stats.rate_limited()
            );
            break;
        }
        if elapsed > GIVE_UP {
            println!("not complete after {:.0} s", elapsed.as_secs_f64());
            break;
        }
    }
    drop(daemon);
    sim.shutdown().await;
}
