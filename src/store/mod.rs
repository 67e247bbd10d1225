//! Durable storage of what is served, unit by unit, and of the locations
//! registered over HTTP.
//!
//! The catalog is served from memory; the store is written batch by batch
//! as runs read repositories (one transaction per batch, so a crash keeps
//! every applied batch and nothing half-applied) and read once at start-up.
//! SQLite ([`SqliteStore`]) is the embedded default; PostgreSQL
//! ([`PostgresStore`]) is shared by replicas, which follow its changes.

pub(crate) mod postgres;
mod previews;
pub(crate) mod read_only;
mod sql;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::catalog::relations::Reference;
use crate::catalog::{Catalog, Change, Owner, PreparedEntity, Withholding};
use crate::config::{DatabaseClient, DatabaseConfig};
use crate::discovery::{RepositoryRecord, RunReport};
pub use postgres::PostgresStore;
pub use previews::{PreviewId, PreviewStore, PreviewWrite, StoredPreview};
pub use sqlite::SqliteStore;

/// The default SQLite file, as in the example config.
pub(crate) const DEFAULT_SQLITE_FILE: &str = "./data/catalog.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the catalog database {target}: {source}; check backend.database.connection and that its directory is writable"
    )]
    Open { target: String, source: sqlx::Error },
    #[error(
        "cannot connect to the catalog database {target}: {source}; check backend.database.connection (host, port, user, password, database, ssl) and that the server accepts connections from here"
    )]
    Connect { target: String, source: sqlx::Error },
    #[error("cannot create the directory {dir} for the catalog database: {source}")]
    CreateDir { dir: String, source: std::io::Error },
    #[error("catalog database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("catalog database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error(
        "this replica ({identity}) no longer leads; another one writes the catalog database now"
    )]
    NotLeader { identity: String },
    #[error("stored data for source {source_id} is unreadable: {message}")]
    Corrupt { source_id: String, message: String },
    #[error(
        "another bitbucket-catalogd is using the catalog database {database} (it holds {lock}); stop it, or give this one its own backend.database.connection"
    )]
    Locked { database: String, lock: String },
    #[error("cannot lock the catalog database {database} through {lock}: {source}")]
    Lock {
        database: String,
        lock: String,
        source: std::io::Error,
    },
    #[error(
        "the catalog database {database} is unreadable: {source}; restore it from a backup, or move it away to start with an empty catalog that discovery fills again"
    )]
    Unreadable {
        database: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("backend.database.client is 'pg' but backend.database.connection is missing")]
    MissingConnection,
}

/// An entity as it was served, and who serves it.
#[derive(Debug, Clone)]
pub(crate) struct StoredEntity {
    pub owner: Owner,
    pub entity: PreparedEntity,
    /// The sequence number of its latest change.
    pub seq: u64,
    /// The references it makes, as stored with it (`None`: stored by an
    /// older version; they are derived from its JSON).
    pub(crate) references: Option<Box<[Reference]>>,
    /// Its search rows were stored in an earlier form and packed again.
    pub(crate) repacked: bool,
}

/// What [`CatalogStore::restore`] leaves besides the served catalog.
#[derive(Debug, Default)]
pub struct Restored {
    /// Each source's latest recorded run.
    pub runs: Vec<(String, RunReport)>,
    /// How many entities were restored.
    pub entities: usize,
}

/// One source's changes, applied in one transaction: the catalog's
/// numbered changes and the records of the repositories they came from.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub source: &'a str,
    pub changes: &'a [Change],
    pub repositories: &'a [RepositoryRecord],
    /// Units whose repository records go (no longer listed).
    pub forgotten: &'a [String],
    /// Refs now withheld for a unit of `source`, or no longer withheld.
    pub withheld: &'a [Withholding],
}

/// A location registered over HTTP (`POST /api/catalog/locations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredLocation {
    pub id: String,
    /// Always `url` for now, as the only type the daemon reads.
    pub type_: String,
    pub target: String,
    /// Stored as RFC 3339 text with milliseconds.
    pub created_at: DateTime<Utc>,
}

