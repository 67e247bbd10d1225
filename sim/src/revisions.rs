//! A repository's commits as the APIs name them: which commit a ref
//! names, its parent, the files at it, and what changed between two.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::dataset::Repo;
use crate::history::*;

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
