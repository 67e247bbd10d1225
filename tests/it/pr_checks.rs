//! Black-box: catalog checks on pull requests (issue #27) against the
//! simulator. A valid change passes with the exact entity diff; a broken
//! file fails at its file and line; a ref another repository owns fails
//! and names it; pull requests into another branch or an uncovered
//! repository cost no request; a burst of updates posts one report; the
//! merged result equals the preview; without Code Insights a build status
//! is posted. Glob providers are checked; Location targets are read at the
//! pull request's commit; a fork is read when the integration can, and a
//! fork it cannot read fails the check saying so; a report replaced on the
//! same commit leaves no old annotation.

use std::time::{Duration, Instant};

use crate::support::sim::SimProviderConfig;
use crate::support::{TestApp, component};
use bitbucket_sim::{
    DatasetConfig, FileKind, PostedCheck, RepoRef, SimConfig, Simulator, WebhookEvent,
};
use serde_json::{Value, json};

const SECRET: &str = "webhook-s3cret";
const CHECKS: &str = "        pullRequests: {checks: true}\n";

struct Setup {
    sim: Simulator,
    app: TestApp,
    topic: &'static str,
}

fn dataset() -> DatasetConfig {
    DatasetConfig {
        cloud_projects: 1,
        cloud_repos_per_project: 4,
        ..DatasetConfig::components_only(2, 3)
    }
}

