CREATE INDEX repositories_by_id
                ON repositories (source_id, json_extract(record, '$.id'));