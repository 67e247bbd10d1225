//! A careless operator: `config check` redaction, token files, unset
//! variables, alias bombs, a corrupt store, a second daemon, manual providers.

use super::*;

// ---------------------------------------------------------------- 9: config check

/// `config check` on `yaml` (with `HARDENING_*` variables unset): its exit
/// code, stdout and stderr.
fn config_check(yaml: &str) -> (Option<i32>, String, String) {
    let (_dir, file) = crate::support::write_config(yaml);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
        .args(["config", "check", "--config", &file.display().to_string()])
        .env_remove("RUST_LOG")
        .env_remove("HARDENING_UNSET_BB_HOST")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_redacts_shared_sections_urls_and_misspelled_secrets() {
    let (code, stdout, stderr) = config_check(
        "integrations:\n  bitbucketServer:\n    - host: bb.example.com\n      tokn: typo-s3cret-1\n\
         proxy:\n  endpoints:\n    /jira:\n      target: https://jira.example.com\n      headers:\n        Authorization: Basic auth-s3cret-2\n        X-Api-Key: apikey-s3cret-3\n        Cookie: session=cookie-s3cret-4\n\
         sentry:\n  dsn: https://dsnuser-s3cret-5@o1.ingest.sentry.io/42\n\
         app:\n  homepage: https://webuser:url-s3cret-6@portal.example.com/\n\
         auth:\n  providers:\n    saml:\n      decryptionPassphrase: pass-s3cret-7\n\
         azure:\n  connectionString: AccountName=a;AccountKey=conn-s3cret-8\n\
         catalog:\n  processing:\n    pasword: typo-s3cret-9\n  providers:\n    bitbucketServer:\n      host: bb.example.com\n      filters:\n        projectKey: '^PLAT$'\n",
    );
    let printed = format!("{stdout}{stderr}");
    assert_eq!(code, Some(0), "{printed}");
    for n in 1..=9 {
        assert!(
            !printed.contains(&format!("s3cret-{n}")),
            "secret {n} leaked:\n{printed}"
        );
    }
    assert!(
        printed.contains("https://<redacted>@portal.example.com/"),
        "{printed}"
    );
    assert!(
        printed.contains("^PLAT$"),
        "filters stay readable:\n{printed}"
    );
    assert!(
        printed.contains("tokn"),
        "the warning names the key:\n{printed}"
    );
}

// ---------------------------------------------------------------- 13: tokens

#[tokio::test]
async fn a_token_with_a_trailing_newline_works_and_a_broken_one_names_its_key() {
    let fake = FakeServer::with_authorization("Bearer t0ken-value").await;
    fake.mount_components("PLAT", &["svc"]).await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "      token: \"t0ken-value\\n\"\n",
        "",
    ))
    .await;
    let status = app.wait_for_run("main", |s| s["inProgress"] == false).await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    assert_eq!(app.entity_names().await, vec!["svc".to_owned()]);
    app.stop().await;

    let (code, _, stderr) = config_check(&server_config(
        &fake,
        "      token: \"t0ken\\nvalue\"\n",
        "",
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("integrations.bitbucketServer[0].token"),
        "{stderr}"
    );
    assert!(stderr.contains("line break"), "{stderr}");
    assert!(!stderr.contains("t0ken"), "{stderr}");
}

// ---------------------------------------------------------------- 18: unset variables

#[test]
fn an_unset_variable_in_a_required_key_is_named() {
    let (code, _, stderr) = config_check(
        "integrations:\n  bitbucketServer:\n    - host: ${HARDENING_UNSET_BB_HOST}\n      token: abcdefgh\n",
    );
    assert_eq!(code, Some(2), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.contains("missing field"))
        .unwrap_or_default();
    assert!(error.contains("HARDENING_UNSET_BB_HOST"), "{stderr}");
}

// ---------------------------------------------------------------- 15, 16: the store

