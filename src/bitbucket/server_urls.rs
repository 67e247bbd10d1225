//! Bitbucket Server web URLs ↔ REST calls, and the URL arithmetic Backstage's
//! `BitbucketServerIntegration` does (`resolveUrl`, `resolveEditUrl`).
//! Pure functions; [`super::cloud_urls`] is the Bitbucket Cloud counterpart.
//!
//! A file's web URL is `https://host[/context]/projects/KEY/repos/slug/browse/path?at=ref`
//! (also `/raw/`, and `/users/name/repos/...` for personal repositories);
//! its content comes from `{apiBaseUrl}/projects/KEY/repos/slug/raw/path?at=ref`.

use url::Url;

use super::refusal::UrlError;
use super::urls::{check_controls, check_file_path, check_names, path_segments, scm_resolve_url};

/// A file in a repository, as named by its web URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerFile {
    /// Project key; `~USER` for personal repositories.
    pub project_key: String,
    pub slug: String,
    /// Decoded path segments inside the repository.
    pub path: Vec<String>,
    /// The `at` query parameter (branch, tag or commit), if any.
    pub at: Option<String>,
    /// The repository's web URL, `…/projects/KEY/repos/slug/browse`.
    pub repo_url: String,
}

/// Parses a browse or raw web URL of a file.
pub(crate) fn parse_file_url(text: &str) -> Result<ServerFile, UrlError> {
    let url = Url::parse(text).map_err(|_| UrlError::NotAUrl(text.to_owned()))?;
    parse_file(&url, text)
}

/// [`parse_file_url`] of a URL already parsed from `text`.
pub(crate) fn parse_file(url: &Url, text: &str) -> Result<ServerFile, UrlError> {
    check_controls(text)?;
    let not_file = || UrlError::NotAFileUrl(text.to_owned());
    let (raw_segments, decoded) = path_segments(url).ok_or_else(not_file)?;
    let start = (0..decoded.len())
        .find(|&i| {
            matches!(decoded[i].as_str(), "projects" | "users")
                && decoded.get(i + 2).is_some_and(|s| s == "repos")
                && decoded
                    .get(i + 4)
                    .is_some_and(|s| s == "browse" || s == "raw")
        })
        .ok_or_else(not_file)?;
    let owner = &decoded[start + 1];
    let project_key = if decoded[start] == "users" {
        format!("~{}", owner.to_uppercase())
    } else {
        owner.clone()
    };
    let slug = decoded[start + 3].clone();
    let path: Vec<String> = decoded[start + 5..].to_vec();
    if project_key.is_empty() || slug.is_empty() {
        return Err(not_file());
    }
    check_names(&[owner, &slug], text)?;
    check_file_path(&path, text, not_file())?;
    let at = url
        .query_pairs()
        .find(|(k, _)| k == "at")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty());
    let mut repo = url.clone();
    repo.set_query(None);
    repo.set_fragment(None);
    let mut prefix: Vec<&str> = raw_segments[..start + 4].to_vec();
    prefix.push("browse");
    repo.set_path(&format!("/{}", prefix.join("/")));
    Ok(ServerFile {
        project_key,
        slug,
        path,
        at,
        repo_url: repo.to_string(),
    })
}

/// The REST call that returns the file's content.
pub(crate) fn raw_api_url(file: &ServerFile, api_base: &Url) -> Url {
    let mut url = api_base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["projects", &file.project_key, "repos", &file.slug, "raw"])
            .extend(file.path.iter().map(String::as_str));
    }
    if let Some(at) = &file.at {
        url.query_pairs_mut().append_pair("at", at);
    }
    url
}

/// Backstage's `defaultScmResolveUrl`; a path starting with `/` is relative
/// to the repository root (`…/repos/slug/browse`), the base's `?at=` is kept.
pub(crate) fn resolve_url(target: &str, base: &str) -> Result<String, UrlError> {
    scm_resolve_url(target, base, |base| {
        parse_file_url(base).map(|f| f.repo_url)
    })
}

