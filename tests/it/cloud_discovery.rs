//! Black-box: the real daemon against a wiremock Bitbucket Cloud — code
//! search per project with `next` paging and repeated results, anchored
//! filters, credentials, the fallback when code search is not enabled, and
//! `next` links that must not be followed.

use crate::support::{FakeCloud, Hit, TestApp, cloud_config, component, search_query};
use base64::Engine;
use serde_json::Value;

const WS: &str = "acme";

fn hit<'a>(project: &'a str, slug: &'a str, branch: &'a str, commit: &'a str) -> Hit<'a> {
    Hit {
        project,
        slug,
        branch,
        commit,
        path: "catalog-info.yaml",
        path_matches: true,
    }
}

fn location(name: &str, target: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\nspec:\n  target: {target}\n"
    )
}

fn api(name: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: {name}\nspec:\n  type: openapi\n  lifecycle: production\n  owner: team-a\n  definition: x\n"
    )
}

async fn names(app: &TestApp) -> Vec<String> {
    let mut names = app.entity_names().await;
    names.sort();
    names
}

async fn entity(app: &TestApp, kind: &str, name: &str) -> Value {
    app.get_json(&format!(
        "/api/catalog/entities/by-name/{kind}/default/{name}"
    ))
    .await
}

#[tokio::test]
async fn code_search_per_project_reads_each_catalog_file_once() {
    let fake = FakeCloud::with_authorization("Bearer cloud-access-token").await;
    // PLATFORM would pass an unanchored `PLAT|PAY`; Cloud filters are anchored.
    fake.mount_projects(WS, &["PLAT", "PAY", "PLATFORM"], 2)
        .await;
    let plat = [
        hit("PLAT", "svc-a", "main", "c1"),
        hit("PLAT", "svc-b", "main", "c2"),
        hit("PLAT", "svc-c", "develop", "c3"),
        Hit {
            path_matches: false,
            ..hit("PLAT", "svc-stale", "main", "c9")
        },
        Hit {
            path: "docs/catalog-info.yaml",
            ..hit("PLAT", "svc-docs", "main", "c8")
        },
    ];
    // Pages of two where each page repeats the previous page's last hit.
    fake.mount_search(WS, "PLAT", &plat, 2, 1).await;
    fake.mount_search(
        WS,
        "PAY",
        &[
            hit("PAY", "svc-pay", "main", "c4"),
            // Matches an unanchored `svc-.*`, not the anchored one.
            hit("PAY", "legacy-svc-x", "main", "c5"),
        ],
        2,
        0,
    )
    .await;
    fake.mount_src(WS, "svc-a", "c1", "catalog-info.yaml", &component("svc-a"))
        .await;
    let b = format!(
        "{}---\n{}",
        component("svc-b"),
        location("b-loc", "./api.yaml")
    );
    fake.mount_src(WS, "svc-b", "c2", "catalog-info.yaml", &b)
        .await;
    // Location targets are read at the branch the location URL names.
    fake.mount_src(WS, "svc-b", "main", "api.yaml", &api("b-api"))
        .await;
    fake.mount_src(WS, "svc-c", "c3", "catalog-info.yaml", &component("svc-c"))
        .await;
    fake.mount_src(WS, "svc-pay", "c4", "catalog-info.yaml", &component("pay"))
        .await;

    let app = TestApp::spawn(&cloud_config(
        &fake,
        WS,
        "      token: cloud-access-token\n",
        "        pagelen: 2\n        filters:\n          projectKey: 'PLAT|PAY'\n          repoSlug: 'svc-.*'\n",
    ))
    .await;
    let status = app.wait_for_run("cloud", |_| true).await;
    let run = &status["lastRun"];
    assert_eq!(run["outcome"]["status"], "succeeded", "{status:#}");
    assert_eq!(status["type"], "bitbucketCloud");
    assert_eq!(status["target"], WS);
    assert_eq!(run["projectsSeen"], 3);
    // Unique hits on the catalog path: svc-a, b, c, pay, legacy-svc-x.
    assert_eq!(run["reposSeen"], 5);
    assert_eq!(run["reposMatched"], 4);
    assert_eq!(run["filesFound"], 4);
    assert_eq!(run["locationFiles"], 1);
    assert_eq!(run["problems"], serde_json::json!([]), "{run:#}");
    assert_eq!(run["notices"], serde_json::json!([]));
    // 2 project pages + 4 PLAT search pages + 1 PAY page + 4 files + 1 target.
    assert_eq!(run["requests"], 12);
    assert_eq!(
        names(&app).await,
        vec!["b-api", "b-loc", "pay", "svc-a", "svc-b", "svc-c"]
    );

    // Nothing for the project or repositories the filters drop, nothing
    // twice, and each search asked for Backstage's query, page size and fields.
    assert_eq!(
        fake.requests_to("/svc-stale/src/c9/catalog-info.yaml")
            .await,
        0
    );
    assert_eq!(
        fake.requests_to("/legacy-svc-x/src/c5/catalog-info.yaml")
            .await,
        0
    );
    assert_eq!(fake.requests_to("/svc-a/src/c1/catalog-info.yaml").await, 1);
    let searches: Vec<Vec<(String, String)>> = fake
        .requests()
        .await
        .iter()
        .filter(|r| r.url.path().ends_with("/search/code"))
        .map(|r| r.url.query_pairs().into_owned().collect())
        .collect();
    assert_eq!(searches.len(), 5);
    let queries: Vec<&str> = searches
        .iter()
        .filter_map(|q| q.iter().find(|(k, _)| k == "search_query"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(!queries.contains(&search_query("PLATFORM").as_str()));
    let first = &searches[0];
    assert!(first.contains(&("pagelen".into(), "2".into())), "{first:?}");
    assert!(
        first
            .iter()
            .any(|(k, v)| k == "fields"
                && v.contains("+values.file.commit.repository.mainbranch.name")),
        "{first:?}"
    );

    // Cloud's URL forms in the annotations.
    let c = entity(&app, "component", "svc-c").await;
    let annotations = &c["metadata"]["annotations"];
    let file = format!("{}/src/develop/catalog-info.yaml", fake.web(WS, "svc-c"));
    assert_eq!(
        annotations["backstage.io/managed-by-location"],
        format!("url:{file}")
    );
    assert_eq!(
        annotations["backstage.io/managed-by-origin-location"],
        format!("url:{file}")
    );
    assert_eq!(annotations["backstage.io/view-url"], file);
    assert_eq!(
        annotations["backstage.io/edit-url"],
        format!("{file}?mode=edit&at=develop")
    );
    assert_eq!(
        annotations["backstage.io/source-location"],
        format!("url:{}/src/develop/", fake.web(WS, "svc-c"))
    );
    assert_eq!(annotations["bitbucket.org/repo-url"], fake.web(WS, "svc-c"));
    assert_eq!(annotations["bitbucket.org/default-branch"], "develop");
    let b_api = entity(&app, "api", "b-api").await;
    assert_eq!(
        b_api["metadata"]["annotations"]["backstage.io/managed-by-location"],
        format!("url:{}/src/main/api.yaml", fake.web(WS, "svc-b"))
    );
    app.stop().await;
}

#[tokio::test]
async fn without_code_search_the_provider_lists_repositories_and_says_so() {
    for status in [404, 403] {
        let basic = base64::engine::general_purpose::STANDARD.encode("dev@example.com:api-token");
        let fake = FakeCloud::with_authorization(&format!("Basic {basic}")).await;
        fake.mount_projects(WS, &["PLAT", "OLD"], 100).await;
        fake.mount_search_disabled(WS, status).await;
        let repos = vec![
            fake.repository(WS, "PLAT", "svc-a", Some("main")),
            // An empty repository has no main branch: no file to read.
            fake.repository(WS, "PLAT", "svc-empty", None),
            fake.repository(WS, "OLD", "old-svc", Some("main")),
            fake.repository(WS, "PLAT", "svc-b", Some("master")),
        ];
        fake.mount_paged(&format!("/repositories/{WS}"), repos, 2, 0, &[])
            .await;
        fake.mount_src(
            WS,
            "svc-a",
            "main",
            "catalog-info.yaml",
            &component("svc-a"),
        )
        .await;
        fake.mount_src(
            WS,
            "svc-b",
            "master",
            "catalog-info.yaml",
            &component("svc-b"),
        )
        .await;

        let app = TestApp::spawn(&cloud_config(
            &fake,
            WS,
            "      username: dev@example.com\n      token: api-token\n",
            "        filters:\n          projectKey: PLAT\n",
        ))
        .await;
        let provider = app.wait_for_run("cloud", |_| true).await;
        let run = &provider["lastRun"];
        assert_eq!(run["outcome"]["status"], "succeeded", "{provider:#}");
        let notices = run["notices"].to_string();
        assert!(
            notices.contains("fell back to listing the workspace's repositories"),
            "{status}: {notices}"
        );
        assert!(notices.contains(&status.to_string()), "{status}: {notices}");
        // 1 project page + 1 search + 2 repository pages + 2 files.
        assert_eq!(run["requests"], 6, "{status}: {run:#}");
        assert_eq!(run["reposSeen"], 4);
        assert_eq!(run["reposMatched"], 2);
        assert_eq!(names(&app).await, vec!["svc-a", "svc-b"]);
        assert_eq!(
            fake.requests_to("/old-svc/src/main/catalog-info.yaml")
                .await,
            0
        );
        let b = entity(&app, "component", "svc-b").await;
        assert_eq!(
            b["metadata"]["annotations"]["backstage.io/view-url"],
            format!("{}/src/master/catalog-info.yaml", fake.web(WS, "svc-b"))
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let fake = FakeCloud::start().await;
    let elsewhere = FakeCloud::start().await;
    wiremock::Mock::given(wiremock::matchers::path(format!(
        "/2.0/workspaces/{WS}/projects"
    )))
    .respond_with(
        wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "values": [{"key": "PLAT"}],
            "next": format!("{}/workspaces/{WS}/projects?page=2", elsewhere.api_base()),
        })),
    )
    .mount(&fake.server)
    .await;
    let app = TestApp::spawn(&cloud_config(&fake, WS, "      token: secret-token\n", "")).await;
    let status = app.wait_for_run("cloud", |_| true).await;
    let error = status["lastRun"]["outcome"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("points to another host"), "{error}");
    assert!(!error.contains("secret-token"), "{error}");
    assert!(elsewhere.requests().await.is_empty());
    app.stop().await;
}

/// A code search that answers 400 past its first page ("Cannot fetch
/// results past result number 1000") is a capped answer, not a failure and
/// not a listing: the project's repositories are listed and each searched
/// alone (`repo:`), so every file is still served, read at its commit.
#[tokio::test]
async fn a_search_refused_past_the_cap_is_completed_repository_by_repository() {
    use wiremock::matchers::{method, path, query_param, query_param_is_missing};
    use wiremock::{Mock, ResponseTemplate};

    let fake = FakeCloud::start().await;
    fake.mount_projects(WS, &["BIG"], 10).await;
    let search_path = format!("/2.0/workspaces/{WS}/search/code");
    let project_query = search_query("BIG");
    let result = |slug: &str, commit: &str| {
        serde_json::json!({
            "type": "code_search_result",
            "path_matches": [{"text": "catalog-info.yaml", "match": true}],
            "file": {"path": "catalog-info.yaml", "type": "commit_file", "commit": {
                "hash": commit,
                "repository": fake.repository(WS, "BIG", slug, Some("main")),
            }},
        })
    };
    let mut next = url::Url::parse(&format!(
        "{}{}",
        fake.api_base(),
        "/workspaces/acme/search/code"
    ))
    .expect("url");
    next.query_pairs_mut()
        .append_pair("search_query", &project_query)
        .append_pair("page", "2");
    Mock::given(method("GET"))
        .and(path(search_path.clone()))
        .and(query_param("search_query", project_query.as_str()))
        .and(query_param_is_missing("page"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "pagelen": 1, "page": 1, "size": 1200,
            "values": [result("svc-a", "c1")], "next": next.to_string(),
        })))
        .mount(&fake.server)
        .await;
    Mock::given(method("GET"))
        .and(path(search_path.clone()))
        .and(query_param("search_query", project_query.as_str()))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "type": "error",
            "error": {"message": "Cannot fetch results past result number 1000"},
        })))
        .mount(&fake.server)
        .await;
    // The workspace: two repositories with a file, one without, one empty
    // (no main branch: nothing to search).
    fake.mount_paged(
        &format!("/repositories/{WS}"),
        vec![
            fake.repository(WS, "BIG", "svc-a", Some("main")),
            fake.repository(WS, "BIG", "svc-b", Some("main")),
            fake.repository(WS, "BIG", "svc-none", Some("main")),
            fake.repository(WS, "BIG", "svc-empty", None),
        ],
        10,
        0,
        // Only the capped project's repositories are listed.
        &[("q", "project.key=\"BIG\"")],
    )
    .await;
    for (slug, hits) in [
        ("svc-a", vec![result("svc-a", "c1")]),
        ("svc-b", vec![result("svc-b", "c2")]),
        ("svc-none", vec![]),
    ] {
        let query = format!("{project_query} repo:{slug}");
        fake.mount_paged(
            &format!("/workspaces/{WS}/search/code"),
            hits,
            10,
            0,
            &[("search_query", query.as_str())],
        )
        .await;
    }
    fake.mount_src(WS, "svc-a", "c1", "catalog-info.yaml", &component("svc-a"))
        .await;
    fake.mount_src(WS, "svc-b", "c2", "catalog-info.yaml", &component("svc-b"))
        .await;

    let app = TestApp::spawn(&cloud_config(&fake, WS, "", "        pagelen: 10\n")).await;
    let status = app.wait_for_run("cloud", |_| true).await;
    let run = &status["lastRun"];
    assert_eq!(run["outcome"]["status"], "succeeded", "{status:#}");
    assert_eq!(names(&app).await, ["svc-a", "svc-b"]);
    let notices = run["notices"].to_string();
    assert!(
        notices.contains("project BIG stopped at Bitbucket's 1000 results"),
        "{notices}"
    );
    // 1 project page + 2 search pages (the second refused) + 1 page of the
    // project's repositories + 3 `repo:` searches + 2 files.
    assert_eq!(run["requests"], 9, "{run:#}");
    app.stop().await;
}

