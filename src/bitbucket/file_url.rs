//! A Bitbucket file's web URL, parsed once: which repository and path it
//! names, and what follows from that (its repository's web URL, its edit
//! URL, the REST call that reads it, a target resolved against it) without
//! parsing the text again.

use url::Url;

use super::refusal::UrlError;
use super::urls::scm_resolve;
use super::{cloud_urls, server_urls};
use crate::integrations::Product;

/// A file in a Bitbucket repository, as its web URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileUrl {
    /// The URL as given: messages quote it as written.
    text: String,
    web: Url,
    file: Named,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Named {
    Server(server_urls::ServerFile),
    Cloud(cloud_urls::CloudFile),
}

impl FileUrl {
    /// Parses `text` as a file URL of `flavour`.
    pub(crate) fn parse(text: &str, flavour: Product) -> Result<Self, UrlError> {
        let web = Url::parse(text).map_err(|_| UrlError::NotAUrl(text.to_owned()))?;
        Self::from_url(web, text, flavour)
    }

    /// A file URL of `flavour` from `web`, already parsed from `text`.
    pub(crate) fn from_url(web: Url, text: &str, flavour: Product) -> Result<Self, UrlError> {
        let file = match flavour {
            Product::Server => Named::Server(server_urls::parse_file(&web, text)?),
            Product::Cloud => Named::Cloud(cloud_urls::parse_file(&web, text)?),
        };
        Ok(Self {
            text: text.to_owned(),
            web,
            file,
        })
    }

    #[cfg(test)]
    pub(crate) fn flavour(&self) -> Product {
        match self.file {
            Named::Server(_) => Product::Server,
            Named::Cloud(_) => Product::Cloud,
        }
    }

    /// The repository's owner (Server project key, `~USER` for a personal
    /// repository; Cloud workspace) and slug.
    pub(crate) fn repository(&self) -> (&str, &str) {
        match &self.file {
            Named::Server(file) => (&file.project_key, &file.slug),
            Named::Cloud(file) => (&file.workspace, &file.slug),
        }
    }

    /// The file's path in its repository (`dir/catalog-info.yaml`).
    pub(crate) fn path(&self) -> String {
        match &self.file {
            Named::Server(file) => file.path.join("/"),
            Named::Cloud(file) => file.path.join("/"),
        }
    }

    /// The repository's web URL (`…/projects/KEY/repos/slug/browse`, or
    /// `https://host/{workspace}/{slug}`).
    pub(crate) fn repo_url(&self) -> &str {
        match &self.file {
            Named::Server(file) => &file.repo_url,
            Named::Cloud(file) => &file.repo_url,
        }
    }

    /// The integration's `resolveEditUrl`: Server cannot deep-link to edit
    /// mode (the query is dropped); Cloud opens the editor at the ref.
    pub(crate) fn edit_url(&self) -> Option<String> {
        match &self.file {
            Named::Server(_) => Some(server_urls::edit_url(&self.text)),
            Named::Cloud(file) => cloud_urls::edit_url_of(file, self.web.clone()),
        }
    }

    /// The REST call that returns the file's content.
    pub(crate) fn api_url(&self, api_base: &Url) -> Url {
        match &self.file {
            Named::Server(file) => server_urls::raw_api_url(file, api_base),
            Named::Cloud(file) => cloud_urls::src_api_url(file, api_base),
        }
    }

    /// `target` resolved against this file, as Backstage's `resolveUrl`.
    pub(crate) fn resolve(&self, target: &str) -> Result<String, UrlError> {
        scm_resolve(target, &self.text, &self.web, || {
            Ok(match &self.file {
                Named::Server(file) => file.repo_url.clone(),
                Named::Cloud(file) => file.root_url.clone(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsed once, each derived URL is what the text functions give.
    #[test]
    fn agrees_with_the_text_functions() {
        let api = Url::parse("https://api.example.com/2.0").unwrap();
        let cases = [
            (
                "https://bb.example.com/projects/P/repos/s/browse/dir/c.yaml?at=release%2F2",
                Product::Server,
            ),
            (
                "https://bitbucket.org/acme/svc/raw/release%2F2/dir/c.yaml?at=x&y=1",
                Product::Cloud,
            ),
        ];
        for (text, flavour) in cases {
            let file = FileUrl::parse(text, flavour).unwrap();
            assert_eq!(file.flavour(), flavour);
            for target in ["./", "../x.yaml", "/root.yaml", "https://o.example.com/x"] {
                let expected = match flavour {
                    Product::Server => server_urls::resolve_url(target, text),
                    Product::Cloud => cloud_urls::resolve_url(target, text),
                };
                assert_eq!(file.resolve(target), expected, "{text} {target}");
            }
            match flavour {
                Product::Server => {
                    let named = server_urls::parse_file_url(text).unwrap();
                    assert_eq!(file.repo_url(), named.repo_url);
                    assert_eq!(file.repository(), ("P", "s"));
                    assert_eq!(file.api_url(&api), server_urls::raw_api_url(&named, &api));
                    assert_eq!(file.edit_url(), Some(server_urls::edit_url(text)));
                }
                Product::Cloud => {
                    let named = cloud_urls::parse_file_url(text).unwrap();
                    assert_eq!(file.repo_url(), named.repo_url);
                    assert_eq!(file.repository(), ("acme", "svc"));
                    assert_eq!(file.api_url(&api), cloud_urls::src_api_url(&named, &api));
                    assert_eq!(file.edit_url(), cloud_urls::edit_url(text));
                }
            }
        }
        assert!(FileUrl::parse("https://bitbucket.org/acme/svc", Product::Cloud).is_err());
    }
}
