//! A hostile or broken Bitbucket: endless bodies, endless paging, answers
//! that are not Bitbucket data, redirects to another host.

use super::*;

// ---------------------------------------------------------------- 6, 7, 8, 11: hostile Bitbucket

/// The error of the provider's first finished run, which must have failed.
async fn failed_run(app: &TestApp, provider: &str) -> String {
    // Up to 256 MiB of pages are read and refused: slow in a debug build.
    let status = app
        .wait_for_run_within(provider, Duration::from_secs(60), |s| {
            s["inProgress"] == false
        })
        .await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "failed",
        "{status:#}"
    );
    status["lastRun"]["outcome"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Serves `router` on a free loopback port; returns `127.0.0.1:PORT`.
async fn serve_hostile(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test]
async fn an_endless_error_body_is_not_read() {
    // A 500 whose body never ends: only a prefix is read, the run fails
    // quickly with the status, not at the request timeout.
    let router = axum::Router::new().fallback(|| async {
        let chunk = axum::body::Bytes::from(vec![b'e'; 64 * 1024]);
        let endless =
            futures::StreamExt::map(futures::stream::repeat(chunk), Ok::<_, std::io::Error>);
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::body::Body::from_stream(endless),
        )
    });
    let host = serve_hostile(router).await;
    let yaml = format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: http://{host}/rest/api/1.0\n      maxRetries: 0\n      requestTimeout: {{ seconds: 60 }}\ncatalog:\n  providers:\n    bitbucketServer:\n      main:\n        host: {host}\n"
    );
    let started = Instant::now();
    let app = TestApp::spawn(&yaml).await;
    let error = failed_run(&app, "main").await;
    assert!(error.contains("500"), "{error}");
    assert!(error.len() < 2000, "the error quotes {} bytes", error.len());
    assert!(started.elapsed() < Duration::from_secs(15));
    app.stop().await;
}

#[tokio::test]
async fn paging_is_bounded_in_pages_and_bytes() {
    use wiremock::{Mock, ResponseTemplate, matchers};

    // Cloud: a `next` that never ends.
    let cloud = crate::support::FakeCloud::start().await;
    let api = cloud.api_base();
    Mock::given(matchers::path("/2.0/workspaces/ws/projects"))
        .respond_with(move |request: &wiremock::Request| {
            let page: usize = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "page")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(1);
            ResponseTemplate::new(200).set_body_json(json!({
                "values": [{"type": "project", "key": format!("P{page}")}],
                "next": format!("{api}/workspaces/ws/projects?page={}", page + 1),
            }))
        })
        .mount(&cloud.server)
        .await;
    let app = TestApp::spawn(&crate::support::cloud_config(&cloud, "ws", "", "")).await;
    let error = failed_run(&app, "cloud").await;
    assert!(error.contains("1000 pages"), "{error}");
    app.stop().await;

    // Server: a 10 MB page is refused, not decoded.
    let fake = FakeServer::start().await;
    let padding = "x".repeat(10 * 1024 * 1024);
    Mock::given(matchers::path(format!("{}/projects", crate::support::API)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"key": "PLAT", "padding": padding}],
            "isLastPage": true, "size": 1, "start": 0, "limit": 1000,
        })))
        .mount(&fake.server)
        .await;
    fake.mount_repos("PLAT", &[], 25).await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    let error = failed_run(&app, "main").await;
    assert!(error.contains("larger than 8 MiB"), "{error}");
    app.stop().await;

    // Server: pages just under 8 MiB that never end stop at 256 MiB for
    // the listing, far before 1000 pages (8 GB); nothing is kept.
    let fake = FakeServer::start().await;
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&served);
    let padding = "x".repeat(7 * 1024 * 1024);
    Mock::given(matchers::path(format!("{}/projects", crate::support::API)))
        .respond_with(move |request: &wiremock::Request| {
            let start: u64 = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "start")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let body = json!({
                "values": [{"key": format!("P{start}"), "padding": padding}],
                "isLastPage": false, "nextPageStart": start + 1,
                "size": 1, "start": start, "limit": 1000,
            })
            .to_string();
            counted.fetch_add(body.len(), std::sync::atomic::Ordering::Relaxed);
            ResponseTemplate::new(200).set_body_raw(body, "application/json")
        })
        .mount(&fake.server)
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    let error = failed_run(&app, "main").await;
    assert!(error.contains("more than 256 MiB"), "{error}");
    let served = served.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        served <= 264 * 1024 * 1024,
        "{} MiB served before giving up",
        served / (1024 * 1024)
    );
    app.stop().await;
}

