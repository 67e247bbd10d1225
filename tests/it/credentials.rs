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
        !self.0.lock().unwrap().contains(&sent)
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
        "",
    )))
    .await;
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
