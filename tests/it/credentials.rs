//! Black-box: credentials that change while the daemon runs — a `$file`
//! token rotated by Kubernetes' symlink swap, and Bitbucket Cloud OAuth
//! client credentials against a fake token endpoint.

use std::path::Path;
use std::sync::{Arc, Mutex};

use wiremock::{Mock, Request, ResponseTemplate};

use crate::support::{FakeCloud, Hit, TestApp, cloud_config, component, with_write_token};

const WS: &str = "acme";

/// Matches a request whose `Authorization` is not one Bitbucket accepts now.
struct Refused(Arc<Mutex<Vec<String>>>);

impl wiremock::Match for Refused {
    fn matches(&self, request: &Request) -> bool {
        let sent = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        request.url.path().starts_with("/2.0") && !self.0.lock().unwrap().contains(&sent)
    }
}

/// A fake Cloud with one catalog file that answers 401 to any credential
/// not in the returned list.
async fn cloud_accepting(tokens: &[&str]) -> (FakeCloud, Arc<Mutex<Vec<String>>>) {
    let fake = FakeCloud::start().await;
    let accepted = Arc::new(Mutex::new(
        tokens.iter().map(|t| format!("Bearer {t}")).collect(),
    ));
    Mock::given(Refused(Arc::clone(&accepted)))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad credentials"))
        .with_priority(1)
        .mount(&fake.server)
        .await;
    fake.mount_projects(WS, &["P"], 10).await;
    let hit = Hit {
        project: "P",
        slug: "svc",
        branch: "main",
        commit: "c1",
        path: "catalog-info.yaml",
        path_matches: true,
    };
    fake.mount_search(WS, "P", &[hit], 10, 0).await;
    fake.mount_src(WS, "svc", "c1", "catalog-info.yaml", &component("svc"))
        .await;
    (fake, accepted)
}

/// The daemon reading its Cloud token from a mounted Secret that holds
/// `old-token` (version `2026_01`), against [`cloud_accepting`] that token;
/// `provider_extra`: more keys of the provider.
async fn token_file_app(
    provider_extra: &str,
) -> (
    tempfile::TempDir,
    FakeCloud,
    Arc<Mutex<Vec<String>>>,
    TestApp,
) {
    let secrets = tempfile::tempdir().unwrap();
    mount_secret(secrets.path(), "2026_01", "old-token");
    let (fake, accepted) = cloud_accepting(&["old-token"]).await;
    let integration = format!(
        "      token:\n        $file: {}\n",
        secrets.path().join("token").display()
    );
    let app = TestApp::spawn(&with_write_token(&cloud_config(
        &fake,
        WS,
        &integration,
        provider_extra,
    )))
    .await;
    (secrets, fake, accepted, app)
}

/// Kubernetes' layout of a mounted Secret: `token -> ..data/token`,
/// `..data -> ..<timestamp>/`; an update writes a new directory and
/// renames a new `..data` link over the old one.
fn mount_secret(dir: &Path, version: &str, token: &str) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("token"), format!("{token}\n")).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    if !dir.join("token").exists() {
        std::os::unix::fs::symlink("..data/token", dir.join("token")).unwrap();
    }
}

