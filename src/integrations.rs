//! Resolved `integrations.*` entries: where each Bitbucket lives and how to
//! authenticate against it. Providers find their integration by host.

use serde::Serialize;
use url::Url;

use crate::secret::Secret;

/// Which Bitbucket: Data Center (Server) or Cloud. Its name
/// (`bitbucketServer`, `bitbucketCloud`) is the `integrations` and
/// `catalog.providers` key, the event route's topic and a provider's
/// `type` in the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumString)]
pub(crate) enum Product {
    #[strum(serialize = "bitbucketServer")]
    Server,
    #[strum(serialize = "bitbucketCloud")]
    Cloud,
}

impl Product {
    /// `bitbucketServer` or `bitbucketCloud`.
    pub(crate) fn topic(self) -> &'static str {
        self.into()
    }
}

/// A repository on a Bitbucket as an event, or a stored record, names it
/// (outside a listing): what a single-repository read starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepoRef {
    /// Server: the project key. Cloud: the project key, when known.
    pub project: Option<String>,
    /// Cloud: the workspace slug, when an event names it.
    pub workspace: Option<String>,
    pub slug: String,
    /// Bitbucket's id, stable across renames and moves (Server: the
    /// numeric id, Cloud: the `{uuid}`).
    pub id: Option<String>,
    /// The repository's web URL, when known.
    pub web_url: Option<String>,
    pub archived: bool,
    /// The default branch, when known (Cloud events: `mainbranch`).
    pub main_branch: Option<String>,
}

/// A host (`host` or `host:port`) as integrations are looked up by it:
/// case-insensitive, as DNS names are. ASCII rules suffice: `url::Url`
/// gives hosts in ASCII (international names as punycode).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct HostKey(String);

impl HostKey {
    pub(crate) fn new(host: &str) -> Self {
        Self(host.to_ascii_lowercase())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `a` and `b` name the same host, without building keys.
    pub(crate) fn same(a: &str, b: &str) -> bool {
        a.eq_ignore_ascii_case(b)
    }
}

/// How requests to one Bitbucket authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        token: Secret,
    },
    /// `Authorization: Basic <username:password>`.
    Basic {
        username: String,
        password: Secret,
    },
    /// Bitbucket Cloud OAuth client credentials (`clientId`/`clientSecret`):
    /// an access token from `token_url` (client-credentials grant), sent as
    /// `Authorization: Bearer`.
    #[serde(rename = "oauth")]
    OAuth {
        client_id: String,
        client_secret: Secret,
        token_url: Url,
    },
    Anonymous,
}

impl Auth {
    /// Adds the credentials to a request (OAuth's token is added by the
    /// integration's live credential, which fetches it).
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Bearer { token } => request.bearer_auth(token.expose()),
            Auth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
            Auth::OAuth { .. } | Auth::Anonymous => request,
        }
    }
}

/// A client-side request pace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub requests_per_second: f64,
    pub burst: u32,
}

/// `rateLimit.share` / `rateLimit.perHour`: how much of the account's
/// allowance this daemon may take, leaving the rest to other clients of
/// the same token (CI, Renovate, a scaffolder).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// At most this share (0 < share ≤ 1) of the refill rate the pacer
    /// learnt, with a burst of at most this share of the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// At most this many requests an hour, spread evenly (Cloud's hourly limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
}

/// How requests to one Bitbucket are paced, bounded and retried.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    /// `None`: no fixed pace; the pace adapts once Bitbucket answers 429.
    pub rate_limit: Option<RateLimit>,
    /// `rateLimit.share` / `rateLimit.perHour`; default: no budget.
    pub budget: Budget,
    pub max_concurrent_requests: usize,
    #[serde(serialize_with = "crate::iso_duration::serialize_duration")]
    pub connect_timeout: std::time::Duration,
    #[serde(serialize_with = "crate::iso_duration::serialize_duration")]
    pub request_timeout: std::time::Duration,
    /// Retries of a failed idempotent request (connection errors, timeouts,
    /// 5xx); 429s wait out `Retry-After` on top of these.
    pub max_retries: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            rate_limit: None,
            budget: Budget::default(),
            // The ceiling of the adaptive limit, which starts at 8.
            max_concurrent_requests: 64,
            connect_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(60),
            max_retries: 5,
        }
    }
}

