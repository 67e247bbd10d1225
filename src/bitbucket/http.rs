//! [`Http`]: one integration's requests, counted against one run: pacing,
//! authentication, retries with backoff and jitter for connection errors,
//! timeouts and 5xx, `Retry-After` for 429, body caps, and errors that say
//! which URL failed and what to check.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use super::pacing;
use super::{BitbucketError, IntegrationHttp, RequestStats};

/// How much of an error body we quote back.
const ERROR_BODY_EXCERPT: usize = 300;
/// How much of an error body we read (the rest is never downloaded).
const ERROR_BODY_READ: usize = 4096;
/// Pages one listing may take (Server: 1000 items each, Cloud: up to 100):
/// a server that pages forever fails the listing instead.
pub(crate) const MAX_PAGES: usize = 1000;

/// Bytes all pages of one listing may take together: with [`MAX_PAGES`]
/// pages of up to 8 MiB alone, one listing could hold gigabytes.
pub(crate) const MAX_LISTING_BYTES: usize = 256 * 1024 * 1024;

/// A listing that did not end within [`MAX_PAGES`].
pub(crate) fn too_many_pages(url: &Url) -> BitbucketError {
    BitbucketError::decode(
        url,
        format!(
            "the listing did not end within {MAX_PAGES} pages; the listing cannot be completed (a misbehaving server or proxy?)"
        ),
    )
}

/// A failed attempt, before retries are decided.
#[derive(Debug)]
enum Attempt {
    /// Worth another try: connection errors, timeouts, 5xx, broken bodies.
    Transient(BitbucketError),
    /// 429: try again once the pacer lets requests through (after `Retry-After`).
    RateLimited(BitbucketError),
    Final(BitbucketError),
    /// 401 after which the credential changed (a rotated `$file`, a new
    /// OAuth token): sent once more.
    Reauthorize(BitbucketError),
}

/// 429s a single request may wait out before giving up.
const MAX_RATE_LIMITED_WAITS: usize = 30;
/// Waits when Bitbucket answers 429 without `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

impl IntegrationHttp {
    /// How the integration's pace and adaptive concurrency stand now: a
    /// provider sizes its fan-out by it.
    pub(crate) fn pace(&self) -> pacing::PaceView {
        self.pacer.view()
    }
}

/// One integration's HTTP, counted against one run.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    shared: Arc<IntegrationHttp>,
    stats: Arc<RequestStats>,
}

impl Http {
    pub(crate) fn new(shared: Arc<IntegrationHttp>, stats: Arc<RequestStats>) -> Self {
        Self { shared, stats }
    }

    /// GETs `url` with pacing and retries, reading at most `limit + 1` body
    /// bytes, so an oversized file is detected without downloading it;
    /// `Ok(None)` for 404. Reading the body is part of the attempt, so a
    /// connection reset mid-body is retried like any transport error.
    #[tracing::instrument(name = "bitbucket.request", level = "debug", skip_all, fields(endpoint = endpoint, path = url.path()))]
    pub(crate) async fn get_bytes_limited(
        &self,
        endpoint: &'static str,
        url: &Url,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, BitbucketError> {
        let transient_failures = std::sync::atomic::AtomicU32::new(0);
        let reauthorized = std::sync::atomic::AtomicBool::new(false);
        let waits = std::sync::atomic::AtomicUsize::new(0);
        let max_retries = self.shared.max_retries;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(
                usize::try_from(max_retries).unwrap_or(usize::MAX) + MAX_RATE_LIMITED_WAITS,
            )
            .with_jitter();
        let outcome = (|| self.attempt(endpoint, url, limit))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|attempt| match attempt {
                Attempt::Transient(_) => transient_failures.fetch_add(1, Ordering::Relaxed) < max_retries,
                Attempt::RateLimited(_) => waits.fetch_add(1, Ordering::Relaxed) < MAX_RATE_LIMITED_WAITS,
                Attempt::Reauthorize(_) => !reauthorized.swap(true, Ordering::Relaxed),
                Attempt::Final(_) => false,
            })
            .adjust(|attempt, delay| match attempt {
                // The pacer already holds every request until Retry-After.
                Attempt::RateLimited(_) | Attempt::Reauthorize(_) => Some(Duration::ZERO),
                _ => delay,
            })
            .notify(|attempt, delay| {
                self.stats.retried();
                if let Attempt::Transient(err) = attempt {
                    tracing::debug!(error = %err, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "retrying");
                }
            })
            .await;
        match outcome {
            Ok(body) => Ok(body),
            Err(
                Attempt::Transient(err)
                | Attempt::RateLimited(err)
                | Attempt::Final(err)
                | Attempt::Reauthorize(err),
            ) => Err(err),
        }
    }

