//! The catalog's tables in SQL, each statement written once for both
//! databases (sqlx reads `$N` placeholders in SQLite too). What really
//! differs between them is a [`Dialect`]: two statements, how the packed
//! search rows are bound, and the hooks around a write.

use std::sync::Arc;

use futures::TryStreamExt;
use futures::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type,
};

use super::{
    Batch, CatalogStore, RegisteredLocation, RepositoryKey, Restored, StoreError, StoredEntity,
};
use crate::catalog::search::SearchRows;
use crate::catalog::stitch;
use crate::catalog::{Catalog, Change, EntityKey, Owner, PreparedEntity, Withholding};
use crate::discovery::{RepositoryRecord, RunReport};

/// What differs between the two databases, and what a store of one holds
/// besides its pool (the file lock, the leader fence).
pub trait Dialect: Clone + Send + Sync + std::fmt::Debug + 'static {
    type Db: Database;
    /// The packed search rows as bound: TEXT in SQLite, BYTEA in PostgreSQL.
    type Search<'a>: Encode<'a, Self::Db> + Type<Self::Db> + Send;

    /// `record` of source `$1`'s repository with Bitbucket id `$2`, the way
    /// this database's index reads the id.
    const REPOSITORY_BY_ID: &'static str;
    /// Drops the change token from the record of source `$1`'s unit `$2`.
    const FORGET_CHANGE_TOKEN: &'static str;
    /// The entities stored after sequence number `$1`, with `body_valid`:
    /// 1 or 0 where the database checks the body is JSON as it reads it
    /// (on its own thread), NULL where the daemon must.
    const ENTITIES_AFTER: &'static str;

    fn search(packed: &str) -> Self::Search<'_>;

    /// Begins a write transaction (PostgreSQL checks the leader fence in it).
    fn begin_write<'a>(
        &'a self,
        pool: &'a Pool<Self::Db>,
    ) -> BoxFuture<'a, Result<Transaction<'static, Self::Db>, StoreError>> {
        Box::pin(async move { Ok(pool.begin().await?) })
    }

    /// Runs in a write transaction that stored changes up to `newest`, just
    /// before it commits (PostgreSQL notifies followers).
    fn notify<'a>(
        _tx: &'a mut Transaction<'static, Self::Db>,
        _newest: u64,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async { Ok(()) })
    }

    /// After the pool closed (SQLite releases its file lock).
    fn closed(&self) {}
}

/// The store over one database: its pool, its name for messages, and its
/// dialect.
#[derive(Debug)]
pub struct SqlStore<D: Dialect> {
    pub(super) pool: Pool<D::Db>,
    pub(super) database: String,
    pub(super) dialect: D,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            database: self.database.clone(),
            dialect: self.dialect.clone(),
        }
    }
}

/// Migrations in order: version, description, SQL. Applied ones are
/// compared by checksum: never edit a released file, add one.
pub(super) type Migrations = &'static [(i64, &'static str, &'static str)];

pub(super) fn migrator(migrations: Migrations) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(sql),
                    false,
                )
            })
            .collect(),
    )
}

