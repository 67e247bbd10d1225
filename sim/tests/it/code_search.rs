//! Cloud code search: Backstage's per-project query, `fields`, repeated
//! results across pages (BCLOUD-23644), search not enabled, bad queries.

use std::collections::BTreeSet;

use crate::support::{client, cloud_all, get_json, start};
use bitbucket_sim::{Behaviour, CodeSearch, DatasetConfig, SimConfig, Simulator};
use serde_json::{Value, json};

/// What Backstage's Bitbucket Cloud provider sends.
const BACKSTAGE_FIELDS: &str = "-values.content_matches,+values.file.commit.repository.mainbranch.name,+values.file.commit.repository.project.key,+values.file.commit.repository.slug,-values.*.links,-values.*.*.links,-values.*.*.*.links,+values.file.commit.repository.links.html.href";

fn config() -> SimConfig {
    SimConfig {
        dataset: DatasetConfig {
            cloud_projects: 3,
            cloud_repos_per_project: 25,
            ..DatasetConfig::default()
        },
        ..SimConfig::default()
    }
}

/// The workspace's code search URL for `query`.
fn query_url(sim: &Simulator, query: &str, pagelen: usize) -> url::Url {
    let mut url = url::Url::parse(&format!(
        "{}/workspaces/{}/search/code",
        sim.cloud_api_base(),
        sim.cloud_workspace()
    ))
    .expect("url");
    url.query_pairs_mut()
        .append_pair("search_query", query)
        .append_pair("pagelen", &pagelen.to_string());
    url
}

fn search_url(sim: &Simulator, project: &str, pagelen: usize, fields: Option<&str>) -> String {
    let query = format!("\"catalog-info.yaml\" path:/catalog-info.yaml project:{project}");
    let mut url = query_url(sim, &query, pagelen);
    if let Some(fields) = fields {
        url.query_pairs_mut().append_pair("fields", fields);
    }
    url.to_string()
}

fn slugs(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            v["file"]["commit"]["repository"]["slug"]
                .as_str()
                .expect("slug")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn per_project_search_finds_exactly_the_root_catalog_files() {
    let sim = start(config()).await;
    let c = client();
    for project in &sim.dataset().cloud.projects {
        let want: BTreeSet<String> = sim
            .dataset()
            .cloud
            .repos
            .iter()
            .filter(|r| r.project_key == project.key && r.file_kind.has_file())
            .map(|r| r.slug.clone())
            .collect();
        let (values, pages) = cloud_all(&c, &search_url(&sim, &project.key, 4, None)).await;
        let got = slugs(&values);
        assert_eq!(got.len(), want.len(), "no duplicates without the bug");
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
        assert_eq!(pages.len(), want.len().div_ceil(4).max(1));
        for v in &values {
            assert_eq!(v["type"], "code_search_result");
            assert_eq!(v["file"]["path"], "catalog-info.yaml");
            assert_eq!(
                v["path_matches"],
                json!([{"text": "catalog-info.yaml", "match": true}])
            );
            let repo = &v["file"]["commit"]["repository"];
            let slug = repo["slug"].as_str().expect("slug");
            let r = sim.dataset().cloud_repo(slug).expect("known repo");
            assert_eq!(v["file"]["commit"]["hash"], json!(r.commit));
            assert_eq!(repo["project"]["key"], json!(project.key));
            assert_eq!(repo["mainbranch"]["name"], json!(r.default_branch));
            assert_eq!(repo["full_name"], json!(format!("acme/{slug}")));
        }
    }
}

#[tokio::test]
async fn backstage_fields_trim_links_and_content_but_keep_what_discovery_needs() {
    let sim = start(config()).await;
    let c = client();
    let (values, _) = cloud_all(&c, &search_url(&sim, "CP001", 100, Some(BACKSTAGE_FIELDS))).await;
    assert!(!values.is_empty());
    for v in values {
        assert!(v.get("content_matches").is_none());
        assert!(v["file"].get("links").is_none());
        assert!(v["file"]["commit"].get("links").is_none());
        let repo = &v["file"]["commit"]["repository"];
        assert!(repo["slug"].is_string() && repo["mainbranch"]["name"].is_string());
        assert!(repo["project"]["key"].is_string());
        assert!(repo["links"]["html"]["href"].is_string());
        assert!(repo["links"].get("self").is_none());
    }
}

#[tokio::test]
async fn repeated_results_across_pages_when_the_bug_is_on() {
    let sim = start(SimConfig {
        behaviour: Behaviour {
            code_search: CodeSearch {
                repeat_per_page: 2,
                ..CodeSearch::default()
            },
            ..Behaviour::default()
        },
        ..config()
    })
    .await;
    let c = client();
    let want: BTreeSet<String> = sim
        .dataset()
        .cloud
        .repos
        .iter()
        .filter(|r| r.project_key == "CP002" && r.file_kind.has_file())
        .map(|r| r.slug.clone())
        .collect();
    assert!(want.len() > 5, "the test needs several pages");
    let (values, pages) = cloud_all(&c, &search_url(&sim, "CP002", 5, None)).await;
    let got = slugs(&values);
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique, want, "nothing lost");
    assert_eq!(
        got.len() - unique.len(),
        2 * (pages.len() - 1),
        "two repeats per later page"
    );
    // Each later page starts with the previous page's last two results.
    for pair in pages.windows(2) {
        let prev = slugs(pair[0]["values"].as_array().expect("values"));
        let next = slugs(pair[1]["values"].as_array().expect("values"));
        assert_eq!(prev[prev.len() - 2..], next[..2]);
    }
    assert_eq!(pages[0]["size"], json!(want.len()));
}

