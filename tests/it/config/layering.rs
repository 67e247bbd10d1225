//! Several config files layered, and `APP_CONFIG_*` overrides.

use super::*;

// ---------------------------------------------------------------------------
// Layering: several files
// ---------------------------------------------------------------------------

#[test]
fn later_files_deep_merge_objects_and_replace_arrays_and_scalars() {
    let ws = Workspace::new();
    let base = ws.config(
        "app-config.yaml",
        "
        app:
          title: Base
          plugins: [one, two]
        backend:
          listen: {host: 127.0.0.1, port: 7007}
          database: {client: pg, connection: {host: db.internal, port: 5432}}
        integrations:
          bitbucketServer:
            - {host: a.example.com, token: a-token}
            - {host: b.example.com, token: b-token}
        ",
    );
    let overlay = ws.config(
        "app-config.production.yaml",
        "
        app:
          plugins: [three]
        backend:
          listen: {port: 8080}
          database: {connection: {port: 6543}}
        integrations:
          bitbucketServer:
            - {host: c.example.com}
        ",
    );
    let loaded = Config::load(&[base.clone(), overlay.clone()], &env(&[])).expect("loads");
    let config = &loaded.config;
    assert_eq!(
        config.tree["app"],
        json!({"title": "Base", "plugins": ["three"]})
    );
    assert_eq!(config.backend.listen, listen("127.0.0.1", 8080));
    assert_eq!(config.backend.database.client, DatabaseClient::Pg);
    assert_eq!(
        config.backend.database.connection,
        Some(json!({"host": "db.internal", "port": 6543}))
    );
    assert_eq!(config.integrations.server_hosts(), vec!["c.example.com"]);
    assert_eq!(
        config.integrations.bitbucket_server[0].auth,
        Auth::Anonymous
    );

    // A scalar replaces an object, and the order of the files decides.
    let scalar = ws.config("app-config.scalar.yaml", "backend: {listen: ':9000'}");
    let loaded =
        Config::load(&[base.clone(), overlay.clone(), scalar.clone()], &env(&[])).expect("loads");
    assert_eq!(loaded.config.backend.listen, listen("0.0.0.0", 9000));
    let loaded = Config::load(&[scalar, base, overlay], &env(&[])).expect("loads");
    assert_eq!(loaded.config.backend.listen, listen("127.0.0.1", 8080));
}

