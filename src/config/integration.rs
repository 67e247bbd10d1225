//! `integrations.bitbucketServer` and `integrations.bitbucketCloud`: hosts,
//! API base URLs, credentials and webhook secrets (Backstage's keys), plus
//! our HTTP settings (see [`super::http`]).

use url::Url;

use super::http::http_settings;
use super::source::display_key;
use super::{ConfigError, Ctx};
use crate::integrations::{
    Auth, BitbucketCloudIntegration, BitbucketServerIntegration, Integrations, WebhookSettings,
};
use crate::secret::Secret;

pub(super) fn integrations(ctx: &mut Ctx<'_>) -> Result<Integrations, ConfigError> {
    let mut integrations = Integrations::default();
    let server_key = "integrations.bitbucketServer";
    let servers: Vec<raw::ServerIntegration> = ctx.optional(server_key)?.unwrap_or_default();
    for (index, raw) in servers.into_iter().enumerate() {
        let key = format!("{server_key}.{index}");
        let integration = server_integration(ctx, &key, raw)?;
        if integrations.server(&integration.host).is_some() {
            return Err(ctx.error(
                &format!("{key}.host"),
                format!(
                    "host '{}' is configured twice; merge the entries",
                    integration.host
                ),
            ));
        }
        integrations.bitbucket_server.push(integration);
    }
    let cloud_key = "integrations.bitbucketCloud";
    let clouds: Vec<raw::CloudIntegration> = ctx.optional(cloud_key)?.unwrap_or_default();
    for (index, raw) in clouds.into_iter().enumerate() {
        let integration = cloud_integration(ctx, &format!("{cloud_key}.{index}"), raw)?;
        integrations.bitbucket_cloud.push(integration);
    }
    if integrations.bitbucket_cloud.is_empty() {
        // As in Backstage: anonymous bitbucket.org, an entry with no keys.
        let implicit = cloud_integration(ctx, cloud_key, raw::CloudIntegration::default())?;
        integrations.bitbucket_cloud.push(implicit);
    }
    Ok(integrations)
}

/// `webhookSecret` and `allowUnsignedWebhooks` of an integration entry.
fn webhook_settings(
    ctx: &mut Ctx<'_>,
    key: &str,
    secrets: Option<raw::WebhookSecrets>,
    allow_unsigned: Option<bool>,
) -> WebhookSettings {
    let mut secrets = match secrets {
        None => Vec::new(),
        Some(raw::WebhookSecrets::One(secret)) => vec![secret],
        Some(raw::WebhookSecrets::Many(secrets)) => secrets,
    };
    secrets.retain(|s| !s.expose().trim().is_empty());
    let mut secrets = secrets.into_iter();
    let secret = secrets.next();
    let also_accepted: Vec<Secret> = secrets.collect();
    let allow_unsigned = allow_unsigned.unwrap_or(false);
    if allow_unsigned && secret.is_some() {
        ctx.warn(
            &format!("{key}.allowUnsignedWebhooks"),
            "is ignored: webhookSecret is set, so every event must be signed with it",
        );
    }
    WebhookSettings {
        allow_unsigned: allow_unsigned && secret.is_none(),
        secret,
        also_accepted,
    }
}

/// Checks `host` and returns the API base URL: `apiBaseUrl` when
/// written, else `derived` (from the host, so its errors name `host`).
fn endpoint(
    ctx: &Ctx<'_>,
    key: &str,
    host: &str,
    api_base_url: Option<BaseUrl>,
    derived: impl FnOnce() -> Result<Url, BaseUrlError>,
) -> Result<Url, ConfigError> {
    validate_host(host).map_err(|err| ctx.error(&format!("{key}.host"), err))?;
    match api_base_url {
        Some(url) => Ok(url.0),
        None => derived().map_err(|err| ctx.error(&format!("{key}.host"), err)),
    }
}

fn server_integration(
    ctx: &mut Ctx<'_>,
    key: &str,
    raw: raw::ServerIntegration,
) -> Result<BitbucketServerIntegration, ConfigError> {
    let host = raw.host.trim().to_owned();
    let api_base_url = endpoint(ctx, key, &host, raw.api_base_url, || {
        parse_base_url(&format!("https://{host}/rest/api/1.0"))
    })?;
    let secret_file = match (&raw.token, &raw.password) {
        (Some(_), _) => secret_file(ctx, key, "token"),
        (None, Some(_)) => secret_file(ctx, key, "password"),
        (None, None) => None,
    };
    let auth = match (raw.token, raw.username, raw.password) {
        (Some(token), _, _) => Auth::Bearer { token },
        (None, Some(username), Some(password)) => Auth::Basic { username, password },
        (None, Some(_), None) => {
            return Err(ctx.error(
                &format!("{key}.password"),
                "username is set without password; set password (or use token instead)",
            ));
        }
        (None, None, Some(_)) => {
            return Err(ctx.error(
                &format!("{key}.username"),
                "password is set without username; set username",
            ));
        }
        (None, None, None) => Auth::Anonymous,
    };
    let webhooks = webhook_settings(ctx, key, raw.webhook_secret, raw.allow_unsigned_webhooks);
    let http = http_settings(ctx, key, raw::http_of!(raw))?;
    Ok(BitbucketServerIntegration {
        host,
        api_base_url,
        auth,
        secret_file,
        http,
        webhooks,
    })
}

