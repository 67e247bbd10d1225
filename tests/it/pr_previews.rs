//! Black-box: pull-request previews are kept in the store (issue #27). A
//! preview survives a restart on the same SQLite file, is gone once its
//! pull request is declined or merged (and stays gone after a restart),
//! and a follower on PostgreSQL serves the leader's preview and lists it.

use std::time::{Duration, Instant};

use crate::support::sim::{SimProviderConfig, components_simulator};
use crate::support::{PgDatabase, TestApp, component};
use bitbucket_sim::{FileKind, RepoRef, Simulator, WebhookEvent};
use serde_json::Value;

const SECRET: &str = "preview-s3cret";

fn config(sim: &Simulator) -> String {
    SimProviderConfig::new(sim)
        .webhook_secret(SECRET)
        .provider_extra("        pullRequests: {checks: true}\n")
        .yaml()
}

/// The `n`th repository with a component, and its project and slug.
fn repo(sim: &Simulator, n: usize) -> (RepoRef, String, String) {
    let repo = sim
        .dataset()
        .server_repos()
        .filter(|r| r.file_kind == FileKind::Component)
        .nth(n)
        .expect("enough repositories with a component")
        .clone();
    let (project, slug) = (repo.project_key, repo.slug);
    (
        RepoRef::Server {
            project: project.clone(),
            slug: slug.clone(),
        },
        project,
        slug,
    )
}

async fn deliver(app: &TestApp, event: &WebhookEvent) {
    let status = event
        .deliver(
            &format!("{}/api/events/http/bitbucketServer", app.address),
            Some(SECRET),
        )
        .await
        .expect("the event reaches the daemon");
    assert_eq!(status, 202, "{}", event.key);
}

async fn until(what: &str, check: impl AsyncFn() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what} did not happen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn preview_path(project: &str, slug: &str, id: u64) -> String {
    format!("/api/catalog/previews/sim/{project}/{slug}/{id}")
}

async fn preview(app: &TestApp, project: &str, slug: &str, id: u64) -> (u16, Value) {
    let response = app.get(&preview_path(project, slug, id)).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Opens a pull request adding `name` to the `n`th repository and waits
/// for its preview on `app`; returns the repository, its names, the pull
/// request and its preview.
async fn checked(
    sim: &Simulator,
    app: &TestApp,
    n: usize,
    name: &str,
) -> (RepoRef, String, String, u64, Value) {
    let (repo, project, slug) = repo(sim, n);
    let content = format!(
        "{}---\n{}",
        component(&format!("{name}-base")),
        component(name)
    );
    let (id, event) = sim
        .open_pull_request(
            &repo,
            &format!("feature/{name}"),
            &format!("Add {name}"),
            vec![("catalog-info.yaml".into(), Some(content))],
        )
        .expect("pull request");
    deliver(app, &event).await;
    // Served once posted (`pending` until then).
    until(&format!("the preview of {name}"), async || {
        let (status, body) = preview(app, &project, &slug, id).await;
        status == 200 && body["posted"] == "insights"
    })
    .await;
    let (_, body) = preview(app, &project, &slug, id).await;
    assert_eq!(body["result"], "pass", "{body:#}");
    (repo, project, slug, id, body)
}

async fn status_page(app: &TestApp) -> String {
    app.get("/").await.text().await.unwrap_or_default()
}

#[tokio::test]
async fn previews_survive_a_restart_and_closed_ones_stay_gone() {
    let sim = components_simulator(1, 3).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("catalog.sqlite");
    let db = db.to_str().expect("UTF-8 path");
    let yaml = config(&sim);
    let app = TestApp::spawn_with_database(&yaml, db).await;
    app.refresh("sim", "").await;
    let (_, project, slug, open_id, open) = checked(&sim, &app, 0, "kept-open").await;
    let (declined_repo, d_project, d_slug, declined_id, _) =
        checked(&sim, &app, 1, "declined").await;
    let (merged_repo, m_project, m_slug, merged_id, _) = checked(&sim, &app, 2, "merged").await;

    let declined = sim
        .decline_pull_request(&declined_repo, declined_id)
        .expect("decline");
    deliver(&app, &declined).await;
    let (push, merged) = sim
        .merge_pull_request(&merged_repo, merged_id)
        .expect("merge");
    deliver(&app, &push).await;
    deliver(&app, &merged).await;
    until("the declined and merged previews dropped", async || {
        preview(&app, &d_project, &d_slug, declined_id).await.0 == 404
            && preview(&app, &m_project, &m_slug, merged_id).await.0 == 404
    })
    .await;
    app.stop().await;

    let app = TestApp::spawn_with_database(&yaml, db).await;
    // Before any event or run: the open one is served as it was checked.
    let (status, reloaded) = preview(&app, &project, &slug, open_id).await;
    assert_eq!(status, 200, "{reloaded:#}");
    assert_eq!(reloaded, open);
    // Project and repository compare without case, as before the restart.
    let (status, _) = preview(&app, &project.to_lowercase(), &slug.to_uppercase(), open_id).await;
    assert_eq!(status, 200);
    assert_eq!(preview(&app, &d_project, &d_slug, declined_id).await.0, 404);
    assert_eq!(preview(&app, &m_project, &m_slug, merged_id).await.0, 404);
    let page = status_page(&app).await;
    assert!(
        page.contains(&format!("{project}/{slug} #{open_id}")),
        "the status page lists the open preview after the restart"
    );
    assert!(!page.contains(&format!("{d_project}/{d_slug} #{declined_id}")));
    app.stop().await;
}

#[tokio::test]
async fn a_follower_on_postgres_serves_the_leaders_preview() {
    let sim = components_simulator(1, 2).await;
    let db = PgDatabase::fresh();
    let yaml = config(&sim);
    let leader = TestApp::spawn_on_postgres(&yaml, &db).await;
    leader.refresh("sim", "").await;
    let follower = TestApp::spawn_on_postgres(&yaml, &db).await;
    assert_eq!(
        follower.get_json("/api/catalog/replica").await["role"],
        "follower"
    );
    let (repo, project, slug, id, served) = checked(&sim, &leader, 0, "replicated").await;
    until("the follower serves the leader's preview", async || {
        preview(&follower, &project, &slug, id).await == (200, served.clone())
    })
    .await;
    until("the follower's status page lists it", async || {
        status_page(&follower)
            .await
            .contains(&format!("{project}/{slug} #{id}"))
    })
    .await;
    // Never checked: a 404 on the follower too.
    assert_eq!(preview(&follower, &project, &slug, id + 100).await.0, 404);

    let declined = sim.decline_pull_request(&repo, id).expect("decline");
    deliver(&leader, &declined).await;
    until("the follower no longer serves it", async || {
        preview(&follower, &project, &slug, id).await.0 == 404
    })
    .await;
    until(
        "the follower's status page no longer lists it",
        async || {
            !status_page(&follower)
                .await
                .contains(&format!("{project}/{slug} #{id}"))
        },
    )
    .await;
    follower.stop().await;
    leader.stop().await;
    db.drop_database().await;
}
