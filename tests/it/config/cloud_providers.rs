//! `catalog.providers.bitbucketCloud`.

use super::*;

#[test]
fn bitbucket_cloud_providers_load_with_backstage_defaults() {
    let (_ws, _file, loaded) = load_ok(
        "catalog: {providers: {bitbucketCloud: {main: {workspace: example}}}}",
        &[],
    );
    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert!(loaded.config.providers.is_empty());
    let cloud = &loaded.config.cloud_providers[0];
    assert_eq!(cloud.id, "main");
    assert_eq!(cloud.workspace, "example");
    assert_eq!(cloud.host, "bitbucket.org");
    assert_eq!(cloud.shared.catalog_path, "catalog-info.yaml");
    assert_eq!(cloud.pagelen, 100);
    assert_eq!(
        cloud.shared.schedule.frequency,
        Frequency::Every(minutes(30))
    );
}

#[test]
fn cloud_providers_take_one_object_or_a_map_and_anchor_their_filters() {
    let (_ws, _file, loaded) = load_ok(
        "
        catalog:
          providers:
            bitbucketCloud:
              workspace: acme
              catalogPath: /services/catalog-info.yaml
              pagelen: '50'
              concurrency: 4
              filters: {projectKey: 'PLAT|PAY', repoSlug: 'svc-.*'}
              schedule: {frequency: PT10M, timeout: {minutes: 3}}
            bitbucketServer:
              main: {host: bitbucket.example.com, filters: {projectKey: 'PLAT|PAY'}}
        integrations:
          bitbucketServer: [{host: bitbucket.example.com}]
        ",
        &[],
    );
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let cloud = &loaded.config.cloud_providers[0];
    assert_eq!(cloud.id, "default");
    assert_eq!(cloud.shared.catalog_path, "services/catalog-info.yaml");
    assert_eq!((cloud.pagelen, cloud.shared.concurrency), (50, Some(4)));
    assert_eq!(
        cloud.shared.schedule.frequency,
        Frequency::Every(minutes(10))
    );
    assert_eq!(cloud.shared.schedule.timeout, minutes(3));
    let cloud_keys = cloud.filters.project_key.as_ref().unwrap();
    let server_keys = loaded.config.providers[0]
        .filters
        .project_key
        .as_ref()
        .unwrap();
    // Cloud: the whole key must match; Server: anywhere in it.
    for (key, cloud_match, server_match) in [
        ("PLAT", true, true),
        ("PAY", true, true),
        ("PLATFORM", false, true),
        ("XPAY", false, true),
        ("OTHER", false, false),
    ] {
        assert_eq!(cloud_keys.is_match(key), cloud_match, "cloud {key}");
        assert_eq!(server_keys.is_match(key), server_match, "server {key}");
    }
    let slugs = cloud.filters.repo_slug.as_ref().unwrap();
    assert!(slugs.is_match("svc-a") && !slugs.is_match("legacy-svc-a"));

    let (_ws, _file, loaded) = load_ok(
        "catalog: {providers: {bitbucketCloud: {one: {workspace: a}, two: {workspace: b, catalogPath: x.yaml}}}}",
        &[],
    );
    let ids: Vec<(&str, &str, &str)> = loaded
        .config
        .cloud_providers
        .iter()
        .map(|p| {
            (
                p.id.as_str(),
                p.workspace.as_str(),
                p.shared.catalog_path.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![("one", "a", "catalog-info.yaml"), ("two", "b", "x.yaml")]
    );
    assert_eq!(loaded.config.provider_ids(), vec!["one", "two"]);
}

#[test]
fn cloud_providers_pick_their_integration() {
    let two = "integrations: {bitbucketCloud: [{host: a.example.com, token: t1}, {host: b.example.com}]}\n";
    let (_ws, _file, loaded) = load_ok(
        &format!(
            "{two}catalog: {{providers: {{bitbucketCloud: {{main: {{workspace: w, host: B.example.com}}}}}}}}"
        ),
        &[],
    );
    assert_eq!(loaded.config.cloud_providers[0].host, "b.example.com");
    let (_ws, _file, loaded) = load_ok(
        "integrations: {bitbucketCloud: [{host: only.example.com}]}\ncatalog: {providers: {bitbucketCloud: {main: {workspace: w}}}}",
        &[],
    );
    assert_eq!(loaded.config.cloud_providers[0].host, "only.example.com");
    let (_ws, file, err) = load_err(
        &format!("{two}catalog: {{providers: {{bitbucketCloud: {{main: {{workspace: w}}}}}}}}"),
        &[],
    );
    let message = assert_invalid(
        "ambiguous",
        &err,
        &Origin::File(file),
        "catalog.providers.bitbucketCloud.main.host",
    );
    assert_message_contains("ambiguous", &message, "a.example.com, b.example.com");
    let (_ws, _file, err) = load_err(
        &format!(
            "{two}catalog: {{providers: {{bitbucketCloud: {{main: {{workspace: w, host: c.example.com}}}}}}}}"
        ),
        &[],
    );
    assert_message_contains(
        "unknown host",
        &err.to_string(),
        "no Bitbucket Cloud integration for host 'c.example.com'",
    );
}

#[test]
fn cloud_provider_errors_name_the_key() {
    let cases: [(&str, &str, &str); 8] = [
        (
            "{main: {workspace: w, pagelen: 0}}",
            "catalog.providers.bitbucketCloud.main.pagelen",
            "from 1 to 100",
        ),
        (
            "{main: {workspace: w, pagelen: 101}}",
            "catalog.providers.bitbucketCloud.main.pagelen",
            "Bitbucket Cloud's maximum",
        ),
        (
            "{main: {workspace: 'a/b'}}",
            "catalog.providers.bitbucketCloud.main.workspace",
            "not a workspace slug",
        ),
        (
            "{main: {workspace: w, filters: {projectKey: '('}}}",
            "catalog.providers.bitbucketCloud.main.filters.projectKey",
            "must match the whole project key",
        ),
        (
            "{main: {workspace: w, catalogPath: /dir/}}",
            "catalog.providers.bitbucketCloud.main.catalogPath",
            "not a file path",
        ),
        (
            "{main: {workspace: w, schedule: {frequency: soon}}}",
            "catalog.providers.bitbucketCloud.main.schedule.frequency",
            "ISO-8601",
        ),
        (
            "{main: {catalogPath: x.yaml}}",
            "catalog.providers.bitbucketCloud.main",
            "workspace",
        ),
        (
            "[a]",
            "catalog.providers.bitbucketCloud",
            "with `workspace`",
        ),
    ];
    for (providers, key, fragment) in cases {
        let (_ws, file, err) = load_err(
            &format!("catalog: {{providers: {{bitbucketCloud: {providers}}}}}"),
            &[],
        );
        let message = assert_invalid(providers, &err, &Origin::File(file), key);
        assert_message_contains(providers, &message, fragment);
    }
    // Provider ids name sources: Server and Cloud cannot share one.
    let (_ws, _file, err) = load_err(
        &format!(
            "{ONE_SERVER}catalog: {{providers: {{bitbucketServer: {{main: {{host: bitbucket.example.com}}}}, bitbucketCloud: {{main: {{workspace: w}}}}}}}}"
        ),
        &[],
    );
    assert_message_contains("same id", &err.to_string(), "provider id 'main' is also");
    let (_ws, _file, loaded) = load_ok(
        "catalog: {providers: {bitbucketCloud: {main: {workspace: w, filter: {}}}}}",
        &[],
    );
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_message_contains(
        "typo",
        &loaded.warnings[0],
        "catalog.providers.bitbucketCloud.main.filter",
    );
}
