//! `catalog.providers.bitbucketServer`: Backstage's Bitbucket Server
//! provider keys (`host`, `catalogPath`, `filters`, `schedule`) plus ours.

use regex::Regex;

use super::provider;
use super::provider::ProviderSettings;
use super::{CatalogSettings, ConfigError, Ctx, ListingSchedule};
use crate::integrations::Integrations;

/// One `catalog.providers.bitbucketServer` entry.
#[derive(Debug, Clone)]
pub struct ServerProviderConfig {
    pub id: String,
    pub host: String,
    pub filters: ServerFilters,
    /// The keys both flavours have (`config.shared.schedule`).
    pub shared: ProviderSettings,
    /// `listingSchedule`: the listing-only sweep; `None`: off. On by
    /// default when events arrive (`webhooks`, or the integration's
    /// `webhookSecret`), since Data Center sends none for deletions.
    pub listing_schedule: Option<ListingSchedule>,
}

impl provider::ProviderId for ServerProviderConfig {
    fn provider_id(&self) -> &str {
        &self.id
    }
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

pub(super) fn server_providers(
    ctx: &mut Ctx<'_>,
    integrations: &Integrations,
    catalog: &CatalogSettings,
) -> Result<Vec<ServerProviderConfig>, ConfigError> {
    super::provider::providers(
        ctx,
        "catalog.providers.bitbucketServer",
        "host",
        |ctx, id, key, raw| server_provider(ctx, id, key, raw, integrations, catalog),
    )
}

fn server_provider(
    ctx: &mut Ctx<'_>,
    id: String,
    key: &str,
    mut raw: raw::ServerProvider,
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
        return Err(ctx.error(
            &format!("{key}.host"),
            format!(
                "no Bitbucket Server integration for host '{}' ({hint})",
                raw.host
            ),
        ));
    }
    let filters = raw.filters.take().unwrap_or_default();
    let project_key = provider::filter_regex(ctx, key, "projectKey", filters.project_key, false)?;
    let repo_slug = provider::filter_regex(ctx, key, "repoSlug", filters.repo_slug, false)?;
    // Pushes name branches without `refs/heads/`; so does the filter.
    let branch = filters
        .branch
        .map(|b| {
            let b = b.trim();
            b.strip_prefix("refs/heads/").unwrap_or(b).to_owned()
        })
        .filter(|b| !b.is_empty());
    let has_secret = integrations
        .server(&raw.host)
        .is_some_and(|i| i.webhooks.secret.is_some());
    let shared = raw.settings(ctx, key, has_secret, "bitbucketServer", catalog)?;
    let listing_schedule = match raw.listing_schedule.take() {
        Some(written) => written.into_schedule(),
        None => (has_secret || shared.webhooks.is_some()).then(ListingSchedule::default),
    };
    Ok(ServerProviderConfig {
        id,
        host: raw.host,
        filters: ServerFilters {
            project_key,
            repo_slug,
            skip_archived_repos: filters.skip_archived_repos.is_some_and(|b| b.0),
            branch,
        },
        shared,
        listing_schedule,
    })
}

pub(super) mod raw {
    use serde::Deserialize;

    use crate::config::loose::LooseBool;
    use crate::config::provider::raw::provider_entry;

    provider_entry!(ServerProvider {
        host: String,
        filters: Option<Filters>,
        listing_schedule: Option<crate::config::schedule::RawListingSchedule>,
    });

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct Filters {
        pub project_key: Option<String>,
        pub repo_slug: Option<String>,
        pub skip_archived_repos: Option<LooseBool>,
        pub branch: Option<String>,
    }
}
