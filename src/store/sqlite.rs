//! The embedded default store: one SQLite file (WAL), or `:memory:`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use std::sync::Arc;

use futures::TryStreamExt;

use super::{
    Batch, CatalogStore, RegisteredLocation, RepositoryKey, StoreError, StoredCatalog,
    StoredEntity, record_of, removal_from, to_seq, unreadable,
};
use crate::catalog::search::SearchRows;
use crate::catalog::{Change, EntityKey, Owner, PreparedEntity};
use crate::discovery::{RepositoryRecord, RunReport};

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
        Migration::new(
            3,
            "entities owned per unit, numbered changes, repositories".into(),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(
                "CREATE TABLE catalog_entities (
                entity_key TEXT PRIMARY KEY,
                source_id TEXT NOT NULL,
                unit TEXT NOT NULL,
                seq INTEGER NOT NULL UNIQUE,
                entity_ref TEXT NOT NULL,
                uid TEXT NOT NULL,
                body TEXT NOT NULL,
                search TEXT NOT NULL,
                location TEXT,
                origin TEXT
            );
            CREATE INDEX catalog_entities_by_unit ON catalog_entities (source_id, unit);
            CREATE TABLE removed_entities (
                entity_key TEXT PRIMARY KEY,
                source_id TEXT NOT NULL,
                seq INTEGER NOT NULL UNIQUE
            );
            CREATE TABLE repositories (
                source_id TEXT NOT NULL,
                unit TEXT NOT NULL,
                record TEXT NOT NULL,
                PRIMARY KEY (source_id, unit)
            );
            -- A unit is the file an entity came from: its origin location.
            INSERT OR IGNORE INTO catalog_entities
                (entity_key, source_id, unit, seq, entity_ref, uid, body, search, location, origin)
            SELECT e.entity_key, e.source_id, COALESCE(e.origin, ''),
                ROW_NUMBER() OVER (ORDER BY s.position, e.seq),
                e.entity_ref, e.uid, e.body, e.search, e.location, e.origin
            FROM entities e JOIN sources s ON s.id = e.source_id
            ORDER BY s.position, e.seq;
            DROP TABLE entities;",
            ),
            false,
        ),
        Migration::new(
            4,
            "repositories by Bitbucket id".into(),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(
                "CREATE INDEX repositories_by_id
                ON repositories (source_id, json_extract(record, '$.id'));",
            ),
            false,
        ),
        Migration::new(
            5,
            "the change feed's horizon".into(),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(
                "CREATE TABLE catalog_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
            ),
            false,
        ),
    ])
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The file, for messages.
    database: String,
    /// Held until the store is closed: one daemon per database file.
    lock: Arc<parking_lot::Mutex<Option<std::fs::File>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let target = path.display().to_string();
        let in_memory = target == ":memory:";
        let lock = if in_memory { None } else { Some(lock(path)?) };
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
            .map_err(|source| StoreError::Open {
                target: target.clone(),
                source,
            })?;
        migrator()
            .run(&pool)
            .await
            .map_err(|err| unreadable(&target, err.into()))?;
        Ok(Self {
            pool,
            database: target,
            lock: Arc::new(parking_lot::Mutex::new(lock)),
        })
    }
    /// Everything stored; rows whose entity is not valid JSON are skipped
    /// and logged.
    async fn load_rows(&self, retained_removals: usize) -> Result<StoredCatalog, StoreError> {
        let (removals, horizon) = self.retained_removals(retained_removals).await?;
        let rows = sqlx::query("SELECT id, last_run FROM sources WHERE last_run IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        let runs = super::runs_from(&rows, &self.database)?;
        // Streamed: a large catalog is never held twice while loading.
        let mut entities = Vec::new();
        let mut skipped: Vec<(String, String)> = Vec::new();
        let mut rows = sqlx::query(
            "SELECT source_id, unit, entity_key, seq, entity_ref, uid, body, search, location, origin FROM catalog_entities",
        )
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            // Borrowed from the row: each text is copied once, into its place.
            let source: &str = row.try_get("source_id")?;
            let unit: &str = row.try_get("unit")?;
            let key: &str = row.try_get("entity_key")?;
            let body: &str = row.try_get("body")?;
            // One broken row must not make every listing invalid JSON.
            if serde_json::from_str::<serde::de::IgnoredAny>(body).is_err() {
                let entity_ref: &str = row.try_get("entity_ref")?;
                tracing::error!(
                    database = self.database,
                    source,
                    entity = entity_ref,
                    "a stored entity is not valid JSON; it is skipped (its source's next run stores it again)"
                );
                if !skipped.iter().any(|(s, u)| s == source && u == unit) {
                    skipped.push((source.to_owned(), unit.to_owned()));
                }
                continue;
            }
            entities.push(StoredEntity {
                seq: to_seq(row.try_get("seq")?),
                owner: Owner::new(source, unit),
                entity: PreparedEntity {
                    key: EntityKey::from_stored(key),
                    entity_ref: row.try_get("entity_ref")?,
                    uid: row.try_get("uid")?,
                    json: Arc::from(body),
                    search: SearchRows::from_packed(row.try_get("search")?),
                    location: row.try_get("location")?,
                    origin: row.try_get("origin")?,
                },
            });
        }
        drop(rows);
        // Its file would otherwise count as unchanged and never be read
        // (nor the entity stored) again.
        for (source, unit) in &skipped {
            sqlx::query(
                "UPDATE repositories SET record = json_remove(record, '$.changeToken')
                 WHERE source_id = ? AND unit = ? AND json_valid(record)",
            )
            .bind(source)
            .bind(unit)
            .execute(&self.pool)
            .await?;
        }
        let last_seq = last_seq(&self.pool).await?;
        Ok(StoredCatalog {
            entities,
            runs,
            last_seq,
            removals,
            horizon,
        })
    }
}

