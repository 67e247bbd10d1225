//! `backend.listen`: where the API listens (`':7007'` or `{host, port}`)
//! and the connection limits and timeouts that protect it.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{ConfigError, Ctx};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenConfig {
    pub host: String,
    pub port: u16,
    /// Connections served at once; `None`: derived from the descriptor
    /// limit at start-up, keeping descriptors for discovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers, counted
    /// from its first byte (or from connecting), against slowloris.
    #[serde(serialize_with = "crate::iso_duration::serialize_duration")]
    pub header_timeout: Duration,
    /// How long a connection may stay with no byte moving either way
    /// (keep-alive between requests, a response the client does not read).
    /// Longer than load balancers' keep-alive, so they close first.
    #[serde(serialize_with = "crate::iso_duration::serialize_duration")]
    pub idle_timeout: Duration,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 7007,
            max_connections: None,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
        }
    }
}

/// `backend.listen`: absent, `':7007'`, or `{host, port, …}`.
pub(super) fn listen(ctx: &mut Ctx<'_>) -> Result<ListenConfig, ConfigError> {
    match ctx.source.get("backend.listen") {
        None | Some(Value::Null) => Ok(ListenConfig::default()),
        Some(Value::String(text)) => parse_listen_string(text).ok_or_else(|| {
            ctx.error(
                "backend.listen",
                format!(
                    "'{text}' is not host:port; write e.g. ':7007' or {{host: 0.0.0.0, port: 7007}}"
                ),
            )
        }),
        Some(value @ Value::Object(_)) => {
            let raw: raw::Listen = ctx.section("backend.listen", value)?;
            Ok(listen_object(raw))
        }
        Some(_) => Err(ctx.error("backend.listen", "expected ':7007' or {host, port}")),
    }
}

fn listen_object(raw: raw::Listen) -> ListenConfig {
    let defaults = ListenConfig::default();
    ListenConfig {
        host: raw.host.unwrap_or(defaults.host),
        port: raw.port.map_or(defaults.port, |port| port.0),
        max_connections: raw.max_connections.map(|max| max.0),
        header_timeout: raw.header_timeout.map_or(defaults.header_timeout, |d| d.0),
        idle_timeout: raw.idle_timeout.map_or(defaults.idle_timeout, |d| d.0),
    }
}

fn parse_listen_string(text: &str) -> Option<ListenConfig> {
    let text = text.trim();
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => ("", text),
    };
    Some(ListenConfig {
        host: if host.is_empty() {
            ListenConfig::default().host
        } else {
            host.trim_matches(['[', ']']).to_owned()
        },
        port: port.parse().ok()?,
        ..ListenConfig::default()
    })
}

/// The shape as written; each value is checked as it is read (numbers may
/// arrive as strings from `${VAR}`).
pub(super) mod raw {
    use serde::Deserialize;

    use crate::config::loose::{Bounded, Port, PositiveDuration};

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct Listen {
        pub host: Option<String>,
        pub port: Option<Port>,
        pub max_connections: Option<Bounded<1, 1_000_000>>,
        pub header_timeout: Option<PositiveDuration<10>>,
        pub idle_timeout: Option<PositiveDuration<10>>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_strings() {
        assert_eq!(
            parse_listen_string(":7008"),
            Some(ListenConfig {
                host: "0.0.0.0".into(),
                port: 7008,
                ..ListenConfig::default()
            })
        );
        assert_eq!(
            parse_listen_string("127.0.0.1:80"),
            Some(ListenConfig {
                host: "127.0.0.1".into(),
                port: 80,
                ..ListenConfig::default()
            })
        );
        assert_eq!(parse_listen_string("nope"), None);
    }
}
