//! The Backstage module in `integrations/backstage` against the real
//! thing: Backstage's catalog backend follows this daemon (fed by the
//! simulator) through the change feed. The assertions run in
//! `integrations/backstage/test/e2e.test.ts` (`npm test` there); this test
//! starts the simulator and the daemon for it. Needs
//! `npm ci --prefix integrations/backstage` (the README's test command runs
//! it) and the PostgreSQL on 127.0.0.1:5432.

use std::path::Path;
use std::process::Command;

use crate::support::TestApp;
use bitbucket_sim::{DatasetConfig, FileKind, FileMix, SimConfig, Simulator};

const SECRET: &str = "backstage-e2e-s3cret";

#[tokio::test]
async fn backstage_mirrors_the_daemon_through_the_change_feed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/backstage");
    assert!(
        dir.join("node_modules/@backstage/plugin-catalog-backend")
            .is_dir(),
        "the module's dependencies are not installed: run `npm ci --prefix integrations/backstage` (the README's test command does)"
    );
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig {
            projects: 2,
            repos_per_project: 5,
            catalog_ratio: 1.0,
            archived_ratio: 0.0,
            mix: FileMix {
                component: 0.6,
                multi_document: 0.2,
                location_tree: 0.2,
                broken_yaml: 0.0,
                invalid_entity: 0.0,
            },
            ..DatasetConfig::default()
        },
        webhook_secret: Some(SECRET.into()),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let config = format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n      webhookSecret: {SECRET}\ncatalog:\n  providers:\n    bitbucketServer:\n      sim:\n        host: {host}\n        schedule:\n          frequency: {{trigger: manual}}\n",
        host = sim.host(),
        api = sim.server_api_base(),
    );
    let app = TestApp::spawn(&config).await;
    app.refresh("sim", "").await;
    let components: Vec<String> = sim
        .dataset()
        .server_repos()
        .filter(|r| r.file_kind == FileKind::Component)
        .map(|r| format!("{}/{}", r.project_key, r.slug))
        .take(2)
        .collect();
    assert_eq!(components.len(), 2, "two repositories with a component");

    let (daemon, sim_url) = (app.address.clone(), sim.base_url());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("npm")
            .args(["test", "--silent"])
            .env("CATALOGD_URL", daemon)
            .env("SIM_URL", sim_url)
            .env("PUSH_REPOSITORY", &components[0])
            .env("REMOVE_REPOSITORY", &components[1])
            .current_dir(dir)
            .output()
            .expect("npm runs")
    })
    .await
    .expect("joins");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the Backstage module's end-to-end test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    app.stop().await;
}
