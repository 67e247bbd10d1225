//! `withoutCatalogFile.generate` (ours, both flavours): one Component per
//! repository that has no catalog file.

use serde::Deserialize;

use super::{ConfigError, Ctx};
use crate::catalog::refs::EntityRef;
use crate::catalog::validate::{is_valid_dns_label, is_valid_object_name};

/// What a generated Component says when its repository's code owners file
/// names nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSettings {
    /// `spec.type`.
    pub kind: String,
    /// `spec.lifecycle`.
    pub lifecycle: String,
    /// `spec.owner` when `.bitbucket/CODEOWNERS` names nobody for `*`:
    /// a full reference, e.g. `group:default/unowned`.
    pub owner: String,
}

pub(super) mod raw {
    use super::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct WithoutCatalogFile {
        pub generate: Option<Generate>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct Generate {
        #[serde(rename = "type")]
        pub kind: String,
        pub lifecycle: String,
        pub owner: String,
    }
}

/// Checks `<key>.withoutCatalogFile`: type and lifecycle as Backstage
/// requires them (non-empty strings; we ask for simple names), the owner a
/// valid entity reference.
pub(super) fn generate_settings(
    ctx: &Ctx<'_>,
    key: &str,
    raw: Option<raw::WithoutCatalogFile>,
) -> Result<Option<GenerateSettings>, ConfigError> {
    let Some(raw::Generate {
        kind,
        lifecycle,
        owner,
    }) = raw.and_then(|r| r.generate)
    else {
        return Ok(None);
    };
    let base = format!("{key}.withoutCatalogFile.generate");
    for (name, value) in [("type", &kind), ("lifecycle", &lifecycle)] {
        if !is_valid_object_name(value.trim()) {
            return Err(ctx.error(
                &format!("{base}.{name}"),
                format!(
                    "'{value}' is not a usable spec.{name}: write letters and digits, separated by - _ or . (at most 63), e.g. service / production"
                ),
            ));
        }
    }
    let owner_key = format!("{base}.owner");
    let parsed = EntityRef::parse(owner.trim(), Some("group"), None).map_err(|err| {
        ctx.error(
            &owner_key,
            format!("{err}; write an owner reference such as group:default/unowned"),
        )
    })?;
    if !is_valid_object_name(&parsed.name) || !is_valid_dns_label(&parsed.namespace) {
        return Err(ctx.error(
            &owner_key,
            format!(
                "'{owner}' is not a valid entity reference: the name must be letters and digits separated by - _ or . (at most 63), the namespace a DNS label"
            ),
        ));
    }
    if !matches!(parsed.kind.to_ascii_lowercase().as_str(), "group" | "user") {
        return Err(ctx.error(
            &owner_key,
            format!(
                "'{owner}' is a {} reference; a Component's owner is a group or a user, e.g. group:default/unowned",
                parsed.kind
            ),
        ));
    }
    Ok(Some(GenerateSettings {
        kind: kind.trim().to_owned(),
        lifecycle: lifecycle.trim().to_owned(),
        owner: parsed.canonical(),
    }))
}