/// Takes `<database>.lock` exclusively (released when the process ends,
/// however it ends), creating the database's directory first.
fn lock(path: &Path) -> Result<std::fs::File, StoreError> {
    use fs4::fs_std::FileExt;

    let database = path.display().to_string();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.display().to_string(),
            source,
        })?;
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock = std::path::PathBuf::from(name);
    let failed = |source| StoreError::Lock {
        database: database.clone(),
        lock: lock.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(failed)?;
    match FileExt::try_lock_exclusive(&file) {
        Ok(true) => {}
        Ok(false) => {
            return Err(StoreError::Locked {
                database,
                lock: lock.display().to_string(),
            });
        }
        // Some network file systems (NFS without lockd) cannot lock at
        // all: a warning, not a daemon that cannot start there.
        Err(err) if locking_unsupported(&err) => tracing::warn!(
            database,
            lock = %lock.display(),
            error = %err,
            "the file system cannot lock the database; make sure only one daemon uses it"
        ),
        Err(err) => return Err(failed(err)),
    }
    Ok(file)
}

/// Locking itself is not available (ENOLCK, ENOTSUP): not another daemon.
fn locking_unsupported(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::Unsupported
        || matches!(err.raw_os_error(), Some(libc::ENOLCK | libc::ENOTSUP))
}

impl SqliteStore {
    /// Drops all but the newest `retained` removals, moving the horizon
    /// past the dropped ones; returns those kept and the horizon.
    async fn retained_removals(
        &self,
        retained: usize,
    ) -> Result<(Vec<(EntityKey, u64)>, u64), StoreError> {
        let mut tx = self.pool.begin().await?;
        let kept = i64::try_from(retained).unwrap_or(i64::MAX);
        let cut: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM removed_entities ORDER BY seq DESC LIMIT 1 OFFSET ?",
        )
        .bind(kept)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(cut) = cut {
            sqlx::query("DELETE FROM removed_entities WHERE seq <= ?")
                .bind(cut)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO catalog_meta (name, value) VALUES ('horizon', ?)
                 ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
            )
            .bind(cut)
            .execute(&mut *tx)
            .await?;
        }
        let horizon: Option<i64> =
            sqlx::query_scalar("SELECT value FROM catalog_meta WHERE name = 'horizon'")
                .fetch_optional(&mut *tx)
                .await?;
        let rows = sqlx::query("SELECT entity_key, seq FROM removed_entities ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let removals = rows.iter().map(removal_from).collect::<Result<_, _>>()?;
        Ok((removals, horizon.map_or(0, to_seq)))
    }
}

