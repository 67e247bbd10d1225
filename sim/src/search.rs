//! Bitbucket Cloud code search queries: quoted or bare terms plus the
//! `path:`, `project:`, `repo:`, `ext:` and `lang:` modifiers.

use crate::dataset::Repo;

#[derive(Debug, Default, PartialEq)]
pub(crate) struct SearchQuery {
    pub(crate) terms: Vec<String>,
    pub(crate) path: Option<String>,
    pub(crate) project: Option<String>,
    pub(crate) repo: Option<String>,
    pub(crate) ext: Option<String>,
}

const MAX_QUERY_CHARS: usize = 1000;

impl SearchQuery {
    /// Parses a `search_query`; the error is the message of a 400.
    pub(crate) fn parse(query: &str) -> Result<Self, String> {
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(format!(
                "search query is longer than {MAX_QUERY_CHARS} characters"
            ));
        }
        let mut parsed = SearchQuery::default();
        for (token, quoted) in tokenize(query)? {
            let modifier = if quoted { None } else { token.split_once(':') };
            match modifier {
                Some(("path", v)) if !v.is_empty() => parsed.path = Some(v.to_owned()),
                Some(("project", v)) if !v.is_empty() => parsed.project = Some(v.to_owned()),
                Some(("repo", v)) if !v.is_empty() => parsed.repo = Some(v.to_owned()),
                Some(("ext", v)) if !v.is_empty() => {
                    parsed.ext = Some(v.trim_start_matches('.').to_owned());
                }
                // The data set is all YAML and Markdown; a language filter narrows nothing useful.
                Some(("lang", v)) if !v.is_empty() => {}
                _ => parsed.terms.push(token),
            }
        }
        if parsed.terms.iter().all(|t| t.trim().is_empty()) {
            return Err("search query must contain at least one search term".into());
        }
        Ok(parsed)
    }

    pub(crate) fn repo_matches(&self, workspace: &str, repo: &Repo) -> bool {
        let project_ok = self
            .project
            .as_ref()
            .is_none_or(|p| p.eq_ignore_ascii_case(&repo.project_key));
        let repo_ok = self.repo.as_ref().is_none_or(|r| {
            let slug = r
                .split_once('/')
                .filter(|(ws, _)| ws.eq_ignore_ascii_case(workspace))
                .map_or(r.as_str(), |(_, s)| s);
            slug.eq_ignore_ascii_case(&repo.slug)
        });
        project_ok && repo_ok
    }

    pub(crate) fn file_matches(&self, path: &str, content: &str) -> bool {
        let path_ok = self
            .path
            .as_ref()
            .is_none_or(|p| match p.strip_prefix('/') {
                // A leading slash anchors at the repository root.
                Some(anchored) => {
                    let anchored = anchored.trim_end_matches('/');
                    path == anchored
                        || path
                            .strip_prefix(anchored)
                            .is_some_and(|rest| rest.starts_with('/'))
                }
                None => path.to_lowercase().contains(&p.to_lowercase()),
            });
        let ext_ok = self.ext.as_ref().is_none_or(|e| {
            path.to_lowercase()
                .ends_with(&format!(".{}", e.to_lowercase()))
        });
        if !(path_ok && ext_ok) {
            // Cheap filters first: lowercasing every file's content is the costly part.
            return false;
        }
        let (lower_path, lower_content) = (path.to_lowercase(), content.to_lowercase());
        self.terms.iter().all(|t| {
            let t = t.to_lowercase();
            lower_path.contains(&t) || lower_content.contains(&t)
        })
    }
}

/// Splits on whitespace; double quotes group (and are removed). The flag
/// says whether the token started with a quote (then it is never a modifier).
fn tokenize(query: &str) -> Result<Vec<(String, bool)>, String> {
    let mut tokens = Vec::new();
    let mut chars = query.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let quoted = c == '"';
        let mut token = String::new();
        let mut in_quotes = false;
        while let Some(&c) = chars.peek() {
            if c == '"' {
                in_quotes = !in_quotes;
                chars.next();
            } else if c.is_whitespace() && !in_quotes {
                break;
            } else {
                token.push(c);
                chars.next();
            }
        }
        if in_quotes {
            return Err("search query has an unterminated quote".into());
        }
        tokens.push((token, quoted));
    }
    Ok(tokens)
}

/// Text segments of `haystack` with the first occurrence of `term` marked,
/// in Bitbucket's `[{text}, {text, match: true}, {text}]` shape.
pub(crate) fn segments(haystack: &str, term: &str) -> Vec<(String, bool)> {
    let lower = haystack.to_lowercase();
    // Lowercasing can change byte lengths outside ASCII; only split when safe.
    if lower.len() == haystack.len() && !term.is_empty() {
        if let Some(at) = lower.find(&term.to_lowercase()) {
            let end = at + term.len();
            if let (Some(before), Some(hit), Some(after)) = (
                haystack.get(..at),
                haystack.get(at..end),
                haystack.get(end..),
            ) {
                return [(before, false), (hit, true), (after, false)]
                    .into_iter()
                    .filter(|(t, _)| !t.is_empty())
                    .map(|(t, m)| (t.to_owned(), m))
                    .collect();
            }
        }
    }
    vec![(haystack.to_owned(), false)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backstage_query() {
        let q = SearchQuery::parse("\"catalog-info.yaml\" path:/catalog-info.yaml project:CP001")
            .unwrap();
        assert_eq!(
            q,
            SearchQuery {
                terms: vec!["catalog-info.yaml".into()],
                path: Some("/catalog-info.yaml".into()),
                project: Some("CP001".into()),
                repo: None,
                ext: None,
            }
        );
        assert!(q.file_matches("catalog-info.yaml", ""));
        assert!(!q.file_matches("docs/catalog-info.yaml", ""));
    }

    #[test]
    fn rejects_bad_queries() {
        assert!(SearchQuery::parse("").is_err());
        assert!(SearchQuery::parse("path:/x").is_err());
        assert!(SearchQuery::parse("\"unterminated").is_err());
        assert!(SearchQuery::parse(&"x".repeat(2000)).is_err());
        assert!(
            SearchQuery::parse("\"project:X\"")
                .unwrap()
                .project
                .is_none()
        );
    }

    #[test]
    fn unanchored_path_and_segments() {
        let q = SearchQuery::parse("kind path:catalog ext:yaml").unwrap();
        assert!(q.file_matches("catalog/apis.yaml", "kind: API"));
        assert!(!q.file_matches("README.md", "kind"));
        assert_eq!(
            segments("catalog-info.yaml", "INFO"),
            vec![
                ("catalog-".into(), false),
                ("info".into(), true),
                (".yaml".into(), false)
            ]
        );
    }
}