fn authorizations(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_token_file_swapped_by_symlink_is_used_without_restart_or_failed_run() {
    let (secrets, fake, accepted, app) = token_file_app("").await;
    let first = app.wait_for_run("cloud", |_| true).await;
    assert_eq!(
        first["lastRun"]["outcome"]["status"], "succeeded",
        "{first:#}"
    );

    // Rotated in Bitbucket with an overlap, then in the mounted Secret: once
    // the file is looked at again, requests carry the new token.
    accepted.lock().unwrap().push("Bearer new-token".into());
    mount_secret(secrets.path(), "2026_02", "new-token");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let seen = fake.server.received_requests().await.unwrap().len();
    let second = app.refresh("cloud", "").await;
    assert_eq!(
        second["lastRun"]["outcome"]["status"], "succeeded",
        "{second:#}"
    );
    let requests = fake.server.received_requests().await.unwrap();
    let after = authorizations(&requests[seen..]);
    assert!(!after.is_empty());
    assert!(after.iter().all(|a| a == "Bearer new-token"), "{after:?}");

    // Revoked at once (no overlap) and swapped right away: the 401 makes
    // the daemon read the file again and send the request once more.
    *accepted.lock().unwrap() = vec!["Bearer third-token".into()];
    mount_secret(secrets.path(), "2026_03", "third-token");
    let seen = requests.len();
    let third = app.refresh("cloud", "").await;
    assert_eq!(
        third["lastRun"]["outcome"]["status"], "succeeded",
        "{third:#}"
    );
    assert_eq!(
        third["lastRun"]["problems"],
        serde_json::json!([]),
        "{third:#}"
    );
    let requests = fake.server.received_requests().await.unwrap();
    let after = authorizations(&requests[seen..]);
    assert!(
        after.iter().filter(|a| *a != "Bearer third-token").count() <= 1,
        "{after:?}"
    );
    assert_eq!(after.last().map(String::as_str), Some("Bearer third-token"));
    // No value reaches the status.
    let status = app
        .get_json("/api/catalog/providers/cloud")
        .await
        .to_string();
    assert!(!status.contains("third-token") && !status.contains("old-token"));
    app.stop().await;
}

/// A token endpoint that issues `oauth-1`, `oauth-2`, … (the first living
/// one second, later ones an hour) and makes Bitbucket accept each.
struct TokenEndpoint {
    issued: Arc<Mutex<u32>>,
    accepted: Arc<Mutex<Vec<String>>>,
}

impl wiremock::Respond for TokenEndpoint {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut issued = self.issued.lock().unwrap();
        *issued += 1;
        let token = format!("oauth-{issued}");
        self.accepted
            .lock()
            .unwrap()
            .push(format!("Bearer {token}"));
        let expires_in = if *issued == 1 { 1 } else { 3600 };
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": token, "expires_in": expires_in, "token_type": "bearer",
            "scopes": "repository project"
        }))
    }
}

#[tokio::test]
async fn oauth_client_credentials_fetch_cache_renew_and_retry_once_on_a_401() {
    use wiremock::matchers::{body_string, header, method, path};
    let (fake, accepted) = cloud_accepting(&[]).await;
    let issued = Arc::new(Mutex::new(0));
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "consumer-key:consumer-s3cret",
    );
    Mock::given(method("POST"))
        .and(path("/site/oauth2/access_token"))
        .and(header("authorization", format!("Basic {basic}")))
        .and(body_string("grant_type=client_credentials"))
        .respond_with(TokenEndpoint {
            issued: Arc::clone(&issued),
            accepted: Arc::clone(&accepted),
        })
        .mount(&fake.server)
        .await;
    let integration = format!(
        "      clientId: consumer-key\n      clientSecret: consumer-s3cret\n      tokenUrl: {}/site/oauth2/access_token\n",
        fake.server.uri()
    );
    let app = TestApp::spawn(&with_write_token(&cloud_config(
        &fake,
        WS,
        &integration,
        "",
    )))
    .await;
    let first = app.wait_for_run("cloud", |_| true).await;
    assert_eq!(
        first["lastRun"]["outcome"]["status"], "succeeded",
        "{first:#}"
    );
    assert!(*issued.lock().unwrap() >= 1);

    // The first token expires: the next run fetches a new one first.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let requests = fake.server.received_requests().await.unwrap();
    let seen = requests.len();
    let second = app.refresh("cloud", "").await;
    assert_eq!(
        second["lastRun"]["outcome"]["status"], "succeeded",
        "{second:#}"
    );
    let latest = format!("Bearer oauth-{}", *issued.lock().unwrap());
    assert_ne!(latest, "Bearer oauth-1");
    let requests = fake.server.received_requests().await.unwrap();
    let api: Vec<&Request> = requests[seen..]
        .iter()
        .filter(|r| r.url.path().starts_with("/2.0"))
        .collect();
    assert!(!api.is_empty());
    assert!(
        authorizations(&api.into_iter().cloned().collect::<Vec<_>>())
            .iter()
            .all(|a| *a == latest)
    );

    // Cached: another run fetches no token. Then the token is revoked: one
    // 401, one new token, the request sent again, the run unharmed.
    let before = *issued.lock().unwrap();
    let third = app.refresh("cloud", "").await;
    assert_eq!(third["lastRun"]["outcome"]["status"], "succeeded");
    assert_eq!(*issued.lock().unwrap(), before, "a valid token is reused");
    accepted.lock().unwrap().clear();
    let fourth = app.refresh("cloud", "").await;
    assert_eq!(
        fourth["lastRun"]["outcome"]["status"], "succeeded",
        "{fourth:#}"
    );
    assert_eq!(fourth["lastRun"]["problems"], serde_json::json!([]));
    assert_eq!(*issued.lock().unwrap(), before + 1);
    let status = app
        .get_json("/api/catalog/providers/cloud")
        .await
        .to_string();
    assert!(!status.contains("consumer-s3cret") && !status.contains("oauth-"));
    app.stop().await;
}

