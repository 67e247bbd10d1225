//! The real estate of issue 24 on Data Center:
//! `cargo bench --bench estate [-- --quick]`
//!
//! 10,000 repositories (200 projects × 50; `ESTATE_REPOS=N` for another
//! size), 2 % of them monorepos with 100–800 nested catalog files
//! (`ESTATE_MONOREPO_RATIO`, `ESTATE_MONOREPO_FILES=MIN,MAX`), read by one
//! provider with `catalogPath: "**/catalog-info.yaml"` under Data Center's
//! default bucket, 60 burst / 5 per second. At that pace the first run of
//! the full estate needs hours, so `ESTATE_RATE_SCALE=K` multiplies the
//! burst and the refill by K (`0`: no bucket) and the report also gives
//! the time the real bucket would take. `--quick` is `ESTATE_REPOS=1000
//! ESTATE_RATE_SCALE=20` unless those are set. `ESTATE_LATENCY_MS`
//! (default 20) delays every answer; `ESTATE_LOCATION_TREES=0` leaves out
//! the catalog files that are Locations with targets.
//!
//! The simulator runs in this process; the daemon runs `serve` in a child
//! process (SQLite store), so its RSS is its own. Two runs, both asked for
//! by `POST …/refresh`: the first (empty store) until every expected
//! entity is served, then a steady-state run with nothing changed, whose
//! requests are compared with the minimum, one per repository.

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bitbucket_sim::{
    Behaviour, Dataset, DatasetConfig, EndpointKind, FileKind, FileMix, RateLimit, SimConfig,
    Simulator, Stats,
};
use support::Daemon;
use support::sim::SimProviderConfig;

/// The daemon's Data Center page size.
const PAGE_LIMIT: usize = 1000;
const PROVIDER: &str = "sim";
/// Data Center's default bucket.
const BURST: f64 = 60.0;
const PER_SECOND: f64 = 5.0;

