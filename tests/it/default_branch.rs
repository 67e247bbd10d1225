//! Black-box: the default branch is part of the repository record. Once
//! known (from the listing, or one look-up when the listing does not name
//! it), a push to another branch costs no Bitbucket request, also after a
//! restart on the same store and after later runs; a push to the default
//! branch is still read, and a changed default branch is followed.

use std::time::{Duration, Instant};

use crate::support::sim::SimProviderConfig;
use crate::support::{TestApp, component};
use bitbucket_sim::{
    DatasetConfig, FileKind, RepoRef, ServerOptions, SimConfig, Simulator, WebhookEvent,
};

const SECRET: &str = "branch-s3cret";

async fn simulator(listing_default_branch: bool) -> Simulator {
    Simulator::start(SimConfig {
        dataset: DatasetConfig::components_only(1, 3),
        server: ServerOptions {
            listing_default_branch,
            ..ServerOptions::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// The first repository with a component, and its default branch.
fn first_repo(sim: &Simulator) -> (RepoRef, String) {
    let repo = sim
        .dataset()
        .server_repos()
        .find(|r| r.file_kind == FileKind::Component)
        .expect("a repository with a component")
        .clone();
    let reference = RepoRef::Server {
        project: repo.project_key,
        slug: repo.slug,
    };
    (reference, repo.default_branch)
}

async fn deliver(app: &TestApp, event: &WebhookEvent) {
    let status = event
        .deliver(
            &format!("{}/api/events/http/bitbucketServer", app.address),
            Some(SECRET),
        )
        .await
        .expect("the event reaches the daemon");
    assert_eq!(status, 202);
}

/// Polls (at most 10 s) until the provider's last event's outcome
/// contains `part`.
async fn until_outcome(app: &TestApp, part: &str) {
    let started = Instant::now();
    loop {
        let status = app.get_json("/api/catalog/providers/sim").await;
        if status["lastEvent"]["outcome"]
            .as_str()
            .is_some_and(|o| o.contains(part))
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no event outcome with {part:?}: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn until_served(app: &TestApp, entity_ref: &str) {
    let started = Instant::now();
    while !app.entity_refs().await.contains(entity_ref) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{entity_ref} not served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A push to `branch` (changing nothing served): ignored, at how many
/// Bitbucket requests.
async fn feature_push(sim: &Simulator, app: &TestApp, repo: &RepoRef, branch: &str) -> u64 {
    sim.reset_stats();
    let event = sim.push_branch(repo, branch).expect("push");
    deliver(app, &event).await;
    until_outcome(app, &format!("pushed to {branch}")).await;
    sim.stats().requests
}

#[tokio::test]
async fn a_default_branch_the_listing_names_costs_no_request_after_a_restart() {
    let sim = simulator(true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("catalog.sqlite");
    let db = db.to_str().expect("utf-8 path");
    let yaml = SimProviderConfig::new(&sim).webhook_secret(SECRET).yaml();
    let app = TestApp::spawn_with_database(&yaml, db).await;
    app.refresh("sim", "").await;
    app.stop().await;

    let app = TestApp::spawn_with_database(&yaml, db).await;
    let (repo, old) = first_repo(&sim);
    assert_eq!(feature_push(&sim, &app, &repo, "feature/a").await, 0);
    let event = sim
        .push_file(&repo, "catalog-info.yaml", &component("after-restart"))
        .expect("push");
    deliver(&app, &event).await;
    until_served(&app, "component:default/after-restart").await;

    // A new default branch is followed from the next listing: a push to
    // the old one is then another branch, still at no request.
    sim.set_default_branch(&repo, "trunk")
        .expect("default branch");
    app.refresh("sim", "").await;
    assert_ne!(old, "trunk");
    assert_eq!(feature_push(&sim, &app, &repo, &old).await, 0);
    let event = sim
        .push_file(&repo, "catalog-info.yaml", &component("on-trunk"))
        .expect("push");
    deliver(&app, &event).await;
    until_served(&app, "component:default/on-trunk").await;
    app.stop().await;
}

#[tokio::test]
async fn a_default_branch_looked_up_once_is_kept_across_restarts_and_runs() {
    // Older Data Center: the listing does not name the default branch.
    let sim = simulator(false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("catalog.sqlite");
    let db = db.to_str().expect("utf-8 path");
    let yaml = SimProviderConfig::new(&sim).webhook_secret(SECRET).yaml();
    let app = TestApp::spawn_with_database(&yaml, db).await;
    app.refresh("sim", "").await;
    let (repo, _) = first_repo(&sim);
    // Not known yet: one look-up.
    assert_eq!(feature_push(&sim, &app, &repo, "feature/a").await, 1);
    assert_eq!(feature_push(&sim, &app, &repo, "feature/b").await, 0);
    app.stop().await;

    let app = TestApp::spawn_with_database(&yaml, db).await;
    assert_eq!(feature_push(&sim, &app, &repo, "feature/c").await, 0);
    // A run whose listing does not name it keeps what was learned.
    app.refresh("sim", "").await;
    assert_eq!(feature_push(&sim, &app, &repo, "feature/d").await, 0);
    let event = sim
        .push_file(&repo, "catalog-info.yaml", &component("after-restart"))
        .expect("push");
    deliver(&app, &event).await;
    until_served(&app, "component:default/after-restart").await;
    app.stop().await;
}

/// Moves every recorded default-branch check of the store at `db` two
/// hours back, as if an hour had passed since.
async fn age_branch_checks(db: &str) {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("the store opens");
    let earlier = (chrono::Utc::now() - chrono::TimeDelta::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let aged = sqlx::query(
        "UPDATE repositories SET record = json_set(record, '$.branchCheckedAt', ?) \
         WHERE json_extract(record, '$.branchCheckedAt') IS NOT NULL",
    )
    .bind(earlier)
    .execute(&mut conn)
    .await
    .expect("update")
    .rows_affected();
    assert!(aged >= 1, "a looked-up branch records when it was checked");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn a_changed_default_branch_is_looked_up_again_at_most_once_an_hour() {
    // Older Data Center: the listing does not name the default branch, so
    // no run would ever tell that it changed.
    let sim = simulator(false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("catalog.sqlite");
    let db = db.to_str().expect("utf-8 path");
    let yaml = SimProviderConfig::new(&sim).webhook_secret(SECRET).yaml();
    let app = TestApp::spawn_with_database(&yaml, db).await;
    app.refresh("sim", "").await;
    let (repo, old) = first_repo(&sim);
    assert_eq!(feature_push(&sim, &app, &repo, "feature/a").await, 1);
    sim.set_default_branch(&repo, "trunk")
        .expect("default branch");
    assert_ne!(old, "trunk");
    // Checked within the hour: a push naming another branch costs nothing.
    assert_eq!(feature_push(&sim, &app, &repo, "trunk").await, 0);
    app.refresh("sim", "").await;
    assert_eq!(feature_push(&sim, &app, &repo, "feature/b").await, 0);
    app.stop().await;

    // An hour later, a push naming a branch other than the known one asks
    // once, learns the new default branch and reads it.
    age_branch_checks(db).await;
    let app = TestApp::spawn_with_database(&yaml, db).await;
    let event = sim
        .push_file(&repo, "catalog-info.yaml", &component("on-new-trunk"))
        .expect("push");
    sim.reset_stats();
    deliver(&app, &event).await;
    until_served(&app, "component:default/on-new-trunk").await;
    let stats = sim.stats();
    assert_eq!(
        stats.kind_requests(bitbucket_sim::EndpointKind::ServerDefaultBranch),
        1,
        "{stats:#?}"
    );
    // Learned: pushes elsewhere cost nothing again, also after a run.
    assert_eq!(feature_push(&sim, &app, &repo, "feature/c").await, 0);
    app.refresh("sim", "").await;
    assert_eq!(feature_push(&sim, &app, &repo, &old).await, 0);
    app.stop().await;
}
