//! Issue 30, safe by default: writes closed without a token, removals
//! through the API under the deletion guard, requests that cost Bitbucket
//! requests paced, `validate` bounded.

use reqwest::Method;

use crate::support::{
    FakeServer, OPEN_WRITES, TestApp, assert_backstage_error, run_on_config, server_config, text,
    write_config,
};

/// Without `backend.auth` every write answers 401 and says how to open
/// it; reads stay open.
#[tokio::test]
async fn writes_are_closed_without_backend_auth() {
    let fake = FakeServer::builder().start().await;
    let app =
        TestApp::spawn_with_env(&server_config(&fake, "", ""), &[(OPEN_WRITES, "false")]).await;
    let writes = [
        (Method::DELETE, "/api/catalog/entities/by-uid/anything"),
        (Method::POST, "/api/catalog/providers/main/refresh"),
        (Method::POST, "/api/catalog/refresh"),
        (Method::POST, "/api/catalog/locations"),
        (Method::DELETE, "/api/catalog/locations/anything"),
        (Method::POST, "/api/catalog/analyze-location"),
        (Method::POST, "/api/catalog/validate-entity"),
    ];
    for (method, path) in writes {
        let body = serde_json::json!({"type": "url", "target": "https://example.com/x.yaml", "entityRef": "component:default/x", "location": "url:https://example.com/x.yaml", "entity": {}});
        let (status, answer) = app.send(method.clone(), path, Some(body), None).await;
        assert_eq!(status, 401, "{method} {path}: {answer:#}");
        assert_backstage_error(&answer, 401, "AuthenticationError");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("backend.auth.externalAccess")
                && message.contains("dangerouslyDisableDefaultAuthPolicy"),
            "{message}"
        );
    }
    assert_eq!(app.get("/api/catalog/entities").await.status(), 200);
    app.stop().await;
}

/// The explicit, loudly named opening lets writes through without a
/// token, and `config check` says so.
#[tokio::test]
async fn the_named_setting_opens_writes_and_config_check_says_so() {
    let fake = FakeServer::builder().start().await;
    let yaml = format!(
        "{}backend:\n  auth:\n    dangerouslyDisableDefaultAuthPolicy: true\n",
        server_config(&fake, "", "")
    );
    let app = TestApp::spawn(&yaml).await;
    let (status, body) = app
        .send(
            Method::POST,
            "/api/catalog/providers/main/refresh",
            None,
            None,
        )
        .await;
    assert_eq!(status, 202, "{body:#}");
    app.stop().await;

    let (_dir, file) = write_config(&yaml);
    let out = run_on_config(&["config", "check"], &file).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("are OPEN to anyone"),
        "{}",
        text(&out.stderr)
    );
    let (_dir, file) = write_config(&server_config(&fake, "", ""));
    let out = run_on_config(&["config", "check"], &file).await;
    assert!(
        text(&out.stderr).contains("are closed"),
        "{}",
        text(&out.stderr)
    );
}

/// The simulator's fragment (the README's quick start) opens writes.
#[tokio::test]
async fn the_simulator_fragment_opens_writes_for_the_quick_start() {
    let sim = crate::support::sim::components_simulator(1, 1).await;
    let (_dir, file) = write_config(&sim.app_config_snippet());
    let out = run_on_config(&["config", "check"], &file).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("are OPEN to anyone"),
        "{}",
        text(&out.stderr)
    );
}

/// The served entity named `name`, if any.
async fn served(app: &TestApp, name: &str) -> Option<serde_json::Value> {
    app.get_json("/api/catalog/entities")
        .await
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["metadata"]["name"] == name)
        .cloned()
}

/// An anonymous flood of `DELETE /entities/by-uid` (writes opened) cannot
/// empty the catalog: removals are paced and guarded, most entities stay.
#[tokio::test]
async fn api_deletions_are_paced_and_guarded() {
    let (_fake, app) = crate::support::big_catalog(40).await;
    let all = app.get_json("/api/catalog/entities").await;
    let uids: Vec<String> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().expect("uid").to_owned())
        .collect();
    let mut refused = 0;
    for uid in &uids {
        let (status, body) = app
            .send(
                Method::DELETE,
                &format!("/api/catalog/entities/by-uid/{uid}"),
                None,
                None,
            )
            .await;
        match status {
            204 => {}
            409 | 429 => {
                refused += 1;
                assert!(body["error"]["message"].is_string(), "{body:#}");
            }
            other => panic!("{other}: {body:#}"),
        }
    }
    let left = app.get_json("/api/catalog/entities").await;
    let left = left.as_array().expect("array").len();
    assert!(left >= 20, "{left} of 40 left");
    assert!(refused >= 20, "{refused} refused");
    app.stop().await;
}

