//! Backstage's entity validation, in the order its catalog applies it:
//!
//! 1. the envelope (`EntityEnvelope.schema.json`), checked when a file's
//!    documents are emitted: a failure there fails the whole file;
//! 2. per entity: `SchemaValidEntityPolicy` (Entity/EntityMeta schemas),
//!    `NoForeignRootFieldsEntityPolicy`, `FieldFormatEntityPolicy`, then the
//!    built-in kind schemas (`kinds/*.v1alpha1.schema.json`). A failure drops
//!    that entity only.
//!
//! Unknown kinds pass with the generic rules (in Backstage a plugin's
//! processor would have to recognise them). A built-in kind spelled with other
//! case, or with an apiVersion outside `backstage.io/v1alpha1|v1beta1`, is
//! rejected as Backstage's BuiltinKindsEntityProcessor does.

use serde_json::{Map, Value};
use strum::VariantArray as _;

use super::parse::{Part, kind_of};

/// Which rule a value broke; named after Backstage's validator functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "camelCase")]
pub(crate) enum Rule {
    /// `EntityEnvelope.schema.json`: apiVersion, kind, metadata.name present.
    Envelope,
    /// `Entity.schema.json` / `EntityMeta.schema.json` types.
    Schema,
    /// `NoForeignRootFieldsEntityPolicy`.
    NoForeignRootFields,
    #[strum(serialize = "isValidApiVersion")]
    ApiVersion,
    #[strum(serialize = "isValidKind")]
    Kind,
    #[strum(serialize = "isValidEntityName")]
    EntityName,
    #[strum(serialize = "isValidNamespace")]
    Namespace,
    #[strum(serialize = "isValidLabelKey")]
    LabelKey,
    #[strum(serialize = "isValidLabelValue")]
    LabelValue,
    #[strum(serialize = "isValidAnnotationKey")]
    AnnotationKey,
    #[strum(serialize = "isValidAnnotationValue")]
    AnnotationValue,
    #[strum(serialize = "isValidTag")]
    Tag,
    #[strum(serialize = "isValidUrl")]
    Url,
    #[strum(serialize = "isValidString")]
    NonEmptyString,
    /// A built-in kind's JSON schema.
    KindSchema,
    /// No built-in validator recognises the kind/apiVersion pair.
    #[strum(serialize = "builtinKind")]
    UnrecognizedKind,
    /// An entity reference in the spec that cannot be parsed.
    EntityRef,
}

impl Rule {
    pub(crate) fn name(self) -> &'static str {
        self.into()
    }

    fn expectation(self) -> &'static str {
        match self {
            Rule::ApiVersion => {
                "an optional DNS subdomain and '/' followed by [a-zA-Z0-9] (1-63 characters), e.g. backstage.io/v1alpha1"
            }
            Rule::Kind => {
                "a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters in total"
            }
            Rule::EntityName | Rule::LabelValue => {
                "a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], at most 63 characters in total"
            }
            Rule::Namespace => {
                "a string that is sequences of [a-z0-9] separated by [-], at most 63 characters in total"
            }
            Rule::LabelKey | Rule::AnnotationKey => {
                "an optional DNS subdomain prefix and '/' followed by a name of [a-zA-Z0-9] separated by [-_.] (at most 63 characters)"
            }
            Rule::AnnotationValue => "a string",
            Rule::Tag => {
                "a string that is sequences of [a-z0-9:+#] separated by [-], at most 63 characters in total"
            }
            Rule::Url => "a string that is a valid url",
            Rule::NonEmptyString => "a non empty string",
            _ => "",
        }
    }
}

/// Why an entity (or a file's document) is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message} [rule {}]", rule.name())]
pub(crate) struct Invalid {
    /// Dotted path of the offending field, e.g. `metadata.tags.1`.
    pub field: String,
    pub rule: Rule,
    pub message: String,
}

impl Invalid {
    fn new(field: impl Into<String>, rule: Rule, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule,
            message: message.into(),
        }
    }

    /// FieldFormatEntityPolicy's wording: what was expected, what was found.
    fn format(field: impl Into<String>, rule: Rule, found: &Value) -> Self {
        let found = match found {
            Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        Self::new(
            field,
            rule,
            format!("expected {} but found {found}", rule.expectation()),
        )
    }
}

impl Invalid {
    /// Whether the key (an unknown or badly formed one) or the value is at
    /// fault.
    pub(crate) fn part(&self) -> Part {
        match self.rule {
            Rule::NoForeignRootFields | Rule::LabelKey | Rule::AnnotationKey => Part::Key,
            Rule::Schema if self.message.starts_with("unknown root field") => Part::Key,
            _ => Part::Value,
        }
    }