fn cloud_integration(
    ctx: &mut Ctx<'_>,
    key: &str,
    mut raw: raw::CloudIntegration,
) -> Result<BitbucketCloudIntegration, ConfigError> {
    let host = raw.host.take().unwrap_or_else(|| "bitbucket.org".into());
    let api_base_url = endpoint(ctx, key, &host, raw.api_base_url.take(), || {
        Ok(default_cloud_api())
    })?;
    let (auth, secret_file) = match oauth(ctx, key, &mut raw)? {
        Some(auth) => (auth, secret_file(ctx, key, "clientSecret")),
        None => basic_cloud_auth(ctx, key, &mut raw)?,
    };
    let webhooks = webhook_settings(ctx, key, raw.webhook_secret, raw.allow_unsigned_webhooks);
    let http = http_settings(ctx, key, raw::http_of!(raw))?;
    Ok(BitbucketCloudIntegration {
        host,
        api_base_url,
        auth,
        secret_file,
        http,
        webhooks,
    })
}

/// A Cloud entry's API token or app password (with its account), or none;
/// and the `$file` it came from.
fn basic_cloud_auth(
    ctx: &mut Ctx<'_>,
    key: &str,
    raw: &mut raw::CloudIntegration,
) -> Result<(Auth, Option<std::path::PathBuf>), ConfigError> {
    let secret_file = match (&raw.token, &raw.app_password) {
        (Some(_), _) => secret_file(ctx, key, "token"),
        (None, Some(_)) => secret_file(ctx, key, "appPassword"),
        (None, None) => None,
    };
    let auth = match (
        raw.username.take(),
        raw.app_password.take(),
        raw.token.take(),
    ) {
        // An API token replaces a leftover app password.
        (Some(username), _, Some(token)) => Auth::Basic {
            username,
            password: token,
        },
        (Some(username), Some(password), None) => {
            ctx.warn(
                &format!("{key}.appPassword"),
                &format!("Atlassian removed app passwords in July 2026; create an API token and set {} instead", display_key(&format!("{key}.token"))),
            );
            Auth::Basic { username, password }
        }
        (Some(_), None, None) => {
            return Err(ctx.error(&format!("{key}.token"), "username is set without token; set token (an Atlassian API token for that account email)"));
        }
        (None, Some(_), _) => {
            return Err(ctx.error(
                &format!("{key}.username"),
                "appPassword is set without username; set username",
            ));
        }
        (None, None, Some(token)) => Auth::Bearer { token },
        (None, None, None) => Auth::Anonymous,
    };
    Ok((auth, secret_file))
}

/// Bitbucket Cloud's OAuth 2.0 token endpoint (client-credentials grant).
const DEFAULT_TOKEN_URL: &str = "https://bitbucket.org/site/oauth2/access_token";

/// `clientId`/`clientSecret` (Backstage's OAuth consumer keys), when set:
/// the one credential of the entry.
fn oauth(
    ctx: &mut Ctx<'_>,
    key: &str,
    raw: &mut raw::CloudIntegration,
) -> Result<Option<Auth>, ConfigError> {
    let token_url = raw.token_url.take();
    let (client_id, client_secret) = match (raw.client_id.take(), raw.client_secret.take()) {
        (None, None) => {
            if token_url.is_some() {
                return Err(ctx.error(
                    &format!("{key}.tokenUrl"),
                    "is set without clientId and clientSecret; set them or remove tokenUrl",
                ));
            }
            return Ok(None);
        }
        (Some(_), None) => {
            return Err(ctx.error(
                &format!("{key}.clientSecret"),
                "clientId is set without clientSecret; set the OAuth consumer's secret",
            ));
        }
        (None, Some(_)) => {
            return Err(ctx.error(
                &format!("{key}.clientId"),
                "clientSecret is set without clientId; set the OAuth consumer's key",
            ));
        }
        (Some(id), Some(secret)) => (id, secret),
    };
    if raw.token.is_some() || raw.app_password.is_some() || raw.username.is_some() {
        // As Backstage: the OAuth consumer wins over the other keys.
        ctx.warn(
            &format!("{key}.clientId"),
            "is used: username/token/appPassword of this entry are ignored while clientId/clientSecret are set; remove them",
        );
    }
    let token_url = match token_url {
        Some(url) => url.0,
        None => Url::parse(DEFAULT_TOKEN_URL)
            .map_err(|err| ctx.error(&format!("{key}.tokenUrl"), err))?,
    };
    Ok(Some(Auth::OAuth {
        client_id: client_id.trim().to_owned(),
        client_secret,
        token_url,
    }))
}