impl CatalogStore for SqliteStore {
    fn load(&self, retained_removals: usize) -> BoxFuture<'_, Result<StoredCatalog, StoreError>> {
        Box::pin(async move {
            self.load_rows(retained_removals)
                .await
                .map_err(|err| unreadable(&self.database, err))
        })
    }

    fn apply<'a>(&'a self, batch: Batch<'a>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            for change in batch.changes {
                let seq = i64::try_from(change.seq()).unwrap_or(i64::MAX);
                match change {
                    Change::Upsert { entity, owner, .. } => {
                        sqlx::query(
                            "INSERT INTO catalog_entities (entity_key, source_id, unit, seq, entity_ref, uid, body, search, location, origin)
                             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                             ON CONFLICT (entity_key) DO UPDATE SET source_id = excluded.source_id, unit = excluded.unit,
                               seq = excluded.seq, entity_ref = excluded.entity_ref, uid = excluded.uid, body = excluded.body,
                               search = excluded.search, location = excluded.location, origin = excluded.origin",
                        )
                        .bind(entity.key.as_str())
                        .bind(owner.source.as_ref())
                        .bind(owner.unit.as_ref())
                        .bind(seq)
                        .bind(entity.entity_ref.as_str())
                        .bind(entity.uid.as_str())
                        .bind(entity.json.as_ref())
                        .bind(entity.search.packed())
                        .bind(entity.location.as_deref())
                        .bind(entity.origin.as_deref())
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query("DELETE FROM removed_entities WHERE entity_key = ?")
                            .bind(entity.key.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    Change::Remove { key, source, .. } => {
                        sqlx::query("DELETE FROM catalog_entities WHERE entity_key = ?")
                            .bind(key.as_str())
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(
                            "INSERT INTO removed_entities (entity_key, source_id, seq) VALUES (?, ?, ?)
                             ON CONFLICT (entity_key) DO UPDATE SET source_id = excluded.source_id, seq = excluded.seq",
                        )
                        .bind(key.as_str())
                        .bind(source.as_ref())
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            for record in batch.repositories {
                let text = super::to_json(record, batch.source)?;
                sqlx::query(
                    "INSERT INTO repositories (source_id, unit, record) VALUES (?, ?, ?)
                     ON CONFLICT (source_id, unit) DO UPDATE SET record = excluded.record",
                )
                .bind(batch.source)
                .bind(record.catalog_url.as_str())
                .bind(text)
                .execute(&mut *tx)
                .await?;
            }
            for unit in batch.forgotten {
                sqlx::query("DELETE FROM repositories WHERE source_id = ? AND unit = ?")
                    .bind(batch.source)
                    .bind(unit.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn repositories<'a>(
        &'a self,
        source: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RepositoryRecord>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT record FROM repositories WHERE source_id = ?")
                .bind(source)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(|row| record_of(row, source)).collect()
        })
    }

    fn repository<'a>(
        &'a self,
        source: &'a str,
        key: RepositoryKey<'a>,
    ) -> BoxFuture<'a, Result<Option<RepositoryRecord>, StoreError>> {
        Box::pin(async move {
            let query = match key {
                RepositoryKey::Unit(unit) => {
                    sqlx::query("SELECT record FROM repositories WHERE source_id = ? AND unit = ?")
                        .bind(source)
                        .bind(unit)
                }
                RepositoryKey::Id(id) => sqlx::query(
                    "SELECT record FROM repositories
                    WHERE source_id = ? AND json_extract(record, '$.id') = ? LIMIT 1",
                )
                .bind(source)
                .bind(id),
            };
            let row = query.fetch_optional(&self.pool).await?;
            row.map(|row| record_of(&row, source)).transpose()
        })
    }

    fn save_run<'a>(
        &'a self,
        source: &'a str,
        run: &'a RunReport,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let run_json = super::to_json(run, source)?;
            sqlx::query("INSERT INTO sources (id, last_run) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET last_run = excluded.last_run")
                .bind(source)
                .bind(run_json)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn retain_sources<'a>(&'a self, keep: &'a [String]) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let ids: Vec<String> = sqlx::query(
                "SELECT id FROM sources UNION SELECT source_id FROM catalog_entities UNION SELECT source_id FROM repositories",
            )
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .filter_map(|row| row.try_get::<String, _>(0).ok())
            .filter(|id| !keep.contains(id))
            .collect();
            let mut tx = self.pool.begin().await?;
            for id in &ids {
                let next = i64::try_from(last_seq(&mut *tx).await?).unwrap_or(i64::MAX);
                sqlx::query(
                    "INSERT INTO removed_entities (entity_key, source_id, seq)
                     SELECT entity_key, source_id, ? + ROW_NUMBER() OVER (ORDER BY entity_key)
                     FROM catalog_entities WHERE source_id = ? ORDER BY entity_key
                     ON CONFLICT (entity_key) DO UPDATE SET source_id = excluded.source_id, seq = excluded.seq",
                )
                .bind(next)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                for table in [
                    "DELETE FROM catalog_entities WHERE source_id = ?",
                    "DELETE FROM repositories WHERE source_id = ?",
                    "DELETE FROM sources WHERE id = ?",
                ] {
                    sqlx::query(table).bind(id).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(ids.len() as u64)
        })
    }

    fn locations(&self) -> BoxFuture<'_, Result<Vec<RegisteredLocation>, StoreError>> {
        Box::pin(async move {
            let rows =
                sqlx::query("SELECT id, type, target, created_at FROM locations ORDER BY position")
                    .fetch_all(&self.pool)
                    .await?;
            rows.iter().map(RegisteredLocation::from_row).collect()
        })
    }

    fn replace_location<'a>(
        &'a self,
        old: Option<(&'a str, &'a str)>,
        new: Option<&'a RegisteredLocation>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let mut removed = false;
            if let Some((id, source)) = old {
                removed = sqlx::query("DELETE FROM locations WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0;
                for statement in [
                    "DELETE FROM repositories WHERE source_id = ?",
                    "DELETE FROM sources WHERE id = ?",
                ] {
                    sqlx::query(statement)
                        .bind(source)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if let Some(location) = new {
                sqlx::query(
                    "INSERT INTO locations (id, type, target, created_at) VALUES (?, ?, ?, ?)",
                )
                .bind(&location.id)
                .bind(&location.type_)
                .bind(&location.target)
                .bind(location.created_at_text())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(removed)
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            // Dropping the file releases the lock for the next daemon.
            self.lock.lock().take();
        })
    }
}

