//! Request counters, by endpoint kind and outcome.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Which simulated endpoint a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    ServerProjects,
    ServerRepos,
    /// The global listing `GET /repos`.
    ServerGlobalRepos,
    ServerRaw,
    /// `default-branch` and `branches/default`.
    ServerDefaultBranch,
    /// `files[/{path}]`.
    ServerFiles,
    /// `changes` and `compare/changes`.
    ServerChanges,
    CloudProjects,
    CloudRepos,
    CloudCodeSearch,
    /// `src/{commit}/{path}`: a file (or a directory named without a trailing `/`).
    CloudSrc,
    /// `src/{commit}/` or `src/{commit}/{dir}/`: a directory listing.
    CloudSrcDirectory,
    /// `refs/branches/{name}`.
    CloudBranch,
    /// `diffstat/{spec}`.
    CloudDiffstat,
    /// Anything else under the API (answered 404/405/400).
    Other,
}

/// Classifies a raw (still percent-encoded) request path; `None` for the
/// simulator's own `/__sim` endpoints, which are never counted or disturbed.
pub(crate) fn classify(path: &str) -> Option<EndpointKind> {
    if path == "/__sim" || path.starts_with("/__sim/") {
        return None;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let kind = match segments.as_slice() {
        ["rest", "api", "1.0" | "latest", "projects"] => EndpointKind::ServerProjects,
        ["rest", "api", "1.0" | "latest", "projects", _, "repos"] => EndpointKind::ServerRepos,
        ["rest", "api", "1.0" | "latest", "repos"] => EndpointKind::ServerGlobalRepos,
        [
            "rest",
            "api",
            "1.0" | "latest",
            "projects",
            _,
            "repos",
            _,
            "raw",
            _,
            ..,
        ] => EndpointKind::ServerRaw,
        [
            "rest",
            "api",
            "1.0" | "latest",
            "projects",
            _,
            "repos",
            _,
            "default-branch",
        ]
        | [
            "rest",
            "api",
            "1.0" | "latest",
            "projects",
            _,
            "repos",
            _,
            "branches",
            "default",
        ] => EndpointKind::ServerDefaultBranch,
        [
            "rest",
            "api",
            "1.0" | "latest",
            "projects",
            _,
            "repos",
            _,
            "files",
            ..,
        ] => EndpointKind::ServerFiles,
        [
            "rest",
            "api",
            "1.0" | "latest",
            "projects",
            _,
            "repos",
            _,
            "changes",
        ]
        | [
            "rest",
            "api",
            "1.0" | "latest",
            "projects",
            _,
            "repos",
            _,
            "compare",
            "changes",
        ] => EndpointKind::ServerChanges,
        ["2.0", "repositories", _, _, "src", _, ..] if path.ends_with('/') => {
            EndpointKind::CloudSrcDirectory
        }
        ["2.0", "repositories", _, _, "src", _] => EndpointKind::CloudSrcDirectory,
        ["2.0", "repositories", _, _, "refs", "branches", _, ..] => EndpointKind::CloudBranch,
        ["2.0", "repositories", _, _, "diffstat", _] => EndpointKind::CloudDiffstat,
        ["2.0", "workspaces", _, "projects"] => EndpointKind::CloudProjects,
        ["2.0", "repositories", _] => EndpointKind::CloudRepos,
        ["2.0", "workspaces", _, "search", "code"] => EndpointKind::CloudCodeSearch,
        ["2.0", "repositories", _, _, "src", _, _, ..] => EndpointKind::CloudSrc,
        _ => EndpointKind::Other,
    };
    Some(kind)
}

/// How a request ended: an HTTP status, or a fault with no complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Status(u16),
    /// The connection was closed without a response.
    Reset,
    /// Headers and part of the body, then a close.
    Truncated,
}

impl Outcome {
    fn label(self) -> String {
        match self {
            Outcome::Status(code) => code.to_string(),
            Outcome::Reset => "reset".into(),
            Outcome::Truncated => "truncated".into(),
        }
    }
}

/// Counts for one endpoint kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindStats {
    pub requests: u64,
    /// Body bytes sent (for truncated answers, the part sent).
    pub bytes: u64,
    /// `"200"`, `"404"`, `"429"`, …, `"reset"`, `"truncated"` → count.
    pub by_status: BTreeMap<String, u64>,
}

/// Injected faults, counted when they happen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    pub server_error: u64,
    pub reset: u64,
    pub truncated: u64,
    pub slow: u64,
}

/// A snapshot of the counters since start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// API requests (the `/__sim` endpoints are not counted).
    pub requests: u64,
    /// Requests whose method, path and query had not been seen before;
    /// `requests - distinct_requests` are repeats (retries included).
    pub distinct_requests: u64,
    pub bytes: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_kind: BTreeMap<EndpointKind, KindStats>,
    pub faults: FaultCounts,
    /// The most API requests in flight at once.
    #[serde(default)]
    pub max_in_flight: u64,
}

impl Stats {
    /// Requests that ended with `status` (`"200"`, `"429"`, `"reset"`, …).
    pub fn status(&self, status: &str) -> u64 {
        self.by_status.get(status).copied().unwrap_or(0)
    }

    pub fn kind(&self, kind: EndpointKind) -> KindStats {
        self.by_kind.get(&kind).cloned().unwrap_or_default()
    }

    pub fn kind_requests(&self, kind: EndpointKind) -> u64 {
        self.by_kind.get(&kind).map_or(0, |k| k.requests)
    }

