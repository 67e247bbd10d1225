//! `backend.database.connection` for `client: pg`, in Backstage's two forms:
//! a `postgres://` URL or `{host, port, user, password, database, ssl}`.
//! Parsed here so `config check` reports a bad connection without
//! connecting, and no error ever quotes the password.

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::secret::Secret;

/// The database used when the connection names none; created if missing.
pub const DEFAULT_POSTGRES_DATABASE: &str = "bitbucket_catalogd";

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
pub fn postgres_connection(value: Option<&Value>) -> Result<PostgresConnection, String> {
    match value {
        None | Some(Value::Null) => Err(
            "client 'pg' needs a connection: a postgres:// URL or {host, port, user, password, database}"
                .into(),
        ),
        Some(Value::String(text)) => from_url(text),
        Some(value @ Value::Object(_)) => from_object(value),
        Some(_) => Err("expected a postgres:// URL or {host, port, user, password, database}".into()),
    }
}

fn from_object(value: &Value) -> Result<PostgresConnection, String> {
    // serde's messages name the field, never echo a string value.
    let raw: RawObject = serde_json::from_value(value.clone()).map_err(|err| err.to_string())?;
    let port = match raw.port {
        None => 5432,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or("port must be a number from 1 to 65535")?,
        Some(Value::String(s)) => s
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or("port must be a number from 1 to 65535")?,
        Some(_) => return Err("port must be a number from 1 to 65535".into()),
    };
    let ssl = match raw.ssl {
        None | Some(Value::Bool(false)) => PostgresSsl::Prefer,
        Some(Value::Bool(true)) => PostgresSsl::VerifyFull { ca: None },
        Some(value @ Value::Object(_)) => {
            let ssl: RawSsl = serde_json::from_value(value).map_err(|err| format!("ssl: {err}"))?;
            if ssl.reject_unauthorized == Some(false) {
                PostgresSsl::Require
            } else {
                PostgresSsl::VerifyFull { ca: ssl.ca }
            }
        }
        Some(_) => return Err("ssl must be true, false or {rejectUnauthorized, ca}".into()),
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

fn from_url(text: &str) -> Result<PostgresConnection, String> {
    const SHAPE: &str = "expected postgres://user:password@host:port/database";
    let url = Url::parse(text).map_err(|err| format!("not a URL ({err}); {SHAPE}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "scheme '{}' is not postgres; {SHAPE}",
            url.scheme()
        ));
    }
    let decode = |s: &str| {
        percent_decode(s).ok_or_else(|| "the URL's user or password is not valid UTF-8".to_owned())
    };
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
                    other => {
                        return Err(format!(
                            "sslmode '{other}' is not one of disable, prefer, require, verify-ca, verify-full"
                        ));
                    }
                }
            }
            "sslrootcert" => ca = Some(value.into_owned()),
            other => return Err(format!("unsupported URL parameter '{other}'; use sslmode")),
        }
    }
    if let (PostgresSsl::VerifyFull { ca: slot }, Some(path)) = (&mut ssl, ca) {
        *slot = Some(
            std::fs::read_to_string(&path)
                .map_err(|err| format!("cannot read sslrootcert {path} ({err})"))?,
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
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
