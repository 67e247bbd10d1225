//! The open pull requests' previews: what each merge would change, kept
//! in memory until the pull request is merged or declined (a restart
//! forgets them; the next update of a pull request checks it again).
//! Bounded: past [`MAX_PREVIEWS`], the oldest goes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

/// Previews kept at most, daemon-wide.
pub(crate) const MAX_PREVIEWS: usize = 1_000;

/// One entity the merge would add.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Added {
    pub entity_ref: String,
    pub entity: serde_json::Value,
}

/// One entity the merge would change, and which fields.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Changed {
    pub entity_ref: String,
    /// Paths that differ: `spec.owner`, `metadata.description`, `kind`.
    pub fields: Vec<String>,
    pub entity: serde_json::Value,
}

/// One problem of the pull request, at its file and line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PreviewProblem {
    /// Relative to the repository's root; empty when no file is meant.
    pub path: String,
    pub line: u32,
    /// 1-based; 1 when unknown.
    pub column: u32,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_ref: Option<String>,
    pub message: String,
}

/// What merging one pull request would do to the catalog.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Preview {
    pub provider: String,
    /// Data Center: the project key; Cloud: the workspace.
    pub project: String,
    pub repository: String,
    pub pull_request: u64,
    pub title: String,
    pub source_branch: String,
    pub target_branch: String,
    pub commit: String,
    /// `pass` or `fail`.
    pub result: &'static str,
    #[serde(with = "crate::rfc3339")]
    pub checked_at: DateTime<Utc>,
    /// The catalog files the pull request changes, as read.
    pub files: Vec<String>,
    /// Every entity ref the repository would serve after the merge.
    pub entities: Vec<String>,
    pub added: Vec<Added>,
    pub changed: Vec<Changed>,
    pub removed: Vec<String>,
    pub problems: Vec<PreviewProblem>,
    /// `insights`, `buildStatus`, or why nothing was posted.
    pub posted: String,
}

impl Preview {
    pub(crate) fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Which pull request a preview is of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PreviewKey {
    provider: String,
    project: String,
    repository: String,
    pull_request: u64,
}

impl PreviewKey {
    /// Project and repository compare without case, as Bitbucket's do.
    pub(crate) fn new(provider: &str, project: &str, repository: &str, pull_request: u64) -> Self {
        Self {
            provider: provider.to_owned(),
            project: project.to_lowercase(),
            repository: repository.to_lowercase(),
            pull_request,
        }
    }
}

/// One open preview, for the status page.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PreviewSummary {
    pub provider: String,
    pub project: String,
    pub repository: String,
    pub pull_request: u64,
    pub title: String,
    pub result: &'static str,
    /// `/api/catalog/previews/...`
    pub path: String,
}

/// The open previews, shared by the event reads and the API.
#[derive(Debug, Default)]
pub(crate) struct Previews {
    open: Mutex<HashMap<PreviewKey, Arc<Preview>>>,
    /// Integrations already told that Code Insights is missing.
    warned: Mutex<HashSet<String>>,
}

impl Previews {
    pub(crate) fn insert(&self, preview: Preview) {
        let key = PreviewKey::new(
            &preview.provider,
            &preview.project,
            &preview.repository,
            preview.pull_request,
        );
        let mut open = self.open.lock();
        if open.len() >= MAX_PREVIEWS && !open.contains_key(&key) {
            let oldest = open
                .iter()
                .min_by_key(|(_, p)| p.checked_at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                open.remove(&oldest);
            }
        }
        open.insert(key, Arc::new(preview));
    }

    pub(crate) fn get(&self, key: &PreviewKey) -> Option<Arc<Preview>> {
        self.open.lock().get(key).cloned()
    }

    pub(crate) fn remove(&self, key: &PreviewKey) -> bool {
        self.open.lock().remove(key).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.open.lock().len()
    }

    /// The open previews, newest first, at most `limit`.
    pub(crate) fn summaries(&self, limit: usize) -> Vec<PreviewSummary> {
        let mut open: Vec<Arc<Preview>> = self.open.lock().values().cloned().collect();
        open.sort_by_key(|p| std::cmp::Reverse(p.checked_at));
        open.into_iter()
            .take(limit)
            .map(|p| PreviewSummary {
                path: preview_path(&p.provider, &p.project, &p.repository, p.pull_request),
                provider: p.provider.clone(),
                project: p.project.clone(),
                repository: p.repository.clone(),
                pull_request: p.pull_request,
                title: p.title.clone(),
                result: p.result,
            })
            .collect()
    }

    /// `true` the first time for `integration`: say it once.
    pub(crate) fn first_warning(&self, integration: &str) -> bool {
        self.warned.lock().insert(integration.to_owned())
    }
}

/// The API path of a preview.
pub(crate) fn preview_path(provider: &str, project: &str, repository: &str, id: u64) -> String {
    let segment = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "/api/catalog/previews/{}/{}/{}/{id}",
        segment(provider),
        segment(project),
        segment(repository)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preview(id: u64, at: i64) -> Preview {
        Preview {
            provider: "p".into(),
            project: "PRJ".into(),
            repository: "svc".into(),
            pull_request: id,
            title: String::new(),
            source_branch: "f".into(),
            target_branch: "main".into(),
            commit: "c".into(),
            result: "pass",
            checked_at: DateTime::from_timestamp(at, 0).unwrap_or_default(),
            files: Vec::new(),
            entities: Vec::new(),
            added: Vec::new(),
            changed: Vec::new(),
            removed: Vec::new(),
            problems: Vec::new(),
            posted: String::new(),
        }
    }

    #[test]
    fn the_oldest_preview_goes_past_the_bound() {
        let previews = Previews::default();
        for id in 0..=MAX_PREVIEWS as u64 {
            previews.insert(preview(id, id as i64));
        }
        assert_eq!(previews.len(), MAX_PREVIEWS);
        assert!(
            previews
                .get(&PreviewKey::new("p", "prj", "SVC", 0))
                .is_none()
        );
        assert!(
            previews
                .get(&PreviewKey::new("p", "prj", "SVC", 1))
                .is_some()
        );
        assert!(previews.remove(&PreviewKey::new("p", "PRJ", "svc", 1)));
        assert_eq!(previews.summaries(5).len(), 5);
    }
}