async fn build_app(
    yaml: &str,
    database: &std::path::Path,
) -> Result<bitbucket_catalogd::Application, String> {
    let (_dir, file) = crate::support::write_config(yaml);
    let env = bitbucket_catalogd::Environment::from_pairs([
        ("APP_CONFIG_backend_listen_host", "127.0.0.1"),
        ("APP_CONFIG_backend_listen_port", "0"),
        (
            "APP_CONFIG_backend_database_connection",
            &database.display().to_string(),
        ),
    ]);
    let loaded = bitbucket_catalogd::Config::load(&[file], &env).expect("config loads");
    bitbucket_catalogd::Application::build(loaded.config)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_corrupt_row_is_skipped_and_a_corrupt_file_is_named() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["a", "b"]).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.sqlite");
    let yaml = server_config(&fake, "      maxRetries: 0\n", "");
    let app = TestApp::spawn_with_database(&yaml, &db.display().to_string()).await;
    app.wait_for_run("main", |s| s["entities"] == 2).await;
    app.stop().await;

    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE catalog_entities SET body = '{\"broken' WHERE entity_ref = 'component:default/a'",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE sources SET last_run = '{\"broken' WHERE id = 'main'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // Bitbucket is down now: what is served comes from the store (a broken
    // last run does not stop start-up).
    fake.server.reset().await;
    let app = TestApp::spawn_with_database(&yaml, &db.display().to_string()).await;
    let response = app.get("/api/catalog/entities").await.text().await.unwrap();
    let entities: Value = serde_json::from_str(&response).expect("GET /entities is valid JSON");
    let names: Vec<&str> = entities
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["b"]);
    app.stop().await;

    // Back up: one run reads the skipped row's file again, though it did
    // not change.
    fake.mount_components("PLAT", &["a", "b"]).await;
    let app = TestApp::spawn_with_database(&yaml, &db.display().to_string()).await;
    app.wait_for_run("main", |s| s["lastRun"]["outcome"]["status"] == "succeeded")
        .await;
    let mut names = app.entity_names().await;
    names.sort();
    assert_eq!(names, vec!["a", "b"]);
    app.stop().await;

    std::fs::write(&db, vec![b'x'; 8192]).unwrap();
    let error = build_app(&yaml, &db)
        .await
        .err()
        .expect("a corrupt database is an error");
    assert!(error.contains(&db.display().to_string()), "{error}");
}

#[tokio::test]
async fn a_second_daemon_on_one_database_is_refused() {
    let fake = FakeServer::builder().project("PLAT").start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.sqlite");
    let yaml = server_config(&fake, "", "");
    let first = TestApp::spawn_with_database(&yaml, &db.display().to_string()).await;
    let error = build_app(&yaml, &db)
        .await
        .err()
        .expect("the second daemon is refused");
    assert!(error.contains("another bitbucket-catalogd"), "{error}");
    assert!(error.contains("catalog.sqlite.lock"), "{error}");
    first.stop().await;
    // Once the first one stopped, the file is free again.
    assert!(build_app(&yaml, &db).await.is_ok());
}

// ---------------------------------------------------------------- 14: config alias bombs

#[test]
fn an_alias_bomb_in_the_config_is_an_error() {
    let mut yaml = String::from("x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for level in 1..=5 {
        let previous = format!("*x{}", level - 1);
        yaml.push_str(&format!(
            "x{level}: &x{level} [{}]\n",
            vec![previous; 10].join(", ")
        ));
    }
    // 2 × 10^6 scalars once expanded.
    yaml.push_str("bomb: [*x5, *x5]\n");
    let (_dir, file) = crate::support::write_config(&yaml);
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
        .args(["config", "check", "--config", &file.display().to_string()])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("config check did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("alias"), "{stderr}");
    assert!(stderr.contains("app-config.yaml"), "{stderr}");
}

// ---------------------------------------------------------------- 19: manual triggers

#[tokio::test]
async fn a_manual_provider_runs_only_when_asked() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["svc"]).await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { trigger: manual }\n",
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = app.get_json("/api/catalog/providers/main").await;
    assert!(status["lastRun"].is_null(), "{status:#}");
    assert_eq!(fake.server.received_requests().await.unwrap().len(), 0);
    let status = app.refresh("main", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    assert_eq!(app.entity_names().await, vec!["svc".to_owned()]);
    app.stop().await;
}
