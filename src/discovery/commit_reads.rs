//! Reads for a pull-request check: catalog files read at the pull
//! request's source commit (in the repository it comes from: its fork or
//! the target) and processed as the provider reads its branch — same
//! rules, budgets, target scope and entity locations, so the entities
//! compare with what is served. Location targets in the target repository
//! at the branch are read at the source commit too. Nothing is applied.
//! What the provider does is in `at_commit`; here is what a check sees.

use futures::future::BoxFuture;

use super::plan::Listed;
use super::{RunContext, pipeline};
use crate::bitbucket::BitbucketError;
use crate::bitbucket::pull_requests::{PullRequestApi, RepoCoords};
use crate::catalog::ProcessedEntity;
use crate::config::CatalogGlob;

/// Where a pull request's files are read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceCommit<'a> {
    pub api: &'a PullRequestApi,
    /// The repository the pull request comes from (its fork or the target).
    pub source: &'a RepoCoords,
    /// The repository it merges into.
    pub target: &'a RepoCoords,
    /// The branch it merges into: what the provider reads.
    pub branch: &'a str,
    pub commit: &'a str,
}

/// One catalog file at the source commit.
#[derive(Debug)]
pub(crate) enum FileAtCommit {
    /// Not there (removed, or the old name of a renamed file).
    Missing,
    Unreadable(BitbucketError),
    Read(pipeline::FileOutcome),
}

/// A catalog file the pull request changes, as read at its commit.
#[derive(Debug)]
pub(crate) struct CommitFile {
    /// Its location on the branch: what its entities would be served under.
    pub location: String,
    pub outcome: FileAtCommit,
}

/// What a provider does for a pull-request check (object-safe).
pub(crate) trait CommitReads {
    /// The glob `catalogPath`, when it is one.
    fn catalog_glob(&self) -> Option<&CatalogGlob>;

    /// Reads `paths` of the repository `listed` names at `at`'s commit and
    /// processes each as a read of the branch would.
    fn read_at_commit<'a>(
        &'a self,
        ctx: &'a RunContext<'_>,
        listed: &'a Listed,
        at: SourceCommit<'a>,
        paths: Vec<String>,
    ) -> BoxFuture<'a, Vec<CommitFile>>;

    /// Whether the provider generates an entity for a repository without a
    /// catalog file (`withoutCatalogFile.generate`).
    fn generates(&self) -> bool;

    /// Whether any file the glob matches is at `at`'s commit, as the read
    /// after the merge would list them; `false` without a glob.
    fn glob_matches_at_commit<'a>(
        &'a self,
        at: SourceCommit<'a>,
    ) -> BoxFuture<'a, Result<bool, BitbucketError>>;

    /// The entity the provider would generate for the repository without a
    /// catalog file, its code owners read at the commit; `None` when it
    /// generates none.
    fn generated_at_commit<'a>(
        &'a self,
        ctx: &'a RunContext<'_>,
        listed: &'a Listed,
        at: SourceCommit<'a>,
    ) -> BoxFuture<'a, Option<Vec<ProcessedEntity>>>;
}
