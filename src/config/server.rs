//! `catalog.providers.bitbucketServer`: Backstage's Bitbucket Server
//! provider keys (`host`, `catalogPath`, `filters`, `schedule`) plus ours.

use regex::Regex;

use super::loose::loose_bool;
use super::provider::{DeletionGuard, TargetScope, WebhookRegistration};
use super::{CatalogSettings, ConfigError, Ctx, Schedule};
use crate::integrations::Integrations;

/// One `catalog.providers.bitbucketServer` entry.
#[derive(Debug, Clone)]
pub struct ServerProviderConfig {
    pub id: String,
    pub host: String,
    /// Without a leading slash, e.g. `catalog-info.yaml`.
    pub catalog_path: String,
    pub filters: ServerFilters,
    pub schedule: Schedule,
    pub concurrency: usize,
    /// A run that would remove more than this share of the provider's
    /// entities is held instead of applied (see [`DeletionGuard`]).
    pub deletion_guard: DeletionGuard,
    /// Which files Location targets and placeholders may read.
    pub target_scope: TargetScope,
    /// The catalog-wide rules and limits, shared by every provider.
    pub catalog: CatalogSettings,
    /// `webhooks.url`: keep a webhook pointing at this daemon.
    pub webhooks: Option<WebhookRegistration>,
}

#[derive(Debug, Clone, Default)]
pub struct ServerFilters {
    /// Matches anywhere in the key (Backstage's Server semantics).
    pub project_key: Option<Regex>,
    /// Matches anywhere in the slug.
    pub repo_slug: Option<Regex>,
    pub skip_archived_repos: bool,
    /// Read the catalog file from this branch instead of the default one.
    pub branch: Option<String>,
}

impl Ctx<'_> {
    pub(super) fn server_providers(
        &mut self,
        integrations: &Integrations,
        catalog: &CatalogSettings,
    ) -> Result<Vec<ServerProviderConfig>, ConfigError> {
        self.providers(
            "catalog.providers.bitbucketServer",
            "host",
            |ctx, id, key, raw| ctx.server_provider(id, key, raw, integrations, catalog),
        )
    }

    fn server_provider(
        &mut self,
        id: String,
        key: &str,
        raw: raw::ServerProvider,
        integrations: &Integrations,
        catalog: &CatalogSettings,
    ) -> Result<ServerProviderConfig, ConfigError> {
        if integrations.server(&raw.host).is_none() {
            let known = integrations.server_hosts();
            let hint = if known.is_empty() {
                "no integrations.bitbucketServer entries are configured; add one with this host"
                    .to_owned()
            } else {
                format!(
                    "known hosts: {}; add an integrations.bitbucketServer entry or fix the host",
                    known.join(", ")
                )
            };
            return Err(self.error(
                &format!("{key}.host"),
                format!(
                    "no Bitbucket Server integration for host '{}' ({hint})",
                    raw.host
                ),
            ));
        }
        let catalog_path = self.catalog_path(key, raw.catalog_path)?;
        let filters = raw.filters.unwrap_or_default();
        let project_key = self.filter_regex(key, "projectKey", filters.project_key, false)?;
        let repo_slug = self.filter_regex(key, "repoSlug", filters.repo_slug, false)?;
        let skip_archived_repos = match filters.skip_archived_repos {
            None => false,
            Some(v) => loose_bool(&v).ok_or_else(|| {
                self.error(
                    &format!("{key}.filters.skipArchivedRepos"),
                    "expected true or false",
                )
            })?,
        };
        // Pushes name branches without `refs/heads/`; so does the filter.
        let branch = filters
            .branch
            .map(|b| {
                let b = b.trim();
                b.strip_prefix("refs/heads/").unwrap_or(b).to_owned()
            })
            .filter(|b| !b.is_empty());
        let schedule = self.schedule(&format!("{key}.schedule"), raw.schedule)?;
        let concurrency = self.concurrency(key, raw.concurrency)?;
        let deletion_guard = self.deletion_guard(key, raw.deletion_threshold)?;
        let target_scope = self.target_scope(key, raw.target_scope)?;
        let has_secret = integrations
            .server(&raw.host)
            .is_some_and(|i| i.webhooks.secret.is_some());
        let webhooks =
            self.webhook_registration(key, raw.webhooks, has_secret, "bitbucketServer")?;
        Ok(ServerProviderConfig {
            id,
            webhooks,
            host: raw.host,
            deletion_guard,
            target_scope,
            catalog_path,
            filters: ServerFilters {
                project_key,
                repo_slug,
                skip_archived_repos,
                branch,
            },
            schedule,
            concurrency,
            catalog: catalog.clone(),
        })
    }
}

mod raw {
    use serde::Deserialize;
    use serde_json::Value;

    use crate::config::provider::raw::provider_entry;

    provider_entry!(ServerProvider {
        host: String,
        filters: Option<Filters>,
    });

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Filters {
        pub project_key: Option<String>,
        pub repo_slug: Option<String>,
        pub skip_archived_repos: Option<Value>,
        pub branch: Option<String>,
    }
}