/// The latest sequence number given to a change, kept or removed.
async fn last_seq<'e>(executor: impl sqlx::SqliteExecutor<'e>) -> Result<u64, sqlx::Error> {
    let seq: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(seq) FROM (SELECT MAX(seq) AS seq FROM catalog_entities UNION ALL SELECT MAX(seq) FROM removed_entities)",
    )
    .fetch_one(executor)
    .await?;
    Ok(seq.map_or(0, to_seq))
}

#[cfg(test)]
mod tests {
    use super::{SqliteStore, locking_unsupported};
    use crate::store::{CatalogStore, RegisteredLocation};

    #[tokio::test]
    async fn an_unreadable_registration_time_keeps_the_location() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("catalog.db"))
            .await
            .unwrap();
        sqlx::query("INSERT INTO locations (id, type, target, created_at) VALUES ('l1', 'url', 'https://h/x.yaml', 'yesterday')")
            .execute(&store.pool)
            .await
            .unwrap();
        let locations = store.locations().await.unwrap();
        assert_eq!(locations.len(), 1);
        assert_eq!(locations[0].target, "https://h/x.yaml");
        assert_eq!(locations[0].created_at, chrono::DateTime::UNIX_EPOCH);
    }

    #[tokio::test]
    async fn a_failed_replace_keeps_the_old_location() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("catalog.db"))
            .await
            .unwrap();
        let location = |id: &str, target: &str| RegisteredLocation {
            id: id.into(),
            type_: "url".into(),
            target: target.into(),
            created_at: chrono::Utc::now(),
        };
        store
            .add_location(&location("l1", "https://h/1.yaml"))
            .await
            .unwrap();
        store
            .add_location(&location("l2", "https://h/2.yaml"))
            .await
            .unwrap();
        // First the new target is taken, so storing it fails after l1 is
        // deleted: l1 must stay. Then a free target replaces l1.
        for (target, ok, kept) in [
            ("https://h/2.yaml", false, ["l1", "l2"]),
            ("https://h/3.yaml", true, ["l2", "l3"]),
        ] {
            let new = location("l3", target);
            let replaced = store.replace_location(Some(("l1", "location:l1")), Some(&new));
            assert_eq!(replaced.await.is_ok(), ok);
            let stored = store.locations().await.unwrap();
            assert_eq!(stored.iter().map(|l| &l.id).collect::<Vec<_>>(), kept);
        }
    }

    #[test]
    fn only_a_file_system_without_locks_degrades() {
        for errno in [libc::ENOLCK, libc::ENOTSUP] {
            assert!(locking_unsupported(&std::io::Error::from_raw_os_error(
                errno
            )));
        }
        for errno in [libc::EACCES, libc::EBADF, libc::EIO] {
            assert!(!locking_unsupported(&std::io::Error::from_raw_os_error(
                errno
            )));
        }
    }
}
