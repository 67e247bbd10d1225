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
    /// the newest sequence number they were read up to, `horizon` the one
    /// at or below which the leader no longer keeps removals.
    pub fn follow(&self, changes: Vec<Followed>, last_seq: u64, horizon: u64) {
        let mut state = self.state.lock();
        let retained = state.retained_removals;
        state.working.changes.forgotten_through(horizon);
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
        let last_seq = working.last_seq;
        // Under the state, as `publish`: see `Catalog::build_indexes`.
        *self.snapshot.write() = Arc::new(working);
        drop(state);
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
        self.emits.remove(key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Entity;

    fn rendered(name: &str) -> PreparedEntity {
        let entity: Entity = serde_json::from_value(serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": name},
            "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"},
        }))
        .unwrap();
        PreparedEntity::render(entity, Vec::new()).unwrap()
    }

    fn upsert(source: &str, unit: &str, name: &str, seq: u64) -> Followed {
        Followed::Upsert {
            owner: Owner::new(source, unit),
            entity: rendered(name),
            seq,
        }
    }

    #[test]
    fn follows_upserts_moves_and_removals_as_stored() {
        let catalog = Catalog::new();
        catalog.follow(
            vec![
                upsert("p", "u1", "a", 1),
                upsert("p", "u1", "b", 2),
                upsert("q", "u2", "c", 3),
            ],
            3,
            0,
        );
        let snapshot = catalog.snapshot();
        assert_eq!((snapshot.len(), snapshot.last_seq()), (3, 3));
        assert_eq!((snapshot.source_len("p"), snapshot.source_len("q")), (2, 1));

        // `b` moves to source q; `a` goes.
        let a = rendered("a").key;
        catalog.follow(
            vec![
                Followed::Remove {
                    key: a.clone(),
                    seq: 4,
                },
                upsert("q", "u3", "b", 5),
            ],
            5,
            0,
        );
        let snapshot = catalog.snapshot();
        assert!(snapshot.get(&a).is_none());
        assert_eq!((snapshot.source_len("p"), snapshot.source_len("q")), (0, 2));
        assert_eq!(catalog.units("p"), Vec::<String>::new());
        let mut units = catalog.units("q");
        units.sort();
        assert_eq!(units, ["u2", "u3"]);
        assert_eq!(
            catalog.owner(&rendered("b").key),
            Some(Owner::new("q", "u3"))
        );
        let feed: Vec<u64> = snapshot.changes().after(0).map(|(seq, _)| seq).collect();
        assert_eq!(feed, [3, 4, 5]);
        assert_eq!(catalog.keys().len(), 2);
    }
}
