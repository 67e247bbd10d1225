//! `catalog.providers.bitbucketServer`: forms, host, paths, filters and limits.

use super::*;

#[test]
fn single_provider_form_gets_id_default_and_documented_defaults() {
    let text = format!(
        "{ONE_SERVER}catalog: {{providers: {{bitbucketServer: {{host: bitbucket.example.com}}}}}}"
    );
    let (_ws, _file, loaded) = load_ok(&text, &[]);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert_eq!(loaded.config.providers.len(), 1);
    let provider = loaded
        .config
        .provider("default")
        .expect("provider `default`");
    assert_eq!(provider.id, "default");
    assert_eq!(provider.host, SERVER_HOST);
    assert_eq!(provider.shared.catalog_path, "catalog-info.yaml");
    assert!(provider.filters.project_key.is_none());
    assert!(provider.filters.repo_slug.is_none());
    assert!(!provider.filters.skip_archived_repos);
    assert_eq!(provider.filters.branch, None);
    assert_eq!(provider.shared.concurrency, None);
    assert_eq!(
        provider.shared.schedule,
        Schedule {
            frequency: Frequency::Every(minutes(30)),
            timeout: minutes(15),
            initial_delay: None,
        }
    );
}

#[test]
fn map_form_uses_the_keys_as_ids_in_order() {
    let (_ws, _file, loaded) = load_ok(
        "
        integrations:
          bitbucketServer:
            - {host: a.example.com}
            - {host: b.example.com}
        catalog:
          providers:
            bitbucketServer:
              zeta: {host: b.example.com, catalogPath: /zeta.yaml}
              alpha: {host: a.example.com}
              mixed-Case_id: {host: A.EXAMPLE.COM}
        ",
        &[],
    );
    let ids: Vec<&str> = loaded
        .config
        .providers
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(ids, vec!["zeta", "alpha", "mixed-Case_id"]);
    let hosts: Vec<&str> = loaded
        .config
        .providers
        .iter()
        .map(|p| p.host.as_str())
        .collect();
    assert_eq!(
        hosts,
        vec!["b.example.com", "a.example.com", "A.EXAMPLE.COM"]
    );
    assert_eq!(
        loaded.config.provider("zeta").unwrap().shared.catalog_path,
        "zeta.yaml"
    );
    assert!(loaded.config.provider("nope").is_none());
}

#[test]
fn provider_host_must_match_an_integration() {
    let two_servers =
        "integrations: {bitbucketServer: [{host: a.example.com}, {host: b.example.com}]}\n";
    let cases = [
        (
            "map form",
            format!(
                "{two_servers}catalog: {{providers: {{bitbucketServer: {{main: {{host: typo.example.com}}}}}}}}"
            ),
            format!("{MAIN}.host"),
            "no Bitbucket Server integration for host 'typo.example.com' (known hosts: a.example.com, b.example.com; add an integrations.bitbucketServer entry or fix the host)",
        ),
        (
            "single form",
            format!(
                "{two_servers}catalog: {{providers: {{bitbucketServer: {{host: typo.example.com}}}}}}"
            ),
            "catalog.providers.bitbucketServer.host".to_owned(),
            "no Bitbucket Server integration for host 'typo.example.com' (known hosts: a.example.com, b.example.com; add an integrations.bitbucketServer entry or fix the host)",
        ),
        (
            "no integrations",
            "catalog: {providers: {bitbucketServer: {main: {host: a.example.com}}}}".to_owned(),
            format!("{MAIN}.host"),
            "no Bitbucket Server integration for host 'a.example.com' (no integrations.bitbucketServer entries are configured; add one with this host)",
        ),
        (
            "second provider",
            format!(
                "{two_servers}catalog: {{providers: {{bitbucketServer: {{ok: {{host: a.example.com}}, bad: {{host: c.example.com}}}}}}}}"
            ),
            "catalog.providers.bitbucketServer.bad.host".to_owned(),
            "no Bitbucket Server integration for host 'c.example.com' (known hosts: a.example.com, b.example.com;",
        ),
    ];
    for (name, text, key, fragment) in cases {
        let (_ws, file, err) = load_err(&text, &[]);
        let message = assert_invalid(name, &err, &Origin::File(file), &key);
        assert_message_contains(name, &message, fragment);
    }
}

