//! Bitbucket Cloud web URLs ↔ REST 2.0 calls, and the URL arithmetic
//! Backstage's `BitbucketCloudIntegration` does (`resolveUrl`,
//! `resolveEditUrl`). Pure functions.
//!
//! A file's web URL is `https://bitbucket.org/{workspace}/{slug}/src/{ref}/{path}`
//! (also `/raw/`); its content comes from
//! `{apiBaseUrl}/repositories/{workspace}/{slug}/src/{ref}/{path}`. As in
//! Backstage (git-url-parse), the segment after `src`/`raw` is the ref: a
//! branch whose name holds `/` must be written `%2F` (we write it so).

use url::Url;

use super::refusal::UrlError;
use super::urls::{check_controls, check_file_path, check_names, path_segments, scm_resolve_url};

/// A file in a Cloud repository, as named by its web URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloudFile {
    pub workspace: String,
    pub slug: String,
    /// Branch, tag or commit.
    pub git_ref: String,
    /// Decoded path segments inside the repository.
    pub path: Vec<String>,
    /// The repository's web URL, `https://host/{workspace}/{slug}`.
    pub repo_url: String,
    /// `…/{workspace}/{slug}/src/{ref}` as written: what a `/`-target
    /// resolves against.
    pub(super) root_url: String,
}

/// Parses a `src` or `raw` web URL of a file.
pub(crate) fn parse_file_url(text: &str) -> Result<CloudFile, UrlError> {
    let url = Url::parse(text).map_err(|_| UrlError::NotAUrl(text.to_owned()))?;
    parse_file(&url, text)
}

/// [`parse_file_url`] of a URL already parsed from `text`.
pub(crate) fn parse_file(url: &Url, text: &str) -> Result<CloudFile, UrlError> {
    check_controls(text)?;
    let not_file = || UrlError::NotACloudFileUrl(text.to_owned());
    let (raw, decoded) = path_segments(url).ok_or_else(not_file)?;
    let [workspace, slug, kind, git_ref, path @ ..] = decoded.as_slice() else {
        return Err(not_file());
    };
    if workspace.is_empty() || slug.is_empty() || git_ref.is_empty() {
        return Err(not_file());
    }
    if kind != "src" && kind != "raw" {
        return Err(not_file());
    }
    // A ref may hold an encoded `/` (`release%2F2.0`), never a climb
    // (`..%2F`): the API would resolve it to another resource, with our token.
    check_names(&[workspace, slug], text)?;
    if git_ref
        .split(['/', '\\'])
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(UrlError::Traversal(text.to_owned()));
    }
    check_file_path(path, text, not_file())?;
    let mut repo = url.clone();
    repo.set_query(None);
    repo.set_fragment(None);
    repo.set_path(&format!("/{}/{}", raw[0], raw[1]));
    let mut root = repo.clone();
    root.set_path(&format!("/{}", raw[..4].join("/")));
    Ok(CloudFile {
        workspace: workspace.clone(),
        slug: slug.clone(),
        git_ref: git_ref.clone(),
        path: path.to_vec(),
        repo_url: repo.to_string(),
        root_url: root.to_string(),
    })
}

/// The web URL of a file: `{repo_url}/src/{ref}/{path}` (the ref is one
/// segment, `/` encoded).
pub(crate) fn file_url(repo_url: &str, git_ref: &str, path: &str) -> Option<String> {
    let mut url = Url::parse(repo_url).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(["src", git_ref])
        .extend(path.split('/'));
    Some(url.to_string())
}

/// The REST call that returns the file's content.
pub(crate) fn src_api_url(file: &CloudFile, api_base: &Url) -> Url {
    src_url(
        api_base,
        &file.workspace,
        &file.slug,
        &file.git_ref,
        file.path.iter().map(String::as_str),
    )
}

/// `{api_base}/repositories/{workspace}/{slug}/src/{ref}/{path…}`.
pub(crate) fn src_url<'a>(
    api_base: &Url,
    workspace: &str,
    slug: &str,
    git_ref: &str,
    path: impl IntoIterator<Item = &'a str>,
) -> Url {
    let mut url = api_base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["repositories", workspace, slug, "src", git_ref])
            .extend(path);
    }
    url
}