    async fn attempt(
        &self,
        endpoint: &'static str,
        url: &Url,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, Attempt> {
        // Authorized before taking a slot: an OAuth token request takes one
        // of its own.
        let request = self
            .authorize(self.shared.client.get(url.clone()))
            .await
            .map_err(|err| match err.status() {
                Some(status) if !status.is_server_error() => Attempt::Final(err),
                _ => Attempt::Transient(err),
            })?;
        let mut slot = self.shared.pacer.acquire().await;
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                slot.overloaded();
                self.stats
                    .record(&self.shared.credentials.host, endpoint, "error");
                return Err(Attempt::Transient(BitbucketError::transport(url, err)));
            }
        };
        let status = response.status();
        self.stats
            .record(&self.shared.credentials.host, endpoint, status.as_str());
        if overload(status) {
            slot.overloaded();
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            slot.refused_by_bucket();
        }
        if status != StatusCode::TOO_MANY_REQUESTS {
            self.shared.pacer.answered(response.headers());
        }
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.stats.was_rate_limited();
            let wait = pacing::retry_after(response.headers()).unwrap_or(DEFAULT_RETRY_AFTER);
            self.shared.pacer.rate_limited(slot.ticket, wait);
            return Err(Attempt::RateLimited(self.status_error(
                url,
                status,
                String::new(),
            )));
        }
        if !status.is_success() {
            let body = read_limited(&mut response, ERROR_BODY_READ)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let error = self.status_error(url, status, body);
            if status == StatusCode::UNAUTHORIZED && self.shared.credential.rejected().await {
                return Err(Attempt::Reauthorize(error));
            }
            return Err(if status.is_server_error() {
                Attempt::Transient(error)
            } else {
                Attempt::Final(error)
            });
        }
        // An `.html` file in a repository (a `$text` placeholder) is HTML on purpose.
        let html_file = url
            .path()
            .rsplit('/')
            .next()
            .is_some_and(|name| name.ends_with(".html") || name.ends_with(".htm"));
        if let Some(content_type) = html_content_type(response.headers()).filter(|_| !html_file) {
            return Err(Attempt::Final(BitbucketError::NotBitbucket {
                url: url.to_string(),
                content_type,
            }));
        }
        let body = read_limited(&mut response, limit.saturating_add(1))
            .await
            .map_err(|err| Attempt::Transient(BitbucketError::transport(url, err)))?;
        if !html_file && looks_like_html(&body) {
            return Err(Attempt::Final(BitbucketError::NotBitbucket {
                url: url.to_string(),
                content_type: "an HTML document".to_owned(),
            }));
        }
        self.stats.read(body.len());
        Ok(Some(body))
    }

    fn status_error(&self, url: &Url, status: StatusCode, body: String) -> BitbucketError {
        let excerpt: String = body
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(ERROR_BODY_EXCERPT)
            .collect();
        BitbucketError::Status {
            url: url.to_string(),
            status,
            hint: match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.shared.credentials.rejected(&self.shared.credential.current(), status),
                StatusCode::TOO_MANY_REQUESTS => " (rate limited by Bitbucket even after waiting: lower the integration's rateLimit or run less often)".to_owned(),
                _ => String::new(),
            },
            body: if excerpt.is_empty() { String::new() } else { format!(": {excerpt}") },
        }
    }

    /// GETs and decodes JSON; `Ok(None)` for 404. A body that does not
    /// decode is fetched again (a truncated response looks like that).
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: &Url,
    ) -> Result<Option<T>, BitbucketError> {
        let mut unbounded = usize::MAX;
        self.get_page(endpoint, url, &mut unbounded).await
    }

    /// Like [`Self::get_json`], charging the bytes read to a listing's
    /// `budget` (start at [`MAX_LISTING_BYTES`]); past it the listing fails.
    pub(crate) async fn get_page<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: &Url,
        budget: &mut usize,
    ) -> Result<Option<T>, BitbucketError> {
        let mut last_error = None;
        for _ in 0..=self.shared.max_retries.min(2) {
            let Some(bytes) = self
                .get_bytes_limited(endpoint, url, MAX_JSON_BYTES)
                .await?
            else {
                return Ok(None);
            };
            let Some(left) = budget.checked_sub(bytes.len()) else {
                return Err(BitbucketError::decode(
                    url,
                    format!(
                        "the listing's pages add up to more than {} MiB; the listing cannot be completed (a misbehaving server or proxy?)",
                        MAX_LISTING_BYTES / (1024 * 1024)
                    ),
                ));
            };
            *budget = left;
            if bytes.len() > MAX_JSON_BYTES {
                return Err(BitbucketError::decode(
                    url,
                    format!(
                        "the answer is larger than {} MiB, more than any Bitbucket page; the listing cannot be completed",
                        MAX_JSON_BYTES / (1024 * 1024)
                    ),
                ));
            }
            match serde_json::from_slice(&bytes) {
                Ok(value) => return Ok(Some(value)),
                Err(err) => {
                    self.stats.retried();
                    last_error = Some(BitbucketError::decode(url, err.to_string()));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| BitbucketError::decode(url, "no response")))
    }
}