#[test]
fn malformed_provider_sections_are_errors_at_their_key() {
    let cases = [
        (
            "catalog: {providers: {bitbucketServer: [{host: bitbucket.example.com}]}}",
            "catalog.providers.bitbucketServer",
            "expected one provider (with `host`) or a map of provider ids to providers",
        ),
        (
            "catalog: {providers: {bitbucketServer: {main: 5}}}",
            MAIN,
            "expected a provider object with at least `host`",
        ),
        (
            "catalog: {providers: {bitbucketServer: {main: {catalogPath: x.yaml}}}}",
            MAIN,
            "missing field `host`",
        ),
    ];
    for (tail, key, fragment) in cases {
        let text = format!("{ONE_SERVER}{tail}");
        let (_ws, file, err) = load_err(&text, &[]);
        let message = assert_invalid(tail, &err, &Origin::File(file), key);
        assert_message_contains(tail, &message, fragment);
    }
}

#[test]
fn catalog_path_is_stored_without_the_leading_slash() {
    let cases = [
        ("", "catalog-info.yaml"),
        ("catalogPath: catalog-info.yaml", "catalog-info.yaml"),
        ("catalogPath: /catalog-info.yaml", "catalog-info.yaml"),
        ("catalogPath: /path/to/catalog.yaml", "path/to/catalog.yaml"),
        ("catalogPath: ' /spaced.yaml '", "spaced.yaml"),
        ("catalogPath: '//double.yaml'", "double.yaml"),
    ];
    for (fields, expected) in cases {
        let (_ws, _file, loaded) = load_ok(&with_provider(fields), &[]);
        assert_eq!(
            main_provider(&loaded).shared.catalog_path,
            expected,
            "[{fields}]"
        );
    }
}

#[test]
fn catalog_path_outside_the_repository_is_an_error() {
    for path in [
        "/",
        "''",
        "../up.yaml",
        "a/../b.yaml",
        "./here.yaml",
        "dir/",
        "a//b.yaml",
    ] {
        let (_ws, file, err) = load_err(&with_provider(&format!("catalogPath: {path}")), &[]);
        let message = assert_invalid(
            path,
            &err,
            &Origin::File(file),
            &format!("{MAIN}.catalogPath"),
        );
        assert_message_contains(path, &message, "is not a file path inside the repository");
    }
}

#[test]
fn filters_are_unanchored_regexes() {
    let (_ws, _file, loaded) = load_ok(
        &with_provider("filters: {projectKey: PLAT, repoSlug: 'catalog|svc-'}"),
        &[],
    );
    let filters = &main_provider(&loaded).filters;
    let project = filters.project_key.as_ref().expect("projectKey");
    let slug = filters.repo_slug.as_ref().expect("repoSlug");
    assert_eq!(project.as_str(), "PLAT");
    assert_eq!(slug.as_str(), "catalog|svc-");
    assert!(project.is_match("PLAT"));
    assert!(project.is_match("XPLATFORM"));
    assert!(!project.is_match("plat"));
    assert!(slug.is_match("my-catalog-service"));
    assert!(slug.is_match("legacy-svc-billing"));
    assert!(!slug.is_match("billing"));

    // Anchors still work when written.
    let (_ws, _file, loaded) = load_ok(&with_provider("filters: {repoSlug: '^svc-'}"), &[]);
    let slug = main_provider(&loaded)
        .filters
        .repo_slug
        .clone()
        .expect("repoSlug");
    assert!(slug.is_match("svc-a"));
    assert!(!slug.is_match("legacy-svc-a"));
}

#[test]
fn invalid_filter_regexes_are_errors_naming_the_filter_key() {
    for (filter, pattern) in [
        ("repoSlug", "'('"),
        ("projectKey", "'[A-'"),
        ("repoSlug", "'a{2,1}'"),
    ] {
        let text = with_provider(&format!("filters: {{{filter}: {pattern}}}"));
        let (_ws, file, err) = load_err(&text, &[]);
        let key = format!("{MAIN}.filters.{filter}");
        let message = assert_invalid(filter, &err, &Origin::File(file), &key);
        assert_message_contains(filter, &message, "invalid regular expression");
        assert!(err.to_string().contains(&key), "{err}");
    }
    // The exact key the product rules name.
    let (_ws, _file, err) = load_err(&with_provider("filters: {repoSlug: '('}"), &[]);
    assert!(
        err.to_string()
            .contains("catalog.providers.bitbucketServer.main.filters.repoSlug"),
        "{err}"
    );
}

