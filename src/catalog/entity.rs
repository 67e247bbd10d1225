//! The Backstage entity envelope.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const DEFAULT_NAMESPACE: &str = "default";
pub const ANNOTATION_LOCATION: &str = "backstage.io/managed-by-location";
pub const ANNOTATION_ORIGIN_LOCATION: &str = "backstage.io/managed-by-origin-location";

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
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

/// A case-insensitive entity reference, `kind:namespace/name`, lowercased
/// for lookups (Backstage compares refs case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityKey(String);

impl EntityKey {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self(format!("{kind}:{namespace}/{name}").to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
