//! A repository's recent commits on its default branch, so files can be
//! served at an older commit and compared between two commits.
//!
//! The head's files are the repository's `files`; each past commit keeps
//! only what to restore to step back to it, so an edit costs the paths it
//! touched, and at most [`HISTORY_DEPTH`] past commits are kept.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::dataset::Repo;
use crate::rng::{fnv1a, mix};

/// Past commits a repository keeps. An older one answers 404, as a commit
/// Bitbucket no longer has would: clients must fall back to a full listing.
pub const HISTORY_DEPTH: usize = 32;

/// The past commits of one repository, oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    past: VecDeque<PastCommit>,
}

#[derive(Debug, Clone)]
struct PastCommit {
    hash: String,
    /// The paths the next newer commit changed, with what they held here
    /// (`None`: absent).
    undo: Vec<(String, Option<String>)>,
}

/// A commit of a repository the simulator still knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revision {
    Head,
    /// An index into the past commits (0 is the oldest kept).
    Past(usize),
}

/// How a path differs between two commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Add,
    Modify,
    Delete,
}

/// One changed path between two commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) path: String,
    pub(crate) change: ChangeType,
}

/// The commit after `commit` that applies `edits` (deterministic, so runs repeat).
pub(crate) fn next_commit(commit: &str, edits: &[(String, Option<String>)]) -> String {
    let mut text = commit.to_owned();
    for (path, content) in edits {
        text.push('\0');
        text.push_str(path);
        text.push('\0');
        text.push_str(content.as_deref().unwrap_or("\u{1}deleted"));
    }
    let seed = fnv1a(text.as_bytes());
    let mut out = String::with_capacity(48);
    for i in 0..3u64 {
        out.push_str(&format!("{:016x}", mix(seed.wrapping_add(i))));
    }
    out.truncate(40);
    out
}

/// Whether `at` names `hash`: in full or abbreviated to at least 7 digits.
fn names_commit(hash: &str, at: &str) -> bool {
    at.len() >= 7 && hash.starts_with(&at.to_lowercase())
}

impl Repo {
    /// The commit `at` names: the default branch (`main`, `refs/heads/main`),
    /// the head commit or a kept past one (full or ≥ 7 digits).
    pub(crate) fn resolve(&self, at: &str) -> Option<Revision> {
        let at = at.trim();
        if at == self.default_branch
            || at.strip_prefix("refs/heads/") == Some(self.default_branch.as_str())
            || names_commit(&self.commit, at)
        {
            return Some(Revision::Head);
        }
        self.history
            .past
            .iter()
            .rposition(|c| names_commit(&c.hash, at))
            .map(Revision::Past)
    }

    /// The full hash of a revision.
    pub(crate) fn hash_of(&self, rev: Revision) -> &str {
        match rev {
            Revision::Head => &self.commit,
            Revision::Past(i) => self.history.past.get(i).map_or("", |c| c.hash.as_str()),
        }
    }

    /// The commit before `rev`, when still kept.
    pub(crate) fn parent(&self, rev: Revision) -> Option<Revision> {
        match rev {
            Revision::Head => self.history.past.len().checked_sub(1).map(Revision::Past),
            Revision::Past(i) => i.checked_sub(1).map(Revision::Past),
        }
    }

    /// Every file as it was at `rev`.
    pub(crate) fn files_at(&self, rev: Revision) -> Cow<'_, BTreeMap<String, String>> {
        let Revision::Past(index) = rev else {
            return Cow::Borrowed(&self.files);
        };
        let mut files = self.files.clone();
        for commit in self.history.past.iter().skip(index).rev() {
            for (path, content) in &commit.undo {
                match content {
                    Some(content) => files.insert(path.clone(), content.clone()),
                    None => files.remove(path),
                };
            }
        }
        Cow::Owned(files)
    }

    /// The paths that differ from `old` to `new` (`old` = `None`: every
    /// file of `new` is added), by path.
    pub(crate) fn changes(&self, old: Option<Revision>, new: Revision) -> Vec<Change> {
        let after = self.files_at(new);
        let empty = BTreeMap::new();
        let before = old.map_or(Cow::Borrowed(&empty), |o| self.files_at(o));
        let paths: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        paths
            .into_iter()
            .filter_map(|path| {
                let change = match (before.get(path), after.get(path)) {
                    (None, Some(_)) => ChangeType::Add,
                    (Some(_), None) => ChangeType::Delete,
                    (Some(a), Some(b)) if a != b => ChangeType::Modify,
                    _ => return None,
                };
                Some(Change {
                    path: path.clone(),
                    change,
                })
            })
            .collect()
    }

    /// Applies `edits` (path → new content, `None` deletes) as one new head
    /// commit; returns `(old head, new head)`.
    pub(crate) fn commit_edits(
        &mut self,
        edits: Vec<(String, Option<String>)>,
    ) -> (String, String) {
        let from = self.commit.clone();
        let to = next_commit(&from, &edits);
        let mut undo = Vec::with_capacity(edits.len());
        for (path, content) in edits {
            let before = match content {
                Some(content) => self.files.insert(path.clone(), content),
                None => self.files.remove(&path),
            };
            undo.push((path, before));
        }
        self.history.past.push_back(PastCommit {
            hash: from.clone(),
            undo,
        });
        while self.history.past.len() > HISTORY_DEPTH {
            self.history.past.pop_front();
        }
        to.clone_into(&mut self.commit);
        (from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatasetConfig;
    use crate::dataset::Dataset;

    fn repo() -> Repo {
        let dataset = Dataset::generate(3, &DatasetConfig::components_only(1, 1));
        dataset.server_repos().next().cloned().expect("one repo")
    }

    #[test]
    fn serves_older_commits_and_their_changes() {
        let mut r = repo();
        let first = r.commit.clone();
        let (from, second) = r.commit_edits(vec![("a.yaml".into(), Some("one".into()))]);
        assert_eq!(from, first);
        let (_, third) = r.commit_edits(vec![
            ("a.yaml".into(), Some("two".into())),
            ("README.md".into(), None),
        ]);
        assert_eq!(r.commit, third);
        let at_first = r.resolve(&first).expect("first kept");
        let at_second = r.resolve(&second[..7]).expect("abbreviated");
        assert_eq!(r.resolve(&r.default_branch.clone()), Some(Revision::Head));
        assert!(!r.files_at(at_first).contains_key("a.yaml"));
        assert_eq!(
            r.files_at(at_second).get("a.yaml").map(String::as_str),
            Some("one")
        );
        assert!(r.files_at(at_second).contains_key("README.md"));
        assert_eq!(r.parent(Revision::Head), Some(at_second));
        let changes = r.changes(Some(at_first), Revision::Head);
        let kinds: Vec<_> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.change))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("README.md", ChangeType::Delete),
                ("a.yaml", ChangeType::Add)
            ]
        );
        assert_eq!(r.changes(Some(at_second), Revision::Head).len(), 2);
        assert!(r.resolve("0000000").is_none());
    }

    #[test]
    fn history_is_bounded() {
        let mut r = repo();
        let first = r.commit.clone();
        for i in 0..HISTORY_DEPTH + 5 {
            r.commit_edits(vec![("n".into(), Some(i.to_string()))]);
        }
        assert!(r.resolve(&first).is_none());
        assert_eq!(r.history.past.len(), HISTORY_DEPTH);
        let oldest = r.parent(Revision::Past(0));
        assert_eq!(oldest, None);
        assert_eq!(
            r.files_at(Revision::Past(0)).get("n").map(String::as_str),
            Some("4")
        );
    }
}
