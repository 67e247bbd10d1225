//! Keeps the webhooks a provider's `webhooks.url` asks for: one per Data
//! Center project (8.8+; one per repository before that), one per Cloud
//! workspace, each with the integration's secret and only the events the
//! daemon acts on. Each is created or updated once per daemon lifetime (a
//! restart checks again, so a changed secret is carried over); what cannot
//! be done is a notice in the run's report, never a failed run.

use std::collections::HashSet;

use parking_lot::Mutex;
use serde_json::json;
use url::Url;

use crate::bitbucket::BitbucketError;
use crate::bitbucket::cloud::CloudClient;
use crate::bitbucket::server::ServerClient;
use crate::bitbucket::webhooks::subscribed;
use crate::integrations::Product;
use crate::secret::Secret;

/// The name (Cloud: description) the webhooks carry.
const HOOK_NAME: &str = "bitbucket-catalogd";

/// What this daemon has already made sure of.
#[derive(Debug, Default)]
pub(super) struct KeptHooks {
    /// Projects, repositories or workspaces whose webhook is in place (or
    /// that refused with 401/403: asking again would only cost requests).
    scopes: Mutex<HashSet<String>>,
    /// Whether this Data Center has project webhooks (8.8+), once asked.
    project_hooks: Mutex<Option<bool>>,
}

impl KeptHooks {
    fn pending(&self, scope: &str) -> bool {
        !self.scopes.lock().contains(scope)
    }

    fn done(&self, scope: String) {
        self.scopes.lock().insert(scope);
    }

    /// Records the outcome of one scope; `what`: "project P" etc.
    fn settle(
        &self,
        scope: String,
        what: &str,
        result: Result<(), BitbucketError>,
        notices: &mut Vec<String>,
        needs: &str,
    ) {
        match result {
            Ok(()) => self.done(scope),
            Err(err) => {
                let refused = err
                    .status()
                    .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403);
                notices.push(format!(
                    "cannot create or update the webhook of {what}: {err}{}",
                    if refused {
                        format!(" ({needs}; not retried until restart)")
                    } else {
                        " (retried next run)".to_owned()
                    }
                ));
                if refused {
                    self.done(scope);
                }
            }
        }
    }
}

/// `8.8` or later, from a version such as `8.19.0`.
fn has_project_hooks(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (8, 8)
}

/// Makes sure every project of `repos` (`(project, slug)`) has the webhook,
/// or every repository on Data Center before 8.8.
pub(super) async fn keep_server(
    kept: &KeptHooks,
    client: &ServerClient,
    target: &Url,
    secret: &Secret,
    pull_requests: bool,
    repos: &[(String, String)],
    notices: &mut Vec<String>,
) {
    let asked = *kept.project_hooks.lock();
    let project_hooks = match asked {
        Some(known) => known,
        None => match client.version().await {
            Ok(version) => {
                let known = version.as_deref().is_some_and(has_project_hooks);
                *kept.project_hooks.lock() = Some(known);
                known
            }
            Err(err) => {
                notices.push(format!(
                    "cannot tell Bitbucket's version, so no webhook was created this run: {err}"
                ));
                return;
            }
        },
    };
    let body = json!({
        "name": HOOK_NAME,
        "url": target.as_str(),
        "active": true,
        "events": subscribed(Product::Server, pull_requests),
        "configuration": {"secret": secret.expose()},
    });
    let mut scopes: Vec<(String, Option<String>)> = if project_hooks {
        let projects: std::collections::BTreeSet<&String> = repos.iter().map(|(p, _)| p).collect();
        projects.into_iter().map(|p| (p.clone(), None)).collect()
    } else {
        repos
            .iter()
            .map(|(p, s)| (p.clone(), Some(s.clone())))
            .collect()
    };
    scopes.retain(|(project, slug)| kept.pending(&server_scope(project, slug.as_deref())));
    for (project, slug) in scopes {
        let result = async {
            let existing = client.webhooks(&project, slug.as_deref()).await?;
            let id = existing
                .iter()
                .find(|h| h.url == target.as_str())
                .map(|h| h.id);
            client
                .save_webhook(&project, slug.as_deref(), id, &body)
                .await
        }
        .await;
        let what = match &slug {
            Some(slug) => format!("repository {project}/{slug}"),
            None => format!("project {project}"),
        };
        let needs = if slug.is_some() {
            "the token needs repository admin permission"
        } else {
            "the token needs project admin permission"
        };
        kept.settle(
            server_scope(&project, slug.as_deref()),
            &what,
            result,
            notices,
            needs,
        );
    }
}

fn server_scope(project: &str, slug: Option<&str>) -> String {
    match slug {
        Some(slug) => format!("repo:{}/{}", project.to_uppercase(), slug.to_lowercase()),
        None => format!("project:{}", project.to_uppercase()),
    }
}

/// Makes sure the workspace has the webhook.
pub(super) async fn keep_cloud(
    kept: &KeptHooks,
    client: &CloudClient,
    workspace: &str,
    target: &Url,
    secret: &Secret,
    pull_requests: bool,
    notices: &mut Vec<String>,
) {
    let scope = format!("workspace:{}", workspace.to_lowercase());
    if !kept.pending(&scope) {
        return;
    }
    let body = json!({
        "description": HOOK_NAME,
        "url": target.as_str(),
        "active": true,
        "secret": secret.expose(),
        "events": subscribed(Product::Cloud, pull_requests),
    });
    let result = async {
        let existing = client.workspace_hooks(workspace).await?;
        let uuid = existing
            .iter()
            .find(|h| h.url == target.as_str())
            .map(|h| h.uuid.clone());
        client
            .save_workspace_hook(workspace, uuid.as_deref(), &body)
            .await
    }
    .await;
    kept.settle(
        scope,
        &format!("workspace {workspace}"),
        result,
        notices,
        "the token needs workspace admin (webhooks) permission",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_webhooks_start_with_data_center_8_8() {
        assert!(has_project_hooks("8.8.0"));
        assert!(has_project_hooks("8.19.1"));
        assert!(has_project_hooks("9.0.0"));
        assert!(!has_project_hooks("8.7.3"));
        assert!(!has_project_hooks("7.21.0"));
        assert!(!has_project_hooks("garbage"));
    }
}
