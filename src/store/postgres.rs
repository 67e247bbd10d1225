//! The shared store for replicas: PostgreSQL, same tables and semantics as
//! the SQLite store, plus what followers read (changes after a sequence
//! number) and the channel the leader notifies them on.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgPool};

use super::StoreError;
use super::sql::{Dialect, Migrations, SqlStore};
use crate::config::database::{PostgresConnection, PostgresSsl};

/// Notified (with the newest sequence number) after every applied batch.
pub(crate) const CHANGES_CHANNEL: &str = "bitbucket_catalogd_changes";

/// How long a leader's lease lasts unrenewed (it renews every second): a
/// hung or frozen leader is replaced this long after its last renewal.
pub(crate) const LEADER_LEASE: Duration = Duration::from_secs(5);

/// Connections a replica keeps: batches are serialised, reads are few.
const POOL_SIZE: u32 = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) const MIGRATIONS: Migrations = &[
    (
        1,
        "catalog",
        include_str!("migrations/postgres/0001_catalog.sql"),
    ),
    (
        2,
        "replicas",
        include_str!("migrations/postgres/0002_replicas.sql"),
    ),
    (
        5,
        "replica lease",
        include_str!("migrations/postgres/0005_replica_lease.sql"),
    ),
    (
        6,
        "withheld refs",
        include_str!("migrations/postgres/0006_withheld_refs.sql"),
    ),
    (
        7,
        "entity references",
        include_str!("migrations/postgres/0007_entity_references.sql"),
    ),
    (
        8,
        "pull-request previews",
        include_str!("migrations/postgres/0008_pull_request_previews.sql"),
    ),
];

/// What the driver needs to connect, from the parsed config. The password
/// goes into the options only (they are never printed).
pub(crate) fn connect_options(connection: &PostgresConnection) -> PgConnectOptions {
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(&connection.host)
        .port(connection.port)
        .username(&connection.user)
        .database(&connection.database)
        .application_name("bitbucket-catalogd")
        .log_statements(tracing::log::LevelFilter::Trace)
        // A leader cut off mid-transaction holds the leader row, which the
        // next leader must update: the server ends such a session soon
        // instead of after the kernel's two-hour keepalive.
        .options([
            ("idle_in_transaction_session_timeout", "30s"),
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "2"),
            ("tcp_keepalives_count", "3"),
        ]);
    if let Some(password) = &connection.password {
        options = options.password(password.expose());
    }
    match &connection.ssl {
        PostgresSsl::Disable => options.ssl_mode(PgSslMode::Disable),
        PostgresSsl::Prefer => options.ssl_mode(PgSslMode::Prefer),
        PostgresSsl::Require => options.ssl_mode(PgSslMode::Require),
        PostgresSsl::VerifyFull { ca } => {
            let options = options.ssl_mode(PgSslMode::VerifyFull);
            match ca {
                Some(pem) => options.ssl_root_cert_from_pem(pem.as_bytes().to_vec()),
                None => options,
            }
        }
    }
}

/// `host:port/database` (no user or password), for messages.
pub(crate) fn describe(connection: &PostgresConnection) -> String {
    format!(
        "postgres {}:{}/{}",
        connection.host, connection.port, connection.database
    )
}

/// The store shared by replicas.
pub type PostgresStore = SqlStore<PostgresDialect>;

/// PostgreSQL's statements, and the leader fence of a replica's store.
#[derive(Debug, Clone, Default)]
pub struct PostgresDialect {
    /// Among replicas: this replica's identity. Every write checks, in its
    /// transaction, that it is still the recorded leader (a leader that
    /// lost its lock but has not noticed yet cannot write after the next
    /// one took over).
    fence: Arc<parking_lot::RwLock<Option<String>>>,
}

impl Dialect for PostgresDialect {
    type Db = sqlx::Postgres;
    type Search<'a> = &'a [u8];

