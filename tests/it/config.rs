//! Integration tests for the configuration loader: Backstage `app-config`
//! semantics (`${VAR}`, `$env`, `$file`, layering, `APP_CONFIG_*`), validation
//! of our own sections, warnings and secret redaction.
//!
//! Every test writes its YAML into a fresh temp dir and passes its own
//! environment; the process environment is never touched.

use std::path::PathBuf;
use std::time::Duration;

use bitbucket_catalogd::config::{
    Config, ConfigError, DatabaseClient, Environment, Frequency, ListenConfig, Loaded, Origin,
    Schedule, ServerProviderConfig,
};
use bitbucket_catalogd::integrations::{Auth, Integrations};
use bitbucket_catalogd::secret::Secret;
use serde_json::{Value, json};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Strips the common indentation so YAML can be written indented in the source.
fn yaml(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = text
        .lines()
        .map(|l| {
            if l.trim().is_empty() {
                ""
            } else {
                &l[indent..]
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// A temp dir holding config files (and files they include).
struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    /// Writes `text` verbatim to `rel` (creating parent dirs).
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create dirs");
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// Writes dedented YAML to `rel`.
    fn config(&self, rel: &str, text: &str) -> PathBuf {
        self.write(rel, &yaml(text))
    }
}

/// Environment variables for one table row.
type Vars = &'static [(&'static str, &'static str)];

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs.iter().copied())
}

/// Loads one (dedented) YAML document with `pairs` as the whole environment.
fn load_yaml(
    text: &str,
    pairs: &[(&str, &str)],
) -> (Workspace, PathBuf, Result<Loaded, ConfigError>) {
    let ws = Workspace::new();
    let file = ws.config("app-config.yaml", text);
    let result = Config::load(std::slice::from_ref(&file), &env(pairs));
    (ws, file, result)
}

#[track_caller]
fn load_ok(text: &str, pairs: &[(&str, &str)]) -> (Workspace, PathBuf, Loaded) {
    let (ws, file, result) = load_yaml(text, pairs);
    match result {
        Ok(loaded) => (ws, file, loaded),
        Err(err) => panic!("expected the config to load, got: {err}\n--- config ---\n{text}"),
    }
}

#[track_caller]
fn load_err(text: &str, pairs: &[(&str, &str)]) -> (Workspace, PathBuf, ConfigError) {
    let (ws, file, result) = load_yaml(text, pairs);
    match result {
        Ok(loaded) => panic!(
            "expected an error, but the config loaded: {:?}\n--- config ---\n{text}",
            loaded.config.providers
        ),
        Err(err) => (ws, file, err),
    }
}

/// Asserts that `err` is an `Invalid` error at exactly `key`, blamed on
/// `origin`, and that its message starts by naming the origin and the key.
/// Returns the bare message.
#[track_caller]
fn assert_invalid(context: &str, err: &ConfigError, origin: &Origin, key: &str) -> String {
    let ConfigError::Invalid {
        origin: got_origin,
        key: got_key,
        message,
    } = err
    else {
        panic!("[{context}] expected an Invalid error at {key}, got: {err:?}");
    };
    assert_eq!(got_key, key, "[{context}] wrong key in: {err}");
    assert_eq!(
        got_origin.as_ref(),
        Some(origin),
        "[{context}] wrong origin in: {err}"
    );
    let named = match origin {
        Origin::File(path) => path.display().to_string(),
        Origin::EnvOverride(var) => format!("environment variable {var}"),
    };
    assert_eq!(
        err.to_string(),
        format!("{named}: {key}: {message}"),
        "[{context}]"
    );
    message.clone()
}

#[track_caller]
fn assert_message_contains(context: &str, message: &str, fragment: &str) {
    assert!(
        message.contains(fragment),
        "[{context}] message {message:?} should contain {fragment:?}"
    );
}

fn bearer(token: &str) -> Auth {
    Auth::Bearer {
        token: Secret::new(token),
    }
}

fn basic(username: &str, password: &str) -> Auth {
    Auth::Basic {
        username: username.into(),
        password: Secret::new(password),
    }
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

fn listen(host: &str, port: u16) -> ListenConfig {
    ListenConfig {
        host: host.into(),
        port,
        ..ListenConfig::default()
    }
}

#[track_caller]
fn assert_only_default_cloud(context: &str, integrations: &Integrations) {
    assert_eq!(
        integrations.bitbucket_cloud.len(),
        1,
        "[{context}] {integrations:?}"
    );
    let cloud = &integrations.bitbucket_cloud[0];
    assert_eq!(cloud.host, "bitbucket.org", "[{context}]");
    assert_eq!(
        cloud.api_base_url.as_str(),
        "https://api.bitbucket.org/2.0",
        "[{context}]"
    );
    assert_eq!(cloud.auth, Auth::Anonymous, "[{context}]");
}

/// The value at a dotted path of the merged tree (`Value::Null` if absent).
fn at<'a>(tree: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(tree, |node, part| match part.parse::<usize>() {
            Ok(index) => &node[index],
            Err(_) => &node[part],
        })
}

const SERVER_HOST: &str = "bitbucket.example.com";

/// One Bitbucket Server integration for `bitbucket.example.com`.
const ONE_SERVER: &str =
    "integrations: {bitbucketServer: [{host: bitbucket.example.com, token: server-token-value}]}\n";

/// The key of the `main` provider in map form.
const MAIN: &str = "catalog.providers.bitbucketServer.main";

