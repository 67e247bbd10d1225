//! The open pull requests' previews: what each merge would change, kept
//! until the pull request is merged, declined or deleted. Served from
//! memory on the leader (a daemon on its own is one) and written through
//! to the store, so a restart loads them again and a follower reads the
//! leader's from the store. Bounded per provider: past [`MAX_PREVIEWS`]
//! previews or [`MAX_PREVIEW_BYTES`] of their JSON, the oldest go (logged
//! and counted), so an author opening thousands of pull requests cannot
//! grow memory or the store without limit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::store::{CatalogStore, PreviewId, PreviewWrite, StoreError, StoredPreview};

/// Previews kept at most per provider.
pub(crate) const MAX_PREVIEWS: usize = 1_000;
/// Bytes of previews' JSON kept at most per provider (the newest preview
/// stays whatever its size: the check's budgets bound it).
pub(crate) const MAX_PREVIEW_BYTES: usize = 64 * 1024 * 1024;
/// Summaries a follower reads for its status page.
const FOLLOWED_SUMMARIES: usize = 100;
/// A follower serves a preview it read from the store (or found missing)
/// this long: a reloaded page or a polling tool costs one read per period.
const STORED_READ_TTL: Duration = Duration::from_secs(2);
/// Previews (and misses) a follower keeps read at most.
const STORED_READS_KEPT: usize = 1_024;
/// Store reads of single previews under way at most; more wait their turn,
/// so callers asking for many different pull requests cannot load the
/// database more than this.
const STORED_READS_AT_ONCE: usize = 4;

/// `pass` or `fail` (an alias, so serde does not take it as borrowed).
pub(crate) type PassOrFail = &'static str;

/// One entity the merge would add.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Added {
    pub entity_ref: String,
    pub entity: serde_json::Value,
}

/// One entity the merge would change, and which fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Changed {
    pub entity_ref: String,
    /// Paths that differ: `spec.owner`, `metadata.description`, `kind`.
    pub fields: Vec<String>,
    pub entity: serde_json::Value,
}

/// One problem of the pull request, at its file and line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PreviewProblem {
    /// Relative to the repository's root; empty when no file is meant.
    pub path: String,
    pub line: u32,
    /// 1-based; 1 when unknown.
    pub column: u32,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_ref: Option<String>,
    pub message: String,
}

/// What merging one pull request would do to the catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Preview {
    pub provider: String,
    /// Data Center: the project key; Cloud: the workspace.
    pub project: String,
    pub repository: String,
    pub pull_request: u64,
    pub title: String,
    pub source_branch: String,
    pub target_branch: String,
    pub commit: String,
    /// `pass` or `fail`.
    #[serde(deserialize_with = "result")]
    pub result: PassOrFail,
    #[serde(with = "crate::rfc3339")]
    pub checked_at: DateTime<Utc>,
    /// The catalog files the pull request changes, as read.
    pub files: Vec<String>,
    /// Every entity ref the repository would serve after the merge.
    pub entities: Vec<String>,
    pub added: Vec<Added>,
    pub changed: Vec<Changed>,
    pub removed: Vec<String>,
    pub problems: Vec<PreviewProblem>,
    /// `insights`, `buildStatus`, or why nothing was posted.
    pub posted: String,
}

impl Preview {
    pub(crate) fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Which pull request a preview is of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PreviewKey {
    provider: String,
    project: String,
    repository: String,
    pull_request: u64,
}

impl PreviewKey {
    /// Project and repository compare without case, as Bitbucket's do.
    pub(crate) fn new(provider: &str, project: &str, repository: &str, pull_request: u64) -> Self {
        Self {
            provider: provider.to_owned(),
            project: project.to_lowercase(),
            repository: repository.to_lowercase(),
            pull_request,
        }
    }

    fn of(preview: &Preview) -> Self {
        Self::new(
            &preview.provider,
            &preview.project,
            &preview.repository,
            preview.pull_request,
        )
    }