    /// [`Self::field`] as keys and indexes in `doc`: a key may hold dots
    /// (`metadata.labels.example.com/tier`), so the document decides where
    /// a segment ends; what `doc` lacks is split at dots.
    pub(crate) fn path_in(&self, doc: &Map<String, Value>) -> Vec<String> {
        let mut path = Vec::new();
        let mut rest = self.field.as_str();
        let mut at = Cursor::Map(doc);
        while !rest.is_empty() {
            let (segment, next) = match at {
                Cursor::Map(map) => {
                    // The longest key that `rest` is or starts with.
                    let key = map
                        .keys()
                        .filter(|k| {
                            rest.strip_prefix(k.as_str())
                                .is_some_and(|after| after.is_empty() || after.starts_with('.'))
                        })
                        .max_by_key(|k| k.len());
                    let Some(key) = key else { break };
                    (key.as_str(), map.get(key))
                }
                Cursor::List(list) => {
                    let index = rest.split('.').next().unwrap_or(rest);
                    (index, index.parse::<usize>().ok().and_then(|i| list.get(i)))
                }
                Cursor::Leaf => break,
            };
            path.push(segment.to_owned());
            rest = rest
                .get(segment.len()..)
                .and_then(|after| after.strip_prefix('.'))
                .unwrap_or_default();
            at = match next {
                Some(Value::Object(map)) => Cursor::Map(map),
                Some(Value::Array(list)) => Cursor::List(list),
                _ => Cursor::Leaf,
            };
        }
        if !rest.is_empty() {
            path.extend(rest.split('.').map(str::to_owned));
        }
        path
    }
}

/// Where [`Invalid::path_in`] is in the document.
enum Cursor<'a> {
    Map(&'a Map<String, Value>),
    List(&'a [Value]),
    Leaf,
}

/// The built-in kinds Backstage validates, with their spec rules.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::Display, strum::VariantArray,
)]
pub(crate) enum BuiltinKind {
    Component,
    #[strum(serialize = "API")]
    Api,
    Group,
    User,
    System,
    Domain,
    Resource,
    Location,
}

pub(crate) const BUILTIN_API_VERSIONS: [&str; 2] =
    ["backstage.io/v1alpha1", "backstage.io/v1beta1"];

impl BuiltinKind {
    pub(crate) fn name(self) -> &'static str {
        self.into()
    }

    /// The kind whose validator accepts exactly this kind and apiVersion.
    pub(crate) fn recognize(kind: &str, api_version: &str) -> Option<Self> {
        Self::VARIANTS
            .iter()
            .copied()
            .find(|k| k.name() == kind && BUILTIN_API_VERSIONS.contains(&api_version))
    }

    /// Spec fields from the kind's JSON schema: `(field, type, required)`.
    fn spec_fields(self) -> &'static [(&'static str, FieldType, bool)] {
        use FieldType::{Profile, Str, StrList};
        match self {
            BuiltinKind::Component => &[
                ("type", Str, true),
                ("lifecycle", Str, true),
                ("owner", Str, true),
                ("system", Str, false),
                ("subcomponentOf", Str, false),
                ("providesApis", StrList, false),
                ("consumesApis", StrList, false),
                ("dependsOn", StrList, false),
            ],
            BuiltinKind::Api => &[
                ("type", Str, true),
                ("lifecycle", Str, true),
                ("owner", Str, true),
                ("definition", Str, true),
                ("system", Str, false),
            ],
            BuiltinKind::Group => &[
                ("type", Str, true),
                ("children", StrList, true),
                ("profile", Profile, false),
                ("parent", Str, false),
                ("members", StrList, false),
            ],
            BuiltinKind::User => &[("memberOf", StrList, true), ("profile", Profile, false)],
            BuiltinKind::System => &[("owner", Str, true), ("domain", Str, false)],
            BuiltinKind::Domain => &[("owner", Str, true)],
            BuiltinKind::Resource => &[
                ("type", Str, true),
                ("owner", Str, true),
                ("dependsOn", StrList, false),
                ("dependencyOf", StrList, false),
                ("system", Str, false),
            ],
            BuiltinKind::Location => &[
                ("type", Str, false),
                ("target", Str, false),
                ("targets", StrList, false),
            ],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    /// `{"type": "string", "minLength": 1}`
    Str,
    /// `{"type": "array", "items": {"type": "string", "minLength": 1}}`
    StrList,
    /// An object whose known fields are non-empty strings.
    Profile,
}

/// Every failure of one document, in the order Backstage's checks meet
/// them (the first is the one Backstage reports), one per field, at most
/// `cap` kept: a file with many mistakes is fixed in one go, not one run
/// per mistake.
#[derive(Debug)]
pub(crate) struct Failures {
    pub list: Vec<Invalid>,
    /// Failures past the cap, counted only.
    pub more: usize,
    cap: usize,
}

impl Failures {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            list: Vec::new(),
            more: 0,
            cap: cap.max(1),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn add(&mut self, invalid: Invalid) {
        if self.list.len() >= self.cap {
            self.more += 1;
        } else if !self.list.iter().any(|i| i.field == invalid.field) {
            // A later check on a field already at fault says nothing new.
            self.list.push(invalid);
        }
    }

    /// The value of `result`, or nothing with its failure kept.
    fn check<T>(&mut self, result: Result<T, Invalid>) -> Option<T> {
        result.map_err(|invalid| self.add(invalid)).ok()
    }

    fn into_first(self) -> Result<(), Invalid> {
        self.list.into_iter().next().map_or(Ok(()), Err)
    }
}

/// The envelope Backstage checks as a file's documents are emitted.
pub(crate) fn check_envelope(doc: &Map<String, Value>) -> Result<(), Invalid> {
    let mut failures = Failures::new(1);
    envelope_failures(doc, &mut failures);
    failures.into_first()
}

/// Every envelope failure of `doc`.
pub(crate) fn envelope_failures(doc: &Map<String, Value>, failures: &mut Failures) {
    for field in ["apiVersion", "kind"] {
        failures.check(non_empty_string(doc, field, field, Rule::Envelope));
    }
    let metadata = match doc.get("metadata") {
        Some(Value::Object(m)) => m,
        Some(other) => {
            return failures.add(Invalid::new(
                "metadata",
                Rule::Envelope,
                format!("must be an object, found {}", kind_of(other)),
            ));
        }
        None => return failures.add(Invalid::new("metadata", Rule::Envelope, "is required")),
    };
    failures.check(non_empty_string(
        metadata,
        "name",
        "metadata.name",
        Rule::Envelope,
    ));
    if metadata.contains_key("namespace") {
        failures.check(non_empty_string(
            metadata,
            "namespace",
            "metadata.namespace",
            Rule::Envelope,
        ));
    }
}

/// The per-entity policies and the kind validation; the first failure is
/// the one Backstage reports. Returns the built-in kind when one applies.
#[cfg(test)]
pub(crate) fn validate_entity(doc: &Map<String, Value>) -> Result<Option<BuiltinKind>, Invalid> {
    let mut failures = Failures::new(1);
    let builtin = entity_failures(doc, &mut failures);
    failures.into_first().map(|()| builtin)
}

/// Every failure of the per-entity policies and the kind validation; the
/// entity is valid exactly when none is found (the same verdict as
/// stopping at the first, as Backstage does). Returns the built-in kind
/// when one applies.
pub(crate) fn entity_failures(
    doc: &Map<String, Value>,
    failures: &mut Failures,
) -> Option<BuiltinKind> {
    envelope_failures(doc, failures);
    check_schema(doc, failures);
    for key in doc.keys() {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "spec") {
            failures.add(Invalid::new(
                key.clone(),
                Rule::NoForeignRootFields,
                format!(
                    "unknown field {key} (only apiVersion, kind, metadata and spec may be written; Backstage computes relations and status itself)"
                ),
            ));
        }
    }
    check_field_formats(doc, failures);
    check_kind(doc, failures)
}

