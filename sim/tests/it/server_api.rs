//! Bitbucket Server REST 1.0: paging, repository shape, personal projects,
//! raw files and their errors, and garbage requests.

use crate::support::{client, get_json, get_text, server_all, start};
use bitbucket_sim::{DatasetConfig, FileKind, ServerOptions, SimConfig};
use serde_json::json;

fn config() -> SimConfig {
    SimConfig {
        dataset: DatasetConfig {
            projects: 30,
            repos_per_project: 12,
            personal_projects: 2,
            repos_per_personal_project: 3,
            ..DatasetConfig::default()
        },
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn projects_page_like_bitbucket() {
    let sim = start(config()).await;
    let c = client();
    let api = sim.server_api_base();

    let (values, pages) = server_all(&c, &format!("{api}/projects"), 7).await;
    let keys: Vec<&str> = values.iter().filter_map(|v| v["key"].as_str()).collect();
    let want: Vec<&str> = sim
        .dataset()
        .server_projects
        .iter()
        .map(|p| p.key.as_str())
        .collect();
    assert_eq!(
        keys, want,
        "every project once, in order, personal ones last"
    );
    assert_eq!(pages.len(), 32usize.div_ceil(7));
    for (i, page) in pages.iter().enumerate() {
        let last = i + 1 == pages.len();
        assert_eq!(page["isLastPage"], json!(last));
        assert_eq!(page["limit"], json!(7));
        assert_eq!(page["start"], json!(i * 7));
        assert_eq!(
            page["size"],
            json!(page["values"].as_array().map_or(0, Vec::len))
        );
        assert_eq!(page.get("nextPageStart").is_some(), !last);
    }
    let personal = &values[30];
    assert_eq!(personal["type"], "PERSONAL");
    assert!(
        personal["links"]["self"][0]["href"]
            .as_str()
            .is_some_and(|h| h.ends_with("/users/user001"))
    );

    // No limit: 25. Start past the end: an empty last page.
    let (_, first) = get_json(&c, &format!("{api}/projects")).await;
    assert_eq!(
        (first["limit"].clone(), first["size"].clone()),
        (json!(25), json!(25))
    );
    assert_eq!(first["nextPageStart"], json!(25));
    let (_, past) = get_json(&c, &format!("{api}/projects?start=500")).await;
    assert_eq!(past["values"], json!([]));
    assert_eq!(past["isLastPage"], json!(true));

    for bad in ["start=abc", "limit=-1", "limit=1e3", "start=-5"] {
        let (status, body) = get_json(&c, &format!("{api}/projects?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["errors"][0]["message"].is_string(), "{body}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn limit_is_capped_at_the_max_page_size_and_personal_projects_can_be_hidden() {
    let sim = start(SimConfig {
        server: ServerOptions {
            max_page_size: 10,
            list_personal_projects: false,
            ..ServerOptions::default()
        },
        ..config()
    })
    .await;
    let c = client();
    let api = sim.server_api_base();
    let (_, page) = get_json(&c, &format!("{api}/projects?limit=1000")).await;
    assert_eq!(page["limit"], json!(10));
    assert_eq!(page["size"], json!(10));
    let (values, pages) = server_all(&c, &format!("{api}/projects"), 1000).await;
    assert_eq!((values.len(), pages.len()), (30, 3));
    assert!(values.iter().all(|v| v["type"] == "NORMAL"));
    // Hidden from the listing, still served.
    let (status, repos) = get_json(&c, &format!("{api}/projects/~USER002/repos")).await;
    assert_eq!(status, 200);
    assert_eq!(repos["size"], json!(3));
}

#[tokio::test]
async fn repositories_have_bitbucket_shape_and_page_completely() {
    let sim = start(config()).await;
    let c = client();
    let api = sim.server_api_base();
    let base = sim.base_url();
    for project in &sim.dataset().server_projects {
        let encoded = project.key.replace('~', "%7E");
        let (values, pages) = server_all(&c, &format!("{api}/projects/{encoded}/repos"), 5).await;
        assert_eq!(pages.len(), project.repos.len().div_ceil(5).max(1));
        assert_eq!(values.len(), project.repos.len());
        for (v, repo) in values.iter().zip(&project.repos) {
            assert_eq!(v["slug"], json!(repo.slug));
            assert_eq!(v["id"], json!(repo.id));
            assert_eq!(v["name"], json!(repo.name));
            assert_eq!(v["scmId"], "git");
            assert_eq!(v["state"], "AVAILABLE");
            assert_eq!(v["archived"], json!(repo.archived));
            assert_eq!(v["public"], json!(false));
            assert_eq!(v["defaultBranch"], json!(repo.default_branch));
            assert_eq!(v["project"]["key"], json!(project.key));
            let web = if project.personal {
                format!(
                    "{base}/users/{}/repos/{}/browse",
                    project.key.trim_start_matches('~').to_lowercase(),
                    repo.slug
                )
            } else {
                format!("{base}/projects/{}/repos/{}/browse", project.key, repo.slug)
            };
            assert_eq!(v["links"]["self"][0]["href"], json!(web));
        }
    }
    // Keys resolve case-insensitively, with `~` raw or encoded.
    for key in ["p0001", "~USER001", "%7Euser001"] {
        let (status, _) = get_json(&c, &format!("{api}/projects/{key}/repos")).await;
        assert_eq!(status, 200, "{key}");
    }
    let (status, body) = get_json(&c, &format!("{api}/projects/NOPE/repos")).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["errors"][0]["exceptionName"],
        "com.atlassian.bitbucket.project.NoSuchProjectException"
    );
}

#[tokio::test]
async fn raw_files_default_branch_and_their_errors() {
    let sim = start(config()).await;
    let c = client();
    let api = sim.server_api_base();
    let d = sim.dataset();
    let with_file = d
        .server_repos()
        .find(|r| r.file_kind == FileKind::LocationTree)
        .expect("a Location tree");
    let key = with_file.project_key.replace('~', "%7E");
    let repo_url = format!("{api}/projects/{key}/repos/{}", with_file.slug);

    let (status, text) = get_text(&c, &format!("{repo_url}/raw/catalog-info.yaml")).await;
    assert_eq!(
        (status, text.as_str()),
        (200, with_file.catalog_file().unwrap_or(""))
    );
    for (path, content) in &with_file.files {
        let (status, text) = get_text(&c, &format!("{repo_url}/raw/{path}")).await;
        assert_eq!((status, &text), (200, content), "{path}");
    }
    let branch = &with_file.default_branch;
    let commit = &with_file.commit;
    for at in [
        branch.clone(),
        format!("refs/heads/{branch}"),
        commit.clone(),
        commit[..7].to_owned(),
    ] {
        let (status, _) = get_text(&c, &format!("{repo_url}/raw/catalog-info.yaml?at={at}")).await;
        assert_eq!(status, 200, "at={at}");
    }
    let (status, body) = get_json(
        &c,
        &format!("{repo_url}/raw/catalog-info.yaml?at=no-such-branch"),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["errors"][0]["exceptionName"],
        "com.atlassian.bitbucket.commit.NoSuchCommitException"
    );

    let without = d
        .server_repos()
        .find(|r| r.file_kind == FileKind::None)
        .expect("a repo without a file");
    let key = without.project_key.replace('~', "%7E");
    let (status, body) = get_json(
        &c,
        &format!(
            "{api}/projects/{key}/repos/{}/raw/catalog-info.yaml",
            without.slug
        ),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"errors": [{
            "context": null,
            "message": format!("The path \"catalog-info.yaml\" does not exist at revision \"refs/heads/{}\"", without.default_branch),
            "exceptionName": "com.atlassian.bitbucket.content.NoSuchPathException",
        }]})
    );

    let (status, body) = get_json(&c, &format!("{repo_url}/default-branch")).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], json!(format!("refs/heads/{branch}")));
    assert_eq!(body["displayId"], json!(branch));
    assert_eq!(body["latestCommit"], json!(commit));

    // The `latest` alias and a personal repo's file.
    let personal = d.server_project("~USER001").expect("personal");
    let repo = &personal.repos[0];
    let (status, _) = get_text(
        &c,
        &format!(
            "{}/rest/api/latest/projects/~USER001/repos/{}/raw/README.md",
            sim.base_url(),
            repo.slug
        ),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn garbage_requests_get_4xx_and_never_break_the_server() {
    let sim = start(config()).await;
    let c = client();
    let base = sim.base_url();
    let paths = [
        "/",
        "/rest",
        "/rest/api/1.0",
        "/rest/api/1.0/projects/",
        "/rest/api/1.0/projects/P0001",
        "/rest/api/1.0/projects/P0001/repos/",
        "/rest/api/1.0/projects/P0001/repos/x/raw/",
        "/rest/api/1.0/projects/%ff%fe/repos",
        "/rest/api/1.0/projects/P0001/repos/%C0%AF/raw/a",
        "/rest/api/1.0/projects/P0001/repos/x/raw/%2e%2e/%2e%2e/etc/passwd",
        "/rest/api/1.0/projects?start=99999999999999999999999999",
        "/rest/api/1.0/projects?limit=%zz",
        "/rest/api/2.0/projects",
        "/2.0/repositories/acme/x/src",
        "/2.0/repositories//",
        "/2.0/workspaces/acme/search/code?search_query=%22",
        "/2.0/repositories/acme?page=0",
        "/2.0/repositories/acme?pagelen=abc",
        "/2.0/repositories/acme?q=name~%22x%22",
        "/__sim/nope",
    ];
    for path in paths {
        let response = c.get(format!("{base}{path}")).send().await.expect(path);
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{path} → {status}");
    }
    let response = c
        .post(format!("{}/projects", sim.server_api_base()))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 405);
    // Still serving.
    let (status, _) = get_json(&c, &format!("{}/projects", sim.server_api_base())).await;
    assert_eq!(status, 200);
}