    /// As the store names it.
    fn id(&self) -> PreviewId {
        PreviewId {
            provider: self.provider.clone(),
            project: self.project.clone(),
            repository: self.repository.clone(),
            pull_request: self.pull_request,
        }
    }
}

/// One open preview, for the status page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PreviewSummary {
    pub provider: String,
    pub project: String,
    pub repository: String,
    pub pull_request: u64,
    pub title: String,
    #[serde(deserialize_with = "result")]
    pub result: PassOrFail,
    /// `/api/catalog/previews/...`
    pub path: String,
}

/// One open preview and the size of its JSON.
#[derive(Debug)]
struct Open {
    preview: Arc<Preview>,
    bytes: usize,
}

/// The open previews, shared by the event reads and the API.
#[derive(Debug, Default)]
pub(crate) struct Previews {
    open: Mutex<HashMap<PreviewKey, Open>>,
    /// Integrations already told that Code Insights is missing.
    warned: Mutex<HashSet<String>>,
    /// Where they are written through; `None`: memory only.
    store: Option<Backing>,
    /// A follower's view of the leader's previews (count, newest first);
    /// `None` on the leader.
    followed: Mutex<Option<(usize, Vec<PreviewSummary>)>>,
    /// Moves whenever what [`Previews::summaries`] lists may have changed
    /// (not only the count): the status page is rebuilt on it.
    revision: AtomicU64,
    /// A follower's recent reads of single previews.
    stored_reads: StoredReads,
    limits: Limits,
}

/// When a preview was read from the store, and its JSON (`None`: none).
type StoredRead = (Instant, Option<Arc<str>>);

/// A follower's recent reads of single previews from the store, each kept
/// [`STORED_READ_TTL`] (and dropped when the followed list changes).
#[derive(Debug)]
struct StoredReads {
    kept: Mutex<HashMap<PreviewKey, StoredRead>>,
    reading: Semaphore,
}

impl Default for StoredReads {
    fn default() -> Self {
        Self {
            kept: Mutex::default(),
            reading: Semaphore::new(STORED_READS_AT_ONCE),
        }
    }
}

impl StoredReads {
    /// `Some(found)` when `key` was read less than the TTL ago.
    fn fresh(&self, key: &PreviewKey, now: Instant) -> Option<Option<Arc<str>>> {
        self.kept
            .lock()
            .get(key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < STORED_READ_TTL)
            .map(|(_, found)| found.clone())
    }

    fn keep(&self, key: PreviewKey, found: Option<Arc<str>>, now: Instant) {
        let mut kept = self.kept.lock();
        if kept.len() >= STORED_READS_KEPT {
            kept.retain(|_, (at, _)| now.saturating_duration_since(*at) < STORED_READ_TTL);
            if kept.len() >= STORED_READS_KEPT {
                kept.clear();
            }
        }
        kept.insert(key, (now, found));
    }
}

/// How many previews, and bytes of their JSON, a provider keeps.
#[derive(Debug, Clone, Copy)]
struct Limits {
    previews: usize,
    bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            previews: MAX_PREVIEWS,
            bytes: MAX_PREVIEW_BYTES,
        }
    }
}

#[derive(Debug)]
struct Backing {
    store: Arc<dyn CatalogStore>,
    /// Shutdown waits for its writes before the store closes.
    tracker: TaskTracker,
    pending: Arc<Mutex<Pending>>,
}

/// Writes not stored yet: the latest per pull request (so at most one per
/// open or just closed preview), written in order by one task at a time.
#[derive(Debug, Default)]
struct Pending {
    writes: HashMap<PreviewKey, PreviewWrite>,
    flushing: bool,
}

impl Previews {
    /// Previews written through to `store`, by tasks of `tracker`.
    pub(crate) fn stored(store: Arc<dyn CatalogStore>, tracker: TaskTracker) -> Self {
        Self {
            store: Some(Backing {
                store,
                tracker,
                pending: Arc::default(),
            }),
            ..Self::default()
        }
    }

