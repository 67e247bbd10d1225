//! A hostile repository author: placeholders cannot amplify a file or reach
//! outside the provider's filters.

use super::*;

// ---------------------------------------------------------------- 3: placeholders

/// A component whose spec has `uses` placeholders of `./big.txt`.
fn amplifier(name: &str, uses: usize) -> String {
    let mut doc = component(name);
    for i in 0..uses {
        doc.push_str(&format!("  doc{i}:\n    $text: ./big.txt\n"));
    }
    doc
}

#[tokio::test]
async fn placeholders_cannot_amplify_a_file_and_each_target_is_read_once() {
    let fake = FakeServer::builder()
        .repo("PLAT", "bomb")
        .repo("PLAT", "modest")
        .repo("PLAT", "plain")
        .start()
        .await;
    let big = "x".repeat(200 * 1024);
    fake.mount_file("PLAT", "bomb", "catalog-info.yaml", &amplifier("bomb", 100))
        .await;
    fake.mount_file("PLAT", "bomb", "big.txt", &big).await;
    fake.mount_file(
        "PLAT",
        "modest",
        "catalog-info.yaml",
        &amplifier("modest", 3),
    )
    .await;
    fake.mount_file("PLAT", "modest", "big.txt", &big).await;
    fake.mount_file("PLAT", "plain", "catalog-info.yaml", &component("plain"))
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    let status = app.wait_for_run("main", |_| true).await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");

    // 100 × 200 KiB is over the 4 MiB default: a per-file problem, the
    // other repositories' entities are served.
    let names = app.entity_names().await;
    assert!(!names.contains(&"bomb".to_owned()), "{names:?}");
    assert!(names.contains(&"plain".to_owned()), "{names:?}");
    let errors = app.get_json("/api/catalog/providers/main/errors").await;
    let problem = errors["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["url"].as_str().unwrap_or_default().contains("/bomb/"))
        .unwrap_or_else(|| panic!("no problem for bomb: {errors:#}"));
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("catalog.processing.maxExpandedSize"),
        "{problem:#}"
    );
    // Within the budget the placeholders resolve; each file is read once.
    let modest = app
        .get_json("/api/catalog/entities/by-name/component/default/modest")
        .await;
    assert_eq!(
        modest["spec"]["doc2"].as_str().map(str::len),
        Some(big.len())
    );
    assert_eq!(fake.requests_to("/bomb/raw/big.txt").await, 1);
    assert_eq!(fake.requests_to("/modest/raw/big.txt").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_placeholder_budget_counts_served_bytes_and_stops_reading() {
    use wiremock::{Mock, ResponseTemplate, matchers};

    let fake = FakeServer::builder()
        .repo("PLAT", "quotes")
        .repo("PLAT", "flaky")
        .start()
        .await;
    // 8 × 300 KiB read is under the 4 MiB default, but each `"` is served
    // as `\"`: 4.8 MiB. The next document's file is then not read at all.
    let quoted = amplifier("quotes", 8).replace("./big.txt", "./quotes.txt");
    let after = component("after").replace(
        "  owner: team-a\n",
        "  owner: team-a\n  notes:\n    $text: ./other.txt\n",
    );
    fake.mount_file(
        "PLAT",
        "quotes",
        "catalog-info.yaml",
        &format!("{quoted}---\n{after}"),
    )
    .await;
    fake.mount_file("PLAT", "quotes", "quotes.txt", &"\"".repeat(300 * 1024))
        .await;
    fake.mount_file("PLAT", "quotes", "other.txt", "other")
        .await;
    // A file that fails to read is read once, however often it is used.
    fake.mount_file(
        "PLAT",
        "flaky",
        "catalog-info.yaml",
        &amplifier("flaky", 3).replace("./big.txt", "./broken.txt"),
    )
    .await;
    Mock::given(matchers::path(format!(
        "{}/projects/PLAT/repos/flaky/raw/broken.txt",
        crate::support::API
    )))
    .respond_with(ResponseTemplate::new(500))
    .mount(&fake.server)
    .await;
    let app = TestApp::spawn(&server_config(&fake, "      maxRetries: 0\n", "")).await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;

    let names = app.entity_names().await;
    assert!(!names.contains(&"quotes".to_owned()), "{names:?}");
    let errors = app.get_json("/api/catalog/providers/main/errors").await;
    let messages = errors["problems"].to_string();
    assert!(
        messages.contains("catalog.processing.maxExpandedSize"),
        "{errors:#}"
    );
    assert_eq!(fake.requests_to("/quotes/raw/quotes.txt").await, 1);
    assert_eq!(
        fake.requests_to("/quotes/raw/other.txt").await,
        0,
        "read after the budget was spent"
    );
    assert_eq!(fake.requests_to("/flaky/raw/broken.txt").await, 1);
    app.stop().await;
}

// ---------------------------------------------------------------- 5: target scope

#[tokio::test]
async fn targets_and_placeholders_stay_within_the_providers_filters() {
    let fake = FakeServer::start().await;
    let web = fake.server.uri();
    fake.mount_projects(&["PLAT", "SECRET"], 25).await;
    fake.mount_repos("PLAT", &[("app", false), ("lib", false)], 25)
        .await;
    fake.mount_file("SECRET", "vault", "prod.env", "DB_PASSWORD=hunter2-leaked")
        .await;
    fake.mount_file(
        "SECRET",
        "vault",
        "catalog-info.yaml",
        &component("excluded"),
    )
    .await;
    // `app` describes itself with another project's file; `app-own` uses
    // its own repository's; a Location leads into the excluded project.
    let app_file = format!(
        "{}---\n{}---\napiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: sneaky\nspec:\n  targets:\n    - {web}/projects/SECRET/repos/vault/browse/catalog-info.yaml\n    - ./team.yaml\n",
        component("app").replace(
            "  name: app\n",
            &format!("  name: app\n  description:\n    $text: {web}/projects/SECRET/repos/vault/browse/prod.env\n"),
        ),
        component("app-own").replace("  owner: team-a\n", "  owner: team-a\n  notes:\n    $text: ./notes.txt\n"),
    );
    fake.mount_file("PLAT", "app", "catalog-info.yaml", &app_file)
        .await;
    fake.mount_file("PLAT", "app", "notes.txt", "own notes")
        .await;
    fake.mount_file("PLAT", "app", "team.yaml", &component("in-repo"))
        .await;
    fake.mount_file("PLAT", "lib", "catalog-info.yaml", &component("lib"))
        .await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        filters:\n          projectKey: '^PLAT$'\n",
    ))
    .await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;

    let everything = app.get("/api/catalog/entities").await.text().await.unwrap();
    assert!(
        !everything.contains("hunter2"),
        "another project's file was served"
    );
    let names = app.entity_names().await;
    assert!(!names.contains(&"excluded".to_owned()), "{names:?}");
    assert!(names.contains(&"lib".to_owned()), "{names:?}");
    let own = app
        .get_json("/api/catalog/entities/by-name/component/default/app-own")
        .await;
    assert_eq!(
        own["spec"]["notes"], "own notes",
        "same-repository placeholders work"
    );
    assert_eq!(
        fake.requests_to("/prod.env").await,
        0,
        "nothing was requested"
    );
    let errors = app.get_json("/api/catalog/providers/main/errors").await;
    let messages = errors["problems"].to_string();
    assert!(messages.contains("targetScope"), "{errors:#}");
    // The out-of-scope target costs only its own entities: the Location's
    // in-repository target is kept.
    assert!(names.contains(&"in-repo".to_owned()), "{names:?}");
    assert!(names.contains(&"sneaky".to_owned()), "{names:?}");
    app.stop().await;

    // `targetScope: any` is the behaviour before the hardening.
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        filters:\n          projectKey: '^PLAT$'\n        targetScope: any\n",
    ))
    .await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;
    let names = app.entity_names().await;
    assert!(names.contains(&"excluded".to_owned()), "{names:?}");
    assert!(names.contains(&"in-repo".to_owned()), "{names:?}");
    app.stop().await;
}
