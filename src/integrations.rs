//! Resolved `integrations.*` entries: where each Bitbucket lives and how to
//! authenticate against it. Providers find their integration by host.

use serde::Serialize;
use url::Url;

use crate::secret::Secret;

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
    Anonymous,
}

impl Auth {
    /// Adds the credentials to a request.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Bearer { token } => request.bearer_auth(token.expose()),
            Auth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
            Auth::Anonymous => request,
        }
    }
}

/// One `integrations.bitbucketServer[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketServerIntegration {
    /// `host` or `host:port`, as written in the config.
    pub host: String,
    /// REST 1.0 base, without a trailing slash.
    pub api_base_url: Url,
    pub auth: Auth,
}

/// One `integrations.bitbucketCloud[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketCloudIntegration {
    pub host: String,
    /// REST 2.0 base, without a trailing slash.
    pub api_base_url: Url,
    pub auth: Auth,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Integrations {
    pub bitbucket_server: Vec<BitbucketServerIntegration>,
    pub bitbucket_cloud: Vec<BitbucketCloudIntegration>,
}

impl Integrations {
    /// The Server integration for `host` (compared case-insensitively).
    pub fn server(&self, host: &str) -> Option<&BitbucketServerIntegration> {
        self.bitbucket_server
            .iter()
            .find(|i| i.host.eq_ignore_ascii_case(host))
    }

    /// The Cloud integration for `host` (compared case-insensitively).
    pub fn cloud(&self, host: &str) -> Option<&BitbucketCloudIntegration> {
        self.bitbucket_cloud
            .iter()
            .find(|i| i.host.eq_ignore_ascii_case(host))
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
    fn debug_output_hides_credentials() {
        let integration = BitbucketServerIntegration {
            host: "bitbucket.example.com".into(),
            api_base_url: Url::parse("https://bitbucket.example.com/rest/api/1.0").unwrap(),
            auth: Auth::Basic {
                username: "svc".into(),
                password: Secret::new("s3cr3t-password"),
            },
        };
        let debug = format!("{integration:?}");
        let json = serde_json::to_string(&integration).unwrap();
        for out in [debug, json] {
            assert!(!out.contains("s3cr3t-password"), "{out}");
            assert!(out.contains("<redacted>"), "{out}");
        }
    }
}
