//! The simulator's request counts as a bench reports them.

use bitbucket_sim::{EndpointKind, Stats};

/// `label N` for each of `kinds`, comma-separated (e.g. `projects 1, raw 2000`).
pub fn by_kind(stats: &Stats, kinds: &[(EndpointKind, &str)]) -> String {
    kinds
        .iter()
        .map(|(kind, label)| format!("{label} {}", stats.kind_requests(*kind)))
        .collect::<Vec<_>>()
        .join(", ")
}