/// Pages that repeat results (BCLOUD-23644) can push the raw count past
/// 1,000 under the cap; when `size` counts no more matches than the
/// distinct results returned, the answer is complete: no narrowing.
#[tokio::test]
async fn repeated_pages_past_1000_results_are_complete_when_size_says_so() {
    let fake = FakeCloud::start().await;
    fake.mount_projects(WS, &["MID"], 10).await;
    let slugs: Vec<String> = (0..950).map(|i| format!("svc-{i:03}")).collect();
    // One catalog file at the root; the rest match only inside `docs/`.
    let hits: Vec<Hit> = slugs
        .iter()
        .enumerate()
        .map(|(i, slug)| Hit {
            path: if i == 0 {
                "catalog-info.yaml"
            } else {
                "docs/catalog-info.yaml"
            },
            ..hit("MID", slug, "main", "c1")
        })
        .collect();
    // Pages of 100, each repeating 10 of the previous: 11 pages, 1,040 results.
    fake.mount_search(WS, "MID", &hits, 100, 10).await;
    fake.mount_src(
        WS,
        "svc-000",
        "c1",
        "catalog-info.yaml",
        &component("svc-000"),
    )
    .await;

    let app = TestApp::spawn(&cloud_config(&fake, WS, "", "        pagelen: 100\n")).await;
    let status = app.wait_for_run("cloud", |_| true).await;
    let run = &status["lastRun"];
    assert_eq!(run["outcome"]["status"], "succeeded", "{status:#}");
    assert_eq!(names(&app).await, ["svc-000"]);
    assert_eq!(run["notices"], serde_json::json!([]), "{run:#}");
    // 1 project page + 11 search pages + 1 file: no repository listing.
    assert_eq!(run["requests"], 13, "{run:#}");
    app.stop().await;
}

