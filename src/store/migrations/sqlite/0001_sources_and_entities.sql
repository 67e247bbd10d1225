CREATE TABLE sources (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                last_run TEXT
            );
            CREATE TABLE entities (
                source_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                entity_key TEXT NOT NULL,
                entity_ref TEXT NOT NULL,
                uid TEXT NOT NULL,
                body TEXT NOT NULL,
                search TEXT NOT NULL,
                location TEXT,
                origin TEXT,
                PRIMARY KEY (source_id, seq)
            );