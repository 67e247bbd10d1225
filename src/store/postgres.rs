//! The shared store for replicas: PostgreSQL, same tables and semantics as
//! the SQLite store, plus what followers read (changes after a sequence
//! number) and the channel the leader notifies them on.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use futures::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgPool, Row};

use super::{
    Batch, CatalogStore, RegisteredLocation, RepositoryKey, StoreError, StoredCatalog,
    StoredEntity, record_of, removal_from, to_seq, unreadable,
};
use crate::catalog::search::SearchRows;
use crate::catalog::{Change, EntityKey, Followed, Owner, PreparedEntity};
use crate::config::database::{PostgresConnection, PostgresSsl};
use crate::discovery::{RepositoryRecord, RunReport};

/// Notified (with the newest sequence number) after every applied batch.
pub(crate) const CHANGES_CHANNEL: &str = "bitbucket_catalogd_changes";

/// Connections a replica keeps: batches are serialised, reads are few.
const POOL_SIZE: u32 = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "catalog".into(),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(
                "CREATE TABLE sources (
                position BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                last_run TEXT
            );
            CREATE TABLE locations (
                position BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                target TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL
            );
            CREATE TABLE catalog_entities (
                entity_key TEXT PRIMARY KEY,
                source_id TEXT NOT NULL,
                unit TEXT NOT NULL,
                seq BIGINT NOT NULL UNIQUE,
                entity_ref TEXT NOT NULL,
                uid TEXT NOT NULL,
                body TEXT NOT NULL,
                search BYTEA NOT NULL,
                location TEXT,
                origin TEXT
            );
            CREATE INDEX catalog_entities_by_unit ON catalog_entities (source_id, unit);
            CREATE TABLE removed_entities (
                entity_key TEXT PRIMARY KEY,
                source_id TEXT NOT NULL,
                seq BIGINT NOT NULL UNIQUE
            );
            CREATE TABLE repositories (
                source_id TEXT NOT NULL,
                unit TEXT NOT NULL,
                record JSONB NOT NULL,
                PRIMARY KEY (source_id, unit)
            );
            CREATE INDEX repositories_by_id ON repositories (source_id, (record ->> 'id'));
            CREATE TABLE catalog_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);",
            ),
            false,
        ),
        Migration::new(
            2,
            "replicas".into(),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(
                "CREATE TABLE replica_leader (
                only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
                identity TEXT NOT NULL,
                since TIMESTAMPTZ NOT NULL DEFAULT now()
            );
            CREATE TABLE replica_requests (
                id BIGSERIAL PRIMARY KEY,
                method TEXT NOT NULL,
                uri TEXT NOT NULL,
                headers JSONB NOT NULL,
                body BYTEA NOT NULL,
                forwarded_by TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                claimed_by TEXT,
                claimed_at TIMESTAMPTZ,
                status INTEGER,
                response_headers JSONB,
                response_body BYTEA
            );",
            ),
            false,
        ),
    ])
}

/// What the driver needs to connect, from the parsed config. The password
/// goes into the options only (they are never printed).
pub(crate) fn connect_options(connection: &PostgresConnection) -> PgConnectOptions {
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(&connection.host)
        .port(connection.port)
        .username(&connection.user)
        .database(&connection.database)
        .application_name("bitbucket-catalogd")
        .log_statements(tracing::log::LevelFilter::Trace)
        // A leader cut off mid-transaction holds the leader row, which the
        // next leader must update: the server ends such a session soon
        // instead of after the kernel's two-hour keepalive.
        .options([
            ("idle_in_transaction_session_timeout", "30s"),
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "2"),
            ("tcp_keepalives_count", "3"),
        ]);
    if let Some(password) = &connection.password {
        options = options.password(password.expose());
    }
    match &connection.ssl {
        PostgresSsl::Disable => options.ssl_mode(PgSslMode::Disable),
        PostgresSsl::Prefer => options.ssl_mode(PgSslMode::Prefer),
        PostgresSsl::Require => options.ssl_mode(PgSslMode::Require),
        PostgresSsl::VerifyFull { ca } => {
            let options = options.ssl_mode(PgSslMode::VerifyFull);
            match ca {
                Some(pem) => options.ssl_root_cert_from_pem(pem.as_bytes().to_vec()),
                None => options,
            }
        }
    }
}

