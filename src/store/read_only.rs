//! The store opened read-only, for `plan`: SQLite with `mode=ro` (no lock
//! taken, no migration, no file created), PostgreSQL inside a read-only
//! transaction. Safe while a daemon runs on the same store.

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::Row;
use sqlx::sqlite::SqliteConnectOptions;

use super::StoreError;
use crate::config::{DatabaseClient, DatabaseConfig};
use crate::discovery::RepositoryRecord;
use crate::discovery::plan_diff::Stored;

/// The same queries on either database (the executors' types differ).
macro_rules! read_all {
    ($executor:expr) => {{
        let mut stored: BTreeMap<String, Stored> = BTreeMap::new();
        let rows =
            sqlx::query("SELECT source_id, CAST(record AS TEXT) AS record FROM repositories")
                .fetch_all(&mut *$executor)
                .await?;
        for row in rows {
            let source: String = row.try_get("source_id")?;
            let text: String = row.try_get("record")?;
            let record: RepositoryRecord =
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                    source_id: source.clone(),
                    message: e.to_string(),
                })?;
            stored.entry(source).or_default().records.push(record);
        }
        let rows = sqlx::query("SELECT source_id, unit, entity_ref FROM catalog_entities")
            .fetch_all(&mut *$executor)
            .await?;
        for row in rows {
            let source: String = row.try_get("source_id")?;
            let unit: String = row.try_get("unit")?;
            let entity_ref: String = row.try_get("entity_ref")?;
            stored
                .entry(source)
                .or_default()
                .entities
                .push((unit, entity_ref));
        }
        let rows = sqlx::query("SELECT id FROM sources")
            .fetch_all(&mut *$executor)
            .await?;
        for row in rows {
            let source: String = row.try_get("id")?;
            stored.entry(source).or_default();
        }
        Ok::<_, StoreError>(stored)
    }};
}

/// Every stored source's repositories and entities, by source id. `None`
/// when the SQLite file does not exist yet (nothing stored).
pub(crate) async fn snapshot(
    config: &DatabaseConfig,
) -> Result<Option<BTreeMap<String, Stored>>, StoreError> {
    match config.client {
        DatabaseClient::BetterSqlite3 | DatabaseClient::Sqlite => {
            let file = super::sqlite_file(config);
            if file == ":memory:" || !Path::new(&file).exists() {
                return Ok(None);
            }
            let options = SqliteConnectOptions::new()
                .filename(&file)
                .read_only(true)
                .create_if_missing(false);
            let mut connection =
                sqlx::ConnectOptions::connect(&options)
                    .await
                    .map_err(|source| StoreError::Open {
                        target: file.clone(),
                        source,
                    })?;
            let rows = read_all!((&mut connection));
            let _closed = sqlx::Connection::close(connection).await;
            rows.map(Some)
        }
        DatabaseClient::Pg => {
            let connection = config
                .postgres
                .as_ref()
                .ok_or(StoreError::MissingConnection)?;
            let options = super::postgres::connect_options(connection);
            let mut pg = sqlx::ConnectOptions::connect(&options)
                .await
                .map_err(|source| StoreError::Connect {
                    target: super::postgres::describe(connection),
                    source,
                })?;
            let mut tx = sqlx::Connection::begin(&mut pg).await?;
            sqlx::query("SET TRANSACTION READ ONLY")
                .execute(&mut *tx)
                .await?;
            let rows = read_all!(tx);
            tx.rollback().await?;
            let _closed = sqlx::Connection::close(pg).await;
            rows.map(Some)
        }
    }
}
