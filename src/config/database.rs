//! `backend.database`: the client (SQLite or PostgreSQL) and, for
//! `client: pg`, the connection in Backstage's two forms: a `postgres://`
//! URL or `{host, port, user, password, database, ssl}`. Parsed here so
//! `config check` reports a bad connection without connecting, and no
//! error ever quotes the password.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::redact::redact;
use super::{ConfigError, Ctx};
use crate::secret::Secret;

/// The client; Backstage's default is better-sqlite3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseClient {
    Sqlite,
    #[default]
    BetterSqlite3,
    Pg,
}

#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct DatabaseConfig {
    pub client: DatabaseClient,
    /// As written (a path, a URL or a connection object); may hold a password.
    #[serde(skip)]
    pub connection: Option<Value>,
    /// For `client: pg`: the connection, parsed.
    #[serde(skip)]
    pub postgres: Option<PostgresConnection>,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let connection = self.connection.as_ref().map(|c| {
            redact(
                &serde_json::json!({"backend": {"database": {"connection": c}}}),
                "",
            )["backend"]["database"]["connection"]
                .clone()
        });
        f.debug_struct("DatabaseConfig")
            .field("client", &self.client)
            .field("connection", &connection)
            .finish()
    }
}

/// `backend.database`: absent means Backstage's default client.
pub(super) fn database(ctx: &mut Ctx<'_>) -> Result<DatabaseConfig, ConfigError> {
    let Some(raw) = ctx.optional::<RawDatabase>("backend.database")? else {
        return Ok(DatabaseConfig::default());
    };
    let client = raw.client.map(|c| c.0).unwrap_or_default();
    let postgres = match client {
        DatabaseClient::Pg => Some(
            postgres_connection(raw.connection.as_ref())
                .map_err(|err| ctx.error("backend.database.connection", err))?,
        ),
        _ => None,
    };
    Ok(DatabaseConfig {
        client,
        connection: raw.connection,
        postgres,
    })
}

#[derive(Deserialize)]
struct RawDatabase {
    client: Option<RawClient>,
    connection: Option<Value>,
    /// Backstage's other database keys (knexConfig, prefix, plugin, …).
    #[serde(flatten)]
    _backstage: serde_json::Map<String, Value>,
}

/// `client` as written: Backstage's names for SQLite and PostgreSQL.
struct RawClient(DatabaseClient);

impl<'de> Deserialize<'de> for RawClient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "better-sqlite3" => Ok(Self(DatabaseClient::BetterSqlite3)),
            "sqlite" | "sqlite3" => Ok(Self(DatabaseClient::Sqlite)),
            "pg" => Ok(Self(DatabaseClient::Pg)),
            other => Err(serde::de::Error::custom(format!(
                "unsupported client '{other}'; use better-sqlite3, sqlite or pg"
            ))),
        }
    }
}

