//! bitbucket-catalogd discovers Backstage catalog entities in Bitbucket and
//! serves them over the Backstage catalog REST API. The repository is the
//! unit of state and of change: each one's catalog file is read, applied,
//! persisted and served on its own.
//!
//! A run flows through the modules in this order (dependencies point the
//! same way; `architecture` tests that the graph stays acyclic):
//!
//! - [`config`]: reads Backstage-style `app-config.yaml` files (`${VAR}`,
//!   `$env`, `$file`, layering, `APP_CONFIG_*`: `source`) into a validated
//!   [`Config`], one file per section (`listen`, `database`, `integration`,
//!   `http`, `server`, `cloud`, `schedule`, `locations`, `rules`, ...), and
//!   redacts it for `config check` (`redact`, `typos`).
//! - [`integrations`]: where each Bitbucket lives and how to authenticate
//!   ([`secret`] keeps credentials out of every output).
//! - [`bitbucket`]: REST clients for Bitbucket Server (`server`) and Cloud
//!   (`cloud`) over one counted HTTP layer that paces itself to the
//!   server's rate limit (`pacing`), the reader that maps a file's web URL
//!   to the API of the integration whose host matches (`reader`, `scope`),
//!   and webhook payloads and signatures (`webhooks`).
//! - [`discovery`]: sources: one provider pipeline (list → filter → plan →
//!   read → process: `provider`, `pipeline`, `plan`) for Server and Cloud,
//!   and locations given by URL (`location`), handing each repository's
//!   result on as it is read.
//! - [`catalog`]: untrusted YAML → entities under explicit budgets
//!   (`parse`), processed as Backstage's catalog does (`process`,
//!   `validate`, `rules`, `relations`), and the in-memory catalog: owned per
//!   repository (`unit`), re-stitched only where a change touches it
//!   (`stitch`), every change numbered (`changes`); queries, paging and
//!   cursors (`query`, `paging`, `search`, `facets`, `ancestry`).
//! - [`scheduler`]: runs sources on their schedules, never overlapping,
//!   stopped at their timeout (`runner`); applies results batch by batch
//!   through the deletion guard (`apply`, `guard`); webhook and refresh
//!   reads (`push`).
//! - [`store`]: SQLite (embedded) or PostgreSQL (shared) persistence of
//!   what is served (per entity, with its owner and change number), of each
//!   provider's repositories and of the locations registered over HTTP.
//! - [`replica`]: several daemons on one PostgreSQL database: one leader
//!   (advisory lock) talks to Bitbucket, the others follow its changes and
//!   hand it their writes (`requests`).
//! - [`locations`]: the typed `Location` (`model`) for static, registered
//!   and discovered locations; registration (catalog-import, `analyze`),
//!   removal and `by-query` paging (`query`).
//! - [`webhooks`]: Bitbucket's push, move and delete events, verified by
//!   their signature and queued as single-repository reads on the
//!   providers they concern.
//! - [`api`]: the axum router (`/api/catalog/...`, health, the status page
//!   at `/`), thin handlers per resource, errors mapped to Backstage's
//!   bodies in one place (`error`), the token check on write endpoints and
//!   forwarding of writes from followers (`forward`), the OpenAPI document.
//! - [`app`]: [`Application`] wires it all together; [`cli`] is what the
//!   binary calls (`serve`, `run-once`, `config check`, `validate`,
//!   `health`).
//!
//! Leaves, used from anywhere: [`metrics`] (Prometheus, plain values in),
//! [`telemetry`] (logging set-up).
//!
//! Modules are private: the items re-exported below are what the binary,
//! the tests and the benches use, so the compiler reports dead code.

#![warn(unreachable_pub)]

mod api;
mod app;
mod bitbucket;
mod catalog;
mod cli;
mod config;
mod discovery;
mod integrations;
mod iso_duration;
mod locations;
mod metrics;
mod replica;
mod rfc3339;
mod scheduler;
mod secret;
mod store;
mod telemetry;
mod webhooks;

pub use app::{AppError, Application};
pub use bitbucket::webhooks::sign as sign_webhook;
pub use catalog::parse::{ParseLimits, parse_catalog_file};
pub use catalog::process::{
    DefaultBranch, FetchError, FileFacts, FileSource, RepoInfo, ResolveError,
};
pub use catalog::rules::{AllowKind, CatalogRule, CatalogRules};
pub use catalog::{Catalog, Entity, EntityKey, ProcessedEntity, UnitEntities};
pub use cli::{Cli, Command, run};
pub use config::database::postgres_connection;
pub use config::{
    CatalogSettings, Config, ConfigError, DatabaseClient, Environment, Frequency, ListenConfig,
    Loaded, Origin, Schedule, ServerProviderConfig,
};
pub use discovery::location::{location_entity_name, location_id};
pub use discovery::pipeline::process_file;
pub use discovery::{RunReport, UnitUpdate};
pub use integrations::{Auth, Integrations};
pub use scheduler::Applier;
pub use secret::Secret;
pub use store::{Batch, CatalogStore, PostgresStore, SqliteStore};
pub use telemetry::init as init_telemetry;

#[cfg(test)]
mod architecture;
