//! Black-box: the entity change feed. A full sync pages through exactly
//! the served entities; a follower then sees a pushed change within
//! milliseconds through a long-poll, as compacted upserts and deletes; a
//! cursor older than the retained removals, or from another database, is
//! `410 Gone`; cursors survive a restart.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::sim::{SimProviderConfig, components_simulator};
use crate::support::{TestApp, component};
use bitbucket_sim::{FileKind, Repo, RepoRef, Simulator};
use serde_json::Value;

const SECRET: &str = "feed-s3cret";

async fn simulator() -> Simulator {
    components_simulator(2, 4).await
}

/// The simulator's provider, run only when asked, with `catalog_extra`.
fn config(sim: &Simulator, catalog_extra: &str) -> String {
    SimProviderConfig::new(sim)
        .webhook_secret(SECRET)
        .catalog_extra(catalog_extra)
        .yaml()
}

fn repos(sim: &Simulator) -> Vec<(RepoRef, Repo)> {
    sim.dataset()
        .server_repos()
        .filter(|r| r.file_kind == FileKind::Component)
        .map(|r| {
            (
                RepoRef::Server {
                    project: r.project_key.clone(),
                    slug: r.slug.clone(),
                },
                r.clone(),
            )
        })
        .collect()
}

/// Changes `repo`'s file and delivers the signed push.
async fn push(sim: &Simulator, app: &TestApp, repo: &RepoRef, content: &str) {
    let event = sim
        .push_file(repo, "catalog-info.yaml", content)
        .expect("push");
    let status = event
        .deliver(
            &format!("{}/api/events/http/bitbucketServer", app.address),
            Some(SECRET),
        )
        .await
        .expect("delivered");
    assert_eq!(status, 202);
}

async fn feed(app: &TestApp, query: &str) -> (u16, Value) {
    let response = app.get(&format!("/api/catalog/changes{query}")).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// Applies a page to `refs`; returns the next cursor and whether more remain.
fn follow(page: &Value, refs: &mut BTreeSet<String>) -> (String, bool) {
    for item in page["items"].as_array().expect("items") {
        let entity_ref = item["entityRef"]
            .as_str()
            .expect("entityRef")
            .to_lowercase();
        match item["type"].as_str() {
            Some("upsert") => {
                assert!(item["entity"]["metadata"]["name"].is_string(), "{item}");
                refs.insert(entity_ref);
            }
            Some("delete") => {
                refs.remove(&entity_ref);
            }
            other => panic!("unexpected type {other:?}"),
        }
    }
    (
        page["cursor"].as_str().expect("cursor").to_owned(),
        page["hasMore"].as_bool().expect("hasMore"),
    )
}

#[tokio::test]
async fn a_follower_syncs_the_full_set_then_sees_a_push_within_milliseconds() {
    let sim = simulator().await;
    let app = TestApp::spawn(&config(&sim, "")).await;
    app.refresh("sim", "").await;

    // Full sync, three at a time.
    let mut refs = BTreeSet::new();
    let mut query = "?limit=3".to_owned();
    let cursor = loop {
        let (status, page) = feed(&app, &query).await;
        assert_eq!(status, 200, "{page}");
        assert!(page["items"].as_array().unwrap().len() <= 3);
        let (cursor, more) = follow(&page, &mut refs);
        if !more {
            break cursor;
        }
        query = format!("?after={cursor}&limit=3");
    };
    assert_eq!(refs, app.entity_refs().await);
    let (status, page) = feed(&app, &format!("?after={cursor}")).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"], serde_json::json!([]));
    assert_eq!(page["cursor"], cursor.as_str());

    // A long-poll waiting when the push lands.
    let (repo, before) = repos(&sim).remove(0);
    let waiting = {
        let app_address = app.address.clone();
        let cursor = cursor.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let page: Value = reqwest::get(format!(
                "{app_address}/api/catalog/changes?after={cursor}&wait=20"
            ))
            .await
            .expect("long-poll")
            .json()
            .await
            .expect("JSON");
            (page, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pushed = Instant::now();
    push(&sim, &app, &repo, &component("feed-pushed")).await;
    let (page, waited) = waiting.await.expect("joins");
    let after_push = pushed.elapsed();
    assert!(
        waited >= Duration::from_millis(150),
        "answered before the push: {page}"
    );
    assert!(
        after_push < Duration::from_secs(2),
        "seen {after_push:?} after the push"
    );
    // The answer may come with the first part of the change; follow on.
    let (mut cursor, _) = follow(&page, &mut refs);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !refs.contains("component:default/feed-pushed") || refs.contains(&before.entity_refs[0]) {
        assert!(Instant::now() < deadline, "{refs:?}");
        let (_, page) = feed(&app, &format!("?after={cursor}&wait=2")).await;
        cursor = follow(&page, &mut refs).0;
    }
    assert_eq!(refs, app.entity_refs().await);
    app.stop().await;
}

#[tokio::test]
async fn cursors_older_than_the_retained_removals_or_from_elsewhere_are_gone() {
    let sim = simulator().await;
    let app = TestApp::spawn(&config(&sim, "  changes:\n    retainedRemovals: 1\n")).await;
    app.refresh("sim", "").await;
    let (_, page) = feed(&app, "").await;
    let cursor = page["cursor"].as_str().expect("cursor").to_owned();
    // Two files emptied: two removals, one retained.
    for (repo, before) in repos(&sim).into_iter().take(2) {
        push(&sim, &app, &repo, "").await;
        let gone = before.entity_refs[0].clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while app.entity_refs().await.contains(&gone) {
            assert!(Instant::now() < deadline, "{gone} stays");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (status, body) = feed(&app, &format!("?after={cursor}")).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["name"], "GoneError");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("resynchronise")),
        "{body}"
    );
    let (status, _) = feed(&app, "?after=999999999").await;
    assert_eq!(status, 410);
    // The full set still works, with the retained removal in it.
    let (status, page) = feed(&app, "").await;
    assert_eq!(status, 200);
    let mut refs = BTreeSet::new();
    follow(&page, &mut refs);
    assert_eq!(refs, app.entity_refs().await);
    let (status, body) = feed(&app, "?after=x").await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn cursors_survive_a_restart() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("catalog.sqlite");
    let db = db.to_str().expect("utf-8 path");
    let app = TestApp::spawn_with_database(&config(&sim, ""), db).await;
    app.refresh("sim", "").await;
    let (_, page) = feed(&app, "?limit=10000").await;
    let cursor = page["cursor"].as_str().expect("cursor").to_owned();
    app.stop().await;

    let app = TestApp::spawn_with_database(&config(&sim, ""), db).await;
    let (status, page) = feed(&app, &format!("?after={cursor}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"], serde_json::json!([]), "nothing changed");
    let (repo, _) = repos(&sim).remove(1);
    push(&sim, &app, &repo, &component("after-restart")).await;
    let (_, page) = feed(&app, &format!("?after={cursor}&wait=10")).await;
    let mut refs = BTreeSet::new();
    follow(&page, &mut refs);
    assert!(refs.contains("component:default/after-restart"), "{page}");
    app.stop().await;
}
