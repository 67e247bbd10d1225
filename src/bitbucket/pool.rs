//! One HTTP context per configured Bitbucket, shared for the daemon's
//! lifetime: the client (proxies, extra CAs, same-host redirects),
//! credentials, pace and retry budget, and what a 401/403 tells the operator.

use std::path::Path;
use std::sync::Arc;

use reqwest::StatusCode;

use super::credential::Credential;
use super::pacing::{PaceView, Pacer};
use crate::integrations::{Auth, HostKey, HttpSettings};

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("cannot read extra CA certificates from {path}: {message}")]
    CaBundle { path: String, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Builds the HTTP client for one integration. Proxies come from
/// `HTTPS_PROXY` / `NO_PROXY`; `extra_ca_file` adds a PEM bundle to the
/// system trust store (for Bitbucket Servers behind an internal CA).
pub(crate) fn build_http_client(
    extra_ca_file: Option<&Path>,
    settings: &HttpSettings,
) -> Result<reqwest::Client, HttpSetupError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .user_agent(concat!("bitbucket-catalogd/", env!("CARGO_PKG_VERSION")))
        // Redirects are followed on the same host only: another host's
        // content must not become entities.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same_host = attempt.previous().first().is_some_and(|first| {
                first.host_str() == attempt.url().host_str()
                    && first.port_or_known_default() == attempt.url().port_or_known_default()
            });
            if !same_host {
                attempt.stop()
            } else if attempt.previous().len() > 10 {
                attempt.error("more than 10 redirects")
            } else {
                attempt.follow()
            }
        }));
    if let Some(path) = extra_ca_file {
        let ca_error = |message: String| HttpSetupError::CaBundle {
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read(path).map_err(|err| ca_error(err.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| ca_error(err.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no PEM certificates found".into()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|err| HttpSetupError::Client(err.to_string()))
}

/// Everything requests to one integration share for the daemon's lifetime:
/// the client, credentials, pace and retry budget.
#[derive(Debug)]
pub(crate) struct IntegrationHttp {
    pub(super) client: reqwest::Client,
    pub(super) credential: Credential,
    pub(super) pacer: Pacer,
    pub(super) max_retries: u32,
    /// What a 401/403 tells the operator to check.
    pub(super) credentials: CredentialsHint,
}

/// Where an integration's credentials are configured, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct CredentialsHint {
    pub host: String,
    /// The integration's key path, e.g. `integrations.bitbucketServer[0]`.
    pub key: String,
}

impl CredentialsHint {
    pub(super) fn rejected(&self, auth: &Auth, status: StatusCode) -> String {
        let (what, keys) = match auth {
            Auth::Bearer { .. } => ("token", format!("{}.token", self.key)),
            Auth::OAuth { .. } => (
                "OAuth access token",
                format!("{0}.clientId and {0}.clientSecret", self.key),
            ),
            Auth::Basic { .. } => (
                "username/password",
                format!("{0}.username and {0}.password", self.key),
            ),
            Auth::Anonymous => {
                return format!(
                    " (anonymous access to {} was refused ({}): set {}.token or username/password)",
                    self.host,
                    status.as_u16(),
                    self.key
                );
            }
        };
        match status {
            StatusCode::UNAUTHORIZED => format!(
                " (the {what} for {} was rejected (401): check {keys})",
                self.host
            ),
            _ => format!(
                " (the {what} for {} lacks permission (403): grant it read access to the projects and repositories, or check {keys})",
                self.host
            ),
        }
    }
}

impl IntegrationHttp {
    pub(crate) fn new(
        client: reqwest::Client,
        auth: Auth,
        secret_file: Option<std::path::PathBuf>,
        settings: &HttpSettings,
        credentials: CredentialsHint,
    ) -> Self {
        Self {
            client,
            credential: Credential::new(
                auth,
                secret_file,
                credentials.key.clone(),
                credentials.host.clone(),
            ),
            pacer: Pacer::new(
                credentials.host.clone(),
                settings.rate_limit,
                settings.max_concurrent_requests,
            )
            .with_budget(settings.budget),
            max_retries: settings.max_retries,
            credentials,
        }
    }
}

/// One [`IntegrationHttp`] per configured Bitbucket, by host: every source
/// reading a Bitbucket shares its pace, concurrency cap and what a 429
/// taught it.
#[derive(Debug, Default)]
pub(crate) struct HttpPool {
    by_host: std::collections::HashMap<HostKey, Arc<IntegrationHttp>>,
}

impl HttpPool {
    pub(crate) fn build(
        integrations: &crate::integrations::Integrations,
        extra_ca_file: Option<&Path>,
    ) -> Result<Self, HttpSetupError> {
        let mut pool = Self::default();
        let server = integrations
            .bitbucket_server
            .iter()
            .map(|s| (&s.host, (&s.auth, &s.secret_file), &s.http));
        let cloud = integrations
            .bitbucket_cloud
            .iter()
            .map(|c| (&c.host, (&c.auth, &c.secret_file), &c.http));
        let keyed = keyed("bitbucketServer", server).chain(keyed("bitbucketCloud", cloud));
        for ((host, (auth, secret_file), settings), key) in keyed {
            let client = build_http_client(extra_ca_file, settings)?;
            let credentials = CredentialsHint {
                host: host.clone(),
                key,
            };
            pool.by_host.entry(HostKey::new(host)).or_insert_with(|| {
                Arc::new(IntegrationHttp::new(
                    client,
                    auth.clone(),
                    secret_file.clone(),
                    settings,
                    credentials,
                ))
            });
        }
        Ok(pool)
    }

    /// The shared HTTP context of the integration for `host`.
    pub(crate) fn get(&self, host: &str) -> Option<&Arc<IntegrationHttp>> {
        self.by_host.get(&HostKey::new(host))
    }

    /// Every integration's host with its pace and 429s, by host.
    pub(crate) fn paces(&self) -> Vec<(String, PaceView)> {
        let mut paces: Vec<(String, PaceView)> = self
            .by_host
            .values()
            .map(|http| (http.credentials.host.clone(), http.pacer.view()))
            .collect();
        paces.sort_by(|a, b| a.0.cmp(&b.0));
        paces
    }
}

/// Each integration of `section` with its key path, e.g.
/// `integrations.bitbucketServer[0]`.
fn keyed<T>(
    section: &'static str,
    items: impl Iterator<Item = T>,
) -> impl Iterator<Item = (T, String)> {
    items
        .enumerate()
        .map(move |(i, item)| (item, format!("integrations.{section}[{i}]")))
}