/// [`ONE_SERVER`] plus a `main` provider for it with extra flow-mapping
/// `fields` (e.g. `catalogPath: x.yaml, concurrency: 4`).
fn with_provider(fields: &str) -> String {
    let fields = if fields.is_empty() {
        String::new()
    } else {
        format!(", {fields}")
    };
    format!(
        "{ONE_SERVER}catalog:\n  providers:\n    bitbucketServer:\n      main: {{host: bitbucket.example.com{fields}}}\n"
    )
}

#[track_caller]
fn main_provider(loaded: &Loaded) -> &ServerProviderConfig {
    assert_eq!(
        loaded.config.providers.len(),
        1,
        "{:?}",
        loaded.config.providers
    );
    loaded.config.provider("main").expect("provider `main`")
}

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
    assert_eq!(provider.concurrency, 4);
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

// ---------------------------------------------------------------------------
// backend.listen and backend.database
// ---------------------------------------------------------------------------

#[test]
fn listen_accepts_the_backstage_forms() {
    let cases: [(&str, Vars, ListenConfig); 15] = [
        ("backend: {}", &[], listen("0.0.0.0", 7007)),
        ("backend: {listen: ~}", &[], listen("0.0.0.0", 7007)),
        ("backend: {listen: {}}", &[], listen("0.0.0.0", 7007)),
        (
            "backend: {listen: {host: 127.0.0.1, port: 7010}}",
            &[],
            listen("127.0.0.1", 7010),
        ),
        (
            "backend: {listen: {port: 7011}}",
            &[],
            listen("0.0.0.0", 7011),
        ),
        ("backend: {listen: {host: '::1'}}", &[], listen("::1", 7007)),
        (
            "backend: {listen: {port: '7012'}}",
            &[],
            listen("0.0.0.0", 7012),
        ),
        (
            "backend: {listen: {port: '${PORT}'}}",
            &[("PORT", "7013")],
            listen("0.0.0.0", 7013),
        ),
        ("backend: {listen: {port: 0}}", &[], listen("0.0.0.0", 0)),
        (
            "backend: {listen: {port: 65535}}",
            &[],
            listen("0.0.0.0", 65535),
        ),
        ("backend: {listen: ':7008'}", &[], listen("0.0.0.0", 7008)),
        (
            "backend: {listen: '127.0.0.1:7009'}",
            &[],
            listen("127.0.0.1", 7009),
        ),
        ("backend: {listen: '7014'}", &[], listen("0.0.0.0", 7014)),
        ("backend: {listen: '[::1]:7015'}", &[], listen("::1", 7015)),
        (
            "backend: {listen: '${LISTEN}'}",
            &[("LISTEN", ":7016")],
            listen("0.0.0.0", 7016),
        ),
    ];
    for (text, pairs, expected) in cases {
        let (_ws, _file, loaded) = load_ok(text, pairs);
        assert_eq!(loaded.config.backend.listen, expected, "[{text}]");
        assert_eq!(loaded.warnings, Vec::<String>::new(), "[{text}]");
    }
}

#[test]
fn invalid_listen_values_are_errors_at_their_key() {
    let cases = [
        (
            "backend: {listen: {port: 70000}}",
            "backend.listen.port",
            "'70000' is not a port number (0-65535)",
        ),
        (
            "backend: {listen: {port: abc}}",
            "backend.listen.port",
            "'abc' is not a port number (0-65535)",
        ),
        (
            "backend: {listen: {port: -1}}",
            "backend.listen.port",
            "'-1' is not a port number",
        ),
        (
            "backend: {listen: {port: 7007.5}}",
            "backend.listen.port",
            "'7007.5' is not a port number",
        ),
        (
            "backend: {listen: {port: ''}}",
            "backend.listen.port",
            "'' is not a port number",
        ),
        (
            "backend: {listen: ':nope'}",
            "backend.listen",
            "':nope' is not host:port",
        ),
        (
            "backend: {listen: localhost}",
            "backend.listen",
            "'localhost' is not host:port",
        ),
        (
            "backend: {listen: ':70000'}",
            "backend.listen",
            "':70000' is not host:port",
        ),
        (
            "backend: {listen: 7007}",
            "backend.listen",
            "expected ':7007' or {host, port}",
        ),
        (
            "backend: {listen: {host: [a, b]}}",
            "backend.listen.host",
            "invalid type",
        ),
    ];
    for (text, key, fragment) in cases {
        let (_ws, file, err) = load_err(text, &[]);
        let message = assert_invalid(text, &err, &Origin::File(file), key);
        assert_message_contains(text, &message, fragment);
    }
}

#[test]
fn database_clients_are_accepted_and_connection_is_kept_as_written() {
    let cases = [
        ("backend: {}", DatabaseClient::BetterSqlite3, None),
        (
            "backend: {database: {client: better-sqlite3, connection: ':memory:'}}",
            DatabaseClient::BetterSqlite3,
            Some(json!(":memory:")),
        ),
        (
            "backend: {database: {connection: ./data/catalog.sqlite}}",
            DatabaseClient::BetterSqlite3,
            Some(json!("./data/catalog.sqlite")),
        ),
        (
            "backend: {database: {client: sqlite}}",
            DatabaseClient::Sqlite,
            None,
        ),
        (
            "backend: {database: {client: sqlite3}}",
            DatabaseClient::Sqlite,
            None,
        ),
        (
            "backend: {database: {client: pg, connection: {host: db, port: 5432}}}",
            DatabaseClient::Pg,
            Some(json!({"host": "db", "port": 5432})),
        ),
        (
            "backend: {database: {client: pg, connection: 'postgres://u@db/x', pluginDivisionMode: schema}}",
            DatabaseClient::Pg,
            Some(json!("postgres://u@db/x")),
        ),
    ];
    for (text, client, connection) in cases {
        let (_ws, _file, loaded) = load_ok(text, &[]);
        assert_eq!(loaded.config.backend.database.client, client, "[{text}]");
        assert_eq!(
            loaded.config.backend.database.connection, connection,
            "[{text}]"
        );
        assert_eq!(loaded.warnings, Vec::<String>::new(), "[{text}]");
    }
}

