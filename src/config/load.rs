//! Loading: the files read and merged (see [`super::source`]), then each
//! section validated into the [`Config`] the daemon runs on.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

use super::{
    BackendConfig, CatalogSettings, CloudProviderConfig, ConfigError, Ctx, Environment,
    LocationsConfig, MergedSource, ServerProviderConfig, backend, catalog, cloud, integration,
    locations, provider, redact, server, source,
};
use crate::bitbucket::reader::Sites;
use crate::integrations::Integrations;

/// The file used when no `--config` is given.
pub(crate) const DEFAULT_CONFIG_FILE: &str = "config/app-config.yaml";

/// Names a PEM bundle of extra trusted CAs.
pub(crate) const EXTRA_CA_ENV: &str = "NODE_EXTRA_CA_CERTS";

/// The validated configuration the daemon runs on. `Debug` leaves out the
/// raw tree, which holds credentials in clear text.
#[derive(Clone)]
pub struct Config {
    pub backend: BackendConfig,
    pub integrations: Integrations,
    /// `catalog.providers.bitbucketServer`.
    pub providers: Vec<ServerProviderConfig>,
    /// `catalog.providers.bitbucketCloud`.
    pub cloud_providers: Vec<CloudProviderConfig>,
    /// `catalog.locations` this daemon reads, and `catalog.locationSchedule`.
    pub locations: LocationsConfig,
    /// `catalog.rules` (plus the locations' own rules) and `catalog.processing`.
    pub catalog: CatalogSettings,
    /// `catalog.changes.retainedRemovals`: removals the change feed keeps.
    pub retained_removals: usize,
    /// A PEM bundle trusted in addition to the system store, from
    /// `NODE_EXTRA_CA_CERTS` (the variable Backstage deployments already set).
    pub extra_ca_file: Option<PathBuf>,
    /// The merged configuration tree, for `config check` (print it with
    /// [`Config::redacted_tree`], never directly).
    pub tree: Value,
    /// Unknown keys under our sections (dotted, with indices): redacted
    /// whole, since a misspelled secret key (`tokn:`) is still a secret.
    unknown_keys: Vec<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("backend", &self.backend)
            .field("integrations", &self.integrations)
            .field("providers", &self.providers)
            .field("cloud_providers", &self.cloud_providers)
            .field("locations", &self.locations)
            .field("catalog", &self.catalog)
            .field("extra_ca_file", &self.extra_ca_file)
            .finish_non_exhaustive()
    }
}

/// A loaded configuration and the warnings worth showing the operator.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads `files` (later ones override earlier ones) with `env` for
    /// substitutions and `APP_CONFIG_*` overrides.
    pub fn load(files: &[PathBuf], env: &Environment) -> Result<Loaded, ConfigError> {
        let source = source::load_sources(files, env)?;
        let mut loaded = Self::from_source(source)?;
        loaded.config.extra_ca_file = env
            .get(EXTRA_CA_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        Ok(loaded)
    }

    /// Validates an already merged tree.
    pub fn from_source(source: MergedSource) -> Result<Loaded, ConfigError> {
        let mut ctx = Ctx {
            source: &source,
            warnings: source.warnings.clone(),
            unknown_keys: Vec::new(),
        };
        ctx.misspelled_sections();
        let backend = backend::backend(&mut ctx)?;
        let integrations = integration::integrations(&mut ctx)?;
        let mut catalog = catalog::catalog_settings(&mut ctx)?;
        let sites = Sites::all(&integrations, None);
        let locations = locations::locations(&mut ctx, &sites, &mut catalog)?;
        let retained_removals = catalog::retained_removals(&mut ctx)?;
        let providers = server::server_providers(&mut ctx, &integrations, &catalog)?;
        let cloud_providers = cloud::cloud_providers(&mut ctx, &integrations, &catalog)?;
        provider::unique_provider_ids(&ctx, &providers, &cloud_providers)?;
        let Ctx {
            warnings,
            unknown_keys,
            ..
        } = ctx;
        Ok(Loaded {
            config: Config {
                backend,
                integrations,
                providers,
                cloud_providers,
                locations,
                catalog,
                retained_removals,
                extra_ca_file: None,
                tree: source.root,
                unknown_keys,
            },
            warnings,
        })
    }

    /// The merged configuration with every credential replaced by `<redacted>`.
    pub fn redacted_tree(&self) -> Value {
        redact::redact_within(&self.tree, "", &self.unknown_keys)
    }

    pub fn provider(&self, id: &str) -> Option<&ServerProviderConfig> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// Whether `integrations.bitbucketCloud` was left empty, so the one
    /// Cloud integration is Backstage's implicit anonymous `bitbucket.org`.
    pub fn implicit_cloud_integration(&self) -> bool {
        self.tree
            .pointer("/integrations/bitbucketCloud")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    }

    /// Every provider id, Server then Cloud.
    pub fn provider_ids(&self) -> Vec<&str> {
        self.providers
            .iter()
            .map(|p| p.id.as_str())
            .chain(self.cloud_providers.iter().map(|p| p.id.as_str()))
            .collect()
    }
}
