//! What every source does with a catalog file once it has its bytes, and
//! how a run's report is closed. The sources differ in how they find files;
//! from here on they are the same.

use std::sync::Arc;
use std::time::Instant;

use super::{Problem, RunReport};
use crate::bitbucket::RequestStats;
use crate::bitbucket::file_url::FileUrl;
use crate::bitbucket::reader::Scope;
use crate::bitbucket::refusal::{Excluded, OutOfScope};
use crate::catalog::ProcessedEntity;
use crate::catalog::process::{FileSource, Processor, RepoInfo};
use crate::config::{CatalogSettings, TargetScope};
use crate::integrations::Product;

/// What processing one catalog file produced.
#[derive(Debug, Default)]
pub struct FileOutcome {
    pub entities: Vec<ProcessedEntity>,
    pub problems: Vec<Problem>,
    /// Files read through Location targets and placeholders.
    pub location_files: usize,
}

/// Processes the file at `location` (its web URL, which becomes the
/// entities' location). Location targets and placeholders are read through
/// `source`.
pub async fn process_file(
    bytes: &[u8],
    location: &str,
    source: &impl FileSource,
    settings: &CatalogSettings,
    repo: &RepoInfo,
) -> FileOutcome {
    let processor = Processor {
        source,
        rules: &settings.rules,
        config: &settings.processing,
        repo,
    };
    let tree = processor.process_tree(location, bytes).await;
    FileOutcome {
        entities: tree.entities,
        problems: tree.problems,
        location_files: tree.files_read,
    }
}

/// What targets and placeholders of the discovered file at `location` may
/// read under `scope`. `product` is the provider's Bitbucket; `allowed` says
/// whether its filters admit a repository (owner: project key or
/// workspace; slug); `key` is the provider's config key.
pub(crate) fn target_scope(
    location: &str,
    scope: TargetScope,
    key: String,
    product: Product,
    allowed: impl Fn(&str, &str) -> Result<(), Excluded> + Send + Sync + 'static,
) -> Scope {
    let home = FileUrl::parse(location, product).ok().map(|file| {
        let (owner, slug) = file.repository();
        (owner.to_owned(), slug.to_owned())
    });
    Scope::by_repository(move |owner, slug| {
        let same = home.as_ref().is_some_and(|(home_owner, home_slug)| {
            home_owner.eq_ignore_ascii_case(owner) && home_slug.eq_ignore_ascii_case(slug)
        });
        match scope {
            _ if same => Ok(()),
            TargetScope::Any => Ok(()),
            TargetScope::Repository => Err(OutOfScope::OtherRepository {
                owner: owner.to_owned(),
                slug: slug.to_owned(),
                key: key.clone(),
            }),
            TargetScope::Filters => allowed(owner, slug).map_err(|why| OutOfScope::Excluded {
                owner: owner.to_owned(),
                slug: slug.to_owned(),
                key: key.clone(),
                why,
            }),
        }
    })
}

/// What `settings` make of a file, as a short stable string: part of every
/// change token, so a change of rules or limits reads files again.
pub(crate) fn settings_fingerprint(settings: &CatalogSettings, catalog_path: &str) -> String {
    let described = format!(
        "{catalog_path}\n{:?}\n{:?}",
        settings.rules, settings.processing
    );
    let digest = sha1_smol::Sha1::from(described).digest().to_string();
    digest[..12].to_owned()
}

/// Closes a run's report: requests spent, duration, end time.
pub(crate) fn finish(report: &mut RunReport, stats: &Arc<RequestStats>, started: Instant) {
    report.requests = stats.requests();
    report.retries = stats.retries();
    report.rate_limited = stats.rate_limited();
    report.bytes = stats.bytes();
    report.requests_by_endpoint = stats.by_endpoint();
    report.duration = started.elapsed();
    report.finished_at = Some(chrono::Utc::now());
}