fn non_empty_string<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    field: &str,
    rule: Rule,
) -> Result<&'a str, Invalid> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(Invalid::new(field, rule, "must not be empty")),
        Some(other) => Err(Invalid::new(
            field,
            rule,
            format!("must be a string, found {}", kind_of(other)),
        )),
        None => Err(Invalid::new(field, rule, "is required")),
    }
}

fn type_error(field: String, expected: &str, found: &Value) -> Invalid {
    Invalid::new(
        field,
        Rule::Schema,
        format!("must be {expected}, found {}", kind_of(found)),
    )
}

/// `Entity.schema.json` with `EntityMeta.schema.json`.
fn check_schema(doc: &Map<String, Value>, failures: &mut Failures) {
    check_root_schema(doc, failures);
    let Some(Value::Object(metadata)) = doc.get("metadata") else {
        return;
    };
    for (key, value) in metadata {
        let field = format!("metadata.{key}");
        match key.as_str() {
            "uid" | "etag" | "name" | "namespace" => {
                failures.check(non_empty_string(metadata, key, &field, Rule::Schema));
            }
            "description" if !value.is_string() => {
                failures.add(type_error(field, "a string", value));
            }
            "generation" if value.as_i64().is_none_or(|g| g < 1) => {
                failures.add(type_error(field, "an integer of at least 1", value));
            }
            "labels" | "annotations" => check_string_map_schema(&field, value, failures),
            "tags" => check_tags_schema(&field, value, failures),
            "links" => check_links_schema(&field, value, failures),
            _ => {}
        }
    }
}

/// The root fields an entity may have, with their JSON types.
fn check_root_schema(doc: &Map<String, Value>, failures: &mut Failures) {
    for (key, value) in doc {
        match key.as_str() {
            "apiVersion" | "kind" | "metadata" => {}
            "spec" | "status" if !value.is_object() => {
                failures.add(type_error(key.clone(), "an object", value));
            }
            "relations" if !value.is_array() => {
                failures.add(type_error(key.clone(), "a list", value));
            }
            "spec" | "status" | "relations" => {}
            other => {
                failures.add(Invalid::new(
                    other,
                    Rule::Schema,
                    format!(
                        "unknown root field {other}; an entity has only apiVersion, kind, metadata and spec"
                    ),
                ));
            }
        }
    }
}

/// `metadata.labels` / `metadata.annotations`: an object of strings.
fn check_string_map_schema(field: &str, value: &Value, failures: &mut Failures) {
    let Value::Object(map) = value else {
        return failures.add(type_error(field.to_owned(), "an object", value));
    };
    for (k, v) in map {
        if !v.is_string() {
            failures.add(type_error(format!("{field}.{k}"), "a string", v));
        }
    }
}

