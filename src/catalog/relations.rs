//! Relations as Backstage's BuiltinKindsEntityProcessor emits them: each
//! spec reference yields the forward relation on the entity and the reverse
//! one on its target. [`super::stitch`] attaches both to the served entities.

use std::sync::Arc;

use serde_json::Value;

use super::entity::Entity;
use super::refs::EntityRef;
use super::validate::{Invalid, Rule};

/// One emitted relation, refs canonical (lowercased `kind:namespace/name`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Emitted {
    pub source: String,
    pub type_: &'static str,
    pub target: String,
    /// On the entity that makes the reference (it keeps that itself, in
    /// its references), not on the entity it names.
    pub forward: bool,
}

/// `(spec field, default kind, forward type, reverse type)` per built-in kind.
type Rules = &'static [(
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
)];

fn rules(kind: &str) -> Rules {
    match kind {
        "Component" => &[
            ("owner", Some("Group"), "ownedBy", "ownerOf"),
            ("subcomponentOf", Some("Component"), "partOf", "hasPart"),
            ("providesApis", Some("API"), "providesApi", "apiProvidedBy"),
            ("consumesApis", Some("API"), "consumesApi", "apiConsumedBy"),
            ("dependsOn", None, "dependsOn", "dependencyOf"),
            ("system", Some("System"), "partOf", "hasPart"),
        ],
        "API" => &[
            ("owner", Some("Group"), "ownedBy", "ownerOf"),
            ("system", Some("System"), "partOf", "hasPart"),
        ],
        "Resource" => &[
            ("owner", Some("Group"), "ownedBy", "ownerOf"),
            ("dependsOn", None, "dependsOn", "dependencyOf"),
            ("dependencyOf", None, "dependencyOf", "dependsOn"),
            ("system", Some("System"), "partOf", "hasPart"),
        ],
        "User" => &[("memberOf", Some("Group"), "memberOf", "hasMember")],
        "Group" => &[
            ("parent", Some("Group"), "childOf", "parentOf"),
            ("children", Some("Group"), "parentOf", "childOf"),
            ("members", Some("User"), "hasMember", "memberOf"),
        ],
        "System" => &[
            ("owner", Some("Group"), "ownedBy", "ownerOf"),
            ("domain", Some("Domain"), "partOf", "hasPart"),
        ],
        "Domain" => &[("owner", Some("Group"), "ownedBy", "ownerOf")],
        _ => &[],
    }
}

/// Each relation type a spec reference puts on its entity, with the one it
/// puts on the target ([`rules`] uses no other pair; a test keeps them in
/// step). A [`Reference`] holds its pair as its place here.
pub(crate) const PAIRS: &[(&str, &str)] = &[
    ("ownedBy", "ownerOf"),
    ("partOf", "hasPart"),
    ("providesApi", "apiProvidedBy"),
    ("consumesApi", "apiConsumedBy"),
    ("dependsOn", "dependencyOf"),
    ("dependencyOf", "dependsOn"),
    ("memberOf", "hasMember"),
    ("childOf", "parentOf"),
    ("parentOf", "childOf"),
    ("hasMember", "memberOf"),
];

/// One reference in an entity's spec: the relation it puts on the entity
/// ([`Reference::forward`]) and the one it puts on `target`
/// ([`Reference::reverse`]). The entity is the other end, so an entity's
/// references are the whole of what it emits in 24 bytes each (the
/// catalog keeps them per entity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// Canonical ref of the target (shared with the relation index's).
    pub target: Arc<str>,
    /// The types' place in [`PAIRS`].
    pair: u8,
}

impl Reference {
    /// The reference whose forward relation is `forward`; `None` for a
    /// type no spec reference makes.
    pub(crate) fn new(forward: &str, target: Arc<str>) -> Option<Self> {
        let pair = PAIRS.iter().position(|(f, _)| *f == forward)?;
        Some(Self {
            target,
            pair: u8::try_from(pair).ok()?,
        })
    }

    /// The relation it puts on the entity that makes it.
    pub(crate) fn forward(&self) -> &'static str {
        PAIRS.get(usize::from(self.pair)).map_or("", |(f, _)| f)
    }

    /// The relation it puts on its target.
    pub(crate) fn reverse(&self) -> &'static str {
        PAIRS.get(usize::from(self.pair)).map_or("", |(_, r)| r)
    }
}

/// Every reference in `entity`'s spec. A reference that does not parse
/// fails the entity, as the processor's exception does in Backstage (e.g.
/// `dependsOn: [db]` without a kind).
pub(crate) fn references(entity: &Entity) -> Result<Vec<Reference>, Invalid> {
    let mut out = Vec::new();
    let Some(Value::Object(spec)) = &entity.spec else {
        return Ok(out);
    };
    for (field, default_kind, forward, _) in rules(&entity.kind) {
        let targets: Vec<(String, &str)> = match spec.get(*field) {
            Some(Value::String(s)) => vec![(format!("spec.{field}"), s.as_str())],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.as_str().map(|s| (format!("spec.{field}.{i}"), s)))
                .collect(),
            _ => Vec::new(),
        };
        for (path, text) in targets {
            let target = EntityRef::parse(text, *default_kind, Some(&entity.metadata.namespace))
                .map_err(|err| Invalid {
                    field: path,
                    rule: Rule::EntityRef,
                    message: err.to_string(),
                })?
                .canonical();
            out.extend(Reference::new(forward, Arc::from(target)));
        }
    }
    Ok(out)
}

