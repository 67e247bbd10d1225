//! Misspelled keys: "did you mean" suggestions for unknown keys of our
//! sections, and warnings for misspellings of the section names themselves
//! (`catalg:`, `catalog.provider:`), which would otherwise be carried along
//! silently as some other Backstage section and mean "discover everything,
//! anonymously, with the default schedule".

/// Every key name our sections know, at any depth: the candidates for a
/// suggestion. A suggestion only has to name a real key, not the one
/// valid at that exact place, so one list serves every section.
const KNOWN_KEYS: &[&str] = &[
    // integrations.bitbucketServer / bitbucketCloud
    "host",
    "apiBaseUrl",
    "token",
    "username",
    "password",
    "appPassword",
    "webhookSecret",
    "allowUnsignedWebhooks",
    "rateLimit",
    "requestsPerSecond",
    "burst",
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
    "frequency",
    "timeout",
    "initialDelay",
    "concurrency",
    "deletionThreshold",
    "targetScope",
    "webhooks",
    "url",
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
    "options",
    "subject",
    "accessRestrictions",
    "plugin",
    "permission",
    "permissionAttribute",
];

/// Keys directly under `catalog`: ours and those of Backstage's catalog
/// backend (a shared `app-config.yaml` carries them).
pub const CATALOG_KEYS: &[&str] = &[
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
pub const TOP_LEVEL_SECTIONS: &[&str] = &["backend", "integrations", "catalog"];
pub const BITBUCKET_SECTIONS: &[&str] = &["bitbucketServer", "bitbucketCloud"];
pub const BACKEND_SECTIONS: &[&str] = &["listen", "database", "auth"];

/// The key of `known` that `key` most likely misspells, if any is close.
pub fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
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

/// "did you mean `token`?" for an unknown key of our sections, if a known
/// key is close.
pub fn did_you_mean(key: &str) -> Option<String> {
    closest(key, KNOWN_KEYS).map(|known| format!("did you mean `{known}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
