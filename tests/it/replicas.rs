//! Black-box: three daemons on one PostgreSQL database and one simulated
//! Bitbucket. Exactly one leads: Bitbucket sees one daemon's requests per
//! run; every replica serves the same catalog; writes sent to a follower
//! (refresh, webhook, location registration and removal) are carried out
//! once, by the leader, with the answers a single daemon gives; `kill -9`
//! of the leader hands over within 10 seconds and the next run completes.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::sim::{SimProviderConfig, components_simulator};
use crate::support::{FakeServer, PgDatabase, TestApp, component, free_port, write_config};
use bitbucket_catalogd::location_id;
use bitbucket_sim::{FileKind, RepoRef, Simulator};
use reqwest::Method;
use serde_json::Value;

const SECRET: &str = "replica-s3cret";

async fn simulator() -> Simulator {
    components_simulator(2, 5).await
}

/// The simulator's provider, run at start-up and every 30 minutes, and a
/// second integration (`fake`) for registered locations.
fn config(sim: &Simulator, fake: &FakeServer) -> String {
    SimProviderConfig::new(sim)
        .webhook_secret(SECRET)
        .integration(&fake.host(), &fake.api_base())
        .schedule("frequency: {minutes: 30}, timeout: {minutes: 5}")
        .yaml()
}

/// What every replica test starts from: the simulator, a second
/// integration for registered locations, a fresh database and the config
/// each daemon on it runs.
struct ReplicaSet {
    sim: Simulator,
    fake: FakeServer,
    db: PgDatabase,
    yaml: String,
}

impl ReplicaSet {
    async fn new() -> Self {
        let sim = simulator().await;
        let fake = FakeServer::start().await;
        let yaml = config(&sim, &fake);
        Self {
            sim,
            fake,
            db: PgDatabase::fresh(),
            yaml,
        }
    }

    /// One more daemon on the shared database.
    async fn spawn(&self) -> TestApp {
        self.spawn_with(&self.yaml).await
    }

    async fn spawn_with(&self, yaml: &str) -> TestApp {
        TestApp::spawn_on_postgres(yaml, &self.db).await
    }

    /// A daemon in a process of its own (to kill or freeze), once it leads.
    async fn spawn_leading_process(&self) -> LeaderProcess {
        let (dir, file) = write_config(&self.yaml);
        let port = free_port();
        let child = crate::support::serve_command(&file, port)
            .env("APP_CONFIG_backend_database_client", "pg")
            .env("APP_CONFIG_backend_database_connection", &self.db.url)
            .spawn()
            .expect("serve starts");
        let process = LeaderProcess {
            child,
            _dir: dir,
            status_url: format!("http://127.0.0.1:{port}/api/catalog/replica"),
            http: reqwest::Client::new(),
        };
        let process_ref = &process;
        until(
            "the process leading",
            Duration::from_secs(30),
            || async move { process_ref.status().await["role"] == "leader" },
        )
        .await;
        process
    }

    /// Holds the leader lock as a daemon would, so every daemon follows.
    async fn hold_leader_lock(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        let mut holder = sqlx::PgConnection::connect(&self.db.url)
            .await
            .expect("connects");
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(0x6262_6364_6c65_6164_i64)
            .fetch_one(&mut holder)
            .await
            .expect("locks");
        assert!(locked);
        holder
    }

    /// Stops the daemons, then drops the database.
    async fn finish(self, apps: impl IntoIterator<Item = TestApp>) {
        for app in apps {
            app.stop().await;
        }
        self.db.drop_database().await;
    }
}

/// A leading daemon run as a child process.
struct LeaderProcess {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    status_url: String,
    http: reqwest::Client,
}

impl LeaderProcess {
    async fn status(&self) -> Value {
        match self.http.get(&self.status_url).send().await {
            Ok(r) => r.json::<Value>().await.unwrap_or_default(),
            Err(_) => Value::Null,
        }
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
    }
}

