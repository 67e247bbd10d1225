CREATE TABLE catalog_entities (
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
            DROP TABLE entities;