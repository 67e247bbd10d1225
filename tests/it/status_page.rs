//! The status page at `GET /`: served with a strict CSP and no external
//! asset, showing the simulator's providers and counts; and opened in a
//! real headless Chromium at a laptop and a phone size (no console errors,
//! no sideways scrolling), which writes screenshots for review. Needs
//! `npm ci --prefix tests/status-page` and Chromium (`.ci/run` installs both).

use std::path::Path;

use crate::support::{TestApp, node_json};
use bitbucket_sim::{Behaviour, DatasetConfig, RateLimit, SimConfig, Simulator};

async fn simulated() -> (Simulator, TestApp) {
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig {
            projects: 3,
            repos_per_project: 8,
            ..DatasetConfig::default()
        },
        // A bucket smaller than the first burst of requests, so the page
        // has 429s and a pace to show however fast the machine is.
        behaviour: Behaviour {
            rate_limit: Some(RateLimit {
                burst: 2,
                per_second: 20.0,
            }),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let app = TestApp::spawn(&sim.app_config_snippet()).await;
    app.wait_for_run("sim", |_| true).await;
    (sim, app)
}

#[tokio::test]
async fn the_status_page_shows_sources_problems_and_adoption_under_a_strict_csp() {
    let (_sim, app) = simulated().await;
    let status = app.get_json("/api/catalog/providers/sim").await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'self'"),
        "{csp}"
    );
    let html = response.text().await.unwrap();
    // Nothing from elsewhere: no script, no external URL in src/href.
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"//"));
    assert!(html.contains("<meta http-equiv=\"refresh\""));
    assert!(html.contains("data-source=\"sim\""), "{html}");
    let entities = status["entities"].as_u64().unwrap();
    assert!(entities > 0);
    assert!(
        html.contains(&format!("<dd class=\"entities\">{entities}</dd>")),
        "{html}"
    );
    // The simulator's mix has broken files (grouped by kind, linked to the
    // file in Bitbucket) and repositories without a catalog file.
    assert!(html.contains("<summary>parse"), "{html}");
    assert!(
        html.contains("/browse/catalog-info.yaml\" rel=\"noreferrer\""),
        "{html}"
    );
    let repositories = &status["repositories"];
    assert!(
        html.contains(&format!(
            "of repositories have a catalog file ({} of {})",
            repositories["withCatalog"],
            repositories["withCatalog"].as_u64().unwrap()
                + repositories["withoutCatalog"].as_u64().unwrap()
        )),
        "{html}"
    );
    let rate_limited = status["lastRun"]["rateLimited"].as_u64().unwrap();
    assert!(rate_limited > 0, "{status}");
    let row = html
        .split("<tr data-host=")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_default();
    assert!(
        row.contains("requests/s") && row.ends_with(&format!("<td>{rate_limited}</td>")),
        "{row}"
    );
    let css = app.get("/status.css").await;
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

#[tokio::test]
async fn the_status_page_renders_in_headless_chromium_without_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status-page");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix tests/status-page` (the README's test command does)"
    );
    let (_sim, app) = simulated().await;
    let status = app.get_json("/api/catalog/providers/sim").await;
    let shots = env!("CARGO_TARGET_TMPDIR").to_owned();
    // Fails with the script's message when Chromium is missing (apt-get install chromium).
    let result = node_json(
        dir,
        vec!["check.mjs".into(), format!("{}/", app.address), shots],
    )
    .await;
    assert_eq!(result["errors"], serde_json::json!([]), "console errors");
    assert_eq!(result["failedRequests"], serde_json::json!([]));
    for view in ["laptop", "phone"] {
        let page = &result["views"][view];
        assert_eq!(page["status"], 200, "{view}");
        assert!(page["csp"].as_str().is_some(), "{view}");
        assert_eq!(page["styled"], true, "{view}: the stylesheet did not apply");
        assert_eq!(page["overflowsSideways"], false, "{view}");
        assert_eq!(
            page["sources"],
            serde_json::json!([{"id": "sim", "entities": status["entities"].to_string()}]),
            "{view}"
        );
        let text = page["text"].as_str().unwrap();
        for needle in [
            "Providers and locations",
            "Bitbucket integrations",
            "Problems",
            "Adoption",
        ] {
            assert!(
                text.contains(needle),
                "{view}: {needle} missing from\n{text}"
            );
        }
        let shot = page["screenshot"].as_str().unwrap();
        assert!(
            std::fs::metadata(shot).is_ok_and(|m| m.len() > 10_000),
            "{view}: no screenshot at {shot}"
        );
        // For review: `cargo nextest run --test status_page --no-capture`.
        println!("{view} screenshot: {shot}");
    }
}
