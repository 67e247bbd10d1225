//! What the simulator keeps of pull requests and of the checks posted on
//! their commits (Code Insights reports, annotations, build statuses).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dataset::RepoRef;

/// Pull requests and posted checks kept at most: a benchmark opening many
/// cannot grow the simulator without bound.
pub(crate) const MAX_KEPT: usize = 10_000;

/// One pull request of a repository of the data set.
#[derive(Debug, Clone)]
pub(crate) struct SimPullRequest {
    pub id: u64,
    pub repo: RepoRef,
    /// The repository its source branch is in, when not `repo` (a fork);
    /// one not in the data set cannot be read (404).
    pub fork: Option<RepoRef>,
    pub title: String,
    pub source_branch: String,
    pub target_branch: String,
    /// The source branch's head.
    pub commit: String,
    /// Path → new content (`None`: deleted), over the target's files.
    pub edits: BTreeMap<String, Option<String>>,
    pub open: bool,
    pub updates: u64,
}

/// Something a client posted on a commit.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostedCheck {
    /// `report`, `annotations` or `buildStatus`.
    pub kind: String,
    /// `PROJECT/slug` (Cloud: `workspace/slug`); empty for a Data Center
    /// build status, which names only the commit.
    pub repository: String,
    pub commit: String,
    /// The report key (empty for a build status).
    pub key: String,
    pub body: serde_json::Value,
}
