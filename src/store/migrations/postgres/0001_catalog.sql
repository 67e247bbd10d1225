CREATE TABLE sources (
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
            CREATE TABLE catalog_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);