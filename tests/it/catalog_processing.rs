//! Black-box: a mixed Bitbucket (valid files, multi-document files, Location
//! trees, invalid names, broken YAML, hostile files) yields exactly the
//! entities Backstage would accept, and every rejection is visible over the API.

use std::collections::BTreeSet;

use crate::support::{FakeServer, TestApp, component, server_config};
use serde_json::{Value, json};

const API_DOC: &str = "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: {name}\nspec:\n  type: openapi\n  lifecycle: production\n  owner: team-a\n  definition: openapi\n";

fn api(name: &str) -> String {
    API_DOC.replace("{name}", name)
}

fn location(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\nspec:\n{extra_spec}"
    )
}

/// Every repository of the mixed Bitbucket and what is in it.
async fn mixed_fake(fake: &FakeServer) {
    let repos = [
        "valid",
        "invalid-names",
        "broken",
        "group-here",
        "org",
        "tree",
        "tree-broken",
        "tree-optional",
        "foreign",
        "hostile",
        "too-big",
        "binary",
        "empty",
        "json",
        "no-catalog",
        "bad-ref",
        "placeholder",
    ];
    fake.mount_projects(&["PLAT"], 1000).await;
    let repo_list: Vec<(&str, bool)> = repos.iter().map(|r| (*r, false)).collect();
    fake.mount_repos("PLAT", &repo_list, 1000).await;
    let file = |slug: &'static str, path: &'static str, body: String| async move {
        fake.mount_file("PLAT", slug, path, &body).await;
    };
    // Multi-document with a trailing `---`: both kept.
    file(
        "valid",
        "catalog-info.yaml",
        format!(
            "{}  providesApis: [valid-api]\n---\n{}---\n",
            component("valid-svc"),
            api("valid-api")
        ),
    )
    .await;
    // One invalid name: that entity is dropped, its sibling kept.
    file(
        "invalid-names",
        "catalog-info.yaml",
        format!(
            "{}---\n{}",
            component("Bad Name!"),
            component("good-sibling")
        ),
    )
    .await;
    // A broken second document: Backstage keeps nothing from the file.
    file(
        "broken",
        "catalog-info.yaml",
        format!(
            "{}---\napiVersion: backstage.io/v1alpha1\n  kind: - is - not [valid] yaml\n",
            component("broken-first")
        ),
    )
    .await;
    // A Group where catalog.rules does not allow groups: nothing kept.
    file("group-here", "catalog-info.yaml", format!(
        "{}---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: sneaky\nspec:\n  type: team\n  children: []\n",
        component("group-here-svc")
    )).await;
    // Groups and users are allowed from the org repository only.
    file("org", "catalog-info.yaml", "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-a\nspec:\n  type: team\n  children: []\n---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: jdoe\nspec:\n  memberOf: [team-a]\n".into()).await;
    // A Location tree: relative, repository-absolute and cyclic targets.
    file(
        "tree",
        "catalog-info.yaml",
        format!(
            "{}---\n{}",
            location(
                "tree-root",
                "  targets:\n    - ./systems/a.yaml\n    - /docs/b.yaml\n"
            ),
            component("tree-svc")
        ),
    )
    .await;
    file(
        "tree",
        "systems/a.yaml",
        format!(
            "{}---\n{}",
            component("tree-a"),
            location(
                "tree-nested",
                "  targets: [../catalog-info.yaml, ./c.yaml]\n"
            )
        ),
    )
    .await;
    file("tree", "systems/c.yaml", api("tree-c-api")).await;
    file("tree", "docs/b.yaml", component("tree-b")).await;
    // A required target is missing: the Location and its other children go.
    file(
        "tree-broken",
        "catalog-info.yaml",
        format!(
            "{}---\n{}",
            location("broken-loc", "  targets: [./exists.yaml, ./missing.yaml]\n"),
            component("broken-loc-sibling")
        ),
    )
    .await;
    file("tree-broken", "exists.yaml", component("lost-child")).await;
    // Optional targets may be missing.
    file(
        "tree-optional",
        "catalog-info.yaml",
        location(
            "opt-loc",
            "  presence: optional\n  targets: [./missing.yaml, ./here.yaml]\n",
        ),
    )
    .await;
    file("tree-optional", "here.yaml", component("opt-child")).await;
    // A target on another host is refused without a request.
    file(
        "foreign",
        "catalog-info.yaml",
        format!(
            "{}---\n{}",
            location(
                "foreign-loc",
                "  target: https://github.com/org/repo/blob/main/catalog-info.yaml\n"
            ),
            component("foreign-sibling")
        ),
    )
    .await;
    // Hostile and odd files.
    // Billion laughs: small on disk, exponential if expanded.
    let laughs = (1..8)
        .map(|i| {
            let prev = if i == 1 {
                "lol".to_owned()
            } else {
                format!("*l{}", i - 1)
            };
            format!("l{i}: &l{i} [{}]\n", vec![prev; 9].join(","))
        })
        .collect::<String>();
    file(
        "hostile",
        "catalog-info.yaml",
        format!("{}---\n{laughs}", component("hostile-first")),
    )
    .await;
    file(
        "too-big",
        "catalog-info.yaml",
        format!("{}# {}\n", component("too-big-svc"), "x".repeat(5000)),
    )
    .await;
    fake.mount_file_bytes(
        "PLAT",
        "binary",
        "catalog-info.yaml",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
    )
    .await;
    file("empty", "catalog-info.yaml", String::new()).await;
    file(
        "json",
        "catalog-info.yaml",
        json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": "json-svc"},
            "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}
        })
        .to_string(),
    )
    .await;
    // $text placeholders are read relative to the file.
    file(
        "placeholder",
        "catalog-info.yaml",
        api("placeholder-api").replace(
            "  definition: openapi\n",
            "  definition:\n    $text: ./openapi.yaml\n",
        ),
    )
    .await;
    file("placeholder", "openapi.yaml", "openapi: 3.0.0\n".into()).await;
    // A dependsOn without a kind: Backstage's processor throws for that entity.
    file(
        "bad-ref",
        "catalog-info.yaml",
        format!("{}  dependsOn: [db]\n", component("bad-ref-svc")),
    )
    .await;
}

