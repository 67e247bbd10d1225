//! What a configuration would change against what a store holds, for
//! `plan`: a provider's listing only (no catalog file read), compared with
//! the repositories and entities stored for it. The deletion guard's rule
//! ([`DeletionGuard::holds`]) says whether a run would be held.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::provider::{Flavour, Provider};
use super::{RepositoryRecord, Source, generated, plan};
use crate::bitbucket::RequestStats;
use crate::config::DeletionGuard;

/// What a store holds for one source.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stored {
    pub records: Vec<RepositoryRecord>,
    /// `(unit, entity ref)` of every entity it serves.
    pub entities: Vec<(String, String)>,
}

/// One provider's listing with the new configuration, compared with the store.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProviderDiff {
    /// `project/slug` of repositories the filters now let in.
    pub entering: Vec<String>,
    /// `project/slug` of stored repositories the listing no longer has.
    pub leaving: Vec<String>,
    /// Entity refs whose file is no longer listed.
    pub removed_entities: Vec<String>,
    /// Entities the store serves for the provider now.
    pub entities_now: usize,
    /// Whether the deletion guard would hold the run (nothing removed then).
    pub guard_holds: bool,
    /// `project/slug` of repositories the next run would read.
    pub reads: Vec<String>,
    /// Requests the listing took.
    pub listing_requests: u64,
    pub listing_ms: u64,
}

fn name(record: &RepositoryRecord) -> String {
    format!("{}/{}", record.project, record.slug)
}

/// Lists `source` (a provider) with requests counted in `stats`; `None`
/// for a location, which has no listing. Reads no catalog file.
pub(crate) async fn list_and_compare(
    source: &Source,
    stored: &Stored,
) -> Option<Result<ProviderDiff, String>> {
    match source {
        Source::Server(p) => Some(compare(p, stored).await),
        Source::Cloud(p) => Some(compare(p, stored).await),
        Source::Location(_) => None,
    }
}

/// The integration host a provider reads.
pub(crate) fn host(source: &Source) -> Option<&str> {
    match source {
        Source::Server(p) => Some(p.flavour.host()),
        Source::Cloud(p) => Some(p.flavour.host()),
        Source::Location(_) => None,
    }
}

async fn compare<F: Flavour>(
    provider: &Provider<F>,
    stored: &Stored,
) -> Result<ProviderDiff, String> {
    let stats = Arc::new(RequestStats::default());
    let started = Instant::now();
    let client = provider.flavour.client(&stats);
    let listing = provider.flavour.list(&client, &provider.fingerprint).await;
    let listing_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let listed = listing.repositories.map_err(|err| err.to_string())?;
    let generate = provider.flavour.shared().generate.is_some();
    let units: HashSet<String> = listed
        .iter()
        .flat_map(|l| {
            let unit = l.record.catalog_url.clone();
            let generated = generate.then(|| generated::unit(&unit));
            std::iter::once(unit).chain(generated)
        })
        .collect();
    let now: BTreeSet<String> = listed.iter().map(|l| name(&l.record)).collect();
    let before: BTreeSet<String> = stored.records.iter().map(name).collect();
    let mut removed_entities: Vec<String> = stored
        .entities
        .iter()
        .filter(|(unit, _)| !units.contains(unit))
        .map(|(_, entity_ref)| entity_ref.clone())
        .collect();
    removed_entities.sort();
    let known: HashMap<String, RepositoryRecord> = stored
        .records
        .iter()
        .map(|r| (r.catalog_url.clone(), r.clone()))
        .collect();
    let mut reads: Vec<String> = plan::plan(listed, &known)
        .reads
        .iter()
        .map(|l| name(&l.record))
        .collect();
    reads.sort();
    let entities_now = stored.entities.len();
    Ok(ProviderDiff {
        entering: now.difference(&before).cloned().collect(),
        leaving: before.difference(&now).cloned().collect(),
        guard_holds: provider
            .deletion_guard()
            .holds(entities_now, removed_entities.len()),
        removed_entities,
        entities_now,
        reads,
        listing_requests: stats.requests(),
        listing_ms,
    })
}

/// Whether removing a whole provider's `entities` would be held by the
/// default deletion guard (a provider the configuration no longer has).
pub(crate) fn removal_held(entities: usize) -> bool {
    DeletionGuard::default().holds(entities, entities)
}
