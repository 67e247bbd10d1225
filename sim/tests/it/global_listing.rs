//! Data Center's global listing `GET /repos`: every repository (personal
//! ones too) in pages capped at `max_page_size`, the `archived` parameter,
//! counted as its own kind; deleted and archived repositories; refused
//! when `global_listing` is off.

use crate::support::{client, get_json, server_all, start};
use bitbucket_sim::{DatasetConfig, EndpointKind, RepoRef, ServerOptions, SimConfig};
use serde_json::json;

fn config(max_page_size: usize, global_listing: bool) -> SimConfig {
    SimConfig {
        dataset: DatasetConfig {
            projects: 4,
            repos_per_project: 6,
            personal_projects: 1,
            repos_per_personal_project: 2,
            archived_ratio: 0.25,
            ..DatasetConfig::default()
        },
        server: ServerOptions {
            max_page_size,
            list_personal_projects: false,
            global_listing,
            ..ServerOptions::default()
        },
        ..SimConfig::default()
    }
}

fn slugs(values: &[serde_json::Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            format!(
                "{}/{}",
                v["project"]["key"].as_str().unwrap_or_default(),
                v["slug"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn pages_every_repository_with_the_archived_parameter() {
    let sim = start(config(10, true)).await;
    let c = client();
    let api = sim.server_api_base();
    let all: Vec<String> = sim
        .dataset()
        .server_projects
        .iter()
        .flat_map(|p| p.repos.iter().map(move |r| (p, r)))
        .map(|(p, r)| format!("{}/{}", p.key, r.slug))
        .collect();
    let archived: Vec<String> = sim
        .dataset()
        .server_projects
        .iter()
        .flat_map(|p| p.repos.iter().map(move |r| (p, r)))
        .filter(|(_, r)| r.archived)
        .map(|(p, r)| format!("{}/{}", p.key, r.slug))
        .collect();
    assert_eq!(all.len(), 26);
    assert!(!archived.is_empty() && archived.len() < all.len());

    // `limit=1000` is capped at 10: 3 pages of everything with ALL, and
    // personal repositories although `GET /projects` does not list them.
    sim.reset_stats();
    let (values, pages) = server_all(&c, &format!("{api}/repos?archived=ALL"), 1000).await;
    assert_eq!(slugs(&values), all);
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0]["limit"], json!(10));
    assert_eq!(pages[0]["nextPageStart"], json!(10));
    assert!(slugs(&values).iter().any(|s| s.starts_with("~USER001/")));
    assert_eq!(
        sim.stats().kind_requests(EndpointKind::ServerGlobalRepos),
        3
    );
    assert_eq!(sim.stats().kind_requests(EndpointKind::ServerRepos), 0);

    // Default (ACTIVE): no archived one; ARCHIVED: only those; any case.
    let (active, _) = server_all(&c, &format!("{api}/repos"), 1000).await;
    assert_eq!(active.len(), all.len() - archived.len());
    assert!(active.iter().all(|v| v["archived"] == json!(false)));
    let (only, _) = server_all(&c, &format!("{api}/repos?archived=archived"), 1000).await;
    assert_eq!(slugs(&only), archived);
    let (status, body) = get_json(&c, &format!("{api}/repos?archived=SOME")).await;
    assert_eq!(status, 400, "{body}");

    // `latest` serves it too; `projectname` and `name` narrow it.
    let latest = api.replace("/1.0", "/latest");
    let (latest_all, _) = server_all(&c, &format!("{latest}/repos?archived=ALL"), 1000).await;
    assert_eq!(latest_all.len(), all.len());
    let project = &sim.dataset().server_projects[1];
    let (in_project, _) = server_all(
        &c,
        &format!(
            "{api}/repos?archived=ALL&projectname={}",
            project.name.to_uppercase()
        ),
        1000,
    )
    .await;
    assert_eq!(in_project.len(), project.repos.len());
    sim.shutdown().await;
}

#[tokio::test]
async fn deleted_and_archived_repositories_leave_the_listing() {
    let sim = start(config(1000, true)).await;
    let c = client();
    let api = sim.server_api_base();
    let project = sim.dataset().server_projects[0].clone();
    let gone = RepoRef::Server {
        project: project.key.clone(),
        slug: project.repos[1].slug.clone(),
    };
    let next = project.repos[2].slug.clone();
    let before = server_all(&c, &format!("{api}/repos?archived=ALL"), 1000)
        .await
        .0;
    sim.delete_repo(&gone).expect("deleted");
    assert!(sim.delete_repo(&gone).is_err(), "deleted once");
    let after = server_all(&c, &format!("{api}/repos?archived=ALL"), 1000)
        .await
        .0;
    assert_eq!(after.len() + 1, before.len());
    // The repositories after it are still found by slug.
    let (status, _) = get_json(
        &c,
        &format!("{api}/projects/{}/repos/{next}/default-branch", project.key),
    )
    .await;
    assert_eq!(status, 200);

    let active = project
        .repos
        .iter()
        .find(|r| !r.archived && r.slug != project.repos[1].slug)
        .expect("an active repository");
    let reference = RepoRef::Server {
        project: project.key.clone(),
        slug: active.slug.clone(),
    };
    let count = |values: &[serde_json::Value]| values.len();
    let active_before = count(&server_all(&c, &format!("{api}/repos"), 1000).await.0);
    sim.set_archived(&reference, true).expect("archived");
    let active_after = count(&server_all(&c, &format!("{api}/repos"), 1000).await.0);
    assert_eq!(active_after + 1, active_before);
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_when_switched_off_and_counted() {
    let sim = start(config(1000, false)).await;
    let c = client();
    let (status, _) = get_json(&c, &format!("{}/repos", sim.server_api_base())).await;
    assert_eq!(status, 404);
    let stats = sim.stats();
    assert_eq!(stats.kind_status(EndpointKind::ServerGlobalRepos, "404"), 1);
    sim.shutdown().await;
}
