//! Which repositories a run reads, and in which order: never read first,
//! then those whose listing says they changed, then the least recently
//! read. A run cut short by its timeout or a rate limit has then read what
//! mattered most, and the next run continues where it stopped. A file the
//! listing shows unchanged (Cloud: the same commit) is not read at all.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use url::Url;

use super::{CatalogFile, RepositoryRecord};
use crate::catalog::process::RepoInfo;

/// One repository of a complete listing, after the filters.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// As the listing describes it: `catalog` unknown, never read.
    pub record: RepositoryRecord,
    /// The API URL of the catalog file.
    pub file_url: Url,
    /// What the file is at, when the listing tells (Cloud's code search
    /// gives the commit), with the settings fingerprint.
    pub change_token: Option<String>,
    pub repo_info: RepoInfo,
}

/// A run's reads in order, and the repositories it can skip.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub reads: Vec<Listed>,
    /// Unchanged since their last read: what that read found stays.
    pub unchanged: Vec<RepositoryRecord>,
}

/// `None`: unchanged, no read needed.
fn priority(
    listed: &Listed,
    known: Option<&RepositoryRecord>,
) -> Option<(u8, Option<DateTime<Utc>>)> {
    let Some(known) = known.filter(|k| k.read_at.is_some()) else {
        return Some((0, None));
    };
    match &listed.change_token {
        Some(token)
            if known.change_token.as_ref() == Some(token)
                && known.catalog != CatalogFile::Unreadable =>
        {
            None
        }
        Some(_) => Some((1, known.read_at)),
        None => Some((2, known.read_at)),
    }
}

pub(crate) fn plan(listed: Vec<Listed>, known: &HashMap<String, RepositoryRecord>) -> Plan {
    // Sorted in the listing's own buffer: a second vector of 10,000
    // `Listed` (with their ranks) was the largest transient of a run (issue 29).
    let mut reads = listed;
    let mut unchanged = Vec::new();
    // A listing whose pages shifted can name a repository twice: read it once.
    let mut seen = std::collections::HashSet::new();
    reads.retain_mut(|repository| {
        if !seen.insert(repository.record.catalog_url.clone()) {
            return false;
        }
        let previous = known.get(&repository.record.catalog_url);
        // A listing that does not name the default branch (older Data
        // Center) keeps the one learned before: a push to another branch
        // then costs no look-up.
        repository.record.keep_branch_of(previous);
        match (priority(repository, previous), previous) {
            (Some(_), _) => true,
            (None, Some(previous)) => {
                unchanged.push(previous.clone());
                false
            }
            (None, None) => false,
        }
    });
    drop(seen);
    // Stable: equal ranks keep the listing's order.
    reads.sort_by_cached_key(|r| priority(r, known.get(&r.record.catalog_url)));
    reads.shrink_to_fit();
    Plan { reads, unchanged }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(slug: &str, token: Option<&str>) -> Listed {
        Listed {
            record: RepositoryRecord {
                project: "P".into(),
                slug: slug.into(),
                url: format!("https://b/{slug}"),
                id: None,
                catalog_url: format!("https://b/{slug}/catalog-info.yaml"),
                branch: None,
                branch_checked_at: None,
                catalog: CatalogFile::Unknown,
                change_token: None,
                read_at: None,
                entities: 0,
                problems: Vec::new(),
                generated: None,
            },
            file_url: Url::parse("https://api/x").unwrap(),
            change_token: token.map(str::to_owned),
            repo_info: RepoInfo::default(),
        }
    }

    fn known(
        slug: &str,
        token: Option<&str>,
        read_at: &str,
        catalog: CatalogFile,
    ) -> RepositoryRecord {
        let mut record = listed(slug, None).record;
        record.change_token = token.map(str::to_owned);
        record.read_at = Some(read_at.parse().unwrap());
        record.catalog = catalog;
        record
    }

    fn slugs(reads: &[Listed]) -> Vec<&str> {
        reads.iter().map(|l| l.record.slug.as_str()).collect()
    }

    #[test]
    fn never_read_then_changed_then_least_recently_read() {
        let known: HashMap<String, RepositoryRecord> = [
            known(
                "old",
                None,
                "2026-11-01T00:00:00.000Z",
                CatalogFile::Present,
            ),
            known(
                "older",
                None,
                "2026-10-01T00:00:00.000Z",
                CatalogFile::Missing,
            ),
            known(
                "changed",
                Some("c1"),
                "2026-11-29T00:00:00.000Z",
                CatalogFile::Present,
            ),
            known(
                "same",
                Some("s1"),
                "2026-11-29T00:00:00.000Z",
                CatalogFile::Present,
            ),
            known(
                "failed",
                Some("f1"),
                "2026-11-29T00:00:00.000Z",
                CatalogFile::Unreadable,
            ),
        ]
        .into_iter()
        .map(|r| (r.catalog_url.clone(), r))
        .collect();
        let plan = plan(
            vec![
                listed("old", None),
                listed("same", Some("s1")),
                listed("older", None),
                listed("changed", Some("c2")),
                listed("new", Some("n1")),
                listed("failed", Some("f1")),
            ],
            &known,
        );
        assert_eq!(
            slugs(&plan.reads),
            ["new", "changed", "failed", "older", "old"]
        );
        assert_eq!(plan.unchanged.len(), 1);
        assert_eq!(plan.unchanged[0].slug, "same");
    }

    #[test]
    fn a_listing_without_the_default_branch_keeps_the_one_learned() {
        let mut learned = known("a", None, "2026-11-01T00:00:00.000Z", CatalogFile::Present);
        learned.branch = Some("trunk".into());
        let mut moved = known("b", None, "2026-11-01T00:00:00.000Z", CatalogFile::Present);
        moved.branch = Some("master".into());
        let known: HashMap<String, RepositoryRecord> = [learned, moved]
            .into_iter()
            .map(|r| (r.catalog_url.clone(), r))
            .collect();
        let mut renamed = listed("b", None);
        renamed.record.branch = Some("main".into());
        let plan = plan(vec![listed("a", None), renamed], &known);
        let branches: Vec<Option<&str>> = plan
            .reads
            .iter()
            .map(|l| l.record.branch.as_deref())
            .collect();
        assert_eq!(branches, [Some("trunk"), Some("main")]);
    }
}
