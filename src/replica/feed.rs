//! The replicas' own rows in the shared store: the leader record, and the
//! change feed a follower reads after its sequence number.

use crate::catalog::{EntityKey, Followed};
use crate::store::{PostgresStore, StoreError};

impl PostgresStore {
    /// Records `identity` as the leader (only the holder of the lock does).
    pub(crate) async fn record_leader(&self, identity: &str) -> Result<(), StoreError> {
        // Waits for the last leader's write in progress, which holds the row,
        // but not for ever (the caller retries).
        let mut tx = self.pool().begin().await?;
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

    /// Ends the sessions of a leader whose lease expired (frozen or hung:
    /// its connections stay up, so the advisory lock alone never frees):
    /// the one holding `lock` and any of its transactions left open on the
    /// leader record. Returns whether the lease had expired. A lease that
    /// is missing (released on a clean stop) is never taken as expired.
    pub(crate) async fn end_expired_leader(
        &self,
        lock: i64,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Locked, so a leader renewing or taking the lease meanwhile is
        // seen as it commits.
        let expired: Option<String> = sqlx::query_scalar(
            "SELECT identity FROM replica_lease
             WHERE renewed_at < now() - $1::float8 * interval '1 second' FOR UPDATE",
        )
        .bind(lease.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(identity) = expired else {
            return Ok(false);
        };
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(l.pid, 2000) FROM pg_locks l
             JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.granted AND l.pid <> pg_backend_pid()
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND ((l.locktype = 'advisory' AND l.objsubid = 1
                     AND l.classid::bigint = $1 AND l.objid::bigint = $2)
                 OR (l.locktype = 'relation' AND l.relation = 'replica_leader'::regclass
                     AND l.mode = 'RowShareLock' AND a.state LIKE 'idle in transaction%'
                     AND a.state_change < now() - interval '1 second'))",
        )
        .bind(lock >> 32)
        .bind(lock & 0xffff_ffff)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::warn!(
            leader = identity,
            sessions = ended.len(),
            "the leader's lease expired (hung or frozen): ended its sessions so another replica leads"
        );
        Ok(true)
    }

    /// The identity the leader recorded.
    pub(crate) async fn leader(&self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT identity FROM replica_leader")
            .fetch_optional(&self.pool())
            .await?)
    }

    /// Every change stored after `seq`, in sequence order (for a follower),
    /// the newest sequence number, and the horizon below which removals
    /// were dropped (a follower behind it must reload).
    pub(crate) async fn changes_after(&self, seq: u64) -> Result<FollowedChanges, StoreError> {
        // One snapshot, so the last sequence number matches the rows.
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let horizon = Self::horizon(&mut *tx).await?;
        let (entities, _) = self.entities_after(&mut *tx, seq).await?;
        let removals = Self::removals_after(&mut *tx, seq).await?;
        let last_seq = Self::last_seq(&mut *tx).await?;
        tx.commit().await?;
        let upserts = entities.into_iter().map(|stored| Followed::Upsert {
            owner: stored.owner,
            entity: stored.entity,
            seq: stored.seq,
        });
        let removals = removals
            .into_iter()
            .map(|(key, seq)| Followed::Remove { key, seq });
        let mut changes: Vec<Followed> = upserts.chain(removals).collect();
        changes.sort_by_key(Followed::seq);
        Ok(FollowedChanges {
            changes,
            last_seq,
            horizon,
        })
    }

    /// Every entity key stored (for a follower's full resync).
    pub(crate) async fn entity_keys(&self) -> Result<Vec<EntityKey>, StoreError> {
        let keys: Vec<String> = sqlx::query_scalar("SELECT entity_key FROM catalog_entities")
            .fetch_all(&self.pool())
            .await?;
        Ok(keys.iter().map(|k| EntityKey::from_stored(k)).collect())
    }
}

/// What a follower reads after its sequence number.
#[derive(Debug)]
pub(crate) struct FollowedChanges {
    /// In sequence order.
    pub(crate) changes: Vec<Followed>,
    pub(crate) last_seq: u64,
    pub(crate) horizon: u64,
}