/// `metadata.tags`: a list of non-empty strings.
fn check_tags_schema(field: &str, value: &Value, failures: &mut Failures) {
    let Value::Array(tags) = value else {
        return failures.add(type_error(field.to_owned(), "a list", value));
    };
    for (i, tag) in tags.iter().enumerate() {
        match tag {
            Value::String(s) if !s.is_empty() => {}
            other => failures.add(type_error(
                format!("{field}.{i}"),
                "a non-empty string",
                other,
            )),
        }
    }
}

/// `metadata.links`: objects with a `url`, and non-empty optional fields.
fn check_links_schema(field: &str, value: &Value, failures: &mut Failures) {
    let Value::Array(links) = value else {
        return failures.add(type_error(field.to_owned(), "a list", value));
    };
    for (i, link) in links.iter().enumerate() {
        let Value::Object(link) = link else {
            failures.add(type_error(format!("{field}.{i}"), "an object", link));
            continue;
        };
        failures.check(non_empty_string(
            link,
            "url",
            &format!("{field}.{i}.url"),
            Rule::Schema,
        ));
        for optional in ["title", "icon", "type"] {
            if link.contains_key(optional) {
                failures.check(non_empty_string(
                    link,
                    optional,
                    &format!("{field}.{i}.{optional}"),
                    Rule::Schema,
                ));
            }
        }
    }
}

/// `value` is a string that `ok` accepts, else a format failure for `rule`.
fn require(failures: &mut Failures, field: &str, value: &Value, rule: Rule, ok: fn(&str) -> bool) {
    match value.as_str() {
        Some(s) if ok(s) => {}
        _ => failures.add(Invalid::format(field, rule, value)),
    }
}

/// `FieldFormatEntityPolicy` with the default validators.
fn check_field_formats(doc: &Map<String, Value>, failures: &mut Failures) {
    let null = Value::Null;
    require(
        failures,
        "apiVersion",
        doc.get("apiVersion").unwrap_or(&null),
        Rule::ApiVersion,
        is_valid_api_version,
    );
    require(
        failures,
        "kind",
        doc.get("kind").unwrap_or(&null),
        Rule::Kind,
        is_valid_kind,
    );
    let Some(Value::Object(metadata)) = doc.get("metadata") else {
        return;
    };
    require(
        failures,
        "metadata.name",
        metadata.get("name").unwrap_or(&null),
        Rule::EntityName,
        is_valid_object_name,
    );
    if let Some(namespace) = metadata.get("namespace") {
        require(
            failures,
            "metadata.namespace",
            namespace,
            Rule::Namespace,
            is_valid_dns_label,
        );
    }
    if let Some(Value::Object(labels)) = metadata.get("labels") {
        check_map_formats(
            failures,
            "labels",
            labels,
            (Rule::LabelKey, Rule::LabelValue),
            is_valid_label_value,
        );
    }
    if let Some(Value::Object(annotations)) = metadata.get("annotations") {
        check_map_formats(
            failures,
            "annotations",
            annotations,
            (Rule::AnnotationKey, Rule::AnnotationValue),
            |_| true,
        );
    }
    if let Some(Value::Array(tags)) = metadata.get("tags") {
        for (i, tag) in tags.iter().enumerate() {
            require(
                failures,
                &format!("metadata.tags.{i}"),
                tag,
                Rule::Tag,
                is_valid_tag,
            );
        }
    }
    if let Some(Value::Array(links)) = metadata.get("links") {
        check_link_formats(links, failures);
    }
}

/// `metadata.<name>` keys (label-key format) and values (`value_ok`).
fn check_map_formats(
    failures: &mut Failures,
    name: &str,
    map: &Map<String, Value>,
    (key_rule, value_rule): (Rule, Rule),
    value_ok: fn(&str) -> bool,
) {
    for (k, v) in map {
        let field = format!("metadata.{name}.{k}");
        require(
            failures,
            &field,
            &Value::String(k.clone()),
            key_rule,
            is_valid_label_key,
        );
        require(failures, &field, v, value_rule, value_ok);
    }
}

/// `metadata.links`: a URL, a non-blank title and an entity-name icon.
fn check_link_formats(links: &[Value], failures: &mut Failures) {
    let null = Value::Null;
    for (i, link) in links.iter().enumerate() {
        let link = link.as_object();
        let get = |k: &str| link.and_then(|l| l.get(k));
        require(
            failures,
            &format!("metadata.links.{i}.url"),
            get("url").unwrap_or(&null),
            Rule::Url,
            is_valid_url,
        );
        if let Some(title) = get("title") {
            require(
                failures,
                &format!("metadata.links.{i}.title"),
                title,
                Rule::NonEmptyString,
                |s| !s.trim().is_empty(),
            );
        }
        if let Some(icon) = get("icon") {
            require(
                failures,
                &format!("metadata.links.{i}.icon"),
                icon,
                Rule::EntityName,
                is_valid_object_name,
            );
        }
    }
}

