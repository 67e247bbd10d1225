//! The listing sweep (Data Center): the provider's own listing and filters,
//! compared with the repository records, tells what changed without reading
//! any file: repositories gone (deleted, archived under
//! `skipArchivedRepos`, out of the filters), moved or renamed (same
//! Bitbucket id, another place) and new. Data Center sends no webhook for
//! a deletion or a new repository (backstage#34407), so this runs often
//! between full runs. Cloud sends `repo:deleted`/`repo:updated`, and its
//! listing counts against an hourly limit, so it has no sweep. [`global`]
//! chooses between the global listing and the provider's own.

mod global;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use self::global::GlobalError;
pub(crate) use self::global::ListingRoute;
use super::provider::{Flavour, ListingError, Provider};
use super::server::ServerFlavour;
use super::{RepositoryRecord, Source, generated, plan::Listed};
use crate::bitbucket::{BitbucketError, RequestStats};
use crate::config::ListingSchedule;

/// The provider's listing sweep schedule, if it has one (Data Center only).
pub(crate) fn schedule(source: &Source) -> Option<&ListingSchedule> {
    match source {
        Source::Server(p) => p.flavour.config.listing_schedule.as_ref(),
        Source::Cloud(_) | Source::Location(_) => None,
    }
}

/// Why a sweep has no complete listing (then nothing may be removed).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SweepError {
    #[error(transparent)]
    Listing(#[from] ListingError),
    #[error("the global repository listing (GET /repos) failed: {0}")]
    Global(#[source] BitbucketError),
}

/// A complete listing: the repositories the filters let in, and every
/// unit they account for (their catalog file's, and their generated one's).
#[derive(Debug)]
pub(crate) struct Swept {
    pub listed: Vec<Listed>,
    pub units: HashSet<String>,
}

/// Lists `source` with requests counted in `stats`, by the listing `route`
/// chooses; `None` when it has no listing sweep. An `Err` is an incomplete
/// listing: nothing may be removed.
pub(crate) async fn list(
    source: &Source,
    stats: &Arc<RequestStats>,
    route: &ListingRoute,
) -> Option<Result<Swept, SweepError>> {
    match source {
        Source::Server(p) => Some(list_server(p, stats, route).await),
        Source::Cloud(_) | Source::Location(_) => None,
    }
}

async fn list_server(
    provider: &Provider<ServerFlavour>,
    stats: &Arc<RequestStats>,
    route: &ListingRoute,
) -> Result<Swept, SweepError> {
    let client = provider.flavour.client(stats);
    let listed = if route.global() {
        match global::list(provider, &client, stats, route).await {
            Ok(listed) => Some(listed),
            Err(GlobalError::Failed(err)) => return Err(err),
            Err(GlobalError::Missing(err)) => {
                tracing::warn!(
                    provider = provider.flavour.id(),
                    error = %err,
                    "listing sweep: Bitbucket does not serve the global repository listing (GET /rest/api/1.0/repos; an old server, or a proxy that blocks it); sweeps list project by project from now on, one request per project (allow the route and restart to save them)"
                );
                route.per_project();
                None
            }
        }
    } else {
        None
    };
    let listed = match listed {
        Some(listed) => listed,
        None => {
            provider
                .flavour
                .list(&client, &provider.fingerprint)
                .await
                .repositories?
        }
    };
    Ok(swept(provider, listed))
}

/// `listed` with every unit it accounts for.
fn swept<F: Flavour>(provider: &Provider<F>, listed: Vec<Listed>) -> Swept {
    let generate = provider.flavour.shared().generate.is_some();
    let units = listed
        .iter()
        .flat_map(|l| {
            let unit = l.record.catalog_url.clone();
            let generated = generate.then(|| generated::unit(&unit));
            std::iter::once(unit).chain(generated)
        })
        .collect();
    Swept { listed, units }
}

/// What a listing shows against the records and the served units.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Listed under another unit than their record (same Bitbucket id):
    /// the listing, and the record the entities are under now.
    pub moved: Vec<(Listed, RepositoryRecord)>,
    /// Listed, with no record under their unit or id.
    pub new: Vec<Listed>,
    /// Served or recorded units the listing no longer accounts for (a
    /// moved repository's old unit is not among them: its move drops it).
    pub gone: Vec<String>,
}

