//! Pull requests: opened with changed files on a source branch, updated
//! (a new source commit), merged (their files pushed to the target, the
//! default branch) or declined, each with the event Bitbucket sends for it
//! (Data Center `pr:*`, Cloud `pullrequest:*`); and the files at a pull
//! request's source commit, which the content endpoints serve and list.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::SimError;
use crate::dataset::{Repo, RepoRef};
use crate::history::next_commit;
use crate::pr_state::{MAX_KEPT, SimPullRequest};
use crate::push::{WebhookEvent, actor, find, not_found, now, repo_mut};
use crate::state::AppState;

/// The files a pull request changes: path → content (`None`: deleted).
pub type PullRequestFiles = Vec<(String, Option<String>)>;

fn no_pull_request(id: u64) -> SimError {
    SimError::Webhook(format!("no open pull request {id}"))
}

impl AppState {
    /// Opens a pull request from `source_branch` into `repo`'s default
    /// branch changing `files`; returns its id and `pr:opened` /
    /// `pullrequest:created`.
    pub(crate) fn open_pull_request(
        &self,
        repo: &RepoRef,
        source_branch: &str,
        title: &str,
        files: PullRequestFiles,
    ) -> Result<(u64, WebhookEvent), SimError> {
        self.open_fork_pull_request(repo, None, source_branch, title, files)
    }

    /// [`AppState::open_pull_request`] from `fork` (when given): its files
    /// are served in the fork at the source commit, not in `repo`. A fork
    /// that is not in the data set answers 404, as a repository the
    /// account cannot see.
    pub(crate) fn open_fork_pull_request(
        &self,
        repo: &RepoRef,
        fork: Option<RepoRef>,
        source_branch: &str,
        title: &str,
        files: PullRequestFiles,
    ) -> Result<(u64, WebhookEvent), SimError> {
        let target_branch = self.default_branch(repo)?;
        let mut prs = self.pull_requests.lock();
        if prs.len() >= MAX_KEPT {
            prs.retain(|p| p.open);
        }
        let id = prs.iter().map(|p| p.id).max().unwrap_or(0) + 1;
        let edits: BTreeMap<String, Option<String>> = files
            .into_iter()
            .map(|(p, c)| (p.trim_start_matches('/').to_owned(), c))
            .collect();
        let pr = SimPullRequest {
            id,
            repo: repo.clone(),
            fork,
            title: title.to_owned(),
            source_branch: source_branch.to_owned(),
            target_branch,
            commit: source_commit(source_branch, 0, &edits),
            edits,
            open: true,
            updates: 0,
        };
        prs.push(pr.clone());
        drop(prs);
        let key = match repo {
            RepoRef::Server { .. } => "pr:opened",
            RepoRef::Cloud { .. } => "pullrequest:created",
        };
        Ok((id, self.pull_request_event(&pr, key)?))
    }

    /// A new source commit changing `files` (on top of what the pull
    /// request changed); `pr:from_ref_updated` / `pullrequest:updated`.
    pub(crate) fn update_pull_request(
        &self,
        repo: &RepoRef,
        id: u64,
        files: PullRequestFiles,
    ) -> Result<WebhookEvent, SimError> {
        let pr = {
            let mut prs = self.pull_requests.lock();
            let pr = prs
                .iter_mut()
                .find(|p| p.id == id && p.open && p.repo == *repo)
                .ok_or_else(|| no_pull_request(id))?;
            for (path, content) in files {
                pr.edits
                    .insert(path.trim_start_matches('/').to_owned(), content);
            }
            pr.updates += 1;
            pr.commit = source_commit(&pr.source_branch, pr.updates, &pr.edits);
            pr.clone()
        };
        let key = match repo {
            RepoRef::Server { .. } => "pr:from_ref_updated",
            RepoRef::Cloud { .. } => "pullrequest:updated",
        };
        self.pull_request_event(&pr, key)
    }

