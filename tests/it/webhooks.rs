//! Black-box: Bitbucket's webhooks and per-entity refresh. A signed push to
//! the branch a provider reads is served within seconds with exactly one
//! file read; pushes to other branches, forged and unsigned events cost no
//! request; a rename keeps the uid; Cloud pushes read at the pushed commit
//! and `repo:deleted` removes; `POST /api/catalog/refresh` re-reads one
//! repository.

use std::time::{Duration, Instant};

use crate::support::sim::SimProviderConfig;
use crate::support::{TestApp, component};
use bitbucket_catalogd::sign_webhook;
use bitbucket_sim::{
    DatasetConfig, FileKind, FileMix, Repo, RepoRef, SimConfig, Simulator, WebhookEvent,
};
use serde_json::{Value, json};

const SECRET: &str = "webhook-s3cret";

/// Only plain one-Component files: each repository's read is one request.
fn dataset() -> DatasetConfig {
    DatasetConfig {
        cloud_projects: 2,
        cloud_repos_per_project: 4,
        ..DatasetConfig::components_only(2, 6)
    }
}

/// A Server provider `sim` on `sim`'s Data Center that runs once at start-up.
fn server_yaml(sim: &Simulator, integration_extra: &str, provider_extra: &str) -> String {
    SimProviderConfig::new(sim)
        .integration_extra(integration_extra)
        .provider_extra(provider_extra)
        .yaml()
}

/// A Cloud provider `sim` on `sim`'s workspace, signed with [`SECRET`].
fn cloud_yaml(sim: &Simulator, provider_extra: &str) -> String {
    format!(
        "integrations:\n  bitbucketCloud:\n    - host: {host}\n      apiBaseUrl: {api}\n      webhookSecret: {SECRET}\ncatalog:\n  providers:\n    bitbucketCloud:\n      sim:\n        workspace: {ws}\n{provider_extra}        schedule:\n          frequency: {{trigger: manual}}\n",
        host = sim.host(),
        api = sim.cloud_api_base(),
        ws = sim.cloud_workspace(),
    )
}

const SIGNED: &str = "      webhookSecret: webhook-s3cret\n";