fn mixed_config(fake: &FakeServer) -> String {
    let base = fake.server.uri();
    format!(
        "{}  rules:\n    - allow: [Component, API, Location]\n    - allow: [Group, User]\n      locations:\n        - type: url\n          pattern: '{base}/projects/PLAT/repos/org/browse/**'\n  processing:\n    maxFileSize: 4KiB\n",
        server_config(fake, "", "")
    )
}

fn problems_by_repo(errors: &Value) -> Vec<(String, String, Option<u64>, Option<String>)> {
    let mut out: Vec<_> = errors["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            let url = p["url"].as_str().unwrap_or_default();
            let repo_and_path = url
                .split("/repos/")
                .nth(1)
                .map(|rest| rest.replace("/browse/", ":"))
                .unwrap_or_else(|| url.to_owned());
            (
                repo_and_path,
                p["kind"].as_str().unwrap_or_default().to_owned(),
                p["document"].as_u64(),
                p["entityRef"].as_str().map(str::to_owned),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_mixed_bitbucket_yields_exactly_what_backstage_accepts() {
    let fake = FakeServer::start().await;
    mixed_fake(&fake).await;
    let app = TestApp::spawn(&mixed_config(&fake)).await;
    let status = app.wait_for_run("main", |_| true).await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );

    let names: BTreeSet<String> = app.entity_names().await.into_iter().collect();
    let expected: BTreeSet<String> = [
        "valid-svc",
        "valid-api",
        "good-sibling",
        "team-a",
        "jdoe",
        "tree-root",
        "tree-svc",
        "tree-a",
        "tree-nested",
        "tree-c-api",
        "tree-b",
        "broken-loc-sibling",
        "opt-loc",
        "opt-child",
        // A refused target costs only its own entities, as in Backstage.
        "foreign-loc",
        "foreign-sibling",
        "json-svc",
        "placeholder-api",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(names, expected);

    let errors = app.get_json("/api/catalog/providers/main/errors").await;
    assert_eq!(errors["provider"], "main");
    assert_eq!(errors["outcome"]["status"], "succeeded");
    assert!(
        errors["finishedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{errors:#}"
    );
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        problems_by_repo(&errors),
        vec![
            (
                "bad-ref:catalog-info.yaml".into(),
                "entity".into(),
                Some(1),
                s("component:default/bad-ref-svc")
            ),
            (
                "binary:catalog-info.yaml".into(),
                "parse".into(),
                Some(1),
                None
            ),
            (
                "broken:catalog-info.yaml".into(),
                "parse".into(),
                Some(2),
                None
            ),
            (
                "foreign:catalog-info.yaml".into(),
                "location".into(),
                Some(1),
                s("location:default/foreign-loc")
            ),
            (
                "group-here:catalog-info.yaml".into(),
                "notAllowed".into(),
                Some(2),
                s("group:default/sneaky")
            ),
            (
                "hostile:catalog-info.yaml".into(),
                "parse".into(),
                Some(2),
                None
            ),
            (
                "invalid-names:catalog-info.yaml".into(),
                "entity".into(),
                Some(1),
                s("component:default/Bad Name!")
            ),
            (
                "too-big:catalog-info.yaml".into(),
                "parse".into(),
                None,
                None
            ),
            (
                "tree-broken:catalog-info.yaml".into(),
                "location".into(),
                Some(1),
                s("location:default/broken-loc")
            ),
        ],
        "{errors:#}"
    );
    let message = |repo: &str| -> String {
        errors["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                p["url"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("/repos/{repo}/"))
            })
            .map(|p| p["message"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert!(
        message("invalid-names").contains("metadata.name"),
        "{}",
        message("invalid-names")
    );
    assert!(message("invalid-names").contains("isValidEntityName"));
    assert!(
        message("tree-broken").contains("missing.yaml"),
        "{}",
        message("tree-broken")
    );
    assert!(message("tree-broken").contains("presence: optional"));
    assert!(
        message("foreign").contains("github.com"),
        "{}",
        message("foreign")
    );
    assert!(
        message("too-big").contains("maxFileSize"),
        "{}",
        message("too-big")
    );
    assert!(
        message("group-here").contains("catalog.rules"),
        "{}",
        message("group-here")
    );
    assert!(
        message("bad-ref").contains("spec.dependsOn.0"),
        "{}",
        message("bad-ref")
    );

    // 8 files: tree 3 (the cycle back to tree/catalog-info.yaml is
    // not read again), tree-broken 2, tree-optional 2, foreign none, one placeholder. The
    // optional missing target costs one request; nothing left the fake.
    assert_eq!(
        fake.requests_to("/repos/tree/raw/catalog-info.yaml").await,
        1
    );
    assert_eq!(
        fake.requests_to("/repos/tree-optional/raw/missing.yaml")
            .await,
        1
    );
    assert_eq!(status["lastRun"]["locationFiles"], 8, "{status:#}");

    // The summary in /providers carries the same problems.
    assert_eq!(status["lastRun"]["problems"].as_array().unwrap().len(), 9);
    app.stop().await;
}

#[tokio::test]
async fn entities_carry_backstage_annotations_relations_and_identity() {
    let fake = FakeServer::start().await;
    mixed_fake(&fake).await;
    let app = TestApp::spawn(&mixed_config(&fake)).await;
    app.wait_for_run("main", |_| true).await;
    let base = fake.server.uri();

    // A file reached through two Location entities: its own location, the
    // discovered file as origin.
    let nested = app
        .get_json("/api/catalog/entities/by-name/api/default/tree-c-api")
        .await;
    let annotations = &nested["metadata"]["annotations"];
    let file = format!("{base}/projects/PLAT/repos/tree/browse/systems/c.yaml");
    assert_eq!(
        annotations["backstage.io/managed-by-location"],
        format!("url:{file}")
    );
    assert_eq!(
        annotations["backstage.io/managed-by-origin-location"],
        format!("url:{base}/projects/PLAT/repos/tree/browse/catalog-info.yaml")
    );
    assert_eq!(annotations["backstage.io/view-url"], file.as_str());
    assert_eq!(annotations["backstage.io/edit-url"], file.as_str());
    assert_eq!(
        annotations["backstage.io/source-location"],
        format!("url:{base}/projects/PLAT/repos/tree/browse/systems/")
    );
    assert_eq!(
        annotations["127.0.0.1/repo-url"],
        format!("{base}/projects/PLAT/repos/tree/browse")
    );
    assert!(annotations.get("bitbucket.org/default-branch").is_none());

    // Relations in both directions, across files and repositories.
    let team = app
        .get_json("/api/catalog/entities/by-name/group/default/team-a")
        .await;
    let relations: BTreeSet<(String, String)> = team["relations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_owned(),
                r["targetRef"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("ownerOf", "component:default/valid-svc"),
        ("ownerOf", "api:default/valid-api"),
        ("ownerOf", "component:default/tree-b"),
        ("hasMember", "user:default/jdoe"),
    ] {
        assert!(
            relations.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {relations:?}"
        );
    }
    let svc = app
        .get_json("/api/catalog/entities/by-name/component/default/valid-svc")
        .await;
    assert_eq!(
        svc["relations"],
        json!([
            {"type": "ownedBy", "targetRef": "group:default/team-a"},
            {"type": "providesApi", "targetRef": "api:default/valid-api"}
        ])
    );
    let api_entity = app
        .get_json("/api/catalog/entities/by-name/api/default/valid-api")
        .await;
    assert!(
        api_entity["relations"].as_array().unwrap().contains(
            &json!({"type": "apiProvidedBy", "targetRef": "component:default/valid-svc"})
        )
    );

    let placeholder = app
        .get_json("/api/catalog/entities/by-name/api/default/placeholder-api")
        .await;
    assert_eq!(placeholder["spec"]["definition"], "openapi: 3.0.0\n");

    // uid and etag are set; the uid is a UUID.
    let uid = svc["metadata"]["uid"].as_str().unwrap();
    assert_eq!(uid.len(), 36, "{uid}");
    assert_eq!(svc["metadata"]["etag"].as_str().unwrap().len(), 40);
    app.stop().await;
}

#[tokio::test]
async fn uid_is_stable_and_etag_changes_exactly_when_content_does() {
    let fake = FakeServer::builder()
        .component("PLAT", "svc")
        .component("PLAT", "other")
        .start()
        .await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { seconds: 1 }\n",
    ))
    .await;
    app.wait_for_run("main", |s| s["lastRun"]["outcome"]["status"] == "succeeded")
        .await;
    let before_svc = app
        .get_json("/api/catalog/entities/by-name/component/default/svc")
        .await;
    let before_other = app
        .get_json("/api/catalog/entities/by-name/component/default/other")
        .await;

    // A new description in svc only.
    fake.server.reset().await;
    FakeServer::builder()
        .catalog(
            "PLAT",
            "svc",
            &component("svc").replace(
                "  name: svc\n",
                "  name: svc\n  description: now described\n",
            ),
        )
        .component("PLAT", "other")
        .mount(&fake)
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let after_svc = loop {
        let e = app
            .get_json("/api/catalog/entities/by-name/component/default/svc")
            .await;
        if e["metadata"]["description"] == "now described" {
            break e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "description never arrived: {e:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let after_other = app
        .get_json("/api/catalog/entities/by-name/component/default/other")
        .await;
    assert_eq!(after_svc["metadata"]["uid"], before_svc["metadata"]["uid"]);
    assert_ne!(
        after_svc["metadata"]["etag"],
        before_svc["metadata"]["etag"]
    );
    assert_eq!(
        after_other["metadata"]["uid"],
        before_other["metadata"]["uid"]
    );
    assert_eq!(
        after_other["metadata"]["etag"],
        before_other["metadata"]["etag"]
    );
    app.stop().await;
}

#[tokio::test]
async fn default_branch_comes_from_the_listing_without_extra_requests() {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    let base = fake.server.uri();
    fake.mount_paged(
        "/projects/PLAT/repos",
        vec![json!({
            "slug": "svc", "archived": false, "project": {"key": "PLAT"},
            "defaultBranch": {"id": "refs/heads/trunk", "displayId": "trunk"},
            "links": {"self": [{"href": format!("{base}/projects/PLAT/repos/svc/browse")}]},
        })],
        25,
    )
    .await;
    fake.mount_file("PLAT", "svc", "catalog-info.yaml", &format!(
        "{}---\n{}",
        component("svc"),
        component("custom").replace("  name: custom\n", "  name: custom\n  annotations:\n    backstage.io/view-url: https://docs.example.com/custom\n    backstage.io/edit-url: 'javascript:alert(1)'\n")
    )).await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    let status = app.wait_for_run("main", |_| true).await;
    // Projects + repositories + the file: no default-branch call.
    assert_eq!(status["lastRun"]["requests"], 3, "{status:#}");
    assert_eq!(fake.requests_to("/default-branch").await, 0);
    let svc = app
        .get_json("/api/catalog/entities/by-name/component/default/svc")
        .await;
    assert_eq!(
        svc["metadata"]["annotations"]["bitbucket.org/default-branch"],
        "trunk"
    );
    // Values the file sets win, except script URLs, which Backstage neutralises.
    let custom = app
        .get_json("/api/catalog/entities/by-name/component/default/custom")
        .await;
    assert_eq!(
        custom["metadata"]["annotations"]["backstage.io/view-url"],
        "https://docs.example.com/custom"
    );
    assert_eq!(
        custom["metadata"]["annotations"]["backstage.io/edit-url"],
        "https://backstage.io/annotation-rejected-for-security-reasons"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_errors_endpoint_before_a_run_and_for_unknown_providers() {
    let fake = FakeServer::start().await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { trigger: manual }\n          initialDelay: { hours: 1 }\n",
    ))
    .await;
    let before = app.get_json("/api/catalog/providers/main/errors").await;
    assert_eq!(
        before,
        json!({"provider": "main", "finishedAt": null, "outcome": null, "problems": []})
    );
    let missing = app.get("/api/catalog/providers/nope/errors").await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["name"], "NotFoundError");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("known providers: main"),
        "{body}"
    );
    app.stop().await;
}
