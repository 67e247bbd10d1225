//! Bitbucket Cloud REST 2.0: repository and project paging with absolute
//! `next` URLs, `q` and `fields`, and `src`.

use crate::support::{client, cloud_all, get_json, get_text, start};
use bitbucket_sim::{CloudOptions, DatasetConfig, FileKind, SimConfig};
use serde_json::json;

fn config() -> SimConfig {
    SimConfig {
        dataset: DatasetConfig {
            cloud_workspace: "acme".into(),
            cloud_projects: 4,
            cloud_repos_per_project: 9,
            ..DatasetConfig::default()
        },
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn repositories_page_with_absolute_next_links() {
    let sim = start(config()).await;
    let c = client();
    let api = sim.cloud_api_base();
    let d = sim.dataset();

    let (values, pages) = cloud_all(&c, &format!("{api}/repositories/acme?pagelen=7")).await;
    assert_eq!(pages.len(), 36usize.div_ceil(7));
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page["page"], json!(i + 1));
        assert_eq!(page["pagelen"], json!(7));
        assert_eq!(page["size"], json!(36));
        if let Some(next) = page["next"].as_str() {
            assert!(
                next.starts_with(&format!("{api}/repositories/acme?")),
                "{next}"
            );
            assert!(next.contains("pagelen=7") && next.contains(&format!("page={}", i + 2)));
        }
    }
    assert_eq!(values.len(), d.cloud.repos.len());
    for (v, repo) in values.iter().zip(&d.cloud.repos) {
        assert_eq!(v["slug"], json!(repo.slug));
        assert_eq!(v["full_name"], json!(format!("acme/{}", repo.slug)));
        assert_eq!(v["project"]["key"], json!(repo.project_key));
        assert_eq!(v["mainbranch"]["name"], json!(repo.default_branch));
        assert_eq!(
            v["links"]["html"]["href"],
            json!(format!("{}/acme/{}", sim.base_url(), repo.slug))
        );
    }

    // Default pagelen 10, a filter on the project, and `fields` trimming
    // that survives into the `next` link.
    let (_, first) = get_json(&c, &format!("{api}/repositories/acme")).await;
    assert_eq!(first["pagelen"], json!(10));
    let url = format!(
        "{api}/repositories/acme?q=project.key%3D%22CP002%22&pagelen=4&fields=-values.links,-values.project.uuid"
    );
    let (values, pages) = cloud_all(&c, &url).await;
    assert_eq!(values.len(), 9);
    assert_eq!(pages.len(), 3);
    assert!(values.iter().all(|v| v["project"]["key"] == "CP002"));
    assert!(values.iter().all(|v| v.get("links").is_none()));
    assert!(values.iter().all(|v| v["project"].get("uuid").is_none()));

    // The workspace UUID works as an identifier, too.
    let uuid = urlencode(&d.cloud.uuid);
    let (status, _) = get_json(&c, &format!("{api}/repositories/{uuid}")).await;
    assert_eq!(status, 200);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn pagelen_is_capped_and_bad_paging_is_400() {
    let sim = start(SimConfig {
        cloud: CloudOptions {
            max_pagelen: 5,
            ..CloudOptions::default()
        },
        ..config()
    })
    .await;
    let c = client();
    let api = sim.cloud_api_base();
    let (_, page) = get_json(&c, &format!("{api}/repositories/acme?pagelen=100")).await;
    assert_eq!(page["pagelen"], json!(5));
    assert_eq!(page["values"].as_array().map(Vec::len), Some(5));
    let (_, past) = get_json(&c, &format!("{api}/repositories/acme?page=99")).await;
    assert_eq!(past["values"], json!([]));
    assert!(past.get("next").is_none());
    for bad in [
        "page=0",
        "page=x",
        "pagelen=0",
        "pagelen=-3",
        "q=name%3D%22x%22",
    ] {
        let (status, body) = get_json(&c, &format!("{api}/repositories/acme?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["type"], "error");
    }
    let (status, body) = get_json(&c, &format!("{api}/repositories/nope")).await;
    assert_eq!((status, body["type"].as_str()), (404, Some("error")));
}

#[tokio::test]
async fn workspace_projects_are_listed() {
    let sim = start(config()).await;
    let c = client();
    let (values, _) = cloud_all(
        &c,
        &format!(
            "{}/workspaces/acme/projects?pagelen=3",
            sim.cloud_api_base()
        ),
    )
    .await;
    let keys: Vec<_> = values.iter().filter_map(|v| v["key"].as_str()).collect();
    assert_eq!(keys, ["CP001", "CP002", "CP003", "CP004"]);
    assert!(values.iter().all(|v| v["type"] == "project"));
}

#[tokio::test]
async fn src_serves_files_by_branch_or_commit() {
    let sim = start(config()).await;
    let c = client();
    let api = sim.cloud_api_base();
    let d = sim.dataset();
    let repo = d
        .cloud
        .repos
        .iter()
        .find(|r| r.file_kind.has_file())
        .expect("a repo with a file");
    for reference in [repo.default_branch.as_str(), repo.commit.as_str()] {
        let (status, text) = get_text(
            &c,
            &format!(
                "{api}/repositories/acme/{}/src/{reference}/catalog-info.yaml",
                repo.slug
            ),
        )
        .await;
        assert_eq!((status, Some(text.as_str())), (200, repo.catalog_file()));
    }
    let without = d
        .cloud
        .repos
        .iter()
        .find(|r| r.file_kind == FileKind::None)
        .expect("a repo without a file");
    let (status, body) = get_json(
        &c,
        &format!(
            "{api}/repositories/acme/{}/src/{}/catalog-info.yaml",
            without.slug, without.default_branch
        ),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "error");
    let (status, _) = get_json(
        &c,
        &format!(
            "{api}/repositories/acme/{}/src/nope/catalog-info.yaml",
            repo.slug
        ),
    )
    .await;
    assert_eq!(status, 404);
}
