//! What one run's requests spent: counts by endpoint and status, retries,
//! 429s and bytes, shared by every request the run makes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one discovery run spent, shared by every request it makes.
#[derive(Debug, Default)]
pub(crate) struct RequestStats {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    bytes: AtomicU64,
    /// `(endpoint kind, status or "error")` → requests.
    by_endpoint: parking_lot::Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl RequestStats {
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub(crate) fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(super) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn was_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn read(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `endpoint → status → requests`, for reports.
    pub(crate) fn by_endpoint(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((endpoint, status), count) in self.by_endpoint.lock().iter() {
            out.entry((*endpoint).to_owned())
                .or_default()
                .insert(status.clone(), *count);
        }
        out
    }

    pub(super) fn record(&self, host: &str, endpoint: &'static str, status: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *self
            .by_endpoint
            .lock()
            .entry((endpoint, status.to_owned()))
            .or_default() += 1;
        crate::metrics::record_bitbucket_request(host, endpoint, status);
    }
}