    pub(crate) fn insert(&self, preview: Preview) {
        let key = PreviewKey::of(&preview);
        let body = serde_json::to_string(&preview).unwrap_or_default();
        let summary = serde_json::to_string(&summary(&preview)).unwrap_or_default();
        let checked_at = preview.checked_at;
        let provider = preview.provider.clone();
        let dropped = {
            let mut open = self.open.lock();
            open.insert(
                key.clone(),
                Open {
                    preview: Arc::new(preview),
                    bytes: body.len(),
                },
            );
            bound(&mut open, &provider, &key, self.limits)
        };
        self.changed();
        self.write(
            key.clone(),
            PreviewWrite::Save(StoredPreview {
                id: key.id(),
                checked_at,
                summary,
                body,
            }),
        );
        self.dropped(&provider, dropped);
    }

    pub(crate) fn get(&self, key: &PreviewKey) -> Option<Arc<Preview>> {
        self.open.lock().get(key).map(|o| Arc::clone(&o.preview))
    }

    /// Forgets the preview of `key` here and in the store (whether or not
    /// it was loaded); `true` when one was served.
    pub(crate) fn remove(&self, key: &PreviewKey) -> bool {
        let removed = self.open.lock().remove(key).is_some();
        if removed {
            self.changed();
        }
        self.write(key.clone(), PreviewWrite::Delete(key.id()));
        removed
    }

