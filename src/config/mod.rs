//! The typed, validated configuration, read from Backstage-style
//! `app-config.yaml` files (see [`source`] for how files are read and merged).
//!
//! Only our own sections are interpreted; the rest of a shared Backstage
//! config is carried along untouched. Every error names the file (or
//! environment variable), the key path and what to do about it.

pub mod access;
pub mod catalog;
pub mod cloud;
pub mod database;
pub mod schedule;
pub mod source;
mod typos;

use std::fmt;
use std::path::PathBuf;

use regex::Regex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::bitbucket::reader::Sites;
use crate::integrations::{
    Auth, BitbucketCloudIntegration, BitbucketServerIntegration, HttpSettings, Integrations,
    WebhookSettings,
};
use crate::secret::{REDACTED, Secret};
pub use access::{Denied, ExternalAccess, StaticToken, WritePermission};
pub use catalog::{CatalogSettings, LocationsConfig, RegistrationLimits, StaticLocation};
pub use cloud::{CloudFilters, CloudProviderConfig};
pub use schedule::{Frequency, Schedule};
pub use source::{Environment, MergedSource, Origin};
use source::{display_key, provenance_key};

/// The file used when no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "config/app-config.yaml";

/// Names a PEM bundle of extra trusted CAs.
pub const EXTRA_CA_ENV: &str = "NODE_EXTRA_CA_CERTS";

/// Concurrent catalog-file reads per provider unless configured.
pub const DEFAULT_CONCURRENCY: usize = 8;
const MAX_CONCURRENCY: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}; pass the right path with --config FILE", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {} is not valid YAML: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}{key}: {message}", OriginPrefix(origin))]
    Invalid {
        origin: Option<Origin>,
        key: String,
        message: String,
    },
}

struct OriginPrefix<'a>(&'a Option<Origin>);

impl fmt::Display for OriginPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(origin) => write!(f, "{origin}: "),
            None => Ok(()),
        }
    }
}

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendConfig {
    pub listen: ListenConfig,
    pub database: DatabaseConfig,
    /// `backend.auth.externalAccess`: who may call the write endpoints.
    pub external_access: ExternalAccess,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenConfig {
    pub host: String,
    pub port: u16,
    /// Connections served at once; `None`: derived from the descriptor
    /// limit at start-up, keeping descriptors for discovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers, counted
    /// from its first byte (or from connecting), against slowloris.
    #[serde(serialize_with = "schedule::serialize_duration")]
    pub header_timeout: std::time::Duration,
    /// How long a connection may stay with no byte moving either way
    /// (keep-alive between requests, a response the client does not read).
    /// Longer than load balancers' keep-alive, so they close first.
    #[serde(serialize_with = "schedule::serialize_duration")]
    pub idle_timeout: std::time::Duration,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 7007,
            max_connections: None,
            header_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(75),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseClient {
    Sqlite,
    BetterSqlite3,
    Pg,
}

#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseConfig {
    pub client: DatabaseClient,
    /// As written (a path, a URL or a connection object); may hold a password.
    #[serde(skip)]
    pub connection: Option<Value>,
    /// For `client: pg`: the connection, parsed.
    #[serde(skip)]
    pub postgres: Option<database::PostgresConnection>,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let connection = self.connection.as_ref().map(|c| {
            redact(
                &serde_json::json!({"backend": {"database": {"connection": c}}}),
                "",
            )["backend"]["database"]["connection"]
                .clone()
        });
        f.debug_struct("DatabaseConfig")
            .field("client", &self.client)
            .field("connection", &connection)
            .finish()
    }
}

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
        let backend = ctx.backend()?;
        let integrations = ctx.integrations()?;
        let mut catalog = ctx.catalog_settings()?;
        let locations = ctx.locations(&Sites::all(&integrations, None), &mut catalog)?;
        let retained_removals = ctx.retained_removals()?;
        let mut providers = ctx.server_providers(&integrations)?;
        for provider in &mut providers {
            provider.catalog = catalog.clone();
        }
        let mut cloud_providers = ctx.cloud_providers(&integrations)?;
        for provider in &mut cloud_providers {
            provider.catalog = catalog.clone();
        }
        for cloud in &cloud_providers {
            if providers.iter().any(|p| p.id == cloud.id) {
                return Err(ctx.error(
                    &format!("catalog.providers.bitbucketCloud.{}", cloud.id),
                    format!(
                        "provider id '{}' is also a catalog.providers.bitbucketServer id; ids name the providers' entities and status, so rename one",
                        cloud.id
                    ),
                ));
            }
        }
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
        redact_within(&self.tree, "", &self.unknown_keys)
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