impl<D: Dialect> SqlStore<D>
where
    <D::Db as Database>::Connection: sqlx::migrate::Migrate,
{
    /// Migrates the opened `pool` (named `database` in messages) and
    /// serves it.
    pub(super) async fn migrated(
        pool: Pool<D::Db>,
        database: String,
        dialect: D,
        migrations: Migrations,
    ) -> Result<Self, StoreError> {
        migrator(migrations)
            .run(&pool)
            .await
            .map_err(|err| unreadable(&database, err.into()))?;
        Ok(Self {
            pool,
            database,
            dialect,
        })
    }
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'r> &'r str: Encode<'r, D::Db> + Decode<'r, D::Db> + Type<D::Db>,
    for<'r> Option<&'r str>: Encode<'r, D::Db>,
    for<'r> String: Decode<'r, D::Db> + Type<D::Db>,
    for<'r> i64: Encode<'r, D::Db> + Decode<'r, D::Db> + Type<D::Db>,
    for<'r> Vec<u8>: Decode<'r, D::Db> + Type<D::Db>,
    &'static str: ColumnIndex<<D::Db as Database>::Row>,
{
    /// Streams everything stored into `catalog`, [`RESTORE_BATCH`] rows at
    /// a time, and serves it: memory holds what is served and one batch,
    /// never every row at once.
    async fn restore_rows(
        &self,
        retained_removals: usize,
        catalog: &Catalog,
    ) -> Result<Restored, StoreError> {
        let (last_seq, stitched, removals, horizon) = self.load_meta(retained_removals).await?;
        let runs = self.runs().await?;
        catalog.restore_removals(removals, horizon);
        let mut batch = Vec::with_capacity(RESTORE_BATCH);
        let mut entities = 0;
        let mut repacked = Vec::new();
        let skipped = self
            .stream_entities(&self.pool, 0, |stored| {
                if stored.repacked {
                    repacked.push((stored.entity.key.clone(), stored.seq));
                }
                batch.push((stored.owner, stored.entity, stored.seq, stored.references));
                if batch.len() == RESTORE_BATCH {
                    entities += batch.len();
                    catalog.restore_entities(batch.drain(..));
                }
            })
            .await?;
        entities += batch.len();
        catalog.restore_entities(batch);
        catalog.restored(last_seq);
        self.store_repacked(&repacked, catalog).await;
        self.forget_change_tokens(&skipped).await?;
        catalog.restore_withheld(self.withheld().await?);
        if stitched {
            catalog.restored_stitched();
        }
        Ok(Restored { runs, entities })
    }

    /// Stores the search rows of entities whose rows were stored in an
    /// earlier form, as restored, so later starts read them as they are
    /// (once, after an upgrade). A row changed since it was read (another
    /// `seq`) is left to its writer; a store that refuses the write (a
    /// follower past the leader fence) keeps the older form, read as before.
    async fn store_repacked(&self, repacked: &[(EntityKey, u64)], catalog: &Catalog) {
        if repacked.is_empty() {
            return;
        }
        let mut stored = 0;
        for chunk in repacked.chunks(RESTORE_BATCH) {
            match self.store_repacked_chunk(chunk, catalog).await {
                Ok(()) => stored += chunk.len(),
                // A follower: the leader stores them at its next start.
                Err(StoreError::NotLeader { .. }) => return,
                Err(err) => {
                    tracing::warn!(
                        database = self.database,
                        error = %err,
                        left = repacked.len() - stored,
                        "search rows stored in an earlier form could not be stored anew; they are packed again at each start until their entities change"
                    );
                    return;
                }
            }
        }
        tracing::info!(
            database = self.database,
            entities = stored,
            "search rows stored in an earlier form were stored anew (once, after an upgrade)"
        );
    }

    async fn store_repacked_chunk(
        &self,
        chunk: &[(EntityKey, u64)],
        catalog: &Catalog,
    ) -> Result<(), StoreError> {
        let mut tx = self.dialect.begin_write(&self.pool).await?;
        for (key, seq) in chunk {
            let Some(entity) = catalog.get(key) else {
                continue;
            };
            sqlx::query(
                "UPDATE catalog_entities SET search = $1 WHERE entity_key = $2 AND seq = $3",
            )
            .bind(D::search(entity.search.packed()))
            .bind(key.as_str())
            .bind(to_param(*seq))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest sequence number, whether a complete apply wrote it, and
    /// the retained removals with their horizon.
    async fn load_meta(
        &self,
        retained_removals: usize,
    ) -> Result<(u64, bool, Vec<(EntityKey, u64)>, u64), StoreError> {
        // Read first: a batch the leader commits while this loads has later
        // numbers, so a follower's catch-up from here replays it (what was
        // read of it already is applied again, to the same effect).
        let last_seq = Self::last_seq(&self.pool).await?;
        let stitched = Self::stitched(&self.pool).await? >= last_seq;
        let (removals, horizon) = self.retained_removals(retained_removals).await?;
        Ok((last_seq, stitched, removals, horizon))
    }

    /// Drops the change tokens of units with an entity skipped as not
    /// valid: their files would otherwise count as unchanged and never be
    /// read (nor the entity stored) again.
    async fn forget_change_tokens(&self, skipped: &[(String, String)]) -> Result<(), StoreError> {
        for (source, unit) in skipped {
            sqlx::query(D::FORGET_CHANGE_TOKEN)
                .bind(source.as_str())
                .bind(unit.as_str())
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Refs removed through the API and still withheld for their unit
    /// (also what a follower reads when it takes over).
    pub(crate) async fn withheld(&self) -> Result<Vec<(Owner, EntityKey)>, StoreError> {
        let rows = sqlx::query("SELECT entity_key, source_id, unit FROM withheld_refs")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let key: String = row.try_get("entity_key")?;
                let source: String = row.try_get("source_id")?;
                let unit: String = row.try_get("unit")?;
                Ok((
                    Owner {
                        source: Arc::from(source),
                        unit: Arc::from(unit),
                    },
                    EntityKey::from_stored(&key),
                ))
            })
            .collect()
    }

    /// Records that `change.key` is withheld for `change.unit` of
    /// `source`, or no longer withheld.
    async fn write_withholding(
        tx: &mut Transaction<'static, D::Db>,
        source: &str,
        change: &Withholding,
    ) -> Result<(), StoreError> {
        match &change.unit {
            Some(unit) => {
                sqlx::query(
                    "INSERT INTO withheld_refs (entity_key, source_id, unit) VALUES ($1, $2, $3)
                     ON CONFLICT (entity_key) DO UPDATE SET source_id = excluded.source_id, unit = excluded.unit",
                )
                .bind(change.key.as_str())
                .bind(source)
                .bind(unit.as_ref())
                .execute(&mut **tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM withheld_refs WHERE entity_key = $1")
                    .bind(change.key.as_str())
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    /// The entities stored after sequence number `seq` (0: all, as numbers
    /// start at 1), and the units of those skipped as not valid.
    pub(crate) async fn entities_after<'e>(
        &self,
        executor: impl Executor<'e, Database = D::Db>,
        seq: u64,
    ) -> Result<(Vec<StoredEntity>, Vec<(String, String)>), StoreError> {
        let mut entities = Vec::new();
        let skipped = self
            .stream_entities(executor, seq, |stored| entities.push(stored))
            .await?;
        Ok((entities, skipped))
    }

    /// Hands each entity stored after sequence number `seq` to `each` as
    /// its row arrives (rows are streamed, never all fetched first);
    /// returns the units of those skipped as not valid.
    async fn stream_entities<'e>(
        &self,
        executor: impl Executor<'e, Database = D::Db>,
        seq: u64,
        mut each: impl FnMut(StoredEntity),
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut skipped: Vec<(String, String)> = Vec::new();
        let mut rows = sqlx::query(D::ENTITIES_AFTER)
            .bind(to_param(seq))
            .fetch(executor);
        while let Some(row) = rows.try_next().await? {
            match self.entity_of(&row)? {
                Some(stored) => each(stored),
                None => {
                    let source: String = row.try_get("source_id")?;
                    let unit: String = row.try_get("unit")?;
                    if !skipped.iter().any(|(s, u)| *s == source && *u == unit) {
                        skipped.push((source, unit));
                    }
                }
            }
        }
        Ok(skipped)
    }

    /// The removals kept with a sequence number after `seq`, in order.
    pub(crate) async fn removals_after<'e>(
        executor: impl Executor<'e, Database = D::Db>,
        seq: u64,
    ) -> Result<Vec<(EntityKey, u64)>, StoreError> {
        let rows =
            sqlx::query("SELECT entity_key, seq FROM removed_entities WHERE seq > $1 ORDER BY seq")
                .bind(to_param(seq))
                .fetch_all(executor)
                .await?;
        rows.iter()
            .map(|row| {
                let key: &str = row.try_get("entity_key")?;
                Ok((EntityKey::from_stored(key), to_seq(row.try_get("seq")?)))
            })
            .collect()
    }

    /// A row of `catalog_entities`; `None` (logged) when it is not valid.
    fn entity_of(
        &self,
        row: &<D::Db as Database>::Row,
    ) -> Result<Option<StoredEntity>, StoreError> {
        let source: &str = row.try_get("source_id")?;
        let unit: &str = row.try_get("unit")?;
        let body: &str = row.try_get("body")?;
        let search: Vec<u8> = row.try_get("search")?;
        let entity_ref: &str = row.try_get("entity_ref")?;
        let search = String::from_utf8(search).ok();
        let body_valid: Option<i64> = row.try_get("body_valid")?;
        let body_valid = match body_valid {
            Some(checked) => checked == 1,
            None => serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok(),
        };
        // One broken row must not make every listing invalid JSON.
        let (true, Some(search)) = (body_valid, search) else {
            tracing::error!(
                database = self.database,
                source,
                entity = entity_ref,
                "a stored entity is not valid; it is skipped (its source's next run stores it again)"
            );
            return Ok(None);
        };
        let key: &str = row.try_get("entity_key")?;
        let key = EntityKey::from_stored(key);
        let uid: &str = row.try_get("uid")?;
        // Derived from the key: a row whose text does not parse gets it again.
        let uid = uuid::Uuid::try_parse(uid).unwrap_or_else(|_| stitch::uid_for(key.as_str()));
        let location: Option<&str> = row.try_get("location")?;
        let location = location.map(Arc::from);
        let origin: Option<&str> = row.try_get("origin")?;
        let origin = crate::catalog::shared_location(origin.map(Arc::from), &location);
        // Absent (stored by an older version) or unreadable: settle parses the JSON.
        let references: Option<&str> = row.try_get("refs")?;
        let references = references.and_then(stitch::stored_references);
        let json: Arc<str> = Arc::from(body);
        Ok(Some(StoredEntity {
            seq: to_seq(row.try_get("seq")?),
            references,
            repacked: !SearchRows::is_current(&search),
            owner: Owner::new(source, unit),
            entity: PreparedEntity {
                key,
                entity_ref: entity_ref.to_owned(),
                uid,
                search: SearchRows::from_packed(search, Arc::clone(&json)),
                json,
                location,
                origin,
            },
        }))
    }

    /// Each source's latest recorded run (one that is not valid is logged
    /// and skipped: only the status page loses it).
    pub async fn runs(&self) -> Result<Vec<(String, RunReport)>, StoreError> {
        let rows = sqlx::query("SELECT id, last_run FROM sources WHERE last_run IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        let mut runs = Vec::new();
        for row in &rows {
            let id: String = row.try_get("id")?;
            let text: &str = row.try_get("last_run")?;
            if let Some(run) = run_from(text, &id, &self.database) {
                runs.push((id, run));
            }
        }
        Ok(runs)
    }

    /// Drops all but the newest `retained` removals, moving the horizon
    /// past the dropped ones; returns those kept and the horizon.
    async fn retained_removals(
        &self,
        retained: usize,
    ) -> Result<(Vec<(EntityKey, u64)>, u64), StoreError> {
        let mut tx = self.pool.begin().await?;
        let cut =
            sqlx::query("SELECT seq FROM removed_entities ORDER BY seq DESC LIMIT 1 OFFSET $1")
                .bind(i64::try_from(retained).unwrap_or(i64::MAX))
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(cut) = cut {
            let cut: i64 = cut.try_get("seq")?;
            sqlx::query("DELETE FROM removed_entities WHERE seq <= $1")
                .bind(cut)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO catalog_meta (name, value) VALUES ('horizon', $1)
                 ON CONFLICT (name) DO UPDATE SET value = CASE
                   WHEN excluded.value > catalog_meta.value THEN excluded.value ELSE catalog_meta.value END",
            )
            .bind(cut)
            .execute(&mut *tx)
            .await?;
        }
        let horizon = Self::horizon(&mut *tx).await?;
        let removals = Self::removals_after(&mut *tx, 0).await?;
        tx.commit().await?;
        Ok((removals, horizon))
    }

    /// The newest sequence number no longer retained as a removal (0: none).
    pub(crate) async fn horizon<'e>(
        executor: impl Executor<'e, Database = D::Db>,
    ) -> Result<u64, sqlx::Error> {
        let row = sqlx::query("SELECT value FROM catalog_meta WHERE name = 'horizon'")
            .fetch_optional(executor)
            .await?;
        row.map_or(Ok(0), |row| Ok(to_seq(row.try_get("value")?)))
    }

    /// The newest change a complete apply wrote (0: none): when no change
    /// is newer, every stored entity carries the relations the others give
    /// it. A write that does not re-render (forgetting a source) leaves
    /// newer numbers, so start-up re-stitches.
    async fn stitched<'e>(
        executor: impl Executor<'e, Database = D::Db>,
    ) -> Result<u64, sqlx::Error> {
        let row = sqlx::query("SELECT value FROM catalog_meta WHERE name = $1")
            .bind(STITCHED_MARKER)
            .fetch_optional(executor)
            .await?;
        row.map_or(Ok(0), |row| Ok(to_seq(row.try_get("value")?)))
    }

    /// The latest sequence number given to a change, kept or removed.
    pub(crate) async fn last_seq<'e>(
        executor: impl Executor<'e, Database = D::Db>,
    ) -> Result<u64, sqlx::Error> {
        let row = sqlx::query(
            "SELECT MAX(seq) AS seq FROM (SELECT MAX(seq) AS seq FROM catalog_entities UNION ALL SELECT MAX(seq) FROM removed_entities) AS newest",
        )
        .fetch_one(executor)
        .await?;
        let seq: Option<i64> = row.try_get("seq")?;
        Ok(seq.map_or(0, to_seq))
    }

    /// One `locations` row (`id, type, target, created_at`).
    fn location_of(row: &<D::Db as Database>::Row) -> Result<RegisteredLocation, StoreError> {
        let id: String = row.try_get("id")?;
        let created_at: String = row.try_get("created_at")?;
        // Nothing reads the time back, so an unreadable one (a hand-edited
        // row) must not make every registered location unreadable.
        let created_at = match chrono::DateTime::parse_from_rfc3339(&created_at) {
            Ok(time) => time.with_timezone(&chrono::Utc),
            Err(error) => {
                tracing::warn!(
                    location = %id,
                    created_at = %created_at,
                    %error,
                    "registered location has an unreadable created_at; kept, shown as 1970-01-01"
                );
                chrono::DateTime::UNIX_EPOCH
            }
        };
        Ok(RegisteredLocation {
            type_: row.try_get("type")?,
            target: row.try_get("target")?,
            created_at,
            id,
        })
    }

    /// Stores one change.
    async fn write_change(
        tx: &mut Transaction<'static, D::Db>,
        change: &Change,
    ) -> Result<(), StoreError> {
        let seq = to_param(change.seq());
        match change {
            Change::Upsert {
                entity,
                owner,
                references,
                ..
            } => {
                let mut uid = [0u8; uuid::fmt::Hyphenated::LENGTH];
                let uid = entity.uid.hyphenated().encode_lower(&mut uid);
                sqlx::query(
                    "INSERT INTO catalog_entities (entity_key, source_id, unit, seq, entity_ref, uid, body, search, location, origin, refs)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (entity_key) DO UPDATE SET source_id = excluded.source_id, unit = excluded.unit,
                       seq = excluded.seq, entity_ref = excluded.entity_ref, uid = excluded.uid, body = excluded.body,
                       search = excluded.search, location = excluded.location, origin = excluded.origin, refs = excluded.refs",
                )
                .bind(entity.key.as_str())
                .bind(owner.source.as_ref())
                .bind(owner.unit.as_ref())
                .bind(seq)
                .bind(entity.entity_ref.as_str())
                .bind(&*uid)
                .bind(entity.json.as_ref())
                .bind(D::search(entity.search.packed()))
                .bind(entity.location.as_deref())
                .bind(entity.origin.as_deref())
                // So start-up indexes relations without parsing every body.
                .bind(references.as_deref())
                .execute(&mut **tx)
                .await?;
                sqlx::query("DELETE FROM removed_entities WHERE entity_key = $1")
                    .bind(entity.key.as_str())
                    .execute(&mut **tx)
                    .await?;
            }
            Change::Remove { key, source, .. } => {
                sqlx::query("DELETE FROM catalog_entities WHERE entity_key = $1")
                    .bind(key.as_str())
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO removed_entities (entity_key, source_id, seq) VALUES ($1, $2, $3)
                     ON CONFLICT (entity_key) DO UPDATE SET source_id = excluded.source_id, seq = excluded.seq",
                )
                .bind(key.as_str())
                .bind(source.as_ref())
                .bind(seq)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }
}

// The bounds of the block above (Rust does not carry them over), and JSON.
impl<D: Dialect> CatalogStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'r> &'r str: Encode<'r, D::Db> + Decode<'r, D::Db> + Type<D::Db>,
    for<'r> Option<&'r str>: Encode<'r, D::Db>,
    for<'r> String: Decode<'r, D::Db> + Type<D::Db>,
    for<'r> i64: Encode<'r, D::Db> + Decode<'r, D::Db> + Type<D::Db>,
    for<'r> Vec<u8>: Decode<'r, D::Db> + Type<D::Db>,
    &'static str: ColumnIndex<<D::Db as Database>::Row>,
    for<'r> sqlx::types::Json<&'r RepositoryRecord>: Encode<'r, D::Db> + Type<D::Db>,
{
    fn restore<'a>(
        &'a self,
        retained_removals: usize,
        catalog: &'a Catalog,
    ) -> BoxFuture<'a, Result<Restored, StoreError>> {
        Box::pin(async move {
            self.restore_rows(retained_removals, catalog)
                .await
                .map_err(|err| unreadable(&self.database, err))
        })
    }

    fn apply<'a>(&'a self, batch: Batch<'a>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.dialect.begin_write(&self.pool).await?;
            let mut newest = 0;
            for change in batch.changes {
                newest = newest.max(change.seq());
                Self::write_change(&mut tx, change).await?;
            }
            for record in batch.repositories {
                sqlx::query(
                    "INSERT INTO repositories (source_id, unit, record) VALUES ($1, $2, $3)
                     ON CONFLICT (source_id, unit) DO UPDATE SET record = excluded.record",
                )
                .bind(batch.source)
                .bind(record.catalog_url.as_str())
                .bind(sqlx::types::Json(record))
                .execute(&mut *tx)
                .await?;
            }
            for change in batch.withheld {
                Self::write_withholding(&mut tx, batch.source, change).await?;
            }
            for unit in batch.forgotten {
                sqlx::query("DELETE FROM repositories WHERE source_id = $1 AND unit = $2")
                    .bind(batch.source)
                    .bind(unit.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            if newest > 0 {
                // In the batch's transaction: a batch is the catalog's whole
                // answer to one change, so its end leaves the store stitched.
                sqlx::query(
                    "INSERT INTO catalog_meta (name, value) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(STITCHED_MARKER)
                .bind(to_param(newest))
                .execute(&mut *tx)
                .await?;
                D::notify(&mut tx, newest).await?;
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
            // Row by row: 10,000 rows fetched whole held ~12 MB of row
            // copies next to the records made from them (issue 29).
            let mut rows = sqlx::query(
                "SELECT CAST(record AS TEXT) AS record FROM repositories WHERE source_id = $1",
            )
            .bind(source)
            .fetch(&self.pool);
            let mut records = Vec::new();
            while let Some(row) = rows.try_next().await? {
                records.push(record_from(row.try_get("record")?, source)?);
            }
            Ok(records)
        })
    }

    fn repository<'a>(
        &'a self,
        source: &'a str,
        key: RepositoryKey<'a>,
    ) -> BoxFuture<'a, Result<Option<RepositoryRecord>, StoreError>> {
        Box::pin(async move {
            let (statement, key) = match key {
                RepositoryKey::Unit(unit) => (
                    "SELECT CAST(record AS TEXT) AS record FROM repositories WHERE source_id = $1 AND unit = $2",
                    unit,
                ),
                RepositoryKey::Id(id) => (D::REPOSITORY_BY_ID, id),
            };
            let row = sqlx::query(statement)
                .bind(source)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
            row.map(|row| record_from(row.try_get("record")?, source))
                .transpose()
        })
    }

    fn save_run<'a>(
        &'a self,
        source: &'a str,
        run: &'a RunReport,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let run_json = to_json(run, source)?;
            let mut tx = self.dialect.begin_write(&self.pool).await?;
            sqlx::query(
                "INSERT INTO sources (id, last_run) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET last_run = excluded.last_run",
            )
            .bind(source)
            .bind(run_json.as_str())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn retain_sources<'a>(&'a self, keep: &'a [String]) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id FROM sources UNION SELECT source_id FROM catalog_entities UNION SELECT source_id FROM repositories UNION SELECT source_id FROM withheld_refs UNION SELECT provider FROM pull_request_previews",
            )
            .fetch_all(&self.pool)
            .await?;
            let mut ids = Vec::new();
            for row in &rows {
                let id: String = row.try_get("id")?;
                if !keep.contains(&id) {
                    ids.push(id);
                }
            }
            let mut tx = self.dialect.begin_write(&self.pool).await?;
            for id in &ids {
                let next = to_param(Self::last_seq(&mut *tx).await?);
                sqlx::query(
                    "INSERT INTO removed_entities (entity_key, source_id, seq)
                     SELECT entity_key, source_id, $1 + ROW_NUMBER() OVER (ORDER BY entity_key)
                     FROM catalog_entities WHERE source_id = $2 ORDER BY entity_key
                     ON CONFLICT (entity_key) DO UPDATE SET source_id = excluded.source_id, seq = excluded.seq",
                )
                .bind(next)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                for statement in [
                    "DELETE FROM catalog_entities WHERE source_id = $1",
                    "DELETE FROM repositories WHERE source_id = $1",
                    "DELETE FROM withheld_refs WHERE source_id = $1",
                    "DELETE FROM pull_request_previews WHERE provider = $1",
                    "DELETE FROM sources WHERE id = $1",
                ] {
                    sqlx::query(statement)
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if !ids.is_empty() {
                let newest = Self::last_seq(&mut *tx).await?;
                D::notify(&mut tx, newest).await?;
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
            rows.iter().map(Self::location_of).collect()
        })
    }

    fn replace_location<'a>(
        &'a self,
        old: Option<(&'a str, &'a str)>,
        new: Option<&'a RegisteredLocation>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.dialect.begin_write(&self.pool).await?;
            let mut removed = false;
            if let Some((id, source)) = old {
                removed = sqlx::query("DELETE FROM locations WHERE id = $1 RETURNING id")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                for statement in [
                    "DELETE FROM repositories WHERE source_id = $1",
                    "DELETE FROM withheld_refs WHERE source_id = $1",
                    "DELETE FROM sources WHERE id = $1",
                ] {
                    sqlx::query(statement)
                        .bind(source)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if let Some(location) = new {
                let created_at = location
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                sqlx::query(
                    "INSERT INTO locations (id, type, target, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(location.id.as_str())
                .bind(location.type_.as_str())
                .bind(location.target.as_str())
                .bind(created_at.as_str())
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
            self.dialect.closed();
        })
    }
}