/// `host:port/database` (no user or password), for messages.
pub(crate) fn describe(connection: &PostgresConnection) -> String {
    format!(
        "postgres {}:{}/{}",
        connection.host, connection.port, connection.database
    )
}

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// `host:port/database`, for messages.
    database: String,
    /// Among replicas: this replica's identity. Every write checks, in its
    /// transaction, that it is still the recorded leader (a leader that
    /// lost its lock but has not noticed yet cannot write after the next
    /// one took over).
    fence: Arc<parking_lot::RwLock<Option<String>>>,
}

impl PostgresStore {
    /// Connects (creating the database if it does not exist) and migrates;
    /// replicas starting together migrate one at a time (sqlx holds an
    /// advisory lock while migrating).
    pub async fn open(connection: &PostgresConnection) -> Result<Self, StoreError> {
        let database = describe(connection);
        let options = connect_options(connection);
        create_database_if_missing(&options, &connection.database).await;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                target: database.clone(),
                source,
            })?;
        migrator()
            .run(&pool)
            .await
            .map_err(|err| unreadable(&database, err.into()))?;
        Ok(Self {
            pool,
            database,
            fence: Arc::default(),
        })
    }

    /// Writes from now on require `identity` to be the recorded leader.
    pub fn fence_as(&self, identity: &str) {
        *self.fence.write() = Some(identity.to_owned());
    }

    /// Begins a write: a transaction in which this replica, if it is one,
    /// holds the leader record (shared, so the next leader's takeover
    /// waits for it to end) — or an error when another one leads.
    async fn begin_write(&self) -> Result<sqlx::PgTransaction<'static>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let identity = self.fence.read().clone();
        if let Some(identity) = identity {
            let leads: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM replica_leader WHERE identity = $1 FOR SHARE")
                    .bind(&identity)
                    .fetch_optional(&mut *tx)
                    .await?;
            if leads.is_none() {
                return Err(StoreError::NotLeader { identity });
            }
        }
        Ok(tx)
    }

    /// `host:port/database`, for messages.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The connection pool (replicas coordinate through it).
    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// Records `identity` as the leader (only the holder of the lock does).
    pub async fn record_leader(&self, identity: &str) -> Result<(), StoreError> {
        // Waits for the last leader's write in progress, which holds the row,
        // but not for ever (the caller retries).
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '10s'")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO replica_leader (only_row, identity) VALUES (TRUE, $1)
             ON CONFLICT (only_row) DO UPDATE SET identity = excluded.identity, since = now()",
        )
        .bind(identity)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.fence_as(identity);
        Ok(())
    }

    /// The identity the leader recorded.
    pub async fn leader(&self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT identity FROM replica_leader")
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every change stored after `seq`, in sequence order (for a follower),
    /// the newest sequence number, and the horizon below which removals
    /// were dropped (a follower behind it must reload).
    pub async fn changes_after(&self, seq: u64) -> Result<FollowedChanges, StoreError> {
        let after = i64::try_from(seq).unwrap_or(i64::MAX);
        // One snapshot, so the last sequence number matches the rows.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let horizon = horizon(&mut *tx).await?;
        let mut changes = Vec::new();
        let mut rows = sqlx::query(
            "SELECT source_id, unit, entity_key, seq, entity_ref, uid, body, search, location, origin
             FROM catalog_entities WHERE seq > $1",
        )
        .bind(after)
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            if let Some(stored) = self.entity_of(&row)? {
                changes.push(Followed::Upsert {
                    owner: stored.owner,
                    entity: stored.entity,
                    seq: stored.seq,
                });
            }
        }
        drop(rows);
        let removed = sqlx::query("SELECT entity_key, seq FROM removed_entities WHERE seq > $1")
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
        for row in &removed {
            let (key, seq) = removal_from(row)?;
            changes.push(Followed::Remove { key, seq });
        }
        let last_seq = last_seq(&mut *tx).await?;
        tx.commit().await?;
        changes.sort_by_key(Followed::seq);
        Ok(FollowedChanges {
            changes,
            last_seq,
            horizon: horizon.map_or(0, to_seq),
        })
    }

    /// Every entity key stored (for a follower's full resync).
    pub async fn entity_keys(&self) -> Result<Vec<EntityKey>, StoreError> {
        let keys: Vec<String> = sqlx::query_scalar("SELECT entity_key FROM catalog_entities")
            .fetch_all(&self.pool)
            .await?;
        Ok(keys.iter().map(|k| EntityKey::from_stored(k)).collect())
    }

    /// A row of `catalog_entities`; `None` (logged) when its body is not JSON.
    fn entity_of(&self, row: &sqlx::postgres::PgRow) -> Result<Option<StoredEntity>, StoreError> {
        let source: &str = row.try_get("source_id")?;
        let unit: &str = row.try_get("unit")?;
        let body: &str = row.try_get("body")?;
        let search: Vec<u8> = row.try_get("search")?;
        let entity_ref: &str = row.try_get("entity_ref")?;
        let search = String::from_utf8(search).ok();
        // One broken row must not make every listing invalid JSON.
        if serde_json::from_str::<serde::de::IgnoredAny>(body).is_err() || search.is_none() {
            tracing::error!(
                database = self.database,
                source,
                entity = entity_ref,
                "a stored entity is not valid; it is skipped (its source's next run stores it again)"
            );
            return Ok(None);
        }
        let key: &str = row.try_get("entity_key")?;
        Ok(Some(StoredEntity {
            seq: to_seq(row.try_get("seq")?),
            owner: Owner::new(source, unit),
            entity: PreparedEntity {
                key: EntityKey::from_stored(key),
                entity_ref: entity_ref.to_owned(),
                uid: row.try_get("uid")?,
                json: Arc::from(body),
                search: SearchRows::from_packed(search.unwrap_or_default()),
                location: row.try_get("location")?,
                origin: row.try_get("origin")?,
            },
        }))
    }

    /// Each source's latest recorded run (one that is not valid is logged
    /// and skipped: only the status page loses it).
    pub async fn runs(&self) -> Result<Vec<(String, RunReport)>, StoreError> {
        let rows = sqlx::query("SELECT id, last_run FROM sources WHERE last_run IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        super::runs_from(&rows, &self.database)
    }

    async fn load_rows(&self, retained_removals: usize) -> Result<StoredCatalog, StoreError> {
        // Read first: a batch the leader commits while this loads has later
        // numbers, so a follower's catch-up from here replays it (what was
        // read of it already is applied again, to the same effect).
        let last_seq = last_seq(&self.pool).await?;
        let (removals, horizon) = self.retained_removals(retained_removals).await?;
        let runs = self.runs().await?;
        let mut entities = Vec::new();
        let mut skipped: Vec<(String, String)> = Vec::new();
        let mut rows = sqlx::query(
            "SELECT source_id, unit, entity_key, seq, entity_ref, uid, body, search, location, origin FROM catalog_entities",
        )
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            match self.entity_of(&row)? {
                Some(stored) => entities.push(stored),
                None => {
                    let source: String = row.try_get("source_id")?;
                    let unit: String = row.try_get("unit")?;
                    if !skipped.iter().any(|(s, u)| *s == source && *u == unit) {
                        skipped.push((source, unit));
                    }
                }
            }
        }
        drop(rows);
        // Its file would otherwise count as unchanged and never be read again.
        for (source, unit) in &skipped {
            sqlx::query(
                "UPDATE repositories SET record = record - 'changeToken'
                 WHERE source_id = $1 AND unit = $2",
            )
            .bind(source)
            .bind(unit)
            .execute(&self.pool)
            .await?;
        }
        Ok(StoredCatalog {
            entities,
            runs,
            last_seq,
            removals,
            horizon,
        })
    }

    async fn retained_removals(
        &self,
        retained: usize,
    ) -> Result<(Vec<(EntityKey, u64)>, u64), StoreError> {
        let mut tx = self.pool.begin().await?;
        let kept = i64::try_from(retained).unwrap_or(i64::MAX);
        let cut: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM removed_entities ORDER BY seq DESC LIMIT 1 OFFSET $1",
        )
        .bind(kept)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(cut) = cut {
            sqlx::query("DELETE FROM removed_entities WHERE seq <= $1")
                .bind(cut)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO catalog_meta (name, value) VALUES ('horizon', $1)
                 ON CONFLICT (name) DO UPDATE SET value = GREATEST(catalog_meta.value, excluded.value)",
            )
            .bind(cut)
            .execute(&mut *tx)
            .await?;
        }
        let horizon = horizon(&mut *tx).await?;
        let rows = sqlx::query("SELECT entity_key, seq FROM removed_entities ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let removals = rows.iter().map(removal_from).collect::<Result<_, _>>()?;
        Ok((removals, horizon.map_or(0, to_seq)))
    }
}

