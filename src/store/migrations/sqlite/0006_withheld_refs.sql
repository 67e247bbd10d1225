-- Refs removed through the API (DELETE /entities/by-uid): not served,
-- still their unit's until its next read, so a contesting file cannot take
-- them, also after a restart or when another replica takes over.
CREATE TABLE withheld_refs (
    entity_key TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    unit TEXT NOT NULL
);
