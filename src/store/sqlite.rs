//! The embedded default store: one SQLite file (WAL), or `:memory:`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use std::sync::Arc;

use super::{CatalogStore, RegisteredLocation, StoreError, StoredSource};
use crate::catalog::search::SearchRows;
use crate::catalog::{EntityKey, PreparedEntity};
use crate::discovery::RunReport;

/// SQLite caps bound parameters per statement (32,766); 9 per row.
const ROWS_PER_INSERT: usize = 1000;

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "sources and entities".into(),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(
                "CREATE TABLE sources (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                last_run TEXT
            );
            CREATE TABLE entities (
                source_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                entity_key TEXT NOT NULL,
                entity_ref TEXT NOT NULL,
                uid TEXT NOT NULL,
                body TEXT NOT NULL,
                search TEXT NOT NULL,
                location TEXT,
                origin TEXT,
                PRIMARY KEY (source_id, seq)
            );",
            ),
            false,
        ),
        Migration::new(
            2,
            "registered locations".into(),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(
                "CREATE TABLE locations (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                target TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL
            );",
            ),
            false,
        ),
    ])
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let target = path.display().to_string();
        let in_memory = target == ":memory:";
        let options = if in_memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(|source| {
                StoreError::Open {
                    target: target.clone(),
                    source,
                }
            })?
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    dir: dir.display().to_string(),
                    source,
                })?;
            }
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                // WAL + NORMAL: a crash loses at most the last commit, never mixes two.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        }
        .busy_timeout(Duration::from_secs(5));
        // One connection: writes are serialised anyway, and `:memory:` is per connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open { target, source })?;
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }
}

impl CatalogStore for SqliteStore {
    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredSource>, StoreError>> {
        Box::pin(async move {
            let sources = sqlx::query("SELECT id, last_run FROM sources ORDER BY position")
                .fetch_all(&self.pool)
                .await?;
            let mut loaded = Vec::with_capacity(sources.len());
            for row in sources {
                let id: String = row.try_get("id")?;
                let last_run: Option<String> = row.try_get("last_run")?;
                let corrupt = |message: String| StoreError::Corrupt {
                    source_id: id.clone(),
                    message,
                };
                let last_run = last_run
                    .map(|text| serde_json::from_str::<RunReport>(&text))
                    .transpose()
                    .map_err(|e| corrupt(e.to_string()))?;
                let rows = sqlx::query(
                    "SELECT entity_key, entity_ref, uid, body, search, location, origin FROM entities WHERE source_id = ? ORDER BY seq",
                )
                .bind(&id)
                .fetch_all(&self.pool)
                .await?;
                let mut entities = Vec::with_capacity(rows.len());
                for row in rows {
                    let key: String = row.try_get("entity_key")?;
                    let body: String = row.try_get("body")?;
                    entities.push(PreparedEntity {
                        key: EntityKey::from_stored(&key),
                        entity_ref: row.try_get("entity_ref")?,
                        uid: row.try_get("uid")?,
                        json: Arc::from(body),
                        search: SearchRows::from_packed(row.try_get("search")?),
                        location: row.try_get("location")?,
                        origin: row.try_get("origin")?,
                    });
                }
                loaded.push(StoredSource {
                    id,
                    entities,
                    last_run,
                });
            }
            Ok(loaded)
        })
    }

    fn save_source<'a>(
        &'a self,
        source: &'a str,
        entities: &'a [Arc<PreparedEntity>],
        run: &'a RunReport,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let run_json = run_json(source, run)?;
            let mut tx = self.pool.begin().await?;
            upsert_run(&mut tx, source, &run_json).await?;
            sqlx::query("DELETE FROM entities WHERE source_id = ?")
                .bind(source)
                .execute(&mut *tx)
                .await?;
            for (chunk_index, chunk) in entities.chunks(ROWS_PER_INSERT).enumerate() {
                let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                let sql = format!(
                    "INSERT INTO entities (source_id, seq, entity_key, entity_ref, uid, body, search, location, origin) VALUES {placeholders}"
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (offset, entity) in chunk.iter().enumerate() {
                    let seq =
                        i64::try_from(chunk_index * ROWS_PER_INSERT + offset).unwrap_or(i64::MAX);
                    query = query
                        .bind(source)
                        .bind(seq)
                        .bind(entity.key.as_str())
                        .bind(entity.entity_ref.as_str())
                        .bind(entity.uid.as_str())
                        .bind(entity.json.as_ref())
                        .bind(entity.search.packed())
                        .bind(entity.location.as_deref())
                        .bind(entity.origin.as_deref());
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn save_run<'a>(
        &'a self,
        source: &'a str,
        run: &'a RunReport,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let run_json = run_json(source, run)?;
            let mut tx = self.pool.begin().await?;
            upsert_run(&mut tx, source, &run_json).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn retain_sources<'a>(&'a self, keep: &'a [String]) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let ids: Vec<String> = sqlx::query("SELECT id FROM sources")
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .filter_map(|row| row.try_get::<String, _>("id").ok())
                .collect();
            let mut removed = 0;
            let mut tx = self.pool.begin().await?;
            for id in ids.iter().filter(|id| !keep.contains(id)) {
                sqlx::query("DELETE FROM entities WHERE source_id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                removed += sqlx::query("DELETE FROM sources WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(removed)
        })
    }

    fn locations(&self) -> BoxFuture<'_, Result<Vec<RegisteredLocation>, StoreError>> {
        Box::pin(async move {
            let rows =
                sqlx::query("SELECT id, type, target, created_at FROM locations ORDER BY position")
                    .fetch_all(&self.pool)
                    .await?;
            rows.into_iter()
                .map(|row| {
                    Ok(RegisteredLocation {
                        id: row.try_get("id")?,
                        type_: row.try_get("type")?,
                        target: row.try_get("target")?,
                        created_at: row.try_get("created_at")?,
                    })
                })
                .collect()
        })
    }

    fn add_location<'a>(
        &'a self,
        location: &'a RegisteredLocation,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO locations (id, type, target, created_at) VALUES (?, ?, ?, ?)")
                .bind(&location.id)
                .bind(&location.type_)
                .bind(&location.target)
                .bind(&location.created_at)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn remove_location<'a>(
        &'a self,
        id: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let removed = sqlx::query("DELETE FROM locations WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM entities WHERE source_id = ?")
                .bind(source)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM sources WHERE id = ?")
                .bind(source)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(removed > 0)
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.pool.close().await })
    }
}

fn run_json(source: &str, run: &RunReport) -> Result<String, StoreError> {
    serde_json::to_string(run).map_err(|e| StoreError::Corrupt {
        source_id: source.to_owned(),
        message: e.to_string(),
    })
}

async fn upsert_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    source: &str,
    run_json: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sources (id, last_run) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET last_run = excluded.last_run")
        .bind(source)
        .bind(run_json)
        .execute(&mut **tx)
        .await
        .map(drop)
}
