//! Misspelled keys: "did you mean" suggestions for unknown keys of our
//! sections, and warnings for misspellings of the section names themselves
//! (`catalg:`, `catalog.provider:`), which would otherwise be carried along
//! silently as some other Backstage section and mean "discover everything,
//! anonymously, with the default schedule".

use serde_json::Value;

/// Every key name our sections know, at any depth: the candidates for a
/// suggestion. A suggestion only has to name a real key, not the one
/// valid at that exact place, so one list serves every section.
pub(super) const KNOWN_KEYS: &[&str] = &[
    // integrations.bitbucketServer / bitbucketCloud
    "host",
    "apiBaseUrl",
    "token",
    "username",
    "password",
    "appPassword",
    "clientId",
    "clientSecret",
    "tokenUrl",
    "webhookSecret",
    "allowUnsignedWebhooks",
    "rateLimit",
    "requestsPerSecond",
    "burst",
    "share",
    "perHour",
    "maxConcurrentRequests",
    "connectTimeout",
    "requestTimeout",
    "maxRetries",
    // catalog.providers.bitbucketServer / bitbucketCloud
    "workspace",
    "catalogPath",
    "filters",
    "projectKey",
    "repoSlug",
    "skipArchivedRepos",
    "branch",
    "pagelen",
    "schedule",
    "listingSchedule",
    "frequency",
    "timeout",
    "initialDelay",
    "concurrency",
    "deletionThreshold",
    "targetScope",
    "webhooks",
    "url",
    "withoutCatalogFile",
    "generate",
    "lifecycle",
    "owner",
    "pullRequests",
    "checks",
    // catalog
    "providers",
    "locations",
    "rules",
    "allow",
    "target",
    "type",
    "processing",
    "maxFileSize",
    "maxExpandedSize",
    "maxLocationDepth",
    "maxLocationTargets",
    "maxLocationFiles",
    "changes",
    "retainedRemovals",
    "locationSchedule",
    "maxRegisteredLocations",
    "registrationsPerMinute",
    // backend
    "listen",
    "port",
    "maxConnections",
    "headerTimeout",
    "idleTimeout",
    "database",
    "client",
    "connection",
    "auth",
    "externalAccess",
    "dangerouslyDisableDefaultAuthPolicy",
    "options",
    "subject",
    "accessRestrictions",
    "plugin",
    "permission",
    "permissionAttribute",
    "apiRateLimit",
    "bitbucketReads",
    "perCaller",
    "overall",
    "perMinute",
    "deletions",
    "queryBudget",
    "cpu",
    "wallClock",
    "trustedProxies",
    "reload",
    "watch",
    // catalog.rules / locations and schedules, read by hand
    "exact",
    "pattern",
    "scope",
];

/// Keys directly under `catalog`: ours and those of Backstage's catalog
/// backend (a shared `app-config.yaml` carries them).
const CATALOG_KEYS: &[&str] = &[
    "providers",
    "locations",
    "rules",
    "processing",
    "changes",
    "locationSchedule",
    "maxRegisteredLocations",
    "registrationsPerMinute",
    // Backstage's own.
    "readonly",
    "import",
    "processingInterval",
    "orphanStrategy",
    "orphanProviderStrategy",
    "stitchingStrategy",
    "processors",
    "useUrlReadersSearch",
    "disableRelationsCompatibility",
];

/// Section names whose near misses are warned about where other
/// Backstage keys are allowed (top level, `integrations`,
/// `catalog.providers`, `backend`).
const TOP_LEVEL_SECTIONS: &[&str] = &["backend", "integrations", "catalog"];
const BITBUCKET_SECTIONS: &[&str] = &["bitbucketServer", "bitbucketCloud"];
const BACKEND_SECTIONS: &[&str] = &[
    "listen",
    "database",
    "auth",
    "apiRateLimit",
    "queryBudget",
    "trustedProxies",
    "reload",
];

/// A key around our sections that is probably a typo.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Misspelling {
    /// Dotted path.
    pub key: String,
    pub message: String,
}

/// Near misses of our section names (top level, under `integrations`,
/// `catalog.providers` and `backend`) and unknown keys directly under
/// `catalog`, in the merged tree.
pub(super) fn misspelled_sections(root: &Value) -> Vec<Misspelling> {
    let at = |path: &str| {
        path.split('.')
            .filter(|p| !p.is_empty())
            .try_fold(root, |node, part| node.get(part))
            .and_then(Value::as_object)
    };
    let mut found = Vec::new();
    for (base, known) in [
        ("", TOP_LEVEL_SECTIONS),
        ("integrations", BITBUCKET_SECTIONS),
        ("catalog.providers", BITBUCKET_SECTIONS),
        ("backend", BACKEND_SECTIONS),
    ] {
        for key in at(base).into_iter().flat_map(|map| map.keys()) {
            if let Some(meant) = closest(key, known) {
                found.push(Misspelling {
                    key: super::Ctx::join(base, key),
                    message: format!("unknown section is ignored (did you mean `{meant}`?)"),
                });
            }
        }
    }
    for key in at("catalog").into_iter().flat_map(|map| map.keys()) {
        if !CATALOG_KEYS.contains(&key.as_str()) {
            found.push(Misspelling {
                key: super::Ctx::join("catalog", key),
                message: with_suggestion(
                    "unknown key is ignored; check its spelling",
                    key,
                    CATALOG_KEYS,
                ),
            });
        }
    }
    found
}