    const REPOSITORY_BY_ID: &'static str = "SELECT record::text AS record FROM repositories
        WHERE source_id = $1 AND record ->> 'id' = $2 LIMIT 1";
    const FORGET_CHANGE_TOKEN: &'static str = "UPDATE repositories SET record = record - 'changeToken' WHERE source_id = $1 AND unit = $2";
    // PostgreSQL 15 has no `IS JSON`: the daemon checks bodies.
    const ENTITIES_AFTER: &'static str = "SELECT source_id, unit, entity_key, seq, entity_ref, uid,
        body, search, location, origin, refs, NULL::BIGINT AS body_valid
        FROM catalog_entities WHERE seq > $1";

    fn search(packed: &str) -> &[u8] {
        packed.as_bytes()
    }

    /// A transaction in which this replica, if it is one, holds the leader
    /// record (shared, so the next leader's takeover waits for it to end),
    /// or an error when another one leads.
    fn begin_write<'a>(
        &'a self,
        pool: &'a PgPool,
    ) -> BoxFuture<'a, Result<sqlx::PgTransaction<'static>, StoreError>> {
        Box::pin(async move {
            let mut tx = pool.begin().await?;
            let identity = self.fence.read().clone();
            if let Some(identity) = identity {
                // Nor with its lease expired: resumed after a freeze, it
                // writes nothing before it notices and steps down.
                let leads: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM replica_leader WHERE identity = $1
                       AND NOT EXISTS (SELECT 1 FROM replica_lease WHERE identity = $1
                           AND renewed_at < now() - $2::float8 * interval '1 second')
                     FOR SHARE OF replica_leader",
                )
                .bind(&identity)
                .bind(LEADER_LEASE.as_secs_f64())
                .fetch_optional(&mut *tx)
                .await?;
                if leads.is_none() {
                    return Err(StoreError::NotLeader { identity });
                }
            }
            Ok(tx)
        })
    }

    /// Wakes followers once the transaction commits.
    fn notify<'a>(
        tx: &'a mut sqlx::PgTransaction<'static>,
        newest: u64,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(newest.to_string())
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
    }
}

impl PostgresStore {
    /// Connects (creating the database if it does not exist) and migrates;
    /// replicas starting together migrate one at a time (sqlx holds an
    /// advisory lock while migrating).
    pub async fn open(connection: &PostgresConnection) -> Result<Self, StoreError> {
        let database = describe(connection);
        let options = connect_options(connection);
        create_database_if_missing(&options, &connection.database).await;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                target: database.clone(),
                source,
            })?;
        Self::migrated(pool, database, PostgresDialect::default(), MIGRATIONS).await
    }

    /// Writes from now on require `identity` to be the recorded leader.
    pub fn fence_as(&self, identity: &str) {
        *self.dialect.fence.write() = Some(identity.to_owned());
    }

    /// `host:port/database`, for messages.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The connection pool (replicas coordinate through it).
    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }
}

/// Connects to the `postgres` maintenance database and creates `database`
/// when it is missing. Failing that (no right to create databases), the
/// connection that follows reports what is wrong.
async fn create_database_if_missing(options: &PgConnectOptions, database: &str) {
    let maintenance = options.clone().database("postgres");
    let Ok(Ok(mut conn)) = tokio::time::timeout(CONNECT_TIMEOUT, maintenance.connect()).await
    else {
        return;
    };
    let exists: Result<Option<i32>, _> =
        sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(database)
            .fetch_optional(&mut conn)
            .await;
    if matches!(exists, Ok(None)) {
        let quoted = format!("\"{}\"", database.replace('"', "\"\""));
        match sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database, "created the catalog database"),
            // Another replica created it at the same moment.
            Err(sqlx::Error::Database(err))
                if matches!(err.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(err) => {
                tracing::warn!(database, error = %err, "cannot create the catalog database")
            }
        }
    }
    let _ = conn.close().await;
}