#[test]
fn unsupported_database_clients_are_errors_at_the_client_key() {
    for client in ["mysql", "postgres", "PG", "mssql"] {
        let text = format!("backend: {{database: {{client: {client}}}}}");
        let (_ws, file, err) = load_err(&text, &[]);
        let message = assert_invalid(client, &err, &Origin::File(file), "backend.database.client");
        assert_eq!(
            message,
            format!("unsupported client '{client}'; use better-sqlite3, sqlite or pg")
        );
    }
}

// ---------------------------------------------------------------------------
// integrations.bitbucketServer
// ---------------------------------------------------------------------------

#[test]
fn server_integrations_resolve_api_base_url_and_auth() {
    let cases: [(&str, Vars, &str, &str, Auth); 9] = [
        (
            "{host: bitbucket.example.com}",
            &[],
            "bitbucket.example.com",
            "https://bitbucket.example.com/rest/api/1.0",
            Auth::Anonymous,
        ),
        (
            "{host: 'bitbucket.example.com:8443'}",
            &[],
            "bitbucket.example.com:8443",
            "https://bitbucket.example.com:8443/rest/api/1.0",
            Auth::Anonymous,
        ),
        (
            "{host: ' bitbucket.example.com '}",
            &[],
            "bitbucket.example.com",
            "https://bitbucket.example.com/rest/api/1.0",
            Auth::Anonymous,
        ),
        (
            "{host: bitbucket.example.com, apiBaseUrl: 'https://bitbucket.example.com/bitbucket/rest/api/1.0/'}",
            &[],
            "bitbucket.example.com",
            "https://bitbucket.example.com/bitbucket/rest/api/1.0",
            Auth::Anonymous,
        ),
        (
            "{host: bitbucket.example.com, apiBaseUrl: 'http://10.0.0.5:7990/rest/api/1.0'}",
            &[],
            "bitbucket.example.com",
            "http://10.0.0.5:7990/rest/api/1.0",
            Auth::Anonymous,
        ),
        (
            "{host: bitbucket.example.com, token: server-token}",
            &[],
            "bitbucket.example.com",
            "https://bitbucket.example.com/rest/api/1.0",
            bearer("server-token"),
        ),
        (
            "{host: bitbucket.example.com, username: svc, password: server-password}",
            &[],
            "bitbucket.example.com",
            "https://bitbucket.example.com/rest/api/1.0",
            basic("svc", "server-password"),
        ),
        (
            "{host: bitbucket.example.com, token: wins, username: svc, password: loses}",
            &[],
            "bitbucket.example.com",
            "https://bitbucket.example.com/rest/api/1.0",
            bearer("wins"),
        ),
        (
            "{host: '${BB_HOST}', token: '${BB_TOKEN}'}",
            &[("BB_HOST", "git.example.org"), ("BB_TOKEN", "t-from-env")],
            "git.example.org",
            "https://git.example.org/rest/api/1.0",
            bearer("t-from-env"),
        ),
    ];
    for (entry, pairs, host, api, auth) in cases {
        let text = format!("integrations: {{bitbucketServer: [{entry}]}}");
        let (_ws, _file, loaded) = load_ok(&text, pairs);
        let server = &loaded.config.integrations.bitbucket_server;
        assert_eq!(server.len(), 1, "[{entry}]");
        assert_eq!(server[0].host, host, "[{entry}]");
        assert_eq!(server[0].api_base_url.as_str(), api, "[{entry}]");
        assert_eq!(server[0].auth, auth, "[{entry}]");
        assert_eq!(loaded.warnings, Vec::<String>::new(), "[{entry}]");
        // Server integrations do not replace the implicit Cloud one.
        assert_only_default_cloud(entry, &loaded.config.integrations);
    }
}

#[test]
fn several_server_integrations_keep_their_order_and_are_found_by_host() {
    let (_ws, _file, loaded) = load_ok(
        "
        integrations:
          bitbucketServer:
            - {host: a.example.com, token: a}
            - {host: b.example.com, username: u, password: b}
        ",
        &[],
    );
    let integrations = &loaded.config.integrations;
    assert_eq!(
        integrations.server_hosts(),
        vec!["a.example.com", "b.example.com"]
    );
    assert_eq!(
        integrations.server("B.EXAMPLE.COM").map(|i| &i.auth),
        Some(&basic("u", "b"))
    );
    assert!(integrations.server("c.example.com").is_none());
}