/// Backstage's `defaultScmResolveUrl`; a path starting with `/` is relative
/// to `…/{workspace}/{slug}/src/{ref}`.
pub(crate) fn resolve_url(target: &str, base: &str) -> Result<String, UrlError> {
    scm_resolve_url(target, base, |base| {
        parse_file_url(base).map(|f| f.root_url)
    })
}

/// Backstage's `resolveEditUrl` for Cloud: `?mode=edit&at=<ref>` (other
/// query parameters kept). A `raw` URL is edited through its `src` page.
#[cfg(test)]
pub(crate) fn edit_url(url: &str) -> Option<String> {
    let file = parse_file_url(url).ok()?;
    edit_url_of(&file, Url::parse(url).ok()?)
}

/// [`edit_url`] of a file already parsed from `web`.
pub(crate) fn edit_url_of(file: &CloudFile, mut edit: Url) -> Option<String> {
    let segments: Vec<String> = edit
        .path_segments()?
        .enumerate()
        .map(|(i, s)| if i == 2 { "src" } else { s }.to_owned())
        .collect();
    edit.set_path(&format!("/{}", segments.join("/")));
    edit.set_fragment(None);
    let kept: Vec<(String, String)> = edit
        .query_pairs()
        .filter(|(k, _)| k != "mode" && k != "at")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    edit.set_query(None);
    edit.query_pairs_mut()
        .extend_pairs(kept)
        .append_pair("mode", "edit")
        .append_pair("at", &file.git_ref);
    Some(edit.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://bitbucket.org/acme/svc/src/main/catalog-info.yaml";

    #[test]
    fn maps_web_urls_to_src_calls() {
        let api = Url::parse("https://api.bitbucket.org/2.0").unwrap();
        let cases = [
            (
                BASE,
                "https://api.bitbucket.org/2.0/repositories/acme/svc/src/main/catalog-info.yaml",
            ),
            (
                "https://bitbucket.org/acme/svc/raw/0123abcd/docs/a%20b.yaml",
                "https://api.bitbucket.org/2.0/repositories/acme/svc/src/0123abcd/docs/a%20b.yaml",
            ),
            (
                "https://bitbucket.org/acme/svc/src/release%2F2.0/c.yaml?at=release%2F2.0",
                "https://api.bitbucket.org/2.0/repositories/acme/svc/src/release%2F2.0/c.yaml",
            ),
            (
                "http://127.0.0.1:9/acme/svc/src/main/c.yaml#lines-3",
                "https://api.bitbucket.org/2.0/repositories/acme/svc/src/main/c.yaml",
            ),
        ];
        for (web, api_url) in cases {
            let file = parse_file_url(web).unwrap();
            assert_eq!(src_api_url(&file, &api).as_str(), api_url, "{web}");
        }
        let file = parse_file_url(BASE).unwrap();
        assert_eq!(file.repo_url, "https://bitbucket.org/acme/svc");
        assert_eq!(file.workspace, "acme");
        assert_eq!(file.git_ref, "main");
        assert_eq!(file.path, vec!["catalog-info.yaml"]);
    }

    #[test]
    fn rejects_what_is_not_a_file_in_a_repository() {
        for bad in [
            "not a url",
            "ftp://bitbucket.org/acme/svc/src/main/x.yaml",
            "https://bitbucket.org/acme/svc",
            "https://bitbucket.org/acme/svc/src/main",
            "https://bitbucket.org/acme/svc/src/main/",
            "https://bitbucket.org/acme/svc/src/main/dir/",
            "https://bitbucket.org/acme/svc/commits/main/x.yaml",
            "https://bitbucket.org/acme//src/main/x.yaml",
            "https://bitbucket.example.com/projects/P/repos/s/browse/x.yaml",
        ] {
            assert!(parse_file_url(bad).is_err(), "{bad}");
        }
        for climbing in [
            "https://bitbucket.org/acme/svc/src/main/%2e%2e%2Fx.yaml",
            "https://bitbucket.org/acme/svc/src/main/a%2F..%2Fx.yaml",
            "https://bitbucket.org/acme/svc/src/..%2F..%2Fother/x.yaml",
            "https://bitbucket.org/acme/svc/src/main%2F..%2F..%2F..%2Fuser/x.yaml",
            "https://bitbucket.org/acme/svc/src/%2Fmain/x.yaml",
        ] {
            assert!(
                matches!(parse_file_url(climbing), Err(UrlError::Traversal(_))),
                "{climbing}"
            );
        }
    }

    #[test]
    fn refuses_control_characters_raw_or_encoded_anywhere() {
        for bad in [
            "https://bitbucket.org/acme/svc/src/main/x.yaml%0d%0aX-Injected:%201",
            "https://bitbucket.org/acme/svc/src/main%0A/x.yaml",
            "https://bitbucket.org/acme/svc/src/main/x.yaml?at=main%0D%0A",
            "https://bitbucket.org/acme/svc/src/ma\r\nin/x.yaml",
            "https://bitbucket.org/acme/s\tvc/src/main/x.yaml",
        ] {
            let err = parse_file_url(bad).unwrap_err();
            assert!(matches!(err, UrlError::ControlCharacter(_)), "{bad}: {err}");
            let message = err.to_string();
            assert!(message.contains("control character"), "{message}");
            assert!(!message.contains(['\r', '\n', '\t']), "{message:?}");
        }
        assert!(parse_file_url("https://bitbucket.org/acme/svc/src/main/a%20b%25.yaml").is_ok());
        assert!(
            super::super::server_urls::parse_file_url(
                "https://bb.example.com/projects/P/repos/s/browse/x.yaml?at=main%0d%0a"
            )
            .is_err_and(|e| matches!(e, UrlError::ControlCharacter(_)))
        );
    }

    #[test]
    fn builds_file_urls_that_parse_back() {
        let url = file_url("https://bitbucket.org/acme/svc", "feature/x", "dir/c.yaml").unwrap();
        assert_eq!(
            url,
            "https://bitbucket.org/acme/svc/src/feature%2Fx/dir/c.yaml"
        );
        let file = parse_file_url(&url).unwrap();
        assert_eq!(file.git_ref, "feature/x");
        assert_eq!(file.path, vec!["dir", "c.yaml"]);
    }

    #[test]
    fn resolves_like_default_scm_resolve_url() {
        let base = "https://bitbucket.org/acme/svc/src/main/dir/catalog-info.yaml?at=main";
        let cases = [
            (
                "./api.yaml",
                "https://bitbucket.org/acme/svc/src/main/dir/api.yaml?at=main",
            ),
            (
                "../c.yaml",
                "https://bitbucket.org/acme/svc/src/main/c.yaml?at=main",
            ),
            (
                "/deep/c.yaml",
                "https://bitbucket.org/acme/svc/src/main/deep/c.yaml?at=main",
            ),
            ("./", "https://bitbucket.org/acme/svc/src/main/dir/?at=main"),
            (
                "https://elsewhere.example.com/x.yaml",
                "https://elsewhere.example.com/x.yaml",
            ),
        ];
        for (target, expected) in cases {
            assert_eq!(resolve_url(target, base).unwrap(), expected, "{target}");
        }
    }

    #[test]
    fn edit_urls_open_the_editor_at_the_ref() {
        assert_eq!(
            edit_url(BASE).unwrap(),
            "https://bitbucket.org/acme/svc/src/main/catalog-info.yaml?mode=edit&at=main"
        );
        assert_eq!(
            edit_url("https://bitbucket.org/acme/svc/raw/release%2F2/c.yaml?at=x&y=1").unwrap(),
            "https://bitbucket.org/acme/svc/src/release%2F2/c.yaml?y=1&mode=edit&at=release%2F2"
        );
        assert_eq!(edit_url("https://bitbucket.org/acme/svc"), None);
    }
}