/// Under the cap, an answer whose `size` counts more matches than the
/// distinct results it returned (repeats took others' places) is not a
/// listing either: the project is completed repository by repository.
#[tokio::test]
async fn an_answer_short_of_its_size_is_completed_repository_by_repository() {
    let fake = FakeCloud::start().await;
    fake.mount_projects(WS, &["SMALL"], 10).await;
    let found = |slug, commit| hit("SMALL", slug, "main", commit);
    // `size` 5, 3 distinct results: svc-d's file was not returned.
    let hits = [
        found("svc-a", "c1"),
        found("svc-b", "c2"),
        found("svc-a", "c1"),
        found("svc-c", "c3"),
        found("svc-b", "c2"),
    ];
    fake.mount_search(WS, "SMALL", &hits, 10, 0).await;
    fake.mount_paged(
        &format!("/repositories/{WS}"),
        ["svc-a", "svc-b", "svc-c", "svc-d"]
            .iter()
            .map(|slug| fake.repository(WS, "SMALL", slug, Some("main")))
            .collect(),
        10,
        0,
        &[("q", "project.key=\"SMALL\"")],
    )
    .await;
    let query = format!("{} repo:svc-d", search_query("SMALL"));
    fake.mount_paged(
        &format!("/workspaces/{WS}/search/code"),
        vec![serde_json::json!({
            "type": "code_search_result",
            "path_matches": [{"text": "catalog-info.yaml", "match": true}],
            "file": {"path": "catalog-info.yaml", "type": "commit_file", "commit": {
                "hash": "c4",
                "repository": fake.repository(WS, "SMALL", "svc-d", Some("main")),
            }},
        })],
        10,
        0,
        &[("search_query", query.as_str())],
    )
    .await;
    for (slug, commit) in [
        ("svc-a", "c1"),
        ("svc-b", "c2"),
        ("svc-c", "c3"),
        ("svc-d", "c4"),
    ] {
        fake.mount_src(WS, slug, commit, "catalog-info.yaml", &component(slug))
            .await;
    }

    let app = TestApp::spawn(&cloud_config(&fake, WS, "", "        pagelen: 10\n")).await;
    let status = app.wait_for_run("cloud", |_| true).await;
    let run = &status["lastRun"];
    assert_eq!(run["outcome"]["status"], "succeeded", "{status:#}");
    assert_eq!(names(&app).await, ["svc-a", "svc-b", "svc-c", "svc-d"]);
    let notices = run["notices"].to_string();
    assert!(notices.contains("project SMALL stopped at"), "{notices}");
    // 1 project page + 1 search page + 1 page of the project's repositories
    // + 1 `repo:` search + 4 files.
    assert_eq!(run["requests"], 8, "{run:#}");
    app.stop().await;
}