async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn finished_runs(app: &TestApp) -> Option<String> {
    let status = app.get_json("/api/catalog/providers/sim").await;
    (status["inProgress"] == false && !status["lastRun"]["finishedAt"].is_null())
        .then(|| status["lastRun"]["startedAt"].to_string())
}

async fn role(app: &TestApp) -> Value {
    app.get_json("/api/catalog/replica").await
}

/// What one daemon of its own costs Bitbucket: its start-up run, and a
/// refresh after it.
async fn standalone_costs(sim: &Simulator, fake: &FakeServer) -> (u64, u64, BTreeSet<String>) {
    sim.reset_stats();
    let app = TestApp::spawn(&config(sim, fake)).await;
    let app_ref = &app;
    until(
        "the standalone start-up run",
        Duration::from_secs(30),
        || async move { finished_runs(app_ref).await.is_some() },
    )
    .await;
    let first = sim.stats().requests;
    app.refresh("sim", "").await;
    let refresh = sim.stats().requests - first;
    let refs = app.entity_refs().await;
    app.stop().await;
    sim.reset_stats();
    (first, refresh, refs)
}

#[tokio::test]
async fn three_replicas_cost_bitbucket_one_daemon_and_serve_one_catalog() {
    let set = ReplicaSet::new().await;
    let (sim, fake) = (&set.sim, &set.fake);
    fake.mount_file("EXT", "other", "catalog-info.yaml", &component("other"))
        .await;
    let (start_up_cost, refresh_cost, expected) = standalone_costs(sim, fake).await;
    assert!(start_up_cost > 0 && refresh_cost > 0);

    let leader = set.spawn().await;
    let followers = [set.spawn().await, set.spawn().await];
    let replicas = [&leader, &followers[0], &followers[1]];
    assert_eq!(role(&leader).await["role"], "leader");
    let leader_identity = role(&leader).await["identity"].clone();
    for follower in &followers {
        let status = role(follower).await;
        assert_eq!(status["role"], "follower", "{status:#}");
        assert_eq!(status["leader"], leader_identity);
        // The status page says so too (issue 28).
        let page = follower.get("/").await.text().await.unwrap();
        assert!(page.contains("This replica is a follower"), "{page}");
    }
    let page = leader.get("/").await.text().await.unwrap();
    assert!(!page.contains("is a follower"));

    // Every replica serves the leader's catalog.
    let expected = &expected;
    for app in replicas {
        until(
            "the catalog on every replica",
            Duration::from_secs(30),
            || async move { app.entity_refs().await == *expected },
        )
        .await;
        // A follower is ready once it has caught up.
        until("readiness", Duration::from_secs(5), || async move {
            app.get("/.backstage/health/v1/readiness").await.status() == 200
        })
        .await;
    }
    let leader_ref = &leader;
    until(
        "the leader's start-up run",
        Duration::from_secs(30),
        || async move { finished_runs(leader_ref).await.is_some() },
    )
    .await;
    // Followers' schedules fired too, but only the leader ran.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sim.stats().requests, start_up_cost);

    // A refresh sent to a follower: accepted as by a single daemon, run
    // once, by the leader.
    let before = finished_runs(&leader).await;
    let (status, _) = followers[0]
        .send(
            Method::POST,
            "/api/catalog/providers/sim/refresh",
            None,
            None,
        )
        .await;
    assert_eq!(status, 202);
    until(
        "the refresh run on the leader",
        Duration::from_secs(30),
        || {
            let before = before.clone();
            async move {
                finished_runs(leader_ref)
                    .await
                    .is_some_and(|s| Some(s) != before)
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sim.stats().requests, start_up_cost + refresh_cost);
    // Followers show the leader's last run.
    let last = finished_runs(&leader).await;
    for follower in &followers {
        let last = last.clone();
        until(
            "the leader's run in a follower's status",
            Duration::from_secs(10),
            || {
                let last = last.clone();
                async move { finished_runs(follower).await == last }
            },
        )
        .await;
    }

    // A webhook sent to a follower: applied once, served by all.
    let repo = sim
        .dataset()
        .server_repos()
        .find(|r| r.file_kind == FileKind::Component)
        .expect("a component repository")
        .clone();
    let repo_ref = RepoRef::Server {
        project: repo.project_key.clone(),
        slug: repo.slug.clone(),
    };
    let reads_before = sim.stats().requests;
    let event = sim
        .push_file(
            &repo_ref,
            "catalog-info.yaml",
            &component("pushed-through-a-follower"),
        )
        .expect("push");
    let status = event
        .deliver(
            &format!("{}/api/events/http/bitbucketServer", followers[1].address),
            Some(SECRET),
        )
        .await
        .expect("delivered");
    assert_eq!(status, 202);
    for app in replicas {
        until(
            "the pushed entity on every replica",
            Duration::from_secs(10),
            || async move {
                app.entity_refs()
                    .await
                    .contains("component:default/pushed-through-a-follower")
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let push_cost = sim.stats().requests - reads_before;
    assert!(
        (1..=2).contains(&push_cost),
        "a push through a follower cost {push_cost} requests"
    );

    // A location registered through a follower answers with its entities
    // and is served by all; removed through the other, it is gone from all.
    let target = format!(
        "{}/projects/EXT/repos/other/browse/catalog-info.yaml",
        fake.server.uri()
    );
    let (status, body) = followers[0].register(&target, "", None).await;
    assert_eq!(status, 201, "{body:#}");
    let names: Vec<&str> = body["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .filter_map(|e| e["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains(&"other"), "{body:#}");
    let target_ref = &target;
    for app in replicas {
        until(
            "the registered location on every replica",
            Duration::from_secs(5),
            || async move {
                app.entity_refs().await.contains("component:default/other")
                    && app
                        .get_json("/api/catalog/locations")
                        .await
                        .to_string()
                        .contains(target_ref.as_str())
            },
        )
        .await;
    }
    let (status, body) = followers[1].register(&target, "", None).await;
    assert_eq!(status, 409, "{body:#}");
    let (status, _) = followers[1].delete_location(&location_id(&target)).await;
    assert_eq!(status, 204);
    for app in replicas {
        until(
            "the removal on every replica",
            Duration::from_secs(5),
            || async move { !app.entity_refs().await.contains("component:default/other") },
        )
        .await;
    }

    let [first, second] = followers;
    set.finish([leader, first, second]).await;
}

#[tokio::test]
async fn kill_9_of_the_leader_hands_over_within_10_seconds_and_the_next_run_completes() {
    let set = ReplicaSet::new().await;
    let mut leader = set.spawn_leading_process().await;
    let followers = [set.spawn().await, set.spawn().await];
    for follower in &followers {
        assert_eq!(role(follower).await["role"], "follower");
        until(
            "the catalog on the follower",
            Duration::from_secs(30),
            || async move { follower.entity_names().await.len() == 10 },
        )
        .await;
    }
    let before = [
        finished_runs(&followers[0]).await,
        finished_runs(&followers[1]).await,
    ];

    leader.signal("-9");
    let _ = leader.child.wait();
    let killed = Instant::now();
    let followers_ref = &followers;
    until(
        "a follower taking over",
        Duration::from_secs(10),
        || async move {
            let mut leaders = 0;
            for follower in followers_ref {
                if role(follower).await["role"] == "leader" {
                    leaders += 1;
                }
            }
            leaders == 1
        },
    )
    .await;
    let handover = killed.elapsed();
    assert!(handover < Duration::from_secs(10), "took {handover:?}");
    let (new_leader, index) = if role(&followers[0]).await["role"] == "leader" {
        (&followers[0], 0)
    } else {
        (&followers[1], 1)
    };
    let other = &followers[1 - index];
    let identity = role(new_leader).await["identity"].clone();
    let identity = &identity;
    until(
        "the other follower naming the new leader",
        Duration::from_secs(3),
        || async move { role(other).await["leader"] == *identity },
    )
    .await;
    // The new leader runs its start-up run, continuing from what is stored.
    let previous = before[index].clone();
    until("the new leader's run", Duration::from_secs(30), || {
        let previous = previous.clone();
        async move {
            finished_runs(new_leader)
                .await
                .is_some_and(|s| Some(s) != previous)
        }
    })
    .await;
    let status = new_leader.get_json("/api/catalog/providers/sim").await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    assert_eq!(new_leader.entity_refs().await, other.entity_refs().await);

    set.finish(followers).await;
}

/// A frozen leader keeps its connections (and so the advisory lock): its
/// lease lapses, a follower ends its sessions and leads within 10 s, and
/// the frozen one, resumed, writes nothing and stops.
#[tokio::test]
async fn a_frozen_leader_sigstop_is_replaced_within_10_seconds_and_stops_when_resumed() {
    let set = ReplicaSet::new().await;
    let mut leader = set.spawn_leading_process().await;
    let follower = set.spawn().await;
    assert_eq!(role(&follower).await["role"], "follower");
    let follower_ref = &follower;
    until(
        "the catalog on the follower",
        Duration::from_secs(30),
        || async move { follower_ref.entity_names().await.len() == 10 },
    )
    .await;

    leader.signal("-STOP");
    let frozen = Instant::now();
    until(
        "the follower taking over from the frozen leader",
        Duration::from_secs(10),
        || async move { role(follower_ref).await["role"] == "leader" },
    )
    .await;
    let handover = frozen.elapsed();
    eprintln!("failover from SIGSTOP took {handover:?}");
    assert!(handover < Duration::from_secs(10), "took {handover:?}");
    // Writes through the new leader work.
    let (status, _) = follower
        .send(
            Method::POST,
            "/api/catalog/providers/sim/refresh",
            None,
            None,
        )
        .await;
    assert_eq!(status, 202);

    // Resumed, the old leader steps down (stops) without taking back the
    // record or the lease.
    leader.signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = leader.child.try_wait().expect("waits") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed old leader is still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!exit.success(), "{exit:?}");
    let identity = role(&follower).await["identity"].clone();
    let pool = set.db.pool().await;
    let recorded: (String, String) =
        sqlx::query_as("SELECT l.identity, r.identity FROM replica_leader l, replica_lease r")
            .fetch_one(&pool)
            .await
            .expect("leader and lease");
    assert_eq!(Value::from(recorded.0), identity);
    assert_eq!(Value::from(recorded.1), identity);
    pool.close().await;
    assert_eq!(role(&follower).await["role"], "leader");

    set.finish([follower]).await;
}

#[tokio::test]
async fn a_leader_cut_off_from_the_database_stops_and_a_follower_takes_over() {
    let set = ReplicaSet::new().await;
    let leader = set.spawn().await;
    let follower = set.spawn().await;
    assert_eq!(role(&leader).await["role"], "leader");
    assert_eq!(role(&follower).await["role"], "follower");

    // The server ends the session holding the lock, as it does when the
    // network to the leader is gone.
    let pool = set.db.pool().await;
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
         WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1",
    )
    .bind(&set.db.name)
    .fetch_all(&pool)
    .await
    .expect("terminates the lock session");
    assert_eq!(ended, [true]);
    pool.close().await;
    let cut = Instant::now();

    let follower_ref = &follower;
    until(
        "the follower taking over",
        Duration::from_secs(10),
        || async move { role(follower_ref).await["role"] == "leader" },
    )
    .await;
    assert!(cut.elapsed() < Duration::from_secs(10));
    let outcome = leader.ended(Duration::from_secs(15)).await;
    assert!(
        matches!(outcome, Err(bitbucket_catalogd::AppError::LeadershipLost)),
        "{outcome:?}"
    );
    set.finish([follower]).await;
}

#[tokio::test]
async fn a_write_with_no_leader_is_a_503_with_a_retry_hint_and_does_nothing() {
    use sqlx::Connection;

    let set = ReplicaSet::new().await;
    let fake = &set.fake;
    fake.mount_file("EXT", "other", "catalog-info.yaml", &component("other"))
        .await;
    // Someone else (this test) holds the leader lock: the daemon follows.
    let first = set.spawn().await;
    first.stop().await;
    let holder = set.hold_leader_lock().await;
    let follower = set.spawn().await;
    assert_eq!(role(&follower).await["role"], "follower");

    let target = format!(
        "{}/projects/EXT/repos/other/browse/catalog-info.yaml",
        fake.server.uri()
    );
    let started = Instant::now();
    let response = follower
        .http
        .post(format!("{}/api/catalog/locations", follower.address))
        .json(&serde_json::json!({"type": "url", "target": target}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap_or_default(),
        "10"
    );
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["name"], "ServiceUnavailableError", "{body:#}");
    assert!(started.elapsed() >= Duration::from_secs(10));
    assert_eq!(fake.requests_to("/raw/catalog-info.yaml").await, 0);
    let pool = set.db.pool().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM replica_requests")
        .fetch_one(&pool)
        .await
        .expect("counts");
    assert_eq!(left, 0, "the unclaimed request is taken back");
    pool.close().await;
    let _ = holder.close().await;
    set.finish([follower]).await;
}

/// Whether a follower ever recorded a request for the leader.
async fn requests_ever_recorded(db: &PgDatabase) -> bool {
    let pool = db.pool().await;
    let called: bool = sqlx::query_scalar("SELECT is_called FROM replica_requests_id_seq")
        .fetch_one(&pool)
        .await
        .expect("reads the sequence");
    pool.close().await;
    called
}

#[tokio::test]
async fn a_follower_refuses_forged_and_unsigned_webhooks_and_stores_nothing() {
    let set = ReplicaSet::new().await;
    let (sim, db) = (&set.sim, &set.db);
    let leader = set.spawn().await;
    let follower = set.spawn().await;
    assert_eq!(role(&follower).await["role"], "follower");
    let repo = sim
        .dataset()
        .server_repos()
        .find(|r| r.file_kind == FileKind::Component)
        .expect("a component repository")
        .clone();
    let repo_ref = RepoRef::Server {
        project: repo.project_key.clone(),
        slug: repo.slug.clone(),
    };
    let event = sim
        .push_file(&repo_ref, "catalog-info.yaml", &component("forged"))
        .expect("push");
    let url = format!("{}/api/events/http/bitbucketServer", follower.address);
    assert_eq!(
        event.deliver(&url, Some("not-the-secret")).await.ok(),
        Some(401)
    );
    assert_eq!(event.deliver(&url, None).await.ok(), Some(401));
    assert!(
        !requests_ever_recorded(db).await,
        "a refused event reached the database"
    );
    // A signed one is handed over and applied.
    assert_eq!(event.deliver(&url, Some(SECRET)).await.ok(), Some(202));
    assert!(requests_ever_recorded(db).await);
    set.finish([leader, follower]).await;
}

#[tokio::test]
async fn a_follower_bounds_the_writes_waiting_for_a_leader() {
    use sqlx::Connection;

    let set = ReplicaSet::new().await;
    let first = set.spawn().await;
    first.stop().await;
    // No leader takes the writes (this test holds the lock): they wait.
    let holder = set.hold_leader_lock().await;
    let follower = set.spawn().await;
    assert_eq!(role(&follower).await["role"], "follower");

    let sent = 160;
    let started = Instant::now();
    let pool = set.db.pool().await;
    let peak = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM replica_requests")
            .fetch_one(&pool)
            .await
            .expect("counts");
        queued
    };
    let writes = futures::future::join_all((0..sent).map(|_| {
        let follower = &follower;
        async move {
            let answer = follower
                .send(
                    Method::POST,
                    "/api/catalog/providers/sim/refresh",
                    None,
                    None,
                )
                .await;
            (answer, started.elapsed())
        }
    }));
    let (answers, queued) = tokio::join!(writes, peak);
    assert!(queued <= 128, "{queued} writes queued");
    // Those over the bound are refused at once; the others wait out the
    // claim timeout. All are 503s: no leader did anything.
    let refused_at_once = answers
        .iter()
        .filter(|((status, body), took)| {
            *status == 503
                && *took < Duration::from_secs(9)
                && body.to_string().contains("too many writes")
        })
        .count();
    assert!(answers.iter().all(|((status, _), _)| *status == 503));
    assert!(
        refused_at_once >= sent - 128,
        "{refused_at_once} of {sent} refused at once"
    );
    pool.close().await;
    let _ = holder.close().await;
    set.finish([follower]).await;
}

#[tokio::test]
async fn the_leader_authorizes_writes_a_follower_on_an_open_config_hands_over() {
    let set = ReplicaSet::new().await;
    let leader = set
        .spawn_with(&crate::support::with_write_token(&set.yaml))
        .await;
    // A follower still on an older configuration, with writes open.
    let follower = set.spawn().await;
    assert_eq!(role(&follower).await["role"], "follower");
    let follower_ref = &follower;
    until(
        "the catalog on the follower",
        Duration::from_secs(30),
        || async move { follower_ref.entity_names().await.len() == 10 },
    )
    .await;
    let entities = follower.get_json("/api/catalog/entities").await;
    let uid = entities[0]["metadata"]["uid"]
        .as_str()
        .expect("a uid")
        .to_owned();
    let path = format!("/api/catalog/entities/by-uid/{uid}");

    let (status, body) = follower.send(Method::DELETE, &path, None, None).await;
    assert_eq!(status, 401, "{body:#}");
    let (status, body) = follower
        .send(Method::DELETE, &path, None, Some("not-the-token"))
        .await;
    assert_eq!(status, 401, "{body:#}");
    assert_eq!(follower.entity_names().await.len(), 10);
    assert_eq!(leader.entity_names().await.len(), 10);
    // The leader's token works through the follower.
    let (status, body) = follower
        .send(
            Method::DELETE,
            &path,
            None,
            Some(crate::support::WRITE_TOKEN),
        )
        .await;
    assert!((200..300).contains(&status), "{status} {body:#}");
    set.finish([leader, follower]).await;
}

#[tokio::test]
async fn a_follower_that_cannot_read_the_database_is_not_ready_until_it_catches_up() {
    let set = ReplicaSet::new().await;
    let leader = set.spawn().await;
    let follower = set.spawn().await;
    let follower_ref = &follower;
    let ready = || async move {
        follower_ref
            .get("/.backstage/health/v1/readiness")
            .await
            .status()
            == 200
    };
    until("readiness", Duration::from_secs(30), ready).await;
    // What the follower reads is gone.
    let pool = set.db.pool().await;
    sqlx::query("ALTER TABLE catalog_entities RENAME TO catalog_entities_away")
        .execute(&pool)
        .await
        .expect("renames");
    until(
        "the follower saying it is not ready",
        Duration::from_secs(20),
        || async move { !ready().await },
    )
    .await;
    assert_eq!(role(&follower).await["caughtUp"], false);
    sqlx::query("ALTER TABLE catalog_entities_away RENAME TO catalog_entities")
        .execute(&pool)
        .await
        .expect("renames back");
    pool.close().await;
    until("readiness again", Duration::from_secs(10), ready).await;
    set.finish([leader, follower]).await;
}