/// The `$file` the value at `{key}.{field}` was read from, if any.
fn secret_file(ctx: &Ctx<'_>, key: &str, field: &str) -> Option<std::path::PathBuf> {
    ctx.source
        .file_includes
        .get(&format!("{key}.{field}"))
        .cloned()
}

fn default_cloud_api() -> Url {
    // A constant that parses; covered by tests.
    Url::parse("https://api.bitbucket.org/2.0").unwrap_or_else(|_| unreachable!())
}

/// Why an integration's `host` is not a host.
#[derive(Debug, thiserror::Error)]
pub(super) enum HostError {
    #[error("host is empty; write the Bitbucket host, e.g. bitbucket.example.com")]
    Empty,
    #[error(
        "'{0}' has a scheme; write only the host (and port), e.g. bitbucket.example.com, and put the full URL in apiBaseUrl"
    )]
    Scheme(String),
    #[error("'{0}' is not a host or host:port")]
    NotAHost(String),
}

/// Why an `apiBaseUrl` (or a `webhooks.url`) cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum BaseUrlError {
    #[error("'{text}' is not a URL ({source})")]
    NotUrl {
        text: String,
        #[source]
        source: url::ParseError,
    },
    #[error("'{0}' must start with https:// (or http://)")]
    Scheme(String),
    #[error("credentials do not belong in the URL; use token or username/password")]
    Credentials,
}

fn validate_host(host: &str) -> Result<(), HostError> {
    if host.is_empty() {
        return Err(HostError::Empty);
    }
    if host.contains("://") {
        return Err(HostError::Scheme(host.to_owned()));
    }
    match Url::parse(&format!("https://{host}/")) {
        Ok(url) if url.path() == "/" && url.host_str().is_some() && url.username().is_empty() => {
            Ok(())
        }
        _ => Err(HostError::NotAHost(host.to_owned())),
    }
}

/// An `apiBaseUrl` or `webhooks.url`, checked as it is deserialised.
#[derive(serde::Deserialize)]
#[serde(try_from = "String")]
pub(super) struct BaseUrl(pub Url);

impl TryFrom<String> for BaseUrl {
    type Error = BaseUrlError;

    fn try_from(text: String) -> Result<Self, BaseUrlError> {
        parse_base_url(&text).map(Self)
    }
}

fn parse_base_url(text: &str) -> Result<Url, BaseUrlError> {
    let trimmed = text.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|source| BaseUrlError::NotUrl {
        text: text.to_owned(),
        source,
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BaseUrlError::Scheme(text.to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BaseUrlError::Credentials);
    }
    Ok(url)
}

pub(super) mod raw {
    use serde::Deserialize;

    use super::BaseUrl;
    use crate::config::loose::{Number, PositiveDuration};
    use crate::secret::Secret;

    pub(super) use crate::config::http::raw::{RateLimit, http_of};

    /// An integration entry as written: its own keys, then the webhook and
    /// HTTP keys both kinds have. Listed, not `#[serde(flatten)]`: that
    /// would hide unknown keys from the warnings.
    macro_rules! integration_entry {
        ($name:ident { $($field:ident: $type:ty,)* }) => {
            #[derive(Default, Deserialize)]
            #[serde(rename_all = "camelCase")]
            pub(crate) struct $name {
                $(pub $field: $type,)*
                pub webhook_secret: Option<WebhookSecrets>,
                pub allow_unsigned_webhooks: Option<bool>,
                pub rate_limit: Option<RateLimit>,
                pub max_concurrent_requests: Option<Number<1, 256>>,
                pub connect_timeout: Option<PositiveDuration<30>>,
                pub request_timeout: Option<PositiveDuration<30>>,
                pub max_retries: Option<Number<0, 20>>,
            }
        };
    }

    /// `webhookSecret`: one secret, or a list while one is rotated.
    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(crate) enum WebhookSecrets {
        One(Secret),
        Many(Vec<Secret>),
    }

    integration_entry!(ServerIntegration {
        host: String,
        api_base_url: Option<BaseUrl>,
        token: Option<Secret>,
        username: Option<String>,
        password: Option<Secret>,
    });

    integration_entry!(CloudIntegration {
        host: Option<String>,
        api_base_url: Option<BaseUrl>,
        username: Option<String>,
        app_password: Option<Secret>,
        token: Option<Secret>,
        client_id: Option<String>,
        client_secret: Option<Secret>,
        token_url: Option<BaseUrl>,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cloud_api_parses() {
        assert_eq!(
            default_cloud_api().as_str(),
            "https://api.bitbucket.org/2.0"
        );
    }
}
