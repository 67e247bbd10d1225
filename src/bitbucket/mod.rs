//! Bitbucket REST clients and the HTTP plumbing they share.
//!
//! - [`server`]: Bitbucket Server / Data Center REST 1.0.
//! - [`cloud`]: Bitbucket Cloud REST 2.0.
//! - [`server_urls`], [`cloud_urls`]: web URLs ↔ REST calls, relative URL
//!   resolution ([`urls`] holds what they share).
//! - [`reader`]: the one reader for file URLs, by integration host.
//!
//! Every request goes through [`Http`], which adds credentials, counts the
//! request against the current run and turns failures into
//! [`BitbucketError`]s that say which URL failed and what to check.

pub mod cloud;
pub mod cloud_urls;
pub mod reader;
pub mod server;
pub mod server_urls;
pub mod urls;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use crate::integrations::Auth;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of an error body we quote back.
const ERROR_BODY_EXCERPT: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum BitbucketError {
    #[error("request to {url} failed: {message}")]
    Transport { url: String, message: String },
    #[error("{url} answered {status}{hint}{body}")]
    Status {
        url: String,
        status: StatusCode,
        hint: &'static str,
        body: String,
    },
    #[error("{url} returned a response we cannot read: {message}")]
    Decode { url: String, message: String },
}

impl BitbucketError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            BitbucketError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("cannot read extra CA certificates from {path}: {message}")]
    CaBundle { path: String, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Builds the HTTP client shared by all calls to Bitbucket. Proxies come
/// from `HTTPS_PROXY` / `NO_PROXY`; `extra_ca_file` adds a PEM bundle to the
/// system trust store (for Bitbucket Servers behind an internal CA).
pub fn build_http_client(extra_ca_file: Option<&Path>) -> Result<reqwest::Client, HttpSetupError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("bitbucket-catalogd/", env!("CARGO_PKG_VERSION")));
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

/// What one discovery run spent, shared by every request it makes.
#[derive(Debug, Default)]
pub struct RequestStats {
    requests: AtomicU64,
    failed: AtomicU64,
}

impl RequestStats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// An authenticated, counted view of the HTTP client for one integration.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    auth: Auth,
    stats: Arc<RequestStats>,
}

impl Http {
    pub fn new(client: reqwest::Client, auth: Auth, stats: Arc<RequestStats>) -> Self {
        Self {
            client,
            auth,
            stats,
        }
    }

    pub fn stats(&self) -> &Arc<RequestStats> {
        &self.stats
    }

    /// Sends a GET; `Ok(None)` for 404, an error for any other non-2xx.
    async fn get(
        &self,
        endpoint: &'static str,
        url: &Url,
    ) -> Result<Option<reqwest::Response>, BitbucketError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let request = self.auth.apply(self.client.get(url.clone()));
        let response = request.send().await.map_err(|err| {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            crate::metrics::record_bitbucket_request(endpoint, "error");
            BitbucketError::Transport {
                url: url.to_string(),
                message: describe_reqwest_error(&err),
            }
        })?;
        let status = response.status();
        crate::metrics::record_bitbucket_request(endpoint, status.as_str());
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            let body = response.text().await.unwrap_or_default();
            let excerpt: String = body
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(ERROR_BODY_EXCERPT)
                .collect();
            return Err(BitbucketError::Status {
                url: url.to_string(),
                status,
                hint: match status {
                    StatusCode::UNAUTHORIZED => {
                        " (the credentials were rejected: check the integration's token or username/password)"
                    }
                    StatusCode::FORBIDDEN => {
                        " (the credentials lack permission: grant read access to the projects and repositories)"
                    }
                    StatusCode::TOO_MANY_REQUESTS => {
                        " (rate limited by Bitbucket: lower the provider's concurrency or run less often)"
                    }
                    _ => "",
                },
                body: if excerpt.is_empty() {
                    String::new()
                } else {
                    format!(": {excerpt}")
                },
            });
        }
        Ok(Some(response))
    }

    /// GETs and decodes JSON; `Ok(None)` for 404.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: &Url,
    ) -> Result<Option<T>, BitbucketError> {
        let Some(response) = self.get(endpoint, url).await? else {
            return Ok(None);
        };
        let bytes = response
            .bytes()
            .await
            .map_err(|err| BitbucketError::Transport {
                url: url.to_string(),
                message: describe_reqwest_error(&err),
            })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| BitbucketError::Decode {
                url: url.to_string(),
                message: err.to_string(),
            })
    }

    /// GETs a file's bytes, reading at most `limit + 1` bytes so an oversized
    /// file is detected without downloading it; `Ok(None)` for 404.
    pub async fn get_bytes_limited(
        &self,
        endpoint: &'static str,
        url: &Url,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, BitbucketError> {
        let Some(mut response) = self.get(endpoint, url).await? else {
            return Ok(None);
        };
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| BitbucketError::Transport {
                url: url.to_string(),
                message: describe_reqwest_error(&err),
            })?
        {
            let room = (limit + 1).saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() > limit {
                break;
            }
        }
        Ok(Some(body))
    }
}

/// reqwest's Display hides the cause ("error sending request"); the cause
/// chain is what an operator needs ("connection refused", "dns error").
fn describe_reqwest_error(err: &reqwest::Error) -> String {
    let mut message = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        "transport error".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
