//! The one reader for Bitbucket file URLs: Server browse/raw URLs and Cloud
//! `src`/`raw` URLs are mapped to the REST call of the integration whose
//! host matches, with that integration's credentials and the file size
//! limit. A URL whose host has no integration in the reader's scope is
//! refused before any request: the daemon never fetches a URL it was handed
//! (no server-side request forgery through Location targets or registered
//! locations), it only calls the configured Bitbucket APIs.

use std::sync::Arc;

use futures::future::BoxFuture;
use url::Url;

pub(crate) use super::file_url::FileUrl;
use super::refusal::UrlError;
pub(crate) use super::scope::Scope;
use super::urls::host_of;
use super::{
    BitbucketError, Http, HttpPool, IntegrationHttp, RequestStats, cloud_urls, server_urls,
};
use crate::catalog::process::{FetchError, FileFacts, FileSource, ResolveError};
use crate::integrations::{
    BitbucketCloudIntegration, BitbucketServerIntegration, HostKey, Integrations, Product,
};

/// The annotation naming a Cloud entity's repository, as Backstage's Cloud
/// module writes it.
pub(crate) const CLOUD_REPO_URL_ANNOTATION: &str = "bitbucket.org/repo-url";

#[derive(Debug, Clone)]
struct Site {
    flavour: Product,
    /// The integration's host as configured.
    host: String,
    /// The `host[:port]`s whose URLs belong to this integration.
    hosts: Vec<HostKey>,
    api_base: Url,
    http: Option<Arc<IntegrationHttp>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// Not a file on a Bitbucket in scope; nothing was requested.
    #[error(transparent)]
    Refused(#[from] UrlError),
    #[error(transparent)]
    Failed(#[from] BitbucketError),
}

/// The Bitbucket integrations a reader may use, by host: which URLs are in
/// scope and which REST call reads each. Pure; config validation uses it.
#[derive(Debug, Clone)]
pub(crate) struct Sites {
    sites: Vec<Site>,
    /// How the scope is described when a host is refused, and what to do.
    scope: &'static str,
    hint: &'static str,
}

const PROVIDER_HINT: &str = "a provider only follows targets on its own Bitbucket";

impl Sites {
    /// Every configured integration, for locations given by URL. Without
    /// `pool` the sites can map and check URLs but not read them (config
    /// validation).
    pub(crate) fn all(integrations: &Integrations, pool: Option<&HttpPool>) -> Self {
        let mut sites = Self {
            sites: Vec::new(),
            scope: "a configured Bitbucket integration",
            hint: "add an integrations.bitbucketServer or integrations.bitbucketCloud entry for it",
        };
        let server = integrations
            .bitbucket_server
            .iter()
            .map(|i| (Product::Server, &i.host, &i.api_base_url));
        let cloud = integrations
            .bitbucket_cloud
            .iter()
            .map(|i| (Product::Cloud, &i.host, &i.api_base_url));
        for (flavour, host, api_base) in server.chain(cloud) {
            let http = pool.and_then(|p| p.get(host));
            sites.add(flavour, host, api_base, http, &[]);
        }
        sites
    }

    /// One Server integration; `aliases` are further hosts its listing uses
    /// for web links (they differ behind some proxies).
    pub(crate) fn server(
        integration: &BitbucketServerIntegration,
        http: &Arc<IntegrationHttp>,
        aliases: &[String],
    ) -> Self {
        let (host, api_base) = (&integration.host, &integration.api_base_url);
        Self::provider(Product::Server, host, api_base, http, aliases)
    }

    /// One Cloud integration; `aliases` as for [`Sites::server`].
    pub(crate) fn cloud(
        integration: &BitbucketCloudIntegration,
        http: &Arc<IntegrationHttp>,
        aliases: &[String],
    ) -> Self {
        let (host, api_base) = (&integration.host, &integration.api_base_url);
        Self::provider(Product::Cloud, host, api_base, http, aliases)
    }

    /// One provider's integration, and the aliases its listing uses.
    fn provider(
        flavour: Product,
        host: &str,
        api_base: &Url,
        http: &Arc<IntegrationHttp>,
        aliases: &[String],
    ) -> Self {
        let mut sites = Self {
            sites: Vec::new(),
            scope: match flavour {
                Product::Server => "this provider's Bitbucket Server",
                Product::Cloud => "this provider's Bitbucket Cloud",
            },
            hint: PROVIDER_HINT,
        };
        sites.add(flavour, host, api_base, Some(http), aliases);
        sites
    }

    fn add(
        &mut self,
        flavour: Product,
        host: &str,
        api_base: &Url,
        http: Option<&Arc<IntegrationHttp>>,
        aliases: &[String],
    ) {
        let mut hosts = vec![HostKey::new(host)];
        hosts.extend(aliases.iter().map(|h| HostKey::new(h)));
        self.sites.push(Site {
            flavour,
            host: host.to_owned(),
            hosts,
            api_base: api_base.clone(),
            http: http.cloned(),
        });
    }

    /// The integration `url` belongs to and the file it names, from one
    /// parse of `url`; refused when no integration has its host or it is not
    /// a file URL.
    fn file(&self, url: &str) -> Result<(&Site, FileUrl), UrlError> {
        super::urls::check_controls(url)?;
        let web = Url::parse(url).map_err(|_| UrlError::NotAUrl(url.to_owned()))?;
        let (first, other) = self.sites_of(&web, url)?;
        match FileUrl::from_url(web.clone(), url, first.flavour) {
            Ok(file) => Ok((first, file)),
            // A host configured for both flavours: the URL's shape decides.
            Err(err) => match other.map(|o| (o, FileUrl::from_url(web, url, o.flavour))) {
                Some((other, Ok(file))) => Ok((other, file)),
                _ => Err(err),
            },
        }
    }

    /// The integration a URL belongs to, by host (and by shape when both
    /// flavours share the host); refused when none does.
    fn site(&self, url: &str) -> Result<&Site, UrlError> {
        if let Ok((site, _)) = self.file(url) {
            return Ok(site);
        }
        let web = Url::parse(url).map_err(|_| UrlError::NotAUrl(url.to_owned()))?;
        Ok(self.sites_of(&web, url)?.0)
    }

    /// The integrations whose hosts include `web`'s: the first, and one of
    /// the other flavour on the same host if any.
    fn sites_of(&self, web: &Url, url: &str) -> Result<(&Site, Option<&Site>), UrlError> {
        if !web.username().is_empty() || web.password().is_some() {
            return Err(UrlError::Credentials);
        }
        let host = HostKey::new(&host_of(web).unwrap_or_default());
        let mut candidates = self.sites.iter().filter(|s| s.hosts.contains(&host));
        let first = candidates.next().ok_or_else(|| {
            let mut known: Vec<&str> = Vec::new();
            for host in self.sites.iter().flat_map(|s| &s.hosts) {
                if !known.contains(&host.as_str()) {
                    known.push(host.as_str());
                }
            }
            UrlError::UnknownHost {
                url: url.to_owned(),
                host: host.as_str().to_owned(),
                scope: self.scope,
                hint: self.hint,
                known: if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
            }
        })?;
        let other = candidates.find(|s| s.flavour != first.flavour);
        Ok((first, other))
    }

    /// Checks that `url` is a file on a Bitbucket in scope and names the
    /// REST call that would read it, without making it.
    pub(crate) fn api_url(&self, url: &str) -> Result<Url, UrlError> {
        let (site, file) = self.file(url)?;
        Ok(file.api_url(&site.api_base))
    }

    /// Which flavour of Bitbucket serves `url`, if it is a file in scope.
    #[cfg(test)]
    pub(crate) fn flavour(&self, url: &str) -> Result<Product, UrlError> {
        Ok(self.file(url)?.1.flavour())
    }
}

/// Reads files by web URL from the integrations in [`Sites`], with their
/// credentials, counting requests against a run.
#[derive(Debug, Clone)]
pub(crate) struct FileReader {
    sites: Sites,
    stats: Arc<RequestStats>,
    max_bytes: usize,
    scope: Option<Scope>,
}

impl FileReader {
    pub(crate) fn new(sites: Sites, stats: &Arc<RequestStats>, max_bytes: usize) -> Self {
        Self {
            sites,
            stats: Arc::clone(stats),
            max_bytes,
            scope: None,
        }
    }

    /// Reads only the URLs `scope` accepts (nothing is requested for others).
    #[must_use]
    pub(crate) fn within(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    #[cfg(test)]
    pub(crate) fn sites(&self) -> &Sites {
        &self.sites
    }

    /// The file's bytes (at most `max_bytes + 1`), `None` when it does not
    /// exist.
    pub(crate) async fn read(&self, url: &str) -> Result<Option<Vec<u8>>, ReadError> {
        let (site, file) = self.sites.file(url)?;
        let api_url = file.api_url(&site.api_base);
        if let Some(scope) = &self.scope {
            scope.check(&file).map_err(|reason| UrlError::OutOfScope {
                url: url.to_owned(),
                reason,
            })?;
        }
        let endpoint = match site.flavour {
            Product::Server => "raw",
            Product::Cloud => "cloud_src",
        };
        let shared = site.http.clone().ok_or_else(|| UrlError::UnknownHost {
            url: url.to_owned(),
            host: site.host.clone(),
            scope: self.sites.scope,
            hint: "its integration has no HTTP context; this is a bug",
            known: site.host.clone(),
        })?;
        let http = Http::new(shared, Arc::clone(&self.stats));
        Ok(http
            .get_bytes_limited(endpoint, &api_url, self.max_bytes)
            .await?)
    }
}

impl Site {
    /// The annotation key naming a repository of this integration.
    fn repo_url_annotation(&self) -> String {
        match self.flavour {
            Product::Server => server_repo_url_annotation(&self.host),
            Product::Cloud => CLOUD_REPO_URL_ANNOTATION.to_owned(),
        }
    }
}

/// The annotation naming a Server entity's repository, keyed by the host
/// (without port: annotation prefixes must be DNS names), e.g.
/// `bitbucket.example.com/repo-url`. Its value is the repository's web URL
/// (`https://host/projects/KEY/repos/slug/browse`), what a webhook payload's
/// `links.self[0].href` carries.
pub(crate) fn server_repo_url_annotation(host: &str) -> String {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    format!("{}/repo-url", name.trim_matches(['[', ']']).to_lowercase())
}

impl FileSource for FileReader {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>> {
        Box::pin(async move {
            self.read(url).await.map_err(|err| match err {
                ReadError::Refused(err) => FetchError::Refused(err.to_string()),
                ReadError::Failed(err) => FetchError::Failed(err.to_string()),
            })
        })
    }

    fn resolve(&self, target: &str, base: &str) -> Result<String, ResolveError> {
        let resolved = match self.sites.file(base) {
            Ok((_, file)) => file.resolve(target),
            Err(_) => match self.sites.site(base).map(|s| s.flavour) {
                Ok(Product::Cloud) => cloud_urls::resolve_url(target, base),
                // A base outside the scope still resolves (its target is refused on fetch).
                _ => server_urls::resolve_url(target, base),
            },
        };
        resolved.map_err(|err| ResolveError::Url(Box::new(err)))
    }

    fn describe(&self, url: &str) -> FileFacts {
        let (site, file) = match self.sites.file(url) {
            Ok((site, file)) => (site, file),
            // Not a file URL of its integration (or none has its host).
            Err(_) => {
                let site = self.sites.site(url).ok();
                return FileFacts {
                    edit_url: site
                        .filter(|s| s.flavour == Product::Server)
                        .map(|_| server_urls::edit_url(url)),
                    directory: self.resolve("./", url).ok(),
                    repo_url: None,
                    repo_url_annotation: site.map(Site::repo_url_annotation),
                };
            }
        };
        FileFacts {
            edit_url: file.edit_url(),
            directory: file.resolve("./").ok(),
            repo_url: Some(file.repo_url().to_owned()),
            repo_url_annotation: Some(site.repo_url_annotation()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::{Auth, HttpSettings};

    fn reader() -> FileReader {
        let integrations = Integrations {
            bitbucket_server: vec![BitbucketServerIntegration {
                host: "bb.example.com".into(),
                api_base_url: Url::parse("https://bb.example.com/rest/api/1.0").unwrap(),
                auth: Auth::Anonymous,
                secret_file: None,
                http: HttpSettings::default(),
                webhooks: Default::default(),
            }],
            bitbucket_cloud: vec![BitbucketCloudIntegration {
                host: "bitbucket.org".into(),
                api_base_url: Url::parse("https://api.bitbucket.org/2.0").unwrap(),
                auth: Auth::Anonymous,
                secret_file: None,
                http: HttpSettings::default(),
                webhooks: Default::default(),
            }],
        };
        let pool = HttpPool::build(&integrations, None).unwrap();
        FileReader::new(
            Sites::all(&integrations, Some(&pool)),
            &Arc::new(RequestStats::default()),
            1024,
        )
    }

    #[test]
    fn every_url_form_maps_to_its_integrations_api() {
        let reader = reader();
        for (web, api) in [
            (
                "https://bb.example.com/projects/P/repos/s/browse/c.yaml?at=main",
                "https://bb.example.com/rest/api/1.0/projects/P/repos/s/raw/c.yaml?at=main",
            ),
            (
                "https://BB.example.com/projects/P/repos/s/raw/d/c.yaml",
                "https://bb.example.com/rest/api/1.0/projects/P/repos/s/raw/d/c.yaml",
            ),
            (
                "https://bb.example.com/users/alice/repos/s/browse/c.yaml",
                "https://bb.example.com/rest/api/1.0/projects/~ALICE/repos/s/raw/c.yaml",
            ),
            (
                "https://bitbucket.org/acme/svc/src/main/catalog-info.yaml",
                "https://api.bitbucket.org/2.0/repositories/acme/svc/src/main/catalog-info.yaml",
            ),
            (
                "https://bitbucket.org/acme/svc/raw/abc123/d/c.yaml",
                "https://api.bitbucket.org/2.0/repositories/acme/svc/src/abc123/d/c.yaml",
            ),
        ] {
            assert_eq!(reader.sites().api_url(web).unwrap().as_str(), api, "{web}");
        }
        assert_eq!(
            reader
                .sites()
                .flavour("https://bitbucket.org/acme/svc/src/main/c.yaml"),
            Ok(Product::Cloud)
        );
    }

    #[test]
    fn urls_on_other_hosts_are_refused() {
        let reader = reader();
        for url in [
            "https://evil.example.com/projects/P/repos/s/browse/c.yaml",
            "http://169.254.169.254/latest/meta-data/x/src/main/c.yaml",
            "https://github.com/acme/svc/blob/main/catalog-info.yaml",
            "https://bb.example.com.evil.com/projects/P/repos/s/browse/c.yaml",
        ] {
            let err = reader.sites().api_url(url).unwrap_err();
            assert!(matches!(err, UrlError::UnknownHost { .. }), "{url}: {err}");
            assert!(err.to_string().contains("bb.example.com, bitbucket.org"));
        }
        let with_password = "https://me:pw@bitbucket.org/acme/svc/src/main/c.yaml";
        let err = reader.sites().api_url(with_password).unwrap_err();
        assert_eq!(err, UrlError::Credentials);
        assert!(!err.to_string().contains("pw"));
        // The right host but not a file URL of that flavour.
        assert!(matches!(
            reader
                .sites()
                .api_url("https://bitbucket.org/projects/P/repos/s/browse/c.yaml"),
            Err(UrlError::NotACloudFileUrl(_))
        ));
        assert!(matches!(
            reader
                .sites()
                .api_url("https://bb.example.com/acme/svc/src/main/c.yaml"),
            Err(UrlError::NotAFileUrl(_))
        ));
    }

    #[test]
    fn annotations_follow_the_flavour() {
        let reader = reader();
        let cloud = reader.describe("https://bitbucket.org/acme/svc/src/main/catalog-info.yaml");
        assert_eq!(
            cloud.repo_url_annotation.as_deref(),
            Some(CLOUD_REPO_URL_ANNOTATION)
        );
        assert_eq!(
            cloud.repo_url.as_deref(),
            Some("https://bitbucket.org/acme/svc")
        );
        assert_eq!(
            cloud.edit_url.as_deref(),
            Some("https://bitbucket.org/acme/svc/src/main/catalog-info.yaml?mode=edit&at=main")
        );
        let server =
            reader.describe("https://bb.example.com/projects/P/repos/s/browse/c.yaml?at=dev");
        assert_eq!(
            server.repo_url_annotation.as_deref(),
            Some("bb.example.com/repo-url")
        );
        assert_eq!(
            server.edit_url.as_deref(),
            Some("https://bb.example.com/projects/P/repos/s/browse/c.yaml")
        );
    }

    #[test]
    fn repo_url_annotation_keys_are_valid_annotation_keys() {
        for (host, key) in [
            ("bitbucket.example.com", "bitbucket.example.com/repo-url"),
            (
                "Bitbucket.Example.com:7990",
                "bitbucket.example.com/repo-url",
            ),
            ("127.0.0.1:8080", "127.0.0.1/repo-url"),
        ] {
            assert_eq!(server_repo_url_annotation(host), key);
            assert!(crate::catalog::validate::is_valid_label_key(key), "{key}");
        }
        assert!(crate::catalog::validate::is_valid_label_key(
            CLOUD_REPO_URL_ANNOTATION
        ));
    }
}
