//! The change feed's log: each served entity's latest change and the
//! retained removals, by sequence number. A follower that has seen
//! everything up to a cursor needs exactly the entries after it; the log is
//! compacted (one entry per entity), so catching up costs what changed
//! since, not every step of it. Persistent maps: every snapshot carries
//! its own log at the cost of what changed.

use super::EntityKey;

/// What happened to an entity at a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Served as it is now.
    Upsert(EntityKey),
    /// No longer served.
    Removed(EntityKey),
}

#[derive(Debug, Default, Clone)]
pub struct ChangeLog {
    by_seq: imbl::OrdMap<u64, Entry>,
    /// The sequence number of each key's entry.
    seq_of: imbl::HashMap<EntityKey, u64>,
    /// Removals by sequence number, the oldest forgotten first.
    removals: imbl::OrdMap<u64, EntityKey>,
    /// Removals at or below this were forgotten: a follower whose cursor
    /// is below it may have missed one.
    horizon: u64,
}

impl ChangeLog {
    fn replace(&mut self, key: &EntityKey, seq: u64, entry: Entry) {
        if let Some(old) = self.seq_of.insert(key.clone(), seq) {
            self.by_seq.remove(&old);
            self.removals.remove(&old);
        }
        self.by_seq.insert(seq, entry);
    }

    pub(super) fn upserted(&mut self, key: &EntityKey, seq: u64) {
        self.replace(key, seq, Entry::Upsert(key.clone()));
    }

    /// Records a removal, keeping at most `retained` of them.
    pub(super) fn removed(&mut self, key: &EntityKey, seq: u64, retained: usize) {
        self.replace(key, seq, Entry::Removed(key.clone()));
        self.removals.insert(seq, key.clone());
        while self.removals.len() > retained {
            let Some(oldest) = self.removals.get_min().map(|(seq, _)| *seq) else {
                break;
            };
            let Some(key) = self.removals.remove(&oldest) else {
                break;
            };
            self.by_seq.remove(&oldest);
            self.seq_of.remove(&key);
            self.horizon = self.horizon.max(oldest);
        }
    }

    /// Forgets removals at or below `seq` (start-up: older ones were not kept).
    pub(super) fn forgotten_through(&mut self, seq: u64) {
        self.horizon = self.horizon.max(seq);
    }

    /// The entries after `cursor`, oldest first.
    pub fn after(&self, cursor: u64) -> impl Iterator<Item = (u64, &Entry)> {
        self.by_seq
            .range((
                std::ops::Bound::Excluded(cursor),
                std::ops::Bound::Unbounded,
            ))
            .map(|(seq, entry)| (*seq, entry))
    }

    pub fn horizon(&self) -> u64 {
        self.horizon
    }

    /// Removals retained.
    pub fn removals(&self) -> usize {
        self.removals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> EntityKey {
        EntityKey::new("component", "default", name)
    }

    fn after(log: &ChangeLog, cursor: u64) -> Vec<(u64, Entry)> {
        log.after(cursor).map(|(s, e)| (s, e.clone())).collect()
    }

    #[test]
    fn one_entry_per_entity_at_its_latest_change() {
        let mut log = ChangeLog::default();
        log.upserted(&key("a"), 1);
        log.upserted(&key("b"), 2);
        log.upserted(&key("a"), 3);
        log.removed(&key("b"), 4, 10);
        assert_eq!(
            after(&log, 0),
            [(3, Entry::Upsert(key("a"))), (4, Entry::Removed(key("b")))]
        );
        assert_eq!(after(&log, 3), [(4, Entry::Removed(key("b")))]);
        // Back again: the removal is superseded.
        log.upserted(&key("b"), 5);
        assert_eq!(log.removals(), 0);
        assert_eq!(
            after(&log, 0),
            [(3, Entry::Upsert(key("a"))), (5, Entry::Upsert(key("b")))]
        );
        assert_eq!(log.horizon(), 0);
    }

    #[test]
    fn the_oldest_removals_beyond_retention_move_the_horizon() {
        let mut log = ChangeLog::default();
        for (seq, name) in ["a", "b", "c"].iter().enumerate() {
            log.upserted(&key(name), seq as u64 + 1);
        }
        log.removed(&key("a"), 4, 2);
        log.removed(&key("b"), 5, 2);
        log.removed(&key("c"), 6, 2);
        assert_eq!(log.horizon(), 4);
        assert_eq!(log.removals(), 2);
        assert_eq!(
            after(&log, 4),
            [(5, Entry::Removed(key("b"))), (6, Entry::Removed(key("c")))]
        );
    }
}