#[test]
fn errors_name_the_file_the_offending_value_came_from() {
    struct Case {
        name: &'static str,
        base: String,
        overlay: String,
        key: String,
        blame_overlay: bool,
        fragment: &'static str,
    }
    let cases = [
        Case {
            name: "overlay port",
            base: "backend: {listen: {host: 127.0.0.1, port: 7007}}".into(),
            overlay: "backend: {listen: {port: not-a-port}}".into(),
            key: "backend.listen.port".into(),
            blame_overlay: true,
            fragment: "'not-a-port' is not a port number",
        },
        Case {
            name: "base port, overlay touched a sibling",
            base: "backend: {listen: {port: not-a-port}}".into(),
            overlay: "backend: {listen: {host: 127.0.0.1}}".into(),
            key: "backend.listen.port".into(),
            blame_overlay: false,
            fragment: "'not-a-port' is not a port number",
        },
        Case {
            name: "overlay provider host",
            base: with_provider(""),
            overlay: "catalog: {providers: {bitbucketServer: {main: {host: typo.example.com}}}}"
                .into(),
            key: format!("{MAIN}.host"),
            blame_overlay: true,
            fragment: "no Bitbucket Server integration for host 'typo.example.com'",
        },
        Case {
            name: "base provider host, overlay touched a sibling",
            base: format!(
                "{ONE_SERVER}catalog: {{providers: {{bitbucketServer: {{main: {{host: typo.example.com}}}}}}}}\n"
            ),
            overlay: "catalog: {providers: {bitbucketServer: {main: {catalogPath: x.yaml}}}}"
                .into(),
            key: format!("{MAIN}.host"),
            blame_overlay: false,
            fragment: "no Bitbucket Server integration for host 'typo.example.com'",
        },
        Case {
            name: "overlay regex",
            base: with_provider(""),
            overlay: "catalog: {providers: {bitbucketServer: {main: {filters: {repoSlug: '('}}}}}"
                .into(),
            key: format!("{MAIN}.filters.repoSlug"),
            blame_overlay: true,
            fragment: "invalid regular expression '('",
        },
        Case {
            name: "overlay integration array",
            base: ONE_SERVER.into(),
            overlay: "integrations: {bitbucketServer: [{host: 'https://x.example.com'}]}".into(),
            key: "integrations.bitbucketServer[0].host".into(),
            blame_overlay: true,
            fragment: "has a scheme",
        },
        Case {
            name: "overlay array drops the password",
            base:
                "integrations: {bitbucketServer: [{host: x.example.com, username: u, password: p}]}"
                    .into(),
            overlay: "integrations: {bitbucketServer: [{host: x.example.com, username: u}]}".into(),
            key: "integrations.bitbucketServer[0].password".into(),
            blame_overlay: true,
            fragment: "username is set without password",
        },
        Case {
            name: "overlay database client",
            base: "backend: {database: {client: pg, connection: 'postgres://db/x'}}".into(),
            overlay: "backend: {database: {client: mysql}}".into(),
            key: "backend.database.client".into(),
            blame_overlay: true,
            fragment: "unsupported client 'mysql'",
        },
    ];
    for case in cases {
        let ws = Workspace::new();
        let base = ws.config("app-config.yaml", &case.base);
        let overlay = ws.config("app-config.local.yaml", &case.overlay);
        let err = Config::load(&[base.clone(), overlay.clone()], &env(&[])).expect_err(case.name);
        let blamed = if case.blame_overlay { overlay } else { base };
        let message = assert_invalid(case.name, &err, &Origin::File(blamed), &case.key);
        assert_message_contains(case.name, &message, case.fragment);
    }
}

// ---------------------------------------------------------------------------
// APP_CONFIG_* overrides
// ---------------------------------------------------------------------------

#[test]
fn env_overrides_set_nested_keys_parsing_json_then_falling_back_to_string() {
    let ws = Workspace::new();
    let base = ws.config(
        "app-config.yaml",
        "
        backend:
          listen: {host: 127.0.0.1, port: 7007}
        integrations:
          bitbucketServer:
            - {host: bitbucket.example.com}
        catalog:
          providers:
            bitbucketServer:
              main: {host: bitbucket.example.com}
        ",
    );
    let overlay = ws.config("app-config.local.yaml", "backend: {listen: {port: 7100}}");
    let environment = env(&[
        ("APP_CONFIG_backend_listen_port", "7008"),
        (
            "APP_CONFIG_catalog_providers_bitbucketServer_main_filters_skipArchivedRepos",
            "true",
        ),
        (
            "APP_CONFIG_catalog_providers_bitbucketServer_main_filters_branch",
            "release/1.0",
        ),
        (
            "APP_CONFIG_catalog_providers_bitbucketServer_main_concurrency",
            "\"4\"",
        ),
        ("APP_CONFIG_app_title", "My Catalog"),
        ("NOT_APP_CONFIG_app_other", "ignored"),
    ]);
    let loaded = Config::load(&[base, overlay], &environment).expect("loads");
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let tree = &loaded.config.tree;
    // The override beats both files, and arrives as a JSON number.
    assert_eq!(at(tree, "backend.listen.port"), &json!(7008));
    assert_eq!(loaded.config.backend.listen, listen("127.0.0.1", 7008));
    assert_eq!(
        at(tree, &format!("{MAIN}.filters.skipArchivedRepos")),
        &json!(true)
    );
    assert_eq!(at(tree, &format!("{MAIN}.concurrency")), &json!("4"));
    assert_eq!(tree["app"], json!({"title": "My Catalog"}));
    let provider = main_provider(&loaded);
    assert!(provider.filters.skip_archived_repos);
    assert_eq!(provider.filters.branch.as_deref(), Some("release/1.0"));
    assert_eq!(provider.shared.concurrency, Some(4));
}

