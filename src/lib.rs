//! bitbucket-catalogd discovers Backstage catalog entities in Bitbucket and
//! serves them over the Backstage catalog REST API. The repository is the
//! unit of state and of change: each one's catalog file is read, applied,
//! persisted and served on its own.
//!
//! A run flows through the modules in this order (dependencies point the
//! same way; `architecture` tests that neither the modules nor the files of
//! any folder form a circle):
//!
//! - [`config`]: reads Backstage-style `app-config.yaml` files once each
//!   (`${VAR}`, `$env`, `$file`, layering, `APP_CONFIG_*`: `source`) into a
//!   validated [`Config`] (`load`), one file per section (`listen`,
//!   `database`, `integration`, `http`, `provider` with the keys both
//!   provider flavours share, `server`, `cloud`, `schedule`, `locations`,
//!   `rules`, ...) over checked value types (`loose`), and redacts it for
//!   `config check` (`redact`, `typos`: a test ties the candidates to the
//!   section types).
//! - [`integrations`]: where each Bitbucket lives and how to authenticate
//!   ([`secret`] keeps credentials out of every output), the one `Product`
//!   enum (Server or Cloud) and the neutral repository reference `RepoRef`.
//! - [`bitbucket`]: REST clients for Bitbucket Server (`server`) and Cloud
//!   (`cloud`) over one counted HTTP layer (`http`, `pool`, `stats`,
//!   `error`) that paces itself to the server's rate limit (`pacing`); a
//!   file's web URL parsed once (`file_url`), the reader that maps it to the
//!   API of the integration whose host matches (`reader`, `scope`, with
//!   every refusal in `refusal`); webhook payloads, signatures and the one
//!   table of subscribed event keys (`webhooks`).
//! - [`discovery`]: sources (`source`): one provider pipeline (list →
//!   filter → plan → read → process: `provider`, `pipeline`, `plan`) for
//!   Server and Cloud, and locations given by URL (`location`), handing
//!   each repository's result (`record`) on as it is read (`run`).
//! - [`catalog`]: untrusted YAML → entities under explicit budgets
//!   (`parse`), processed as Backstage's catalog does (`process`,
//!   `validate`, `rules`, `relations`), and the in-memory catalog: owned per
//!   repository (`unit`), re-stitched only where a change touches it
//!   (`stitch`), every change numbered (`changes`); queries, paging and
//!   cursors (`query`, `paging`, `search`, `facets`, `ancestry`), each
//!   evaluation within a time budget (`budget`).
//! - [`checks`]: catalog checks on pull requests: the files a pull
//!   request changes read at its commit and processed without applying
//!   (`run`), compared with what is served (`diff`), posted to Bitbucket
//!   and kept as a preview until merged or declined (`previews`).
//! - [`scheduler`]: runs sources on their schedules, never overlapping,
//!   stopped at their timeout (`runner`); applies results batch by batch
//!   through the deletion guard (`apply`, `guard`); webhook and refresh
//!   reads: the queue's model (`queue`), the queue (`events`) and what an
//!   item means against the store (`resolve`).
//! - [`store`]: SQLite (embedded) or PostgreSQL (shared) persistence of
//!   what is served (per entity, with its owner and change number), of each
//!   provider's repositories and of the locations registered over HTTP;
//!   each statement written once (`sql`), the databases differing only in a
//!   small dialect (`sqlite`, `postgres`).
//! - [`replica`]: several daemons on one PostgreSQL database: one leader
//!   (advisory lock) talks to Bitbucket, the others follow its changes
//!   (`feed`) and hand it their writes (`requests`).
//! - [`locations`]: the typed `Location` (`model`) for static, registered
//!   and discovered locations; registration (catalog-import, `analyze`),
//!   removal and `by-query` paging (`query`), refusals by cause (`error`).
//! - [`webhooks`]: Bitbucket's push, move, delete and pull-request events,
//!   verified by their signature and queued as single-repository reads
//!   (or pull-request checks) on the providers they concern.
//! - [`api`]: the axum router, every route mounted once (`routes`) with its
//!   OpenAPI entry generated from the handler and a write's permissions
//!   stated where it is mounted (`writes`: the token check, and on a
//!   follower the hand-over to the leader, `forward`; the request line and
//!   bearer token, `request`); thin handlers per
//!   resource, errors mapped to Backstage's bodies in one place (`error`),
//!   health and metrics (`ops`; gauges of the present set at each scrape),
//!   which answers the request log counts as failures (`classify`: not
//!   the probes' 503s), the status page from a template that escapes by
//!   default (`status_page`), built once per change (`status_cache`);
//!   queries over the whole catalog in turns shared fairly among clients
//!   (`query_pool`; who a client is: `caller`), large answers streamed as
//!   rendered (`stream`).
//! - [`app`]: [`Application`] wires it all together and reloads the
//!   config on SIGHUP or a watched file's change (`reload`); [`cli`] is
//!   what the binary calls (`serve`, `run-once` with its progress on
//!   stderr (`run_progress`), `config check`, `plan` (what a config would
//!   change, against the store opened read-only), `validate`, `health`).
//!
//! Leaves, used from anywhere: [`metrics`] (Prometheus, plain values in),
//! [`telemetry`] (logs, and OpenTelemetry traces when an OTLP endpoint is
//! set: `export`, the trace id in log lines `log_format`), `rfc3339` (how times are written).
//!
//! Modules are private: the items re-exported below are what the binary,
//! the tests and the benches use, so the compiler reports dead code.

#![warn(unreachable_pub)]

mod api;
mod app;
mod bitbucket;
mod catalog;
mod checks;
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
    ListingSchedule, Loaded, Origin, Schedule, ServerProviderConfig,
};
pub use discovery::location::{location_entity_name, location_id};
pub use discovery::pipeline::process_file;
pub use discovery::{RunReport, UnitUpdate};
pub use integrations::{Auth, Integrations};
pub use scheduler::Applier;
pub use secret::Secret;
pub use store::{
    Batch, CatalogStore, PostgresStore, PreviewId, PreviewStore, PreviewWrite, SqliteStore,
    StoredPreview,
};
pub use telemetry::{Telemetry, init as init_telemetry};

#[cfg(test)]
mod architecture;