    /// Merges: the files are pushed to the target branch (a new head
    /// commit). Returns the push event, then `pr:merged` /
    /// `pullrequest:fulfilled`.
    pub(crate) fn merge_pull_request(
        &self,
        repo: &RepoRef,
        id: u64,
    ) -> Result<(WebhookEvent, WebhookEvent), SimError> {
        let pr = self.close(repo, id)?;
        let edits: Vec<(String, Option<String>)> = pr.edits.clone().into_iter().collect();
        let (from, to) = self
            .edit_dataset(|dataset| Some(repo_mut(dataset, repo)?.commit_edits(edits)))
            .ok_or_else(|| not_found(repo))?;
        let mut push = self.push_event(repo, &pr.target_branch, &from, &to)?;
        push.commit = Some(to);
        let key = match repo {
            RepoRef::Server { .. } => "pr:merged",
            RepoRef::Cloud { .. } => "pullrequest:fulfilled",
        };
        Ok((push, self.pull_request_event(&pr, key)?))
    }

    /// Declines: `pr:declined` / `pullrequest:rejected`.
    pub(crate) fn decline_pull_request(
        &self,
        repo: &RepoRef,
        id: u64,
    ) -> Result<WebhookEvent, SimError> {
        let pr = self.close(repo, id)?;
        let key = match repo {
            RepoRef::Server { .. } => "pr:declined",
            RepoRef::Cloud { .. } => "pullrequest:rejected",
        };
        self.pull_request_event(&pr, key)
    }

    fn close(&self, repo: &RepoRef, id: u64) -> Result<SimPullRequest, SimError> {
        let mut prs = self.pull_requests.lock();
        let pr = prs
            .iter_mut()
            .find(|p| p.id == id && p.open && p.repo == *repo)
            .ok_or_else(|| no_pull_request(id))?;
        pr.open = false;
        Ok(pr.clone())
    }

    /// The paths pull request `id` of `repo` changes; `None`: no such one.
    pub(crate) fn pull_request_paths(&self, repo: &RepoRef, id: u64) -> Option<Vec<String>> {
        self.pull_requests
            .lock()
            .iter()
            .find(|p| p.id == id && p.repo == *repo)
            .map(|p| p.edits.keys().cloned().collect())
    }

    /// `path` at commit `at` when `at` is a pull request's source commit of
    /// `repo` (its files over the repository's head): `Some(None)` when
    /// the file is not there; `None` when `at` is no such commit.
    pub(crate) fn pull_request_file(
        &self,
        repo: &Repo,
        at: &str,
        path: &str,
    ) -> Option<Option<String>> {
        let prs = self.pull_requests.lock();
        let pr = prs.iter().find(|p| is_source_of(p, repo, at))?;
        let path = path.trim_start_matches('/');
        Some(match pr.edits.get(path) {
            Some(edit) => edit.clone(),
            None => repo.files.get(path).cloned(),
        })
    }

    /// Every file of `repo` at commit `at` when `at` is a pull request's
    /// source commit there (its files over the repository's head); `None`
    /// when `at` is no such commit.
    pub(crate) fn pull_request_tree(
        &self,
        repo: &Repo,
        at: &str,
    ) -> Option<BTreeMap<String, String>> {
        let prs = self.pull_requests.lock();
        let pr = prs.iter().find(|p| is_source_of(p, repo, at))?;
        let mut files = repo.files.clone();
        for (path, edit) in &pr.edits {
            match edit {
                Some(content) => files.insert(path.clone(), content.clone()),
                None => files.remove(path),
            };
        }
        Some(files)
    }

