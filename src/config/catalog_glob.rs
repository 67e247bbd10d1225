//! `catalogPath` as a glob (globset syntax): `**/catalog-info.yaml` names
//! every such file at any depth, the root included. A path without glob
//! characters stays a single file, read as before.

use globset::{GlobBuilder, GlobMatcher};

/// Characters that make `catalogPath` a pattern rather than one file.
const GLOB_CHARS: [char; 5] = ['*', '?', '[', '{', '\\'];

/// How the syntax is explained where a pattern is refused.
pub(crate) const GLOB_SYNTAX: &str = "catalogPath is a file path (e.g. /catalog-info.yaml) or a glob: `*` and `?` stay within one directory, `**/` spans any number of directories (none included), `[abc]` and `{a,b}` choose; e.g. **/catalog-info.yaml reads every catalog-info.yaml of the repository, the root one too";

/// A `catalogPath` pattern, compiled.
#[derive(Debug, Clone)]
pub struct CatalogGlob {
    pattern: String,
    matcher: GlobMatcher,
}

impl CatalogGlob {
    /// `Ok(None)` for a plain path; `Err` (what is wrong) for a pattern
    /// that does not compile or can match no file.
    pub(crate) fn parse(path: &str) -> Result<Option<Self>, String> {
        if !path.contains(GLOB_CHARS) {
            return Ok(None);
        }
        let last = path.rsplit('/').next().unwrap_or(path);
        if last == "**" {
            return Err(format!(
                "'{path}' ends in `**`, which names directories; end it with a file name pattern such as **/catalog-info.yaml"
            ));
        }
        let glob = GlobBuilder::new(path)
            .literal_separator(true)
            .backslash_escape(true)
            .empty_alternates(false)
            .build()
            .map_err(|err| format!("'{path}' is not a glob: {}", err.kind()))?;
        let matcher = glob.compile_matcher();
        Ok(Some(Self {
            pattern: path.to_owned(),
            matcher,
        }))
    }

    /// Whether the file at `path` (relative to the repository root) is a
    /// catalog file.
    pub fn is_match(&self, path: &str) -> bool {
        self.matcher.is_match(path.trim_start_matches('/'))
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(text: &str) -> CatalogGlob {
        CatalogGlob::parse(text).unwrap().unwrap()
    }

    #[test]
    fn double_star_matches_at_any_depth_the_root_included() {
        let g = glob("**/catalog-info.yaml");
        for path in [
            "catalog-info.yaml",
            "unit-0001/catalog-info.yaml",
            "apps/web/unit-0004/deploy/catalog-info.yaml",
        ] {
            assert!(g.is_match(path), "{path}");
        }
        for path in [
            "docs/catalog-info.yaml.bak",
            "services/legacy/catalog-info.yml",
            "examples/catalog-info.yaml.example",
            "templates/catalog-info.yaml/x.yaml",
        ] {
            assert!(!g.is_match(path), "{path}");
        }
    }

    #[test]
    fn single_star_stays_in_one_directory() {
        let g = glob("services/*/catalog-info.yaml");
        assert!(g.is_match("services/a/catalog-info.yaml"));
        assert!(!g.is_match("services/a/b/catalog-info.yaml"));
        assert!(!g.is_match("catalog-info.yaml"));
    }

    #[test]
    fn plain_paths_are_not_globs() {
        assert!(CatalogGlob::parse("catalog-info.yaml").unwrap().is_none());
        assert!(CatalogGlob::parse("a/b/c.yaml").unwrap().is_none());
    }

    #[test]
    fn patterns_that_match_nothing_are_refused() {
        for bad in ["**", "a/**", "[unclosed/x.yaml", "{a,/x.yaml"] {
            assert!(CatalogGlob::parse(bad).is_err(), "{bad}");
        }
    }
}
