//! `catalog.rules` and `catalog.processing` in app-config: Backstage's rule
//! shape, our processing limits, key-path errors and warnings.

use super::*;

/// Loads `yaml` with `env` as the whole environment.
fn load(yaml: &str, env: &[(&str, &str)]) -> (Workspace, Result<Loaded, ConfigError>) {
    let (ws, _file, loaded) = load_yaml(yaml, env);
    (ws, loaded)
}

fn error_text(yaml: &str) -> String {
    match load(yaml, &[]).1 {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn without_rules_backstage_defaults_apply() {
    let (_dir, loaded) = load("backend: {}\n", &[]);
    let config = loaded.unwrap().config;
    let rules = &config.catalog.rules;
    let url = "https://bb/projects/P/repos/r/browse/catalog-info.yaml";
    assert!(rules.is_allowed("Component", None, "url", url));
    assert!(rules.is_allowed("API", None, "url", url));
    assert!(rules.is_allowed("Location", None, "url", url));
    assert!(!rules.is_allowed("Group", None, "url", url));
    assert_eq!(config.catalog.processing.limits.max_file_bytes, 1024 * 1024);
}

#[test]
fn rules_in_backstage_shape() {
    let (_dir, loaded) = load(
        "catalog:\n  rules:\n    - allow: [Component, API]\n    - allow:\n        - kind: Resource\n          'spec.type': database\n    - allow: [Template]\n      locations:\n        - type: url\n          pattern: https://bb/projects/TPL/repos/*/browse/**\n    - allow: [Group]\n      locations:\n        - type: url\n          exact: https://bb/projects/ORG/repos/people/browse/org.yaml\n",
        &[],
    );
    let config = loaded.unwrap().config;
    let rules = &config.catalog.rules;
    let any = "https://bb/projects/X/repos/y/browse/catalog-info.yaml";
    assert!(rules.is_allowed("component", None, "url", any));
    assert!(!rules.is_allowed("Location", None, "url", any));
    assert!(rules.is_allowed("Resource", Some("database"), "url", any));
    assert!(!rules.is_allowed("Resource", Some("queue"), "url", any));
    assert!(rules.is_allowed(
        "Template",
        None,
        "url",
        "https://bb/projects/TPL/repos/t/browse/a/template.yaml"
    ));
    assert!(!rules.is_allowed("Template", None, "url", any));
    assert!(rules.is_allowed(
        "Group",
        None,
        "url",
        "https://bb/projects/ORG/repos/people/browse/org.yaml"
    ));
    assert!(!rules.is_allowed(
        "Group",
        None,
        "url",
        "https://bb/projects/ORG/repos/people/browse/other.yaml"
    ));
}

#[test]
fn rule_errors_name_the_key_path() {
    for (yaml, fragment) in [
        (
            "catalog:\n  rules: {allow: [Component]}\n",
            "catalog.rules: expected a list",
        ),
        (
            "catalog:\n  rules:\n    - locations: []\n",
            "catalog.rules[0].allow: required",
        ),
        (
            "catalog:\n  rules:\n    - allow: [Component, 3]\n",
            "catalog.rules[0].allow[1]: '3' is not a kind",
        ),
        (
            "catalog:\n  rules:\n    - allow: [{spec.type: x}]\n",
            "catalog.rules[0].allow[0].kind: required",
        ),
        (
            "catalog:\n  rules:\n    - allow: [API]\n    - allow: [Group]\n      locations:\n        - {type: url, exact: a, pattern: b}\n",
            "catalog.rules[1].locations[0]: a catalog rule location cannot have both exact and pattern values",
        ),
        (
            "catalog:\n  rules:\n    - allow: [API]\n      locations:\n        - {exact: a}\n",
            "catalog.rules[0].locations[0].type: required",
        ),
        (
            "catalog:\n  rules:\n    - allow: [API]\n      locations:\n        - {type: url, pattern: 'a[b'}\n",
            "catalog.rules[0].locations[0].pattern: invalid glob",
        ),
    ] {
        let text = error_text(yaml);
        assert!(text.contains(fragment), "{fragment}\nin: {text}");
        assert!(text.contains("app-config.yaml"), "names the file: {text}");
    }
}

#[test]
fn processing_limits_and_their_errors() {
    let (_dir, loaded) = load(
        "catalog:\n  processing:\n    maxFileSize: 512KiB\n    maxLocationTargets: 5\n    maxLocationFiles: 0\n    colour: blue\n",
        &[("APP_CONFIG_catalog_processing_maxLocationDepth", "2")],
    );
    let loaded = loaded.unwrap();
    let processing = &loaded.config.catalog.processing;
    assert_eq!(processing.limits.max_file_bytes, 512 * 1024);
    assert_eq!(processing.max_location_depth, 2);
    assert_eq!(processing.max_location_targets, 5);
    assert_eq!(processing.max_location_files, 0);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("catalog.processing.colour") && w.contains("unknown key")),
        "{:?}",
        loaded.warnings
    );
    for (yaml, fragment) in [
        (
            "catalog:\n  processing:\n    maxFileSize: huge\n",
            "catalog.processing.maxFileSize: 'huge' is not a size",
        ),
        (
            "catalog:\n  processing:\n    maxFileSize: 0\n",
            "catalog.processing.maxFileSize",
        ),
        (
            "catalog:\n  processing:\n    maxLocationDepth: 99\n",
            "catalog.processing.maxLocationDepth: '99' is not a number from 0 to 20",
        ),
        (
            "catalog:\n  processing: 5\n",
            "catalog.processing: expected an object",
        ),
    ] {
        let text = error_text(yaml);
        assert!(text.contains(fragment), "{fragment}\nin: {text}");
    }
}

#[test]
fn an_empty_rule_list_warns_that_nothing_is_allowed() {
    let (_dir, loaded) = load("catalog:\n  rules: []\n", &[]);
    let loaded = loaded.unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("catalog.rules") && w.contains("allows no kind")),
        "{:?}",
        loaded.warnings
    );
    assert!(
        !loaded
            .config
            .catalog
            .rules
            .is_allowed("Component", None, "url", "https://x/y")
    );
}

#[test]
fn providers_share_the_catalog_settings() {
    let (_dir, loaded) = load(
        "integrations:\n  bitbucketServer:\n    - host: bb.example.com\ncatalog:\n  processing:\n    maxFileSize: 2048\n  providers:\n    bitbucketServer:\n      host: bb.example.com\n",
        &[],
    );
    let config = loaded.unwrap().config;
    assert_eq!(
        config.providers[0]
            .shared
            .catalog
            .processing
            .limits
            .max_file_bytes,
        2048
    );
}