#[tokio::test]
async fn answers_that_are_not_bitbucket_data_remove_nothing() {
    let fake = FakeServer::start().await;
    let slugs = ["a", "b", "c", "d", "e", "f"];
    let repos: Vec<(&str, bool)> = slugs.iter().map(|s| (*s, false)).collect();
    fake.mount_components("PLAT", &slugs).await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { trigger: manual }\n",
    ))
    .await;
    app.refresh("main", "").await;

    // A proxy answering `200 {}` to the listing: the run fails, nothing goes.
    fake.server.reset().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&fake.server)
        .await;
    let status = app.refresh("main", "").await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "failed",
        "{status:#}"
    );
    assert_eq!(app.entity_names().await.len(), 6);

    // An SSO login page (200 HTML) for every file: the reads fail, the
    // entities stay, and the problem says what answered.
    fake.server.reset().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &repos, 25).await;
    wiremock::Mock::given(wiremock::matchers::path_regex("/raw/"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .insert_header("content-type", "text/html; charset=utf-8")
                .set_body_string("<!DOCTYPE html><html><body>Sign in</body></html>"),
        )
        .mount(&fake.server)
        .await;
    app.refresh("main", "").await;
    assert_eq!(app.entity_names().await.len(), 6);
    let errors = app.get_json("/api/catalog/providers/main/errors").await;
    assert!(
        errors["problems"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("a login page or proxy answered instead of Bitbucket"),
        "{errors:#}"
    );
    app.stop().await;
}

#[tokio::test]
async fn redirects_to_another_host_are_not_followed() {
    let elsewhere = FakeServer::start().await;
    elsewhere
        .mount_file("X", "y", "catalog-info.yaml", &component("foreign"))
        .await;
    let fake = FakeServer::builder().repo("PLAT", "svc").start().await;
    wiremock::Mock::given(wiremock::matchers::path_regex("/raw/"))
        .respond_with(wiremock::ResponseTemplate::new(302).insert_header(
            "location",
            format!(
                "{}/projects/X/repos/y/raw/catalog-info.yaml",
                elsewhere.api_base()
            ),
        ))
        .mount(&fake.server)
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;
    assert!(!app.entity_names().await.contains(&"foreign".to_owned()));
    assert_eq!(elsewhere.requests_to("catalog-info.yaml").await, 0);
    app.stop().await;

    // A Cloud `next` with user info does not replace our credentials.
    let cloud = crate::support::FakeCloud::start().await;
    let api = cloud.api_base();
    let next = api.replacen("http://", "http://attacker:stolen@", 1);
    wiremock::Mock::given(wiremock::matchers::path("/2.0/workspaces/ws/projects"))
        .respond_with(move |request: &wiremock::Request| {
            let body = if request.url.query().unwrap_or_default().contains("page=2") {
                json!({"values": []})
            } else {
                json!({"values": [{"type": "project", "key": "P"}], "next": format!("{next}/workspaces/ws/projects?page=2")})
            };
            wiremock::ResponseTemplate::new(200).set_body_json(body)
        })
        .mount(&cloud.server)
        .await;
    let app = TestApp::spawn(&crate::support::cloud_config(
        &cloud,
        "ws",
        "      token: our-token-123\n",
        "",
    ))
    .await;
    app.wait_for_run("cloud", |s| s["inProgress"] == false)
        .await;
    let requests = cloud.requests().await;
    let page_two: Vec<_> = requests
        .iter()
        .filter(|r| r.url.query().unwrap_or_default().contains("page=2"))
        .collect();
    assert!(!page_two.is_empty(), "page 2 was not read");
    for request in page_two {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer our-token-123")
        );
    }
    app.stop().await;
}
