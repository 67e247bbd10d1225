//! The account of one run: what it saw, read, changed and spent.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Problem;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "status"
)]
#[strum(serialize_all = "camelCase")]
pub enum Outcome {
    /// The listing completed and every planned file was read; per-file
    /// problems may still be listed.
    Succeeded,
    /// The listing did not complete (or the location could not be read):
    /// nothing was removed; files read before the failure are applied.
    Failed { error: String },
    /// The listing completed (removals applied) but the run reached its
    /// timeout before reading every planned file: what it read is applied,
    /// and the next run starts with the files this one did not reach.
    Incomplete {
        message: String,
        read: usize,
        remaining: usize,
    },
    /// The listing completed but would have removed more entities than the
    /// provider's `deletionThreshold` allows; the previous entities stay
    /// until a run with `force=true` (or a smaller change) applies.
    Held {
        message: String,
        would_remove: usize,
        of: usize,
    },
}

/// What started a run, for its log lines and status. Webhook events do
/// not start runs: they are applied per repository (the status's
/// `lastEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Trigger {
    /// The first run after start-up (after `initialDelay`).
    StartUp,
    /// The provider's (or `catalog.locationSchedule`'s) frequency.
    Schedule,
    /// `POST …/refresh` (a provider's, or an entity's read as a whole run).
    Refresh,
    /// `POST /api/catalog/locations`: the location's first read.
    Registration,
    /// This replica became the leader: the start-up runs it skipped.
    Leadership,
}

impl Trigger {
    /// As serialised: `start-up`, `schedule`, ….
    pub fn label(self) -> &'static str {
        self.into()
    }
}

/// The account of one provider run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub provider: String,
    pub outcome: Outcome,
    /// What started the run; absent in reports stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    #[serde(with = "crate::rfc3339")]
    pub started_at: DateTime<Utc>,
    /// `None` while running.
    #[serde(default, with = "crate::rfc3339::option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub projects_seen: usize,
    pub repos_seen: usize,
    /// Repositories that passed the filters.
    pub repos_matched: usize,
    pub files_found: usize,
    /// Catalog files read this run.
    #[serde(default)]
    pub repos_read: usize,
    /// Repositories not read because their file is unchanged since the
    /// last read (Cloud: the same commit).
    #[serde(default)]
    pub repos_unchanged: usize,
    /// Entities the source serves when the run ends.
    pub entities: usize,
    pub problems: Vec<Problem>,
    /// Files that could not be read this run whose previous entities stay served.
    #[serde(default)]
    pub stale: Vec<String>,
    /// Files read through Location entities' targets.
    pub location_files: usize,
    /// What the operator should know about how the run went, e.g. that code
    /// search is not enabled and the run fell back to listing repositories.
    #[serde(default)]
    pub notices: Vec<String>,
    /// Requests sent, retries and 429s included.
    pub requests: u64,
    /// Requests that were repeats of a failed one.
    #[serde(default)]
    pub retries: u64,
    /// 429 answers (each waited out).
    #[serde(default)]
    pub rate_limited: u64,
    /// Response body bytes read.
    #[serde(default)]
    pub bytes: u64,
    /// Endpoint kind → status (or `error`) → requests.
    #[serde(default)]
    pub requests_by_endpoint:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    #[serde(rename = "durationMs", with = "millis")]
    pub duration: Duration,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl RunReport {
    pub fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            outcome: Outcome::Succeeded,
            trigger: None,
            started_at: Utc::now(),
            finished_at: None,
            projects_seen: 0,
            repos_seen: 0,
            repos_matched: 0,
            files_found: 0,
            repos_read: 0,
            repos_unchanged: 0,
            entities: 0,
            problems: Vec::new(),
            stale: Vec::new(),
            location_files: 0,
            notices: Vec::new(),
            requests: 0,
            retries: 0,
            rate_limited: 0,
            bytes: 0,
            requests_by_endpoint: std::collections::BTreeMap::new(),
            duration: Duration::ZERO,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Succeeded
    }

    /// One line for humans, e.g. the `run-once` summary.
    pub fn summary(&self) -> String {
        let outcome = match &self.outcome {
            Outcome::Succeeded => "ok".to_owned(),
            Outcome::Failed { error } => format!("FAILED: {error}"),
            Outcome::Incomplete { message, .. } => format!("INCOMPLETE: {message}"),
            Outcome::Held { message, .. } => format!("HELD: {message}"),
        };
        let notices: String = self
            .notices
            .iter()
            .map(|n| format!("; note: {n}"))
            .collect();
        format!(
            "provider {}: {outcome}; {} projects, {} repos seen, {} matched filters, {} read, {} unchanged, {} catalog files, {} entities, {} problems, {} requests, {} files via Location targets, {:.1}s{notices}",
            self.provider,
            self.projects_seen,
            self.repos_seen,
            self.repos_matched,
            self.repos_read,
            self.repos_unchanged,
            self.files_found,
            self.entities,
            self.problems.len(),
            self.requests,
            self.location_files,
            self.duration.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_as_serialised() {
        let triggers = [
            Trigger::StartUp,
            Trigger::Schedule,
            Trigger::Refresh,
            Trigger::Registration,
            Trigger::Leadership,
        ];
        for trigger in triggers {
            assert_eq!(serde_json::json!(trigger), trigger.label());
        }
        let outcome = Outcome::Failed { error: "e".into() };
        let label: &str = (&outcome).into();
        assert_eq!(serde_json::json!(outcome)["status"], label);
    }
}
