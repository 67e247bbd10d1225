//! The one typed location: Backstage's `{id, type, target, entityRef}` and
//! where it came from (static, registered over HTTP, or discovered).

use serde::Serialize;

use crate::catalog::entity::DEFAULT_NAMESPACE;
use crate::discovery::location::{LocationOrigin, location_entity_name, location_id};

/// Where a listed location comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `catalog.locations`.
    Static,
    /// `POST /api/catalog/locations`.
    Registered,
    /// A file a provider's discovery read.
    Discovered,
}

impl From<LocationOrigin> for Origin {
    fn from(origin: LocationOrigin) -> Self {
        match origin {
            LocationOrigin::Static => Self::Static,
            LocationOrigin::Registered => Self::Registered,
        }
    }
}

/// A location as the API shows it. Serialises to exactly Backstage's
/// `{id, type, target, entityRef}`; the origin is not part of the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Location {
    /// A UUID v5 of `url:<target>` when registered, stable across restarts
    /// and replicas; kept when `PUT /locations/{id}` changes the target.
    pub id: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub target: String,
    /// The generated `Location` entity's ref.
    pub entity_ref: String,
    #[serde(skip)]
    pub origin: Origin,
}

impl Location {
    /// The `url` location of `target` (the only type the daemon reads).
    pub(crate) fn url(target: &str, origin: Origin) -> Self {
        Self {
            id: location_id(target),
            type_: "url".to_owned(),
            target: target.to_owned(),
            entity_ref: format!(
                "location:{DEFAULT_NAMESPACE}/{}",
                location_entity_name(target)
            ),
            origin,
        }
    }

    /// The same location under `id` (a registered location keeps its id
    /// when its target changes).
    pub(crate) fn with_id(mut self, id: &str) -> Self {
        id.clone_into(&mut self.id);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::location::location_json;

    #[test]
    fn serialises_as_backstage_and_as_before() {
        let target = "https://h/projects/P/repos/r/browse/c.yaml";
        let location = Location::url(target, Origin::Discovered);
        assert_eq!(
            serde_json::to_string(&location).unwrap(),
            location_json(target).to_string()
        );
    }
}