#[test]
fn invalid_server_integrations_are_errors_at_their_key() {
    let cases = [
        (
            "[{token: x}]",
            "integrations.bitbucketServer[0]",
            "missing field `host`",
        ),
        (
            "[{host: 'https://bitbucket.example.com'}]",
            "integrations.bitbucketServer[0].host",
            "'https://bitbucket.example.com' has a scheme; write only the host (and port), e.g. bitbucket.example.com, and put the full URL in apiBaseUrl",
        ),
        (
            "[{host: ''}]",
            "integrations.bitbucketServer[0].host",
            "host is empty",
        ),
        (
            "[{host: bitbucket.example.com/scm}]",
            "integrations.bitbucketServer[0].host",
            "'bitbucket.example.com/scm' is not a host or host:port",
        ),
        (
            "[{host: bitbucket.example.com, username: svc}]",
            "integrations.bitbucketServer[0].password",
            "username is set without password",
        ),
        (
            "[{host: bitbucket.example.com, password: pw}]",
            "integrations.bitbucketServer[0].username",
            "password is set without username",
        ),
        (
            "[{host: bitbucket.example.com, apiBaseUrl: 'ftp://bitbucket.example.com/rest'}]",
            "integrations.bitbucketServer[0].apiBaseUrl",
            "must start with https://",
        ),
        (
            "[{host: bitbucket.example.com, apiBaseUrl: not a url}]",
            "integrations.bitbucketServer[0].apiBaseUrl",
            "'not a url' is not a URL",
        ),
        (
            "[{host: bitbucket.example.com, apiBaseUrl: 'https://u:p@bitbucket.example.com/rest'}]",
            "integrations.bitbucketServer[0].apiBaseUrl",
            "credentials do not belong in the URL",
        ),
        (
            "[{host: a.example.com}, {host: 'http://b.example.com'}]",
            "integrations.bitbucketServer[1].host",
            "has a scheme",
        ),
        (
            "[{host: a.example.com}, {host: b.example.com}, {host: a.example.com, token: t}]",
            "integrations.bitbucketServer[2].host",
            "host 'a.example.com' is configured twice; merge the entries",
        ),
        (
            "[{host: a.example.com}, {host: A.Example.COM}]",
            "integrations.bitbucketServer[1].host",
            "is configured twice",
        ),
        (
            "{host: a.example.com}",
            "integrations.bitbucketServer",
            "expected a sequence",
        ),
        (
            "[{host: a.example.com, token: [t]}]",
            "integrations.bitbucketServer[0].token",
            "invalid type",
        ),
    ];
    for (entries, key, fragment) in cases {
        let text = format!("integrations: {{bitbucketServer: {entries}}}");
        let (_ws, file, err) = load_err(&text, &[]);
        let message = assert_invalid(entries, &err, &Origin::File(file), key);
        assert_message_contains(entries, &message, fragment);
    }
}

// ---------------------------------------------------------------------------
// integrations.bitbucketCloud
// ---------------------------------------------------------------------------

#[test]
fn cloud_integrations_resolve_auth() {
    let cases: [(&str, Auth); 5] = [
        (
            "[{username: dev@example.com, token: cloud-api-token}]",
            basic("dev@example.com", "cloud-api-token"),
        ),
        (
            "[{token: cloud-access-token}]",
            bearer("cloud-access-token"),
        ),
        ("[{}]", Auth::Anonymous),
        ("[{host: bitbucket.org}]", Auth::Anonymous),
        (
            "[{apiBaseUrl: 'https://api.bitbucket.org/2.0/', token: t}]",
            bearer("t"),
        ),
    ];
    for (entries, auth) in cases {
        let text = format!("integrations: {{bitbucketCloud: {entries}}}");
        let (_ws, _file, loaded) = load_ok(&text, &[]);
        let cloud = &loaded.config.integrations.bitbucket_cloud;
        assert_eq!(cloud.len(), 1, "[{entries}]");
        assert_eq!(cloud[0].host, "bitbucket.org", "[{entries}]");
        assert_eq!(
            cloud[0].api_base_url.as_str(),
            "https://api.bitbucket.org/2.0",
            "[{entries}]"
        );
        assert_eq!(cloud[0].auth, auth, "[{entries}]");
        assert_eq!(loaded.warnings, Vec::<String>::new(), "[{entries}]");
    }
}

#[test]
fn cloud_app_password_still_works_but_warns_that_app_passwords_were_removed() {
    let (_ws, file, loaded) = load_ok(
        "integrations: {bitbucketCloud: [{username: dev, appPassword: cloud-app-password}]}",
        &[],
    );
    let cloud = &loaded.config.integrations.bitbucket_cloud;
    assert_eq!(cloud.len(), 1);
    assert_eq!(cloud[0].auth, basic("dev", "cloud-app-password"));
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let warning = &loaded.warnings[0];
    for fragment in [
        file.display().to_string().as_str(),
        "appPassword",
        "removed app passwords",
        "create an API token",
    ] {
        assert_message_contains("app password warning", warning, fragment);
    }
    assert!(!warning.contains("cloud-app-password"), "{warning}");
}

#[test]

fn cloud_app_password_warning_uses_the_display_key() {
    let (_ws, file, loaded) = load_ok(
        "integrations: {bitbucketCloud: [{username: dev, appPassword: cloud-app-password}]}",
        &[],
    );
    assert_eq!(
        loaded.warnings,
        vec![format!(
            "{}: integrations.bitbucketCloud[0].appPassword: Atlassian removed app passwords in July 2026; create an API token and set integrations.bitbucketCloud[0].token instead",
            file.display()
        )]
    );
}

#[test]
fn empty_or_absent_cloud_list_means_one_anonymous_bitbucket_org() {
    for text in [
        "{}",
        "integrations: {}",
        "integrations: {bitbucketCloud: []}",
        "integrations: {bitbucketCloud: ~}",
        // A list holding only an unset variable ends up empty.
        "integrations: {bitbucketCloud: ['${UNSET_ENTRY}']}",
    ] {
        let (_ws, _file, loaded) = load_ok(text, &[]);
        assert_only_default_cloud(text, &loaded.config.integrations);
    }
}