/// Issue 30's takeover: a file that contests `payments` cannot take it
/// through a DELETE of the real entity plus a refresh of its own sibling;
/// the deleted entity returns with its repository's next read.
#[tokio::test]
async fn a_deleted_entity_keeps_its_ref_and_no_api_sequence_hands_it_to_a_contester() {
    let payments = |owner: &str| {
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: payments\nspec:\n  type: service\n  lifecycle: production\n  owner: {owner}\n"
        )
    };
    // Each file declares `payments` and a sibling; whichever reads first
    // holds `payments`, the other file is the contester.
    let fake = FakeServer::builder()
        .catalog(
            "PAY",
            "payments",
            &format!(
                "{}---\n{}",
                payments("team-pay"),
                crate::support::component("pay-svc")
            ),
        )
        .catalog(
            "ZZZ",
            "evil",
            &format!(
                "{}---\n{}",
                crate::support::component("evil-svc"),
                payments("mallory")
            ),
        )
        .start()
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["entities"] == 3).await;
    let real = served(&app, "payments").await.expect("payments served");
    let holder = real["spec"]["owner"].as_str().expect("owner").to_owned();
    let (contester_file, contester_sibling) = if holder == "team-pay" {
        (
            "/repos/evil/raw/catalog-info.yaml",
            "component:default/evil-svc",
        )
    } else {
        (
            "/repos/payments/raw/catalog-info.yaml",
            "component:default/pay-svc",
        )
    };
    let uid = real["metadata"]["uid"].as_str().expect("uid").to_owned();

    let (status, body) = app
        .send(
            Method::DELETE,
            &format!("/api/catalog/entities/by-uid/{uid}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 204, "{body:#}");
    assert!(served(&app, "payments").await.is_none());

    let reads_before = fake.requests_to(contester_file).await;
    let (status, body) = app
        .send(
            Method::POST,
            "/api/catalog/refresh",
            Some(serde_json::json!({"entityRef": contester_sibling})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fake.requests_to(contester_file).await == reads_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the sibling was never read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Let its read apply.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    if let Some(taken) = served(&app, "payments").await {
        panic!("the contesting file took the ref: {taken:#}");
    }

    // The real file's repository read returns it, also after a full run.
    app.refresh("main", "").await;
    let back = served(&app, "payments").await.expect("payments back");
    assert_eq!(back["spec"]["owner"], holder.as_str(), "{back:#}");
    app.refresh("main", "").await;
    let still = served(&app, "payments").await.expect("payments served");
    assert_eq!(still["spec"]["owner"], holder.as_str(), "{still:#}");
    app.stop().await;
}

/// Issue 30: 400 anonymous entity refreshes cost 417 Bitbucket requests.
/// Refreshes of one repository coalesce, and distinct ones are paced per
/// caller: the flood costs a bounded number of requests.
#[tokio::test]
async fn an_entity_refresh_flood_costs_a_bounded_number_of_bitbucket_requests() {
    let slugs: Vec<String> = (0..20).map(|i| format!("svc-{i:02}")).collect();
    let fake = slugs
        .iter()
        .fold(FakeServer::builder(), |fake, slug| {
            fake.component("PLAT", slug)
        })
        .start()
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["entities"] == 20).await;
    let before = fake.requests_to("").await;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..400 {
        let entity_ref = format!("component:default/{}", slugs[i % slugs.len()]);
        let (status, body) = app
            .send(
                Method::POST,
                "/api/catalog/refresh",
                Some(serde_json::json!({"entityRef": entity_ref})),
                None,
            )
            .await;
        assert!(status == 200 || status == 429, "{status}: {body:#}");
        *statuses.entry(status).or_default() += 1;
    }
    // Let what was admitted be read.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let spent = fake.requests_to("").await - before;
    assert!(
        spent <= 30,
        "{spent} Bitbucket requests for 400 refreshes ({statuses:?})"
    );
    assert!(statuses.get(&429).copied().unwrap_or(0) > 0, "{statuses:?}");
    app.stop().await;
}
