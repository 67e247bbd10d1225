//! `catalog.rules`, Backstage's shape: which kinds may enter the catalog,
//! optionally only from some locations.

use serde_json::Value;

use super::loose::shown;
use super::{ConfigError, Ctx};
use crate::catalog::rules::{AllowKind, CatalogRule, CatalogRules, LocationMatcher, TargetMatch};

/// The keys of a `catalog.rules` entry, and of one of its `locations`.
pub(super) const RULE_KEYS: &[&str] = &["allow", "locations"];
pub(super) const MATCHER_KEYS: &[&str] = &["type", "exact", "pattern"];

pub(super) fn catalog_rules(ctx: &mut Ctx<'_>, value: &Value) -> Result<CatalogRules, ConfigError> {
    let base = "catalog.rules";
    let Value::Array(items) = value else {
        return Err(ctx.error(
            base,
            "expected a list of rules, e.g. [{allow: [Component, API, Location]}]",
        ));
    };
    if items.is_empty() {
        ctx.warn(
            base,
            "an empty list allows no kind at all: every discovered entity will be rejected",
        );
    }
    let mut rules = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let key = format!("{base}.{index}");
        let rule = ctx.object(
            &key,
            item,
            "expected a rule object with `allow` (and optionally `locations`)",
            RULE_KEYS,
            "unknown key is ignored; a rule has `allow` and `locations`",
        )?;
        let allow = allow_list(ctx, &format!("{key}.allow"), rule.get("allow"))?;
        let locations = match rule.get("locations") {
            None | Some(Value::Null) => None,
            Some(Value::Array(locations)) => Some(
                (locations.iter().enumerate())
                    .map(|(i, at)| location_matcher(ctx, &format!("{key}.locations.{i}"), at))
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => {
                return Err(ctx.error(
                    &format!("{key}.locations"),
                    "expected a list of {type, exact or pattern}",
                ));
            }
        };
        rules.push(CatalogRule { allow, locations });
    }
    Ok(CatalogRules::new(rules))
}

/// A rule's `allow`: kind names or `{kind, 'spec.type'}` objects.
pub(super) fn allow_list(
    ctx: &Ctx<'_>,
    key: &str,
    value: Option<&Value>,
) -> Result<Vec<AllowKind>, ConfigError> {
    let Some(Value::Array(allows)) = value else {
        return Err(ctx.error(key, "required: a list of kinds, e.g. [Component, API]"));
    };
    let mut allow = Vec::with_capacity(allows.len());
    for (i, entry) in allows.iter().enumerate() {
        let entry_key = format!("{key}.{i}");
        allow.push(match entry {
            Value::String(kind) if !kind.trim().is_empty() => AllowKind {
                kind: kind.trim().to_owned(),
                spec_type: None,
            },
            Value::Object(obj) => {
                let kind = obj.get("kind").and_then(Value::as_str).filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                    ctx.error(&format!("{entry_key}.kind"), "required: the entity kind to allow")
                })?;
                let spec_type = match obj.get("spec.type") {
                    None => None,
                    Some(Value::String(t)) => Some(t.clone()),
                    Some(_) => return Err(ctx.error(&format!("{entry_key}.spec.type"), "expected a string")),
                };
                AllowKind {
                    kind: kind.trim().to_owned(),
                    spec_type,
                }
            }
            other => {
                return Err(ctx.error(&entry_key, format!("{} is not a kind; write a kind name or {{kind: Resource, 'spec.type': database}}", shown(other))));
            }
        });
    }
    Ok(allow)
}

fn location_matcher(
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &Value,
) -> Result<LocationMatcher, ConfigError> {
    let obj = ctx.object(
        key,
        value,
        "expected {type: url, exact: <url>} or {type: url, pattern: <glob>}",
        MATCHER_KEYS,
        "unknown key is ignored; use type, exact or pattern",
    )?;
    let type_ = obj.get("type").and_then(Value::as_str).ok_or_else(|| {
        ctx.error(
            &format!("{key}.type"),
            "required: the location type, e.g. url",
        )
    })?;
    let target = match (obj.get("exact"), obj.get("pattern")) {
        (Some(_), Some(_)) => {
            return Err(ctx.error(
                key,
                "a catalog rule location cannot have both exact and pattern values",
            ));
        }
        (Some(Value::String(exact)), None) => TargetMatch::Exact(exact.clone()),
        (None, Some(Value::String(pattern))) => {
            TargetMatch::pattern(pattern).map_err(|message| {
                ctx.error(
                    &format!("{key}.pattern"),
                    format!("invalid glob '{pattern}': {message}"),
                )
            })?
        }
        (None, None) => TargetMatch::Any,
        (Some(_), None) => return Err(ctx.error(&format!("{key}.exact"), "expected a string")),
        (None, Some(_)) => {
            return Err(ctx.error(&format!("{key}.pattern"), "expected a string"));
        }
    };
    Ok(LocationMatcher {
        type_: type_.to_owned(),
        target,
    })
}
