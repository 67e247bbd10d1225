//! `integrations.bitbucketServer`, `integrations.bitbucketCloud` and the extra
//! CA file from `NODE_EXTRA_CA_CERTS`.

use super::*;

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
