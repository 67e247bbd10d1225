//! [`Credential`]: one integration's live credentials. A secret read from a
//! `$file` is re-read when the file changes (polled, so Kubernetes' swap of
//! the `..data` symlink is seen) and once more on a 401; a Cloud OAuth
//! consumer's access token is fetched, cached, renewed before it expires
//! and once on a 401. A request takes the value current when it is sent, so
//! requests in flight finish with the old one. A background task looks at
//! the file every [`FILE_CHECK_EVERY`] too, so a rotation is noticed (log,
//! metric) while no request is made. Token requests are paced and counted
//! like the integration's other requests; a failing token endpoint is asked
//! again only after a growing back-off.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

use super::pacing::{self, Pacer};
use super::{BitbucketError, RequestStats};
use crate::integrations::Auth;
use crate::secret::Secret;

/// How often a `$file` secret is looked at again (in the background, and
/// before a request when the last look is older).
const FILE_CHECK_EVERY: Duration = Duration::from_secs(2);
/// Back-off after a failed token request: doubles from the first, up to the last.
const TOKEN_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const TOKEN_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// The endpoint label of token requests in `bitbucket_requests_total`.
const TOKEN_ENDPOINT: &str = "oauthToken";
/// How much of its lifetime an OAuth access token is renewed ahead of expiry
/// (at most [`MAX_RENEW_AHEAD`]).
const RENEW_AHEAD_FRACTION: u32 = 4;
const MAX_RENEW_AHEAD: Duration = Duration::from_secs(120);
/// What is read of a token endpoint's answer.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;

/// One integration's credentials as requests use them.
#[derive(Debug)]
pub(crate) struct Credential {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    auth: RwLock<Auth>,
    file: Option<SecretFile>,
    token: tokio::sync::Mutex<Option<AccessToken>>,
    /// The token endpoint's latest failures, while they last.
    token_failure: Mutex<Option<TokenFailure>>,
    /// The integration's key path and host, for logs and metrics.
    key: String,
    host: String,
}

#[derive(Debug)]
struct SecretFile {
    path: PathBuf,
    checked: Mutex<Instant>,
    /// The file was unusable at the last look (warned once until it is usable).
    unusable: Mutex<bool>,
}

/// Failed token requests in a row, and when the endpoint may be asked again.
#[derive(Debug, Clone)]
struct TokenFailure {
    failures: u32,
    retry_at: Instant,
    /// The last answer's status; `None` for a transport or decoding failure.
    status: Option<StatusCode>,
    message: String,
}

#[derive(Debug, Clone)]
struct AccessToken {
    value: Secret,
    renew_at: Instant,
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: Secret,
    expires_in: Option<u64>,
}

impl Credential {
    /// The credential; with a `$file` secret and a runtime, also the
    /// background task that looks at the file (it ends with the credential).
    pub(crate) fn new(auth: Auth, file: Option<PathBuf>, key: String, host: String) -> Self {
        let watched = file.is_some();
        let inner = Arc::new(Inner {
            auth: RwLock::new(auth),
            file: file.map(|path| SecretFile {
                path,
                checked: Mutex::new(Instant::now()),
                unusable: Mutex::new(false),
            }),
            token: tokio::sync::Mutex::new(None),
            token_failure: Mutex::new(None),
            key,
            host,
        });
        if watched && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(watch(Arc::downgrade(&inner)));
        }
        Self { inner }
    }

    /// The credentials in force (for error hints).
    pub(crate) fn current(&self) -> Auth {
        self.inner.auth.read().clone()
    }

    /// Adds the current credentials to `request`, re-reading a `$file`
    /// secret when it is due and fetching an OAuth token when none is valid
    /// (paced by `pacer`, counted in `stats`). Call it without holding a
    /// pacer slot: a token request takes one of its own.
    pub(crate) async fn apply(
        &self,
        client: &reqwest::Client,
        pacer: &Pacer,
        stats: &RequestStats,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, BitbucketError> {
        self.inner.apply(client, pacer, stats, request).await
    }

    /// After a 401: whether the request is worth sending once more, because
    /// the secret file changed or a new OAuth token is to be fetched.
    pub(crate) async fn rejected(&self) -> bool {
        self.inner.rejected().await
    }
}

