//! What one work item comes to once resolved against the repository
//! records: a read (with the record it replaces), a removal, or nothing and
//! why. Bitbucket's repository id finds a moved or renamed repository's
//! entities; the branch read is pinned, recorded, named by the event or
//! asked of Bitbucket once and then kept in the repository's record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::queue::{Outcome, RefreshError, Work, WorkItem};
use crate::bitbucket::RequestStats;
use crate::discovery::plan::Listed;
use crate::discovery::provider::{RepositoryReads, Unlisted};
use crate::discovery::{RepoRef, RepositoryRecord};
use crate::store::{Batch, CatalogStore, RepositoryKey};

/// How long a default branch Bitbucket told is trusted.
const BRANCH_TTL: Duration = Duration::from_secs(3600);
/// Default branches remembered per provider.
const MAX_BRANCHES: usize = 10_000;

/// Default branches Bitbucket told, by repository, for an hour: kept in
/// the repository's record too, this covers one the filters let in but no
/// record could be made for.
#[derive(Debug, Default)]
pub(super) struct BranchCache(Mutex<HashMap<String, (String, Instant)>>);

impl BranchCache {
    fn get(&self, key: &str) -> Option<String> {
        let cache = self.0.lock();
        cache
            .get(key)
            .filter(|(_, at)| at.elapsed() < BRANCH_TTL)
            .map(|(branch, _)| branch.clone())
    }

    fn insert(&self, key: String, branch: String) {
        let mut cache = self.0.lock();
        if cache.len() >= MAX_BRANCHES {
            cache.clear();
        }
        cache.insert(key, (branch, Instant::now()));
    }
}

/// Resolves work items of one provider against its records.
pub(super) struct Resolver<'a> {
    pub(super) source: &'a str,
    pub(super) store: &'a dyn CatalogStore,
    pub(super) reads: &'a dyn RepositoryReads,
    pub(super) stats: &'a Arc<RequestStats>,
    pub(super) branches: &'a BranchCache,
}

/// A read to make.
pub(super) struct ReadPlan {
    pub(super) listed: Listed,
    pub(super) known: Option<RepositoryRecord>,
    /// A move: the unit it was under, dropped with the read of the new
    /// place once that read succeeds (so a failed read loses nothing).
    pub(super) replaces: Option<String>,
}

/// What one work item comes to once resolved against the records.
pub(super) enum Plan {
    Read(Box<ReadPlan>),
    Remove { unit: String },
    Done(Outcome),
}

/// Why an item is not read, found while planning its read.
enum Stop {
    /// The filters leave it out.
    LeftOut(String),
    Done(Outcome),
    Records(RefreshError),
}

impl From<RefreshError> for Stop {
    fn from(err: RefreshError) -> Self {
        Self::Records(err)
    }
}

