//! [`Credential`]: one integration's live credentials. A secret read from a
//! `$file` is re-read when the file changes (polled, so Kubernetes' swap of
//! the `..data` symlink is seen) and once more on a 401; a Cloud OAuth
//! consumer's access token is fetched, cached, renewed before it expires
//! and once on a 401. A request takes the value current when it is sent, so
//! requests in flight finish with the old one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use reqwest::header::CONTENT_TYPE;

use super::BitbucketError;
use crate::integrations::Auth;
use crate::secret::Secret;

/// How often a `$file` secret is looked at again while requests are made.
const FILE_CHECK_EVERY: Duration = Duration::from_secs(2);
/// How much of its lifetime an OAuth access token is renewed ahead of expiry
/// (at most [`MAX_RENEW_AHEAD`]).
const RENEW_AHEAD_FRACTION: u32 = 4;
const MAX_RENEW_AHEAD: Duration = Duration::from_secs(120);
/// What is read of a token endpoint's answer.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;

/// One integration's credentials as requests use them.
#[derive(Debug)]
pub(crate) struct Credential {
    auth: RwLock<Auth>,
    file: Option<SecretFile>,
    token: tokio::sync::Mutex<Option<AccessToken>>,
    /// The integration's key path and host, for logs and metrics.
    key: String,
    host: String,
}

#[derive(Debug)]
struct SecretFile {
    path: PathBuf,
    checked: Mutex<Instant>,
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
    pub(crate) fn new(auth: Auth, file: Option<PathBuf>, key: String, host: String) -> Self {
        Self {
            auth: RwLock::new(auth),
            file: file.map(|path| SecretFile {
                path,
                checked: Mutex::new(Instant::now()),
            }),
            token: tokio::sync::Mutex::new(None),
            key,
            host,
        }
    }

    /// The credentials in force (for error hints).
    pub(crate) fn current(&self) -> Auth {
        self.auth.read().clone()
    }

    /// Adds the current credentials to `request`, re-reading a `$file`
    /// secret when it is due and fetching an OAuth token when none is valid.
    pub(crate) async fn apply(
        &self,
        client: &reqwest::Client,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, BitbucketError> {
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
        let auth = self.current();
        match &auth {
            Auth::OAuth {
                client_id,
                client_secret,
                token_url,
            } => {
                let token = self
                    .access_token(client, client_id, client_secret, token_url)
                    .await?;
                Ok(request.bearer_auth(token.expose()))
            }
            other => Ok(other.apply(request)),
        }
    }

    /// After a 401: whether the request is worth sending once more, because
    /// the secret file changed or a new OAuth token is to be fetched.
    pub(crate) async fn rejected(&self) -> bool {
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
                tracing::warn!(integration = %self.key, host = %self.host, file = %file.path.display(), error = %err, "cannot read the credential file again; keeping the credential in use");
                return false;
            }
        };
        if value.is_empty() || value.chars().any(char::is_control) {
            tracing::warn!(integration = %self.key, host = %self.host, file = %file.path.display(), "the credential file is empty or not one line of text (being written?); keeping the credential in use");
            return false;
        }
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
        tracing::info!(integration = %self.key, host = %self.host, file = %file.path.display(), "{} credential changed on disk; new requests use the new value", self.key);
        metrics::counter!("bitbucket_credential_changes_total", "integration" => self.key.clone(), "host" => self.host.clone()).increment(1);
        true
    }

    /// A valid OAuth access token: the cached one, or a new one from the
    /// token endpoint (client-credentials grant).
    async fn access_token(
        &self,
        client: &reqwest::Client,
        client_id: &str,
        client_secret: &Secret,
        token_url: &url::Url,
    ) -> Result<Secret, BitbucketError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.value.clone());
        }
        let request = client
            .post(token_url.clone())
            .basic_auth(client_id, Some(client_secret.expose()))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials");
        let mut response = request
            .send()
            .await
            .map_err(|err| BitbucketError::transport(token_url, err))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| BitbucketError::transport(token_url, err))?
        {
            if body.len() + chunk.len() > MAX_TOKEN_ANSWER {
                return Err(BitbucketError::decode(
                    token_url,
                    "the token endpoint's answer is too large",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            // The body may echo the request; only the status is told.
            return Err(BitbucketError::Status {
                url: token_url.to_string(),
                status,
                hint: format!(
                    " (the OAuth consumer of {} was refused a token: check {}.clientId and {}.clientSecret, and that the consumer is private with the scopes repository and project)",
                    self.host, self.key, self.key
                ),
                body: String::new(),
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|err| {
            BitbucketError::decode(token_url, format!("not a token answer ({err})"))
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let ahead = (lifetime / RENEW_AHEAD_FRACTION).min(MAX_RENEW_AHEAD);
        let token = AccessToken {
            value: answer.access_token,
            renew_at: Instant::now() + lifetime.saturating_sub(ahead),
        };
        tracing::debug!(integration = %self.key, host = %self.host, expires_in_s = lifetime.as_secs(), "fetched an OAuth access token");
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }
}