/// Why a PostgreSQL connection cannot be used; never quotes the password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(
        "client 'pg' needs a connection: a postgres:// URL or {{host, port, user, password, database}}"
    )]
    Missing,
    #[error("expected a postgres:// URL or {{host, port, user, password, database}}")]
    NotUrlOrObject,
    /// serde's messages name the field, never echo a string value.
    #[error(transparent)]
    Object(serde_json::Error),
    #[error("port must be a number from 1 to 65535")]
    Port,
    #[error("ssl: {0}")]
    SslObject(#[source] serde_json::Error),
    #[error("ssl must be true, false or {{rejectUnauthorized, ca}}")]
    Ssl,
    #[error("not a URL ({0}); expected postgres://user:password@host:port/database")]
    NotUrl(#[source] url::ParseError),
    #[error("scheme '{0}' is not postgres; expected postgres://user:password@host:port/database")]
    Scheme(String),
    #[error("the URL's user or password is not valid UTF-8")]
    NotUtf8,
    #[error("sslmode '{0}' is not one of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error("unsupported URL parameter '{0}'; use sslmode")]
    Parameter(String),
    #[error("cannot read sslrootcert {path} ({source})")]
    RootCert {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The database used when the connection names none; created if missing.
pub(crate) const DEFAULT_POSTGRES_DATABASE: &str = "bitbucket_catalogd";

/// Where the PostgreSQL store lives and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConnection {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub database: String,
    pub ssl: PostgresSsl,
}

/// How the connection is encrypted (libpq's `sslmode`, Backstage's `ssl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresSsl {
    Disable,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    /// TLS without checking the certificate (`rejectUnauthorized: false`).
    Require,
    /// TLS with the server's certificate checked against the web PKI roots
    /// or `ca` (PEM).
    VerifyFull {
        ca: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObject {
    host: Option<String>,
    port: Option<Value>,
    user: Option<String>,
    password: Option<Secret>,
    database: Option<String>,
    ssl: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSsl {
    reject_unauthorized: Option<bool>,
    ca: Option<String>,
}

/// The connection `value` describes; the error says what is wrong, never
/// quoting a password.
pub fn postgres_connection(value: Option<&Value>) -> Result<PostgresConnection, ConnectionError> {
    match value {
        None | Some(Value::Null) => Err(ConnectionError::Missing),
        Some(Value::String(text)) => from_url(text),
        Some(value @ Value::Object(_)) => from_object(value),
        Some(_) => Err(ConnectionError::NotUrlOrObject),
    }
}

fn from_object(value: &Value) -> Result<PostgresConnection, ConnectionError> {
    let raw: RawObject = serde_json::from_value(value.clone()).map_err(ConnectionError::Object)?;
    let port = match raw.port {
        None => 5432,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or(ConnectionError::Port)?,
        Some(Value::String(s)) => s
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(ConnectionError::Port)?,
        Some(_) => return Err(ConnectionError::Port),
    };
    let ssl = match raw.ssl {
        None | Some(Value::Bool(false)) => PostgresSsl::Prefer,
        Some(Value::Bool(true)) => PostgresSsl::VerifyFull { ca: None },
        Some(value @ Value::Object(_)) => {
            let ssl: RawSsl = serde_json::from_value(value).map_err(ConnectionError::SslObject)?;
            if ssl.reject_unauthorized == Some(false) {
                PostgresSsl::Require
            } else {
                PostgresSsl::VerifyFull { ca: ssl.ca }
            }
        }
        Some(_) => return Err(ConnectionError::Ssl),
    };
    Ok(PostgresConnection {
        host: non_empty(raw.host).unwrap_or_else(|| "localhost".into()),
        port,
        user: non_empty(raw.user).unwrap_or_else(|| "postgres".into()),
        password: raw.password.filter(|p| !p.expose().is_empty()),
        database: non_empty(raw.database).unwrap_or_else(|| DEFAULT_POSTGRES_DATABASE.into()),
        ssl,
    })
}

fn from_url(text: &str) -> Result<PostgresConnection, ConnectionError> {
    let url = Url::parse(text).map_err(ConnectionError::NotUrl)?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(ConnectionError::Scheme(url.scheme().to_owned()));
    }
    let decode = |s: &str| percent_decode(s).ok_or(ConnectionError::NotUtf8);
    let mut ssl = PostgresSsl::Prefer;
    let mut ca = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" => {
                ssl = match value.as_ref() {
                    "disable" => PostgresSsl::Disable,
                    "allow" | "prefer" => PostgresSsl::Prefer,
                    "require" => PostgresSsl::Require,
                    "verify-ca" | "verify-full" => PostgresSsl::VerifyFull { ca: None },
                    other => return Err(ConnectionError::SslMode(other.to_owned())),
                }
            }
            "sslrootcert" => ca = Some(value.into_owned()),
            other => return Err(ConnectionError::Parameter(other.to_owned())),
        }
    }
    if let (PostgresSsl::VerifyFull { ca: slot }, Some(path)) = (&mut ssl, ca) {
        *slot = Some(
            std::fs::read_to_string(&path)
                .map_err(|source| ConnectionError::RootCert { path, source })?,
        );
    }
    let database = url.path().trim_start_matches('/');
    Ok(PostgresConnection {
        host: url
            .host_str()
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost")
            .trim_matches(['[', ']'])
            .to_owned(),
        port: url.port().unwrap_or(5432),
        user: match url.username() {
            "" => "postgres".into(),
            user => decode(user)?,
        },
        password: url.password().map(decode).transpose()?.map(Secret::new),
        database: if database.is_empty() {
            DEFAULT_POSTGRES_DATABASE.into()
        } else {
            decode(database)?
        },
        ssl,
    })
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_form_with_defaults() {
        let c = postgres_connection(Some(&json!({"host": "db", "password": "s3cret"}))).unwrap();
        assert_eq!(c.host, "db");
        assert_eq!(c.port, 5432);
        assert_eq!(c.user, "postgres");
        assert_eq!(c.database, DEFAULT_POSTGRES_DATABASE);
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(c.ssl, PostgresSsl::Prefer);
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn ssl_forms() {
        let ssl = |v: Value| {
            postgres_connection(Some(&json!({"host": "db", "ssl": v})))
                .unwrap()
                .ssl
        };
        assert_eq!(ssl(json!(true)), PostgresSsl::VerifyFull { ca: None });
        assert_eq!(
            ssl(json!({"rejectUnauthorized": false})),
            PostgresSsl::Require
        );
        assert_eq!(
            ssl(json!({"ca": "PEM"})),
            PostgresSsl::VerifyFull {
                ca: Some("PEM".into())
            }
        );
    }

    #[test]
    fn url_form() {
        let c = postgres_connection(Some(&json!(
            "postgres://cat%40log:p%2Fw@db.internal:6543/catalog?sslmode=require"
        )))
        .unwrap();
        assert_eq!(c.user, "cat@log");
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("p/w"));
        assert_eq!((c.host.as_str(), c.port), ("db.internal", 6543));
        assert_eq!(c.database, "catalog");
        assert_eq!(c.ssl, PostgresSsl::Require);
    }

    #[test]
    fn errors_never_quote_the_password() {
        for bad in [
            json!({"host": "db", "password": "hunter2", "prot": 1}),
            json!({"host": "db", "password": "hunter2", "port": "x"}),
            json!("postgres://u:hunter2@db/x?sslmode=sometimes"),
            json!("mysql://u:hunter2@db/x"),
            json!({"host": "db", "password": ["hunter2"]}),
        ] {
            let err = postgres_connection(Some(&bad)).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }
}
