//! What Server and Cloud providers share: how `catalog.providers.<flavour>`
//! lists them, and the keys both have (`catalogPath`, `filters` patterns,
//! `concurrency`, `deletionThreshold`, `targetScope`, `webhooks`).

use regex::Regex;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::catalog_glob::{CatalogGlob, GLOB_SYNTAX};
use super::{CatalogSettings, ConfigError, Ctx, Schedule};

/// The highest `concurrency` a provider may set.
pub(super) const MAX_CONCURRENCY: usize = 64;

/// The keys both flavours have, resolved: a key shared by Server and Cloud
/// providers is declared here and in [`raw::provider_entry`] only.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Without a leading slash, e.g. `catalog-info.yaml`, or the pattern.
    pub catalog_path: String,
    /// `catalogPath` as a glob (e.g. `**/catalog-info.yaml`); `None` for
    /// one file path.
    pub catalog_glob: Option<CatalogGlob>,
    pub schedule: Schedule,
    /// `concurrency`: at most this many concurrent catalog-file reads (and
    /// listing requests); `None` (the default): as many as the
    /// integration's adaptive limit and pace allow.
    pub concurrency: Option<usize>,
    /// A run that would remove more than this share of the provider's
    /// entities is held instead of applied (see [`DeletionGuard`]).
    pub deletion_guard: DeletionGuard,
    /// Which files Location targets and placeholders may read.
    pub target_scope: TargetScope,
    /// `webhooks.url`: keep a webhook pointing at this daemon.
    pub webhooks: Option<WebhookRegistration>,
    /// The catalog-wide rules and limits, shared by every provider.
    pub catalog: CatalogSettings,
    /// `withoutCatalogFile.generate`: a Component for each repository
    /// without a catalog file.
    pub generate: Option<super::generated::GenerateSettings>,
    /// `pullRequests.checks`: check pull requests into the branch read
    /// and report on them in Bitbucket (off by default).
    pub pull_request_checks: bool,
}

/// A provider's `webhooks`: the daemon creates (or updates) the webhooks
/// Bitbucket sends its events with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRegistration {
    /// Where Bitbucket reaches this daemon's event route
    /// (`<webhooks.url>/api/events/http/<bitbucketServer|bitbucketCloud>`).
    pub target: Url,
}

/// Where Location targets and `$text`/`$json`/`$yaml` placeholders of a
/// discovered file may lead (`targetScope`, ours): a repository author
/// must not pull in what the provider's filters exclude.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum TargetScope {
    /// Only files of the discovered file's own repository.
    #[default]
    Repository,
    /// Files of any repository the provider's filters match.
    Filters,
    /// Files of any repository on the provider's Bitbucket (what the daemon
    /// did before issue 14; only for trusted repository authors).
    Any,
}

/// Protection against runs that "succeed" with far fewer entities (a token
/// that lost permissions sees empty listings with 200).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeletionGuard {
    /// Largest share of current entities one run may remove (0–1).
    pub threshold: f64,
    /// Sources with fewer entities than this are not guarded.
    pub min_entities: usize,
}

impl TryFrom<String> for TargetScope {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.trim() {
            "repository" => Ok(TargetScope::Repository),
            "filters" => Ok(TargetScope::Filters),
            "any" => Ok(TargetScope::Any),
            other => Err(format!(
                "'{other}' is not a target scope; use repository (the default: targets and placeholders stay in the discovered file's repository), filters (any repository this provider's filters match) or any (any repository on this Bitbucket, as before the hardening)"
            )),
        }
    }
}

/// `catalogPath` without its leading `/`, checked to be a file path or a
/// glob that can match one.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct CatalogPath(pub(super) String, pub(super) Option<CatalogGlob>);

impl Default for CatalogPath {
    fn default() -> Self {
        Self("catalog-info.yaml".into(), None)
    }
}

impl TryFrom<String> for CatalogPath {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let path = text.trim().trim_start_matches('/').to_owned();
        if path.is_empty()
            || path.ends_with('/')
            || path.contains('"')
            || path
                .split('/')
                .any(|s| s == ".." || s == "." || s.is_empty())
        {
            return Err(format!(
                "'{path}' is not a file path inside the repository; write e.g. /catalog-info.yaml ({GLOB_SYNTAX})"
            ));
        }
        let glob = CatalogGlob::parse(&path).map_err(|why| format!("{why} ({GLOB_SYNTAX})"))?;
        Ok(Self(path, glob))
    }
}

