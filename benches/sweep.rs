//! Requests per day at steady state with webhooks on (issue 26):
//! `cargo bench --profile dev --bench sweep [-- --repos N] [-- --per-project]`
//! (default 10,000 repositories: 200 projects × 50, 60 % with a catalog
//! file, no rate limit; `--per-project`: the simulator refuses Data
//! Center's global listing, so sweeps list project by project, as before
//! issue 26's global listing).
//!
//! The daemon runs `serve` in a child process (SQLite store) with a daily
//! full run and a listing sweep every 2 s. After its start-up run the
//! bench measures, on the simulator's counters, one steady full run
//! (`POST …/refresh`, nothing changed) and the sweeps of 60 s (nothing
//! changed), and prints what a day costs with full runs every 6 h or
//! 24 h plus a sweep every 5 min.

mod support;

use std::time::{Duration, Instant};

use bitbucket_sim::{
    DatasetConfig, EndpointKind, FileMix, ServerOptions, SimConfig, Simulator, Stats,
};
use serde_json::Value;
use support::Daemon;
use support::args::Args;

const PROVIDER: &str = "sim";
/// Long enough for a few sweeps of 10,000 repositories in a debug build
/// on a loaded machine (one takes up to ~20 s there).
const SWEEP_WINDOW: Duration = Duration::from_secs(60);

fn by_kind(stats: &Stats) -> String {
    support::requests::by_kind(
        stats,
        &[
            (EndpointKind::ServerProjects, "projects"),
            (EndpointKind::ServerRepos, "repos"),
            (EndpointKind::ServerGlobalRepos, "global repos"),
            (EndpointKind::ServerRaw, "raw"),
            (EndpointKind::Other, "other"),
        ],
    )
}

/// Waits until the provider has a finished run other than `before`.
async fn finished(http: &reqwest::Client, daemon: &Daemon, before: &Value) {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(now) = daemon.provider(http, PROVIDER).await
            && !now["lastRun"].is_null()
            && now["lastRun"]["startedAt"] != *before
            && now["inProgress"] == false
        {
            return;
        }
        assert!(Instant::now() < deadline, "the run ends");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::from_env();
    let repos = args.value("--repos").unwrap_or(10_000);
    let projects = repos.div_ceil(50).max(1);
    let per_project = args.has("--per-project");
    let sim = Simulator::start(SimConfig {
        seed: 26,
        dataset: DatasetConfig {
            projects,
            repos_per_project: 50,
            catalog_ratio: 0.6,
            archived_ratio: 0.0,
            mix: FileMix::components_only(),
            ..Default::default()
        },
        server: ServerOptions {
            global_listing: !per_project,
            ..ServerOptions::default()
        },
        ..Default::default()
    })
    .await
    .expect("simulator");
    let total = sim.dataset().server_repos().count();
    // One listing: the projects page(s) and one page per project of up to
    // 1,000 repositories.
    let listing = sim.dataset().server_listing_pages(1000, true);
    let projects_pages = listing - projects;
    let daemon = Daemon::spawn_with(
        &format!(
            "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n      webhookSecret: bench-secret\ncatalog:\n  providers:\n    bitbucketServer:\n      {PROVIDER}:\n        host: {host}\n        schedule:\n          frequency: {{ hours: 24 }}\n          timeout: {{ hours: 1 }}\n        listingSchedule:\n          frequency: {{ seconds: 2 }}\n",
            host = sim.host(),
            api = sim.server_api_base()
        ),
        |command| {
            command.env(
                "APP_CONFIG_backend_auth_dangerouslyDisableDefaultAuthPolicy",
                "true",
            );
            // `SWEEP_BENCH_LOG=1`: the daemon's info log (each sweep's
            // requests and duration) on stderr.
            if std::env::var_os("SWEEP_BENCH_LOG").is_some() {
                command
                    .env("RUST_LOG", "info")
                    .stderr(std::process::Stdio::inherit());
            }
        },
    );
    let http = reqwest::Client::new();
    // The start-up run.
    finished(&http, &daemon, &Value::Null).await;

    sim.reset_stats();
    let before = daemon.refresh(&http, PROVIDER).await;
    finished(&http, &daemon, &before).await;
    let full = sim.stats();
    println!(
        "steady full run at {total} repositories: {} requests ({}; {} distinct; by status {:?})",
        full.requests,
        by_kind(&full),
        full.distinct_requests,
        full.by_status
    );

    sim.reset_stats();
    tokio::time::sleep(SWEEP_WINDOW).await;
    let swept = sim.stats();
    // A sweep's listing asks for every project's repositories once, or
    // for every page of the global listing once: the window's pages over
    // one listing's give the sweeps it holds (the first and last may be
    // partly in it).
    let global_pages = total.div_ceil(1000).max(1);
    let sweeps = if per_project {
        swept.kind_requests(EndpointKind::ServerRepos) as f64 / projects as f64
    } else {
        swept.kind_requests(EndpointKind::ServerGlobalRepos) as f64 / global_pages as f64
    };
    let per_sweep = swept.requests as f64 / sweeps.max(f64::MIN_POSITIVE);
    println!(
        "sweeps list {}",
        if per_project {
            "project by project (the simulator refuses the global listing)"
        } else {
            "with the global listing"
        }
    );
    println!(
        "{sweeps:.2} listing sweeps in {} s, nothing changed: {} requests ({}), {per_sweep:.1} per sweep",
        SWEEP_WINDOW.as_secs(),
        swept.requests,
        by_kind(&swept)
    );
    println!(
        "one per-project listing: {listing} pages ({projects_pages} of projects, {projects} of repositories); one global listing: {global_pages} pages; a sweep reads no file: {} raw requests",
        swept.kind_requests(EndpointKind::ServerRaw)
    );
    // A full run: its reads plus one listing (a sweep under way when the
    // run was asked for may have listed too: not the run's).
    let per_run = (full.kind_requests(EndpointKind::ServerRaw) + listing as u64) as f64;
    let sweeps_per_day = 24.0 * 60.0 / 5.0;
    // The global listing's sweeps list projects again once an hour (the
    // window is too short to hold one).
    let scope_refresh = if per_project {
        0.0
    } else {
        24.0 * projects_pages as f64
    };
    for hours in [6.0, 24.0] {
        let runs = 24.0 / hours;
        let sweeping = sweeps_per_day * per_sweep + scope_refresh;
        println!(
            "per day with a full run every {hours} h ({per_run:.0} requests each) and a sweep every 5 min ({per_sweep:.1} each, {scope_refresh:.0} hourly projects pages): {:.0} + {:.0} = {:.0} requests",
            runs * per_run,
            sweeping,
            runs * per_run + sweeping
        );
    }
    // What the same freshness by full runs alone would cost.
    println!(
        "full runs every 5 min instead: {:.0} requests per day",
        sweeps_per_day * per_run
    );
}