/// Key names that hold secrets in our sections and Backstage's shared
/// ones (proxy headers, auth providers, Sentry DSNs, …).
fn is_secret_key(key: &str) -> bool {
    let key: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    [
        "token",
        "password",
        "secret",
        "credential",
        "authorization",
        "cookie",
        "dsn",
        "passphrase",
        "connectionstring",
    ]
    .iter()
    .any(|needle| key.contains(needle))
        // `X-Api-Key`, `privateKey`, `keys`; not our `projectKey` filter.
        || ((key.ends_with("key") || key.ends_with("keys")) && key != "projectkey")
}

fn redact(value: &Value, path: &str) -> Value {
    redact_within(value, path, &[])
}

/// Redacts secret-named keys, `unknown` keys (dotted paths) and the user
/// info of any URL.
fn redact_within(value: &Value, path: &str, unknown: &[String]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, child)| {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    let redacted = if is_secret_key(key)
                        || unknown.contains(&child_path)
                        || (child_path == "backend.database.connection"
                            && connection_has_credentials(child))
                    {
                        Value::String(REDACTED.into())
                    } else {
                        redact_within(child, &child_path, unknown)
                    };
                    (key.clone(), redacted)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| redact_within(item, &format!("{path}.{index}"), unknown))
                .collect(),
        ),
        Value::String(text) => Value::String(without_user_info(text)),
        other => other.clone(),
    }
}

/// `text` with the user info of a URL in it replaced (`https://<redacted>@host/…`).
fn without_user_info(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            match (text.find("://"), text.rfind('@')) {
                (Some(scheme_end), Some(at)) if at > scheme_end => {
                    format!("{}{REDACTED}{}", &text[..scheme_end + 3], &text[at..])
                }
                _ => REDACTED.to_owned(),
            }
        }
        _ => text.to_owned(),
    }
}

/// A connection string such as `postgres://user:pw@host/db` carries a
/// password; a file path does not.
fn connection_has_credentials(value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        Url::parse(text).is_ok_and(|url| url.password().is_some() || !url.username().is_empty())
            || text.to_ascii_lowercase().contains("password")
    })
}

struct Ctx<'a> {
    source: &'a MergedSource,
    warnings: Vec<String>,
    /// Keys warned about as unknown, dotted with indices.
    unknown_keys: Vec<String>,
}

