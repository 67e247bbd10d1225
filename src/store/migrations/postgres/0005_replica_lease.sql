-- The leader's lease: renewed every second over its lock session, apart
-- from replica_leader (whose row writes hold FOR SHARE), so a long write
-- never delays a renewal. A follower that finds it expired ends the
-- sessions of the frozen leader and takes over.
CREATE TABLE replica_lease (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    identity TEXT NOT NULL,
    renewed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
