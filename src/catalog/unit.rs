//! What a unit's new entity set changes: who serves an entity ([`Owner`]),
//! the numbered [`Change`]s to persist and the [`Conflict`]s refused.

use std::sync::Arc;

use super::entity::{Entity, EntityKey};
use super::relations::Reference;
use super::{PreparedEntity, problem, stitch};

/// Who serves an entity: a source, and the unit of it the entity came from
/// (the catalog file URL of a repository, or a location's target).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub source: Arc<str>,
    pub unit: Arc<str>,
}

impl Owner {
    pub fn new(source: &str, unit: &str) -> Self {
        Self {
            source: Arc::from(source),
            unit: Arc::from(unit),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.unit.is_empty() {
            write!(f, "source {}", self.source)
        } else {
            write!(f, "{} (source {})", self.unit, self.source)
        }
    }
}

/// An entity another unit already serves; it was not taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub entity_ref: String,
    /// Who keeps serving the entity.
    pub owner: Owner,
    /// The unit whose copy was refused.
    pub unit: String,
}

impl Conflict {
    /// The problem the refused unit reports.
    pub fn into_problem(self) -> problem::Problem {
        problem::Problem::new(
            self.unit,
            problem::ProblemKind::Conflict,
            format!(
                "entity {} is already provided by {}; this copy is ignored",
                self.entity_ref, self.owner
            ),
        )
        .for_entity(self.entity_ref)
    }
}

/// One unit's whole new entity set; empty when the unit yields nothing.
#[derive(Debug, Clone)]
pub struct UnitEntities {
    pub unit: String,
    pub entities: Vec<ProcessedEntity>,
}

/// An entity as processing accepted it, with the references validating it
/// derived: the catalog indexes those instead of deriving them again.
#[derive(Debug, Clone)]
pub struct ProcessedEntity {
    pub entity: Entity,
    pub(crate) references: Box<[Reference]>,
}

/// For an entity that was not processed (built in code): its references
/// are derived here.
impl From<Entity> for ProcessedEntity {
    fn from(entity: Entity) -> Self {
        let references = stitch::references_of(&entity).into();
        Self { entity, references }
    }
}

/// One change to what is served, numbered catalog-wide.
#[derive(Debug, Clone)]
pub enum Change {
    Upsert {
        entity: Arc<PreparedEntity>,
        owner: Owner,
        seq: u64,
        /// The references the catalog indexed for it, as the store keeps
        /// them (`stitch::references_to_store`): computed once here, not
        /// parsed back from the JSON when it is stored. `None`: the store
        /// leaves start-up to derive them.
        references: Option<String>,
    },
    Remove {
        key: EntityKey,
        source: Arc<str>,
        seq: u64,
    },
}

impl Change {
    pub fn seq(&self) -> u64 {
        match self {
            Change::Upsert { seq, .. } | Change::Remove { seq, .. } => *seq,
        }
    }
}

/// What [`Catalog::prepare`] changed, to persist before [`Catalog::publish`].
#[derive(Debug, Default)]
pub struct Applied {
    pub changes: Vec<Change>,
    pub conflicts: Vec<Conflict>,
    /// Refs whose withheld state changed (see `Catalog::withhold`).
    pub withheld: Vec<Withholding>,
}

/// A ref removed through the API is now withheld for `unit` (of the
/// batch's source: not served, still the unit's), or (`None`) no longer.
/// Persisted, so a restart or a new leader keeps the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withholding {
    pub key: EntityKey,
    pub unit: Option<Arc<str>>,
}
