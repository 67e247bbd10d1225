//! `bitbucket-sim`: run the simulator on a loopback port until Ctrl-C/SIGTERM.

use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use bitbucket_sim::{
    AuthConfig, Behaviour, CloudOptions, CodeSearch, DatasetConfig, DatasetSummary, Faults,
    FileMix, RateLimit, ServerOptions, SimConfig, Simulator,
};
use clap::Parser;

/// A Bitbucket Server (REST 1.0) and Cloud (REST 2.0) simulator over a
/// generated, seeded data set, for trying and benchmarking bitbucket-catalogd.
#[derive(Debug, Parser)]
#[command(name = "bitbucket-sim", version)]
struct Cli {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 7990)]
    port: u16,
    /// Loopback address to bind (127.0.0.1 or ::1; others are refused).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Seeds the data set and the fault decisions.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Regular Server projects (P0001, …).
    #[arg(long, default_value_t = 4)]
    projects: usize,
    #[arg(long, default_value_t = 10)]
    repos_per_project: usize,
    /// Personal Server projects (~USER001, …).
    #[arg(long, default_value_t = 0)]
    personal_projects: usize,
    #[arg(long, default_value_t = 2)]
    repos_per_personal_project: usize,
    /// Leave personal projects out of GET /projects (their repos still answer).
    #[arg(long)]
    hide_personal_projects: bool,
    /// Fraction of repositories with a catalog-info.yaml.
    #[arg(long, default_value_t = 0.6)]
    catalog_ratio: f64,
    /// Fraction of Server repositories marked archived.
    #[arg(long, default_value_t = 0.05)]
    archived_ratio: f64,
    /// Weights of file shapes: component,multi-document,location-tree,broken-yaml,invalid-entity.
    #[arg(long, value_parser = parse_mix, default_value = "0.6,0.15,0.1,0.05,0.1")]
    file_mix: FileMix,
    #[arg(long, default_value = "acme")]
    cloud_workspace: String,
    #[arg(long, default_value_t = 3)]
    cloud_projects: usize,
    #[arg(long, default_value_t = 10)]
    cloud_repos_per_project: usize,

    /// Fraction of repositories that are monorepos (nested catalog files and decoys).
    #[arg(long, default_value_t = 0.0)]
    monorepo_ratio: f64,
    /// Nested catalog files per monorepo: MIN,MAX.
    #[arg(long, value_parser = parse_range, default_value = "100,300")]
    monorepo_files: (usize, usize),
    /// Fraction of repositories with a .bitbucket/CODEOWNERS file.
    #[arg(long, default_value_t = 0.0)]
    codeowners_ratio: f64,

    /// Server cap on `limit`.
    #[arg(long, default_value_t = 1000)]
    max_page_size: usize,
    /// Cloud cap on `pagelen`.
    #[arg(long, default_value_t = 100)]
    cloud_max_pagelen: usize,

    /// The webhookSecret the printed config sets, and what POST /__sim/push
    /// signs its webhook events with.
    #[arg(long)]
    webhook_secret: Option<String>,

    /// Latency added to every API request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Latency added per API request in flight (a server that slows with load).
    #[arg(long, default_value_t = 0)]
    latency_per_in_flight_ms: u64,
    /// Token bucket size per credential; 0 disables rate limiting.
    /// Bitbucket Data Center's default is 60 with 5 per second.
    #[arg(long, default_value_t = 0)]
    rate_limit_burst: u32,
    #[arg(long, default_value_t = 5.0)]
    rate_limit_per_second: f64,
    /// Fraction of requests answered 500/502/503.
    #[arg(long = "fail-5xx", default_value_t = 0.0)]
    fail_5xx: f64,
    /// Fraction of requests whose connection is reset without a response.
    #[arg(long, default_value_t = 0.0)]
    fail_reset: f64,
    /// Fraction of answers cut off half-way through the body.
    #[arg(long, default_value_t = 0.0)]
    fail_truncate: f64,
    /// Fraction of answers whose body is dribbled out over --slow-body-ms.
    #[arg(long, default_value_t = 0.0)]
    fail_slow: f64,
    #[arg(long, default_value_t = 2000)]
    slow_body_ms: u64,

    /// Answer Cloud code search as for a workspace without search enabled.
    #[arg(long)]
    code_search_disabled: bool,
    #[arg(long, default_value_t = 404)]
    code_search_disabled_status: u16,
    /// Results of the previous page repeated at the start of each code search page (BCLOUD-23644).
    #[arg(long, default_value_t = 0)]
    code_search_repeat: usize,
    #[arg(long, default_value_t = 1000)]
    code_search_max_results: usize,
    /// Code search results in a new (seeded) order each time a query starts again.
    #[arg(long)]
    code_search_unstable_order: bool,

    /// Require `Authorization: Bearer TOKEN` (repeatable; any listed credential works).
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// Also write the config fragment for bitbucket-catalogd to FILE (the
    /// banner on stdout is not YAML), for `--config FILE`.
    #[arg(long, value_name = "FILE")]
    write_config: Option<std::path::PathBuf>,

    /// Require Basic USER:PASSWORD (repeatable).
    #[arg(long = "basic", value_name = "USER:PASSWORD", value_parser = parse_basic)]
    basic: Vec<(String, String)>,
}

