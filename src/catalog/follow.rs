//! A follower's catalog: changes another replica made, applied as stored.
//! Entities arrive rendered (relations included), so nothing is stitched
//! here; the relation index is built by [`Catalog::settle`] if this replica
//! ever leads.

use std::sync::Arc;

use super::{Catalog, EntityKey, Owner, PreparedEntity};

/// One stored change, as a follower reads it.
#[derive(Debug)]
pub enum Followed {
    Upsert {
        owner: Owner,
        entity: PreparedEntity,
        seq: u64,
    },
    Remove {
        key: EntityKey,
        seq: u64,
    },
}

impl Followed {
    pub fn seq(&self) -> u64 {
        match self {
            Followed::Upsert { seq, .. } | Followed::Remove { seq, .. } => *seq,
        }
    }
}

impl Catalog {
    /// Applies `changes` (in sequence order) and serves them; `last_seq` is
    /// the newest sequence number they were read up to.
    pub fn follow(&self, changes: Vec<Followed>, last_seq: u64) {
        let mut state = self.state.lock();
        let retained = state.retained_removals;
        for change in changes {
            match change {
                Followed::Upsert { owner, entity, seq } => {
                    let key = entity.key.clone();
                    state.release(&key);
                    let units = state.units.entry(Arc::clone(&owner.source)).or_default();
                    units
                        .entry(Arc::clone(&owner.unit))
                        .or_default()
                        .push(key.clone());
                    state.working.insert(Arc::new(entity), &owner.source, seq);
                    state.owners.insert(key, owner);
                }
                Followed::Remove { key, seq } => {
                    state.release(&key);
                    state.working.changes.removed(&key, seq, retained);
                }
            }
        }
        state.working.last_seq = state.working.last_seq.max(last_seq);
        let working = state.working.clone();
        drop(state);
        let last_seq = working.last_seq;
        *self.snapshot.write() = Arc::new(working);
        self.published.send_replace(last_seq);
    }

    /// Every entity key served (in the working state), for a full resync.
    pub fn keys(&self) -> Vec<EntityKey> {
        self.state.lock().owners.keys().cloned().collect()
    }
}

impl super::State {
    /// Stops serving `key` under its current owner, if any.
    fn release(&mut self, key: &EntityKey) {
        let Some(owner) = self.owners.remove(key) else {
            return;
        };
        if let Some(units) = self.units.get_mut(&owner.source) {
            if let Some(keys) = units.get_mut(&owner.unit) {
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    units.remove(&owner.unit);
                }
            }
            if units.is_empty() {
                self.units.remove(&owner.source);
            }
        }
        self.working.remove(key, &owner.source);
    }
}
