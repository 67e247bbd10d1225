CREATE TABLE replica_leader (
                only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
                identity TEXT NOT NULL,
                since TIMESTAMPTZ NOT NULL DEFAULT now()
            );
            CREATE TABLE replica_requests (
                id BIGSERIAL PRIMARY KEY,
                method TEXT NOT NULL,
                uri TEXT NOT NULL,
                headers JSONB NOT NULL,
                body BYTEA NOT NULL,
                forwarded_by TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                claimed_by TEXT,
                claimed_at TIMESTAMPTZ,
                status INTEGER,
                response_headers JSONB,
                response_body BYTEA
            );