impl Default for DeletionGuard {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_entities: 10,
        }
    }
}

impl DeletionGuard {
    /// Whether replacing `current` entities by a set that keeps all but
    /// `removed` of them must be held.
    pub fn holds(&self, current: usize, removed: usize) -> bool {
        current >= self.min_entities && removed as f64 > self.threshold * current as f64
    }
}

/// Every entry of `catalog.providers.<flavour>` (none when absent), read
/// into its shape as written and built with `build(ctx, id, key, raw)`.
pub(super) fn providers<R: DeserializeOwned, P>(
    ctx: &mut Ctx<'_>,
    base: &str,
    marker: &str,
    mut build: impl FnMut(&mut Ctx<'_>, String, &str, R) -> Result<P, ConfigError>,
) -> Result<Vec<P>, ConfigError> {
    let source = ctx.source;
    let Some(value) = source.get(base).filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let entries = provider_entries(ctx, base, value, marker)?;
    let mut providers = Vec::with_capacity(entries.len());
    for (id, key, value) in entries {
        let raw: R = ctx.section(&key, value)?;
        providers.push(build(ctx, id, &key, raw)?);
    }
    Ok(providers)
}

/// A provider entry's id, which names its entities and status.
pub(super) trait ProviderId {
    fn provider_id(&self) -> &str;
}

/// Server and Cloud provider ids name entities and status together,
/// so they must differ.
pub(super) fn unique_provider_ids(
    ctx: &Ctx<'_>,
    server: &[impl ProviderId],
    cloud: &[impl ProviderId],
) -> Result<(), ConfigError> {
    let clash = cloud
        .iter()
        .map(ProviderId::provider_id)
        .find(|c| server.iter().any(|s| s.provider_id() == *c));
    match clash {
        Some(clash) => Err(ctx.error(
            &format!("catalog.providers.bitbucketCloud.{clash}"),
            format!(
                "provider id '{clash}' is also a catalog.providers.bitbucketServer id; ids name the providers' entities and status, so rename one"
            ),
        )),
        None => Ok(()),
    }
}

/// The entries of `catalog.providers.<flavour>`: one provider (an
/// object with `marker`, id `default`) or a map of ids to providers, as
/// `(id, key, value)`.
fn provider_entries<'v>(
    ctx: &Ctx<'_>,
    base: &str,
    value: &'v Value,
    marker: &str,
) -> Result<Vec<(String, String, &'v Value)>, ConfigError> {
    let Some(map) = value.as_object() else {
        return Err(ctx.error(
            base,
            format!(
                "expected one provider (with `{marker}`) or a map of provider ids to providers"
            ),
        ));
    };
    let entries: Vec<(String, String, &Value)> = if map.contains_key(marker) {
        vec![("default".to_owned(), base.to_owned(), value)]
    } else {
        map.iter()
            .map(|(id, v)| (id.clone(), format!("{base}.{id}"), v))
            .collect()
    };
    for (_, key, value) in &entries {
        if !value.is_object() {
            return Err(ctx.error(
                key,
                format!("expected a provider object with at least `{marker}`"),
            ));
        }
    }
    Ok(entries)
}

/// A `filters.projectKey` / `filters.repoSlug` regex. Server's match
/// anywhere; Cloud's must match the whole key or slug (Backstage wraps
/// them in `^…$`; we group them too, so `A|B` means exactly A or B).
pub(super) fn filter_regex(
    ctx: &Ctx<'_>,
    key: &str,
    name: &str,
    pattern: Option<String>,
    anchored: bool,
) -> Result<Option<Regex>, ConfigError> {
    let what = if name == "projectKey" {
        "project key"
    } else {
        "repository slug"
    };
    pattern
        .map(|p| {
            let compiled = if anchored {
                Regex::new(&format!("^(?:{p})$"))
            } else {
                Regex::new(&p)
            };
            compiled.map_err(|err| {
                let scope = if anchored {
                    format!("it must match the whole {what}")
                } else {
                    format!("it matches anywhere in the {what}")
                };
                ctx.error(
                    &format!("{key}.filters.{name}"),
                    format!(
                        "invalid regular expression '{p}': {}; fix the pattern ({scope})",
                        last_line(&err.to_string())
                    ),
                )
            })
        })
        .transpose()
}

