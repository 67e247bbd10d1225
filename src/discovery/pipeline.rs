//! What every source does with a catalog file once it has its bytes, and
//! how a run's per-file outcomes become its entity set and report. The
//! providers differ in how they find files; from here on they are the same.

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Instant;

use super::{
    Outcome, PreviousEntities, Problem, ProblemKind, RepositoryCatalog, RunReport, RunResult,
};
use crate::bitbucket::RequestStats;
use crate::catalog::entity::ANNOTATION_LOCATION;
use crate::catalog::process::{FileSource, Processor, RepoInfo};
use crate::catalog::{Entity, EntityKey};
use crate::config::CatalogSettings;

/// What reading one catalog file produced.
#[derive(Debug, Default)]
pub struct FileOutcome {
    /// The file exists (it was read, whatever came of it).
    pub found: bool,
    pub entities: Vec<Entity>,
    pub problems: Vec<Problem>,
    /// Files read through Location targets and placeholders.
    pub location_files: usize,
    /// The file's URL when its previous entities were kept instead.
    pub stale: Option<String>,
    /// The read failed: whether the file exists is unknown.
    pub unreadable: bool,
}

/// Processes the file at `location` (its web URL, which becomes the
/// entities' location) given how reading it went: a missing file is "no
/// catalog here", a failed read a `read` problem. Location targets and
/// placeholders are read through `source`.
///
/// A file that cannot be read (after retries) is not "gone": it keeps what
/// it gave last time (`previous`), marked stale, until a read says otherwise.
pub async fn process_file<E: Display>(
    fetched: Result<Option<Vec<u8>>, E>,
    location: &str,
    source: &impl FileSource,
    settings: &CatalogSettings,
    repo: &RepoInfo,
    previous: &PreviousEntities,
) -> FileOutcome {
    let bytes = match fetched {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return FileOutcome::default(),
        Err(err) => {
            let kept = previous.from_file(location);
            let message = if kept.is_empty() {
                err.to_string()
            } else {
                format!(
                    "{err}; keeping its {} previous entities (stale)",
                    kept.len()
                )
            };
            return FileOutcome {
                found: !kept.is_empty(),
                stale: (!kept.is_empty()).then(|| location.to_owned()),
                entities: kept,
                problems: vec![Problem::new(location, ProblemKind::Read, message)],
                unreadable: true,
                ..FileOutcome::default()
            };
        }
    };
    let processor = Processor {
        source,
        rules: &settings.rules,
        config: &settings.processing,
        repo,
    };
    let tree = processor.process_tree(location, &bytes).await;
    FileOutcome {
        found: true,
        entities: tree.entities,
        problems: tree.problems,
        location_files: tree.files_read,
        ..FileOutcome::default()
    }
}

/// Merges per-file outcomes (in a deterministic order, so a contested ref
/// always goes to the same file) into the run's entities; a ref a previous
/// file already provided is a `conflict` problem.
pub fn collect(outcomes: Vec<FileOutcome>, report: &mut RunReport) -> Vec<Entity> {
    let mut seen = HashSet::<EntityKey>::new();
    let mut entities = Vec::new();
    for outcome in outcomes {
        report.files_found += usize::from(outcome.found);
        report.stale.extend(outcome.stale);
        report.location_files += outcome.location_files;
        report.problems.extend(outcome.problems);
        for entity in outcome.entities {
            if seen.insert(entity.key()) {
                entities.push(entity);
            } else {
                let url = entity
                    .metadata
                    .annotations
                    .get(ANNOTATION_LOCATION)
                    .map_or_else(String::new, |l| l.trim_start_matches("url:").to_owned());
                report.problems.push(
                    Problem::new(
                        url,
                        ProblemKind::Conflict,
                        format!(
                            "entity {} is already provided by another file of this source; this copy is ignored",
                            entity.entity_ref()
                        ),
                    )
                    .for_entity(entity.entity_ref()),
                );
            }
        }
    }
    report.entities = entities.len();
    entities
}

/// Closes a run's report: outcome, requests spent, duration, end time.
/// `repositories` is only kept when the run (so the listing) completed.
pub fn finish(
    mut report: RunReport,
    result: Result<Vec<Entity>, String>,
    stats: &Arc<RequestStats>,
    started: Instant,
    repositories: Option<Vec<RepositoryCatalog>>,
) -> RunResult {
    let entities = match result {
        Ok(entities) => Some(entities),
        Err(error) => {
            report.outcome = Outcome::Failed { error };
            None
        }
    };
    report.requests = stats.requests();
    report.retries = stats.retries();
    report.rate_limited = stats.rate_limited();
    report.bytes = stats.bytes();
    report.requests_by_endpoint = stats.by_endpoint();
    report.duration = started.elapsed();
    report.finished_at = super::now_rfc3339();
    let repositories = repositories.filter(|_| entities.is_some());
    RunResult {
        report,
        entities,
        repositories,
    }
}