/// What a follower reads after its sequence number.
#[derive(Debug)]
pub struct FollowedChanges {
    /// In sequence order.
    pub changes: Vec<Followed>,
    pub last_seq: u64,
    pub horizon: u64,
}

/// Connects to the `postgres` maintenance database and creates `database`
/// when it is missing. Failing that (no right to create databases), the
/// connection that follows reports what is wrong.
async fn create_database_if_missing(options: &PgConnectOptions, database: &str) {
    let maintenance = options.clone().database("postgres");
    let Ok(Ok(mut conn)) = tokio::time::timeout(CONNECT_TIMEOUT, maintenance.connect()).await
    else {
        return;
    };
    let exists: Result<Option<i32>, _> =
        sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(database)
            .fetch_optional(&mut conn)
            .await;
    if matches!(exists, Ok(None)) {
        let quoted = format!("\"{}\"", database.replace('"', "\"\""));
        match sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database, "created the catalog database"),
            // Another replica created it at the same moment.
            Err(sqlx::Error::Database(err))
                if matches!(err.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(err) => {
                tracing::warn!(database, error = %err, "cannot create the catalog database")
            }
        }
    }
    let _ = conn.close().await;
}

impl CatalogStore for PostgresStore {
    fn load(&self, retained_removals: usize) -> BoxFuture<'_, Result<StoredCatalog, StoreError>> {
        Box::pin(async move {
            self.load_rows(retained_removals)
                .await
                .map_err(|err| unreadable(&self.database, err))
        })
    }

    fn apply<'a>(&'a self, batch: Batch<'a>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.begin_write().await?;
            let mut newest = 0;
            for change in batch.changes {
                newest = newest.max(change.seq());
                let seq = i64::try_from(change.seq()).unwrap_or(i64::MAX);
                match change {
                    Change::Upsert { entity, owner, .. } => {
                        sqlx::query(
                            "INSERT INTO catalog_entities (entity_key, source_id, unit, seq, entity_ref, uid, body, search, location, origin)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
                        .bind(entity.search.packed().as_bytes())
                        .bind(entity.location.as_deref())
                        .bind(entity.origin.as_deref())
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query("DELETE FROM removed_entities WHERE entity_key = $1")
                            .bind(entity.key.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    Change::Remove { key, source, .. } => {
                        sqlx::query("DELETE FROM catalog_entities WHERE entity_key = $1")
                            .bind(key.as_str())
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(
                            "INSERT INTO removed_entities (entity_key, source_id, seq) VALUES ($1, $2, $3)
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
                    "INSERT INTO repositories (source_id, unit, record) VALUES ($1, $2, $3::jsonb)
                     ON CONFLICT (source_id, unit) DO UPDATE SET record = excluded.record",
                )
                .bind(batch.source)
                .bind(record.catalog_url.as_str())
                .bind(text)
                .execute(&mut *tx)
                .await?;
            }
            for unit in batch.forgotten {
                sqlx::query("DELETE FROM repositories WHERE source_id = $1 AND unit = $2")
                    .bind(batch.source)
                    .bind(unit.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            if newest > 0 {
                notify(&mut tx, newest).await?;
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
            let rows =
                sqlx::query("SELECT record::text AS record FROM repositories WHERE source_id = $1")
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
                RepositoryKey::Unit(unit) => sqlx::query(
                    "SELECT record::text AS record FROM repositories WHERE source_id = $1 AND unit = $2",
                )
                .bind(source)
                .bind(unit),
                RepositoryKey::Id(id) => sqlx::query(
                    "SELECT record::text AS record FROM repositories
                     WHERE source_id = $1 AND record ->> 'id' = $2 LIMIT 1",
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
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "INSERT INTO sources (id, last_run) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET last_run = excluded.last_run",
            )
            .bind(source)
            .bind(run_json)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn retain_sources<'a>(&'a self, keep: &'a [String]) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM sources UNION SELECT source_id FROM catalog_entities UNION SELECT source_id FROM repositories",
            )
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .filter(|id: &String| !keep.contains(id))
            .collect();
            let mut tx = self.begin_write().await?;
            for id in &ids {
                let next = i64::try_from(last_seq(&mut *tx).await?).unwrap_or(i64::MAX);
                sqlx::query(
                    "INSERT INTO removed_entities (entity_key, source_id, seq)
                     SELECT entity_key, source_id, $1 + ROW_NUMBER() OVER (ORDER BY entity_key)
                     FROM catalog_entities WHERE source_id = $2
                     ON CONFLICT (entity_key) DO UPDATE SET source_id = excluded.source_id, seq = excluded.seq",
                )
                .bind(next)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                for statement in [
                    "DELETE FROM catalog_entities WHERE source_id = $1",
                    "DELETE FROM repositories WHERE source_id = $1",
                    "DELETE FROM sources WHERE id = $1",
                ] {
                    sqlx::query(statement).bind(id).execute(&mut *tx).await?;
                }
            }
            if !ids.is_empty() {
                let newest = last_seq(&mut *tx).await?;
                notify(&mut tx, newest).await?;
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
            let mut tx = self.begin_write().await?;
            let mut removed = false;
            if let Some((id, source)) = old {
                removed = sqlx::query("DELETE FROM locations WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0;
                for statement in [
                    "DELETE FROM repositories WHERE source_id = $1",
                    "DELETE FROM sources WHERE id = $1",
                ] {
                    sqlx::query(statement)
                        .bind(source)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if let Some(location) = new {
                sqlx::query(
                    "INSERT INTO locations (id, type, target, created_at) VALUES ($1, $2, $3, $4)",
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
        Box::pin(async move { self.pool.close().await })
    }
}

/// Wakes followers once the transaction commits.
async fn notify(tx: &mut sqlx::PgTransaction<'_>, seq: u64) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(seq.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The latest sequence number given to a change, kept or removed.
/// The newest sequence number no longer retained as a removal, if any.
async fn horizon<'e>(executor: impl sqlx::PgExecutor<'e>) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM catalog_meta WHERE name = 'horizon'")
        .fetch_optional(executor)
        .await
}

async fn last_seq<'e>(executor: impl sqlx::PgExecutor<'e>) -> Result<u64, sqlx::Error> {
    let seq: Option<i64> = sqlx::query_scalar(
        "SELECT GREATEST((SELECT MAX(seq) FROM catalog_entities), (SELECT MAX(seq) FROM removed_entities))",
    )
    .fetch_one(executor)
    .await?;
    Ok(seq.map_or(0, to_seq))
}
