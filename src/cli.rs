//! The command line: `serve`, `run-once`, `plan`, `health`, `config check`
//! and `validate`.

mod config_check;
mod health;
mod input;
mod plan;
mod run_once;
mod run_progress;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::Application;
use crate::config::{Config, DEFAULT_CONFIG_FILE, Environment, Loaded};
use config_check::config_check;
use plan::PlanFormat;
use run_once::run_once;
use validate::validate;

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
        /// Seconds between progress lines on stderr when it is not a
        /// terminal (a terminal shows a bar); 0: none.
        #[arg(long, default_value_t = 10, value_name = "SECONDS")]
        progress_every: u64,
    },
    /// What this configuration would change against the store it names
    /// (opened read-only): listing requests only, nothing written. Exit 0:
    /// nothing removed, 3: something would be removed, 2: an error.
    Plan {
        #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
        format: PlanFormat,
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
pub(crate) mod exit {
    pub(crate) const OK: u8 = 0;
    pub(crate) const FAILED: u8 = 1;
    pub(crate) const CONFIG: u8 = 2;
    /// `plan`: the configuration would remove entities.
    pub(crate) const REMOVES: u8 = 3;

    /// Prints `err`; the exit code of a config or input that cannot be used.
    pub(crate) fn config_error(err: impl std::fmt::Display) -> std::process::ExitCode {
        eprintln!("error: {err}");
        std::process::ExitCode::from(CONFIG)
    }
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
        Config::load(&self.config_files(), &Environment::from_process()).map_err(exit::config_error)
    }

    /// [`Self::load`], with the config's warnings printed to stderr.
    fn load_warned(&self) -> Result<Loaded, ExitCode> {
        let loaded = self.load()?;
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
        Ok(loaded)
    }
}

/// Runs the parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match &cli.command {
        Command::Serve => serve(&cli).await,
        Command::RunOnce {
            provider,
            format,
            progress_every,
        } => {
            run_once(
                &cli,
                provider.as_deref(),
                *format,
                std::time::Duration::from_secs(*progress_every),
            )
            .await
        }
        Command::Health { timeout } => {
            health::probe(&cli, std::time::Duration::from_secs(*timeout)).await
        }
        Command::Config {
            action: ConfigAction::Check { strict },
        } => config_check(&cli, *strict),
        Command::Validate { paths } => validate(&cli, paths).await,
        Command::Plan { format } => plan::plan(&cli, *format).await,
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
        Ok(app) => app.reload_from(cli.config_files(), Environment::from_process()),
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
