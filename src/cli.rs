//! The command line: `serve`, `run-once`, `health`, `config check` and
//! `validate`.

mod health;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::app::{Application, build_sources};
use crate::bitbucket::RequestStats;
use crate::catalog::{Catalog, Conflict, UnitEntities};
use crate::config::{Config, DEFAULT_CONFIG_FILE, Environment, Loaded};
use crate::discovery::{Held, Problem, Progress, RunContext, RunSink, UnitUpdate};

#[derive(Debug, Parser)]
#[command(
    name = "bitbucket-catalogd",
    version,
    about = "Discovers Backstage catalog entities in Bitbucket and serves them over HTTP"
)]
pub struct Cli {
    /// Configuration file; repeat to layer files (later ones override earlier ones).
    #[arg(long = "config", short = 'c', global = true, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: discover on schedule and serve the catalog API.
    Serve,
    /// Run discovery once, print the entities to stdout and a summary to stderr.
    RunOnce {
        /// Only this provider id.
        #[arg(long)]
        provider: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Check catalog files offline, as discovery would (for a repository's
    /// own CI): one `path:line:column: message` line per problem.
    Validate {
        /// Catalog files; `-` reads the standard input.
        #[arg(required = true, value_name = "PATH|-")]
        paths: Vec<PathBuf>,
    },
    /// Probe the readiness of the daemon running with this configuration
    /// (for container health checks): exit 0 when ready.
    Health {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Load and validate; print the resolved config with secrets redacted.
    Check {
        /// Treat warnings (unknown keys, unset variables) as errors: exit 2.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

/// Exit codes shared by every command.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const CONFIG: u8 = 2;
}

impl Cli {
    fn config_files(&self) -> Vec<PathBuf> {
        if self.config.is_empty() {
            vec![PathBuf::from(DEFAULT_CONFIG_FILE)]
        } else {
            self.config.clone()
        }
    }

    fn load(&self) -> Result<Loaded, ExitCode> {
        match Config::load(&self.config_files(), &Environment::from_process()) {
            Ok(loaded) => Ok(loaded),
            Err(err) => {
                eprintln!("error: {err}");
                Err(ExitCode::from(exit::CONFIG))
            }
        }
    }
}

/// Runs the parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match &cli.command {
        Command::Serve => serve(&cli).await,
        Command::RunOnce { provider, format } => run_once(&cli, provider.as_deref(), *format).await,
        Command::Health { timeout } => {
            health::probe(&cli, std::time::Duration::from_secs(*timeout)).await
        }
        Command::Config {
            action: ConfigAction::Check { strict },
        } => config_check(&cli, *strict),
        Command::Validate { paths } => validate(&cli, paths).await,
    }
}

async fn serve(cli: &Cli) -> ExitCode {
    let loaded = match cli.load() {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let files: Vec<String> = cli
        .config_files()
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = files.join(", "),
        "bitbucket-catalogd {} starting with {}",
        env!("CARGO_PKG_VERSION"),
        files.join(", ")
    );

    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = &loaded.config;
    if config.provider_ids().is_empty() && config.locations.locations.is_empty() {
        tracing::warn!(
            "no catalog.providers.bitbucketServer, catalog.providers.bitbucketCloud or catalog.locations are configured; the catalog holds only locations registered over HTTP"
        );
    }
    let app = match Application::build(loaded.config).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::from(exit::FAILED)
        }
    }
}

