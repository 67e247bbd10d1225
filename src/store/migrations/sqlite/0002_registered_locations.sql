CREATE TABLE locations (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                target TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL
            );