#[test]
fn skip_archived_repos_and_branch_filters() {
    let cases: [(&str, Vars, bool, Option<&str>); 8] = [
        ("", &[], false, None),
        ("filters: {}", &[], false, None),
        ("filters: {skipArchivedRepos: true}", &[], true, None),
        ("filters: {skipArchivedRepos: false}", &[], false, None),
        ("filters: {skipArchivedRepos: 'true'}", &[], true, None),
        (
            "filters: {skipArchivedRepos: '${SKIP}', branch: '${BRANCH}'}",
            &[("SKIP", "true"), ("BRANCH", "main")],
            true,
            Some("main"),
        ),
        (
            "filters: {branch: ' release/2.x '}",
            &[],
            false,
            Some("release/2.x"),
        ),
        ("filters: {branch: ''}", &[], false, None),
    ];
    for (fields, pairs, skip, branch) in cases {
        let (_ws, _file, loaded) = load_ok(&with_provider(fields), pairs);
        let filters = &main_provider(&loaded).filters;
        assert_eq!(filters.skip_archived_repos, skip, "[{fields}]");
        assert_eq!(filters.branch.as_deref(), branch, "[{fields}]");
    }
}

#[test]
fn invalid_skip_archived_repos_is_an_error() {
    for value in ["yes", "'1'", "''"] {
        let (_ws, file, err) = load_err(
            &with_provider(&format!("filters: {{skipArchivedRepos: {value}}}")),
            &[],
        );
        let key = format!("{MAIN}.filters.skipArchivedRepos");
        let message = assert_invalid(value, &err, &Origin::File(file), &key);
        assert_eq!(message, "expected true or false", "[{value}]");
    }
    // Other YAML types are errors at the same key too.
    for value in ["3", "[true]"] {
        let (_ws, file, err) = load_err(
            &with_provider(&format!("filters: {{skipArchivedRepos: {value}}}")),
            &[],
        );
        let key = format!("{MAIN}.filters.skipArchivedRepos");
        assert_invalid(value, &err, &Origin::File(file), &key);
    }
}

#[test]

fn wrongly_typed_loose_values_get_the_precise_message() {
    let (_ws, _file, err) = load_err(&with_provider("filters: {skipArchivedRepos: 3}"), &[]);
    let ConfigError::Invalid { message, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(message, "expected true or false");
    let (_ws, _file, err) = load_err(&with_provider("concurrency: true"), &[]);
    let ConfigError::Invalid { message, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(message, "true is not a number from 1 to 64");
}

#[test]
fn concurrency_is_unset_by_default_and_accepts_1_to_64() {
    let cases: [(&str, Vars, Option<usize>); 6] = [
        ("", &[], None),
        ("concurrency: 1", &[], Some(1)),
        ("concurrency: 64", &[], Some(64)),
        ("concurrency: 16", &[], Some(16)),
        ("concurrency: '3'", &[], Some(3)),
        (
            "concurrency: '${CONCURRENCY}'",
            &[("CONCURRENCY", "12")],
            Some(12),
        ),
    ];
    for (fields, pairs, expected) in cases {
        let (_ws, _file, loaded) = load_ok(&with_provider(fields), pairs);
        assert_eq!(
            main_provider(&loaded).shared.concurrency,
            expected,
            "[{fields}]"
        );
    }
}

#[test]
fn invalid_concurrency_is_an_error() {
    for (value, shown) in [
        ("0", "0"),
        ("65", "65"),
        ("abc", "abc"),
        ("-1", "-1"),
        ("2.5", "2.5"),
        ("''", ""),
    ] {
        let (_ws, file, err) = load_err(&with_provider(&format!("concurrency: {value}")), &[]);
        let message = assert_invalid(
            value,
            &err,
            &Origin::File(file),
            &format!("{MAIN}.concurrency"),
        );
        assert_eq!(
            message,
            format!("'{shown}' is not a number from 1 to 64"),
            "[{value}]"
        );
    }
}
