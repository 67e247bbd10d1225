//! Changes a developer makes (a push to a file, a push to another branch,
//! a rename), applied to the served data set, and the webhook event
//! Bitbucket sends for each, signed as Bitbucket signs it
//! (`X-Hub-Signature: sha256=<HMAC-SHA256 of the body>`).

use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::SimError;
use crate::dataset::{Dataset, Repo, RepoRef};
use crate::history::next_commit;
use crate::rng::fnv1a;
use crate::state::AppState;
use crate::{cloud_api, server_api};

/// The webhook Bitbucket sends for a change.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    /// `X-Event-Key`.
    pub key: &'static str,
    pub body: Vec<u8>,
    /// The new head commit, when files changed.
    pub commit: Option<String>,
}

impl WebhookEvent {
    /// `sha256=<hex>`: the `X-Hub-Signature` for `secret`.
    pub fn signature(&self, secret: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&self.body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// POSTs the event to `url` (loopback only), signed with `secret` when
    /// given; returns the HTTP status.
    pub async fn deliver(&self, url: &str, secret: Option<&str>) -> Result<u16, SimError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| SimError::Webhook(format!("'{url}' is not a URL: {e}")))?;
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if !loopback {
            return Err(SimError::Webhook(format!(
                "'{url}' is not on loopback; the simulator sends webhooks to this machine only"
            )));
        }
        let mut request = reqwest::Client::new()
            .post(parsed)
            .header("Content-Type", "application/json")
            .header("X-Event-Key", self.key)
            .header("X-Request-Id", format!("{:016x}", fnv1a(&self.body)))
            .body(self.body.clone());
        if let Some(secret) = secret {
            request = request.header("X-Hub-Signature", self.signature(secret));
        }
        let response = request
            .send()
            .await
            .map_err(|e| SimError::Webhook(format!("delivering to {url} failed: {e}")))?;
        Ok(response.status().as_u16())
    }
}

pub(crate) fn not_found(repo: &RepoRef) -> SimError {
    SimError::Webhook(format!("no such repository: {repo:?}"))
}

impl AppState {
    /// Writes `content` to `path` on the default branch of `repo` (a new
    /// head commit) and returns the push event.
    pub(crate) fn push_file(
        &self,
        repo: &RepoRef,
        path: &str,
        content: &str,
    ) -> Result<WebhookEvent, SimError> {
        self.push_edit(repo, path, Some(content))
    }

    /// Deletes `path` from the default branch of `repo` (a new head commit)
    /// and returns the push event; an error when there is no such file.
    pub(crate) fn delete_file(&self, repo: &RepoRef, path: &str) -> Result<WebhookEvent, SimError> {
        let exists = find(&self.dataset(), repo)
            .ok_or_else(|| not_found(repo))?
            .file(path)
            .is_some();
        if !exists {
            return Err(SimError::Webhook(format!(
                "cannot delete {path} from {repo:?}: no such file"
            )));
        }
        self.push_edit(repo, path, None)
    }

    fn push_edit(
        &self,
        repo: &RepoRef,
        path: &str,
        content: Option<&str>,
    ) -> Result<WebhookEvent, SimError> {
        let path = path.trim_start_matches('/').to_owned();
        let (from, to) = self
            .edit_dataset(|dataset| {
                let found = repo_mut(dataset, repo)?;
                Some(found.commit_edits(vec![(path, content.map(str::to_owned))]))
            })
            .ok_or_else(|| not_found(repo))?;
        let branch = self.default_branch(repo)?;
        let mut event = self.push_event(repo, &branch, &from, &to)?;
        event.commit = Some(to);
        Ok(event)
    }

    /// Makes `branch` the default branch of `repo`. Its head is a new commit
    /// with the same files (another branch's head), so a check of the
    /// latest commit sees the change too. Returns the new head commit.
    pub(crate) fn set_default_branch(
        &self,
        repo: &RepoRef,
        branch: &str,
    ) -> Result<String, SimError> {
        let branch = branch.trim().trim_start_matches("refs/heads/");
        if branch.is_empty() || branch.contains(char::is_whitespace) {
            return Err(SimError::Webhook(format!(
                "{branch:?} is not a branch name"
            )));
        }
        self.edit_dataset(|dataset| {
            let found = repo_mut(dataset, repo)?;
            branch.clone_into(&mut found.default_branch);
            Some(found.commit_edits(Vec::new()).1)
        })
        .ok_or_else(|| not_found(repo))
    }

    /// A push to `branch` that changes nothing the simulator serves (a
    /// feature branch).
    pub(crate) fn push_branch(
        &self,
        repo: &RepoRef,
        branch: &str,
    ) -> Result<WebhookEvent, SimError> {
        let from = next_commit(branch, &[(String::new(), Some("from".into()))]);
        let to = next_commit(branch, &[(String::new(), Some("to".into()))]);
        self.push_event(repo, branch, &from, &to)
    }

