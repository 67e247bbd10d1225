//! Reloading the config without a restart (SIGHUP to the real binary), and
//! providers that leave the config going through the deletion guard.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    FakeServer, TestApp, WRITE_TOKEN, free_port, serve_command, server_config, with_write_token,
};

const SLUGS: [&str; 12] = [
    "svc-00", "svc-01", "svc-02", "svc-03", "svc-04", "svc-05", "svc-06", "svc-07", "svc-08",
    "svc-09", "svc-10", "svc-11",
];

/// A fake Bitbucket Server with twelve repositories, one Component each.
async fn twelve_components() -> FakeServer {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 1000).await;
    let repos: Vec<(&str, bool)> = SLUGS.iter().map(|s| (*s, false)).collect();
    fake.mount_repos("PLAT", &repos, 1000).await;
    fake.mount_components("PLAT", &SLUGS).await;
    fake
}

/// `main` reading the repositories `repo_slug` matches, run by hand.
fn provider_config(fake: &FakeServer, repo_slug: &str) -> String {
    server_config(
        fake,
        "",
        &format!(
            "        schedule:\n          frequency: {{ minutes: 30 }}\n          timeout: {{ minutes: 1 }}\n        filters:\n          repoSlug: '{repo_slug}'\n"
        ),
    )
}

/// The binary serving `file` on a SQLite store in `dir`, killed on drop.
struct Daemon {
    child: Child,
    address: String,
    http: reqwest::Client,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    async fn start(file: &Path, dir: &Path) -> Self {
        let port = free_port();
        let child = serve_command(file, port)
            .env(
                "APP_CONFIG_backend_database_connection",
                dir.join("catalog.db").display().to_string(),
            )
            .spawn()
            .expect("serve starts");
        let daemon = Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        daemon
            .until("the daemon answers", |d| async move {
                d.http
                    .get(format!("{}/api/catalog/providers", d.address))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            })
            .await;
        daemon
    }

    fn hang_up(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    async fn json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request reaches the daemon")
            .json()
            .await
            .expect("JSON body")
    }

    async fn text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request reaches the daemon")
            .text()
            .await
            .expect("body")
    }

    async fn entities(&self) -> usize {
        self.json("/api/catalog/entities")
            .await
            .as_array()
            .map_or(0, Vec::len)
    }

    async fn refresh(&self, provider: &str, query: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!(
                "{}/api/catalog/providers/{provider}/refresh{query}",
                self.address
            ))
            .bearer_auth(WRITE_TOKEN)
            .send()
            .await
            .expect("refresh reaches the daemon");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls `check` for up to 20 s.
    async fn until<'a, F, Fut>(&'a self, what: &str, check: F)
    where
        F: Fn(&'a Self) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check(self).await {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metric(&self, series: &str) -> Option<f64> {
        let metrics = self.text("/metrics").await;
        metrics
            .lines()
            .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }
}

#[tokio::test]
async fn sighup_applies_a_valid_change_without_dropping_a_request() {
    let fake = twelve_components().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app-config.yaml");
    std::fs::write(&file, provider_config(&fake, "svc-0[0-4]")).expect("config");
    let daemon = Daemon::start(&file, dir.path()).await;
    daemon
        .until("five entities", |d| async move { d.entities().await == 5 })
        .await;

    // Load the API through the reload.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for path in ["/api/catalog/entities", "/api/catalog/providers", "/"] {
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        let (http, url) = (daemon.http.clone(), format!("{}{path}", daemon.address));
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => failures.push(format!("{url}: {}", response.status())),
                    Err(err) => failures.push(format!("{url}: {err}")),
                }
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&file, provider_config(&fake, "svc-.*")).expect("config");
    daemon.hang_up();
    daemon
        .until("the reload is counted", |d| async move {
            d.metric("catalog_config_reloads_total{outcome=\"applied\"}")
                .await
                == Some(1.0)
        })
        .await;
    // The widened filter applies from the next run.
    let (status, _) = daemon.refresh("main", "").await;
    assert_eq!(status, 202);
    daemon
        .until(
            "twelve entities",
            |d| async move { d.entities().await == 12 },
        )
        .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let failures = task.await.expect("load task");
        assert!(failures.is_empty(), "requests failed: {failures:?}");
    }
    assert!(answered.load(Ordering::Relaxed) > 10);
    assert_eq!(
        daemon.metric("catalog_config_last_reload_success").await,
        Some(1.0)
    );
    // The cached page is built again within a second.
    daemon
        .until("the status page shows the reload", |d| async move {
            let page = d.text("/").await;
            page.contains("id=\"config-reload\"") && page.contains("changed: main")
        })
        .await;
}