/// The key of `known` that `key` most likely misspells, if any is close.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = key.to_ascii_lowercase();
    known
        .iter()
        .filter(|candidate| **candidate != key)
        .map(|candidate| {
            let distance = strsim::damerau_levenshtein(&lower, &candidate.to_ascii_lowercase());
            (distance, *candidate)
        })
        // Short keys allow one slip, longer ones two; never more than a
        // third of the key, so `app` is not taken for `auth`.
        .filter(|(distance, candidate)| *distance <= 2 && distance * 3 <= candidate.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// `message`, with "(did you mean `token`?)" when a key of `known` is
/// close to `key`.
pub(super) fn with_suggestion(message: &str, key: &str, known: &[&str]) -> String {
    match closest(key, known) {
        Some(meant) => format!("{message} (did you mean `{meant}`?)"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        access, backend, cloud, generated, http, integration, listen, locations, processing,
        provider, rules, schedule, server,
    };
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    /// The field names a derived `Deserialize` struct asks for.
    fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        struct Probe<'a>(&'a mut &'static [&'static str]);
        impl<'de> Deserializer<'de> for Probe<'_> {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(de::Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        let mut names: &'static [&'static str] = &[];
        let _ = T::deserialize(Probe(&mut names));
        names
    }

    /// Every key our sections warn about when unknown, from the types
    /// (and the few lists read by hand): each must be a candidate.
    #[test]
    fn every_key_of_our_sections_is_a_suggestion_candidate() {
        let (lists, _) = probed();
        assert_candidates(&lists);
    }

    /// Whoever adds a section struct to `config/` learns here that its keys
    /// need to be candidates: every struct that derives `Deserialize` (or
    /// comes from `provider_entry!`/`integration_entry!`) with named
    /// fields is probed above, or is listed with the reason it is not.
    #[test]
    fn every_section_struct_of_the_config_is_probed() {
        /// The database section's own structs: serde's error for an
        /// unknown key there lists the expected ones, and its top-level
        /// keys are read by their path (`client`, `connection`).
        const NOT_PROBED: [&str; 3] = ["RawDatabase", "RawObject", "RawSsl"];
        let (_, names) = probed();
        let derived = regex::Regex::new(
            r"#\[derive\(([^)]*)\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?struct\s+(\w+)\s*\{",
        )
        .expect("regex");
        let generated =
            regex::Regex::new(r"(?:provider|integration)_entry!\((\w+)\s*\{").expect("regex");
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/src/config");
        let (mut unprobed, mut found) = (Vec::new(), Vec::new());
        for file in std::fs::read_dir(folder).expect("src/config") {
            let path = file.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("source");
            let structs = derived
                .captures_iter(&text)
                .filter(|c| c[1].contains("Deserialize"))
                .map(|c| c[2].to_owned())
                .chain(generated.captures_iter(&text).map(|c| c[1].to_owned()));
            for name in structs {
                if !names.contains(&name.as_str()) && !NOT_PROBED.contains(&name.as_str()) {
                    unprobed.push(format!("{name} ({})", path.display()));
                }
                found.push(name);
            }
        }
        // The scan sees what it checks: every probed struct among them.
        let unseen: Vec<&&str> = names
            .iter()
            .filter(|n| !found.iter().any(|f| f == *n))
            .collect();
        assert!(unseen.is_empty(), "the scan missed {unseen:?}");
        assert!(
            unprobed.is_empty(),
            "probe {unprobed:?} in every_key_of_our_sections_is_a_suggestion_candidate"
        );
    }

    /// The structs whose keys the candidates must cover, probed, with the
    /// short names of their types.
    fn probed() -> (Vec<&'static [&'static str]>, Vec<&'static str>) {
        let mut names = Vec::new();
        let mut probe = |fields: &'static [&'static str], name: &'static str| {
            names.push(name.rsplit("::").next().unwrap_or(name));
            fields
        };
        macro_rules! p {
            ($type:ty) => {
                probe(fields::<$type>(), std::any::type_name::<$type>())
            };
        }
        let lists: Vec<&'static [&'static str]> = vec![
            p!(listen::raw::Listen),
            p!(integration::raw::ServerIntegration),
            p!(integration::raw::CloudIntegration),
            p!(http::raw::RateLimit),
            p!(server::raw::ServerProvider),
            p!(server::raw::Filters),
            p!(cloud::raw::CloudProvider),
            p!(cloud::raw::CloudFilters),
            p!(provider::raw::Webhooks),
            p!(provider::raw::PullRequests),
            p!(generated::raw::WithoutCatalogFile),
            p!(generated::raw::Generate),
            p!(processing::Processing),
            p!(access::raw::ExternalAccessEntry),
            p!(access::raw::StaticAccessOptions),
            p!(access::raw::AccessRestriction),
            p!(backend::raw::ApiRateLimit),
            p!(backend::raw::BitbucketReads),
            p!(backend::raw::Pace),
            p!(backend::raw::QueryBudget),
            p!(schedule::RawSchedule),
            p!(schedule::RawListingFields),
            locations::LOCATION_KEYS,
            locations::LOCATION_RULE_KEYS,
            rules::RULE_KEYS,
            rules::MATCHER_KEYS,
            // Read by their path: catalog.changes.*, backend.database.*, backend.auth.*, backend.reload.*.
            &[
                "retainedRemovals",
                "watch",
                "client",
                "connection",
                "externalAccess",
                "dangerouslyDisableDefaultAuthPolicy",
            ],
        ];
        (lists, names)
    }

    fn assert_candidates(lists: &[&[&str]]) {
        for list in lists {
            assert!(!list.is_empty(), "a probed struct has no fields");
        }
        let keys: Vec<&str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
        let missing: Vec<&&str> = keys.iter().filter(|k| !KNOWN_KEYS.contains(k)).collect();
        assert!(missing.is_empty(), "add {missing:?} to KNOWN_KEYS");
        // And no candidate is stale: each is a key of ours somewhere.
        let sections = [
            CATALOG_KEYS,
            BACKEND_SECTIONS,
            &["auth", "database", "catalog"],
        ];
        let stale: Vec<&&str> = KNOWN_KEYS
            .iter()
            .filter(|k| !keys.contains(k) && !sections.iter().any(|s| s.contains(k)))
            .collect();
        assert!(
            stale.is_empty(),
            "{stale:?} in KNOWN_KEYS are no key of ours"
        );
    }

    #[test]
    fn close_keys_are_suggested_and_far_ones_are_not() {
        assert_eq!(closest("tokn", KNOWN_KEYS), Some("token"));
        assert_eq!(closest("frequncy", KNOWN_KEYS), Some("frequency"));
        assert_eq!(closest("filter", KNOWN_KEYS), Some("filters"));
        assert_eq!(closest("apiBaseURL", KNOWN_KEYS), Some("apiBaseUrl"));
        assert_eq!(closest("hots", KNOWN_KEYS), Some("host"));
        assert_eq!(closest("catalg", TOP_LEVEL_SECTIONS), Some("catalog"));
        assert_eq!(closest("provider", CATALOG_KEYS), Some("providers"));
        assert_eq!(
            closest("bitbucketSever", BITBUCKET_SECTIONS),
            Some("bitbucketServer")
        );
        assert_eq!(closest("catalog", TOP_LEVEL_SECTIONS), None);
        assert_eq!(closest("app", TOP_LEVEL_SECTIONS), None);
        assert_eq!(closest("techdocs", TOP_LEVEL_SECTIONS), None);
        assert_eq!(closest("github", BITBUCKET_SECTIONS), None);
        assert_eq!(closest("cors", BACKEND_SECTIONS), None);
        assert_eq!(closest("somethingElse", KNOWN_KEYS), None);
    }

    #[test]
    fn misspelled_sections_are_found_where_other_backstage_keys_live() {
        let root = serde_json::json!({
            "catalg": {},
            "app": {},
            "integrations": {"bitbucketSever": [], "github": []},
            "catalog": {"provider": {}, "rules": [], "orphanStrategy": "delete", "frobnicate": 1,
                        "providers": {"bitbucketCloudd": {}, "gitlab": {}}},
            "backend": {"lisen": {}, "cors": {}},
        });
        let keys: Vec<(String, String)> = misspelled_sections(&root)
            .into_iter()
            .map(|m| (m.key, m.message))
            .collect();
        let expected = [
            (
                "catalg",
                "unknown section is ignored (did you mean `catalog`?)",
            ),
            (
                "integrations.bitbucketSever",
                "unknown section is ignored (did you mean `bitbucketServer`?)",
            ),
            (
                "catalog.providers.bitbucketCloudd",
                "unknown section is ignored (did you mean `bitbucketCloud`?)",
            ),
            (
                "backend.lisen",
                "unknown section is ignored (did you mean `listen`?)",
            ),
            (
                "catalog.provider",
                "unknown key is ignored; check its spelling (did you mean `providers`?)",
            ),
            (
                "catalog.frobnicate",
                "unknown key is ignored; check its spelling",
            ),
        ];
        let mut keys = keys;
        keys.sort();
        let mut expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, m)| ((*k).to_owned(), (*m).to_owned()))
            .collect();
        expected.sort();
        assert_eq!(keys, expected);
    }
}
