//! The status page built once per change, not per request: building it
//! reads every repository record and costs ~90 ms of CPU at 10,000
//! repositories, so a page reloaded by a few open browsers would use a
//! core. A build is kept with the version of what it showed (cheap
//! counters: the catalog's last change, each source's reports and writes,
//! its run's progress, the previews' revision) and served until that version moves; concurrent
//! requests wait for one build instead of each making their own.

use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::catalog::Catalog;
use crate::scheduler::Scheduler;

/// A changed version rebuilds the page at most this often, so a run's
/// progress cannot make every request a build.
const MIN_AGE: Duration = Duration::from_secs(1);
/// Built again after this long whatever the version: the pace, the next
/// run and the time shown move without it (and a follower's repository
/// records are written by its leader).
const MAX_AGE: Duration = Duration::from_secs(30);

/// What the page shows may have changed when this differs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    catalog: u64,
    /// Config reloads so far (the page says how the last one went).
    reloads: u64,
    sources: Vec<SourceVersion>,
    /// The open pull-request previews' revision (the page lists them): a
    /// preview checked again moves it even when the count stays.
    previews: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceVersion {
    id: String,
    shown: (u64, u64),
    running: bool,
    /// Repositories to read and read, while a run is in progress.
    progress: Option<(usize, usize)>,
}

impl Version {
    fn of(catalog: &Catalog, scheduler: &Scheduler, reloads: u64) -> Self {
        Self {
            catalog: catalog.snapshot().last_seq(),
            reloads,
            previews: scheduler.previews().revision(),
            sources: scheduler
                .runners()
                .iter()
                .map(|runner| SourceVersion {
                    id: runner.id().to_owned(),
                    shown: runner.shown_version(),
                    running: runner.in_progress(),
                    progress: runner.progress().map(|p| (p.to_read, p.read)),
                })
                .collect(),
        }
    }
}

/// The last page built.
struct Built {
    version: Version,
    at: Instant,
    html: Bytes,
}

impl Built {
    fn serves(&self, version: &Version, now: Instant) -> bool {
        let age = now.saturating_duration_since(self.at);
        age < MAX_AGE && (self.version == *version || age < MIN_AGE)
    }
}

/// The status page's cache; one per app.
#[derive(Default)]
pub(crate) struct StatusPageCache {
    /// Held while a page is built, so concurrent requests share the build.
    built: tokio::sync::Mutex<Option<Built>>,
}

impl std::fmt::Debug for StatusPageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusPageCache").finish_non_exhaustive()
    }
}

impl StatusPageCache {
    /// The page for the current state: the one kept if it still serves,
    /// else `build`'s (kept when it succeeds; a future does nothing
    /// until awaited, so it is only built when needed).
    pub(super) async fn get(
        &self,
        catalog: &Catalog,
        scheduler: &Scheduler,
        reloads: u64,
        build: impl Future<Output = Option<Bytes>>,
    ) -> Option<Bytes> {
        let mut built = self.built.lock().await;
        // Read under the lock: a request that waited for a build sees the
        // version that build showed.
        let version = Version::of(catalog, scheduler, reloads);
        if let Some(page) = built
            .as_ref()
            .filter(|b| b.serves(&version, Instant::now()))
        {
            return Some(page.html.clone());
        }
        let html = build.await?;
        crate::metrics::record_status_page_build();
        *built = Some(Built {
            version,
            at: Instant::now(),
            html: html.clone(),
        });
        Some(html)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(catalog: u64) -> Version {
        Version {
            catalog,
            reloads: 0,
            previews: 0,
            sources: vec![SourceVersion {
                id: "sim".to_owned(),
                shown: (1, 1),
                running: false,
                progress: None,
            }],
        }
    }

    #[test]
    fn a_build_serves_its_version_until_it_is_old_and_a_change_once_a_second() {
        let at = Instant::now();
        let built = Built {
            version: version(7),
            at,
            html: Bytes::new(),
        };
        assert!(built.serves(&version(7), at + Duration::from_secs(29)));
        assert!(!built.serves(&version(7), at + MAX_AGE));
        assert!(built.serves(&version(8), at + Duration::from_millis(500)));
        assert!(!built.serves(&version(8), at + MIN_AGE));
    }
}