#[tokio::test]
async fn an_invalid_config_is_refused_whole_and_the_old_one_keeps_serving() {
    let fake = twelve_components().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app-config.yaml");
    std::fs::write(&file, provider_config(&fake, "svc-0[0-4]")).expect("config");
    let daemon = Daemon::start(&file, dir.path()).await;
    daemon
        .until("five entities", |d| async move { d.entities().await == 5 })
        .await;

    std::fs::write(&file, provider_config(&fake, "[unclosed")).expect("config");
    daemon.hang_up();
    daemon
        .until("the refusal is counted", |d| async move {
            d.metric("catalog_config_reloads_total{outcome=\"refused\"}")
                .await
                == Some(1.0)
        })
        .await;
    assert_eq!(
        daemon.metric("catalog_config_last_reload_success").await,
        Some(0.0)
    );
    // The cached page is built again within a second.
    daemon
        .until("the status page says so", |d| async move {
            d.text("/").await.contains("refused")
        })
        .await;
    let page = daemon.text("/").await;
    assert!(
        page.contains("catalog.providers.bitbucketServer.main.filters.repoSlug"),
        "the status page names the key: {page}"
    );
    // The old config still serves, and its provider still runs.
    assert_eq!(daemon.entities().await, 5);
    let (status, _) = daemon.refresh("main", "").await;
    assert_eq!(status, 202);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(daemon.entities().await, 5, "still the old filter");
}

#[tokio::test]
async fn a_provider_removed_by_a_reload_is_held_until_confirmed() {
    let fake = twelve_components().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app-config.yaml");
    std::fs::write(&file, with_write_token(&provider_config(&fake, "svc-.*"))).expect("config");
    let daemon = Daemon::start(&file, dir.path()).await;
    daemon
        .until(
            "twelve entities",
            |d| async move { d.entities().await == 12 },
        )
        .await;

    // The integration stays, the provider goes.
    let integration_only = format!(
        "integrations:\n  bitbucketServer:\n    - host: {}\n      apiBaseUrl: {}\n",
        fake.host(),
        fake.api_base()
    );
    std::fs::write(&file, with_write_token(&integration_only)).expect("config");
    daemon.hang_up();
    daemon
        .until("main leaves the schedule", |d| async move {
            d.json("/api/catalog/providers")
                .await
                .as_array()
                .is_some_and(Vec::is_empty)
        })
        .await;
    daemon
        .until("the removal is held", |d| async move {
            d.metric("catalog_provider_deletions_held_total{provider=\"main\"}")
                .await
                .is_some_and(|held| held >= 1.0)
        })
        .await;
    assert_eq!(daemon.entities().await, 12, "held: still served");

    let (status, body) = daemon.refresh("main", "").await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = daemon.refresh("main", "?force=true").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["removed"], 12, "{body}");
    assert_eq!(daemon.entities().await, 0);
    let changes = daemon.json("/api/catalog/entities").await;
    assert_eq!(changes, serde_json::json!([]));
}

