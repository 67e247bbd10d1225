//! Redaction for `config check` and `Debug`: secret-named keys, unknown
//! keys (a misspelled secret is still a secret) and URL user info become
//! `<redacted>`.

use serde_json::Value;
use url::Url;

use crate::secret::REDACTED;

/// Key names that hold secrets in our sections and Backstage's shared
/// ones (proxy headers, auth providers, Sentry DSNs, …).
fn is_secret_key(key: &str) -> bool {
    let key: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    [
        "token",
        "password",
        "secret",
        "credential",
        "authorization",
        "cookie",
        "dsn",
        "passphrase",
        "connectionstring",
    ]
    .iter()
    .any(|needle| key.contains(needle))
        // `X-Api-Key`, `privateKey`, `keys`; not our `projectKey` filter.
        || ((key.ends_with("key") || key.ends_with("keys")) && key != "projectkey")
}

pub(super) fn redact(value: &Value, path: &str) -> Value {
    redact_within(value, path, &[])
}

/// Redacts secret-named keys, `unknown` keys (dotted paths) and the user
/// info of any URL.
pub(super) fn redact_within(value: &Value, path: &str, unknown: &[String]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, child)| {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    let redacted = if is_secret_key(key)
                        || unknown.contains(&child_path)
                        || (child_path == "backend.database.connection"
                            && connection_has_credentials(child))
                    {
                        Value::String(REDACTED.into())
                    } else {
                        redact_within(child, &child_path, unknown)
                    };
                    (key.clone(), redacted)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| redact_within(item, &format!("{path}.{index}"), unknown))
                .collect(),
        ),
        Value::String(text) => Value::String(without_user_info(text)),
        other => other.clone(),
    }
}

/// `text` with the user info of a URL in it replaced (`https://<redacted>@host/…`).
fn without_user_info(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            match (text.find("://"), text.rfind('@')) {
                (Some(scheme_end), Some(at)) if at > scheme_end => {
                    format!("{}{REDACTED}{}", &text[..scheme_end + 3], &text[at..])
                }
                _ => REDACTED.to_owned(),
            }
        }
        _ => text.to_owned(),
    }
}

/// A connection string such as `postgres://user:pw@host/db` carries a
/// password; a file path does not.
fn connection_has_credentials(value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        Url::parse(text).is_ok_and(|url| url.password().is_some() || !url.username().is_empty())
            || text.to_ascii_lowercase().contains("password")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_covers_credentials_everywhere() {
        let tree = serde_json::json!({
            "integrations": {"bitbucketServer": [{"host": "h", "token": "t0k", "password": "p"}],
                             "bitbucketCloud": [{"username": "u", "appPassword": "ap"}]},
            "backend": {"database": {"client": "pg", "connection": {"host": "db", "password": "pw"}}},
            "auth": {"keys": [{"secret": "s"}]}
        });
        let out = redact(&tree, "").to_string();
        for secret in ["t0k", "\"p\"", "ap\"", "pw", "\"s\""] {
            assert!(!out.contains(secret), "{secret} leaked in {out}");
        }
        assert!(out.contains("\"host\":\"db\""));

        let url =
            serde_json::json!({"backend": {"database": {"connection": "postgres://u:pw2@db/x"}}});
        assert!(!redact(&url, "").to_string().contains("pw2"));
        let path =
            serde_json::json!({"backend": {"database": {"connection": "./data/catalog.sqlite"}}});
        assert!(
            redact(&path, "")
                .to_string()
                .contains("./data/catalog.sqlite")
        );
    }
}
