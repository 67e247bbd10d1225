//! `run-once`: one discovery run of every configured source (or of one),
//! the entities on stdout and a summary per source on stderr.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Cli, Format, exit};
use crate::app::build_sources;
use crate::bitbucket::RequestStats;
use crate::catalog::{Catalog, Conflict, UnitEntities};
use crate::config::Config;
use crate::discovery::{
    Held, Problem, Progress, RunContext, RunReport, RunSink, Source, UnitUpdate,
};

pub(super) async fn run_once(
    cli: &Cli,
    only: Option<&str>,
    format: Format,
    progress_every: std::time::Duration,
) -> ExitCode {
    let loaded = match cli.load_warned() {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let sources = match selected_sources(&loaded.config, only) {
        Ok(sources) => sources,
        Err(code) => return code,
    };
    let runs = run_sources(&sources, progress_every).await;
    // The catalog the daemon would serve (ownership, relations, uid and
    // etag), built once every run is done, in memory only.
    let catalog = Catalog::new();
    let all_ok = apply_runs(&catalog, runs);
    catalog.publish();
    let entities: Vec<Value> = catalog.snapshot().iter().map(|e| e.value()).collect();
    if let Err(err) = print_entities(&entities, format) {
        eprintln!("error: cannot write the entities: {err}");
        return ExitCode::from(exit::FAILED);
    }
    ExitCode::from(if all_ok { exit::OK } else { exit::FAILED })
}

/// The configured sources, or only the one with id `only`; an unknown id
/// is a configuration error that lists the known ones.
fn selected_sources(config: &Config, only: Option<&str>) -> Result<Vec<Source>, ExitCode> {
    let sources = match build_sources(config) {
        Ok(built) => built.sources,
        Err(err) => return Err(exit::config_error(err)),
    };
    let Some(id) = only else {
        return Ok(sources);
    };
    if !sources.iter().any(|s| s.id() == id) {
        let known: Vec<&str> = sources.iter().map(|s| s.id()).collect();
        eprintln!(
            "error: no provider '{id}' among catalog.providers.bitbucketServer, catalog.providers.bitbucketCloud and catalog.locations (known: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        return Err(ExitCode::from(exit::CONFIG));
    }
    Ok(sources.into_iter().filter(|s| s.id() == id).collect())
}

/// Runs every source at once; each keeps what its files yielded. Their
/// progress shows on stderr meanwhile ([`super::run_progress`]).
async fn run_sources(
    sources: &[Source],
    progress_every: std::time::Duration,
) -> Vec<(&str, RunReport, Vec<UnitEntities>)> {
    let tracked: Vec<(String, Arc<Progress>, Arc<RequestStats>)> = sources
        .iter()
        .map(|s| {
            (
                s.id().to_owned(),
                Arc::new(Progress::new()),
                Arc::new(RequestStats::default()),
            )
        })
        .collect();
    let done = CancellationToken::new();
    let reporter = tokio::spawn(super::run_progress::report(
        tracked.clone(),
        progress_every,
        done.clone(),
    ));
    let runs = sources
        .iter()
        .zip(&tracked)
        .map(|(source, (_, progress, stats))| async move {
            let sink = Collected::default();
            let ctx = RunContext {
                stats: Arc::clone(stats),
                progress: Arc::clone(progress),
                known: HashMap::new(),
                sink: &sink,
                stop: CancellationToken::new(),
            };
            let report = source.run(&ctx).await;
            (source.id(), report, sink.units.into_inner())
        });
    let runs = futures::future::join_all(runs).await;
    done.cancel();
    // The bars are cleared before the summaries print.
    let _ = reporter.await;
    runs
}

/// Prepares each run's entities in `catalog` and prints its summary and
/// problems (conflicts included); whether every run succeeded.
fn apply_runs(catalog: &Catalog, runs: Vec<(&str, RunReport, Vec<UnitEntities>)>) -> bool {
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
    all_ok
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

/// Why the entities could not be written.
#[derive(Debug, thiserror::Error)]
enum PrintError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Yaml(#[from] serde_saphyr::ser::Error),
    #[error(transparent)]
    Write(#[from] std::io::Error),
}

fn print_entities(entities: &[Value], format: Format) -> Result<(), PrintError> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(entities)? + "\n",
        Format::Yaml => {
            let mut out = String::new();
            for entity in entities {
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(entity)?);
            }
            out
        }
    };
    Ok(std::io::stdout().lock().write_all(text.as_bytes())?)
}
