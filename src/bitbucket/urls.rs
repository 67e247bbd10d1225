//! URL arithmetic shared by the Server and Cloud web URL modules: hosts,
//! decoded path segments and Backstage's `defaultScmResolveUrl`.

use url::Url;

use super::refusal::UrlError;

/// `host` or `host:port` of a URL, as integrations name hosts.
pub(crate) fn host_of(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// `host[:port]` of a URL given as text.
pub(crate) fn url_host(url: &str) -> Option<String> {
    Url::parse(url).ok().as_ref().and_then(host_of)
}

/// An http(s) URL's path, both as written and percent-decoded, segment by
/// segment; `None` when it is not http(s) or a segment does not decode.
pub(crate) fn path_segments(url: &Url) -> Option<(Vec<&str>, Vec<String>)> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let raw: Vec<&str> = url.path_segments()?.collect();
    let decoded = raw
        .iter()
        .map(|s| percent_decode(s))
        .collect::<Option<Vec<_>>>()?;
    Some((raw, decoded))
}

/// Whether the names that pick a repository (project key, user, workspace,
/// slug, ref) are single plain segments: `.`, `..` or a decoded `/` or `\`
/// would make the REST call name another resource with our credentials.
pub(crate) fn check_names(names: &[&str], text: &str) -> Result<(), UrlError> {
    if names
        .iter()
        .any(|n| *n == "." || *n == ".." || n.contains(['/', '\\']))
    {
        return Err(UrlError::Traversal(text.to_owned()));
    }
    Ok(())
}

/// Whether a file path inside a repository is usable: non-empty, not a
/// directory, no `.`/`..`/empty segments (decoded `%2F` counts as a climb).
pub(crate) fn check_file_path(
    path: &[String],
    text: &str,
    not_file: UrlError,
) -> Result<(), UrlError> {
    if path.is_empty() || path.last().is_some_and(String::is_empty) {
        return Err(not_file);
    }
    if path
        .iter()
        .any(|s| s == "." || s == ".." || s.is_empty() || s.contains('/'))
    {
        return Err(UrlError::Traversal(text.to_owned()));
    }
    Ok(())
}

/// Refuses a URL holding a control character anywhere: raw (URL parsing
/// would drop CR, LF and tab silently, so another URL than the one shown
/// is read) or percent-encoded (`%0d%0a`, which would reach a header, a
/// log line or a ref).
pub(crate) fn check_controls(text: &str) -> Result<(), UrlError> {
    let raw = text.chars().any(char::is_control);
    let encoded = text.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && w[1..].iter().all(u8::is_ascii_hexdigit)
            && std::str::from_utf8(&w[1..])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .is_some_and(|b| b.is_ascii_control())
    });
    if raw || encoded {
        return Err(UrlError::ControlCharacter(text.escape_debug().to_string()));
    }
    Ok(())
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Backstage's `defaultScmResolveUrl`: an absolute URL is returned as is; a
/// path starting with `/` is relative to the repository root (`root`, which
/// maps the base to e.g. `…/repos/slug/browse` or `…/slug/src/main`);
/// anything else is relative to the base file. The base's query is kept.
pub(crate) fn scm_resolve_url(
    target: &str,
    base: &str,
    root: impl FnOnce(&str) -> Result<String, UrlError>,
) -> Result<String, UrlError> {
    if Url::parse(target).is_ok() {
        return Ok(target.to_owned());
    }
    let base_url =
        Url::parse(base).map_err(|_| resolve_error(target, base, "the base is not a URL"))?;
    scm_resolve(target, base, &base_url, || root(base))
}

/// [`scm_resolve_url`] against a base already parsed (`base` is its text,
/// for messages); `root` is only asked for when `target` starts with `/`.
pub(crate) fn scm_resolve(
    target: &str,
    base: &str,
    base_url: &Url,
    root: impl FnOnce() -> Result<String, UrlError>,
) -> Result<String, UrlError> {
    if Url::parse(target).is_ok() {
        return Ok(target.to_owned());
    }
    let mut resolved = if target.starts_with('/') {
        let root =
            Url::parse(&root()?).map_err(|_| resolve_error(target, base, "bad repository URL"))?;
        let mut joined = root.clone();
        joined.set_path(&format!("{}{}", root.path().trim_end_matches('/'), target));
        joined
    } else {
        base_url
            .join(target)
            .map_err(|err| resolve_error(target, base, &err.to_string()))?
    };
    resolved.set_query(base_url.query());
    Ok(resolved.to_string())
}

fn resolve_error(target: &str, base: &str, message: &str) -> UrlError {
    UrlError::Resolve {
        target: target.to_owned(),
        base: base.to_owned(),
        message: message.to_owned(),
    }
}
