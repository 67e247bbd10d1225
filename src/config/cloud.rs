//! `catalog.providers.bitbucketCloud`: Backstage's Bitbucket Cloud provider
//! keys (`workspace`, `catalogPath`, `filters`, `schedule`), plus our
//! `pagelen`, `concurrency` and `host`.

use super::provider;
use super::provider::ProviderSettings;
use super::{CatalogSettings, ConfigError, Ctx};
use crate::integrations::Integrations;
use regex::Regex;

/// Results per page unless configured: Cloud's maximum.
pub(crate) const DEFAULT_PAGELEN: u32 = 100;

/// One `catalog.providers.bitbucketCloud` entry.
#[derive(Debug, Clone)]
pub struct CloudProviderConfig {
    pub id: String,
    pub workspace: String,
    /// The `integrations.bitbucketCloud` host whose API and credentials it uses.
    pub host: String,
    pub filters: CloudFilters,
    pub pagelen: u32,
    /// The keys both flavours have (`config.shared.schedule`).
    pub shared: ProviderSettings,
}

impl provider::ProviderId for CloudProviderConfig {
    fn provider_id(&self) -> &str {
        &self.id
    }
}

#[derive(Debug, Clone, Default)]
pub struct CloudFilters {
    /// Must match the whole project key (Backstage's Cloud semantics).
    pub project_key: Option<Regex>,
    /// Must match the whole slug.
    pub repo_slug: Option<Regex>,
}

pub(super) fn cloud_providers(
    ctx: &mut Ctx<'_>,
    integrations: &Integrations,
    catalog: &CatalogSettings,
) -> Result<Vec<CloudProviderConfig>, ConfigError> {
    super::provider::providers(
        ctx,
        "catalog.providers.bitbucketCloud",
        "workspace",
        |ctx, id, key, raw| cloud_provider(ctx, id, key, raw, integrations, catalog),
    )
}

fn cloud_provider(
    ctx: &mut Ctx<'_>,
    id: String,
    key: &str,
    mut raw: raw::CloudProvider,
    integrations: &Integrations,
    catalog: &CatalogSettings,
) -> Result<CloudProviderConfig, ConfigError> {
    let workspace = raw.workspace.trim().to_owned();
    if workspace.is_empty() || workspace.contains(['/', '?', '#', ' ']) {
        return Err(ctx.error(
            &format!("{key}.workspace"),
            format!(
                "'{workspace}' is not a workspace slug; write the workspace ID as in https://bitbucket.org/<workspace>/"
            ),
        ));
    }
    let host = cloud_host(ctx, key, raw.host.take(), integrations)?;
    let filters = raw.filters.take().unwrap_or_default();
    let filters = CloudFilters {
        project_key: super::provider::filter_regex(
            ctx,
            key,
            "projectKey",
            filters.project_key,
            true,
        )?,
        repo_slug: provider::filter_regex(ctx, key, "repoSlug", filters.repo_slug, true)?,
    };
    let has_secret = integrations
        .cloud(&host)
        .is_some_and(|i| i.webhooks.secret.is_some());
    let shared = raw.settings(ctx, key, has_secret, "bitbucketCloud", catalog)?;
    Ok(CloudProviderConfig {
        id,
        workspace,
        host,
        filters,
        pagelen: raw.pagelen.map_or(DEFAULT_PAGELEN, |n| n.0),
        shared,
    })
}

/// The Cloud integration a provider uses: `host` when given, else
/// `bitbucket.org` (as Backstage), else the only one configured.
fn cloud_host(
    ctx: &Ctx<'_>,
    key: &str,
    host: Option<String>,
    integrations: &Integrations,
) -> Result<String, ConfigError> {
    let known: Vec<&str> = integrations
        .bitbucket_cloud
        .iter()
        .map(|i| i.host.as_str())
        .collect();
    let found =
        match &host {
            Some(host) => integrations.cloud(host.trim()),
            None => integrations.cloud("bitbucket.org").or(
                match integrations.bitbucket_cloud.as_slice() {
                    [only] => Some(only),
                    _ => None,
                },
            ),
        };
    found.map(|i| i.host.clone()).ok_or_else(|| {
        ctx.error(
            &format!("{key}.host"),
            match host {
                Some(host) => format!(
                    "no Bitbucket Cloud integration for host '{host}' (known hosts: {}); add an integrations.bitbucketCloud entry or fix the host",
                    known.join(", ")
                ),
                None => format!(
                    "several integrations.bitbucketCloud entries and none for bitbucket.org ({}); set host to the one this provider uses",
                    known.join(", ")
                ),
            },
        )
    })
}

/// The shapes as written in the file.
pub(super) mod raw {
    use serde::{Deserialize, Deserializer};

    use crate::bitbucket::cloud::MAX_PAGELEN;
    use crate::config::loose::bounded;
    use crate::config::provider::raw::provider_entry;

    provider_entry!(CloudProvider {
        workspace: String,
        host: Option<String>,
        filters: Option<CloudFilters>,
        pagelen: Option<Pagelen>,
    });

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct CloudFilters {
        pub project_key: Option<String>,
        pub repo_slug: Option<String>,
    }

    /// `pagelen`: at most Bitbucket Cloud's maximum page size.
    pub(crate) struct Pagelen(pub u32);

    impl<'de> Deserialize<'de> for Pagelen {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let value = serde_json::Value::deserialize(deserializer)?;
            bounded(&value, 1, MAX_PAGELEN as usize)
                .map(|n| Self(n as u32)) // at most MAX_PAGELEN, a u32
                .map_err(|message| {
                    serde::de::Error::custom(format!(
                        "{message} (Bitbucket Cloud's maximum page size)"
                    ))
                })
        }
    }
}
