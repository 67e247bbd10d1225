//! Reading and parsing a config file, the documented defaults, `${VAR}`
//! substitution and `$env`/`$file` includes.

use super::*;

// ---------------------------------------------------------------------------
// Defaults, reading and parsing
// ---------------------------------------------------------------------------

#[test]
fn minimal_configs_get_the_documented_defaults() {
    for text in ["", "{}", "app: {title: Backstage}"] {
        let (_ws, _file, loaded) = load_ok(text, &[]);
        let config = &loaded.config;
        assert_eq!(loaded.warnings, Vec::<String>::new(), "[{text}]");
        assert_eq!(config.backend.listen, listen("0.0.0.0", 7007), "[{text}]");
        assert_eq!(
            config.backend.database.client,
            DatabaseClient::BetterSqlite3,
            "[{text}]"
        );
        assert_eq!(config.backend.database.connection, None, "[{text}]");
        assert!(config.integrations.bitbucket_server.is_empty(), "[{text}]");
        assert_only_default_cloud(text, &config.integrations);
        assert!(config.providers.is_empty(), "[{text}]");
        assert_eq!(config.extra_ca_file, None, "[{text}]");
    }
}

#[test]
fn missing_config_file_is_a_read_error_naming_the_path() {
    let ws = Workspace::new();
    let missing = ws.dir.path().join("nope/app-config.yaml");
    let err = Config::load(std::slice::from_ref(&missing), &env(&[])).unwrap_err();
    match &err {
        ConfigError::Read { path, .. } => assert_eq!(path, &missing),
        other => panic!("expected a Read error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read config file {}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn invalid_yaml_is_a_parse_error_naming_the_path() {
    let ws = Workspace::new();
    let good = ws.config("app-config.yaml", "app: {title: ok}");
    let bad = ws.write("app-config.local.yaml", "backend:\n  listen: [unclosed\n");
    let err = Config::load(&[good, bad.clone()], &env(&[])).unwrap_err();
    match &err {
        ConfigError::Parse { path, .. } => assert_eq!(path, &bad),
        other => panic!("expected a Parse error, got {other:?}"),
    }
    assert!(
        err.to_string().starts_with(&format!(
            "config file {} is not valid YAML: ",
            bad.display()
        )),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// ${VAR} substitution
// ---------------------------------------------------------------------------

#[test]
fn variables_are_substituted_in_any_string_and_double_dollar_escapes() {
    let (_ws, _file, loaded) = load_ok(
        "
        app:
          title: 'Catalog (${ENV_NAME})'
          escaped: '$${NOT_A_VAR}'
          mixed: '$${LITERAL} and ${ENV_NAME}'
          spaced: '${ ENV_NAME }'
          twice: '${ENV_NAME}-${ENV_NAME}'
          list: ['${ENV_NAME}', plain, 'x${ENV_NAME}y']
          number: 5
        backend:
          baseUrl: 'https://${HOST_NAME}'
          listen:
            host: '${LISTEN_HOST}'
        integrations:
          bitbucketServer:
            - host: '${BB_HOST}'
              token: '${BB_TOKEN}'
        ",
        &[
            ("ENV_NAME", "prod"),
            ("HOST_NAME", "catalog.example.com"),
            ("LISTEN_HOST", "127.0.0.1"),
            ("BB_HOST", "bitbucket.example.com"),
            ("BB_TOKEN", "env-token-value"),
        ],
    );
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let tree = &loaded.config.tree;
    assert_eq!(
        tree["app"],
        json!({
            "title": "Catalog (prod)",
            "escaped": "${NOT_A_VAR}",
            "mixed": "${LITERAL} and prod",
            "spaced": "prod",
            "twice": "prod-prod",
            "list": ["prod", "plain", "xprody"],
            "number": 5
        })
    );
    assert_eq!(at(tree, "backend.baseUrl"), "https://catalog.example.com");
    assert_eq!(loaded.config.backend.listen, listen("127.0.0.1", 7007));
    let server = &loaded.config.integrations.bitbucket_server;
    assert_eq!(server.len(), 1);
    assert_eq!(server[0].host, "bitbucket.example.com");
    assert_eq!(server[0].auth, bearer("env-token-value"));
}

#[test]
fn unset_variable_leaves_the_key_out_and_warns_with_variable_and_key() {
    let (_ws, file, loaded) = load_ok(
        "
        backend:
          baseUrl: 'http://${HOST_NAME}:7007'
          listen:
            host: '${LISTEN_HOST}'
            port: 7010
        app:
          title: kept
          list: [a, '${MISSING_ITEM}', c]
        ",
        &[("UNRELATED", "x")],
    );
    let tree = &loaded.config.tree;
    assert_eq!(tree["backend"], json!({"listen": {"port": 7010}}));
    assert_eq!(tree["app"], json!({"title": "kept", "list": ["a", "c"]}));
    assert_eq!(loaded.config.backend.listen, listen("0.0.0.0", 7010));
    let f = file.display();
    assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
    assert_eq!(
        loaded.warnings[..2],
        [
            format!(
                "{f}: environment variable HOST_NAME is not set, so backend.baseUrl is left out"
            ),
            format!(
                "{f}: environment variable LISTEN_HOST is not set, so backend.listen.host is left out"
            ),
        ]
    );
    // The array item's key spelling is covered by
    // `unset_variable_warning_uses_display_key_for_array_items`.
    let item = &loaded.warnings[2];
    assert!(
        item.starts_with(&format!(
            "{f}: environment variable MISSING_ITEM is not set, so app.list"
        )),
        "{item}"
    );
    assert!(item.ends_with(" is left out"), "{item}");
}

#[test]
fn unset_token_variable_leaves_integration_anonymous_with_a_warning() {
    let (_ws, file, loaded) = load_ok(
        "
        integrations:
          bitbucketServer:
            - host: bitbucket.example.com
              token: '${BB_TOKEN}'
        ",
        &[],
    );
    let server = &loaded.config.integrations.bitbucket_server;
    assert_eq!(server.len(), 1);
    assert_eq!(server[0].auth, Auth::Anonymous);
    assert_eq!(
        at(&loaded.config.tree, "integrations.bitbucketServer.0.token"),
        &Value::Null
    );
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    for fragment in [
        file.display().to_string().as_str(),
        "environment variable BB_TOKEN is not set",
        "token is left out",
    ] {
        assert_message_contains("unset token", warning, fragment);
    }
}

#[test]

fn unset_variable_warning_uses_display_key_for_array_items() {
    let (_ws, file, loaded) = load_ok(
        "
        integrations:
          bitbucketServer:
            - host: bitbucket.example.com
              token: '${BB_TOKEN}'
        ",
        &[],
    );
    assert_eq!(
        loaded.warnings,
        vec![format!(
            "{}: environment variable BB_TOKEN is not set, so integrations.bitbucketServer[0].token is left out",
            file.display()
        )]
    );
}

// ---------------------------------------------------------------------------
// $env and $file includes
// ---------------------------------------------------------------------------

#[test]
fn env_include_replaces_the_whole_value() {
    let (_ws, file, loaded) = load_ok(
        "
        backend:
          listen:
            port: {$env: PORT}
        integrations:
          bitbucketServer:
            - host: bitbucket.example.com
              username: {$env: BB_USER}
              password: {$env: BB_PASSWORD}
        app:
          missing: {$env: NOT_SET}
          kept: still-here
        ",
        &[
            ("PORT", "7020"),
            ("BB_USER", "svc-catalog"),
            ("BB_PASSWORD", "password-from-env"),
        ],
    );
    assert_eq!(loaded.config.backend.listen, listen("0.0.0.0", 7020));
    assert_eq!(
        loaded.config.integrations.bitbucket_server[0].auth,
        basic("svc-catalog", "password-from-env")
    );
    assert_eq!(loaded.config.tree["app"], json!({"kept": "still-here"}));
    assert_eq!(
        loaded.warnings,
        vec![format!(
            "{}: environment variable NOT_SET is not set, so app.missing is left out",
            file.display()
        )]
    );
}

#[test]
fn file_include_is_relative_to_the_config_file_and_trailing_whitespace_is_trimmed() {
    let ws = Workspace::new();
    ws.write("conf/secrets/token.txt", "file-token-value\n\n");
    ws.write("conf/secrets/banner.txt", "  leading kept \t\r\n");
    let file = ws.config(
        "conf/app-config.yaml",
        "
        integrations:
          bitbucketServer:
            - host: bitbucket.example.com
              token: {$file: secrets/token.txt}
        app:
          banner: {$file: ./secrets/banner.txt}
        ",
    );
    let loaded = Config::load(&[file], &env(&[])).expect("loads");
    assert_eq!(
        loaded.config.integrations.bitbucket_server[0].auth,
        bearer("file-token-value")
    );
    assert_eq!(loaded.config.tree["app"]["banner"], "  leading kept");
    assert_eq!(loaded.warnings, Vec::<String>::new());
}

#[test]
fn file_includes_in_each_layer_resolve_against_their_own_directory() {
    let ws = Workspace::new();
    ws.write("a/value.txt", "from-a\n");
    ws.write("b/value.txt", "from-b\n");
    let base = ws.config("a/app-config.yaml", "app: {a: {$file: value.txt}}");
    let overlay = ws.config("b/app-config.local.yaml", "app: {b: {$file: value.txt}}");
    let loaded = Config::load(&[base, overlay], &env(&[])).expect("loads");
    assert_eq!(
        loaded.config.tree["app"],
        json!({"a": "from-a", "b": "from-b"})
    );
}

#[test]
fn file_include_of_a_missing_file_is_an_error_naming_the_key() {
    let (_ws, file, err) = load_err(
        "
        backend:
          database:
            client: pg
            connection: {$file: secrets/missing.txt}
        ",
        &[],
    );
    let message = assert_invalid(
        "missing $file",
        &err,
        &Origin::File(file.clone()),
        "backend.database.connection",
    );
    assert_message_contains("missing $file", &message, "failed to read $file");
    assert_message_contains("missing $file", &message, "secrets/missing.txt");
}

#[test]

fn file_include_error_in_an_array_item_uses_the_display_key() {
    let (_ws, file, err) = load_err(
        "
        integrations:
          bitbucketServer:
            - host: bitbucket.example.com
              token: {$file: missing-token.txt}
        ",
        &[],
    );
    assert_invalid(
        "missing $file in array",
        &err,
        &Origin::File(file),
        "integrations.bitbucketServer[0].token",
    );
}

#[test]
fn malformed_includes_are_errors_naming_the_key() {
    let cases = [
        (
            "adjacent keys",
            "app: {x: {$env: A, other: 1}}",
            "app.x",
            "include key $env should not have adjacent keys",
        ),
        (
            "non-string $file",
            "app: {x: {$file: 5}}",
            "app.x",
            "$file include value is not a string",
        ),
        (
            "non-string $env",
            "app: {x: {$env: [A]}}",
            "app.x",
            "$env include value is not a string",
        ),
    ];
    for (name, text, key, fragment) in cases {
        let (_ws, file, err) = load_err(text, &[("A", "1")]);
        let message = assert_invalid(name, &err, &Origin::File(file), key);
        assert_message_contains(name, &message, fragment);
    }
}
