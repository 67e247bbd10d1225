//! The Backstage entity envelope.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub(crate) const DEFAULT_NAMESPACE: &str = "default";
pub(crate) const ANNOTATION_LOCATION: &str = "backstage.io/managed-by-location";
pub(crate) const ANNOTATION_ORIGIN_LOCATION: &str = "backstage.io/managed-by-origin-location";
pub(crate) const ANNOTATION_VIEW_URL: &str = "backstage.io/view-url";
pub(crate) const ANNOTATION_EDIT_URL: &str = "backstage.io/edit-url";
pub(crate) const ANNOTATION_SOURCE_LOCATION: &str = "backstage.io/source-location";
/// Set where the repository listing already names the default branch.
pub(crate) const ANNOTATION_DEFAULT_BRANCH: &str = "bitbucket.org/default-branch";

/// A catalog entity in Backstage's shape. Fields we do not interpret are
/// kept as they were written, in their original order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Value>,
    /// Filled when the served catalog is assembled (see [`super::stitch`]);
    /// Backstage always serves the list, empty or not.
    #[serde(default)]
    pub relations: Vec<Relation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// One served relation, as Backstage's stitcher writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relation {
    #[serde(rename = "type")]
    pub type_: String,
    /// Full, lowercased entity ref, e.g. `group:default/team-a`.
    pub target_ref: String,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

/// A case-insensitive entity reference, `kind:namespace/name`, lowercased
/// for lookups (Backstage compares refs case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityKey(Arc<str>);

impl EntityKey {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self(Arc::from(
            format!("{kind}:{namespace}/{name}").to_lowercase(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key as [`EntityKey::as_str`] printed it (already lowercased).
    pub fn from_stored(text: &str) -> Self {
        Self(Arc::from(text.to_lowercase()))
    }
}

impl Entity {
    pub fn key(&self) -> EntityKey {
        EntityKey::new(&self.kind, &self.metadata.namespace, &self.metadata.name)
    }

    /// `kind:namespace/name` as written.
    pub fn entity_ref(&self) -> String {
        format!(
            "{}:{}/{}",
            self.kind.to_lowercase(),
            self.metadata.namespace,
            self.metadata.name
        )
    }
}