/// How one repository record is looked up.
#[derive(Debug, Clone, Copy)]
pub enum RepositoryKey<'a> {
    /// Its unit: the catalog file URL.
    Unit(&'a str),
    /// Bitbucket's id (stable across renames and moves).
    Id(&'a str),
}

/// Where the catalog is persisted: what is served, per entity and owner,
/// with every change numbered (removals leave a numbered tombstone), the
/// state of each provider's repositories, and each source's last run.
pub trait CatalogStore: PreviewStore + Send + Sync + std::fmt::Debug {
    /// Start-up: streams what is stored straight into `catalog` (never
    /// every row at once) and serves it; keeps only the newest
    /// `retained_removals` removals (older ones move the change feed's
    /// horizon). The relation index is left to [`Catalog::settle`].
    fn restore<'a>(
        &'a self,
        retained_removals: usize,
        catalog: &'a Catalog,
    ) -> BoxFuture<'a, Result<Restored, StoreError>>;

    /// Applies one batch atomically: a crash keeps it whole or not at all.
    fn apply<'a>(&'a self, batch: Batch<'a>) -> BoxFuture<'a, Result<(), StoreError>>;

    /// What is known about `source`'s repositories.
    fn repositories<'a>(
        &'a self,
        source: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RepositoryRecord>, StoreError>>;

    /// One of `source`'s repositories, by its unit or Bitbucket's id.
    fn repository<'a>(
        &'a self,
        source: &'a str,
        key: RepositoryKey<'a>,
    ) -> BoxFuture<'a, Result<Option<RepositoryRecord>, StoreError>>;

    /// Records `source`'s latest run.
    fn save_run<'a>(
        &'a self,
        source: &'a str,
        run: &'a RunReport,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets sources that are no longer configured; their entities leave
    /// numbered tombstones.
    fn retain_sources<'a>(&'a self, keep: &'a [String]) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Registered locations, in the order they were registered.
    fn locations(&self) -> BoxFuture<'_, Result<Vec<RegisteredLocation>, StoreError>>;

    /// Changes the registered locations in one transaction: forgets `old`
    /// (a location's id and its source, whose run record goes too; its
    /// entities go through [`CatalogStore::apply`] first) and records `new`.
    /// `false` when `old` names no registered location.
    fn replace_location<'a>(
        &'a self,
        old: Option<(&'a str, &'a str)>,
        new: Option<&'a RegisteredLocation>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records a newly registered location.
    fn add_location<'a>(
        &'a self,
        location: &'a RegisteredLocation,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.replace_location(None, Some(location)).await.map(drop) })
    }

    /// Forgets the registered location `id` and the run record of its
    /// `source`; `false` when no such location was registered.
    fn remove_location<'a>(
        &'a self,
        id: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.replace_location(Some((id, source)), None)
    }

    fn close(&self) -> BoxFuture<'_, ()>;
}

/// An opened store; `shared` when replicas may share it (PostgreSQL).
#[derive(Debug)]
pub(crate) struct Opened {
    pub store: Arc<dyn CatalogStore>,
    pub shared: Option<PostgresStore>,
}

/// Opens the store `backend.database` describes.
pub(crate) async fn open(config: &DatabaseConfig) -> Result<Opened, StoreError> {
    match config.client {
        DatabaseClient::BetterSqlite3 | DatabaseClient::Sqlite => {
            let target = sqlite_file(config);
            Ok(Opened {
                store: Arc::new(SqliteStore::open(Path::new(&target)).await?),
                shared: None,
            })
        }
        DatabaseClient::Pg => {
            let connection = config
                .postgres
                .as_ref()
                .ok_or(StoreError::MissingConnection)?;
            let store = PostgresStore::open(connection).await?;
            Ok(Opened {
                store: Arc::new(store.clone()),
                shared: Some(store),
            })
        }
    }
}

/// Where the store keeps the catalog, for the start-up log (never a password).
pub(crate) fn location(config: &DatabaseConfig) -> String {
    match config.client {
        DatabaseClient::BetterSqlite3 | DatabaseClient::Sqlite => {
            format!("SQLite {}", sqlite_file(config))
        }
        DatabaseClient::Pg => "PostgreSQL".to_owned(),
    }
}

/// The SQLite file (or `:memory:`) `backend.database.connection` names.
pub(crate) fn sqlite_file(config: &DatabaseConfig) -> String {
    match &config.connection {
        None => DEFAULT_SQLITE_FILE.to_owned(),
        Some(serde_json::Value::String(path)) => path.clone(),
        Some(serde_json::Value::Object(map)) => map
            .get("filename")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(DEFAULT_SQLITE_FILE)
            .to_owned(),
        Some(_) => DEFAULT_SQLITE_FILE.to_owned(),
    }
}
