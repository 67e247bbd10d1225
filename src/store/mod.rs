//! Durable storage of each source's last successful entity set, and of the
//! locations registered over HTTP.
//!
//! The catalog is served from memory; the store is only written after a
//! successful run (one transaction per run, so a crash leaves either the old
//! or the new set) and read once at start-up.

mod sqlite;

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::catalog::PreparedEntity;
use crate::config::{DatabaseClient, DatabaseConfig};
use crate::discovery::RunReport;
pub use sqlite::SqliteStore;

/// The default SQLite file, as in the example config.
pub const DEFAULT_SQLITE_FILE: &str = "./data/catalog.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the catalog database {target}: {source}; check backend.database.connection and that its directory is writable"
    )]
    Open { target: String, source: sqlx::Error },
    #[error("cannot create the directory {dir} for the catalog database: {source}")]
    CreateDir { dir: String, source: std::io::Error },
    #[error("catalog database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("catalog database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored data for source {source_id} is unreadable: {message}")]
    Corrupt { source_id: String, message: String },
    #[error(
        "backend.database.client 'pg' is not supported by this version; use better-sqlite3 (the default)"
    )]
    Unsupported,
}

/// One source's persisted state.
#[derive(Debug, Clone)]
pub struct StoredSource {
    pub id: String,
    /// As they were served, so start-up needs no parsing.
    pub entities: Vec<PreparedEntity>,
    /// The latest recorded run; it may have failed, in which case
    /// `entities` are still those of the last successful one.
    pub last_run: Option<RunReport>,
}

/// A location registered over HTTP (`POST /api/catalog/locations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredLocation {
    pub id: String,
    /// Always `url` for now, as the only type the daemon reads.
    pub type_: String,
    pub target: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Where sources are persisted. Implementations write a source's whole set
/// in one transaction.
pub trait CatalogStore: Send + Sync + std::fmt::Debug {
    /// Every stored source, in the order they were first stored (which
    /// decides ownership of contested entity refs, as at run time).
    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredSource>, StoreError>>;

    /// Replaces `source`'s entities and run record atomically.
    fn save_source<'a>(
        &'a self,
        source: &'a str,
        entities: &'a [Arc<PreparedEntity>],
        run: &'a RunReport,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Records a run that did not change the entities (e.g. a failed one).
    fn save_run<'a>(
        &'a self,
        source: &'a str,
        run: &'a RunReport,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets sources that are no longer configured.
    fn retain_sources<'a>(&'a self, keep: &'a [String]) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Registered locations, in the order they were registered.
    fn locations(&self) -> BoxFuture<'_, Result<Vec<RegisteredLocation>, StoreError>>;

    /// Records a newly registered location.
    fn add_location<'a>(
        &'a self,
        location: &'a RegisteredLocation,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Forgets the registered location `id` together with the entities and
    /// run record of its `source`, in one transaction; `false` when no such
    /// location was registered.
    fn remove_location<'a>(
        &'a self,
        id: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Opens the store `backend.database` describes.
pub async fn open(config: &DatabaseConfig) -> Result<Box<dyn CatalogStore>, StoreError> {
    match config.client {
        DatabaseClient::BetterSqlite3 | DatabaseClient::Sqlite => {
            let target = match &config.connection {
                None => DEFAULT_SQLITE_FILE.to_owned(),
                Some(serde_json::Value::String(path)) => path.clone(),
                Some(serde_json::Value::Object(map)) => map
                    .get("filename")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or(DEFAULT_SQLITE_FILE)
                    .to_owned(),
                Some(_) => DEFAULT_SQLITE_FILE.to_owned(),
            };
            Ok(Box::new(SqliteStore::open(Path::new(&target)).await?))
        }
        DatabaseClient::Pg => Err(StoreError::Unsupported),
    }
}