async fn simulator(config: SimConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

struct Setup {
    sim: Simulator,
    app: TestApp,
}

impl Setup {
    /// A Server provider `sim` that runs once at start-up, and that run done.
    async fn server(integration_extra: &str) -> Self {
        let sim = simulator(SimConfig {
            dataset: dataset(),
            ..SimConfig::default()
        })
        .await;
        let config = server_yaml(&sim, integration_extra, "");
        Self::started(sim, &config).await
    }

    async fn cloud() -> Self {
        let sim = simulator(SimConfig {
            dataset: dataset(),
            ..SimConfig::default()
        })
        .await;
        let config = cloud_yaml(&sim, "");
        Self::started(sim, &config).await
    }

    async fn started(sim: Simulator, config: &str) -> Self {
        let app = TestApp::spawn(config).await;
        app.refresh("sim", "").await;
        sim.reset_stats();
        Self { sim, app }
    }

    fn first_server_repo(&self) -> (RepoRef, Repo) {
        let repo = self
            .sim
            .dataset()
            .server_repos()
            .find(|r| r.file_kind == FileKind::Component)
            .expect("a repository with a component")
            .clone();
        let reference = RepoRef::Server {
            project: repo.project_key.clone(),
            slug: repo.slug.clone(),
        };
        (reference, repo)
    }

    async fn deliver(&self, topic: &str, event: &WebhookEvent, secret: Option<&str>) -> u16 {
        event
            .deliver(
                &format!("{}/api/events/http/{topic}", self.app.address),
                secret,
            )
            .await
            .expect("the event reaches the daemon")
    }

    async fn entity(&self, entity_ref: &str) -> Option<Value> {
        let (kind, rest) = entity_ref.split_once(':').expect("kind:namespace/name");
        let (namespace, name) = rest.split_once('/').expect("namespace/name");
        let response = self
            .app
            .get(&format!(
                "/api/catalog/entities/by-name/{kind}/{namespace}/{name}"
            ))
            .await;
        if response.status() != 200 {
            return None;
        }
        Some(response.json().await.expect("JSON"))
    }

    /// Polls until `check` holds (at most 10 s); returns how long it took.
    async fn until(&self, what: &str, check: impl AsyncFn(&Self) -> bool) -> Duration {
        let started = Instant::now();
        while !check(self).await {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what} did not happen; provider: {:#}",
                self.app.get_json("/api/catalog/providers/sim").await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    }

    /// Waits until `entity_ref` is served from a location containing `part`.
    async fn until_moved(&self, entity_ref: &str, part: &str) {
        self.until("the entity moving to its new URL", async |s| {
            s.entity(entity_ref).await.is_some_and(|e| {
                e["metadata"]["annotations"]["backstage.io/managed-by-location"]
                    .as_str()
                    .is_some_and(|l| l.contains(part))
            })
        })
        .await;
    }

    /// Waits until the last event handled has an outcome containing `part`.
    async fn until_outcome(&self, part: &str) {
        self.until("the event being handled", async |s| {
            s.last_event().await["outcome"]
                .as_str()
                .is_some_and(|o| o.contains(part))
        })
        .await;
    }

    async fn last_event(&self) -> Value {
        self.app.get_json("/api/catalog/providers/sim").await["lastEvent"].clone()
    }
}

#[tokio::test]
async fn a_signed_push_to_the_read_branch_is_served_with_one_file_read() {
    let setup = Setup::server(SIGNED).await;
    let (repo, before) = setup.first_server_repo();
    let old_ref = before.entity_refs[0].clone();
    assert!(setup.entity(&old_ref).await.is_some());

    let event = setup
        .sim
        .push_file(&repo, "catalog-info.yaml", &component("pushed-service"))
        .expect("push");
    assert_eq!(
        setup.deliver("bitbucketServer", &event, Some(SECRET)).await,
        202
    );
    let took = setup
        .until("the pushed entity being served", async |s| {
            s.entity("component:default/pushed-service").await.is_some()
        })
        .await;
    assert!(took < Duration::from_secs(1), "served after {took:?}");
    assert!(
        setup.entity(&old_ref).await.is_none(),
        "the old entity stays"
    );

    let stats = setup.sim.stats();
    assert_eq!(stats.requests, 1, "one file read, nothing else: {stats:#?}");
    let last = setup.last_event().await;
    assert_eq!(last["type"], "push");
    assert_eq!(last["outcome"], "applied");
    let metrics = setup.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("catalog_webhook_events_total{integration=\"127.0.0.1")
            && metrics.contains("outcome=\"applied\""),
        "{metrics}"
    );
    assert!(metrics.contains("catalog_webhook_push_served_seconds_bucket"));
    setup.app.stop().await;
}

#[tokio::test]
async fn pushes_to_other_branches_and_pings_cost_nothing() {
    let setup = Setup::server(SIGNED).await;
    let (repo, _) = setup.first_server_repo();
    let event = setup.sim.push_branch(&repo, "feature/x").expect("push");
    assert_eq!(
        setup.deliver("bitbucketServer", &event, Some(SECRET)).await,
        202
    );
    setup.until_outcome("ignored: pushed to feature/x").await;

    let ping = WebhookEvent {
        key: "diagnostics:ping",
        body: br#"{"test": true}"#.to_vec(),
        commit: None,
    };
    assert_eq!(
        setup.deliver("bitbucketServer", &ping, Some(SECRET)).await,
        200
    );
    assert_eq!(setup.sim.stats().requests, 0);
    setup.app.stop().await;
}

#[tokio::test]
async fn forged_unsigned_and_oversized_events_are_refused_and_cost_nothing() {
    let setup = Setup::server(SIGNED).await;
    let (repo, before) = setup.first_server_repo();
    let event = setup
        .sim
        .push_file(&repo, "catalog-info.yaml", &component("forged"))
        .expect("push");
    assert_eq!(
        setup
            .deliver("bitbucketServer", &event, Some("wrong"))
            .await,
        401
    );
    assert_eq!(setup.deliver("bitbucketServer", &event, None).await, 401);
    let (status, body) = setup
        .app
        .send(
            reqwest::Method::POST,
            "/api/events/http/bitbucketServer",
            Some(json!({"padding": "x".repeat(2 * 1024 * 1024)})),
            None,
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["name"], "PayloadTooLargeError");
    // Only the implicit bitbucket.org integration, without a secret, is on
    // the Cloud route: nothing is accepted there.
    assert_eq!(
        setup.deliver("bitbucketCloud", &event, Some(SECRET)).await,
        401
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(setup.sim.stats().requests, 0);
    assert!(setup.entity(&before.entity_refs[0]).await.is_some());
    assert!(setup.entity("component:default/forged").await.is_none());
    setup.app.stop().await;
}

#[tokio::test]
async fn unsigned_events_need_the_operators_explicit_consent() {
    let setup = Setup::server("      allowUnsignedWebhooks: true\n").await;
    let (repo, _) = setup.first_server_repo();
    let event = setup
        .sim
        .push_file(&repo, "catalog-info.yaml", &component("unsigned-push"))
        .expect("push");
    assert_eq!(setup.deliver("bitbucketServer", &event, None).await, 202);
    setup
        .until("the unsigned push being served", async |s| {
            s.entity("component:default/unsigned-push").await.is_some()
        })
        .await;
    setup.app.stop().await;
}

#[tokio::test]
async fn close_pushes_to_one_repository_are_read_once() {
    let setup = Setup::server(SIGNED).await;
    let (repo, _) = setup.first_server_repo();
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(
            setup
                .sim
                .push_file(
                    &repo,
                    "catalog-info.yaml",
                    &component(&format!("burst-{i}")),
                )
                .expect("push"),
        );
    }
    let statuses = futures::future::join_all(
        events
            .iter()
            .map(|e| setup.deliver("bitbucketServer", e, Some(SECRET))),
    )
    .await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    setup
        .until("the last push being served", async |s| {
            s.entity("component:default/burst-4").await.is_some()
        })
        .await;
    assert_eq!(setup.sim.stats().requests, 1, "five pushes, one read");
    setup.app.stop().await;
}

#[tokio::test]
async fn a_rename_moves_the_entities_and_keeps_their_uid() {
    let setup = Setup::server(SIGNED).await;
    let (repo, before) = setup.first_server_repo();
    let entity_ref = before.entity_refs[0].clone();
    let uid = setup.entity(&entity_ref).await.expect("served")["metadata"]["uid"].clone();

    let event = setup.sim.rename(&repo, "renamed-repo").expect("rename");
    assert_eq!(
        setup.deliver("bitbucketServer", &event, Some(SECRET)).await,
        202
    );
    setup.until_moved(&entity_ref, "/repos/renamed-repo/").await;
    let after = setup.entity(&entity_ref).await.expect("still served");
    assert_eq!(after["metadata"]["uid"], uid);
    assert_eq!(setup.sim.stats().requests, 1, "one read of the moved file");

    let repositories = setup
        .app
        .get_json("/api/catalog/providers/sim/repositories")
        .await;
    let slugs: Vec<&str> = repositories["items"]
        .as_array()
        .or(repositories.as_array())
        .expect("repositories")
        .iter()
        .filter_map(|r| r["slug"].as_str())
        .collect();
    assert!(slugs.contains(&"renamed-repo"), "{slugs:?}");
    assert!(!slugs.contains(&before.slug.as_str()), "{slugs:?}");
    setup.app.stop().await;
}

#[tokio::test]
async fn refreshing_an_entity_rereads_only_its_repository() {
    let setup = Setup::server("").await;
    let (repo, before) = setup.first_server_repo();
    let entity_ref = before.entity_refs[0].clone();
    // Changed in Bitbucket, no webhook: only a refresh can tell.
    setup
        .sim
        .push_file(&repo, "catalog-info.yaml", &component("refreshed-service"))
        .expect("push");
    let (status, body) = setup
        .app
        .send(
            reqwest::Method::POST,
            "/api/catalog/refresh",
            Some(json!({"entityRef": entity_ref})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    setup
        .until("the refreshed file being served", async |s| {
            s.entity("component:default/refreshed-service")
                .await
                .is_some()
        })
        .await;
    assert_eq!(setup.sim.stats().requests, 1);
    assert_eq!(setup.last_event().await["type"], "refresh");

    let (status, body) = setup
        .app
        .send(
            reqwest::Method::POST,
            "/api/catalog/refresh",
            Some(json!({"entityRef": "component:default/no-such-thing"})),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["name"], "NotFoundError");
    setup.app.stop().await;
}

#[tokio::test]
async fn a_cloud_push_reads_the_pushed_commit_and_a_deletion_removes() {
    let setup = Setup::cloud().await;
    let dataset = setup.sim.dataset().clone();
    let mut repos = dataset
        .cloud
        .repos
        .iter()
        .filter(|r| r.file_kind == FileKind::Component);
    let pushed = repos.next().expect("a repository").clone();
    let deleted = repos.next().expect("another repository").clone();

    let event = setup
        .sim
        .push_file(
            &RepoRef::Cloud {
                slug: pushed.slug.clone(),
            },
            "catalog-info.yaml",
            &component("cloud-pushed"),
        )
        .expect("push");
    let commit = event.commit.clone().expect("a new commit");
    assert_eq!(
        setup.deliver("bitbucketCloud", &event, Some(SECRET)).await,
        202
    );
    setup
        .until("the Cloud push being served", async |s| {
            s.entity("component:default/cloud-pushed").await.is_some()
        })
        .await;
    let stats = setup.sim.stats();
    assert_eq!(stats.requests, 1, "{stats:#?}");

    // Bitbucket Cloud's repo:deleted, signed as Bitbucket signs it.
    let body = json!({
        "actor": {"display_name": "someone"},
        "repository": {
            "full_name": format!("{}/{}", dataset.cloud.slug, deleted.slug),
            "uuid": deleted.uuid,
            "links": {"html": {"href": format!("{}/{}/{}", setup.sim.base_url(), dataset.cloud.slug, deleted.slug)}},
        },
    })
    .to_string()
    .into_bytes();
    let response = setup
        .app
        .http
        .post(format!(
            "{}/api/events/http/bitbucketCloud",
            setup.app.address
        ))
        .header("X-Event-Key", "repo:deleted")
        .header("X-Hub-Signature", sign_webhook(SECRET.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .expect("delivered");
    assert_eq!(response.status(), 202);
    let gone = deleted.entity_refs[0].clone();
    setup
        .until("the deleted repository's entities going", async |s| {
            s.entity(&gone).await.is_none()
        })
        .await;
    assert_eq!(setup.sim.stats().requests, 1, "a deletion reads nothing");
    assert!(!commit.is_empty());
    setup.app.stop().await;
}

#[tokio::test]
async fn a_push_rereads_the_file_and_its_location_targets_and_nothing_else() {
    let sim = simulator(SimConfig {
        dataset: DatasetConfig {
            mix: FileMix {
                component: 0.0,
                multi_document: 0.0,
                location_tree: 1.0,
                broken_yaml: 0.0,
                invalid_entity: 0.0,
            },
            ..dataset()
        },
        ..SimConfig::default()
    })
    .await;
    let config = server_yaml(&sim, SIGNED, "");
    let setup = Setup::started(sim, &config).await;
    let repo = setup
        .sim
        .dataset()
        .server_repos()
        .find(|r| r.file_kind == FileKind::LocationTree)
        .expect("a Location tree")
        .clone();
    // A file reached only through Location targets changes.
    let (deep, _) = repo
        .files
        .iter()
        .find(|(path, content)| {
            path.as_str() != "catalog-info.yaml" && content.contains("kind: Component")
        })
        .expect("a component behind a Location");
    let event = setup
        .sim
        .push_file(
            &RepoRef::Server {
                project: repo.project_key.clone(),
                slug: repo.slug.clone(),
            },
            deep,
            &component("deep-pushed"),
        )
        .expect("push");
    assert_eq!(
        setup.deliver("bitbucketServer", &event, Some(SECRET)).await,
        202
    );
    setup
        .until("the changed target being served", async |s| {
            s.entity("component:default/deep-pushed").await.is_some()
        })
        .await;
    // The catalog file and every target; not README.md, not other repositories.
    let files = repo.files.len() - 1;
    assert_eq!(setup.sim.stats().requests, files as u64);
    setup.app.stop().await;
}

async fn registering_setup(version: &str) -> (Simulator, TestApp) {
    let sim = simulator(SimConfig {
        dataset: dataset(),
        server: bitbucket_sim::ServerOptions {
            version: version.into(),
            ..Default::default()
        },
        ..SimConfig::default()
    })
    .await;
    // A webhook a colleague added by hand earlier, with an old secret.
    let stale = reqwest::Client::new()
        .post(format!("{}/projects/P0001/webhooks", sim.server_api_base()))
        .json(&json!({"name": "by hand", "url": "https://catalogd.example.com/api/events/http/bitbucketServer",
            "events": ["repo:refs_changed"], "active": true, "configuration": {"secret": "old"}}))
        .send()
        .await
        .expect("sim answers");
    assert_eq!(stale.status(), 201);
    let config = server_yaml(
        &sim,
        SIGNED,
        "        webhooks:\n          url: https://catalogd.example.com/\n",
    );
    let app = TestApp::spawn(&config).await;
    app.refresh("sim", "").await;
    (sim, app)
}

#[tokio::test]
async fn webhooks_are_registered_once_per_project_with_the_secret() {
    let (sim, app) = registering_setup("8.19.0").await;
    let target = "https://catalogd.example.com/api/events/http/bitbucketServer";
    let hooks = sim.webhooks();
    assert_eq!(
        hooks.len(),
        2,
        "one per project, the stale one updated: {hooks:#?}"
    );
    for hook in &hooks {
        assert!(matches!(hook.scope, bitbucket_sim::HookScope::Project(_)));
        assert_eq!(hook.url, target);
        assert_eq!(hook.secret.as_deref(), Some(SECRET));
        assert_eq!(hook.events, ["repo:refs_changed", "repo:modified"]);
    }
    // A later run asks nothing about webhooks.
    let status = app.refresh("sim", "").await;
    let endpoints = status["lastRun"]["requestsByEndpoint"].to_string();
    assert!(!endpoints.contains("webhook"), "{endpoints}");
    assert_eq!(sim.webhooks(), hooks);
    app.stop().await;
}

#[tokio::test]
async fn before_data_center_8_8_webhooks_are_registered_per_repository() {
    let (sim, app) = registering_setup("7.21.0").await;
    let repositories = sim.dataset().server_repos().count();
    let hooks = sim.webhooks();
    let per_repository = hooks
        .iter()
        .filter(|h| matches!(h.scope, bitbucket_sim::HookScope::Repository(..)))
        .count();
    assert_eq!(per_repository, repositories, "{hooks:#?}");
    app.stop().await;
}

#[tokio::test]
async fn a_cloud_provider_registers_one_workspace_webhook() {
    let sim = simulator(SimConfig {
        dataset: dataset(),
        ..SimConfig::default()
    })
    .await;
    let config = cloud_yaml(
        &sim,
        "        webhooks: {url: 'https://catalogd.example.com'}\n",
    );
    let app = TestApp::spawn(&config).await;
    app.refresh("sim", "").await;
    let hooks = sim.webhooks();
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert_eq!(
        hooks[0].url,
        "https://catalogd.example.com/api/events/http/bitbucketCloud"
    );
    assert_eq!(hooks[0].secret.as_deref(), Some(SECRET));
    assert_eq!(
        hooks[0].events,
        ["repo:push", "repo:updated", "repo:transfer", "repo:deleted"]
    );
    app.stop().await;
}

#[test]
fn registering_webhooks_needs_the_integrations_secret_and_secrets_stay_hidden() {
    use bitbucket_catalogd::{Config, Environment};
    let load = |integration_extra: &str| {
        let yaml = format!(
            "integrations:\n  bitbucketServer:\n    - host: bb.example.com\n{integration_extra}catalog:\n  providers:\n    bitbucketServer:\n      host: bb.example.com\n      webhooks: {{url: 'https://catalogd.example.com'}}\n"
        );
        let (_dir, file) = crate::support::write_config(&yaml);
        Config::load(
            &[file],
            &Environment::from_pairs([("HOOK_SECRET", "from-env-s3cret")]),
        )
    };
    let err = load("")
        .expect_err("no secret to sign the webhooks with")
        .to_string();
    assert!(
        err.contains("catalog.providers.bitbucketServer.webhooks.url")
            && err.contains("webhookSecret"),
        "{err}"
    );
    let loaded = load("      webhookSecret: ${HOOK_SECRET}\n").expect("loads");
    let integration = &loaded.config.integrations.bitbucket_server[0];
    assert_eq!(
        integration.webhooks.secret.as_ref().map(|s| s.expose()),
        Some("from-env-s3cret")
    );
    let shown = format!(
        "{:?} {}",
        loaded.config.integrations,
        loaded.config.redacted_tree()
    );
    assert!(!shown.contains("from-env-s3cret"), "{shown}");
}

#[tokio::test]
async fn a_cloud_rename_moves_the_entities_with_one_read() {
    let setup = Setup::cloud().await;
    let repo = setup
        .sim
        .dataset()
        .cloud
        .repos
        .iter()
        .find(|r| r.file_kind == FileKind::Component)
        .expect("a repository")
        .clone();
    let entity_ref = repo.entity_refs[0].clone();
    let event = setup
        .sim
        .rename(
            &RepoRef::Cloud {
                slug: repo.slug.clone(),
            },
            "renamed-cloud",
        )
        .expect("rename");
    assert_eq!(event.key, "repo:updated");
    assert_eq!(
        setup.deliver("bitbucketCloud", &event, Some(SECRET)).await,
        202
    );
    setup.until_moved(&entity_ref, "/renamed-cloud/src/").await;
    assert_eq!(setup.sim.stats().requests, 1, "one read at the new place");
    setup.app.stop().await;
}

#[tokio::test]
async fn pushes_to_repositories_the_filters_leave_out_cost_nothing() {
    let sim = simulator(SimConfig {
        dataset: dataset(),
        ..SimConfig::default()
    })
    .await;
    // Only project P0001 is read.
    let config = server_yaml(
        &sim,
        SIGNED,
        "        filters:\n          projectKey: '^P0001$'\n",
    );
    let setup = Setup::started(sim, &config).await;
    let outside = setup
        .sim
        .dataset()
        .server_repos()
        .find(|r| r.project_key == "P0002")
        .expect("a repository outside the filters")
        .clone();
    let event = setup
        .sim
        .push_file(
            &RepoRef::Server {
                project: outside.project_key.clone(),
                slug: outside.slug.clone(),
            },
            "catalog-info.yaml",
            &component("outside"),
        )
        .expect("push");
    assert_eq!(
        setup.deliver("bitbucketServer", &event, Some(SECRET)).await,
        202
    );
    setup
        .until_outcome("does not match filters.projectKey")
        .await;
    assert_eq!(setup.sim.stats().requests, 0);
    assert!(setup.entity("component:default/outside").await.is_none());
    setup.app.stop().await;
}

#[tokio::test]
async fn a_webhook_secret_list_accepts_every_secret_during_a_rotation() {
    let setup =
        Setup::server("      webhookSecret:\n        - webhook-n3w\n        - webhook-s3cret\n")
            .await;
    let (repo, _) = setup.first_server_repo();
    let old = setup
        .sim
        .push_file(&repo, "catalog-info.yaml", &component("signed-with-old"))
        .expect("push");
    // Bitbucket still signs with the old secret: accepted.
    assert_eq!(
        setup.deliver("bitbucketServer", &old, Some(SECRET)).await,
        202
    );
    setup
        .until(
            "the event signed with the old secret being served",
            async |s| {
                s.entity("component:default/signed-with-old")
                    .await
                    .is_some()
            },
        )
        .await;
    // Bitbucket switched to the new secret: accepted too.
    let new = setup
        .sim
        .push_file(&repo, "catalog-info.yaml", &component("signed-with-new"))
        .expect("push");
    assert_eq!(
        setup
            .deliver("bitbucketServer", &new, Some("webhook-n3w"))
            .await,
        202
    );
    setup
        .until(
            "the event signed with the new secret being served",
            async |s| {
                s.entity("component:default/signed-with-new")
                    .await
                    .is_some()
            },
        )
        .await;
    // Any other secret is still refused.
    assert_eq!(
        setup.deliver("bitbucketServer", &new, Some("wrong")).await,
        401
    );
    setup.app.stop().await;
}