    /// Moves whenever the listed previews may have changed: a preview
    /// checked again with the same count changes it too.
    pub(crate) fn revision(&self) -> u64 {
        self.revision.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.revision.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn len(&self) -> usize {
        if let Some((count, _)) = &*self.followed.lock() {
            return *count;
        }
        self.open.lock().len()
    }

    /// The open previews, newest first, at most `limit`.
    pub(crate) fn summaries(&self, limit: usize) -> Vec<PreviewSummary> {
        if let Some((_, followed)) = &*self.followed.lock() {
            return followed.iter().take(limit).cloned().collect();
        }
        let mut open: Vec<Arc<Preview>> = self
            .open
            .lock()
            .values()
            .map(|o| Arc::clone(&o.preview))
            .collect();
        open.sort_by_key(|p| std::cmp::Reverse(p.checked_at));
        open.iter().take(limit).map(|p| summary(p)).collect()
    }

    /// `true` the first time for `integration`: say it once.
    pub(crate) fn first_warning(&self, integration: &str) -> bool {
        self.warned.lock().insert(integration.to_owned())
    }

    /// The leader (at start-up, or taking over): serves the stored
    /// previews, within the bounds. A preview checked here meanwhile is
    /// newer and stays. One that cannot be read is logged and dropped.
    pub(crate) async fn load(&self) {
        let Some(backing) = &self.store else { return };
        let stored = match backing.store.previews().await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::error!(
                    error = %err,
                    "cannot load the open pull requests' previews; they are served again once each pull request is updated"
                );
                return;
            }
        };
        let count = stored.len();
        let mut unreadable = Vec::new();
        // Parsed before the lock: the API waits on it.
        let mut readable = Vec::with_capacity(count);
        for row in stored {
            let key = PreviewKey::new(
                &row.id.provider,
                &row.id.project,
                &row.id.repository,
                row.id.pull_request,
            );
            match serde_json::from_str::<Preview>(&row.body) {
                Ok(preview) if PreviewKey::of(&preview) == key => {
                    readable.push((key, preview, row.body.len()));
                }
                Ok(_) | Err(_) => unreadable.push(key),
            }
        }
        let mut dropped: HashMap<String, Vec<PreviewKey>> = HashMap::new();
        {
            let mut open = self.open.lock();
            // Oldest first: the bounds drop the oldest.
            for (key, preview, bytes) in readable {
                if open.contains_key(&key) {
                    continue;
                }
                let provider = preview.provider.clone();
                open.insert(
                    key.clone(),
                    Open {
                        preview: Arc::new(preview),
                        bytes,
                    },
                );
                let gone = bound(&mut open, &provider, &key, self.limits);
                dropped.entry(provider).or_default().extend(gone);
            }
        }
        *self.followed.lock() = None;
        self.changed();
        for key in &unreadable {
            tracing::error!(
                provider = key.provider,
                project = key.project,
                repository = key.repository,
                pull_request = key.pull_request,
                "a stored pull-request preview is not valid; it is dropped (the next update of the pull request checks it again)"
            );
            self.write(key.clone(), PreviewWrite::Delete(key.id()));
        }
        for (provider, keys) in dropped {
            self.dropped(&provider, keys);
        }
        tracing::info!(
            previews = count - unreadable.len(),
            "open pull requests' previews loaded"
        );
    }

    /// A follower: reads the leader's open previews for the status page.
    pub(crate) async fn follow(&self) -> Result<(), StoreError> {
        let Some(backing) = &self.store else {
            return Ok(());
        };
        let (count, rows) = backing.store.preview_summaries(FOLLOWED_SUMMARIES).await?;
        let summaries: Vec<PreviewSummary> = rows
            .iter()
            .filter_map(|row| serde_json::from_str::<PreviewSummary>(row).ok())
            .collect();
        let followed = Some((count, summaries));
        let moved = {
            let mut kept = self.followed.lock();
            let moved = *kept != followed;
            *kept = followed;
            moved
        };
        if moved {
            self.changed();
            // What was read of them may be stale now.
            self.stored_reads.kept.lock().clear();
        }
        Ok(())
    }

    /// The preview of `key` as the store has it (a follower serves the
    /// leader's), as JSON. A read (or a miss) is served again for
    /// [`STORED_READ_TTL`], and at most [`STORED_READS_AT_ONCE`] reads go to
    /// the store at a time, whoever asks.
    pub(crate) async fn read_stored(
        &self,
        key: &PreviewKey,
    ) -> Result<Option<Arc<str>>, StoreError> {
        let Some(backing) = &self.store else {
            return Ok(self
                .get(key)
                .and_then(|p| serde_json::to_string(p.as_ref()).ok())
                .map(Arc::from));
        };
        let reads = &self.stored_reads;
        if let Some(found) = reads.fresh(key, Instant::now()) {
            return Ok(found);
        }
        // Closed never: the semaphore lives as long as `self`.
        let _turn = reads.reading.acquire().await;
        // Read by a request that had the turn before this one.
        if let Some(found) = reads.fresh(key, Instant::now()) {
            return Ok(found);
        }
        let found: Option<Arc<str>> = backing.store.preview(&key.id()).await?.map(Arc::from);
        reads.keep(key.clone(), found.clone(), Instant::now());
        Ok(found)
    }

    /// Queues `write` for the store, replacing one of the same pull
    /// request not written yet, and starts the writer if it is idle.
    fn write(&self, key: PreviewKey, write: PreviewWrite) {
        let Some(backing) = &self.store else { return };
        let start = {
            let mut pending = backing.pending.lock();
            pending.writes.insert(key, write);
            !std::mem::replace(&mut pending.flushing, true)
        };
        if start {
            let store = Arc::clone(&backing.store);
            let pending = Arc::clone(&backing.pending);
            backing.tracker.spawn(flush(store, pending));
        }
    }

    /// Logs and counts previews dropped past the bounds, and deletes them.
    fn dropped(&self, provider: &str, dropped: Vec<PreviewKey>) {
        if dropped.is_empty() {
            return;
        }
        tracing::warn!(
            provider,
            dropped = dropped.len(),
            "more open pull-request previews than kept ({MAX_PREVIEWS} or {} MiB per provider): the oldest were dropped; their pull requests are checked again when updated",
            MAX_PREVIEW_BYTES / (1024 * 1024)
        );
        crate::metrics::record_previews_dropped(provider, dropped.len());
        for key in dropped {
            self.write(key.clone(), PreviewWrite::Delete(key.id()));
        }
    }
}