impl Ctx<'_> {
    fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let key = display_key(key);
        ConfigError::Invalid {
            origin: self.source.origin_of(&provenance_key(&key)).cloned(),
            key,
            message: message.into(),
        }
    }

    /// Like [`Self::warn`] for a key we do not know: its value is redacted
    /// in `config check` (it may be a misspelled secret).
    fn warn_unknown(&mut self, key: &str, message: &str) {
        self.unknown_keys.push(provenance_key(&display_key(key)));
        let last = key.rsplit('.').next().unwrap_or(key);
        self.warn(
            key,
            &typos::with_suggestion(message, last, typos::KNOWN_KEYS),
        );
    }

    /// Warns about misspellings of our section names and unknown keys
    /// directly under `catalog`; their values are redacted like any
    /// unknown key's. Backstage's other sections stay silent.
    fn misspelled_sections(&mut self) {
        for typo in typos::misspelled_sections(&self.source.root) {
            self.unknown_keys
                .push(provenance_key(&display_key(&typo.key)));
            self.warn(&typo.key, &typo.message);
        }
    }

    /// Records "`origin`: `key`: `message`" for the operator.
    fn warn(&mut self, key: &str, message: &str) {
        let key = display_key(key);
        let origin = self
            .source
            .origin_of(&provenance_key(&key))
            .map_or_else(|| "config".to_owned(), ToString::to_string);
        self.warnings.push(format!("{origin}: {key}: {message}"));
    }

    fn join(base: &str, key: &str) -> String {
        if base.is_empty() {
            key.to_owned()
        } else {
            format!("{base}.{key}")
        }
    }

    /// Deserialises the value at `key` into `T`, reporting the failing field's
    /// full path and warning about keys `T` does not know.
    fn section<T: DeserializeOwned>(&mut self, key: &str, value: &Value) -> Result<T, ConfigError> {
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let result: Result<T, _> = serde_path_to_error::deserialize(
            serde_ignored::Deserializer::new(value.clone(), &mut record),
        );
        match result {
            Ok(parsed) => {
                for path in unknown {
                    self.warn_unknown(
                        &Self::join(key, &path),
                        "unknown key is ignored; check its spelling",
                    );
                }
                Ok(parsed)
            }
            Err(err) => {
                let inner = err.path().to_string();
                let full = if inner == "." {
                    key.to_owned()
                } else {
                    Self::join(key, &provenance_key(&inner))
                };
                let mut message = err.into_inner().to_string();
                // "missing field `host`" because `host: ${BB_HOST}` was unset.
                let missing = message
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next())
                    .map(|field| display_key(&Self::join(&full, field)));
                if let Some(var) = missing.and_then(|k| self.source.unset.get(&k)) {
                    message.push_str(&format!(
                        " (it was left out because environment variable {var} is not set)"
                    ));
                }
                Err(self.error(&full, message))
            }
        }
    }

    fn backend(&mut self) -> Result<BackendConfig, ConfigError> {
        let listen = match self.source.get("backend.listen") {
            None | Some(Value::Null) => ListenConfig::default(),
            Some(Value::String(text)) => parse_listen_string(text)
                .ok_or_else(|| self.error("backend.listen", format!("'{text}' is not host:port; write e.g. ':7007' or {{host: 0.0.0.0, port: 7007}}")))?,
            Some(value @ Value::Object(_)) => {
                let raw: raw::Listen = self.section("backend.listen", value)?;
                let defaults = ListenConfig::default();
                ListenConfig {
                    host: raw.host.unwrap_or(defaults.host),
                    port: match raw.port {
                        None => defaults.port,
                        Some(port) => loose_text(&port)
                            .and_then(|p| p.parse().ok())
                            .ok_or_else(|| self.error("backend.listen.port", format!("{} is not a port number (0-65535)", shown(&port))))?,
                    },
                    max_connections: match raw.max_connections {
                        None => None,
                        Some(max) => Some(loose_text(&max)
                            .and_then(|p| p.parse::<usize>().ok())
                            .filter(|n| (1..=1_000_000).contains(n))
                            .ok_or_else(|| self.error("backend.listen.maxConnections", format!("{} is not a number from 1 to 1000000", shown(&max))))?),
                    },
                    header_timeout: self.listen_timeout("headerTimeout", raw.header_timeout, defaults.header_timeout)?,
                    idle_timeout: self.listen_timeout("idleTimeout", raw.idle_timeout, defaults.idle_timeout)?,
                }
            }
            Some(_) => return Err(self.error("backend.listen", "expected ':7007' or {host, port}")),
        };
        let database = match self.source.get("backend.database") {
            None | Some(Value::Null) => DatabaseConfig {
                client: DatabaseClient::BetterSqlite3,
                connection: None,
                postgres: None,
            },
            Some(value) => {
                let raw: raw::Database = self.section("backend.database", value)?;
                let client = match raw.client.as_deref() {
                    None | Some("better-sqlite3") => DatabaseClient::BetterSqlite3,
                    Some("sqlite") | Some("sqlite3") => DatabaseClient::Sqlite,
                    Some("pg") => DatabaseClient::Pg,
                    Some(other) => {
                        return Err(self.error(
                            "backend.database.client",
                            format!(
                                "unsupported client '{other}'; use better-sqlite3, sqlite or pg"
                            ),
                        ));
                    }
                };
                let postgres = match client {
                    DatabaseClient::Pg => Some(
                        database::postgres_connection(raw.connection.as_ref()).map_err(
                            |message| self.error("backend.database.connection", message),
                        )?,
                    ),
                    _ => None,
                };
                DatabaseConfig {
                    client,
                    connection: raw.connection,
                    postgres,
                }
            }
        };
        let external_access = self.external_access()?;
        Ok(BackendConfig {
            listen,
            database,
            external_access,
        })
    }

    /// A positive duration under `backend.listen.<name>`.
    fn listen_timeout(
        &self,
        name: &str,
        raw: Option<Value>,
        default: std::time::Duration,
    ) -> Result<std::time::Duration, ConfigError> {
        let Some(value) = raw else {
            return Ok(default);
        };
        schedule::parse_duration(&value)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                self.error(
                    &format!("backend.listen.{name}"),
                    format!(
                        "{} is not a duration; write e.g. {{seconds: 10}} or 'PT10S'",
                        shown(&value)
                    ),
                )
            })
    }

    fn integrations(&mut self) -> Result<Integrations, ConfigError> {
        let mut integrations = Integrations::default();
        let server_key = "integrations.bitbucketServer";
        if let Some(value) = self.source.get(server_key).filter(|v| !v.is_null()) {
            let raws: Vec<raw::ServerIntegration> = self.section(server_key, value)?;
            for (index, raw) in raws.into_iter().enumerate() {
                let key = format!("{server_key}.{index}");
                let integration = self.server_integration(&key, raw)?;
                if integrations.server(&integration.host).is_some() {
                    return Err(self.error(
                        &format!("{key}.host"),
                        format!(
                            "host '{}' is configured twice; merge the entries",
                            integration.host
                        ),
                    ));
                }
                integrations.bitbucket_server.push(integration);
            }
        }
        let cloud_key = "integrations.bitbucketCloud";
        if let Some(value) = self.source.get(cloud_key).filter(|v| !v.is_null()) {
            let raws: Vec<raw::CloudIntegration> = self.section(cloud_key, value)?;
            for (index, raw) in raws.into_iter().enumerate() {
                let key = format!("{cloud_key}.{index}");
                let integration = self.cloud_integration(&key, raw)?;
                integrations.bitbucket_cloud.push(integration);
            }
        }
        if integrations.bitbucket_cloud.is_empty() {
            integrations
                .bitbucket_cloud
                .push(BitbucketCloudIntegration {
                    host: "bitbucket.org".into(),
                    api_base_url: default_cloud_api(),
                    auth: Auth::Anonymous,
                    http: HttpSettings::default(),
                    webhooks: WebhookSettings::default(),
                });
        }
        Ok(integrations)
    }

    /// `rateLimit`, `maxConcurrentRequests`, `connectTimeout`,
    /// `requestTimeout`, `maxRetries` of one integration.
    fn http_settings(&self, key: &str, raw: raw::Http) -> Result<HttpSettings, ConfigError> {
        let defaults = HttpSettings::default();
        let number = |name: &str,
                      value: Option<Value>,
                      min: f64,
                      max: f64|
         -> Result<Option<f64>, ConfigError> {
            value
                .map(|v| {
                    loose_text(&v)
                        .and_then(|t| t.parse::<f64>().ok())
                        .filter(|n| n.is_finite() && (min..=max).contains(n))
                        .ok_or_else(|| {
                            self.error(
                                &format!("{key}.{name}"),
                                format!("{} is not a number from {min} to {max}", shown(&v)),
                            )
                        })
                })
                .transpose()
        };
        let duration = |name: &str,
                        value: Option<Value>,
                        default: std::time::Duration|
         -> Result<std::time::Duration, ConfigError> {
            match value {
                None => Ok(default),
                Some(v) => schedule::parse_duration(&v)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        self.error(
                            &format!("{key}.{name}"),
                            format!(
                                "{} is not a duration; write e.g. {{seconds: 30}} or 'PT30S'",
                                shown(&v)
                            ),
                        )
                    }),
            }
        };
        let rate_limit = match raw.rate_limit {
            None => None,
            Some(rate) => {
                let per_second = number(
                    "rateLimit.requestsPerSecond",
                    Some(rate.requests_per_second),
                    0.1,
                    100_000.0,
                )?
                .unwrap_or(1.0);
                let burst = number("rateLimit.burst", rate.burst, 1.0, 100_000.0)?
                    .unwrap_or(per_second.ceil());
                Some(crate::integrations::RateLimit {
                    requests_per_second: per_second,
                    burst: burst as u32,
                })
            }
        };
        Ok(HttpSettings {
            rate_limit,
            max_concurrent_requests: number(
                "maxConcurrentRequests",
                raw.max_concurrent_requests,
                1.0,
                256.0,
            )?
            .map_or(defaults.max_concurrent_requests, |n| n as usize),
            connect_timeout: duration(
                "connectTimeout",
                raw.connect_timeout,
                defaults.connect_timeout,
            )?,
            request_timeout: duration(
                "requestTimeout",
                raw.request_timeout,
                defaults.request_timeout,
            )?,
            max_retries: number("maxRetries", raw.max_retries, 0.0, 20.0)?
                .map_or(defaults.max_retries, |n| n as u32),
        })
    }

    /// `webhookSecret` and `allowUnsignedWebhooks` of an integration entry.
    fn webhook_settings(
        &mut self,
        key: &str,
        secret: Option<Secret>,
        allow_unsigned: Option<bool>,
    ) -> WebhookSettings {
        let secret = secret.filter(|s| !s.expose().trim().is_empty());
        let allow_unsigned = allow_unsigned.unwrap_or(false);
        if allow_unsigned && secret.is_some() {
            self.warn(
                &format!("{key}.allowUnsignedWebhooks"),
                "is ignored: webhookSecret is set, so every event must be signed with it",
            );
        }
        WebhookSettings {
            allow_unsigned: allow_unsigned && secret.is_none(),
            secret,
        }
    }

    fn server_integration(
        &mut self,
        key: &str,
        raw: raw::ServerIntegration,
    ) -> Result<BitbucketServerIntegration, ConfigError> {
        let host = raw.host.trim().to_owned();
        validate_host(&host).map_err(|m| self.error(&format!("{key}.host"), m))?;
        let api_base_url = match raw.api_base_url {
            Some(url) => {
                parse_base_url(&url).map_err(|m| self.error(&format!("{key}.apiBaseUrl"), m))?
            }
            None => parse_base_url(&format!("https://{host}/rest/api/1.0"))
                .map_err(|m| self.error(&format!("{key}.host"), m))?,
        };
        let auth = match (raw.token, raw.username, raw.password) {
            (Some(token), _, _) => Auth::Bearer { token },
            (None, Some(username), Some(password)) => Auth::Basic { username, password },
            (None, Some(_), None) => {
                return Err(self.error(
                    &format!("{key}.password"),
                    "username is set without password; set password (or use token instead)",
                ));
            }
            (None, None, Some(_)) => {
                return Err(self.error(
                    &format!("{key}.username"),
                    "password is set without username; set username",
                ));
            }
            (None, None, None) => Auth::Anonymous,
        };
        let webhooks = self.webhook_settings(key, raw.webhook_secret, raw.allow_unsigned_webhooks);
        let http = self.http_settings(key, raw::http_of!(raw))?;
        Ok(BitbucketServerIntegration {
            host,
            api_base_url,
            auth,
            http,
            webhooks,
        })
    }

    fn cloud_integration(
        &mut self,
        key: &str,
        raw: raw::CloudIntegration,
    ) -> Result<BitbucketCloudIntegration, ConfigError> {
        let host = raw.host.unwrap_or_else(|| "bitbucket.org".into());
        validate_host(&host).map_err(|m| self.error(&format!("{key}.host"), m))?;
        let api_base_url = match raw.api_base_url {
            Some(url) => {
                parse_base_url(&url).map_err(|m| self.error(&format!("{key}.apiBaseUrl"), m))?
            }
            None => default_cloud_api(),
        };
        let auth = match (raw.username, raw.app_password, raw.token) {
            // An API token replaces a leftover app password.
            (Some(username), _, Some(token)) => Auth::Basic {
                username,
                password: token,
            },
            (Some(username), Some(password), None) => {
                self.warn(
                    &format!("{key}.appPassword"),
                    &format!("Atlassian removed app passwords in July 2026; create an API token and set {} instead", display_key(&format!("{key}.token"))),
                );
                Auth::Basic { username, password }
            }
            (Some(_), None, None) => {
                return Err(self.error(&format!("{key}.token"), "username is set without token; set token (an Atlassian API token for that account email)"));
            }
            (None, Some(_), _) => {
                return Err(self.error(
                    &format!("{key}.username"),
                    "appPassword is set without username; set username",
                ));
            }
            (None, None, Some(token)) => Auth::Bearer { token },
            (None, None, None) => Auth::Anonymous,
        };
        let webhooks = self.webhook_settings(key, raw.webhook_secret, raw.allow_unsigned_webhooks);
        let http = self.http_settings(key, raw::http_of!(raw))?;
        Ok(BitbucketCloudIntegration {
            host,
            api_base_url,
            auth,
            http,
            webhooks,
        })
    }

    /// The entries of `catalog.providers.<flavour>`: one provider (an
    /// object with `marker`, id `default`) or a map of ids to providers, as
    /// `(id, key, value)`.
    fn provider_entries<'v>(
        &self,
        base: &str,
        value: &'v Value,
        marker: &str,
    ) -> Result<Vec<(String, String, &'v Value)>, ConfigError> {
        let Some(map) = value.as_object() else {
            return Err(self.error(
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
                return Err(self.error(
                    key,
                    format!("expected a provider object with at least `{marker}`"),
                ));
            }
        }
        Ok(entries)
    }

    fn server_providers(
        &mut self,
        integrations: &Integrations,
    ) -> Result<Vec<ServerProviderConfig>, ConfigError> {
        let base = "catalog.providers.bitbucketServer";
        let Some(value) = self.source.get(base).filter(|v| !v.is_null()) else {
            return Ok(Vec::new());
        };
        let entries = self.provider_entries(base, value, "host")?;
        let mut providers = Vec::with_capacity(entries.len());
        for (id, key, value) in entries {
            let raw: raw::ServerProvider = self.section(&key, value)?;
            providers.push(self.server_provider(id, &key, raw, integrations)?);
        }
        Ok(providers)
    }

    /// `catalogPath` without its leading `/`, checked to be a file path.
    fn catalog_path(&self, key: &str, raw: Option<String>) -> Result<String, ConfigError> {
        let catalog_path = raw.unwrap_or_else(|| "/catalog-info.yaml".into());
        let catalog_path = catalog_path.trim().trim_start_matches('/').to_owned();
        if catalog_path.is_empty()
            || catalog_path.ends_with('/')
            || catalog_path.contains('"')
            || catalog_path
                .split('/')
                .any(|s| s == ".." || s == "." || s.is_empty())
        {
            return Err(self.error(&format!("{key}.catalogPath"), format!("'{catalog_path}' is not a file path inside the repository; write e.g. /catalog-info.yaml")));
        }
        Ok(catalog_path)
    }

    /// A `filters.projectKey` / `filters.repoSlug` regex. Server's match
    /// anywhere; Cloud's must match the whole key or slug (Backstage wraps
    /// them in `^…$`; we group them too, so `A|B` means exactly A or B).
    fn filter_regex(
        &self,
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
                    self.error(
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

    /// `targetScope`: `repository` (default) or `filters`.
    fn target_scope(&self, key: &str, value: Option<String>) -> Result<TargetScope, ConfigError> {
        match value.as_deref().map(str::trim) {
            None | Some("repository") => Ok(TargetScope::Repository),
            Some("filters") => Ok(TargetScope::Filters),
            Some("any") => Ok(TargetScope::Any),
            Some(other) => Err(self.error(
                &format!("{key}.targetScope"),
                format!("'{other}' is not a target scope; use repository (the default: targets and placeholders stay in the discovered file's repository), filters (any repository this provider's filters match) or any (any repository on this Bitbucket, as before the hardening)"),
            )),
        }
    }

    /// `concurrency`: 1 to [`MAX_CONCURRENCY`], default [`DEFAULT_CONCURRENCY`].
    /// `deletionThreshold`: a share such as `0.5` or `'50%'`.
    fn deletion_guard(
        &self,
        key: &str,
        value: Option<Value>,
    ) -> Result<DeletionGuard, ConfigError> {
        let Some(value) = value else {
            return Ok(DeletionGuard::default());
        };
        let threshold = parse_share(&value).ok_or_else(|| {
            self.error(
                &format!("{key}.deletionThreshold"),
                format!(
                    "{} is not a share; write e.g. 0.5 or '50%' (1 or '100%' turns the guard off)",
                    shown(&value)
                ),
            )
        })?;
        Ok(DeletionGuard {
            threshold,
            ..DeletionGuard::default()
        })
    }

    fn concurrency(&self, key: &str, raw: Option<Value>) -> Result<usize, ConfigError> {
        match raw {
            None => Ok(DEFAULT_CONCURRENCY),
            Some(n) => loose_text(&n)
                .and_then(|text| text.parse::<usize>().ok())
                .filter(|n| (1..=MAX_CONCURRENCY).contains(n))
                .ok_or_else(|| {
                    self.error(
                        &format!("{key}.concurrency"),
                        format!("{} is not a number from 1 to {MAX_CONCURRENCY}", shown(&n)),
                    )
                }),
        }
    }

    /// A `schedule` object (absent: the default), with unknown keys warned about.
    fn schedule(&mut self, key: &str, raw: Option<Value>) -> Result<Schedule, ConfigError> {
        let Some(value) = raw else {
            return Ok(Schedule::default());
        };
        let (schedule, unknown) = schedule::parse_schedule(&value)
            .map_err(|(sub, msg)| self.error(&Self::join(key, &sub), msg))?;
        for sub in unknown {
            self.warn_unknown(
                &format!("{key}.{sub}"),
                "unknown key is ignored; use frequency, timeout or initialDelay",
            );
        }
        Ok(schedule)
    }

    /// `webhooks: {url}`: the daemon's own base URL as Bitbucket reaches
    /// it; needs the integration's `webhookSecret` (events are signed).
    pub(super) fn webhook_registration(
        &self,
        key: &str,
        raw: Option<raw::Webhooks>,
        has_secret: bool,
        kind: &str,
    ) -> Result<Option<WebhookRegistration>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let url_key = format!("{key}.webhooks.url");
        let base = parse_base_url(&raw.url).map_err(|m| self.error(&url_key, m))?;
        if !has_secret {
            return Err(self.error(
                &url_key,
                format!("registering webhooks needs a secret to sign them: set integrations.{kind}[].webhookSecret for this provider's host"),
            ));
        }
        let base = base.as_str().trim_end_matches('/');
        let target = Url::parse(&format!("{base}/api/events/http/{kind}"))
            .map_err(|e| self.error(&url_key, format!("'{}' cannot take a path: {e}", raw.url)))?;
        Ok(Some(WebhookRegistration { target }))
    }

    fn server_provider(
        &mut self,
        id: String,
        key: &str,
        raw: raw::ServerProvider,
        integrations: &Integrations,
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
            catalog: CatalogSettings::default(),
        })
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(text)
        .to_owned()
}