#[tokio::test]
async fn oauth_keys_are_checked_as_a_pair_and_never_printed() {
    let (fake, _) = cloud_accepting(&[]).await;
    let half = cloud_config(&fake, WS, "      clientId: consumer-key\n", "");
    let (_dir, file) = crate::support::write_config(&half);
    let output = crate::support::run_on_config(&["config", "check"], &file).await;
    assert!(!output.status.success());
    assert!(
        crate::support::text(&output.stderr).contains("clientSecret"),
        "{}",
        crate::support::text(&output.stderr)
    );
    let both = cloud_config(
        &fake,
        WS,
        "      clientId: consumer-key\n      clientSecret: consumer-s3cret\n",
        "",
    );
    let (_dir, file) = crate::support::write_config(&both);
    let output = crate::support::run_on_config(&["config", "check"], &file).await;
    let all = format!(
        "{}{}",
        crate::support::text(&output.stdout),
        crate::support::text(&output.stderr)
    );
    assert!(output.status.success(), "{all}");
    assert!(!all.contains("consumer-s3cret"), "{all}");
}

/// The `/metrics` lines of `name` that carry `host="<host>"`.
async fn metric_lines(app: &TestApp, name: &str, host: &str) -> Vec<String> {
    let text = app.get("/metrics").await.text().await.unwrap();
    let host = format!("host=\"{host}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&host))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_token_file_swapped_while_idle_is_noticed_before_any_request() {
    let (secrets, fake, _, app) =
        token_file_app("        schedule: {frequency: {trigger: manual}}\n").await;
    let host = fake.host();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let seen = fake.server.received_requests().await.unwrap().len();
    assert!(
        metric_lines(&app, "bitbucket_credential_changes_total", &host)
            .await
            .is_empty()
    );

    mount_secret(secrets.path(), "2026_02", "new-token");
    let started = std::time::Instant::now();
    let changed = loop {
        let lines = metric_lines(&app, "bitbucket_credential_changes_total", &host).await;
        if !lines.is_empty() {
            break lines;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the rotation was not noticed within 5 s while idle"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(changed[0].ends_with(" 1"), "{changed:?}");
    assert!(!changed[0].contains("new-token") && !changed[0].contains("old-token"));
    assert_eq!(
        fake.server.received_requests().await.unwrap().len(),
        seen,
        "noticed without a request"
    );
    app.stop().await;
}

#[tokio::test]
async fn token_requests_are_counted_and_a_failing_token_endpoint_is_not_hammered() {
    use wiremock::matchers::{method, path};
    let (fake, _) = cloud_accepting(&[]).await;
    Mock::given(method("POST"))
        .and(path("/site/oauth2/access_token"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&fake.server)
        .await;
    let integration = format!(
        "      clientId: consumer-key\n      clientSecret: consumer-s3cret\n      tokenUrl: {}/site/oauth2/access_token\n      maxRetries: 3\n",
        fake.server.uri()
    );
    let app = TestApp::spawn(&with_write_token(&cloud_config(
        &fake,
        WS,
        &integration,
        "",
    )))
    .await;
    let first = app.wait_for_run("cloud", |_| true).await;
    assert_eq!(first["lastRun"]["outcome"]["status"], "failed", "{first:#}");
    let token_requests = |requests: &[Request]| {
        requests
            .iter()
            .filter(|r| r.url.path() == "/site/oauth2/access_token")
            .count()
    };
    let requests = fake.server.received_requests().await.unwrap();
    // Without a back-off every one of the 4 attempts asks for a token.
    let asked = token_requests(&requests);
    assert!((1..=2).contains(&asked), "{asked} token requests");
    assert!(!requests.iter().any(|r| r.url.path().starts_with("/2.0")));
    // Counted like other requests: in the run and in the metric.
    assert_eq!(
        first["lastRun"]["requestsByEndpoint"]["oauthToken"]["503"], asked,
        "{first:#}"
    );
    let counted = metric_lines(&app, "bitbucket_requests_total", &fake.host()).await;
    assert!(
        counted
            .iter()
            .any(|l| l.contains("endpoint=\"oauthToken\"") && l.contains("status=\"503\"")),
        "{counted:?}"
    );
    app.stop().await;
}
