//! Credentials never show in the redacted tree, resolved integrations or
//! `Debug` output.

use super::*;

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