fn default_cloud_api() -> Url {
    // A constant that parses; covered by tests.
    Url::parse("https://api.bitbucket.org/2.0").unwrap_or_else(|_| unreachable!())
}

fn validate_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("host is empty; write the Bitbucket host, e.g. bitbucket.example.com".into());
    }
    if host.contains("://") {
        return Err(format!(
            "'{host}' has a scheme; write only the host (and port), e.g. bitbucket.example.com, and put the full URL in apiBaseUrl"
        ));
    }
    match Url::parse(&format!("https://{host}/")) {
        Ok(url) if url.path() == "/" && url.host_str().is_some() && url.username().is_empty() => {
            Ok(())
        }
        _ => Err(format!("'{host}' is not a host or host:port")),
    }
}

fn parse_base_url(text: &str) -> Result<Url, String> {
    let trimmed = text.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|err| format!("'{text}' is not a URL ({err})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("'{text}' must start with https:// (or http://)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the URL; use token or username/password".into());
    }
    Ok(url)
}

fn parse_listen_string(text: &str) -> Option<ListenConfig> {
    let text = text.trim();
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => ("", text),
    };
    Some(ListenConfig {
        host: if host.is_empty() {
            ListenConfig::default().host
        } else {
            host.trim_matches(['[', ']']).to_owned()
        },
        port: port.parse().ok()?,
        ..ListenConfig::default()
    })
}