/// `webhooks.url`: where Bitbucket reaches this daemon's event route;
/// needs the integration's `webhookSecret` (events are signed).
pub(super) fn webhook_registration(
    ctx: &Ctx<'_>,
    key: &str,
    raw: Option<raw::Webhooks>,
    has_secret: bool,
    kind: &str,
) -> Result<Option<WebhookRegistration>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let url_key = format!("{key}.webhooks.url");
    if !has_secret {
        return Err(ctx.error(
            &url_key,
            format!("registering webhooks needs a secret to sign them: set integrations.{kind}[].webhookSecret for this provider's host"),
        ));
    }
    let base = raw.url.0.as_str().trim_end_matches('/');
    let target = Url::parse(&format!("{base}/api/events/http/{kind}"))
        .map_err(|e| ctx.error(&url_key, format!("'{base}' cannot take a path: {e}")))?;
    Ok(Some(WebhookRegistration { target }))
}

pub(super) fn last_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(text)
        .to_owned()
}

pub(super) mod raw {
    use serde::Deserialize;

    use super::MAX_CONCURRENCY;
    use crate::config::integration::BaseUrl;
    use crate::config::loose::Bounded;

    pub(crate) type Concurrency = Bounded<1, MAX_CONCURRENCY>;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Webhooks {
        pub url: BaseUrl,
    }

    /// `pullRequests`: what is done for pull requests.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct PullRequests {
        #[serde(default)]
        pub checks: bool,
    }

    /// A provider entry as written: its own keys, then the keys both
    /// flavours have, resolved by `settings()` into [`ProviderSettings`]:
    /// a shared key is declared here and there only. Listed, not
    /// `#[serde(flatten)]`: that would hide unknown keys (and the key
    /// path of an error) from the warnings.
    macro_rules! provider_entry {
        ($name:ident { $($field:ident: $type:ty,)* }) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            pub(crate) struct $name {
                $(pub $field: $type,)*
                pub catalog_path: Option<$crate::config::provider::CatalogPath>,
                pub schedule: Option<$crate::config::schedule::RawSchedule>,
                pub concurrency: Option<$crate::config::provider::raw::Concurrency>,
                pub deletion_threshold: Option<$crate::config::loose::Share>,
                pub target_scope: Option<$crate::config::TargetScope>,
                pub webhooks: Option<$crate::config::provider::raw::Webhooks>,
                pub without_catalog_file:
                    Option<$crate::config::generated::raw::WithoutCatalogFile>,
                pub pull_requests: Option<$crate::config::provider::raw::PullRequests>,
            }

            impl $name {
                /// Resolves the keys both flavours have (moving them out);
                /// `has_secret`: the provider's integration signs events,
                /// which registering webhooks needs.
                pub(super) fn settings(
                    &mut self,
                    ctx: &mut $crate::config::Ctx<'_>,
                    key: &str,
                    has_secret: bool,
                    kind: &str,
                    catalog: &$crate::config::CatalogSettings,
                ) -> Result<
                    $crate::config::provider::ProviderSettings,
                    $crate::config::ConfigError,
                > {
                    use $crate::config::provider::{
                        DeletionGuard, ProviderSettings, webhook_registration,
                    };
                    let webhooks = self.webhooks.take();
                    let catalog_path = self.catalog_path.take().unwrap_or_default();
                    let generate = $crate::config::generated::generate_settings(
                        ctx,
                        key,
                        self.without_catalog_file.take(),
                    )?;
                    Ok(ProviderSettings {
                        catalog_path: catalog_path.0,
                        catalog_glob: catalog_path.1,
                        schedule: self.schedule.take().map_or_else(
                            $crate::config::Schedule::default,
                            $crate::config::schedule::RawSchedule::into_schedule,
                        ),
                        concurrency: self.concurrency.take().map(|n| n.0),
                        deletion_guard: self.deletion_threshold.take().map_or_else(
                            DeletionGuard::default,
                            |share| DeletionGuard {
                                threshold: share.0,
                                ..DeletionGuard::default()
                            },
                        ),
                        target_scope: self.target_scope.take().unwrap_or_default(),
                        webhooks: webhook_registration(ctx, key, webhooks, has_secret, kind)?,
                        catalog: catalog.clone(),
                        generate,
                        pull_request_checks: self.pull_requests.take().is_some_and(|p| p.checks),
                    })
                }
            }
        };
    }
    pub(crate) use provider_entry;
}
