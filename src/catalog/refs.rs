//! Entity references as `@backstage/catalog-model` parses them:
//! `[<kind>:][<namespace>/]<name>`, with defaults for kind and namespace.

use super::entity::DEFAULT_NAMESPACE;

/// A complete reference; compare with [`EntityRef::canonical`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntityRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RefError {
    #[error("entity reference must not be empty")]
    Empty,
    #[error("entity reference \"{0}\" was not on the form [<kind>:][<namespace>/]<name>")]
    Malformed(String),
    #[error(
        "entity reference \"{0}\" had missing or empty kind (e.g. did not start with \"component:\" or similar)"
    )]
    MissingKind(String),
}

impl EntityRef {
    /// Parses `text`, filling in `default_kind` and `default_namespace`
    /// (itself `default` when not given) the way Backstage's `parseEntityRef` does.
    pub(crate) fn parse(
        text: &str,
        default_kind: Option<&str>,
        default_namespace: Option<&str>,
    ) -> Result<Self, RefError> {
        if text.is_empty() {
            return Err(RefError::Empty);
        }
        let slash = text.find('/');
        // A colon after the first slash belongs to the name.
        let colon = text.find(':').filter(|c| slash.is_none_or(|s| *c < s));
        let kind = colon.map(|c| &text[..c]);
        let namespace = slash.map(|s| &text[colon.map_or(0, |c| c + 1)..s]);
        let name_start = match (colon, slash) {
            (_, Some(s)) => s + 1,
            (Some(c), None) => c + 1,
            (None, None) => 0,
        };
        let name = &text[name_start..];
        if kind == Some("") || namespace == Some("") || name.is_empty() {
            return Err(RefError::Malformed(text.to_owned()));
        }
        let kind = kind
            .or(default_kind)
            .ok_or_else(|| RefError::MissingKind(text.to_owned()))?;
        Ok(Self {
            kind: kind.to_owned(),
            namespace: namespace
                .or(default_namespace)
                .unwrap_or(DEFAULT_NAMESPACE)
                .to_owned(),
            name: name.to_owned(),
        })
    }

    /// `kind:namespace/name`, lowercased, as Backstage stores relation targets.
    pub(crate) fn canonical(&self) -> String {
        format!("{}:{}/{}", self.kind, self.namespace, self.name).to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Result<&'static str, &'static str>,
    );

    #[test]
    fn parses_like_catalog_model() {
        let cases: Vec<Case> = vec![
            (
                "team-a",
                Some("Group"),
                Some("default"),
                Ok("group:default/team-a"),
            ),
            ("user:jdoe", Some("Group"), Some("ns"), Ok("user:ns/jdoe")),
            ("Group:Other/Team-A", None, None, Ok("group:other/team-a")),
            ("ns/name", Some("API"), None, Ok("api:ns/name")),
            (
                "admin/guest/somewhere",
                Some("User"),
                None,
                Ok("user:admin/guest/somewhere"),
            ),
            ("a/b:c", Some("User"), None, Ok("user:a/b:c")),
            ("resource:db", None, None, Ok("resource:default/db")),
            ("db", None, None, Err("missing or empty kind")),
            ("", Some("Group"), None, Err("must not be empty")),
            (":default/admin", None, None, Err("was not on the form")),
            ("user:/admin", None, None, Err("was not on the form")),
            ("user:", None, None, Err("was not on the form")),
        ];
        for (text, kind, namespace, expected) in cases {
            let got = EntityRef::parse(text, kind, namespace);
            match (got, expected) {
                (Ok(r), Ok(want)) => assert_eq!(r.canonical(), want, "{text}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