/// Writes what is pending until nothing is; on a failure, what was not
/// written stays pending for the next write to retry.
async fn flush(store: Arc<dyn CatalogStore>, pending: Arc<Mutex<Pending>>) {
    loop {
        let batch: Vec<(PreviewKey, PreviewWrite)> = {
            let mut pending = pending.lock();
            if pending.writes.is_empty() {
                pending.flushing = false;
                return;
            }
            pending.writes.drain().collect()
        };
        let writes: Vec<PreviewWrite> = batch.iter().map(|(_, w)| w.clone()).collect();
        if let Err(err) = store.write_previews(&writes).await {
            tracing::error!(
                error = %err,
                previews = writes.len(),
                "cannot store pull-request previews; they are served from memory and stored with the next check or close"
            );
            let mut pending = pending.lock();
            for (key, write) in batch {
                pending.writes.entry(key).or_insert(write);
            }
            pending.flushing = false;
            return;
        }
    }
}

/// Drops `provider`'s oldest previews (never `kept`) past the bounds;
/// returns the dropped ones.
fn bound(
    open: &mut HashMap<PreviewKey, Open>,
    provider: &str,
    kept: &PreviewKey,
    limits: Limits,
) -> Vec<PreviewKey> {
    let mut own: Vec<(DateTime<Utc>, usize, &PreviewKey)> = open
        .iter()
        .filter(|(k, _)| k.provider == provider)
        .map(|(k, o)| (o.preview.checked_at, o.bytes, k))
        .collect();
    let mut count = own.len();
    let mut bytes: usize = own.iter().map(|(_, b, _)| b).sum();
    if count <= limits.previews && bytes <= limits.bytes {
        return Vec::new();
    }
    own.sort_by_key(|(at, _, _)| *at);
    let mut dropped = Vec::new();
    for (_, size, key) in own {
        if count <= limits.previews && bytes <= limits.bytes {
            break;
        }
        if key == kept {
            continue;
        }
        dropped.push(key.clone());
        count -= 1;
        bytes -= size;
    }
    for key in &dropped {
        open.remove(key);
    }
    dropped
}

/// What the status page lists of `preview`.
fn summary(preview: &Preview) -> PreviewSummary {
    PreviewSummary {
        path: preview_path(
            &preview.provider,
            &preview.project,
            &preview.repository,
            preview.pull_request,
        ),
        provider: preview.provider.clone(),
        project: preview.project.clone(),
        repository: preview.repository.clone(),
        pull_request: preview.pull_request,
        title: preview.title.clone(),
        result: preview.result,
    }
}

/// A stored result: `pass`, else `fail`.
fn result<'de, D: Deserializer<'de>>(d: D) -> Result<PassOrFail, D::Error> {
    let text = String::deserialize(d)?;
    Ok(if text == "pass" { "pass" } else { "fail" })
}

