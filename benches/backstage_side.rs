//! Side by side with Backstage's own provider (issue 26):
//! `cargo bench --bench backstage_side -- [--repos N] [--rounds N] [--latency-ms N]`
//! (first `npm ci --prefix benches/backstage-provider`; not run by CI).
//!
//! One simulated Data Center (1,000 repositories, 60 % with a catalog file,
//! 10 ms per request by default), then, alternately in the same process
//! and against the same simulator: the daemon's `run-once` with its
//! default settings (a child process; its whole wall time, start-up
//! included) and `@backstage/plugin-catalog-backend-module-bitbucket-server`'s
//! `refresh()` with `validateLocationsExist` (timed inside node, start-up
//! excluded). Prints each run's wall time, requests and most requests in
//! flight, and the ratio of the medians.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bitbucket_sim::{Behaviour, DatasetConfig, SimConfig, Simulator};
use support::args::Args;
use support::run_once::RunOnce;

fn ours(sim: &Simulator, dir: &Path) -> (Duration, usize) {
    let config = format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\ncatalog:\n  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n",
        host = sim.host(),
        api = sim.server_api_base()
    );
    let run = RunOnce::run(dir, &config, "error");
    assert!(run.status.success(), "run-once failed");
    (run.wall, run.entities().as_array().map_or(0, Vec::len))
}

fn backstage(sim: &Simulator, module: &Path) -> (Duration, usize) {
    let output = Command::new("node")
        .arg("run.js")
        .env("SIM_HOST", sim.host())
        .env("SIM_API", sim.server_api_base())
        .current_dir(module)
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs (npm ci --prefix benches/backstage-provider first)");
    assert!(output.status.success(), "Backstage's provider failed");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON result");
    (
        Duration::from_secs_f64(result["ms"].as_f64().unwrap_or_default() / 1000.0),
        result["entities"].as_u64().unwrap_or_default() as usize,
    )
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::from_env();
    let repos = args.value("--repos").unwrap_or(1000);
    let rounds = args.value("--rounds").unwrap_or(3).max(1);
    let latency = Duration::from_millis(args.value("--latency-ms").unwrap_or(10) as u64);
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/backstage-provider");
    assert!(
        module.join("node_modules").is_dir(),
        "run `npm ci --prefix benches/backstage-provider` first"
    );
    let sim = Simulator::start(SimConfig {
        seed: 1,
        dataset: DatasetConfig {
            projects: repos.div_ceil(100),
            repos_per_project: 100.min(repos),
            catalog_ratio: 0.6,
            ..Default::default()
        },
        behaviour: Behaviour {
            latency,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("simulator");
    println!(
        "{} repositories, {} ms per request",
        sim.dataset().server_repos().count(),
        latency.as_millis()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        sim.reset_stats();
        let (wall, entities) = tokio::task::block_in_place(|| ours(&sim, dir.path()));
        let stats = sim.stats();
        println!(
            "round {round} daemon:    {:6.2} s, {entities} entities, {} requests, at most {} in flight",
            wall.as_secs_f64(),
            stats.requests,
            stats.max_in_flight
        );
        mine.push(wall);
        sim.reset_stats();
        let (wall, entities) = tokio::task::block_in_place(|| backstage(&sim, &module));
        let stats = sim.stats();
        println!(
            "round {round} Backstage: {:6.2} s, {entities} locations, {} requests, at most {} in flight",
            wall.as_secs_f64(),
            stats.requests,
            stats.max_in_flight
        );
        theirs.push(wall);
    }
    let (mine, theirs) = (median(mine), median(theirs));
    println!(
        "median: daemon {:.2} s, Backstage {:.2} s: {:.1}x",
        mine.as_secs_f64(),
        theirs.as_secs_f64(),
        theirs.as_secs_f64() / mine.as_secs_f64()
    );
    sim.shutdown().await;
}