/// Looks at the secret file every [`FILE_CHECK_EVERY`] while the
/// credential lives, so a rotation is logged and counted without waiting
/// for a request.
async fn watch(credential: Weak<Inner>) {
    let mut every = tokio::time::interval(FILE_CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(credential) = credential.upgrade() else {
            return;
        };
        credential.check_file_if_due();
    }
}

impl Inner {
    /// Reads the secret file again when the last look is
    /// [`FILE_CHECK_EVERY`] old or older.
    fn check_file_if_due(&self) {
        if let Some(file) = &self.file {
            let due = {
                let mut checked = file.checked.lock();
                let due = checked.elapsed() >= FILE_CHECK_EVERY;
                if due {
                    *checked = Instant::now();
                }
                due
            };
            if due {
                self.reread_file();
            }
        }
    }

    async fn apply(
        &self,
        client: &reqwest::Client,
        pacer: &Pacer,
        stats: &RequestStats,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, BitbucketError> {
        self.check_file_if_due();
        let auth = self.auth.read().clone();
        match &auth {
            Auth::OAuth {
                client_id,
                client_secret,
                token_url,
            } => {
                let token = self
                    .access_token(&TokenRequest {
                        client,
                        pacer,
                        stats,
                        client_id,
                        client_secret,
                        token_url,
                    })
                    .await?;
                Ok(request.bearer_auth(token.expose()))
            }
            other => Ok(other.apply(request)),
        }
    }

    async fn rejected(&self) -> bool {
        let changed = self.reread_file();
        if matches!(*self.auth.read(), Auth::OAuth { .. }) {
            self.token.lock().await.take();
            return true;
        }
        changed
    }

    /// Reads the `$file` secret again; true when it changed. A file that
    /// cannot be read or holds no usable value keeps the old value.
    fn reread_file(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let value = match std::fs::read_to_string(&file.path) {
            Ok(text) => text.trim().to_owned(),
            Err(err) => {
                // Once per spell, not every few seconds while it lasts.
                if !std::mem::replace(&mut *file.unusable.lock(), true) {
                    tracing::warn!(integration = %self.key, host = %self.host, file = %file.path.display(), error = %err, "cannot read the credential file again; keeping the credential in use");
                }
                return false;
            }
        };
        if value.is_empty() || value.chars().any(char::is_control) {
            if !std::mem::replace(&mut *file.unusable.lock(), true) {
                tracing::warn!(integration = %self.key, host = %self.host, file = %file.path.display(), "the credential file is empty or not one line of text (being written?); keeping the credential in use");
            }
            return false;
        }
        *file.unusable.lock() = false;
        let mut auth = self.auth.write();
        let slot = match &mut *auth {
            Auth::Bearer { token } => token,
            Auth::Basic { password, .. } => password,
            Auth::OAuth { client_secret, .. } => client_secret,
            Auth::Anonymous => return false,
        };
        if slot.expose() == value {
            return false;
        }
        *slot = Secret::new(value);
        drop(auth);
        if let Ok(mut token) = self.token.try_lock() {
            token.take();
        }
        // A new secret may be what the token endpoint wanted.
        self.token_failure.lock().take();
        tracing::info!(integration = %self.key, host = %self.host, file = %file.path.display(), "{} credential changed on disk; new requests use the new value", self.key);
        metrics::counter!("bitbucket_credential_changes_total", "integration" => self.key.clone(), "host" => self.host.clone()).increment(1);
        true
    }

    /// A valid OAuth access token: the cached one, or a new one from the
    /// token endpoint (client-credentials grant), unless the endpoint
    /// failed lately and its back-off has not passed.
    async fn access_token(&self, asked: &TokenRequest<'_>) -> Result<Secret, BitbucketError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.value.clone());
        }
        if let Some(failure) = self
            .token_failure
            .lock()
            .clone()
            .filter(|f| Instant::now() < f.retry_at)
        {
            return Err(self.backing_off(asked.token_url, &failure));
        }
        match self.request_token(asked).await {
            Ok(token) => {
                self.token_failure.lock().take();
                let value = token.value.clone();
                *cached = Some(token);
                Ok(value)
            }
            Err((err, retry_after)) => {
                let mut failure = self.token_failure.lock();
                let failures = failure.as_ref().map_or(0, |f| f.failures) + 1;
                let backoff = TOKEN_BACKOFF_FIRST
                    .saturating_mul(1 << (failures - 1).min(6))
                    .min(TOKEN_BACKOFF_MAX)
                    .max(retry_after.unwrap_or_default());
                tracing::warn!(integration = %self.key, host = %self.host, failures, retry_in_s = backoff.as_secs(), error = %err, "the OAuth token request failed; the token endpoint is asked again after a back-off");
                *failure = Some(TokenFailure {
                    failures,
                    retry_at: Instant::now() + backoff,
                    status: err.status(),
                    message: err.to_string(),
                });
                Err(err)
            }
        }
    }

