//! What a Bitbucket request can fail with, and how a transport error is
//! told to an operator.

use reqwest::StatusCode;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BitbucketError {
    /// The cause stays attached as the error's source; the message spells
    /// out its chain, as reqwest's own Display hides it.
    #[error("request to {url} failed: {}", describe_reqwest_error(.source))]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}{hint}{body}")]
    Status {
        url: String,
        status: StatusCode,
        hint: String,
        body: String,
    },
    #[error("{url} returned a response we cannot read: {message}")]
    Decode { url: String, message: String },
    #[error(
        "{url} answered with an HTML page ({content_type}): a login page or proxy answered instead of Bitbucket; check the integration's apiBaseUrl and that the daemon reaches Bitbucket directly (NO_PROXY, SSO exemptions)"
    )]
    NotBitbucket { url: String, content_type: String },
}

impl BitbucketError {
    /// `url` answered what cannot be read (`message` says how).
    pub(crate) fn decode(url: &url::Url, message: impl Into<String>) -> Self {
        BitbucketError::Decode {
            url: url.to_string(),
            message: message.into(),
        }
    }

    /// `url` could not be reached, or its answer not read to the end.
    pub(crate) fn transport(url: &url::Url, source: reqwest::Error) -> Self {
        BitbucketError::Transport {
            url: url.to_string(),
            // The URL is already in `url`; reqwest's copy could carry a query.
            source: source.without_url(),
        }
    }

    pub(crate) fn status(&self) -> Option<StatusCode> {
        match self {
            BitbucketError::Status { status, .. } => Some(*status),
            _ => None,
        }
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
