//! Unknown keys warn with their full key path; other Backstage sections are
//! left alone.

use super::*;

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
        main_provider(&loaded).shared.schedule.frequency,
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