/// Server cannot deep-link to edit mode; Backstage strips the query.
pub(crate) fn edit_url(url: &str) -> String {
    url.split_once('?').map_or(url, |(head, _)| head).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "https://bb.example.com/projects/PLAT/repos/svc/browse/catalog-info.yaml?at=release%2F2.0";

    #[test]
    fn maps_web_urls_to_raw_calls() {
        let api = Url::parse("https://bb.example.com/context/rest/api/1.0").unwrap();
        let cases = [
            (
                BASE,
                "https://bb.example.com/context/rest/api/1.0/projects/PLAT/repos/svc/raw/catalog-info.yaml?at=release%2F2.0",
            ),
            (
                "https://bb.example.com/projects/PLAT/repos/svc/raw/a/b%20c.yaml",
                "https://bb.example.com/context/rest/api/1.0/projects/PLAT/repos/svc/raw/a/b%20c.yaml",
            ),
            (
                "https://bb.example.com/context/projects/P/repos/s/browse/x.yaml?at=abc123&foo=1",
                "https://bb.example.com/context/rest/api/1.0/projects/P/repos/s/raw/x.yaml?at=abc123",
            ),
            (
                "https://bb.example.com/users/alice/repos/scratch/browse/c.yaml",
                "https://bb.example.com/context/rest/api/1.0/projects/~ALICE/repos/scratch/raw/c.yaml",
            ),
        ];
        for (web, raw) in cases {
            let file = parse_file_url(web).unwrap();
            assert_eq!(raw_api_url(&file, &api).as_str(), raw, "{web}");
        }
        let file = parse_file_url(BASE).unwrap();
        assert_eq!(
            file.repo_url,
            "https://bb.example.com/projects/PLAT/repos/svc/browse"
        );
        assert_eq!(file.at.as_deref(), Some("release/2.0"));
    }

    #[test]
    fn rejects_what_is_not_a_file_in_a_repository() {
        for bad in [
            "not a url",
            "ftp://bb/projects/P/repos/s/browse/x.yaml",
            "https://bb/projects/P/repos/s/browse",
            "https://bb/projects/P/repos/s/browse/dir/",
            "https://bb/projects/P/repos/s/commits/x.yaml",
            "https://github.com/org/repo/blob/main/catalog-info.yaml",
        ] {
            assert!(parse_file_url(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            parse_file_url("https://bb/projects/P/repos/s/browse/%2e%2e%2fx.yaml"),
            Err(UrlError::Traversal(_))
        ));
    }

    #[test]
    fn resolves_like_default_scm_resolve_url() {
        let cases = [
            (
                "./api.yaml",
                "https://bb.example.com/projects/PLAT/repos/svc/browse/api.yaml?at=release%2F2.0",
            ),
            (
                "docs/c.yaml",
                "https://bb.example.com/projects/PLAT/repos/svc/browse/docs/c.yaml?at=release%2F2.0",
            ),
            (
                "/deep/c.yaml",
                "https://bb.example.com/projects/PLAT/repos/svc/browse/deep/c.yaml?at=release%2F2.0",
            ),
            (
                "../../other/browse/c.yaml",
                "https://bb.example.com/projects/PLAT/repos/other/browse/c.yaml?at=release%2F2.0",
            ),
            (
                "./",
                "https://bb.example.com/projects/PLAT/repos/svc/browse/?at=release%2F2.0",
            ),
            (
                "https://elsewhere.example.com/x.yaml",
                "https://elsewhere.example.com/x.yaml",
            ),
        ];
        for (target, expected) in cases {
            assert_eq!(resolve_url(target, BASE).unwrap(), expected, "{target}");
        }
    }

    #[test]
    fn edit_url_drops_the_query() {
        assert_eq!(
            edit_url(BASE),
            "https://bb.example.com/projects/PLAT/repos/svc/browse/catalog-info.yaml"
        );
    }
}