/// How webhook events from one Bitbucket are authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSettings {
    /// `webhookSecret` (the first, when a list): events must carry
    /// `X-Hub-Signature` made with it; webhooks are registered with it.
    pub secret: Option<Secret>,
    /// The rest of a `webhookSecret` list: also accepted, so a secret can
    /// be rotated in Bitbucket and here without a window of 401s.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_accepted: Vec<Secret>,
    /// `allowUnsignedWebhooks: true` without a secret: events are accepted
    /// unsigned (the operator's explicit choice; warned at start-up).
    pub allow_unsigned: bool,
}

/// One `integrations.bitbucketServer[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketServerIntegration {
    /// `host` or `host:port`, as written in the config.
    pub host: String,
    /// REST 1.0 base, without a trailing slash.
    pub api_base_url: Url,
    pub auth: Auth,
    /// The `$file` the secret part of `auth` was read from: re-read when
    /// it changes (secret rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<std::path::PathBuf>,
    pub http: HttpSettings,
    pub webhooks: WebhookSettings,
}

/// One `integrations.bitbucketCloud[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketCloudIntegration {
    pub host: String,
    /// REST 2.0 base, without a trailing slash.
    pub api_base_url: Url,
    pub auth: Auth,
    /// The `$file` the secret part of `auth` was read from: re-read when
    /// it changes (secret rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<std::path::PathBuf>,
    pub http: HttpSettings,
    pub webhooks: WebhookSettings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Integrations {
    pub bitbucket_server: Vec<BitbucketServerIntegration>,
    pub bitbucket_cloud: Vec<BitbucketCloudIntegration>,
}

impl WebhookSettings {
    /// Every secret an event may be signed with.
    pub fn accepted(&self) -> impl Iterator<Item = &Secret> {
        self.secret.iter().chain(&self.also_accepted)
    }
}

impl Integrations {
    /// The Server integration for `host` (compared case-insensitively).
    pub fn server(&self, host: &str) -> Option<&BitbucketServerIntegration> {
        self.bitbucket_server
            .iter()
            .find(|i| HostKey::same(&i.host, host))
    }

    /// The Cloud integration for `host` (compared case-insensitively).
    pub fn cloud(&self, host: &str) -> Option<&BitbucketCloudIntegration> {
        self.bitbucket_cloud
            .iter()
            .find(|i| HostKey::same(&i.host, host))
    }

    pub fn server_hosts(&self) -> Vec<&str> {
        self.bitbucket_server
            .iter()
            .map(|i| i.host.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_is_named_as_its_configuration_key() {
        for (product, name) in [
            (Product::Server, "bitbucketServer"),
            (Product::Cloud, "bitbucketCloud"),
        ] {
            assert_eq!(product.topic(), name);
            assert_eq!(name.parse::<Product>(), Ok(product));
        }
        assert!("location".parse::<Product>().is_err());
    }

    #[test]
    fn debug_output_hides_credentials() {
        let integration = BitbucketServerIntegration {
            host: "bitbucket.example.com".into(),
            api_base_url: Url::parse("https://bitbucket.example.com/rest/api/1.0").unwrap(),
            auth: Auth::Basic {
                username: "svc".into(),
                password: Secret::new("s3cr3t-password"),
            },
            secret_file: None,
            http: HttpSettings::default(),
            webhooks: WebhookSettings {
                secret: Some(Secret::new("hook-s3cr3t")),
                also_accepted: Vec::new(),
                allow_unsigned: false,
            },
        };
        let debug = format!("{integration:?}");
        let json = serde_json::to_string(&integration).unwrap();
        for out in [debug, json] {
            assert!(!out.contains("s3cr3t-password"), "{out}");
            assert!(!out.contains("hook-s3cr3t"), "{out}");
            assert!(out.contains("<redacted>"), "{out}");
        }
    }
}