/// Compares a complete listing with `records` and the `served` units.
pub(crate) fn compare(swept: Swept, records: &[RepositoryRecord], served: &[String]) -> Changes {
    let by_unit: HashSet<&str> = records.iter().map(|r| r.catalog_url.as_str()).collect();
    let by_id: HashMap<&str, &RepositoryRecord> = records
        .iter()
        .filter_map(|r| r.id.as_deref().map(|id| (id, r)))
        .collect();
    let mut changes = Changes::default();
    let mut kept: HashSet<String> = swept.units;
    let mut seen = HashSet::new();
    for listed in swept.listed {
        let unit = listed.record.catalog_url.clone();
        // A listing whose pages shifted can name a repository twice.
        if !seen.insert(unit.clone()) || by_unit.contains(unit.as_str()) {
            continue;
        }
        match listed.record.id.as_deref().and_then(|id| by_id.get(id)) {
            Some(record) => {
                kept.insert(record.catalog_url.clone());
                kept.insert(generated::unit(&record.catalog_url));
                changes.moved.push((listed, (*record).clone()));
            }
            None => changes.new.push(listed),
        }
    }
    let mut gone: Vec<String> = served
        .iter()
        .cloned()
        .chain(records.iter().map(|r| r.catalog_url.clone()))
        .filter(|unit| !kept.contains(unit))
        .collect();
    gone.sort();
    gone.dedup();
    changes.gone = gone;
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::process::RepoInfo;
    use crate::discovery::CatalogFile;

    fn record(slug: &str, id: &str) -> RepositoryRecord {
        RepositoryRecord {
            project: "P".into(),
            slug: slug.into(),
            url: format!("https://b/{slug}"),
            id: Some(id.into()),
            catalog_url: format!("https://b/{slug}/catalog-info.yaml"),
            branch: None,
            branch_checked_at: None,
            catalog: CatalogFile::Present,
            change_token: None,
            read_at: None,
            entities: 1,
            problems: Vec::new(),
            generated: None,
        }
    }

    fn swept(repos: &[(&str, &str)]) -> Swept {
        let listed: Vec<Listed> = repos
            .iter()
            .map(|(slug, id)| Listed {
                record: record(slug, id),
                file_url: url::Url::parse("https://api/x").unwrap(),
                change_token: None,
                repo_info: RepoInfo::default(),
            })
            .collect();
        let units = listed
            .iter()
            .map(|l| l.record.catalog_url.clone())
            .collect();
        Swept { listed, units }
    }

    #[test]
    fn gone_moved_and_new_from_the_listing_alone() {
        let records = [
            record("kept", "1"),
            record("deleted", "2"),
            record("old-name", "3"),
        ];
        let served: Vec<String> = records.iter().map(|r| r.catalog_url.clone()).collect();
        let changes = compare(
            swept(&[
                ("kept", "1"),
                ("new-name", "3"),
                ("fresh", "4"),
                ("fresh", "4"),
            ]),
            &records,
            &served,
        );
        assert_eq!(changes.gone, ["https://b/deleted/catalog-info.yaml"]);
        assert_eq!(changes.moved.len(), 1);
        assert_eq!(changes.moved[0].0.record.slug, "new-name");
        assert_eq!(changes.moved[0].1.slug, "old-name");
        let new: Vec<&str> = changes.new.iter().map(|l| l.record.slug.as_str()).collect();
        assert_eq!(new, ["fresh"]);
    }

    #[test]
    fn an_unchanged_listing_changes_nothing() {
        let records = [record("a", "1"), record("b", "2")];
        let served: Vec<String> = records.iter().map(|r| r.catalog_url.clone()).collect();
        let changes = compare(swept(&[("a", "1"), ("b", "2")]), &records, &served);
        assert!(changes.gone.is_empty() && changes.moved.is_empty() && changes.new.is_empty());
    }
}