    /// The error a request gets while the token endpoint is backed off.
    fn backing_off(&self, token_url: &url::Url, failure: &TokenFailure) -> BitbucketError {
        let wait = failure.retry_at.saturating_duration_since(Instant::now());
        let message = format!(
            "not asked again for {} s after {} failed token request(s): {}",
            wait.as_secs().max(1),
            failure.failures,
            failure.message
        );
        match failure.status {
            // Kept a status, so a refused consumer stays a final error.
            Some(status) => token_status(token_url, status, format!(" ({message})")),
            None => BitbucketError::decode(token_url, message),
        }
    }

    /// One token request, paced and counted like the integration's other
    /// requests; on failure, the error and the `Retry-After` of a 429.
    async fn request_token(
        &self,
        asked: &TokenRequest<'_>,
    ) -> Result<AccessToken, (BitbucketError, Option<Duration>)> {
        let (pacer, stats, token_url) = (asked.pacer, asked.stats, asked.token_url);
        let slot = pacer.acquire().await;
        let request = asked
            .client
            .post(token_url.clone())
            .basic_auth(asked.client_id, Some(asked.client_secret.expose()))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials");
        let transport = |err| (BitbucketError::transport(token_url, err), None);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                stats.record(&self.host, TOKEN_ENDPOINT, "error");
                return Err(transport(err));
            }
        };
        let status = response.status();
        stats.record(&self.host, TOKEN_ENDPOINT, status.as_str());
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = pacing::retry_after(response.headers()).unwrap_or(TOKEN_BACKOFF_FIRST);
            pacer.rate_limited(slot.ticket, wait);
            return Err((
                token_status(
                    token_url,
                    status,
                    " (the token endpoint is rate limiting this OAuth consumer)".to_owned(),
                ),
                Some(wait),
            ));
        }
        pacer.answered(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_TOKEN_ANSWER {
                return Err((
                    BitbucketError::decode(token_url, "the token endpoint's answer is too large"),
                    None,
                ));
            }
            body.extend_from_slice(&chunk);
        }
        drop(slot);
        if !status.is_success() {
            // The body may echo the request; only the status is told.
            return Err((
                token_status(
                    token_url,
                    status,
                    format!(
                        " (the OAuth consumer of {} was refused a token: check {}.clientId and {}.clientSecret, and that the consumer is private with the scopes repository and project)",
                        self.host, self.key, self.key
                    ),
                ),
                None,
            ));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|err| {
            (
                BitbucketError::decode(token_url, format!("not a token answer ({err})")),
                None,
            )
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let ahead = (lifetime / RENEW_AHEAD_FRACTION).min(MAX_RENEW_AHEAD);
        tracing::debug!(integration = %self.key, host = %self.host, expires_in_s = lifetime.as_secs(), "fetched an OAuth access token");
        Ok(AccessToken {
            value: answer.access_token,
            renew_at: Instant::now() + lifetime.saturating_sub(ahead),
        })
    }
}

/// What a token request needs besides the credential: where to send it,
/// and the integration's pacer and counters.
struct TokenRequest<'a> {
    client: &'a reqwest::Client,
    pacer: &'a Pacer,
    stats: &'a RequestStats,
    client_id: &'a str,
    client_secret: &'a Secret,
    token_url: &'a url::Url,
}

/// The token endpoint answered `status`; its body is never kept (it may
/// echo the request).
fn token_status(token_url: &url::Url, status: StatusCode, hint: String) -> BitbucketError {
    BitbucketError::Status {
        url: token_url.to_string(),
        status,
        hint,
        body: String::new(),
    }
}
