//! The typed, validated configuration, read from Backstage-style
//! `app-config.yaml` files (see [`source`] for how files are read and merged).
//!
//! Only our own sections are interpreted; the rest of a shared Backstage
//! config is carried along untouched. Every error names the file (or
//! environment variable), the key path and what to do about it. Each
//! section has its own module, its types next to their validation.

pub(crate) mod access;
mod backend;
pub(crate) mod catalog;
mod catalog_glob;
pub(crate) mod cloud;
mod ctx;
pub(crate) mod database;
mod error;
pub(crate) mod generated;
mod http;
mod integration;
mod listen;
mod load;
mod locations;
mod loose;
mod processing;
mod provider;
mod redact;
mod rules;
pub(crate) mod schedule;
mod server;
pub(crate) mod source;
mod typos;

pub(crate) use access::{Denied, ExternalAccess, WritePermission, token_digest};
pub(crate) use backend::{BackendConfig, BitbucketReadsPace, Pace, QueryBudget, TrustedProxies};
pub use catalog::CatalogSettings;
pub(crate) use catalog_glob::CatalogGlob;
pub(crate) use cloud::CloudProviderConfig;
use ctx::Ctx;
pub use database::DatabaseClient;
pub(crate) use database::DatabaseConfig;
pub use error::{ConfigError, Origin};
pub use listen::ListenConfig;
pub(crate) use load::DEFAULT_CONFIG_FILE;
pub use load::{Config, Loaded};
pub(crate) use locations::{LocationsConfig, RegistrationLimits};
pub(crate) use provider::{DeletionGuard, ProviderSettings, TargetScope};
pub use schedule::{Frequency, ListingSchedule, Schedule};
pub use server::ServerProviderConfig;
pub use source::Environment;
pub(crate) use source::MergedSource;
