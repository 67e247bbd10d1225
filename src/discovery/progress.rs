//! What a run has done so far: shown in the provider status while it runs,
//! and what a cancelled run reports.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

#[derive(Debug, Default)]
pub(crate) struct Progress {
    listed: AtomicUsize,
    unchanged: AtomicUsize,
    to_read: AtomicUsize,
    read: AtomicUsize,
    files_found: AtomicUsize,
    /// When the first read started: the pace is measured from there.
    reading_since: Mutex<Option<Instant>>,
}

/// A run's progress as the status API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProgressView {
    /// Repositories in the listing, after filters (known once it completed).
    pub listed: usize,
    /// Repositories whose file is unchanged since their last read: not read.
    pub unchanged: usize,
    /// Files this run plans to read.
    pub to_read: usize,
    pub read: usize,
    pub remaining: usize,
    /// Files read per second so far.
    pub reads_per_second: f64,
    /// When the reads should be done at the current pace (RFC 3339).
    pub estimated_finish: Option<String>,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn listed(&self, listed: usize, unchanged: usize, to_read: usize) {
        self.listed.store(listed, Ordering::Relaxed);
        self.unchanged.store(unchanged, Ordering::Relaxed);
        self.to_read.store(to_read, Ordering::Relaxed);
        *self.reading_since.lock() = Some(Instant::now());
    }

    /// One file read; `found`: it exists.
    pub(crate) fn read_one(&self, found: bool) {
        self.read.fetch_add(1, Ordering::Relaxed);
        self.files_found
            .fetch_add(usize::from(found), Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn files_found(&self) -> usize {
        self.files_found.load(Ordering::Relaxed)
    }

    pub(crate) fn view(&self) -> ProgressView {
        let listed = self.listed.load(Ordering::Relaxed);
        let to_read = self.to_read.load(Ordering::Relaxed);
        let read = self.read.load(Ordering::Relaxed);
        let remaining = to_read.saturating_sub(read);
        let elapsed = self
            .reading_since
            .lock()
            .map_or(Duration::ZERO, |since| since.elapsed());
        let reads_per_second = if elapsed.is_zero() {
            0.0
        } else {
            read as f64 / elapsed.as_secs_f64()
        };
        let estimated_finish = (reads_per_second > 0.0)
            .then(|| Duration::try_from_secs_f64(remaining as f64 / reads_per_second).ok())
            .flatten()
            .and_then(|left| chrono::Duration::from_std(left).ok())
            .and_then(|left| chrono::Utc::now().checked_add_signed(left))
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        ProgressView {
            listed,
            unchanged: self.unchanged.load(Ordering::Relaxed),
            to_read,
            read,
            remaining,
            reads_per_second: (reads_per_second * 10.0).round() / 10.0,
            estimated_finish,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_and_an_estimate_follow_the_reads() {
        let progress = Progress::new();
        assert_eq!(progress.view().estimated_finish, None);
        progress.listed(10, 2, 8);
        std::thread::sleep(Duration::from_millis(20));
        progress.read_one(true);
        progress.read_one(false);
        let view = progress.view();
        assert_eq!(
            (
                view.listed,
                view.unchanged,
                view.to_read,
                view.read,
                view.remaining
            ),
            (10, 2, 8, 2, 6)
        );
        assert!(view.reads_per_second > 0.0);
        assert!(view.estimated_finish.is_some());
        assert_eq!(progress.files_found(), 1);
    }
}