    fn pull_request_event(
        &self,
        pr: &SimPullRequest,
        key: &'static str,
    ) -> Result<WebhookEvent, SimError> {
        let repository = self.repo_json(&pr.repo)?;
        let source = match &pr.fork {
            None => repository.clone(),
            Some(fork) => self
                .repo_json(fork)
                .unwrap_or_else(|_| self.unknown_repo_json(fork)),
        };
        let head = find(&self.dataset(), &pr.repo)
            .map(|r| r.commit.clone())
            .ok_or_else(|| not_found(&pr.repo))?;
        let state = if pr.open { "OPEN" } else { "MERGED" };
        let body = match pr.repo {
            RepoRef::Server { .. } => {
                let side = |branch: &str, commit: &str, repository: &Value| json!({"id": format!("refs/heads/{branch}"), "displayId": branch, "latestCommit": commit, "repository": repository});
                json!({
                    "eventKey": key,
                    "date": now(),
                    "actor": actor(),
                    "pullRequest": {
                        "id": pr.id,
                        "version": pr.updates,
                        "title": pr.title,
                        "state": state,
                        "open": pr.open,
                        "fromRef": side(&pr.source_branch, &pr.commit, &source),
                        "toRef": side(&pr.target_branch, &head, &repository),
                    },
                })
            }
            RepoRef::Cloud { .. } => {
                let side = |branch: &str, commit: &str, repository: &Value| json!({"branch": {"name": branch}, "commit": {"hash": commit, "type": "commit"}, "repository": repository});
                json!({
                    "actor": actor(),
                    "repository": repository,
                    "pullrequest": {
                        "id": pr.id,
                        "title": pr.title,
                        "state": state,
                        "source": side(&pr.source_branch, &pr.commit, &source),
                        "destination": side(&pr.target_branch, &head, &repository),
                    },
                })
            }
        };
        Ok(WebhookEvent {
            key,
            body: body.to_string().into_bytes(),
            commit: Some(pr.commit.clone()),
        })
    }
}

impl AppState {
    /// A repository outside the data set, as an event names it.
    fn unknown_repo_json(&self, repo: &RepoRef) -> Value {
        let base = &self.base_url;
        match repo {
            RepoRef::Server { project, slug } => json!({
                "slug": slug,
                "name": slug,
                "project": {"key": project},
                "links": {"self": [{"href": format!("{base}/projects/{project}/repos/{slug}/browse")}]},
            }),
            RepoRef::Cloud { slug } => {
                let ws = self.dataset().cloud.slug.clone();
                json!({
                    "type": "repository",
                    "slug": slug,
                    "name": slug,
                    "full_name": format!("{ws}/{slug}"),
                    "workspace": {"slug": ws},
                    "links": {"html": {"href": format!("{base}/{ws}/{slug}")}},
                })
            }
        }
    }
}

/// Whether `at` is `pr`'s source commit in `repo`: a fork's files are in
/// the fork only.
fn is_source_of(pr: &SimPullRequest, repo: &Repo, at: &str) -> bool {
    !at.is_empty()
        && pr.commit.starts_with(at)
        && match pr.fork.as_ref().unwrap_or(&pr.repo) {
            RepoRef::Server { project, slug } => *project == repo.project_key && *slug == repo.slug,
            RepoRef::Cloud { slug } => *slug == repo.slug,
        }
}

/// A source commit's hash: from the branch, the update and the files.
fn source_commit(branch: &str, update: u64, edits: &BTreeMap<String, Option<String>>) -> String {
    let edits: Vec<(String, Option<String>)> =
        edits.iter().map(|(p, c)| (p.clone(), c.clone())).collect();
    next_commit(&format!("{branch}\0{update}"), &edits)
}

/// A Data Center change or a Cloud diffstat entry for `path`.
pub(crate) fn change_json(repo: &RepoRef, path: &str) -> Value {
    match repo {
        RepoRef::Server { .. } => {
            json!({"path": {"toString": path, "components": path.split('/').collect::<Vec<_>>()}, "type": "MODIFY"})
        }
        RepoRef::Cloud { .. } => {
            json!({"status": "modified", "old": {"path": path}, "new": {"path": path}})
        }
    }
}
