//! What is kept about each repository of a provider, and what a read
//! hands over to apply.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Problem;
use crate::catalog::ProcessedEntity;
use crate::integrations::RepoRef;

/// Whether a repository has a catalog file, as its last read said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CatalogFile {
    /// Listed, not read yet.
    Unknown,
    Present,
    /// The file does not exist (404).
    Missing,
    /// The last read failed; what it gave before stays served.
    Unreadable,
}

/// What is kept about one repository of a provider: the unit of state and
/// of change. Its entities are kept under `catalog_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryRecord {
    pub project: String,
    pub slug: String,
    /// The repository's web URL.
    pub url: String,
    /// Bitbucket's id for it (Server: the numeric id, Cloud: the UUID),
    /// when the listing carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The catalog file's web URL: the entities' location, and the unit
    /// they are kept under.
    pub catalog_url: String,
    /// The branch the file is read from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub catalog: CatalogFile,
    /// When `branch` was last asked of Bitbucket, for a listing that does
    /// not name the default branch (older Data Center); `None`: the
    /// listing names it, so runs follow it. A push naming another branch
    /// re-checks once this is [`BRANCH_RECHECK_EVERY`] old.
    #[serde(
        default,
        with = "crate::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub branch_checked_at: Option<DateTime<Utc>>,
    /// What the file was at when last processed (Cloud: the commit code
    /// search found; Server: a hash of the content), with the settings it
    /// was processed under. `None`: read it again next time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_token: Option<String>,
    /// When the file was last read; `None`: never.
    #[serde(
        default,
        with = "crate::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_at: Option<DateTime<Utc>>,
    /// Entities served from it.
    #[serde(default)]
    pub entities: usize,
    /// What the last read of the file found wrong.
    #[serde(default)]
    pub problems: Vec<Problem>,
    /// The entity generated for it, having no catalog file
    /// (`withoutCatalogFile.generate`).
    /// Boxed: most repositories have none, and a record is held per
    /// repository in every listing and run (issue 29).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<Box<Generated>>,
}

/// How long a default branch looked up (not named by the listing) is
/// trusted before a push naming another branch asks again: at most one
/// look-up per repository per hour, none for pushes to the known branch.
pub(crate) const BRANCH_RECHECK_EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl RepositoryRecord {
    /// Whether a push naming `pushed` (not the known branch) should ask
    /// Bitbucket for the default branch again: the branch was looked up,
    /// not listed, and not within the last [`BRANCH_RECHECK_EVERY`].
    pub(crate) fn branch_recheck_due(&self, pushed: &[&str], now: DateTime<Utc>) -> bool {
        let Some(known) = self.branch.as_deref() else {
            return false;
        };
        !pushed.contains(&known)
            && self
                .branch_checked_at
                .is_some_and(|at| now.signed_duration_since(at) >= BRANCH_RECHECK_EVERY)
    }

    /// Takes what the previous record learned about the default branch
    /// when the listing does not name it. A branch learned before the
    /// check time was kept counts as due for a re-check.
    pub(crate) fn keep_branch_of(&mut self, previous: Option<&Self>) {
        if self.branch.is_some() {
            return;
        }
        let Some(previous) = previous.filter(|p| p.branch.is_some()) else {
            return;
        };
        self.branch = previous.branch.clone();
        self.branch_checked_at = Some(
            previous
                .branch_checked_at
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        );
    }
}

/// What a repository's record says about its generated entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Generated {
    /// The entity's reference.
    pub entity_ref: String,
    /// Its `spec.owner`.
    pub owner: String,
    /// Where the owner came from: `codeowners` or `config`.
    pub owner_from: String,
    /// The settings it was generated under; other settings, generate again.
    pub settings: String,
    /// Why the code owners file could not be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// A read's result for one unit, to apply: the record to keep and, when
/// the file was processed, the unit's whole new entity set (`None` keeps
/// what is served: unchanged or unreadable).
#[derive(Debug, Clone)]
pub struct UnitUpdate {
    pub unit: String,
    pub record: Option<RepositoryRecord>,
    pub entities: Option<Vec<ProcessedEntity>>,
}

impl UnitUpdate {
    /// Drops everything `unit` serves.
    pub fn removal(unit: &str) -> Self {
        Self {
            unit: unit.to_owned(),
            record: None,
            entities: Some(Vec::new()),
        }
    }
}

/// A stored record as a reference, for a per-entity refresh.
impl From<RepositoryRecord> for RepoRef {
    fn from(record: RepositoryRecord) -> Self {
        Self {
            project: Some(record.project),
            workspace: None,
            slug: record.slug,
            id: record.id,
            web_url: Some(record.url),
            archived: false,
            main_branch: record.branch,
        }
    }
}