#[test]
fn invalid_cloud_integrations_are_errors_at_their_key() {
    let cases = [
        (
            "[{username: dev}]",
            "integrations.bitbucketCloud[0].token",
            "username is set without token",
        ),
        (
            "[{appPassword: ap}]",
            "integrations.bitbucketCloud[0].username",
            "appPassword is set without username",
        ),
        (
            "[{token: t}, {host: 'https://bitbucket.org'}]",
            "integrations.bitbucketCloud[1].host",
            "has a scheme",
        ),
        (
            "[{apiBaseUrl: 'ssh://api.bitbucket.org/2.0'}]",
            "integrations.bitbucketCloud[0].apiBaseUrl",
            "must start with https://",
        ),
    ];
    for (entries, key, fragment) in cases {
        let text = format!("integrations: {{bitbucketCloud: {entries}}}");
        let (_ws, file, err) = load_err(&text, &[]);
        let message = assert_invalid(entries, &err, &Origin::File(file), key);
        assert_message_contains(entries, &message, fragment);
    }
}

// ---------------------------------------------------------------------------
// catalog.providers.bitbucketServer
// ---------------------------------------------------------------------------

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
    assert_eq!(provider.catalog_path, "catalog-info.yaml");
    assert!(provider.filters.project_key.is_none());
    assert!(provider.filters.repo_slug.is_none());
    assert!(!provider.filters.skip_archived_repos);
    assert_eq!(provider.filters.branch, None);
    assert_eq!(provider.concurrency, 8);
    assert_eq!(
        provider.schedule,
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
        loaded.config.provider("zeta").unwrap().catalog_path,
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
        assert_eq!(main_provider(&loaded).catalog_path, expected, "[{fields}]");
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
fn concurrency_defaults_to_8_and_accepts_1_to_64() {
    let cases: [(&str, Vars, usize); 6] = [
        ("", &[], 8),
        ("concurrency: 1", &[], 1),
        ("concurrency: 64", &[], 64),
        ("concurrency: 16", &[], 16),
        ("concurrency: '3'", &[], 3),
        (
            "concurrency: '${CONCURRENCY}'",
            &[("CONCURRENCY", "12")],
            12,
        ),
    ];
    for (fields, pairs, expected) in cases {
        let (_ws, _file, loaded) = load_ok(&with_provider(fields), pairs);
        assert_eq!(main_provider(&loaded).concurrency, expected, "[{fields}]");
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

// ---------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------

#[test]
fn schedules_accept_the_backstage_forms() {
    let default_timeout = minutes(15);
    let cases = [
        (
            "",
            Schedule {
                frequency: Frequency::Every(minutes(30)),
                timeout: default_timeout,
                initial_delay: None,
            },
        ),
        (
            "schedule: {}",
            Schedule {
                frequency: Frequency::Every(minutes(30)),
                timeout: default_timeout,
                initial_delay: None,
            },
        ),
        (
            "schedule: {frequency: {minutes: 5}}",
            Schedule {
                frequency: Frequency::Every(minutes(5)),
                timeout: default_timeout,
                initial_delay: None,
            },
        ),
        (
            "schedule: {frequency: PT10M, timeout: PT3M}",
            Schedule {
                frequency: Frequency::Every(minutes(10)),
                timeout: minutes(3),
                initial_delay: None,
            },
        ),
        (
            "schedule: {frequency: {cron: '*/30 * * * *'}, timeout: {minutes: 10}}",
            Schedule {
                frequency: Frequency::Cron("*/30 * * * *".into()),
                timeout: minutes(10),
                initial_delay: None,
            },
        ),
        (
            "schedule: {frequency: {trigger: manual}}",
            Schedule {
                frequency: Frequency::Manual,
                timeout: default_timeout,
                initial_delay: None,
            },
        ),
        (
            "schedule: {frequency: {hours: 1, minutes: 30}, initialDelay: {seconds: 30}}",
            Schedule {
                frequency: Frequency::Every(minutes(90)),
                timeout: default_timeout,
                initial_delay: Some(Duration::from_secs(30)),
            },
        ),
        (
            "schedule: {initialDelay: PT1M, scope: global}",
            Schedule {
                frequency: Frequency::Every(minutes(30)),
                timeout: default_timeout,
                initial_delay: Some(minutes(1)),
            },
        ),
    ];
    for (fields, expected) in cases {
        let (_ws, _file, loaded) = load_ok(&with_provider(fields), &[]);
        assert_eq!(main_provider(&loaded).schedule, expected, "[{fields}]");
        assert_eq!(loaded.warnings, Vec::<String>::new(), "[{fields}]");
    }
}

#[test]
fn invalid_schedules_are_errors_at_the_schedule_key() {
    let cases = [
        (
            "schedule: {frequency: {cron: 'not a cron'}}",
            "schedule.frequency",
            "cron expression 'not a cron' has 3 fields",
        ),
        (
            "schedule: {frequency: {cron: '99 * * * *'}}",
            "schedule.frequency",
            "invalid cron expression '99 * * * *'",
        ),
        (
            "schedule: {frequency: {trigger: hourly}}",
            "schedule.frequency",
            "the only supported trigger is `manual`",
        ),
        (
            "schedule: {frequency: {minuts: 5}}",
            "schedule.frequency",
            "unknown duration unit `minuts`",
        ),
        (
            "schedule: {frequency: PT0S}",
            "schedule.frequency",
            "must be longer than zero",
        ),
        (
            "schedule: {frequency: every 5 minutes}",
            "schedule.frequency",
            "is not an ISO-8601 duration",
        ),
        (
            "schedule: {timeout: 30 minutes}",
            "schedule.timeout",
            "is not an ISO-8601 duration",
        ),
        (
            "schedule: {timeout: {minutes: 0}}",
            "schedule.timeout",
            "must be longer than zero",
        ),
        (
            "schedule: {initialDelay: soon}",
            "schedule.initialDelay",
            "is not an ISO-8601 duration",
        ),
        ("schedule: PT5M", "schedule", "expected an object"),
    ];
    for (fields, sub, fragment) in cases {
        let (_ws, file, err) = load_err(&with_provider(fields), &[]);
        let message = assert_invalid(fields, &err, &Origin::File(file), &format!("{MAIN}.{sub}"));
        assert_message_contains(fields, &message, fragment);
    }
}

// ---------------------------------------------------------------------------
// Unknown keys
// ---------------------------------------------------------------------------

#[test]
fn unknown_keys_in_our_sections_warn_with_the_full_key_path() {
    let cases = [
        (
            with_provider("catalogPth: x.yaml"),
            format!("{MAIN}.catalogPth"),
            "catalogPath",
        ),
        (
            with_provider("filters: {projetKey: X}"),
            format!("{MAIN}.filters.projetKey"),
            "projectKey",
        ),
        (
            format!(
                "{ONE_SERVER}catalog: {{providers: {{bitbucketServer: {{host: bitbucket.example.com, catalogPth: x}}}}}}"
            ),
            "catalog.providers.bitbucketServer.catalogPth".to_owned(),
            "catalogPath",
        ),
        (
            "integrations: {bitbucketCloud: [{hots: bitbucket.org, token: t}]}".to_owned(),
            "integrations.bitbucketCloud[0].hots".to_owned(),
            "host",
        ),
        (
            "integrations: {bitbucketServer: [{host: a.example.com}, {host: b.example.com, apiBaseURL: 'https://b'}]}"
                .to_owned(),
            "integrations.bitbucketServer[1].apiBaseURL".to_owned(),
            "apiBaseUrl",
        ),
        (
            "backend: {listen: {prot: 7008}}".to_owned(),
            "backend.listen.prot".to_owned(),
            "port",
        ),
    ];
    for (text, key, meant) in cases {
        let (_ws, file, loaded) = load_ok(&text, &[]);
        assert_eq!(
            loaded.warnings,
            vec![format!(
                "{}: {key}: unknown key is ignored; check its spelling (did you mean `{meant}`?)",
                file.display()
            )],
            "[{text}]"
        );
    }
}

#[test]
fn unknown_schedule_keys_warn_with_the_full_key_path() {
    let (_ws, _file, loaded) = load_ok(&with_provider("schedule: {frequncy: {minutes: 5}}"), &[]);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_message_contains(
        "frequncy",
        &loaded.warnings[0],
        "catalog.providers.bitbucketServer.main.schedule.frequncy",
    );
    assert_message_contains("frequncy", &loaded.warnings[0], "unknown key");
    // The misspelt key is ignored, so the default frequency applies.
    assert_eq!(
        main_provider(&loaded).schedule.frequency,
        Frequency::Every(minutes(30))
    );
}

#[test]
fn other_backstage_sections_produce_no_warnings() {
    let (_ws, _file, loaded) = load_ok(
        "
        app:
          title: Developer Portal
          baseUrl: http://localhost:3000
        organization:
          name: Example
        backend:
          baseUrl: http://localhost:7007
          cors: {origin: http://localhost:3000, credentials: true}
          auth:
            keys:
              - secret: backend-secret
          listen: {port: 7007}
          database: {client: better-sqlite3, connection: ':memory:'}
        integrations:
          github:
            - host: github.com
              token: ghp-token
          gitlab:
            - host: gitlab.com
          bitbucketServer:
            - host: bitbucket.example.com
        catalog:
          rules:
            - allow: [Component, API]
          locations:
            - type: url
              target: https://bitbucket.example.com/projects/P/repos/r/browse/catalog-info.yaml
          providers:
            github:
              main: {organization: example}
            bitbucketServer:
              main: {host: bitbucket.example.com}
        techdocs:
          builder: local
        auth:
          providers: {}
        ",
        &[],
    );
    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert_eq!(
        loaded.config.tree["organization"],
        json!({"name": "Example"})
    );
    assert_eq!(loaded.config.providers.len(), 1);
    assert_eq!(loaded.config.locations.locations.len(), 1);
}

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
    assert_eq!(cloud.catalog_path, "catalog-info.yaml");
    assert_eq!(cloud.pagelen, 100);
    assert_eq!(cloud.schedule.frequency, Frequency::Every(minutes(30)));
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

const SECRETS: [&str; 7] = [
    "server-token-s3cr3t",
    "server-password-s3cr3t",
    "cloud-app-password-s3cr3t",
    "cloud-token-s3cr3t",
    "db-password-s3cr3t",
    "file-token-s3cr3t",
    "env-token-s3cr3t",
];

/// A config holding every kind of credential, with secrets from the file,
/// `$file`, `${VAR}` and `$env`.
fn load_with_secrets() -> (Workspace, Loaded) {
    let ws = Workspace::new();
    ws.write("token.txt", "file-token-s3cr3t\n");
    let file = ws.config(
        "app-config.yaml",
        "
        backend:
          database:
            client: pg
            connection:
              host: db.internal
              user: catalog
              password: db-password-s3cr3t
        integrations:
          bitbucketServer:
            - host: a.example.com
              token: server-token-s3cr3t
            - host: b.example.com
              username: svc
              password: server-password-s3cr3t
            - host: c.example.com
              token: {$file: token.txt}
            - host: d.example.com
              token: '${D_TOKEN}'
          bitbucketCloud:
            - username: dev@example.com
              appPassword: cloud-app-password-s3cr3t
            - username: ci@example.com
              token: cloud-token-s3cr3t
        ",
    );
    let loaded = Config::load(&[file], &env(&[("D_TOKEN", "env-token-s3cr3t")])).expect("loads");
    (ws, loaded)
}

#[test]
fn redacted_tree_hides_every_credential() {
    let (_ws, loaded) = load_with_secrets();
    // The secrets really are in the config (so the checks below mean something).
    let raw = serde_json::to_string(&loaded.config.tree).unwrap();
    for secret in SECRETS {
        assert!(raw.contains(secret), "{secret} missing from the raw tree");
    }
    assert_eq!(
        loaded.config.integrations.bitbucket_server[2].auth,
        bearer("file-token-s3cr3t")
    );

    let redacted = loaded.config.redacted_tree();
    let text = serde_json::to_string(&redacted).unwrap();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    for path in [
        "integrations.bitbucketServer.0.token",
        "integrations.bitbucketServer.1.password",
        "integrations.bitbucketServer.2.token",
        "integrations.bitbucketServer.3.token",
        "integrations.bitbucketCloud.0.appPassword",
        "integrations.bitbucketCloud.1.token",
        "backend.database.connection.password",
    ] {
        assert_eq!(at(&redacted, path), "<redacted>", "{path}");
    }
    // Everything else is kept as is.
    assert_eq!(
        at(&redacted, "integrations.bitbucketServer.1.username"),
        "svc"
    );
    assert_eq!(
        at(&redacted, "integrations.bitbucketCloud.0.username"),
        "dev@example.com"
    );
    assert_eq!(
        at(&redacted, "backend.database.connection.host"),
        "db.internal"
    );
    assert_eq!(
        at(&redacted, "integrations.bitbucketServer.0.host"),
        "a.example.com"
    );
}

#[test]
fn redacted_tree_hides_credentials_in_a_connection_url() {
    let (_ws, _file, loaded) = load_ok(
        "backend: {database: {client: pg, connection: 'postgres://catalog:db-url-s3cr3t@db/catalog'}}",
        &[],
    );
    let redacted = loaded.config.redacted_tree();
    assert_eq!(at(&redacted, "backend.database.connection"), "<redacted>");
    assert!(
        !serde_json::to_string(&redacted)
            .unwrap()
            .contains("db-url-s3cr3t")
    );
}

#[test]
fn resolved_integrations_never_print_credentials() {
    let (_ws, loaded) = load_with_secrets();
    let integrations = &loaded.config.integrations;
    let debug = format!("{integrations:?}");
    let json = serde_json::to_string(integrations).unwrap();
    for out in [&debug, &json] {
        for secret in SECRETS {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
        assert!(out.contains("<redacted>"), "{out}");
    }
}

#[test]

fn debug_output_of_config_never_contains_credentials() {
    let (_ws, loaded) = load_with_secrets();
    let debug = format!("{:?}", loaded.config);
    for secret in SECRETS {
        assert!(!debug.contains(secret), "{secret} leaked in Debug output");
    }
    let debug = format!("{loaded:?}");
    for secret in SECRETS {
        assert!(
            !debug.contains(secret),
            "{secret} leaked in Debug of Loaded"
        );
    }
}

// ---------------------------------------------------------------------------
// NODE_EXTRA_CA_CERTS
// ---------------------------------------------------------------------------

#[test]
fn extra_ca_file_comes_from_node_extra_ca_certs() {
    let cases: [(Vars, Option<PathBuf>); 3] = [
        (&[], None),
        (&[("NODE_EXTRA_CA_CERTS", "")], None),
        (
            &[("NODE_EXTRA_CA_CERTS", "/etc/ssl/extra/corp-ca.pem")],
            Some(PathBuf::from("/etc/ssl/extra/corp-ca.pem")),
        ),
    ];
    for (pairs, expected) in cases {
        let (_ws, _file, loaded) = load_ok("{}", pairs);
        assert_eq!(loaded.config.extra_ca_file, expected, "{pairs:?}");
    }
}

// ---------------------------------------------------------------------------
// catalog.providers.bitbucketCloud
// ---------------------------------------------------------------------------

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
    assert_eq!(cloud.catalog_path, "services/catalog-info.yaml");
    assert_eq!((cloud.pagelen, cloud.concurrency), (50, 4));
    assert_eq!(cloud.schedule.frequency, Frequency::Every(minutes(10)));
    assert_eq!(cloud.schedule.timeout, minutes(3));
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
        .map(|p| (p.id.as_str(), p.workspace.as_str(), p.catalog_path.as_str()))
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

// ---------------------------------------------------------------------------
// catalog.locations, catalog.locationSchedule
// ---------------------------------------------------------------------------

#[test]
fn locations_this_daemon_cannot_read_are_skipped_with_a_warning() {
    let (_ws, _file, loaded) = load_ok(
        &format!(
            "{ONE_SERVER}catalog:
  locations:
    - {{type: url, target: 'https://bitbucket.example.com/projects/P/repos/r/browse/catalog-info.yaml'}}
    - {{type: url, target: 'https://bitbucket.org/acme/repo/src/main/catalog-info.yaml', rules: [{{allow: [Group, User]}}]}}
    - {{type: url, target: 'https://github.com/acme/repo/blob/main/catalog-info.yaml'}}
    - {{type: file, target: ../../examples/entities.yaml}}
    - {{type: url, target: 'https://bitbucket.example.com/projects/P/repos/r/browse/catalog-info.yaml'}}
  locationSchedule: {{frequency: {{hours: 1}}, timeout: PT2M}}
"
        ),
        &[],
    );
    let targets: Vec<&str> = loaded
        .config
        .locations
        .locations
        .iter()
        .map(|l| l.target.as_str())
        .collect();
    assert_eq!(
        targets,
        vec![
            "https://bitbucket.example.com/projects/P/repos/r/browse/catalog-info.yaml",
            "https://bitbucket.org/acme/repo/src/main/catalog-info.yaml"
        ]
    );
    assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
    assert_message_contains("github", &loaded.warnings[0], "catalog.locations[2].target");
    assert_message_contains(
        "github",
        &loaded.warnings[0],
        "host 'github.com' is not a configured Bitbucket integration",
    );
    assert_message_contains("file", &loaded.warnings[1], "catalog.locations[3].type");
    assert_message_contains("twice", &loaded.warnings[2], "catalog.locations[4].target");
    let schedule = &loaded.config.locations.schedule;
    assert_eq!(schedule.frequency, Frequency::Every(minutes(60)));
    assert_eq!(schedule.timeout, minutes(2));
    // A location's own rules allow more kinds from that location only.
    let rules = &loaded.config.catalog.rules;
    let cloud = "https://bitbucket.org/acme/repo/src/main/catalog-info.yaml";
    assert!(rules.is_allowed("Group", None, "url", cloud));
    assert!(!rules.is_allowed("Group", None, "url", targets[0]));
    assert!(rules.is_allowed("Component", None, "url", targets[0]));
}

#[test]
fn the_location_schedule_defaults_to_every_30_minutes() {
    let (_ws, _file, loaded) = load_ok("catalog: {}", &[]);
    assert_eq!(loaded.config.locations.schedule, Schedule::default());
    assert!(loaded.config.locations.locations.is_empty());
    let (_ws, file, err) = load_err("catalog: {locations: [{type: url}]}", &[]);
    assert_invalid(
        "no target",
        &err,
        &Origin::File(file),
        "catalog.locations[0].target",
    );
}

// ---------------------------------------------------------------------------
// backend.auth.externalAccess
// ---------------------------------------------------------------------------

#[test]
fn static_external_access_tokens_protect_writes_and_stay_secret() {
    let (_ws, _file, loaded) = load_ok(
        "
        backend:
          auth:
            keys: [{secret: legacy-secret}]
            externalAccess:
              - type: static
                options: {token: '${PORTAL_TOKEN}', subject: portal}
              - type: static
                options: {token: importer-token-value, subject: importer}
                accessRestrictions:
                  - plugin: scaffolder
                  - plugin: catalog
                    permission: [catalog.location.create]
              - type: jwks
                options: {url: 'https://example.com/jwks', issuer: x}
        ",
        &[("PORTAL_TOKEN", "portal-token-value")],
    );
    let access = &loaded.config.backend.external_access;
    assert!(access.protected);
    assert_eq!(access.tokens.len(), 2);
    assert_eq!(access.tokens[0].token, Secret::new("portal-token-value"));
    assert_eq!(access.tokens[0].permissions, None);
    assert_eq!(
        access.tokens[1].permissions,
        Some(vec!["catalog.location.create".to_owned()])
    );
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_message_contains(
        "jwks",
        &loaded.warnings[0],
        "backend.auth.externalAccess[2].type",
    );
    let debug = format!("{:?}", loaded.config);
    let tree = loaded.config.redacted_tree().to_string();
    for out in [debug, tree] {
        assert!(!out.contains("portal-token-value"), "{out}");
        assert!(!out.contains("importer-token-value"), "{out}");
    }

    let (_ws, _file, loaded) = load_ok("backend: {auth: {keys: [{secret: s}]}}", &[]);
    assert!(!loaded.config.backend.external_access.protected);
}

#[test]
fn bad_external_access_entries_are_errors() {
    let base = "backend.auth.externalAccess";
    let cases: [(&str, &str, &str); 6] = [
        (
            "[{type: static, options: {token: short, subject: s}}]",
            "backend.auth.externalAccess[0].options.token",
            "at least 8 characters",
        ),
        (
            "[{type: static, options: {token: 'has space 123', subject: s}}]",
            "backend.auth.externalAccess[0].options.token",
            "non-space",
        ),
        (
            "[{type: static, options: {token: long-enough-token}}]",
            "backend.auth.externalAccess[0].options.subject",
            "Illegal subject",
        ),
        (
            "[{type: static, options: {token: '${UNSET_TOKEN}', subject: s}}]",
            "backend.auth.externalAccess[0].options.token",
            "set that variable",
        ),
        (
            "[{type: static}]",
            "backend.auth.externalAccess[0].options",
            "required",
        ),
        ("{type: static}", base, "expected a list"),
    ];
    for (value, key, fragment) in cases {
        let (_ws, file, err) = load_err(
            &format!("backend: {{auth: {{externalAccess: {value}}}}}"),
            &[],
        );
        let message = assert_invalid(value, &err, &Origin::File(file), key);
        assert_message_contains(value, &message, fragment);
        assert!(!message.contains("long-enough-token"), "{message}");
    }
}