#[tokio::test]
async fn a_missing_config_layer_at_start_up_does_not_drop_entities() {
    let fake = twelve_components().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("catalog.db").display().to_string();
    let full = with_write_token(&provider_config(&fake, "svc-.*"));
    let app = TestApp::spawn_with_database(&full, &db).await;
    app.wait_for_run("main", |s| s["lastRun"]["entities"] == 12)
        .await;
    app.stop().await;

    // The layer with the provider is missing: its entities stay served.
    let base = with_write_token(&format!(
        "integrations:\n  bitbucketServer:\n    - host: {}\n      apiBaseUrl: {}\n",
        fake.host(),
        fake.api_base()
    ));
    let app = TestApp::spawn_with_database(&base, &db).await;
    assert_eq!(app.entity_names().await.len(), 12, "held at start-up");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("catalog_provider_deletions_held_total{provider=\"main\"}"),
        "{metrics}"
    );
    app.stop().await;

    // With the layer back, nothing was lost and nothing is read again
    // before the provider's own run.
    let app = TestApp::spawn_with_database(&full, &db).await;
    assert_eq!(app.entity_names().await.len(), 12);
    app.stop().await;
}

#[tokio::test]
async fn a_watched_config_file_reloads_when_its_content_changes() {
    let fake = twelve_components().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app-config.yaml");
    let watched = |slugs: &str| {
        format!(
            "{}backend:\n  reload:\n    watch: true\n",
            provider_config(&fake, slugs)
        )
    };
    std::fs::write(&file, watched("svc-0[0-4]")).expect("config");
    let daemon = Daemon::start(&file, dir.path()).await;
    daemon
        .until("five entities", |d| async move { d.entities().await == 5 })
        .await;
    assert_eq!(
        daemon
            .metric("catalog_config_reloads_total{outcome=\"applied\"}")
            .await,
        Some(0.0),
        "nothing changed yet"
    );

    std::fs::write(&file, watched("svc-.*")).expect("config");
    daemon
        .until("the change is picked up without a signal", |d| async move {
            d.metric("catalog_config_reloads_total{outcome=\"applied\"}")
                .await
                == Some(1.0)
        })
        .await;
    let (status, _) = daemon.refresh("main", "").await;
    assert_eq!(status, 202);
    daemon
        .until(
            "twelve entities",
            |d| async move { d.entities().await == 12 },
        )
        .await;
}

/// A webhook secret rotates with a reload: `[new, old]` accepts both, then
/// `[new]` refuses the old one, with no restart.
#[tokio::test]
async fn sighup_rotates_the_webhook_secret_without_a_restart() {
    let fake = twelve_components().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app-config.yaml");
    let with_secrets = |secrets: &str| {
        server_config(
            &fake,
            &format!("      webhookSecret: {secrets}\n"),
            "        schedule:\n          frequency: { minutes: 30 }\n          timeout: { minutes: 1 }\n",
        )
    };
    std::fs::write(&file, with_secrets("[old-s3cret]")).expect("config");
    let daemon = Daemon::start(&file, dir.path()).await;
    let ping = |secret: &'static str| {
        let body = br#"{"test": true}"#.to_vec();
        let request = daemon
            .http
            .post(format!(
                "{}/api/events/http/bitbucketServer",
                daemon.address
            ))
            .header("X-Event-Key", "diagnostics:ping")
            .header(
                "X-Hub-Signature",
                bitbucket_catalogd::sign_webhook(secret.as_bytes(), &body),
            )
            .body(body);
        async move { request.send().await.expect("delivered").status().as_u16() }
    };
    assert_eq!(ping("old-s3cret").await, 200);
    assert_eq!(ping("new-s3cret").await, 401);

    std::fs::write(&file, with_secrets("[new-s3cret, old-s3cret]")).expect("config");
    daemon.hang_up();
    daemon
        .until("the first reload", |d| async move {
            d.metric("catalog_config_reloads_total{outcome=\"applied\"}")
                .await
                == Some(1.0)
        })
        .await;
    assert_eq!(ping("new-s3cret").await, 200);
    assert_eq!(ping("old-s3cret").await, 200);

    std::fs::write(&file, with_secrets("[new-s3cret]")).expect("config");
    daemon.hang_up();
    daemon
        .until("the second reload", |d| async move {
            d.metric("catalog_config_reloads_total{outcome=\"applied\"}")
                .await
                == Some(2.0)
        })
        .await;
    assert_eq!(ping("new-s3cret").await, 200);
    assert_eq!(ping("old-s3cret").await, 401);
    let page = daemon.text("/").await;
    assert!(!page.contains("s3cret"), "the status page shows a secret");
}
