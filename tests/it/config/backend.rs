//! `backend.listen`, `backend.database` and `backend.auth.externalAccess`.

use super::*;

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