async fn simulator() -> Simulator {
    Simulator::start(SimConfig {
        dataset: dataset(),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

impl Setup {
    /// A Data Center provider with checks on (plus `provider_extra`), read once.
    async fn server(provider_extra: &str) -> Self {
        let sim = simulator().await;
        let config = SimProviderConfig::new(&sim)
            .webhook_secret(SECRET)
            .provider_extra(&format!("{CHECKS}{provider_extra}"))
            .yaml();
        Self::started(sim, &config, "bitbucketServer").await
    }

    async fn cloud() -> Self {
        let sim = simulator().await;
        let config = format!(
            "integrations:\n  bitbucketCloud:\n    - host: {host}\n      apiBaseUrl: {api}\n      webhookSecret: {SECRET}\ncatalog:\n  providers:\n    bitbucketCloud:\n      sim:\n        workspace: {ws}\n{CHECKS}        schedule:\n          frequency: {{trigger: manual}}\n",
            host = sim.host(),
            api = sim.cloud_api_base(),
            ws = sim.cloud_workspace(),
        );
        Self::started(sim, &config, "bitbucketCloud").await
    }

    async fn started(sim: Simulator, config: &str, topic: &'static str) -> Self {
        let app = TestApp::spawn(config).await;
        app.refresh("sim", "").await;
        sim.reset_stats();
        Self { sim, app, topic }
    }

    /// The `n`th Data Center repository with a component.
    fn server_repo(&self, n: usize) -> RepoRef {
        let repo = self
            .sim
            .dataset()
            .server_repos()
            .filter(|r| r.file_kind == FileKind::Component)
            .nth(n)
            .expect("enough repositories with a component")
            .clone();
        RepoRef::Server {
            project: repo.project_key,
            slug: repo.slug,
        }
    }

    fn cloud_repo(&self) -> RepoRef {
        let repo = self
            .sim
            .dataset()
            .cloud
            .repos
            .iter()
            .find(|r| r.file_kind == FileKind::Component)
            .expect("a cloud repository with a component")
            .clone();
        RepoRef::Cloud { slug: repo.slug }
    }

    async fn deliver(&self, event: &WebhookEvent) {
        let status = event
            .deliver(
                &format!("{}/api/events/http/{}", self.app.address, self.topic),
                Some(SECRET),
            )
            .await
            .expect("the event reaches the daemon");
        assert_eq!(status, 202, "{}", event.key);
    }

    /// Pushes `content` as the repository's catalog file and waits until
    /// `entity_ref` is served.
    async fn pushed(&self, repo: &RepoRef, content: &str, entity_ref: &str) {
        let event = self
            .sim
            .push_file(repo, "catalog-info.yaml", content)
            .expect("push");
        self.deliver(&event).await;
        self.until(&format!("{entity_ref} served"), async |s| {
            s.app.entity_refs().await.contains(entity_ref)
        })
        .await;
    }

    async fn until(&self, what: &str, check: impl AsyncFn(&Self) -> bool) {
        let started = Instant::now();
        while !check(self).await {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what} did not happen; provider: {:#}",
                self.app.get_json("/api/catalog/providers/sim").await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What was posted on `commit`.
    fn posted_on(&self, commit: &str) -> Vec<PostedCheck> {
        self.sim
            .posted_checks()
            .into_iter()
            .filter(|p| p.commit == commit)
            .collect()
    }

    /// Waits for the report (or build status) on `commit`.
    async fn report_on(&self, commit: &str, kind: &str) -> Value {
        self.until(&format!("a {kind} on {commit}"), async |s| {
            s.posted_on(commit).iter().any(|p| p.kind == kind)
        })
        .await;
        self.posted_on(commit)
            .into_iter()
            .find(|p| p.kind == kind)
            .map(|p| p.body)
            .unwrap_or_default()
    }

    async fn preview(&self, project: &str, slug: &str, id: u64) -> (u16, Value) {
        let response = self
            .app
            .get(&format!("/api/catalog/previews/sim/{project}/{slug}/{id}"))
            .await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }
}

fn names(repo: &RepoRef) -> (String, String) {
    match repo {
        RepoRef::Server { project, slug } => (project.clone(), slug.clone()),
        RepoRef::Cloud { slug } => (String::new(), slug.clone()),
    }
}

fn owned_by(name: &str, owner: &str) -> String {
    component(name).replace("owner: team-a", &format!("owner: {owner}"))
}

fn refs(items: &Value, field: &str) -> Vec<String> {
    items
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i[field].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_valid_change_passes_with_the_exact_entity_diff() {
    let setup = Setup::server("").await;
    let repo = setup.server_repo(0);
    let (project, slug) = names(&repo);
    setup
        .pushed(
            &repo,
            &format!("{}---\n{}", component("pr-kept"), component("pr-dropped")),
            "component:default/pr-kept",
        )
        .await;
    let content = format!(
        "{}---\n{}",
        owned_by("pr-kept", "team-b"),
        component("pr-added")
    );
    setup.sim.reset_stats();
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/x",
            "Add pr-added",
            vec![("catalog-info.yaml".into(), Some(content))],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("source commit");
    setup.deliver(&event).await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "PASS", "{report:#}");
    // The changed paths, the one catalog file, the report and the delete of
    // its old annotations (which follows the report): nothing else.
    setup
        .until("the old annotations deleted", async |s| {
            s.sim.stats().requests >= 4
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(setup.sim.stats().requests, 4, "{:?}", setup.sim.stats());
    let details = report["details"].as_str().unwrap_or_default();
    assert!(details.contains("component:default/pr-added"), "{details}");
    assert!(details.contains("spec.owner"), "{details}");
    // No problem, no annotation.
    assert!(
        !setup
            .posted_on(&commit)
            .iter()
            .any(|p| p.kind == "annotations"),
        "{:?}",
        setup.posted_on(&commit)
    );
    let (status, preview) = setup.preview(&project, &slug, id).await;
    assert_eq!(status, 200, "{preview:#}");
    assert_eq!(preview["result"], "pass");
    assert_eq!(
        refs(&preview["added"], "entityRef"),
        ["component:default/pr-added"]
    );
    assert_eq!(
        refs(&preview["changed"], "entityRef"),
        ["component:default/pr-kept"]
    );
    assert_eq!(preview["changed"][0]["fields"], json!(["spec.owner"]));
    assert_eq!(preview["removed"], json!(["component:default/pr-dropped"]));
    // Nothing was applied: the catalog still serves what the branch has.
    let served = setup.app.entity_refs().await;
    assert!(served.contains("component:default/pr-dropped"));
    assert!(!served.contains("component:default/pr-added"));
    // The status page lists the open preview.
    let page = setup.app.get("/").await.text().await.unwrap_or_default();
    assert!(
        page.contains("Open pull requests") && page.contains(&format!("{project}/{slug} #{id}")),
        "the status page lists the preview"
    );
}

#[tokio::test]
async fn a_broken_file_fails_with_the_file_and_line() {
    let setup = Setup::server("").await;
    let repo = setup.server_repo(0);
    let broken =
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: [unclosed\n";
    let (_, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/broken",
            "Break it",
            vec![("catalog-info.yaml".into(), Some(broken.into()))],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("source commit");
    setup.deliver(&event).await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "FAIL", "{report:#}");
    let annotations = setup.report_on(&commit, "annotations").await;
    let first = &annotations["annotations"][0];
    assert_eq!(first["path"], "catalog-info.yaml", "{annotations:#}");
    // The unclosed sequence opens on line 4; the parser stops there or at the end.
    assert!(
        first["line"].as_u64().is_some_and(|l| (4..=5).contains(&l)),
        "{first:#}"
    );
    assert_eq!(first["severity"], "HIGH");
}

#[tokio::test]
async fn a_ref_owned_by_another_repository_fails_and_names_it() {
    let setup = Setup::server("").await;
    let (repo, other) = (setup.server_repo(0), setup.server_repo(1));
    let (_, other_slug) = names(&other);
    setup
        .pushed(
            &other,
            &component("taken-name"),
            "component:default/taken-name",
        )
        .await;
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/steal",
            "Take a name",
            vec![("catalog-info.yaml".into(), Some(component("taken-name")))],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("source commit");
    setup.deliver(&event).await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "FAIL", "{report:#}");
    let (project, slug) = names(&repo);
    let (_, preview) = setup.preview(&project, &slug, id).await;
    let message = preview["problems"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains(&other_slug), "{preview:#}");
    assert_eq!(preview["problems"][0]["kind"], "conflict");
}

#[tokio::test]
async fn pull_requests_into_another_branch_or_an_uncovered_repository_cost_nothing() {
    let setup = Setup::server("        filters:\n          repoSlug: NOTHING-MATCHES-\n").await;
    // Uncovered: the filters leave every repository out.
    let repo = setup.server_repo(0);
    let (_, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/y",
            "Uncovered",
            vec![("catalog-info.yaml".into(), Some(component("uncovered")))],
        )
        .expect("pull request");
    setup.deliver(&event).await;
    setup
        .until("the event handled", async |s| {
            s.app.get_json("/api/catalog/providers/sim").await["lastEvent"]["outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with("ignored"))
        })
        .await;
    assert_eq!(setup.sim.stats().requests, 0, "{:?}", setup.sim.stats());
    assert!(setup.sim.posted_checks().is_empty());
}

#[tokio::test]
async fn a_pull_request_into_another_branch_costs_nothing() {
    let setup = Setup::server("").await;
    let repo = setup.server_repo(0);
    let (_, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/z",
            "Elsewhere",
            vec![("catalog-info.yaml".into(), Some(component("elsewhere")))],
        )
        .expect("pull request");
    // The same pull request, into `release`.
    let mut body: Value = serde_json::from_slice(&event.body).expect("JSON");
    body["pullRequest"]["toRef"]["id"] = json!("refs/heads/release");
    body["pullRequest"]["toRef"]["displayId"] = json!("release");
    let event = WebhookEvent {
        body: body.to_string().into_bytes(),
        ..event
    };
    // Forged or unsigned: refused before anything is read.
    let hook = format!("{}/api/events/http/{}", setup.app.address, setup.topic);
    assert_eq!(
        event.deliver(&hook, Some("forged")).await.expect("sent"),
        401
    );
    assert_eq!(event.deliver(&hook, None).await.expect("sent"), 401);
    setup.deliver(&event).await;
    setup
        .until("the event handled", async |s| {
            s.app.get_json("/api/catalog/providers/sim").await["lastEvent"]["outcome"]
                .as_str()
                .is_some_and(|o| o.contains("release"))
        })
        .await;
    assert_eq!(setup.sim.stats().requests, 0, "{:?}", setup.sim.stats());
    assert!(setup.sim.posted_checks().is_empty());
}

#[tokio::test]
async fn five_updates_in_a_burst_post_one_report() {
    let setup = Setup::server("").await;
    let repo = setup.server_repo(0);
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/burst",
            "Burst",
            vec![("catalog-info.yaml".into(), Some(component("burst-0")))],
        )
        .expect("pull request");
    let first = event.commit.clone().expect("commit");
    setup.deliver(&event).await;
    setup.report_on(&first, "report").await;
    let updates: Vec<WebhookEvent> = (1..=5)
        .map(|n| {
            setup
                .sim
                .update_pull_request(
                    &repo,
                    id,
                    vec![(
                        "catalog-info.yaml".into(),
                        Some(component(&format!("burst-{n}"))),
                    )],
                )
                .expect("update")
        })
        .collect();
    let last = updates[4].commit.clone().expect("commit");
    futures::future::join_all(updates.iter().map(|e| setup.deliver(e))).await;
    let report = setup.report_on(&last, "report").await;
    assert_eq!(report["result"], "PASS");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reports = setup
        .sim
        .posted_checks()
        .into_iter()
        .filter(|p| p.kind == "report")
        .count();
    assert_eq!(reports, 2, "one for the opening, one for the burst");
}

#[tokio::test]
async fn the_merged_result_equals_the_preview() {
    let setup = Setup::server("").await;
    let repo = setup.server_repo(0);
    let (project, slug) = names(&repo);
    let content = format!(
        "{}---\n{}",
        component("merged-one"),
        component("merged-two")
    );
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/merge",
            "Merge me",
            vec![("catalog-info.yaml".into(), Some(content))],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("commit");
    setup.deliver(&event).await;
    setup.report_on(&commit, "report").await;
    let (_, preview) = setup.preview(&project, &slug, id).await;
    let predicted: Vec<String> = preview["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_lowercase())
        .collect();
    assert_eq!(
        predicted,
        [
            "component:default/merged-one",
            "component:default/merged-two"
        ]
    );
    setup.merged_serves(&repo, id, &predicted).await;
}

impl Setup {
    /// The entity refs (lowercased) the repository `slug` serves: those
    /// whose location is in it.
    async fn served_from(&self, slug: &str) -> Vec<String> {
        let entities = self
            .app
            .get_json("/api/catalog/entities?fields=kind,metadata.name,metadata.annotations")
            .await;
        entities
            .as_array()
            .expect("array")
            .iter()
            .filter(|e| {
                e["metadata"]["annotations"]["backstage.io/managed-by-location"]
                    .as_str()
                    .is_some_and(|l| l.contains(&format!("/repos/{slug}/")))
            })
            .map(|e| {
                format!(
                    "{}:default/{}",
                    e["kind"].as_str().unwrap_or_default(),
                    e["metadata"]["name"].as_str().unwrap_or_default()
                )
                .to_lowercase()
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Merges pull request `id`, delivers the push and the merge, and
    /// checks that the repository then serves exactly `predicted` (sorted,
    /// lowercased) and that the preview is dropped.
    async fn merged_serves(&self, repo: &RepoRef, id: u64, predicted: &[String]) {
        let (project, slug) = names(repo);
        let (push, merged) = self.sim.merge_pull_request(repo, id).expect("merge");
        self.deliver(&push).await;
        self.deliver(&merged).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while self.served_from(&slug).await != predicted {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        // The repository serves exactly the predicted entities.
        assert_eq!(self.served_from(&slug).await, predicted);
        let owner = if project.is_empty() {
            self.sim.cloud_workspace().to_owned()
        } else {
            project
        };
        self.until("the preview dropped", async |s| {
            s.preview(&owner, &slug, id).await.0 == 404
        })
        .await;
    }
}

#[tokio::test]
async fn without_code_insights_a_build_status_is_posted() {
    let setup = Setup::server("").await;
    setup.sim.set_insights(false);
    let repo = setup.server_repo(0);
    let (_, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/status",
            "Status",
            vec![("catalog-info.yaml".into(), Some(component("status-one")))],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("commit");
    setup.deliver(&event).await;
    let status = setup.report_on(&commit, "buildStatus").await;
    assert_eq!(status["state"], "SUCCESSFUL", "{status:#}");
    assert_eq!(status["key"], "bitbucket-catalogd");
    assert!(
        status["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http"))
    );
}

#[tokio::test]
async fn a_cloud_pull_request_is_checked_with_a_report() {
    let setup = Setup::cloud().await;
    let repo = setup.cloud_repo();
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/cloud",
            "Cloud",
            vec![("catalog-info.yaml".into(), Some(component("cloud-added")))],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("commit");
    setup.deliver(&event).await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "PASSED", "{report:#}");
    let (_, slug) = names(&repo);
    let ws = setup.sim.cloud_workspace().to_owned();
    let (status, preview) = setup.preview(&ws, &slug, id).await;
    assert_eq!(status, 200, "{preview:#}");
    assert!(
        refs(&preview["added"], "entityRef").contains(&"component:default/cloud-added".to_owned()),
        "{preview:#}"
    );
}

#[tokio::test]
async fn registered_webhooks_carry_pull_request_events_and_the_report_links_the_preview() {
    let setup =
        Setup::server("        webhooks:\n          url: https://catalogd.example.com/\n").await;
    let hooks = setup.sim.webhooks();
    assert!(!hooks.is_empty());
    for hook in &hooks {
        assert_eq!(
            hook.events,
            [
                "repo:refs_changed",
                "repo:modified",
                "pr:opened",
                "pr:from_ref_updated",
                "pr:modified",
                "pr:merged",
                "pr:declined",
                "pr:deleted"
            ]
        );
    }
    let repo = setup.server_repo(0);
    let (project, slug) = names(&repo);
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/link",
            "Link",
            vec![("catalog-info.yaml".into(), Some(component("linked")))],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("commit");
    setup.deliver(&event).await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(
        report["link"],
        format!("https://catalogd.example.com/api/catalog/previews/sim/{project}/{slug}/{id}")
    );
    // Declined: the preview goes.
    let declined = setup.sim.decline_pull_request(&repo, id).expect("decline");
    setup.deliver(&declined).await;
    setup
        .until("the preview dropped", async |s| {
            s.preview(&project, &slug, id).await.0 == 404
        })
        .await;
}

#[tokio::test]
async fn checks_are_off_by_default_and_cost_nothing() {
    let sim = simulator().await;
    let config = SimProviderConfig::new(&sim).webhook_secret(SECRET).yaml();
    let setup = Setup::started(sim, &config, "bitbucketServer").await;
    let repo = setup.server_repo(0);
    let (_, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/off",
            "Off",
            vec![("catalog-info.yaml".into(), Some(component("off")))],
        )
        .expect("pull request");
    setup.deliver(&event).await;
    setup
        .until("the event handled", async |s| {
            s.app.get_json("/api/catalog/providers/sim").await["lastEvent"]["outcome"]
                .as_str()
                .is_some_and(|o| o.contains("pullRequests.checks is off"))
        })
        .await;
    assert_eq!(setup.sim.stats().requests, 0, "{:?}", setup.sim.stats());
    assert!(setup.sim.posted_checks().is_empty());
}

fn location(name: &str, target: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\nspec:\n  targets:\n    - {target}\n"
    )
}

impl Setup {
    /// Opens a pull request through the simulator's admin API (which can
    /// name a fork) and has it deliver the event; returns id and commit.
    async fn open_from_fork(&self, repo: &RepoRef, fork: Value, files: Value) -> (u64, String) {
        let (project, slug) = names(repo);
        let repository = match repo {
            RepoRef::Server { .. } => json!({"server": {"project": project, "slug": slug}}),
            RepoRef::Cloud { .. } => json!({"cloud": {"slug": slug}}),
        };
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/__sim/pull-requests", self.sim.base_url()))
            .json(&json!({
                "action": "open",
                "repository": repository,
                "fork": fork,
                "sourceBranch": "feature/forked",
                "title": "From a fork",
                "files": files,
                "webhook": {
                    "url": format!("{}/api/events/http/{}", self.app.address, self.topic),
                    "secret": SECRET,
                },
            }))
            .send()
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("JSON");
        assert_eq!(answer["events"][0]["delivered"], json!([202]), "{answer:#}");
        let id = answer["id"].as_u64().expect("id");
        let commit = answer["events"][0]["commit"]
            .as_str()
            .expect("commit")
            .to_owned();
        (id, commit)
    }
}

#[tokio::test]
async fn a_glob_provider_checks_the_matching_files_added_and_removed() {
    let setup = Setup::server("        catalogPath: \"**/catalog-info.yaml\"\n").await;
    let repo = setup.server_repo(0);
    let (project, slug) = names(&repo);
    setup
        .pushed(
            &repo,
            &component("glob-root"),
            "component:default/glob-root",
        )
        .await;
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/glob",
            "Move to a service folder",
            vec![
                ("catalog-info.yaml".into(), None),
                (
                    "services/a/catalog-info.yaml".into(),
                    Some(component("glob-added")),
                ),
                (
                    "services/a/README.md".into(),
                    Some("not a catalog file".into()),
                ),
            ],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("source commit");
    setup.deliver(&event).await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "PASS", "{report:#}");
    let (status, preview) = setup.preview(&project, &slug, id).await;
    assert_eq!(status, 200, "{preview:#}");
    assert_eq!(
        refs(&preview["added"], "entityRef"),
        ["component:default/glob-added"]
    );
    assert_eq!(preview["removed"], json!(["component:default/glob-root"]));
    assert_eq!(
        preview["files"],
        json!(["catalog-info.yaml", "services/a/catalog-info.yaml"])
    );
    // Nothing applied.
    let served = setup.app.entity_refs().await;
    assert!(served.contains("component:default/glob-root"));
    assert!(!served.contains("component:default/glob-added"));
}

const GLOB_GENERATE: &str = "        catalogPath: \"**/catalog-info.yaml\"\n        withoutCatalogFile:\n          generate:\n            type: service\n            lifecycle: production\n            owner: group:default/unowned\n";

/// Entity refs, lowercased and sorted.
fn lowered(refs: &Value) -> Vec<String> {
    let mut refs: Vec<String> = refs
        .as_array()
        .expect("entity refs")
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_lowercase())
        .collect();
    refs.sort();
    refs
}

/// The entity refs a preview predicts, lowercased and sorted.
fn predicted(preview: &Value) -> Vec<String> {
    lowered(&preview["entities"])
}

#[tokio::test]
async fn a_glob_pull_request_removing_every_catalog_file_predicts_the_generated_entity() {
    let setup = Setup::server(GLOB_GENERATE).await;
    let repo = setup.server_repo(0);
    let (project, slug) = names(&repo);
    // Named apart from the generated entity (the data set's components
    // take the generated name, which would be a change, not an addition).
    setup
        .pushed(
            &repo,
            &component("glob-only"),
            "component:default/glob-only",
        )
        .await;
    let before = setup.served_from(&slug).await;
    assert_eq!(before, ["component:default/glob-only"]);
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/no-catalog",
            "Remove the catalog file",
            vec![("catalog-info.yaml".into(), None)],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("source commit");
    setup.deliver(&event).await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "PASS", "{report:#}");
    let (status, preview) = setup.preview(&project, &slug, id).await;
    assert_eq!(status, 200, "{preview:#}");
    // The component goes, the generated entity comes.
    assert_eq!(lowered(&preview["removed"]), before, "{preview:#}");
    let added = preview["added"].as_array().expect("added");
    assert_eq!(added.len(), 1, "{preview:#}");
    let generated = &added[0]["entity"];
    assert_eq!(
        generated["metadata"]["annotations"]["bitbucket-catalogd/generated"], "true",
        "{preview:#}"
    );
    assert_eq!(generated["spec"]["owner"], "group:default/unowned");
    let predicted = predicted(&preview);
    assert_eq!(predicted.len(), 1, "{preview:#}");
    // Nothing applied yet.
    assert_eq!(setup.served_from(&slug).await, before);
    setup.merged_serves(&repo, id, &predicted).await;
}

#[tokio::test]
async fn a_glob_pull_request_leaving_a_catalog_file_generates_nothing() {
    let setup = Setup::server(GLOB_GENERATE).await;
    let repo = setup.server_repo(0);
    let (project, slug) = names(&repo);
    // A matching file that serves nothing, which the pull request keeps.
    let event = setup
        .sim
        .push_file(&repo, "docs/catalog-info.yaml", "")
        .expect("push");
    setup.deliver(&event).await;
    let before = setup.served_from(&slug).await;
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/keep-one",
            "Remove the root catalog file",
            vec![("catalog-info.yaml".into(), None)],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("source commit");
    setup.deliver(&event).await;
    setup.report_on(&commit, "report").await;
    let (_, preview) = setup.preview(&project, &slug, id).await;
    assert_eq!(preview["added"], json!([]), "{preview:#}");
    assert_eq!(lowered(&preview["removed"]), before, "{preview:#}");
    setup.merged_serves(&repo, id, &predicted(&preview)).await;
}

#[tokio::test]
async fn location_targets_are_read_at_the_pull_requests_commit() {
    let setup = Setup::server("").await;
    let repo = setup.server_repo(0);
    let (project, slug) = names(&repo);
    let event = setup
        .sim
        .push_file(&repo, "more.yaml", &component("target-before"))
        .expect("push");
    setup.deliver(&event).await;
    setup
        .pushed(
            &repo,
            &location("root", "./more.yaml"),
            "component:default/target-before",
        )
        .await;
    // Only the target changes.
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/target",
            "Rename the target's component",
            vec![("more.yaml".into(), Some(component("target-after")))],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("source commit");
    setup.deliver(&event).await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "PASS", "{report:#}");
    let (_, preview) = setup.preview(&project, &slug, id).await;
    assert_eq!(
        refs(&preview["added"], "entityRef"),
        ["component:default/target-after"],
        "{preview:#}"
    );
    assert_eq!(
        preview["removed"],
        json!(["component:default/target-before"])
    );
    assert_eq!(preview["changed"], json!([]), "{preview:#}");
}

/// A target pinned to another ref is read there by the branch's read, so
/// the check reads it there too, not at the pull request's commit: the
/// preview changes nothing, and neither does the merge.
#[tokio::test]
async fn a_location_target_pinned_to_another_ref_is_read_at_that_ref() {
    let setup = Setup::server("").await;
    let repo = setup.server_repo(0);
    let (project, slug) = names(&repo);
    let event = setup
        .sim
        .push_file(&repo, "more.yaml", &component("pinned-before"))
        .expect("push");
    let pinned = event.commit.clone().expect("the pushed commit");
    setup.deliver(&event).await;
    let target = format!(
        "{}/projects/{project}/repos/{slug}/browse/more.yaml?at={pinned}",
        setup.sim.base_url()
    );
    setup
        .pushed(
            &repo,
            &location("root", &target),
            "component:default/pinned-before",
        )
        .await;
    let before = setup.served_from(&slug).await;
    let (id, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/pinned",
            "Change the pinned target",
            vec![("more.yaml".into(), Some(component("pinned-after")))],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("source commit");
    setup.deliver(&event).await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "PASS", "{report:#}");
    let (_, preview) = setup.preview(&project, &slug, id).await;
    assert_eq!(preview["added"], json!([]), "{preview:#}");
    assert_eq!(preview["removed"], json!([]), "{preview:#}");
    assert_eq!(preview["changed"], json!([]), "{preview:#}");
    assert_eq!(predicted(&preview), before);
    setup.merged_serves(&repo, id, &before).await;
}

#[tokio::test]
async fn a_fork_the_integration_can_read_is_read() {
    let setup = Setup::server("").await;
    let (repo, fork) = (setup.server_repo(0), setup.server_repo(1));
    let (project, slug) = names(&repo);
    let (fork_project, fork_slug) = names(&fork);
    let (id, commit) = setup
        .open_from_fork(
            &repo,
            json!({"server": {"project": fork_project, "slug": fork_slug}}),
            json!({"catalog-info.yaml": component("from-the-fork")}),
        )
        .await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "PASS", "{report:#}");
    let (_, preview) = setup.preview(&project, &slug, id).await;
    assert_eq!(
        refs(&preview["added"], "entityRef"),
        ["component:default/from-the-fork"],
        "{preview:#}"
    );
}

#[tokio::test]
async fn a_fork_the_integration_cannot_read_fails_saying_so() {
    let setup = Setup::server("").await;
    let repo = setup.server_repo(0);
    let (project, slug) = names(&repo);
    let (id, commit) = setup
        .open_from_fork(
            &repo,
            json!({"server": {"project": "~MALLORY", "slug": "hidden-fork"}}),
            json!({"catalog-info.yaml": component("never-read")}),
        )
        .await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "FAIL", "not a false pass: {report:#}");
    let details = report["details"].as_str().unwrap_or_default();
    assert!(
        details.contains("~MALLORY/hidden-fork") && details.contains("cannot read"),
        "{details}"
    );
    let (_, preview) = setup.preview(&project, &slug, id).await;
    assert_eq!(preview["added"], json!([]), "{preview:#}");
    assert_eq!(preview["removed"], json!([]), "{preview:#}");
    assert_eq!(preview["problems"][0]["kind"], "read", "{preview:#}");
}

impl Setup {
    /// A Cloud repository of the workspace other than `repo`.
    fn other_cloud_repo(&self, repo: &RepoRef) -> RepoRef {
        let (_, taken) = names(repo);
        let other = self
            .sim
            .dataset()
            .cloud
            .repos
            .iter()
            .find(|r| r.slug != taken)
            .expect("a second cloud repository")
            .slug
            .clone();
        RepoRef::Cloud { slug: other }
    }
}

#[tokio::test]
async fn a_cloud_fork_the_integration_can_read_is_read() {
    let setup = Setup::cloud().await;
    let repo = setup.cloud_repo();
    let fork = setup.other_cloud_repo(&repo);
    let (_, slug) = names(&repo);
    let (_, fork_slug) = names(&fork);
    let (id, commit) = setup
        .open_from_fork(
            &repo,
            json!({"cloud": {"slug": fork_slug}}),
            json!({"catalog-info.yaml": component("from-the-cloud-fork")}),
        )
        .await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "PASSED", "{report:#}");
    let ws = setup.sim.cloud_workspace().to_owned();
    let (status, preview) = setup.preview(&ws, &slug, id).await;
    assert_eq!(status, 200, "{preview:#}");
    // Read in the fork at the source commit: the target has no such file.
    assert_eq!(
        refs(&preview["added"], "entityRef"),
        ["component:default/from-the-cloud-fork"],
        "{preview:#}"
    );
    assert_eq!(preview["problems"], json!([]), "{preview:#}");
    // The report is posted on the target repository, not the fork.
    let posted = setup.posted_on(&commit);
    assert!(
        posted
            .iter()
            .any(|p| p.kind == "report" && p.repository == format!("{ws}/{slug}")),
        "{posted:?}"
    );
}

#[tokio::test]
async fn a_cloud_fork_the_integration_cannot_read_fails_saying_so() {
    let setup = Setup::cloud().await;
    let repo = setup.cloud_repo();
    let (_, slug) = names(&repo);
    let ws = setup.sim.cloud_workspace().to_owned();
    let (id, commit) = setup
        .open_from_fork(
            &repo,
            json!({"cloud": {"slug": "hidden-cloud-fork"}}),
            json!({"catalog-info.yaml": component("never-read-cloud")}),
        )
        .await;
    let report = setup.report_on(&commit, "report").await;
    assert_eq!(report["result"], "FAILED", "not a false pass: {report:#}");
    let details = report["details"].as_str().unwrap_or_default();
    assert!(
        details.contains(&format!("{ws}/hidden-cloud-fork")) && details.contains("cannot read"),
        "{details}"
    );
    let (_, preview) = setup.preview(&ws, &slug, id).await;
    assert_eq!(preview["added"], json!([]), "{preview:#}");
    assert_eq!(preview["removed"], json!([]), "{preview:#}");
    assert_eq!(preview["problems"][0]["kind"], "read", "{preview:#}");
    // Nothing of the fork was read.
    assert!(
        !setup
            .app
            .entity_refs()
            .await
            .contains("component:default/never-read-cloud")
    );
}

#[tokio::test]
async fn a_report_replaced_on_the_same_commit_keeps_no_old_annotation() {
    let setup = Setup::server("").await;
    let (repo, other) = (setup.server_repo(0), setup.server_repo(1));
    setup
        .pushed(
            &other,
            &component("contested"),
            "component:default/contested",
        )
        .await;
    let (_, event) = setup
        .sim
        .open_pull_request(
            &repo,
            "feature/contest",
            "Take a name",
            vec![("catalog-info.yaml".into(), Some(component("contested")))],
        )
        .expect("pull request");
    let commit = event.commit.clone().expect("source commit");
    setup.deliver(&event).await;
    let annotations = setup.report_on(&commit, "annotations").await;
    assert_eq!(annotations["annotations"][0]["path"], "catalog-info.yaml");
    // The other repository lets the name go; the same commit is checked again.
    setup
        .pushed(&other, &component("let-go"), "component:default/let-go")
        .await;
    setup.deliver(&event).await;
    // The PUT comes before the delete: wait for both.
    setup
        .until(
            "the report replaced with a pass and no annotation left",
            async |s| {
                let posted = s.posted_on(&commit);
                posted
                    .iter()
                    .any(|p| p.kind == "report" && p.body["result"] == "PASS")
                    && !posted.iter().any(|p| p.kind == "annotations")
            },
        )
        .await;
}