    /// Renames `repo` (its id stays) and returns Data Center's
    /// `repo:modified` or Cloud's `repo:updated`.
    pub(crate) fn rename(&self, repo: &RepoRef, new_slug: &str) -> Result<WebhookEvent, SimError> {
        let before = self.repo_json(repo)?;
        let renamed = self.edit_dataset(|dataset| match repo {
            RepoRef::Server { project, slug } => {
                dataset.rename_server_repo(project, slug, new_slug)
            }
            RepoRef::Cloud { slug } => dataset.rename_cloud_repo(slug, new_slug),
        });
        if !renamed {
            return Err(SimError::Webhook(format!(
                "cannot rename {repo:?} to {new_slug}: no such repository, or the slug is taken"
            )));
        }
        let after_ref = match repo {
            RepoRef::Server { project, .. } => RepoRef::Server {
                project: project.clone(),
                slug: new_slug.to_owned(),
            },
            RepoRef::Cloud { .. } => RepoRef::Cloud {
                slug: new_slug.to_owned(),
            },
        };
        let after = self.repo_json(&after_ref)?;
        let (key, body) = match repo {
            RepoRef::Server { .. } => (
                "repo:modified",
                json!({"eventKey": "repo:modified", "date": now(), "actor": actor(), "old": before, "new": after}),
            ),
            RepoRef::Cloud { .. } => (
                "repo:updated",
                json!({
                    "actor": actor(),
                    "repository": after,
                    "changes": {
                        "full_name": {"old": before["full_name"], "new": after["full_name"]},
                        "slug": {"old": before["slug"], "new": after["slug"]},
                    },
                }),
            ),
        };
        Ok(WebhookEvent {
            key,
            body: body.to_string().into_bytes(),
            commit: None,
        })
    }

    pub(crate) fn default_branch(&self, repo: &RepoRef) -> Result<String, SimError> {
        let dataset = self.dataset();
        find(&dataset, repo)
            .map(|r| r.default_branch.clone())
            .ok_or_else(|| not_found(repo))
    }

    /// The repository as the REST API (and so the webhook payload) shows it.
    pub(crate) fn repo_json(&self, repo: &RepoRef) -> Result<Value, SimError> {
        let dataset = self.dataset();
        match repo {
            RepoRef::Server { project, slug } => {
                let p = dataset
                    .server_project(project)
                    .ok_or_else(|| not_found(repo))?;
                let r = dataset
                    .server_repo(project, slug)
                    .ok_or_else(|| not_found(repo))?;
                Ok(server_api::repo_json(&self.base_url, p, r))
            }
            RepoRef::Cloud { slug } => {
                let r = dataset.cloud_repo(slug).ok_or_else(|| not_found(repo))?;
                let mut value = cloud_api::repo_json(&self.base_url, &dataset, r);
                value["workspace"] =
                    json!({"slug": dataset.cloud.slug, "uuid": dataset.cloud.uuid});
                Ok(value)
            }
        }
    }

    pub(crate) fn push_event(
        &self,
        repo: &RepoRef,
        branch: &str,
        from: &str,
        to: &str,
    ) -> Result<WebhookEvent, SimError> {
        let mut repository = self.repo_json(repo)?;
        // As Bitbucket sends them: Data Center's payload has no
        // `defaultBranch`, Cloud's push payload no `mainbranch`.
        if let Some(fields) = repository.as_object_mut() {
            fields.remove("defaultBranch");
            fields.remove("mainbranch");
        }
        let (key, body) = match repo {
            RepoRef::Server { .. } => (
                "repo:refs_changed",
                json!({
                    "eventKey": "repo:refs_changed",
                    "date": now(),
                    "actor": actor(),
                    "repository": repository,
                    "changes": [{
                        "ref": {"id": format!("refs/heads/{branch}"), "displayId": branch, "type": "BRANCH"},
                        "refId": format!("refs/heads/{branch}"),
                        "fromHash": from,
                        "toHash": to,
                        "type": "UPDATE",
                    }],
                }),
            ),
            RepoRef::Cloud { .. } => (
                "repo:push",
                json!({
                    "actor": actor(),
                    "repository": repository,
                    "push": {"changes": [{
                        "old": {"type": "branch", "name": branch, "target": {"type": "commit", "hash": from}},
                        "new": {"type": "branch", "name": branch, "target": {"type": "commit", "hash": to}},
                        "created": false, "closed": false, "forced": false, "truncated": false,
                    }]},
                }),
            ),
        };
        Ok(WebhookEvent {
            key,
            body: body.to_string().into_bytes(),
            commit: None,
        })
    }
}

pub(crate) fn find<'a>(dataset: &'a Dataset, repo: &RepoRef) -> Option<&'a Repo> {
    match repo {
        RepoRef::Server { project, slug } => dataset.server_repo(project, slug),
        RepoRef::Cloud { slug } => dataset.cloud_repo(slug),
    }
}

pub(crate) fn repo_mut<'a>(dataset: &'a mut Dataset, repo: &RepoRef) -> Option<&'a mut Repo> {
    match repo {
        RepoRef::Server { project, slug } => dataset.server_repo_mut(project, slug),
        RepoRef::Cloud { slug } => dataset.cloud_repo_mut(slug),
    }
}

pub(crate) fn actor() -> Value {
    json!({"name": "sim", "displayName": "bitbucket-sim", "type": "NORMAL"})
}

/// Milliseconds since the epoch would tie the body to the clock; a fixed
/// ISO date keeps events reproducible.
pub(crate) fn now() -> &'static str {
    "2026-01-01T00:00:00+0000"
}
