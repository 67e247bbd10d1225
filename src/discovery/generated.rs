//! A Component for each repository without a catalog file
//! (`withoutCatalogFile.generate`), owned by whoever the repository's code
//! owners file names for `*`, else by the configured owner.
//!
//! Generated entities are kept under a unit of their own (the catalog
//! file's URL with `#generated`): turning the option off drops them through
//! the listing's reconcile, so under the deletion guard; a repository that
//! gains a catalog file drops its generated unit in the same apply.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use url::Url;

use super::RepositoryRecord;
use crate::catalog::entity::{
    ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION, ANNOTATION_SOURCE_LOCATION,
    ANNOTATION_VIEW_URL, DEFAULT_NAMESPACE, Metadata,
};
use crate::catalog::generated::{ANNOTATION_GENERATED, GENERATED_UNIT_SUFFIX};
use crate::catalog::{Entity, ProcessedEntity};
use crate::config::generated::GenerateSettings;

pub(crate) use super::codeowners::{CODEOWNERS_PATH, repository_owner};

/// The longest code owners file read; a larger one is ignored.
pub(crate) const MAX_CODEOWNERS_BYTES: usize = 64 * 1024;

/// The unit a repository's generated entity is kept under.
pub(crate) fn unit(catalog_url: &str) -> String {
    format!("{catalog_url}{GENERATED_UNIT_SUFFIX}")
}

/// The settings as a short stable string, to tell when they changed.
pub(crate) fn settings_token(settings: &GenerateSettings) -> String {
    let described = format!(
        "{}\n{}\n{}",
        settings.kind, settings.lifecycle, settings.owner
    );
    sha1_smol::Sha1::from(described).digest().to_string()[..12].to_owned()
}

/// `<project>-<slug>`, lowercased: valid under Backstage's name rules and
/// unique across projects. Where characters had to be replaced or the name
/// shortened to 63, a hash of the original keeps it unique.
pub(crate) fn entity_name(project: &str, slug: &str) -> String {
    let original = format!("{project}-{slug}").to_lowercase();
    let mut name = String::with_capacity(original.len());
    for c in original.chars() {
        let keep = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        name.push(if keep { c } else { '-' });
    }
    let trimmed = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed == original && trimmed.len() <= 63 {
        return original;
    }
    let hash = sha1_smol::Sha1::from(format!("{project}/{slug}"))
        .digest()
        .to_string();
    let mut head: String = trimmed.chars().take(54).collect();
    while head.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        head.pop();
    }
    if head.is_empty() {
        format!("repo-{}", &hash[..8])
    } else {
        format!("{head}-{}", &hash[..8])
    }
}

/// The code owners file's API URL: the catalog file's, with the catalog
/// path replaced (both products name the file by its path segments last).
pub(crate) fn codeowners_url(file_url: &Url, catalog_path: &str) -> Option<Url> {
    let depth = catalog_path.split('/').count();
    let mut url = file_url.clone();
    {
        let mut segments = url.path_segments_mut().ok()?;
        for _ in 0..depth {
            segments.pop();
        }
        segments.extend(CODEOWNERS_PATH.split('/'));
    }
    Some(url)
}

/// The owner and where it came from, given the code owners file's text.
pub(crate) fn owner(codeowners: Option<&[u8]>, settings: &GenerateSettings) -> (String, String) {
    codeowners
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(repository_owner)
        .map_or_else(
            || (settings.owner.clone(), "config".to_owned()),
            |owner| (owner, "codeowners".to_owned()),
        )
}

/// The Component for `record`'s repository.
pub(crate) fn entity(
    record: &RepositoryRecord,
    settings: &GenerateSettings,
    owner: &str,
) -> ProcessedEntity {
    let name = entity_name(&record.project, &record.slug);
    let repo = record.url.trim_end_matches('/');
    let location = format!("url:{}", record.catalog_url);
    let annotations: BTreeMap<String, String> = [
        (ANNOTATION_GENERATED, "true".to_owned()),
        (ANNOTATION_LOCATION, location.clone()),
        (ANNOTATION_ORIGIN_LOCATION, location),
        (ANNOTATION_VIEW_URL, repo.to_owned()),
        (ANNOTATION_SOURCE_LOCATION, format!("url:{repo}/")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut rest = Map::new();
    rest.insert("title".into(), Value::String(record.slug.clone()));
    rest.insert(
        "description".into(),
        Value::String(format!(
            "Generated for {}/{}, which has no catalog file",
            record.project, record.slug
        )),
    );
    let entity = Entity {
        api_version: "backstage.io/v1alpha1".into(),
        kind: "Component".into(),
        metadata: Metadata {
            name,
            namespace: DEFAULT_NAMESPACE.into(),
            annotations,
            rest,
            uid: None,
            etag: None,
        },
        spec: Some(json!({
            "type": settings.kind,
            "lifecycle": settings.lifecycle,
            "owner": owner,
        })),
        relations: Vec::new(),
    };
    ProcessedEntity::from(entity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::validate::is_valid_object_name;

    #[test]
    fn names_are_valid_and_unique() {
        assert_eq!(
            entity_name("P0001", "billing-worker-007"),
            "p0001-billing-worker-007"
        );
        let personal = entity_name("~USER001", "notes");
        assert!(is_valid_object_name(&personal), "{personal}");
        let long = entity_name("PROJ", &"x".repeat(80));
        assert!(is_valid_object_name(&long) && long.len() <= 63, "{long}");
        assert_ne!(entity_name("A", "b c"), entity_name("A", "b-c"));
        assert!(is_valid_object_name(&entity_name("__", "..")));
    }

    #[test]
    fn codeowners_url_replaces_the_catalog_path() {
        let server =
            Url::parse("http://h/rest/api/1.0/projects/P/repos/r/raw/catalog-info.yaml?at=main")
                .unwrap();
        assert_eq!(
            codeowners_url(&server, "catalog-info.yaml")
                .unwrap()
                .as_str(),
            "http://h/rest/api/1.0/projects/P/repos/r/raw/.bitbucket/CODEOWNERS?at=main"
        );
        let cloud =
            Url::parse("http://h/2.0/repositories/ws/r/src/main/docs/catalog.yaml").unwrap();
        assert_eq!(
            codeowners_url(&cloud, "docs/catalog.yaml")
                .unwrap()
                .as_str(),
            "http://h/2.0/repositories/ws/r/src/main/.bitbucket/CODEOWNERS"
        );
    }
}