/// The API path of a preview.
pub(crate) fn preview_path(provider: &str, project: &str, repository: &str, id: u64) -> String {
    let segment = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "/api/catalog/previews/{}/{}/{}/{id}",
        segment(provider),
        segment(project),
        segment(repository)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preview(id: u64, at: i64) -> Preview {
        Preview {
            provider: "p".into(),
            project: "PRJ".into(),
            repository: "svc".into(),
            pull_request: id,
            title: String::new(),
            source_branch: "f".into(),
            target_branch: "main".into(),
            commit: "c".into(),
            result: "pass",
            checked_at: DateTime::from_timestamp(at, 0).unwrap_or_default(),
            files: Vec::new(),
            entities: Vec::new(),
            added: Vec::new(),
            changed: Vec::new(),
            removed: Vec::new(),
            problems: Vec::new(),
            posted: String::new(),
        }
    }

    #[test]
    fn the_oldest_preview_goes_past_the_bound() {
        let previews = Previews::default();
        for id in 0..=MAX_PREVIEWS as u64 {
            previews.insert(preview(id, id as i64));
        }
        assert_eq!(previews.len(), MAX_PREVIEWS);
        assert!(
            previews
                .get(&PreviewKey::new("p", "prj", "SVC", 0))
                .is_none()
        );
        assert!(
            previews
                .get(&PreviewKey::new("p", "prj", "SVC", 1))
                .is_some()
        );
        assert!(previews.remove(&PreviewKey::new("p", "PRJ", "svc", 1)));
        assert_eq!(previews.summaries(5).len(), 5);
    }

    #[test]
    fn a_busy_provider_drops_only_its_own_previews() {
        let previews = Previews::default();
        let mut other = preview(7, 0);
        other.provider = "q".into();
        previews.insert(other);
        for id in 0..=MAX_PREVIEWS as u64 {
            previews.insert(preview(id, 1 + id as i64));
        }
        assert_eq!(previews.len(), MAX_PREVIEWS + 1);
        assert!(
            previews
                .get(&PreviewKey::new("q", "prj", "svc", 7))
                .is_some()
        );
        assert!(
            previews
                .get(&PreviewKey::new("p", "prj", "svc", 0))
                .is_none()
        );
    }

    #[test]
    fn previews_past_the_byte_bound_drop_the_oldest_but_keep_the_newest() {
        const BYTES: usize = 64 * 1024;
        let previews = Previews {
            limits: Limits {
                previews: MAX_PREVIEWS,
                bytes: BYTES,
            },
            ..Previews::default()
        };
        let big = |id: u64| {
            let mut p = preview(id, id as i64);
            p.entities = vec!["x".repeat(BYTES / 3)];
            p
        };
        for id in 0..3 {
            previews.insert(big(id));
        }
        assert_eq!(previews.len(), 2);
        assert!(
            previews
                .get(&PreviewKey::new("p", "prj", "svc", 0))
                .is_none()
        );
        // Alone over the bound, the newest still stays.
        let mut huge = preview(9, 9);
        huge.entities = vec!["x".repeat(BYTES + 1)];
        previews.insert(huge);
        assert_eq!(previews.len(), 1);
        assert!(
            previews
                .get(&PreviewKey::new("p", "prj", "svc", 9))
                .is_some()
        );
    }

    #[test]
    fn a_preview_reads_back_as_it_was_served() {
        let mut served = preview(3, 1_700_000_000);
        served.result = "fail";
        served.added.push(Added {
            entity_ref: "component:default/a".into(),
            entity: serde_json::json!({"kind": "Component"}),
        });
        served.problems.push(PreviewProblem {
            path: "catalog-info.yaml".into(),
            line: 2,
            column: 1,
            kind: "validation".into(),
            entity_ref: None,
            message: "m".into(),
        });
        let json = serde_json::to_string(&served).unwrap();
        let read: Preview = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), json);
        assert_eq!(read.result, "fail");
    }

    /// Through the store: what one daemon wrote, the next one loads; what
    /// was closed stays closed.
    #[tokio::test]
    async fn stored_previews_load_again_and_closed_ones_stay_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let store: Arc<dyn CatalogStore> =
            Arc::new(crate::store::SqliteStore::open(&path).await.unwrap());
        let tracker = TaskTracker::new();
        let first = Previews::stored(Arc::clone(&store), tracker.clone());
        for id in 1..=3 {
            first.insert(preview(id, id as i64));
        }
        let mut updated = preview(2, 10);
        updated.title = "updated".into();
        first.insert(updated);
        assert!(first.remove(&PreviewKey::new("p", "prj", "svc", 3)));
        tracker.close();
        tracker.wait().await;
        let second = Previews::stored(Arc::clone(&store), TaskTracker::new());
        second.load().await;
        assert_eq!(second.len(), 2);
        let two = second.get(&PreviewKey::new("p", "PRJ", "SVC", 2)).unwrap();
        assert_eq!(two.title, "updated");
        assert!(second.get(&PreviewKey::new("p", "prj", "svc", 3)).is_none());
        let stored = second
            .read_stored(&PreviewKey::new("p", "prj", "svc", 1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stored).unwrap()["pullRequest"],
            1
        );
        // A follower lists what the leader stored, newest first.
        let follower = Previews::stored(store, TaskTracker::new());
        follower.follow().await.unwrap();
        assert_eq!(follower.len(), 2);
        let listed: Vec<u64> = follower
            .summaries(5)
            .iter()
            .map(|s| s.pull_request)
            .collect();
        assert_eq!(listed, [2, 1]);
    }

    #[test]
    fn a_preview_checked_again_moves_the_revision_though_the_count_stays() {
        let previews = Previews::default();
        previews.insert(preview(1, 1));
        let (count, revision) = (previews.len(), previews.revision());
        let mut failed = preview(1, 2);
        failed.result = "fail";
        previews.insert(failed);
        assert_eq!(previews.len(), count);
        assert!(previews.revision() > revision);
        let revision = previews.revision();
        assert!(!previews.remove(&PreviewKey::new("p", "prj", "svc", 9)));
        assert_eq!(previews.revision(), revision, "nothing served changed");
    }

    /// A follower reads a preview from the store once per period, whoever
    /// asks; a change the followed list shows is served at once.
    #[tokio::test]
    async fn a_follower_reads_a_preview_from_the_store_once_per_period() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn CatalogStore> = Arc::new(
            crate::store::SqliteStore::open(&dir.path().join("catalog.db"))
                .await
                .unwrap(),
        );
        let tracker = TaskTracker::new();
        let leader = Previews::stored(Arc::clone(&store), tracker.clone());
        leader.insert(preview(1, 1));
        let settled = async |n: usize| {
            tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while store.previews().await.unwrap().len() != n {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap();
        };
        settled(1).await;
        let follower = Previews::stored(Arc::clone(&store), TaskTracker::new());
        follower.follow().await.unwrap();
        let revision = follower.revision();
        let key = PreviewKey::new("p", "prj", "svc", 1);
        assert!(follower.read_stored(&key).await.unwrap().is_some());
        let missing = PreviewKey::new("p", "prj", "svc", 2);
        assert!(follower.read_stored(&missing).await.unwrap().is_none());
        // Stored now, but the miss is served again within the period.
        leader.insert(preview(2, 2));
        settled(2).await;
        assert!(follower.read_stored(&missing).await.unwrap().is_none());
        // The followed list shows it: read again at once.
        follower.follow().await.unwrap();
        assert!(follower.revision() > revision);
        assert!(follower.read_stored(&missing).await.unwrap().is_some());
        assert!(follower.read_stored(&key).await.unwrap().is_some());
        // Past the period a read goes to the store again.
        assert!(leader.remove(&key));
        settled(1).await;
        assert!(follower.read_stored(&key).await.unwrap().is_some());
        tokio::time::sleep(STORED_READ_TTL).await;
        assert!(follower.read_stored(&key).await.unwrap().is_none());
        tracker.close();
        tracker.wait().await;
    }

    /// Stored under looser bounds (an older version), loaded under these:
    /// the oldest go, from the store too.
    #[tokio::test]
    async fn loading_keeps_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn CatalogStore> = Arc::new(
            crate::store::SqliteStore::open(&dir.path().join("catalog.db"))
                .await
                .unwrap(),
        );
        let tracker = TaskTracker::new();
        let loose = Previews::stored(Arc::clone(&store), tracker.clone());
        for id in 1..=3 {
            loose.insert(preview(id, id as i64));
        }
        let tight = Previews {
            limits: Limits {
                previews: 2,
                bytes: MAX_PREVIEW_BYTES,
            },
            ..Previews::stored(Arc::clone(&store), tracker.clone())
        };
        // Written in turn: the loaded one sees all three.
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while store.previews().await.unwrap().len() < 3 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        tight.load().await;
        assert_eq!(tight.len(), 2);
        assert!(tight.get(&PreviewKey::new("p", "prj", "svc", 1)).is_none());
        tracker.close();
        tracker.wait().await;
        let stored: Vec<u64> = store
            .previews()
            .await
            .unwrap()
            .iter()
            .map(|p| p.id.pull_request)
            .collect();
        assert_eq!(stored, [2, 3]);
    }
}