struct Knobs {
    repos: usize,
    rate_scale: f64,
    latency: Duration,
    monorepo_ratio: f64,
    monorepo_files: (usize, usize),
    location_trees: bool,
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Knobs {
    fn read() -> Self {
        let quick = std::env::args().any(|a| a == "--quick");
        let monorepo_files = std::env::var("ESTATE_MONOREPO_FILES")
            .ok()
            .and_then(|v| {
                let (least, most) = v.split_once(',')?;
                Some((least.trim().parse().ok()?, most.trim().parse().ok()?))
            })
            .unwrap_or((100, 800));
        Self {
            repos: env("ESTATE_REPOS").unwrap_or(if quick { 1000 } else { 10_000 }),
            rate_scale: env("ESTATE_RATE_SCALE").unwrap_or(if quick { 20.0 } else { 1.0 }),
            latency: Duration::from_millis(env("ESTATE_LATENCY_MS").unwrap_or(20)),
            monorepo_ratio: env("ESTATE_MONOREPO_RATIO").unwrap_or(0.02),
            monorepo_files,
            location_trees: env::<u8>("ESTATE_LOCATION_TREES").is_none_or(|v| v != 0),
        }
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        (self.rate_scale > 0.0).then(|| RateLimit {
            burst: (BURST * self.rate_scale).round() as u32,
            per_second: PER_SECOND * self.rate_scale,
        })
    }

    fn dataset(&self) -> DatasetConfig {
        let per_project = self.repos.clamp(1, 50);
        let mut mix = FileMix::default();
        if !self.location_trees {
            mix.location_tree = 0.0;
        }
        DatasetConfig {
            projects: self.repos.div_ceil(per_project),
            repos_per_project: per_project,
            cloud_projects: 0,
            monorepo_ratio: self.monorepo_ratio,
            monorepo_files: self.monorepo_files,
            mix,
            ..DatasetConfig::default()
        }
    }
}

/// What the data set asks of a glob provider.
struct Expected {
    refs: BTreeSet<String>,
    repos: usize,
    monorepos: usize,
    glob_files: usize,
    listing_pages: usize,
    /// Listing pages, each repository's head check and file listing, one
    /// read per matching file and per Location target.
    first_minimum: usize,
    /// Listing pages and one head check per repository.
    steady_minimum: usize,
    location_repos: usize,
    /// What re-reading every repository with a Location file would add to
    /// a steady-state run: file listing pages, matching files, targets.
    location_reread: usize,
}

fn expected(dataset: &Dataset) -> Expected {
    let pages = |n: usize| n.div_ceil(PAGE_LIMIT).max(1);
    let repos: Vec<_> = dataset.server_repos().collect();
    let targets = |r: &bitbucket_sim::Repo| {
        if matches!(r.file_kind, FileKind::LocationTree) {
            r.files
                .keys()
                .filter(|p| p.ends_with(".yaml") && !p.ends_with("catalog-info.yaml"))
                .count()
        } else {
            0
        }
    };
    let location: Vec<_> = repos
        .iter()
        .filter(|r| matches!(r.file_kind, FileKind::LocationTree))
        .collect();
    let listing_pages = dataset.server_listing_pages(PAGE_LIMIT, true);
    Expected {
        // A glob reads every catalog-info.yaml; Location targets add theirs.
        refs: repos
            .iter()
            .flat_map(|r| r.glob_entity_refs().chain(&r.tree_entity_refs))
            .cloned()
            .collect(),
        repos: repos.len(),
        monorepos: repos.iter().filter(|r| r.monorepo).count(),
        glob_files: repos.iter().map(|r| r.catalog_paths().len()).sum(),
        listing_pages,
        first_minimum: dataset.server_glob_minimum_requests(PAGE_LIMIT, true, false)
            + repos.len()
            + repos.iter().map(|r| targets(r)).sum::<usize>(),
        steady_minimum: listing_pages + repos.len(),
        location_repos: location.len(),
        location_reread: location
            .iter()
            .map(|r| pages(r.files.len()) + r.catalog_paths().len() + targets(r))
            .sum(),
    }
}

/// The daemon as `serve` (see [`support::Daemon`]), with writes open so
/// the bench can ask for runs without a token, and its log on stderr when
/// `ESTATE_LOG` names a level.
fn spawn_daemon(config: &str) -> Daemon {
    Daemon::spawn_with(config, |command| {
        command.env(
            "APP_CONFIG_backend_auth_dangerouslyDisableDefaultAuthPolicy",
            "true",
        );
        if let Ok(level) = std::env::var("ESTATE_LOG") {
            command.env("RUST_LOG", level).stderr(Stdio::inherit());
        } else {
            command.env("RUST_LOG", "error");
        }
    })
}

struct Run {
    /// From the refresh until the provider served `want` entities.
    complete: Option<Duration>,
    /// From the refresh until the run finished.
    wall: Duration,
    outcome: String,
    peak_rss_kib: u64,
}

/// Asks for a run and follows it until it ends.
async fn run(http: &reqwest::Client, daemon: &Daemon, want: usize) -> Run {
    let started = Instant::now();
    let before = daemon.refresh(http, PROVIDER).await;
    let mut complete = None;
    let mut peak = 0;
    let mut last_print = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(support::status_kib(daemon.pid(), "VmHWM:"));
        let Some(now) = daemon.provider(http, PROVIDER).await else {
            continue;
        };
        let served = now["entities"].as_u64().unwrap_or(0) as usize;
        if complete.is_none() && served >= want {
            complete = Some(started.elapsed());
        }
        if last_print.elapsed() > Duration::from_secs(30) {
            last_print = Instant::now();
            eprintln!(
                "   … {:.0} s: {served} of {want} entities, progress {}",
                started.elapsed().as_secs_f64(),
                now["progress"]
            );
        }
        if now["inProgress"] == false && now["lastRun"]["startedAt"] != before {
            return Run {
                complete,
                wall: started.elapsed(),
                outcome: now["lastRun"]["outcome"]["status"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
                peak_rss_kib: peak.max(support::status_kib(daemon.pid(), "VmHWM:")),
            };
        }
    }
}

fn by_kind(stats: &Stats) -> String {
    support::requests::by_kind(
        stats,
        &[
            (EndpointKind::ServerProjects, "projects"),
            (EndpointKind::ServerRepos, "repos"),
            (EndpointKind::ServerDefaultBranch, "head"),
            (EndpointKind::ServerFiles, "files"),
            (EndpointKind::ServerChanges, "changes"),
            (EndpointKind::ServerRaw, "raw"),
            (EndpointKind::Other, "other"),
        ],
    )
}

/// Seconds Data Center's default bucket needs for `stats`'s served
/// requests (a 429 costs no token): the bound any client meets.
fn real_bucket_bound(stats: &Stats) -> f64 {
    let served = stats.requests - stats.status("429");
    (served as f64 - BURST).max(0.0) / PER_SECOND
}

fn report_run(label: &str, run: &Run, stats: &Stats, minimum: usize, rate: Option<&RateLimit>) {
    println!("== {label}: outcome {}", run.outcome);
    match run.complete {
        Some(at) => println!(
            "   complete catalog after {:.1} s; run ended after {:.1} s",
            at.as_secs_f64(),
            run.wall.as_secs_f64()
        ),
        None => println!(
            "   catalog never complete; run ended after {:.1} s",
            run.wall.as_secs_f64()
        ),
    }
    println!(
        "   requests {} (minimum {minimum}, {:+.1} %): {}; 429s {}, repeated {}",
        stats.requests,
        (stats.requests as f64 / minimum as f64 - 1.0) * 100.0,
        by_kind(stats),
        stats.status("429"),
        stats.repeated_requests(),
    );
    if let Some(rate) = rate {
        let served = stats.requests - stats.status("429");
        let bound = served.saturating_sub(u64::from(rate.burst)) as f64 / rate.per_second;
        // Within the burst the bucket sets no bound: no ratio then.
        let ratio = if bound > 0.0 {
            format!("wall / bound {:.2}", run.wall.as_secs_f64() / bound)
        } else {
            "within the burst".to_owned()
        };
        println!(
            "   bucket {} / {} per s: bound {bound:.1} s, {ratio}",
            rate.burst, rate.per_second,
        );
    }
    let bound = real_bucket_bound(stats);
    println!(
        "   at Data Center's default bucket (60 / 5 per s) these requests need at least {bound:.0} s ({:.1} h)",
        bound / 3600.0
    );
    println!(
        "   daemon peak RSS {:.1} MiB",
        run.peak_rss_kib as f64 / 1024.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let knobs = Knobs::read();
    let generating = Instant::now();
    let sim = Simulator::start(SimConfig {
        seed: 1,
        dataset: knobs.dataset(),
        behaviour: Behaviour {
            latency: knobs.latency,
            rate_limit: knobs.rate_limit(),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let want = expected(sim.dataset());
    println!(
        "estate: {} repositories, {} monorepos ({}–{} files), {} catalog files under **/catalog-info.yaml, {} entities expected, {} repositories with a Location file; latency {} ms; generated in {:.1} s",
        want.repos,
        want.monorepos,
        knobs.monorepo_files.0,
        knobs.monorepo_files.1,
        want.glob_files,
        want.refs.len(),
        want.location_repos,
        knobs.latency.as_millis(),
        generating.elapsed().as_secs_f64()
    );
    match knobs.rate_limit() {
        Some(rate) if knobs.rate_scale == 1.0 => println!(
            "bucket: Data Center's default, {} / {} per s",
            rate.burst, rate.per_second
        ),
        Some(rate) => println!(
            "bucket: Data Center's default scaled ×{} (ESTATE_RATE_SCALE): {} / {} per s",
            knobs.rate_scale, rate.burst, rate.per_second
        ),
        None => println!("bucket: none (ESTATE_RATE_SCALE=0)"),
    }

    let config = SimProviderConfig::new(&sim)
        .schedule("frequency: {trigger: manual}, timeout: {hours: 24}")
        .provider_extra("        catalogPath: \"**/catalog-info.yaml\"\n")
        .yaml();
    let daemon = spawn_daemon(&config);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("HTTP client");
    let deadline = Instant::now() + Duration::from_secs(120);
    while daemon.provider(&http, PROVIDER).await.is_none() {
        assert!(Instant::now() < deadline, "the daemon answers");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sim.reset_stats();

    let first = run(&http, &daemon, want.refs.len()).await;
    let first_stats = sim.stats();
    let served = daemon.served_refs(&http).await;
    report_run(
        "first run (empty store)",
        &first,
        &first_stats,
        want.first_minimum,
        knobs.rate_limit().as_ref(),
    );
    println!(
        "   entities {} of {} expected: {} lost, {} unexpected",
        served.len(),
        want.refs.len(),
        want.refs.difference(&served).count(),
        served.difference(&want.refs).count()
    );

    sim.reset_stats();
    let steady = run(&http, &daemon, want.refs.len()).await;
    let steady_stats = sim.stats();
    let served_after = daemon.served_refs(&http).await;
    report_run(
        "steady state (nothing changed)",
        &steady,
        &steady_stats,
        want.steady_minimum,
        knobs.rate_limit().as_ref(),
    );
    println!(
        "   minimum: one head check per repository ({}) + {} listing pages; the {} repositories with a Location file would add {} if re-read ({} predicted)",
        want.repos,
        want.listing_pages,
        want.location_repos,
        want.location_reread,
        want.steady_minimum + want.location_reread
    );
    println!(
        "   per repository: {:.3} requests ({:.3} beyond the listing pages)",
        steady_stats.requests as f64 / want.repos as f64,
        steady_stats
            .requests
            .saturating_sub(want.listing_pages as u64) as f64
            / want.repos as f64
    );
    println!(
        "   entities {} of {} expected after it: {} lost, {} unexpected",
        served_after.len(),
        want.refs.len(),
        want.refs.difference(&served_after).count(),
        served_after.difference(&want.refs).count()
    );
    let (rss, peak) = (
        support::status_kib(daemon.pid(), "VmRSS:"),
        support::status_kib(daemon.pid(), "VmHWM:"),
    );
    println!(
        "daemon RSS after both runs {:.1} MiB (peak {:.1} MiB)",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    drop(daemon);
    sim.shutdown().await;
}
