//! `catalog.rules`: which kinds may come from which locations, as Backstage's
//! DefaultCatalogRulesEnforcer decides it. An entity is allowed when any rule
//! matches both its location (no `locations` = any) and its kind.

use globset::{GlobBuilder, GlobMatcher};

/// The rules in force (Backstage's default: Component, API, Location).
#[derive(Debug, Clone)]
pub struct CatalogRules {
    rules: Vec<CatalogRule>,
}

#[derive(Debug, Clone)]
pub struct CatalogRule {
    pub allow: Vec<AllowKind>,
    /// `None` matches every location.
    pub locations: Option<Vec<LocationMatcher>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowKind {
    /// Compared case-insensitively.
    pub kind: String,
    /// When set, `spec.type` must equal it exactly.
    pub spec_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LocationMatcher {
    pub type_: String,
    pub target: TargetMatch,
}

#[derive(Debug, Clone)]
pub enum TargetMatch {
    Any,
    Exact(String),
    /// A minimatch-style glob, case-insensitive, `*` stays within a path segment.
    Pattern {
        glob: String,
        matcher: GlobMatcher,
    },
}

/// A `catalog.rules` location pattern that is not a glob; the message
/// names only what is wrong (the caller quotes the pattern).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.kind())]
pub struct InvalidGlob(#[source] globset::Error);

impl TargetMatch {
    pub fn pattern(glob: &str) -> Result<Self, InvalidGlob> {
        let matcher = GlobBuilder::new(glob)
            .case_insensitive(true)
            .literal_separator(true)
            .build()
            .map_err(InvalidGlob)?
            .compile_matcher();
        Ok(TargetMatch::Pattern {
            glob: glob.to_owned(),
            matcher,
        })
    }
}

impl Default for CatalogRules {
    fn default() -> Self {
        Self {
            rules: vec![CatalogRule {
                allow: ["Component", "API", "Location"]
                    .into_iter()
                    .map(|kind| AllowKind {
                        kind: kind.into(),
                        spec_type: None,
                    })
                    .collect(),
                locations: None,
            }],
        }
    }
}

impl CatalogRules {
    pub fn new(rules: Vec<CatalogRule>) -> Self {
        Self { rules }
    }

    /// These rules plus `more` (e.g. a config location's own `rules`).
    pub fn extended(&self, more: Vec<CatalogRule>) -> Self {
        let mut rules = self.rules.clone();
        rules.extend(more);
        Self { rules }
    }

    /// Whether an entity of `kind` (with `spec_type`) may come from the
    /// location `type_:target` (for us, the origin file's `url:` location).
    pub fn is_allowed(
        &self,
        kind: &str,
        spec_type: Option<&str>,
        type_: &str,
        target: &str,
    ) -> bool {
        self.rules.iter().any(|rule| {
            let location_ok = rule.locations.as_ref().is_none_or(|matchers| {
                matchers.iter().any(|m| {
                    m.type_ == type_
                        && match &m.target {
                            TargetMatch::Any => true,
                            TargetMatch::Exact(exact) => exact == target,
                            TargetMatch::Pattern { matcher, .. } => matcher.is_match(target),
                        }
                })
            });
            location_ok
                && rule.allow.iter().any(|allow| {
                    allow.kind.eq_ignore_ascii_case(kind)
                        && allow
                            .spec_type
                            .as_deref()
                            .is_none_or(|t| Some(t) == spec_type)
                })
        })
    }

    /// The kinds some rule allows for this location, for messages.
    pub fn allowed_kinds(&self, type_: &str, target: &str) -> Vec<String> {
        let mut kinds: Vec<String> = Vec::new();
        for rule in &self.rules {
            for allow in &rule.allow {
                let label = match &allow.spec_type {
                    Some(t) => format!("{} (spec.type {t})", allow.kind),
                    None => allow.kind.clone(),
                };
                let here = CatalogRules::new(vec![CatalogRule {
                    allow: vec![allow.clone()],
                    locations: rule.locations.clone(),
                }]);
                if here.is_allowed(&allow.kind, allow.spec_type.as_deref(), type_, target)
                    && !kinds.contains(&label)
                {
                    kinds.push(label);
                }
            }
        }
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(kinds: &[&str]) -> Vec<AllowKind> {
        kinds
            .iter()
            .map(|k| AllowKind {
                kind: (*k).into(),
                spec_type: None,
            })
            .collect()
    }

    #[test]
    fn defaults_allow_component_api_location_only() {
        let rules = CatalogRules::default();
        let url = "https://bb/projects/A/repos/b/browse/catalog-info.yaml";
        for (kind, allowed) in [
            ("Component", true),
            ("component", true),
            ("API", true),
            ("Location", true),
            ("Group", false),
            ("User", false),
            ("System", false),
            ("Template", false),
        ] {
            assert_eq!(rules.is_allowed(kind, None, "url", url), allowed, "{kind}");
        }
    }

    #[test]
    fn location_scoped_rules_and_spec_type() {
        let rules = CatalogRules::new(vec![
            CatalogRule {
                allow: allow(&["Component"]),
                locations: None,
            },
            CatalogRule {
                allow: allow(&["Group", "User"]),
                locations: Some(vec![LocationMatcher {
                    type_: "url".into(),
                    target: TargetMatch::pattern("https://bb/projects/ORG/repos/*/browse/**")
                        .unwrap(),
                }]),
            },
            CatalogRule {
                allow: vec![AllowKind {
                    kind: "Resource".into(),
                    spec_type: Some("database".into()),
                }],
                locations: Some(vec![LocationMatcher {
                    type_: "url".into(),
                    target: TargetMatch::Exact("https://bb/x.yaml".into()),
                }]),
            },
        ]);
        let org = "https://bb/projects/ORG/repos/people/browse/catalog-info.yaml";
        assert!(rules.is_allowed("Group", None, "url", org));
        assert!(rules.is_allowed("user", None, "url", &org.to_lowercase()));
        assert!(!rules.is_allowed(
            "Group",
            None,
            "url",
            "https://bb/projects/OTHER/repos/p/browse/c.yaml"
        ));
        assert!(!rules.is_allowed("Group", None, "file", org));
        assert!(rules.is_allowed("Resource", Some("database"), "url", "https://bb/x.yaml"));
        assert!(!rules.is_allowed("Resource", Some("bucket"), "url", "https://bb/x.yaml"));
        assert!(!rules.is_allowed("Resource", Some("database"), "url", "https://bb/y.yaml"));
        assert_eq!(
            rules.allowed_kinds("url", org),
            vec!["Component", "Group", "User"]
        );
    }
}