async fn run_once(cli: &Cli, only: Option<&str>, format: Format) -> ExitCode {
    let loaded = match cli.load() {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let config = loaded.config;
    let sources = match build_sources(&config) {
        Ok(built) => built.sources,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    if let Some(id) = only
        && !sources.iter().any(|s| s.id() == id)
    {
        let known: Vec<&str> = sources.iter().map(|s| s.id()).collect();
        eprintln!(
            "error: no provider '{id}' among catalog.providers.bitbucketServer, catalog.providers.bitbucketCloud and catalog.locations (known: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        return ExitCode::from(exit::CONFIG);
    }
    // The same catalog the daemon serves (ownership, relations, uid and
    // etag), in memory only.
    let runs = sources
        .iter()
        .filter(|s| only.is_none_or(|id| s.id() == id))
        .map(|source| async move {
            let sink = Collected::default();
            let ctx = RunContext {
                stats: Arc::new(RequestStats::default()),
                progress: Arc::new(Progress::new()),
                known: HashMap::new(),
                sink: &sink,
                stop: CancellationToken::new(),
            };
            let report = source.run(&ctx).await;
            (source.id(), report, sink.units.into_inner())
        });
    let runs = futures::future::join_all(runs).await;

    // The catalog the daemon would serve (ownership, relations, uid and
    // etag), built once every run is done, in memory only.
    let catalog = Catalog::new();
    let mut all_ok = true;
    for (source, mut report, mut units) in runs {
        // Files in URL order (project, then repository): a contested ref
        // goes to the same file every time.
        units.sort_by(|a, b| a.unit.cmp(&b.unit));
        let applied = catalog.prepare(source, units);
        report
            .problems
            .extend(applied.conflicts.into_iter().map(Conflict::into_problem));
        report.entities = catalog.working_len(source);
        all_ok &= report.succeeded();
        eprintln!("{}", report.summary());
        for problem in &report.problems {
            eprintln!(
                "  problem ({:?}) {}: {}",
                problem.kind,
                problem.place(),
                problem.message
            );
        }
    }
    catalog.publish();
    let entities: Vec<Value> = catalog.snapshot().iter().map(|e| e.value()).collect();
    if let Err(err) = print_entities(&entities, format) {
        eprintln!("error: cannot write the entities: {err}");
        return ExitCode::from(exit::FAILED);
    }
    ExitCode::from(if all_ok { exit::OK } else { exit::FAILED })
}

/// `run-once`'s sink: keeps what each file yielded; nothing is removed.
#[derive(Default)]
struct Collected {
    units: parking_lot::Mutex<Vec<UnitEntities>>,
}

impl RunSink for Collected {
    fn apply(&self, updates: Vec<UnitUpdate>) -> BoxFuture<'_, Vec<Problem>> {
        self.units
            .lock()
            .extend(updates.into_iter().filter_map(|u| {
                u.entities.map(|entities| UnitEntities {
                    unit: u.unit,
                    entities,
                })
            }));
        Box::pin(std::future::ready(Vec::new()))
    }

    fn reconcile(&self, _listed: HashSet<String>) -> BoxFuture<'_, Result<(), Held>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

fn print_entities(entities: &[Value], format: Format) -> Result<(), String> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(entities).map_err(|e| e.to_string())? + "\n",
        Format::Yaml => {
            let mut out = String::new();
            for entity in entities {
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(entity).map_err(|e| e.to_string())?);
            }
            out
        }
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())
}

fn config_check(cli: &Cli, strict: bool) -> ExitCode {
    let loaded = match cli.load() {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let config = &loaded.config;
    match serde_saphyr::to_string(&config.redacted_tree()) {
        Ok(yaml) => print!("{yaml}"),
        Err(err) => {
            eprintln!("error: cannot print the config: {err}");
            return ExitCode::from(exit::FAILED);
        }
    }
    eprintln!(
        "config OK: listening on {}:{}, {} Bitbucket Server and {} Bitbucket Cloud integration(s), {} Server and {} Cloud provider(s), {} location(s); write endpoints {}",
        config.backend.listen.host,
        config.backend.listen.port,
        config.integrations.bitbucket_server.len(),
        if config.implicit_cloud_integration() {
            0
        } else {
            config.integrations.bitbucket_cloud.len()
        },
        config.providers.len(),
        config.cloud_providers.len(),
        config.locations.locations.len(),
        if config.backend.external_access.protected {
            "need a backend.auth.externalAccess token"
        } else {
            "are open (no backend.auth.externalAccess)"
        }
    );
    if strict && !loaded.warnings.is_empty() {
        eprintln!(
            "error: {} warning(s) and --strict: fix them or drop --strict",
            loaded.warnings.len()
        );
        return ExitCode::from(exit::CONFIG);
    }
    ExitCode::from(exit::OK)
}

/// `validate`: the daemon's parser, budgets, validation and, with
/// `--config`, its `catalog.rules` and `catalog.processing`. Exit 1 when a
/// file has a problem, 2 when the config or an input cannot be read.
async fn validate(cli: &Cli, paths: &[PathBuf]) -> ExitCode {
    // Without --config, Backstage's defaults (the default file is not read:
    // CI checks a repository, not a deployment).
    let settings = if cli.config.is_empty() {
        crate::config::CatalogSettings::default()
    } else {
        match cli.load() {
            Ok(loaded) => loaded.config.catalog,
            Err(code) => return code,
        }
    };
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for path in paths {
        let (name, read) = if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            let read = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes);
            (crate::catalog::disk::STDIN.to_owned(), read.map(|_| bytes))
        } else {
            (path.to_string_lossy().into_owned(), std::fs::read(path))
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(err) => {
                eprintln!("error: cannot read {name}: {err}");
                return ExitCode::from(exit::CONFIG);
            }
        };
        let checked =
            crate::catalog::disk::check(&name, &bytes, &settings.rules, &settings.processing).await;
        for finding in &checked.findings {
            // A closed stdout (`| head`) is not the files' fault.
            let _ = writeln!(out, "{finding}");
        }
        for url in &checked.skipped {
            eprintln!("note: {name}: target {url} is a URL and is not read offline");
        }
        failed |= !checked.findings.is_empty();
        eprintln!(
            "{name}: {} entit{}, {} problem(s)",
            checked.entities,
            if checked.entities == 1 { "y" } else { "ies" },
            checked.findings.len()
        );
    }
    ExitCode::from(if failed { exit::FAILED } else { exit::OK })
}
