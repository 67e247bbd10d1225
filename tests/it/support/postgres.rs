//! A PostgreSQL database of one test's own.

/// The PostgreSQL every test may use (trust auth).
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of one test's own on [`POSTGRES`], named but not created:
/// the daemon creates it. [`PgDatabase::drop_database`] removes it.
pub struct PgDatabase {
    pub name: String,
    /// `postgres://…/name`.
    pub url: String,
}

impl PgDatabase {
    pub fn fresh() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "catalogd_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        Self {
            url: format!("{POSTGRES}/{name}"),
            name,
        }
    }

    /// A connection pool to the database (for checks on what is stored).
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url)
            .await
            .expect("connects to the test database")
    }

    pub async fn drop_database(self) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
            .await
            .expect("connects to postgres");
        // A daemon still shutting down may reconnect between FORCE's
        // termination of its sessions and the drop: try again briefly.
        let mut attempt = 0;
        loop {
            let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
            match dropped {
                Ok(_) => return,
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    eprintln!("dropping {} failed ({e}); retrying", self.name);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("drops the test database {}: {e}", self.name),
            }
        }
    }
}