    pub fn kind_status(&self, kind: EndpointKind, status: &str) -> u64 {
        self.by_kind
            .get(&kind)
            .and_then(|k| k.by_status.get(status))
            .copied()
            .unwrap_or(0)
    }

    /// 429 answers.
    pub fn rate_limited(&self) -> u64 {
        self.status("429")
    }

    pub fn repeated_requests(&self) -> u64 {
        self.requests.saturating_sub(self.distinct_requests)
    }
}

/// One request in flight, until dropped.
pub(crate) struct InFlight<'a> {
    recorder: &'a Recorder,
    pub(crate) now: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.recorder.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Recorder {
    stats: Mutex<Stats>,
    in_flight: AtomicU64,
    /// `METHOD path?query` of every request since the last reset.
    seen: Mutex<HashSet<String>>,
}

impl Recorder {
    pub(crate) fn record(
        &self,
        request_key: &str,
        kind: EndpointKind,
        outcome: Outcome,
        bytes: u64,
    ) {
        let first_time = self.seen.lock().insert(request_key.to_owned());
        let label = outcome.label();
        let mut stats = self.stats.lock();
        stats.requests += 1;
        stats.distinct_requests += u64::from(first_time);
        stats.bytes += bytes;
        *stats.by_status.entry(label.clone()).or_insert(0) += 1;
        let k = stats.by_kind.entry(kind).or_default();
        k.requests += 1;
        k.bytes += bytes;
        *k.by_status.entry(label).or_insert(0) += 1;
        match outcome {
            Outcome::Reset => stats.faults.reset += 1,
            Outcome::Truncated => stats.faults.truncated += 1,
            Outcome::Status(_) => {}
        }
    }

    /// A request arrived: how many are in flight now, this one included.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let mut stats = self.stats.lock();
        stats.max_in_flight = stats.max_in_flight.max(now);
        InFlight {
            recorder: self,
            now,
        }
    }

    pub(crate) fn server_error_injected(&self) {
        self.stats.lock().faults.server_error += 1;
    }

    pub(crate) fn slow_injected(&self) {
        self.stats.lock().faults.slow += 1;
    }

    pub(crate) fn snapshot(&self) -> Stats {
        self.stats.lock().clone()
    }

    pub(crate) fn reset(&self) {
        // Lock order: seen before stats, as in `record`'s sequence, never nested.
        self.seen.lock().clear();
        *self.stats.lock() = Stats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        use EndpointKind::*;
        let cases = [
            ("/rest/api/1.0/projects", Some(ServerProjects)),
            ("/rest/api/latest/projects/%7EU/repos", Some(ServerRepos)),
            (
                "/rest/api/1.0/projects/P/repos/s/raw/a/b.yaml",
                Some(ServerRaw),
            ),
            (
                "/rest/api/1.0/projects/P/repos/s/default-branch",
                Some(ServerDefaultBranch),
            ),
            ("/2.0/workspaces/acme/projects", Some(CloudProjects)),
            ("/2.0/repositories/acme", Some(CloudRepos)),
            ("/2.0/workspaces/acme/search/code", Some(CloudCodeSearch)),
            (
                "/2.0/repositories/acme/r/src/main/catalog-info.yaml",
                Some(CloudSrc),
            ),
            (
                "/rest/api/1.0/projects/P/repos/s/branches/default",
                Some(ServerDefaultBranch),
            ),
            ("/rest/api/1.0/projects/P/repos/s/files", Some(ServerFiles)),
            (
                "/rest/api/latest/projects/P/repos/s/files/a/b",
                Some(ServerFiles),
            ),
            (
                "/rest/api/1.0/projects/P/repos/s/changes",
                Some(ServerChanges),
            ),
            (
                "/rest/api/1.0/projects/P/repos/s/compare/changes",
                Some(ServerChanges),
            ),
            ("/2.0/repositories/acme/r/src/abc/", Some(CloudSrcDirectory)),
            ("/2.0/repositories/acme/r/src/abc", Some(CloudSrcDirectory)),
            (
                "/2.0/repositories/acme/r/src/abc/services/",
                Some(CloudSrcDirectory),
            ),
            (
                "/2.0/repositories/acme/r/refs/branches/main",
                Some(CloudBranch),
            ),
            (
                "/2.0/repositories/acme/r/diffstat/a..b",
                Some(CloudDiffstat),
            ),
            ("/nope", Some(Other)),
            ("/__sim/stats", None),
        ];
        for (path, kind) in cases {
            assert_eq!(classify(path), kind, "{path}");
        }
    }

    #[test]
    fn counts_repeats_and_outcomes() {
        let r = Recorder::default();
        r.record("GET /a", EndpointKind::ServerRaw, Outcome::Status(200), 10);
        r.record("GET /a", EndpointKind::ServerRaw, Outcome::Reset, 0);
        r.record("GET /b", EndpointKind::ServerRaw, Outcome::Truncated, 3);
        let s = r.snapshot();
        assert_eq!((s.requests, s.distinct_requests, s.bytes), (3, 2, 13));
        assert_eq!(s.repeated_requests(), 1);
        assert_eq!(s.kind_status(EndpointKind::ServerRaw, "reset"), 1);
        assert_eq!((s.faults.reset, s.faults.truncated), (1, 1));
        r.reset();
        assert_eq!(r.snapshot(), Stats::default());
    }
}