#[tokio::test]
async fn search_not_enabled_answers_like_bitbucket_and_can_be_turned_on() {
    let sim = start(SimConfig {
        behaviour: Behaviour {
            code_search: CodeSearch {
                enabled: false,
                ..CodeSearch::default()
            },
            ..Behaviour::default()
        },
        ..config()
    })
    .await;
    let c = client();
    let (status, body) = get_json(&c, &search_url(&sim, "CP001", 10, None)).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not enabled"))
    );

    let mut behaviour = sim.behaviour();
    behaviour.code_search.disabled_status = 403;
    sim.set_behaviour(behaviour.clone()).expect("valid");
    let (status, _) = get_json(&c, &search_url(&sim, "CP001", 10, None)).await;
    assert_eq!(status, 403);

    behaviour.code_search.enabled = true;
    sim.set_behaviour(behaviour).expect("valid");
    let (status, _) = get_json(&c, &search_url(&sim, "CP001", 10, None)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_queries_are_400_and_results_stop_at_the_cap() {
    let sim = start(SimConfig {
        behaviour: Behaviour {
            code_search: CodeSearch {
                max_results: 3,
                ..CodeSearch::default()
            },
            ..Behaviour::default()
        },
        ..config()
    })
    .await;
    let c = client();
    let base = format!("{}/workspaces/acme/search/code", sim.cloud_api_base());
    for bad in [
        "",
        "?search_query=",
        "?search_query=path%3A%2Fx",
        "?search_query=%22open",
        "?search_query=x&page=0",
    ] {
        let (status, body) = get_json(&c, &format!("{base}{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (values, _) = cloud_all(&c, &format!("{base}?search_query=generated&pagelen=2")).await;
    assert_eq!(values.len(), 3);
    let (status, _) = get_json(
        &c,
        &format!(
            "{}/workspaces/other/search/code?search_query=x",
            sim.cloud_api_base()
        ),
    )
    .await;
    assert_eq!(status, 404);
}

/// Many matches in monorepos, a small cap, and results in a new order per walk.
fn capped(unstable_order: bool) -> SimConfig {
    SimConfig {
        dataset: DatasetConfig {
            cloud_projects: 2,
            cloud_repos_per_project: 5,
            monorepo_ratio: 1.0,
            monorepo_files: (20, 30),
            ..DatasetConfig::default()
        },
        behaviour: Behaviour {
            code_search: CodeSearch {
                max_results: 60,
                unstable_order,
                ..CodeSearch::default()
            },
            ..Behaviour::default()
        },
        ..SimConfig::default()
    }
}

async fn walk(c: &reqwest::Client, sim: &Simulator, query: &str) -> (Vec<String>, Value) {
    let url = query_url(sim, query, 25);
    let (values, pages) = cloud_all(c, url.as_str()).await;
    let files = values
        .iter()
        .map(|v| {
            format!(
                "{}/{}",
                v["file"]["commit"]["repository"]["slug"]
                    .as_str()
                    .unwrap_or_default(),
                v["file"]["path"].as_str().unwrap_or_default()
            )
        })
        .collect();
    (files, pages[0].clone())
}

#[tokio::test]
async fn a_capped_search_counts_every_match_and_walks_differ_when_unstable() {
    let sim = start(capped(true)).await;
    let c = client();
    let query = "\"catalog-info.yaml\" path:catalog-info.yaml";
    let matching = sim
        .dataset()
        .cloud
        .repos
        .iter()
        .flat_map(|r| r.files.keys())
        .filter(|p| p.contains("catalog-info.yaml"))
        .count();
    let (first, page) = walk(&c, &sim, query).await;
    assert_eq!(first.len(), 60, "results stop at the cap");
    assert_eq!(page["size"], json!(matching), "size counts every match");
    assert_eq!(
        first.iter().collect::<BTreeSet<_>>().len(),
        60,
        "one walk has no repeats"
    );
    let (second, _) = walk(&c, &sim, query).await;
    assert_ne!(first, second, "another walk, another order");
    assert_ne!(
        first.iter().collect::<BTreeSet<_>>(),
        second.iter().collect::<BTreeSet<_>>(),
        "so another capped set"
    );
    // Past the cap: Bitbucket's 400.
    let url = format!(
        "{}/workspaces/{}/search/code?search_query=catalog&pagelen=20&page=4",
        sim.cloud_api_base(),
        sim.cloud_workspace()
    );
    let (status, body) = get_json(&c, &url).await;
    assert_eq!(status, 400);
    assert!(
        body.to_string()
            .contains("Cannot fetch results past result number 60"),
        "{body}"
    );
    // Narrowing by repository brings a repository's files under the cap.
    let slug = &sim.dataset().cloud.repos[0].slug;
    let (narrow, _) = walk(&c, &sim, &format!("{query} repo:{slug}")).await;
    assert!(narrow.iter().all(|f| f.starts_with(slug.as_str())));
    assert_eq!(
        narrow.len(),
        sim.dataset().cloud.repos[0]
            .files
            .keys()
            .filter(|p| p.contains("catalog-info.yaml"))
            .count()
    );

    // The same seed replays the same walks.
    let replay = start(capped(true)).await;
    assert_eq!(walk(&c, &replay, query).await.0, first);
    assert_eq!(walk(&c, &replay, query).await.0, second);
    // Off: every walk is the same.
    let stable = start(capped(false)).await;
    assert_eq!(
        walk(&c, &stable, query).await.0,
        walk(&c, &stable, query).await.0
    );
}
