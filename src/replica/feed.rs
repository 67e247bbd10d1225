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