/// Rows start-up hands the catalog at a time: large enough that taking
/// its lock costs nothing, small enough that a batch is a few MiB.
const RESTORE_BATCH: usize = 1024;

/// The meta row naming the newest change a complete apply wrote. It names
/// the version that stitched, so the first start of another version
/// re-stitches: relations derived by older code are never served as stored.
const STITCHED_MARKER: &str = concat!("stitched@", env!("CARGO_PKG_VERSION"));

/// A stored sequence number (never negative; 0 if it were).
fn to_seq(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// A sequence number as bound.
fn to_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// `err` naming the database.
pub(super) fn unreadable(database: &str, err: StoreError) -> StoreError {
    StoreError::Unreadable {
        database: database.to_owned(),
        source: Box::new(err),
    }
}

/// `value` as stored JSON text (a repository record, a run report).
fn to_json(value: &impl serde::Serialize, source: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        source_id: source.to_owned(),
        message: e.to_string(),
    })
}

/// A stored repository record (its `record` column as text), or what is
/// wrong with it.
fn record_from(text: &str, source: &str) -> Result<RepositoryRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        source_id: source.to_owned(),
        message: e.to_string(),
    })
}

/// A stored last run; one that is not valid is logged and skipped (only
/// the status page loses it; the next run records a new one).
fn run_from(text: &str, source: &str, database: &str) -> Option<RunReport> {
    serde_json::from_str(text)
        .inspect_err(|err| {
            tracing::error!(
                database,
                source,
                error = %err,
                "a stored last run is not valid; it is skipped"
            );
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::migrator;
    use crate::store::{postgres, sqlite};

    /// Databases record each applied migration's checksum and refuse to
    /// open when a file changed: released files stay byte for byte.
    #[test]
    fn released_migrations_keep_their_checksums() {
        let pinned: [(super::Migrations, &[&str]); 2] = [
            (
                sqlite::MIGRATIONS,
                &[
                    "90e07cec43bb2c28eeb962d714d8b1be51a369e6f53e710d96ecd83c83bd673dac10b0fb9a8f52bb4bfedf016f97bcd8",
                    "f51b4bf1dbffba0eeb6a139a31e2bcd070bcee38a4f20f55a4d1ee78253d49b593fe5449eaa23ec14c989ec8a84c8bd0",
                    "869804c57a92cbb4fc29d103c88447c48b6e4b021024f0dcc094cfb303c46e83c67a6555cc726bda3cd014f53a4a5f02",
                    "f16c6b12043699ade5243c18f7b81483130f815b51a870cd8f3d5caaef1d8b47add7e9c3c82fb28c8606e0475203f756",
                    "7089a924f0e3abc2c97796b38944f3ac7a1182e967e2e53da4f91af193f3312254b59e2dc8439022e121e5e06e825581",
                    "ee2be9ac14bb2f763fa957735e209b9e8f2cd54530d2a9e80175c43eb128f8b773783fad1c5f7a46b031b0ebd47b6654",
                    "7cbb11cbaeb9d287075354418c8c5e7d61e0bf261cb6e149c21baf26110f88c737cbbe368abadcc04a83cf94ae28b3a0",
                    "b43a8ca57a8b78441357d74ed46d948943902071f11a42d595d16364111e2bf730988877939128de97bcfd44dd8374d6",
                ],
            ),
            (
                postgres::MIGRATIONS,
                &[
                    "727463145d107afb9674bbf544b560467b7c88da14383f27edb0ebd56f0092e4352f8feb2f602c3eb24e7dfa0ed776f8",
                    "ff261d8b0056822cfe6245f41dc6cf95640d072f170ac37206c8deff0d03a11ccd6102ee5a84b53acdc9fa7082d4af8b",
                    "1556ba938202aecfba6f3a101ac2827120d7445d77d6b8a67386788e9e88434b6037ad59abd0da1faa9edffe4051c92a",
                    "ee2be9ac14bb2f763fa957735e209b9e8f2cd54530d2a9e80175c43eb128f8b773783fad1c5f7a46b031b0ebd47b6654",
                    "7cbb11cbaeb9d287075354418c8c5e7d61e0bf261cb6e149c21baf26110f88c737cbbe368abadcc04a83cf94ae28b3a0",
                    "b43a8ca57a8b78441357d74ed46d948943902071f11a42d595d16364111e2bf730988877939128de97bcfd44dd8374d6",
                ],
            ),
        ];
        for (migrations, checksums) in pinned {
            let found: Vec<String> = migrator(migrations)
                .iter()
                .map(|m| m.checksum.iter().map(|b| format!("{b:02x}")).collect())
                .collect();
            assert_eq!(found, checksums.to_vec());
        }
    }
}