/// Both directions of each of `references` made by the entity `source`
/// (its canonical ref).
pub(crate) fn expand(source: &str, references: &[Reference]) -> Vec<Emitted> {
    let mut out = Vec::with_capacity(references.len() * 2);
    for reference in references {
        out.push(Emitted {
            source: source.to_owned(),
            type_: reference.forward(),
            target: reference.target.to_string(),
            forward: true,
        });
        out.push(Emitted {
            source: reference.target.to_string(),
            type_: reference.reverse(),
            target: source.to_owned(),
            forward: false,
        });
    }
    out
}

/// Every relation `entity` emits, both directions; fails as [`references`].
#[cfg(test)]
pub(crate) fn emitted(entity: &Entity) -> Result<Vec<Emitted>, Invalid> {
    Ok(expand(entity.key().as_str(), &references(entity)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity(value: Value) -> Entity {
        serde_json::from_value(value).unwrap()
    }

    fn forward(e: &Entity) -> Vec<(String, String)> {
        let source = e.key().as_str().to_owned();
        emitted(e)
            .unwrap()
            .into_iter()
            .filter(|r| r.source == source)
            .map(|r| (r.type_.to_owned(), r.target))
            .collect()
    }

    #[test]
    fn component_relations_default_kind_and_namespace() {
        let c = entity(json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": "Svc", "namespace": "Payments"},
            "spec": {"type": "service", "lifecycle": "production", "owner": "team-a",
                     "system": "default/Billing", "subcomponentOf": "parent",
                     "providesApis": ["pay-api"], "consumesApis": ["other/api:x"],
                     "dependsOn": ["resource:db", "component:ns/y"]}
        }));
        assert_eq!(
            forward(&c),
            vec![
                ("ownedBy".into(), "group:payments/team-a".into()),
                ("partOf".into(), "component:payments/parent".into()),
                ("providesApi".into(), "api:payments/pay-api".into()),
                ("consumesApi".into(), "api:other/api:x".into()),
                ("dependsOn".into(), "resource:payments/db".into()),
                ("dependsOn".into(), "component:ns/y".into()),
                ("partOf".into(), "system:default/billing".into()),
            ]
        );
        let reverse: Vec<_> = emitted(&c)
            .unwrap()
            .into_iter()
            .filter(|r| r.target == "component:payments/svc")
            .map(|r| (r.source, r.type_))
            .collect();
        assert!(reverse.contains(&("group:payments/team-a".into(), "ownerOf")));
        assert!(reverse.contains(&("api:payments/pay-api".into(), "apiProvidedBy")));
        assert!(reverse.contains(&("resource:payments/db".into(), "dependencyOf")));
    }

    #[test]
    fn each_kind_emits_its_relations() {
        let cases = vec![
            (
                "API",
                json!({"owner": "user:jdoe", "system": "s"}),
                vec![
                    ("ownedBy", "user:default/jdoe"),
                    ("partOf", "system:default/s"),
                ],
            ),
            (
                "Resource",
                json!({"owner": "o", "dependsOn": ["component:a"], "dependencyOf": ["component:b"], "system": "s"}),
                vec![
                    ("ownedBy", "group:default/o"),
                    ("dependsOn", "component:default/a"),
                    ("dependencyOf", "component:default/b"),
                    ("partOf", "system:default/s"),
                ],
            ),
            (
                "User",
                json!({"memberOf": ["g1", "group:other/g2"]}),
                vec![
                    ("memberOf", "group:default/g1"),
                    ("memberOf", "group:other/g2"),
                ],
            ),
            (
                "Group",
                json!({"type": "team", "parent": "p", "children": ["c"], "members": ["u"]}),
                vec![
                    ("childOf", "group:default/p"),
                    ("parentOf", "group:default/c"),
                    ("hasMember", "user:default/u"),
                ],
            ),
            (
                "System",
                json!({"owner": "o", "domain": "d"}),
                vec![
                    ("ownedBy", "group:default/o"),
                    ("partOf", "domain:default/d"),
                ],
            ),
            (
                "Domain",
                json!({"owner": "o"}),
                vec![("ownedBy", "group:default/o")],
            ),
            ("Location", json!({"target": "./x.yaml"}), vec![]),
            ("Template", json!({"owner": "o"}), vec![]),
        ];
        for (kind, spec, expected) in cases {
            let e = entity(
                json!({"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}),
            );
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(a, b)| (a.into(), b.into()))
                .collect();
            assert_eq!(forward(&e), expected, "{kind}");
        }
    }

    /// Every pair a rule uses is a [`Reference`]'s, so none is dropped.
    #[test]
    fn every_rule_has_its_pair() {
        for kind in [
            "Component",
            "API",
            "Resource",
            "User",
            "Group",
            "System",
            "Domain",
        ] {
            for (field, _, forward, reverse) in rules(kind) {
                let reference = Reference::new(forward, Arc::from("x:y/z")).unwrap();
                assert_eq!(
                    (reference.forward(), reference.reverse()),
                    (*forward, *reverse),
                    "{kind}.{field}"
                );
            }
        }
        assert_eq!(std::mem::size_of::<Reference>(), 24);
    }

    #[test]
    fn a_reference_without_kind_fails_the_entity() {
        let c = entity(json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "x"},
            "spec": {"type": "s", "lifecycle": "l", "owner": "o", "dependsOn": ["db"]}
        }));
        let err = emitted(&c).unwrap_err();
        assert_eq!(err.field, "spec.dependsOn.0");
        assert_eq!(err.rule, Rule::EntityRef);
        assert!(err.message.contains("missing or empty kind"), "{err}");
    }
}
