//! catalog-import's analysis (`POST /analyze-location`): a repository URL's
//! catalog file, what a file holds, or a Component to suggest.

use serde::Serialize;
use serde_json::{Value, json};

use crate::catalog::Entity;

/// `{existingEntityFiles, generateEntities}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Analysis {
    pub existing_entity_files: Vec<ExistingFile>,
    pub generate_entities: Vec<Value>,
}

/// An entity the analysed file holds.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExistingFile {
    pub location: FileLocation,
    pub is_registered: bool,
    pub entity: Entity,
}

/// `{type: "url", target}`.
#[derive(Debug, Serialize)]
pub(crate) struct FileLocation {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub target: String,
}

impl Analysis {
    /// The entities of the catalog file `file`.
    pub(crate) fn existing(
        file: &str,
        registered: bool,
        entities: impl Iterator<Item = Entity>,
    ) -> Self {
        let existing_entity_files = entities
            .map(|entity| ExistingFile {
                location: FileLocation {
                    type_: "url",
                    target: file.to_owned(),
                },
                is_registered: registered,
                entity,
            })
            .collect();
        Self {
            existing_entity_files,
            generate_entities: Vec::new(),
        }
    }

    /// A Component to create for the repository `slug`, which has no
    /// catalog file.
    pub(crate) fn suggested(slug: &str) -> Self {
        Self {
            existing_entity_files: Vec::new(),
            generate_entities: vec![json!({
                "entity": {
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Component",
                    "metadata": {"name": suggested_name(slug)},
                    "spec": {"type": "other", "lifecycle": "unknown"},
                },
                "fields": [{
                    "field": "spec.owner",
                    "state": "needsUserInput",
                    "value": null,
                    "description": "The group or user that owns this component",
                }],
            })],
        }
    }
}

/// The URL of `filename` in the repository `repo_url` and the
/// repository's slug. Server: `…/projects/<KEY>/repos/<slug>[/browse…]`
/// (or `/users/<name>/repos/<slug>`), keeping `?at=`; Cloud:
/// `…/<workspace>/<slug>/src/<ref>[/…]` (a Cloud URL must name its ref).
pub(super) fn catalog_file_in(repo_url: &str, filename: &str) -> Option<(String, String)> {
    let url = url::Url::parse(repo_url).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let repos = segments
        .windows(4)
        .position(|w| (w[0] == "projects" || w[0] == "users") && w[2] == "repos");
    if let Some(at) = repos {
        let slug = segments[at + 3];
        let mut file = url.clone();
        let prefix: Vec<&str> = segments[..at + 4].to_vec();
        file.set_path(&format!("{}/browse/{filename}", prefix.join("/")));
        let at_ref = url
            .query_pairs()
            .find(|(k, _)| k == "at")
            .map(|(_, v)| v.into_owned());
        file.set_query(None);
        if let Some(at_ref) = at_ref {
            file.query_pairs_mut().append_pair("at", &at_ref);
        }
        file.set_fragment(None);
        return Some((file.to_string(), slug.to_owned()));
    }
    match segments.as_slice() {
        [workspace, slug, "src", git_ref, ..] => {
            let mut repo = url.clone();
            repo.set_path(&format!("{workspace}/{slug}"));
            repo.set_query(None);
            let file = crate::bitbucket::cloud_urls::file_url(repo.as_str(), git_ref, filename)?;
            Some((file, (*slug).to_owned()))
        }
        _ => None,
    }
}

/// A valid entity name from a repository slug.
fn suggested_name(slug: &str) -> String {
    let cleaned: String = slug
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let name: String = trimmed.chars().take(63).collect();
    let name = name.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if name.is_empty() {
        "component".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn repository_urls_name_their_catalog_file() {
        assert_eq!(
            catalog_file_in("https://bb.example.com/projects/PLAT/repos/svc/browse?at=refs%2Fheads%2Fdev", "catalog-info.yaml"),
            Some((
                "https://bb.example.com/projects/PLAT/repos/svc/browse/catalog-info.yaml?at=refs%2Fheads%2Fdev".to_owned(),
                "svc".to_owned()
            ))
        );
        for (repository, file, expected) in [
            (
                "https://bb.example.com/ctx/users/al/repos/svc",
                "dir/c.yaml",
                Some("https://bb.example.com/ctx/users/al/repos/svc/browse/dir/c.yaml"),
            ),
            (
                "https://bitbucket.org/acme/svc/src/main/",
                "catalog-info.yaml",
                Some("https://bitbucket.org/acme/svc/src/main/catalog-info.yaml"),
            ),
            ("https://bitbucket.org/acme/svc", "c.yaml", None),
        ] {
            let found = catalog_file_in(repository, file).map(|f| f.0);
            assert_eq!(found.as_deref(), expected, "{repository}");
        }
        assert_eq!(suggested_name("My Service!"), "My-Service");
        assert_eq!(suggested_name("--"), "component");
    }
}