/// BuiltinKindsEntityProcessor's `validateEntityKind`.
fn check_kind(doc: &Map<String, Value>, failures: &mut Failures) -> Option<BuiltinKind> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(builtin) = BuiltinKind::recognize(kind, api_version) else {
        if let Some(near) = BuiltinKind::VARIANTS
            .iter()
            .find(|k| k.name().eq_ignore_ascii_case(kind))
        {
            failures.add(Invalid::new(
                "kind",
                Rule::UnrecognizedKind,
                format!(
                    "no processor recognizes kind {kind} with apiVersion {api_version}; the built-in kind is spelled {} and needs apiVersion {}",
                    near.name(),
                    BUILTIN_API_VERSIONS.join(" or ")
                ),
            ));
        }
        return None;
    };
    let spec = match doc.get("spec") {
        Some(Value::Object(spec)) => spec,
        _ => {
            failures.add(Invalid::new(
                "spec",
                Rule::KindSchema,
                format!("is required for kind {kind}"),
            ));
            return Some(builtin);
        }
    };
    for (name, field_type, required) in builtin.spec_fields() {
        let field = format!("spec.{name}");
        let Some(value) = spec.get(*name) else {
            if *required {
                failures.add(Invalid::new(
                    field,
                    Rule::KindSchema,
                    format!("is required for kind {kind} ({})", field_type.describe()),
                ));
            }
            continue;
        };
        field_type.check(&field, value, failures);
    }
    Some(builtin)
}

impl FieldType {
    fn describe(self) -> &'static str {
        match self {
            FieldType::Str => "a non-empty string",
            FieldType::StrList => "a list of non-empty strings, possibly empty",
            FieldType::Profile => "an object",
        }
    }

    fn check(self, field: &str, value: &Value, failures: &mut Failures) {
        let bad = |v: &Value, what: &str| {
            Invalid::new(
                field,
                Rule::KindSchema,
                format!("must be {what}, found {}", describe_found(v)),
            )
        };
        match (self, value) {
            (FieldType::Str, Value::String(s)) if !s.is_empty() => {}
            (FieldType::StrList, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if item.as_str().is_none_or(str::is_empty) {
                        failures.add(Invalid::new(
                            format!("{field}.{i}"),
                            Rule::KindSchema,
                            format!("must be a non-empty string, found {}", describe_found(item)),
                        ));
                    }
                }
            }
            (FieldType::Profile, Value::Object(profile)) => {
                for (k, v) in profile {
                    if k != "externalHandles" && v.as_str().is_none_or(str::is_empty) {
                        failures.add(Invalid::new(
                            format!("{field}.{k}"),
                            Rule::KindSchema,
                            format!("must be a non-empty string, found {}", describe_found(v)),
                        ));
                    }
                }
            }
            (_, v) => failures.add(bad(v, self.describe())),
        }
    }
}

fn describe_found(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "an empty string".into(),
        other => kind_of(other).into(),
    }
}

// The validator functions of `KubernetesValidatorFunctions` and
// `CommonValidatorFunctions`, without regexes (all their patterns are ASCII).

/// `^[a-z0-9]+(?:-+[a-z0-9]+)*$`, 1-63.
pub(crate) fn is_valid_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn is_valid_dns_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len()) && s.split('.').all(is_valid_dns_label)
}

fn prefix_and_or_suffix(s: &str, prefix: fn(&str) -> bool, suffix: fn(&str) -> bool) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [only] => suffix(only),
        [p, n] => prefix(p) && suffix(n),
        _ => false,
    }
}