impl Resolver<'_> {
    /// The record of `key`.
    pub(super) async fn record(
        &self,
        key: RepositoryKey<'_>,
    ) -> Result<Option<RepositoryRecord>, RefreshError> {
        self.store
            .repository(self.source, key)
            .await
            .map_err(RefreshError::Records)
    }

    /// What `item` comes to; `Err` when the store cannot tell.
    pub(super) async fn resolve(&self, item: &WorkItem) -> Result<Plan, RefreshError> {
        let mut repository = item.repository.clone();
        // Bitbucket's id survives renames and moves: the record it finds is
        // where the repository's entities are now.
        let by_id = match &repository.id {
            Some(id) => self.record(RepositoryKey::Id(id)).await?,
            None => None,
        };
        let old = match &item.work {
            Work::Deleted => return self.removal(&repository, by_id).await,
            Work::Moved(old) => match (&by_id, old) {
                (Some(record), _) => Some(record.clone()),
                (None, Some(old)) => self.record_at(old).await?,
                (None, None) => None,
            },
            Work::Pushed(_) | Work::Refresh | Work::PullRequest(_) | Work::PullRequestClosed(_) => {
                None
            }
        };
        if let Some(record) = &by_id {
            // Payloads often leave these out (Cloud: `mainbranch`, project).
            repository.main_branch = repository.main_branch.or_else(|| record.branch.clone());
            if repository.project.is_none() && old.is_none() {
                repository.project = Some(record.project.clone());
            }
        }
        match self.read_plan(item, repository, by_id).await {
            Ok((listed, known)) => Ok(Plan::Read(Box::new(ReadPlan {
                listed,
                known,
                replaces: old.map(|o| o.catalog_url),
            }))),
            Err(Stop::LeftOut(why)) => Ok(left_out(old, why)),
            Err(Stop::Done(outcome)) => Ok(Plan::Done(outcome)),
            Err(Stop::Records(err)) => Err(err),
        }
    }

    /// A deleted repository: its entities go, if any come from it.
    async fn removal(
        &self,
        repository: &RepoRef,
        by_id: Option<RepositoryRecord>,
    ) -> Result<Plan, RefreshError> {
        let record = match by_id {
            Some(record) => Some(record),
            None => self.record_at(repository).await?,
        };
        Ok(match record {
            Some(record) => Plan::Remove {
                unit: record.catalog_url,
            },
            None => Plan::Done(Outcome::Ignored("no entities come from it".into())),
        })
    }

    /// The file to read for `item` and the record of its unit.
    async fn read_plan(
        &self,
        item: &WorkItem,
        mut repository: RepoRef,
        by_id: Option<RepositoryRecord>,
    ) -> Result<(Listed, Option<RepositoryRecord>), Stop> {
        let first = match self.reads.listed_one(self.stats, &repository, None) {
            Ok(listed) => Some(listed),
            Err(Unlisted::NeedsBranch) => None,
            Err(Unlisted::LeftOut(why)) => return Err(Stop::LeftOut(why)),
        };
        let known = match (&first, by_id) {
            (Some(listed), Some(record)) if record.catalog_url == listed.record.catalog_url => {
                Some(record)
            }
            (Some(listed), _) => {
                self.record(RepositoryKey::Unit(&listed.record.catalog_url))
                    .await?
            }
            (None, _) => None,
        };
        let (branch, checked_at) = self
            .branch_to_read(item, &repository, known.as_ref(), first.is_none())
            .await?;
        let commit = pushed_commit(&item.work, branch.as_deref())?;
        repository.main_branch = branch;
        let listed = match self
            .reads
            .listed_one(self.stats, &repository, commit.as_deref())
        {
            Ok(mut listed) => {
                listed.record.branch_checked_at = checked_at;
                listed
            }
            Err(Unlisted::LeftOut(why)) => return Err(Stop::LeftOut(why)),
            Err(Unlisted::NeedsBranch) => {
                return Err(Stop::Done(Outcome::Ignored(
                    "its main branch is not known".into(),
                )));
            }
        };
        let known = match known {
            Some(known) if known.catalog_url == listed.record.catalog_url => Some(known),
            _ => {
                self.record(RepositoryKey::Unit(&listed.record.catalog_url))
                    .await?
            }
        };
        Ok((listed, known))
    }

    /// The branch to read: pinned, recorded, named by the event, cached, or
    /// asked of Bitbucket when it must be named (`None`: the default
    /// branch, unnamed); with when it was last asked of Bitbucket, for the
    /// record (`None`: a listing names it).
    async fn branch_to_read(
        &self,
        item: &WorkItem,
        repository: &RepoRef,
        known: Option<&RepositoryRecord>,
        unlisted: bool,
    ) -> Result<(Option<String>, Option<DateTime<Utc>>), Stop> {
        let cache_key = item.key();
        let now = Utc::now();
        // A looked-up branch a push does not name is asked again, hourly at
        // most (an older Data Center's listing never tells it changed).
        let recheck = self.reads.pinned_branch().is_none()
            && matches!(&item.work, Work::Pushed(moves)
            if known.is_some_and(|k| k.branch_recheck_due(
                &moves.iter().map(|m| m.branch.as_str()).collect::<Vec<_>>(),
                now,
            )));
        let checked_at = known.and_then(|k| k.branch_checked_at);
        let branch = self
            .reads
            .pinned_branch()
            .map(str::to_owned)
            .or_else(|| known.and_then(|k| k.branch.clone()))
            .or_else(|| repository.main_branch.clone())
            .or_else(|| self.branches.get(&cache_key))
            .filter(|_| !recheck);
        // A push is matched against the branch read, and Cloud names files
        // by branch; otherwise the default branch is read unnamed.
        let needs_branch = matches!(item.work, Work::Pushed(_)) || unlisted;
        match branch {
            Some(branch) => Ok((Some(branch), checked_at)),
            None if !needs_branch => Ok((None, checked_at)),
            None => match self.reads.default_branch(self.stats, repository).await {
                Ok(Some(branch)) => {
                    self.branches.insert(cache_key, branch.clone());
                    self.remember_branch(repository, known, &branch, now)
                        .await?;
                    Ok((Some(branch), Some(now)))
                }
                Ok(None) => Err(Stop::LeftOut("it has no default branch (empty)".into())),
                Err(err) => Err(Stop::Done(Outcome::Failed(err.to_string()))),
            },
        }
    }

    /// Keeps the default branch Bitbucket just told in the repository's
    /// record (a new record when there is none yet), so that later pushes
    /// to other branches cost no look-up, also after a restart.
    async fn remember_branch(
        &self,
        repository: &RepoRef,
        known: Option<&RepositoryRecord>,
        branch: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RefreshError> {
        let record = match known {
            Some(known) => Some(known.clone()),
            None => {
                let mut named = repository.clone();
                named.main_branch = Some(branch.to_owned());
                self.reads
                    .listed_one(self.stats, &named, None)
                    .ok()
                    .map(|listed| listed.record)
            }
        };
        let Some(mut record) = record else {
            return Ok(());
        };
        if known.is_none() {
            // Cloud names the unit by branch: a record may be there already.
            if let Some(stored) = self
                .record(RepositoryKey::Unit(&record.catalog_url))
                .await?
            {
                record = stored;
            }
        }
        record.branch = Some(branch.to_owned());
        record.branch_checked_at = Some(now);
        self.store
            .apply(Batch {
                source: self.source,
                changes: &[],
                repositories: std::slice::from_ref(&record),
                forgotten: &[],
                withheld: &[],
            })
            .await
            .map_err(RefreshError::Records)
    }

    /// The record of the repository `repository` names, by where its
    /// catalog file would be.
    async fn record_at(
        &self,
        repository: &RepoRef,
    ) -> Result<Option<RepositoryRecord>, RefreshError> {
        match self.reads.listed_one(self.stats, repository, None) {
            Ok(listed) => {
                self.record(RepositoryKey::Unit(&listed.record.catalog_url))
                    .await
            }
            Err(_) => Ok(None),
        }
    }
}

/// The commit a push moved the branch read to; a push to other branches
/// is ignored.
fn pushed_commit(work: &Work, branch: Option<&str>) -> Result<Option<String>, Stop> {
    let (Work::Pushed(branches), Some(branch)) = (work, branch) else {
        return Ok(None);
    };
    match branches.iter().find(|b| b.branch == branch) {
        Some(moved) => Ok(moved.to.clone()),
        None => {
            let pushed: Vec<&str> = branches.iter().map(|b| b.branch.as_str()).collect();
            Err(Stop::Done(Outcome::Ignored(format!(
                "pushed to {}, the provider reads {branch}",
                if pushed.is_empty() {
                    "no branch".to_owned()
                } else {
                    pushed.join(", ")
                }
            ))))
        }
    }
}

/// The filters leave the repository out: a move out of them removes what
/// it served (guarded); otherwise there is nothing to do.
fn left_out(old: Option<RepositoryRecord>, why: String) -> Plan {
    match old {
        Some(record) => Plan::Remove {
            unit: record.catalog_url,
        },
        None => Plan::Done(Outcome::Ignored(why)),
    }
}