fn parse_basic(value: &str) -> Result<(String, String), String> {
    value
        .split_once(':')
        .filter(|(user, _)| !user.is_empty())
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .ok_or_else(|| "expected USER:PASSWORD".to_owned())
}

fn parse_range(value: &str) -> Result<(usize, usize), String> {
    let (least, most) = value.split_once(',').ok_or("expected MIN,MAX")?;
    let number = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
    Ok((number(least)?, number(most)?))
}

fn parse_mix(value: &str) -> Result<FileMix, String> {
    let weights: Vec<f64> = value
        .split(',')
        .map(|w| w.trim().parse::<f64>().map_err(|e| format!("{w:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match weights.as_slice() {
        [
            component,
            multi_document,
            location_tree,
            broken_yaml,
            invalid_entity,
        ] => Ok(FileMix {
            component: *component,
            multi_document: *multi_document,
            location_tree: *location_tree,
            broken_yaml: *broken_yaml,
            invalid_entity: *invalid_entity,
        }),
        _ => Err("expected five comma-separated weights".into()),
    }
}

impl Cli {
    fn into_config(self) -> SimConfig {
        SimConfig {
            bind: self.bind,
            port: self.port,
            seed: self.seed,
            dataset: DatasetConfig {
                projects: self.projects,
                repos_per_project: self.repos_per_project,
                personal_projects: self.personal_projects,
                repos_per_personal_project: self.repos_per_personal_project,
                catalog_ratio: self.catalog_ratio,
                archived_ratio: self.archived_ratio,
                mix: self.file_mix,
                cloud_workspace: self.cloud_workspace,
                cloud_projects: self.cloud_projects,
                cloud_repos_per_project: self.cloud_repos_per_project,
                monorepo_ratio: self.monorepo_ratio,
                monorepo_files: self.monorepo_files,
                codeowners_ratio: self.codeowners_ratio,
            },
            server: ServerOptions {
                max_page_size: self.max_page_size,
                list_personal_projects: !self.hide_personal_projects,
                ..ServerOptions::default()
            },
            cloud: CloudOptions {
                max_pagelen: self.cloud_max_pagelen,
                ..CloudOptions::default()
            },
            behaviour: Behaviour {
                latency: Duration::from_millis(self.latency_ms),
                latency_per_in_flight: Duration::from_millis(self.latency_per_in_flight_ms),
                rate_limit: (self.rate_limit_burst > 0).then_some(RateLimit {
                    burst: self.rate_limit_burst,
                    per_second: self.rate_limit_per_second,
                }),
                faults: Faults {
                    server_error: self.fail_5xx,
                    reset: self.fail_reset,
                    truncate: self.fail_truncate,
                    slow: self.fail_slow,
                    slow_body: Duration::from_millis(self.slow_body_ms),
                },
                code_search: CodeSearch {
                    enabled: !self.code_search_disabled,
                    disabled_status: self.code_search_disabled_status,
                    repeat_per_page: self.code_search_repeat,
                    max_results: self.code_search_max_results,
                    unstable_order: self.code_search_unstable_order,
                },
            },
            auth: AuthConfig {
                bearer_tokens: self.tokens,
                basic: self.basic,
            },
            webhook_secret: self.webhook_secret,
        }
    }
}

/// The monorepo and code owners line of the banner; empty when both are off.
fn estate_line(s: &DatasetSummary) -> String {
    if s.server_monorepos + s.cloud_monorepos + s.server_codeowners + s.cloud_codeowners == 0 {
        return String::new();
    }
    format!(
        "real estate: Server {sm} monorepos, {sf} files matching **/catalog-info.yaml ({se} entities), {sc} CODEOWNERS; Cloud {cm} monorepos, {cf} files ({ce} entities), {cc} CODEOWNERS\n",
        sm = s.server_monorepos,
        sf = s.server_glob_files,
        se = s.server_glob_entities,
        sc = s.server_codeowners,
        cm = s.cloud_monorepos,
        cf = s.cloud_glob_files,
        ce = s.cloud_glob_entities,
        cc = s.cloud_codeowners,
    )
}

fn banner(sim: &Simulator) -> String {
    let d = sim.dataset();
    let s = d.summary();
    let files: usize = s
        .server_files_by_kind
        .iter()
        .filter(|(kind, _)| **kind != "none")
        .map(|(_, n)| n)
        .sum();
    let config = sim.config();
    let base = sim.base_url();
    format!(
        "bitbucket-sim listening on {base}\n  Server REST 1.0  {server}\n  Cloud REST 2.0   {cloud}  (workspace {ws})\n  stats            {base}/__sim/stats  (reset: POST {base}/__sim/stats/reset)\n\
         data set (seed {seed}): {projects} projects + {personal} personal, {repos} repos ({archived} archived), {files} catalog files {kinds:?}, {entities} entities ({tree} following Locations); Cloud: {cprojects} projects, {crepos} repos, {centities} entities\n\
         minimum requests for one Server discovery: {minimum} ({pages} listing pages at limit {limit} + one file read per repo)\n{estate}\n\
         # app-config.yaml for bitbucket-catalogd:\n{snippet}",
        server = sim.server_api_base(),
        cloud = sim.cloud_api_base(),
        ws = sim.cloud_workspace(),
        seed = d.seed,
        projects = s.server_projects,
        personal = s.server_personal_projects,
        repos = s.server_repos,
        archived = s.server_archived_repos,
        kinds = s.server_files_by_kind,
        entities = s.server_entities,
        tree = s.server_tree_entities,
        cprojects = s.cloud_projects,
        crepos = s.cloud_repos,
        centities = s.cloud_entities,
        minimum = d.server_minimum_requests(
            config.server.max_page_size,
            config.server.list_personal_projects,
            false
        ),
        pages = d.server_listing_pages(
            config.server.max_page_size,
            config.server.list_personal_projects
        ),
        limit = config.server.max_page_size,
        estate = estate_line(&s),
        snippet = sim.app_config_snippet(),
    )
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    if let Err(err) = tokio::signal::ctrl_c().await {
        tracing::warn!(%err, "cannot wait for Ctrl-C; stopping");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut cli = Cli::parse();
    let write_config = cli.write_config.take();
    let sim = match Simulator::start(cli.into_config()).await {
        Ok(sim) => sim,
        Err(err) => {
            eprintln!("bitbucket-sim: {err}");
            return ExitCode::from(match err {
                bitbucket_sim::SimError::Bind { .. } => 1,
                _ => 2,
            });
        }
    };
    if let Some(file) = &write_config {
        if let Err(err) = std::fs::write(file, sim.app_config_snippet()) {
            eprintln!(
                "bitbucket-sim: cannot write the config to {}: {err}",
                file.display()
            );
            sim.shutdown().await;
            return ExitCode::from(1);
        }
        eprintln!(
            "bitbucket-sim: config for bitbucket-catalogd written to {} (pass it with --config)",
            file.display()
        );
    }
    // Not println!: a closed stdout (`| head`) must not bring the simulator down.
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{}", banner(&sim)).and_then(|()| stdout.flush()) {
        tracing::warn!(%err, "could not print the start-up banner");
    }
    drop(stdout);
    wait_for_signal().await;
    eprintln!("bitbucket-sim: stopping");
    sim.shutdown().await;
    ExitCode::SUCCESS
}