pub(crate) fn is_valid_api_version(s: &str) -> bool {
    prefix_and_or_suffix(s, is_valid_dns_subdomain, |n| {
        (1..=63).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// `^[a-zA-Z][a-z0-9A-Z]*$`, 1-63.
pub(crate) fn is_valid_kind(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`, 1-63.
pub(crate) fn is_valid_object_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Label and annotation keys: `[dns-subdomain/]name`.
pub(crate) fn is_valid_label_key(s: &str) -> bool {
    prefix_and_or_suffix(s, is_valid_dns_subdomain, is_valid_object_name)
}

pub(crate) fn is_valid_label_value(s: &str) -> bool {
    s.is_empty() || is_valid_object_name(s)
}

/// `^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$`, 1-63.
pub(crate) fn is_valid_tag(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b':' | b'+' | b'#' | b'-')
        })
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// `new URL(value)` succeeds (WHATWG parsing, as the url crate does).
pub(crate) fn is_valid_url(s: &str) -> bool {
    url::Url::parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn rules_and_kinds_are_named_as_backstage_names_them() {
        let rules = [
            (Rule::Envelope, "envelope"),
            (Rule::Schema, "schema"),
            (Rule::NoForeignRootFields, "noForeignRootFields"),
            (Rule::ApiVersion, "isValidApiVersion"),
            (Rule::Kind, "isValidKind"),
            (Rule::EntityName, "isValidEntityName"),
            (Rule::Namespace, "isValidNamespace"),
            (Rule::LabelKey, "isValidLabelKey"),
            (Rule::LabelValue, "isValidLabelValue"),
            (Rule::AnnotationKey, "isValidAnnotationKey"),
            (Rule::AnnotationValue, "isValidAnnotationValue"),
            (Rule::Tag, "isValidTag"),
            (Rule::Url, "isValidUrl"),
            (Rule::NonEmptyString, "isValidString"),
            (Rule::KindSchema, "kindSchema"),
            (Rule::UnrecognizedKind, "builtinKind"),
            (Rule::EntityRef, "entityRef"),
        ];
        for (rule, name) in rules {
            assert_eq!(rule.name(), name);
        }
        let kinds: Vec<String> = BuiltinKind::VARIANTS
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "Component",
                "API",
                "Group",
                "User",
                "System",
                "Domain",
                "Resource",
                "Location"
            ]
        );
        assert_eq!(
            BuiltinKind::recognize("API", "backstage.io/v1alpha1"),
            Some(BuiltinKind::Api)
        );
    }

    fn component() -> Value {
        json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "svc"},
            "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}
        })
    }

    /// Sets a dotted path in `value` (creating objects) or removes it for `None`.
    fn with(mut value: Value, path: &str, new: Option<Value>) -> Value {
        let parts: Vec<&str> = path.split('.').collect();
        let mut node = &mut value;
        for part in &parts[..parts.len() - 1] {
            node = node
                .as_object_mut()
                .unwrap()
                .entry(part.to_string())
                .or_insert_with(|| json!({}));
        }
        let map = node.as_object_mut().unwrap();
        let last = parts[parts.len() - 1].to_string();
        match new {
            Some(v) => {
                map.insert(last, v);
            }
            None => {
                map.remove(&last);
            }
        }
        value
    }

    /// `(case, path, value, Ok(()) or Err((field, rule)))`: Backstage's
    /// outcome for a component with that one change.
    type Case = (
        &'static str,
        &'static str,
        Option<Value>,
        Result<(), (&'static str, Rule)>,
    );

    #[test]
    fn the_rules_table() {
        use Rule::*;
        let ok = Ok(());
        let cases: Vec<Case> = vec![
            ("valid component", "metadata.name", Some(json!("svc")), ok),
            (
                "name with dots, dashes, underscores",
                "metadata.name",
                Some(json!("a-b_c.D9")),
                ok,
            ),
            (
                "name of 63 characters",
                "metadata.name",
                Some(json!("a".repeat(63))),
                ok,
            ),
            (
                "name of 64 characters",
                "metadata.name",
                Some(json!("a".repeat(64))),
                Err(("metadata.name", EntityName)),
            ),
            (
                "name with space",
                "metadata.name",
                Some(json!("my service")),
                Err(("metadata.name", EntityName)),
            ),
            (
                "name ending in dash",
                "metadata.name",
                Some(json!("svc-")),
                Err(("metadata.name", EntityName)),
            ),
            (
                "name starting with dot",
                "metadata.name",
                Some(json!(".svc")),
                Err(("metadata.name", EntityName)),
            ),
            (
                "name with colon",
                "metadata.name",
                Some(json!("a:b")),
                Err(("metadata.name", EntityName)),
            ),
            (
                "name with unicode",
                "metadata.name",
                Some(json!("café")),
                Err(("metadata.name", EntityName)),
            ),
            (
                "name a number",
                "metadata.name",
                Some(json!(42)),
                Err(("metadata.name", Envelope)),
            ),
            (
                "name missing",
                "metadata.name",
                None,
                Err(("metadata.name", Envelope)),
            ),
            (
                "namespace ok",
                "metadata.namespace",
                Some(json!("team-a--x")),
                ok,
            ),
            (
                "namespace upper case",
                "metadata.namespace",
                Some(json!("Team")),
                Err(("metadata.namespace", Namespace)),
            ),
            (
                "namespace underscore",
                "metadata.namespace",
                Some(json!("a_b")),
                Err(("metadata.namespace", Namespace)),
            ),
            (
                "namespace empty",
                "metadata.namespace",
                Some(json!("")),
                Err(("metadata.namespace", Envelope)),
            ),
            (
                "apiVersion without prefix",
                "apiVersion",
                Some(json!("v1")),
                Err(("kind", UnrecognizedKind)),
            ),
            (
                "apiVersion two slashes",
                "apiVersion",
                Some(json!("a/b/c")),
                Err(("apiVersion", ApiVersion)),
            ),
            (
                "apiVersion bad prefix",
                "apiVersion",
                Some(json!("Backstage.io/v1alpha1")),
                Err(("apiVersion", ApiVersion)),
            ),
            (
                "apiVersion v1beta1",
                "apiVersion",
                Some(json!("backstage.io/v1beta1")),
                ok,
            ),
            (
                "apiVersion foreign",
                "apiVersion",
                Some(json!("example.com/v1")),
                Err(("kind", UnrecognizedKind)),
            ),
            (
                "kind lower case",
                "kind",
                Some(json!("component")),
                Err(("kind", UnrecognizedKind)),
            ),
            (
                "kind with dash",
                "kind",
                Some(json!("My-Kind")),
                Err(("kind", Kind)),
            ),
            (
                "kind starting with digit",
                "kind",
                Some(json!("1Kind")),
                Err(("kind", Kind)),
            ),
            (
                "unknown kind passes generic rules",
                "kind",
                Some(json!("Template")),
                ok,
            ),
            (
                "label ok",
                "metadata.labels",
                Some(json!({"example.com/tier": "gold", "plain": ""})),
                ok,
            ),
            (
                "label value bad",
                "metadata.labels",
                Some(json!({"tier": "gold!"})),
                Err(("metadata.labels.tier", LabelValue)),
            ),
            (
                "label key bad prefix",
                "metadata.labels",
                Some(json!({"Example.com/tier": "x"})),
                Err(("metadata.labels.Example.com/tier", LabelKey)),
            ),
            (
                "label value number",
                "metadata.labels",
                Some(json!({"n": 1})),
                Err(("metadata.labels.n", Schema)),
            ),
            (
                "annotation key two slashes",
                "metadata.annotations",
                Some(json!({"a/b/c": "x"})),
                Err(("metadata.annotations.a/b/c", AnnotationKey)),
            ),
            (
                "annotation value free text",
                "metadata.annotations",
                Some(json!({"example.com/x": "any text at all: ok!"})),
                ok,
            ),
            (
                "annotation value number",
                "metadata.annotations",
                Some(json!({"example.com/port": 8080})),
                Err(("metadata.annotations.example.com/port", Schema)),
            ),
            (
                "tags ok",
                "metadata.tags",
                Some(json!(["java", "c++", "c#", "a:b", "x-y"])),
                ok,
            ),
            (
                "tag upper case",
                "metadata.tags",
                Some(json!(["Java"])),
                Err(("metadata.tags.0", Tag)),
            ),
            (
                "tag double dash",
                "metadata.tags",
                Some(json!(["ok", "a--b"])),
                Err(("metadata.tags.1", Tag)),
            ),
            (
                "tag underscore",
                "metadata.tags",
                Some(json!(["a_b"])),
                Err(("metadata.tags.0", Tag)),
            ),
            (
                "tag empty",
                "metadata.tags",
                Some(json!([""])),
                Err(("metadata.tags.0", Schema)),
            ),
            (
                "tags not a list",
                "metadata.tags",
                Some(json!("java")),
                Err(("metadata.tags", Schema)),
            ),
            (
                "link ok",
                "metadata.links",
                Some(json!([{"url": "https://example.com", "title": "Docs", "icon": "docs"}])),
                ok,
            ),
            (
                "link url relative",
                "metadata.links",
                Some(json!([{"url": "/docs"}])),
                Err(("metadata.links.0.url", Url)),
            ),
            (
                "link url missing",
                "metadata.links",
                Some(json!([{"title": "x"}])),
                Err(("metadata.links.0.url", Schema)),
            ),
            (
                "link title blank",
                "metadata.links",
                Some(json!([{"url": "https://e.com", "title": "  "}])),
                Err(("metadata.links.0.title", NonEmptyString)),
            ),
            (
                "description not string",
                "metadata.description",
                Some(json!(["x"])),
                Err(("metadata.description", Schema)),
            ),
            (
                "foreign root field",
                "foo",
                Some(json!(1)),
                Err(("foo", Schema)),
            ),
            (
                "relations on input",
                "relations",
                Some(json!([])),
                Err(("relations", NoForeignRootFields)),
            ),
            (
                "status on input",
                "status",
                Some(json!({})),
                Err(("status", NoForeignRootFields)),
            ),
            (
                "spec not an object",
                "spec",
                Some(json!("x")),
                Err(("spec", Schema)),
            ),
            ("spec missing", "spec", None, Err(("spec", KindSchema))),
            (
                "spec.type missing",
                "spec.type",
                None,
                Err(("spec.type", KindSchema)),
            ),
            (
                "spec.lifecycle missing",
                "spec.lifecycle",
                None,
                Err(("spec.lifecycle", KindSchema)),
            ),
            (
                "spec.owner missing",
                "spec.owner",
                None,
                Err(("spec.owner", KindSchema)),
            ),
            (
                "spec.owner empty",
                "spec.owner",
                Some(json!("")),
                Err(("spec.owner", KindSchema)),
            ),
            (
                "spec.owner a number",
                "spec.owner",
                Some(json!(5)),
                Err(("spec.owner", KindSchema)),
            ),
            (
                "spec.system null",
                "spec.system",
                Some(Value::Null),
                Err(("spec.system", KindSchema)),
            ),
            (
                "spec.dependsOn string",
                "spec.dependsOn",
                Some(json!("x")),
                Err(("spec.dependsOn", KindSchema)),
            ),
            (
                "spec.providesApis item empty",
                "spec.providesApis",
                Some(json!(["a", ""])),
                Err(("spec.providesApis.1", KindSchema)),
            ),
            (
                "extra spec fields allowed",
                "spec.custom",
                Some(json!({"any": 1})),
                ok,
            ),
            (
                "extra metadata fields allowed",
                "metadata.custom",
                Some(json!({"any": 1})),
                ok,
            ),
        ];
        for (case, path, value, expected) in cases {
            let entity = doc(with(component(), path, value));
            let got = validate_entity(&entity)
                .map(|_| ())
                .map_err(|e| (e.field.clone(), e.rule));
            let expected = expected.map_err(|(f, r)| (f.to_owned(), r));
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn kind_specific_required_fields() {
        let base = |kind: &str, spec: Value| {
            doc(
                json!({"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}),
            )
        };
        let cases: Vec<(&str, Value, Result<(), &str>)> = vec![
            (
                "API",
                json!({"type": "openapi", "lifecycle": "p", "owner": "o", "definition": "d"}),
                Ok(()),
            ),
            (
                "API",
                json!({"type": "openapi", "lifecycle": "p", "owner": "o"}),
                Err("spec.definition"),
            ),
            ("Group", json!({"type": "team", "children": []}), Ok(())),
            ("Group", json!({"type": "team"}), Err("spec.children")),
            ("Group", json!({"children": []}), Err("spec.type")),
            (
                "Group",
                json!({"type": "team", "children": [], "profile": {"email": ""}}),
                Err("spec.profile.email"),
            ),
            ("User", json!({"memberOf": []}), Ok(())),
            ("User", json!({}), Err("spec.memberOf")),
            (
                "User",
                json!({"memberOf": [], "profile": {"displayName": "J", "externalHandles": {"github": "j"}}}),
                Ok(()),
            ),
            ("System", json!({"owner": "o"}), Ok(())),
            ("System", json!({"domain": "d"}), Err("spec.owner")),
            ("Domain", json!({"owner": "o"}), Ok(())),
            ("Domain", json!({}), Err("spec.owner")),
            ("Resource", json!({"type": "db", "owner": "o"}), Ok(())),
            ("Resource", json!({"owner": "o"}), Err("spec.type")),
            ("Location", json!({}), Ok(())),
            (
                "Location",
                json!({"type": "url", "targets": ["./a.yaml"]}),
                Ok(()),
            ),
            ("Location", json!({"target": 1}), Err("spec.target")),
        ];
        for (kind, spec, expected) in cases {
            let got = validate_entity(&base(kind, spec.clone()))
                .map(|_| ())
                .map_err(|e| e.field);
            assert_eq!(got, expected.map_err(str::to_owned), "{kind} {spec}");
        }
    }

    #[test]
    fn envelope_failures_are_told_apart() {
        for (value, field) in [
            (
                json!({"kind": "Component", "metadata": {"name": "x"}}),
                "apiVersion",
            ),
            (
                json!({"apiVersion": "a/b", "metadata": {"name": "x"}}),
                "kind",
            ),
            (json!({"apiVersion": "a/b", "kind": "K"}), "metadata"),
            (
                json!({"apiVersion": "a/b", "kind": "K", "metadata": []}),
                "metadata",
            ),
            (
                json!({"apiVersion": "a/b", "kind": "", "metadata": {"name": "x"}}),
                "kind",
            ),
        ] {
            let err = check_envelope(&doc(value)).unwrap_err();
            assert_eq!((err.field.as_str(), err.rule), (field, Rule::Envelope));
        }
    }

    #[test]
    fn every_failure_is_collected_and_the_first_is_backstages() {
        let mut entity = with(component(), "metadata.name", Some(json!("Bad Name")));
        entity = with(entity, "metadata.tags", Some(json!(["ok", "Bad", ""])));
        entity = with(
            entity,
            "metadata.labels",
            Some(json!({"example.com/tier": "x!"})),
        );
        entity = with(entity, "spec.owner", None);
        let failing = doc(entity);
        let mut failures = Failures::new(100);
        entity_failures(&failing, &mut failures);
        let fields: Vec<&str> = failures.list.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.tags.2",
                "metadata.name",
                "metadata.labels.example.com/tier",
                "metadata.tags.1",
                "spec.owner"
            ]
        );
        assert_eq!(validate_entity(&failing).unwrap_err(), failures.list[0]);
        let paths: Vec<Vec<String>> = failures.list.iter().map(|f| f.path_in(&failing)).collect();
        assert_eq!(paths[0], ["metadata", "tags", "2"]);
        assert_eq!(paths[2], ["metadata", "labels", "example.com/tier"]);
        assert_eq!(paths[4], ["spec", "owner"]);
        assert_eq!(failures.list[2].part(), Part::Value);

        // Bounded: past the cap failures are only counted.
        let tags: Vec<String> = (0..300).map(|i| format!("Bad{i}")).collect();
        let many = doc(with(component(), "metadata.tags", Some(json!(tags))));
        let mut failures = Failures::new(100);
        entity_failures(&many, &mut failures);
        assert_eq!((failures.list.len(), failures.more), (100, 200));
    }

    #[test]
    fn messages_name_field_rule_and_value() {
        let entity = doc(with(component(), "metadata.name", Some(json!("Bad Name!"))));
        let message = validate_entity(&entity).unwrap_err().to_string();
        assert!(
            message
                .starts_with("metadata.name: expected a string that is sequences of [a-zA-Z0-9]"),
            "{message}"
        );
        assert!(message.contains("\"Bad Name!\""), "{message}");
        assert!(message.ends_with("[rule isValidEntityName]"), "{message}");
    }
}