/// Shapes as written in the file. Numbers and booleans also arrive as
/// strings (from `${VAR}` substitution), so those fields stay loose here
/// and are checked with a precise message in [`Ctx`].
mod raw {
    use serde::Deserialize;
    use serde_json::Value;

    use crate::secret::Secret;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Listen {
        pub host: Option<String>,
        pub port: Option<Value>,
        pub max_connections: Option<Value>,
        pub header_timeout: Option<Value>,
        pub idle_timeout: Option<Value>,
    }

    #[derive(Deserialize)]
    pub struct Database {
        pub client: Option<String>,
        pub connection: Option<Value>,
        /// Backstage's other database keys (knexConfig, prefix, plugin, …).
        #[serde(flatten)]
        pub _backstage: serde_json::Map<String, Value>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ServerIntegration {
        pub host: String,
        pub api_base_url: Option<String>,
        pub token: Option<Secret>,
        pub username: Option<String>,
        pub password: Option<Secret>,
        pub webhook_secret: Option<Secret>,
        pub allow_unsigned_webhooks: Option<bool>,
        // Not `#[serde(flatten)]`: it would hide unknown keys from the warnings.
        pub rate_limit: Option<RateLimit>,
        pub max_concurrent_requests: Option<Value>,
        pub connect_timeout: Option<Value>,
        pub request_timeout: Option<Value>,
        pub max_retries: Option<Value>,
    }

