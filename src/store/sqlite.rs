//! The embedded default store: one SQLite file (WAL), or `:memory:`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;
use super::sql::{Dialect, Migrations, SqlStore};

pub(super) const MIGRATIONS: Migrations = &[
    (
        1,
        "sources and entities",
        include_str!("migrations/sqlite/0001_sources_and_entities.sql"),
    ),
    (
        2,
        "registered locations",
        include_str!("migrations/sqlite/0002_registered_locations.sql"),
    ),
    (
        3,
        "entities owned per unit, numbered changes, repositories",
        include_str!("migrations/sqlite/0003_entities_per_unit.sql"),
    ),
    (
        4,
        "repositories by Bitbucket id",
        include_str!("migrations/sqlite/0004_repositories_by_bitbucket_id.sql"),
    ),
    (
        5,
        "the change feed's horizon",
        include_str!("migrations/sqlite/0005_horizon.sql"),
    ),
    (
        6,
        "withheld refs",
        include_str!("migrations/sqlite/0006_withheld_refs.sql"),
    ),
    (
        7,
        "entity references",
        include_str!("migrations/sqlite/0007_entity_references.sql"),
    ),
    (
        8,
        "pull-request previews",
        include_str!("migrations/sqlite/0008_pull_request_previews.sql"),
    ),
];

/// The store in one SQLite file.
pub type SqliteStore = SqlStore<SqliteDialect>;

/// SQLite's statements, and the file lock a SQLite store holds until it
/// is closed (one daemon per database file).
#[derive(Debug, Clone)]
pub struct SqliteDialect {
    lock: Arc<parking_lot::Mutex<Option<std::fs::File>>>,
}

impl Dialect for SqliteDialect {
    type Db = sqlx::Sqlite;
    type Search<'a> = &'a str;

    // Spelled as migration 4 indexes it.
    const REPOSITORY_BY_ID: &'static str = "SELECT record FROM repositories
        WHERE source_id = $1 AND json_extract(record, '$.id') = $2 LIMIT 1";
    const FORGET_CHANGE_TOKEN: &'static str =
        "UPDATE repositories SET record = json_remove(record, '$.changeToken')
        WHERE source_id = $1 AND unit = $2 AND json_valid(record)";
    const ENTITIES_AFTER: &'static str = "SELECT source_id, unit, entity_key, seq, entity_ref, uid,
        body, search, location, origin, refs, json_valid(body) AS body_valid
        FROM catalog_entities WHERE seq > $1";

    fn search(packed: &str) -> &str {
        packed
    }

    fn closed(&self) {
        // Dropping the file releases the lock for the next daemon.
        self.lock.lock().take();
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let target = path.display().to_string();
        let in_memory = target == ":memory:";
        let open_failed = |source| StoreError::Open {
            target: target.clone(),
            source,
        };
        // The lock creates the database's directory.
        let lock = if in_memory { None } else { Some(lock(path)?) };
        let options = if in_memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(open_failed)?
        } else {
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
            .map_err(open_failed)?;
        let lock = Arc::new(parking_lot::Mutex::new(lock));
        Self::migrated(pool, target, SqliteDialect { lock }, MIGRATIONS).await
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

#[cfg(test)]
mod tests {
    use super::{SqliteStore, locking_unsupported};
    use crate::catalog::search::SearchRows;
    use crate::catalog::{Catalog, Entity, UnitEntities};
    use crate::store::{Batch, CatalogStore, RegisteredLocation};

    /// Rows stored in an earlier form are packed again at the first start
    /// and stored so, once: the next start reads them as they are, with the
    /// same rows.
    #[tokio::test]
    async fn search_rows_of_an_earlier_form_are_stored_anew_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let entity: Entity = serde_json::from_value(serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "payments", "description": "Pays", "tags": ["java"]},
            "spec": {"type": "service", "owner": "team-a", "lifecycle": "production"},
        }))
        .unwrap();
        let units = vec![UnitEntities {
            unit: "u".into(),
            entities: vec![entity.into()],
        }];
        let applied = Catalog::new().prepare("p", units);
        store
            .apply(Batch {
                source: "p",
                changes: &applied.changes,
                repositories: &[],
                forgotten: &[],
                withheld: &[],
            })
            .await
            .unwrap();
        let stored_rows = |pool: sqlx::SqlitePool| async move {
            let (search,): (String,) = sqlx::query_as("SELECT search FROM catalog_entities")
                .fetch_one(&pool)
                .await
                .unwrap();
            search
        };
        let restored = |store: SqliteStore| async move {
            let catalog = Catalog::new();
            store.restore(usize::MAX, &catalog).await.unwrap();
            let entity = catalog.snapshot().iter().next().cloned().unwrap();
            (store, entity)
        };
        let (store, current) = restored(store).await;
        let plain = current.search.plain_form();
        sqlx::query("UPDATE catalog_entities SET search = $1")
            .bind(&plain)
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(!SearchRows::is_current(
            &stored_rows(store.pool.clone()).await
        ));

        let (store, repacked) = restored(store).await;
        assert_eq!(repacked.search, current.search);
        let stored = stored_rows(store.pool.clone()).await;
        assert!(SearchRows::is_current(&stored), "stored anew: {stored:?}");
        assert_eq!(stored, current.search.packed());
        let (_, again) = restored(store).await;
        assert_eq!(again.search, current.search);
    }

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
