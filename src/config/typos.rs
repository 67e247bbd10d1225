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
        let lists: &[&[&str]] = &[
            fields::<listen::raw::Listen>(),
            fields::<integration::raw::ServerIntegration>(),
            fields::<integration::raw::CloudIntegration>(),
            fields::<http::raw::RateLimit>(),
            fields::<server::raw::ServerProvider>(),
            fields::<server::raw::Filters>(),
            fields::<cloud::raw::CloudProvider>(),
            fields::<cloud::raw::CloudFilters>(),
            fields::<provider::raw::Webhooks>(),
            fields::<provider::raw::PullRequests>(),
            fields::<generated::raw::WithoutCatalogFile>(),
            fields::<generated::raw::Generate>(),
            fields::<processing::Processing>(),
            fields::<access::raw::ExternalAccessEntry>(),
            fields::<access::raw::StaticAccessOptions>(),
            fields::<access::raw::AccessRestriction>(),
            fields::<backend::raw::ApiRateLimit>(),
            fields::<backend::raw::BitbucketReads>(),
            fields::<backend::raw::Pace>(),
            fields::<backend::raw::QueryBudget>(),
            fields::<schedule::RawSchedule>(),
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