    /// Pacing, concurrency, timeouts and retries (both integration kinds).
    pub struct Http {
        pub rate_limit: Option<RateLimit>,
        pub max_concurrent_requests: Option<Value>,
        pub connect_timeout: Option<Value>,
        pub request_timeout: Option<Value>,
        pub max_retries: Option<Value>,
    }

    /// Moves the shared HTTP keys out of an integration entry.
    macro_rules! http_of {
        ($raw:expr) => {
            raw::Http {
                rate_limit: $raw.rate_limit,
                max_concurrent_requests: $raw.max_concurrent_requests,
                connect_timeout: $raw.connect_timeout,
                request_timeout: $raw.request_timeout,
                max_retries: $raw.max_retries,
            }
        };
    }
    pub(super) use http_of;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RateLimit {
        pub requests_per_second: Value,
        pub burst: Option<Value>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CloudIntegration {
        pub host: Option<String>,
        pub api_base_url: Option<String>,
        pub username: Option<String>,
        pub app_password: Option<Secret>,
        pub token: Option<Secret>,
        pub webhook_secret: Option<Secret>,
        pub allow_unsigned_webhooks: Option<bool>,
        pub rate_limit: Option<RateLimit>,
        pub max_concurrent_requests: Option<Value>,
        pub connect_timeout: Option<Value>,
        pub request_timeout: Option<Value>,
        pub max_retries: Option<Value>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ServerProvider {
        pub host: String,
        pub catalog_path: Option<String>,
        pub filters: Option<Filters>,
        pub schedule: Option<Value>,
        pub concurrency: Option<Value>,
        pub deletion_threshold: Option<Value>,
        pub target_scope: Option<String>,
        pub webhooks: Option<Webhooks>,
    }

    /// `webhooks:` of a provider: register webhooks pointing at `url`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Webhooks {
        pub url: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ExternalAccessEntry {
        #[serde(rename = "type")]
        pub type_: String,
        pub options: Option<Value>,
        pub access_restrictions: Option<Vec<AccessRestriction>>,
    }

    #[derive(Deserialize)]
    pub struct StaticAccessOptions {
        pub token: Option<Secret>,
        pub subject: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AccessRestriction {
        pub plugin: String,
        pub permission: Option<OneOrMany>,
        pub permission_attribute: Option<Value>,
    }

    /// A string or a list of strings, as Backstage accepts for permissions.
    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    impl OneOrMany {
        pub fn into_vec(self) -> Vec<String> {
            match self {
                OneOrMany::One(one) => vec![one],
                OneOrMany::Many(many) => many,
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CloudProvider {
        pub workspace: String,
        pub host: Option<String>,
        pub catalog_path: Option<String>,
        pub filters: Option<CloudFilters>,
        pub pagelen: Option<Value>,
        pub schedule: Option<Value>,
        pub concurrency: Option<Value>,
        pub deletion_threshold: Option<Value>,
        pub target_scope: Option<String>,
        pub webhooks: Option<Webhooks>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub struct CloudFilters {
        pub project_key: Option<String>,
        pub repo_slug: Option<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub struct Filters {
        pub project_key: Option<String>,
        pub repo_slug: Option<String>,
        pub skip_archived_repos: Option<Value>,
        pub branch: Option<String>,
    }
}

/// A number written as a number or as a string (values from `${VAR}` are strings).
fn loose_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(text) => Some(text.trim().to_owned()),
        _ => None,
    }
}

/// A share written as `0.5` or `'50%'`.
fn parse_share(value: &Value) -> Option<f64> {
    let text = loose_text(value)?;
    let share = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok()? / 100.0,
        None => text.parse::<f64>().ok()?,
    };
    (0.0..=1.0).contains(&share).then_some(share)
}

/// A value quoted for a message: `'abc'`, `'8'`, or JSON for anything else.
fn shown(value: &Value) -> String {
    loose_text(value).map_or_else(|| value.to_string(), |text| format!("'{text}'"))
}

/// `true` / `false`, or the same as a string.
fn loose_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_display_with_indices() {
        assert_eq!(
            display_key("integrations.bitbucketServer.0.token"),
            "integrations.bitbucketServer[0].token"
        );
        assert_eq!(
            provenance_key("integrations.bitbucketServer[0].token"),
            "integrations.bitbucketServer.0.token"
        );
        assert_eq!(display_key("a.?.b"), "a.b");
    }

    #[test]
    fn listen_strings() {
        assert_eq!(
            parse_listen_string(":7008"),
            Some(ListenConfig {
                host: "0.0.0.0".into(),
                port: 7008,
                ..ListenConfig::default()
            })
        );
        assert_eq!(
            parse_listen_string("127.0.0.1:80"),
            Some(ListenConfig {
                host: "127.0.0.1".into(),
                port: 80,
                ..ListenConfig::default()
            })
        );
        assert_eq!(parse_listen_string("nope"), None);
    }

    #[test]
    fn redaction_covers_credentials_everywhere() {
        let tree = serde_json::json!({
            "integrations": {"bitbucketServer": [{"host": "h", "token": "t0k", "password": "p"}],
                             "bitbucketCloud": [{"username": "u", "appPassword": "ap"}]},
            "backend": {"database": {"client": "pg", "connection": {"host": "db", "password": "pw"}}},
            "auth": {"keys": [{"secret": "s"}]}
        });
        let out = redact(&tree, "").to_string();
        for secret in ["t0k", "\"p\"", "ap\"", "pw", "\"s\""] {
            assert!(!out.contains(secret), "{secret} leaked in {out}");
        }
        assert!(out.contains("\"host\":\"db\""));

        let url =
            serde_json::json!({"backend": {"database": {"connection": "postgres://u:pw2@db/x"}}});
        assert!(!redact(&url, "").to_string().contains("pw2"));
        let path =
            serde_json::json!({"backend": {"database": {"connection": "./data/catalog.sqlite"}}});
        assert!(
            redact(&path, "")
                .to_string()
                .contains("./data/catalog.sqlite")
        );
    }

    #[test]
    fn default_cloud_api_parses() {
        assert_eq!(
            default_cloud_api().as_str(),
            "https://api.bitbucket.org/2.0"
        );
    }
}