impl Http {
    /// Adds the integration's current credentials to `request`.
    async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, BitbucketError> {
        self.shared
            .credential
            .apply(
                &self.shared.client,
                &self.shared.pacer,
                &self.stats,
                request,
            )
            .await
    }

    /// Sends `body` as JSON with `method` (creating or updating a webhook):
    /// paced like every request, but not retried, as a POST is not
    /// idempotent. `Ok(None)` for 404; the answer's JSON otherwise.
    pub(crate) async fn send_json(
        &self,
        method: reqwest::Method,
        endpoint: &'static str,
        url: &Url,
        body: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, BitbucketError> {
        let mut reauthorized = false;
        let (mut response, _slot) = loop {
            // Authorized before taking a slot: an OAuth token request takes
            // one of its own.
            let request = self
                .authorize(self.shared.client.request(method.clone(), url.clone()))
                .await?
                .json(body);
            let slot = self.shared.pacer.acquire().await;
            let response = request.send().await.map_err(|err| {
                self.stats
                    .record(&self.shared.credentials.host, endpoint, "error");
                BitbucketError::transport(url, err)
            })?;
            // A 401 did nothing, so sending again with a changed credential is safe.
            if response.status() == StatusCode::UNAUTHORIZED
                && !reauthorized
                && self.shared.credential.rejected().await
            {
                reauthorized = true;
                self.stats.record(
                    &self.shared.credentials.host,
                    endpoint,
                    response.status().as_str(),
                );
                continue;
            }
            break (response, slot);
        };
        let status = response.status();
        self.stats
            .record(&self.shared.credentials.host, endpoint, status.as_str());
        self.shared.pacer.answered(response.headers());
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        // Never more than MAX_SENT_ANSWER, whatever the server sends.
        let bytes = read_limited(&mut response, MAX_SENT_ANSWER)
            .await
            .map_err(|err| BitbucketError::transport(url, err))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !status.is_success() {
            return Err(self.status_error(url, status, text));
        }
        if text.trim().is_empty() {
            return Ok(Some(serde_json::Value::Null));
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|err| BitbucketError::decode(url, err.to_string()))
    }
}

/// Answers that say the server (or a proxy before it) is overloaded: the
/// adaptive concurrency backs off. Not 429: that is the token bucket,
/// which the pace follows; halving the concurrency for it too would leave
/// a fast bucket served two at a time.
fn overload(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// What is read of the answer to a POST or PUT.
const MAX_SENT_ANSWER: usize = 1024 * 1024;

/// Listing pages are JSON of at most a few MiB even at 1000 items.
const MAX_JSON_BYTES: usize = 8 * 1024 * 1024;

/// At most `limit` bytes of the body; the rest is never read.
async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// The content type when it says HTML: Bitbucket's REST API and raw files
/// never answer HTML to us, login pages and proxies do.
fn html_content_type(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get(reqwest::header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    (essence.eq_ignore_ascii_case("text/html")
        || essence.eq_ignore_ascii_case("application/xhtml+xml"))
    .then(|| value.to_owned())
}

/// A body that starts like an HTML page (after a BOM and whitespace).
fn looks_like_html(body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let head = &body[start..body.len().min(start + 14)];
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html")
}