#[test]
fn env_override_can_replace_a_whole_array_with_json() {
    let (_ws, _file, loaded) = load_ok(
        ONE_SERVER,
        &[(
            "APP_CONFIG_integrations_bitbucketServer",
            r#"[{"host": "other.example.com", "username": "svc", "password": "pw"}]"#,
        )],
    );
    let server = &loaded.config.integrations.bitbucket_server;
    assert_eq!(
        loaded.config.integrations.server_hosts(),
        vec!["other.example.com"]
    );
    assert_eq!(server[0].auth, basic("svc", "pw"));
}

#[test]
fn errors_caused_by_env_overrides_name_the_variable() {
    let cases = [
        (
            "APP_CONFIG_backend_listen_port",
            "abc",
            "backend.listen.port".to_owned(),
            "'abc' is not a port number (0-65535)",
        ),
        (
            "APP_CONFIG_backend_database_client",
            "mysql",
            "backend.database.client".to_owned(),
            "unsupported client 'mysql'",
        ),
        (
            "APP_CONFIG_integrations_bitbucketServer",
            r#"[{"host": "https://x.example.com"}]"#,
            "integrations.bitbucketServer[0].host".to_owned(),
            "has a scheme",
        ),
        (
            "APP_CONFIG_catalog_providers_bitbucketServer_main_concurrency",
            "0",
            format!("{MAIN}.concurrency"),
            "'0' is not a number from 1 to 64",
        ),
        (
            "APP_CONFIG_catalog_providers_bitbucketServer_main_host",
            "typo.example.com",
            format!("{MAIN}.host"),
            "no Bitbucket Server integration for host 'typo.example.com'",
        ),
        (
            "APP_CONFIG_catalog_providers_bitbucketServer_main_schedule_frequency",
            r#"{"cron": "99 * * * *"}"#,
            format!("{MAIN}.schedule.frequency"),
            "invalid cron expression '99 * * * *'",
        ),
    ];
    for (var, value, key, fragment) in cases {
        let (_ws, _file, err) = load_err(&with_provider(""), &[(var, value)]);
        let message = assert_invalid(var, &err, &Origin::EnvOverride(var.into()), &key);
        assert_message_contains(var, &message, fragment);
    }
}

#[test]
fn env_override_names_that_do_not_form_a_key_path_are_errors() {
    for (var, key) in [
        ("APP_CONFIG_backend__listen", "backend..listen"),
        ("APP_CONFIG_backend_", "backend."),
    ] {
        let (_ws, _file, err) = load_err("{}", &[(var, "1")]);
        let message = assert_invalid(var, &err, &Origin::EnvOverride(var.into()), key);
        assert_message_contains(var, &message, "does not form a key path");
    }
}

#[test]

fn env_override_into_an_array_item_names_the_variable() {
    let var = "APP_CONFIG_integrations_bitbucketServer_0_token";
    let (_ws, _file, result) = load_yaml(ONE_SERVER, &[(var, "new-token")]);
    match result {
        // Supporting indices would be fine too, as long as the token lands.
        Ok(loaded) => assert_eq!(
            loaded.config.integrations.bitbucket_server[0].auth,
            bearer("new-token")
        ),
        Err(err) => {
            let ConfigError::Invalid { origin, .. } = &err else {
                panic!("unexpected error {err:?}");
            };
            assert_eq!(
                origin.as_ref(),
                Some(&Origin::EnvOverride(var.into())),
                "{err}"
            );
        }
    }
}
