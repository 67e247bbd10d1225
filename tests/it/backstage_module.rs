//! The Backstage module in `integrations/backstage` against the real
//! thing: Backstage's catalog backend follows this daemon (fed by the
//! simulator) through the change feed. The end-to-end assertions run in
//! `integrations/backstage/test/e2e.test.ts` (`npm test` there); this test
//! starts the simulator and the daemon for it. A second test packs the
//! module (`npm pack`), installs the tarball into a scratch backend as the
//! module's README says, and starts that backend (`createBackend` from
//! `@backstage/backend-defaults`) with each config form and a broken one.
//! Needs `npm ci --prefix integrations/backstage` (the README's test
//! command runs it) and the PostgreSQL on 127.0.0.1:5432.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{POSTGRES, PgDatabase, TestApp, free_port};
use bitbucket_sim::{DatasetConfig, FileKind, FileMix, SimConfig, Simulator};
use serde_json::Value;

const SECRET: &str = "backstage-e2e-s3cret";

fn module_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/backstage");
    assert!(
        dir.join("node_modules/@backstage/plugin-catalog-backend")
            .is_dir(),
        "the module's dependencies are not installed: run `npm ci --prefix integrations/backstage` (the README's test command does)"
    );
    dir
}

/// The simulator and a daemon that has read it once.
async fn simulated_daemon() -> (Simulator, TestApp) {
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
    (sim, app)
}

#[tokio::test]
async fn backstage_mirrors_the_daemon_through_the_change_feed() {
    let dir = module_dir();
    let (sim, app) = simulated_daemon().await;
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

/// The two forms Backstage's providers accept, then a mistake.
const SINGLE: &str = "      baseUrl: {daemon}\n      waitSeconds: 5\n";
const MAP: &str = "      main:\n        baseUrl: {daemon}\n        waitSeconds: 5\n";
const BROKEN: &str = "      main:\n        waitSeconds: 5\n";

#[tokio::test]
async fn the_packed_module_installs_into_a_backend_and_starts_with_either_config_form() {
    let module = module_dir();
    let scratch = tokio::task::spawn_blocking(move || install_packed(&module))
        .await
        .expect("joins");
    let (_sim, app) = simulated_daemon().await;
    let expected: BTreeSet<String> = app
        .entity_refs()
        .await
        .into_iter()
        .filter(|r| !r.starts_with("location:"))
        .collect();
    assert!(!expected.is_empty());

    for (form, providers) in [("single", SINGLE), ("map", MAP)] {
        let mut backend = Backend::start(&scratch, &providers.replace("{daemon}", &app.address));
        let started = Instant::now();
        loop {
            if let Some(served) = backend.entity_refs().await
                && served == expected
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the {form} config form: Backstage did not show the daemon's {} entities within 120 s; its log:\n{}",
                expected.len(),
                backend.log()
            );
            backend.assert_running(form);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!(
            "{form} form: {} entities in Backstage {} ms after start",
            expected.len(),
            started.elapsed().as_millis()
        );
        backend.stop().await;
    }

    // A mistake stops the start-up at once, named by its key.
    let backend = Backend::start(&scratch, BROKEN);
    let started = Instant::now();
    // Backstage logs the module's error, then (the catalog's own start-up
    // done) that its start-up failed.
    let messages = [
        "Invalid config at 'catalog.providers.catalogd.main.baseUrl': missing",
        "Backend startup failed",
    ];
    while !messages.iter().all(|m| backend.log().contains(m)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a config without baseUrl did not fail Backstage's start-up with a message naming the key; its log:\n{}",
            backend.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "broken config: start-up failed after {} ms",
        started.elapsed().as_millis()
    );
    backend.stop().await;
    app.stop().await;
    if let Some(root) = scratch.parent() {
        let _ = fs::remove_dir_all(root);
    }
}

/// `npm pack`, then the README's install into a scratch backend: the
/// module's installed packages are hard-linked in (no registry needed for
/// Backstage itself), and `npm install <tarball>` adds the module as any
/// Backstage adopter would. Returns the scratch backend's directory.
fn install_packed(module: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("backstage-scratch-{}", std::process::id()));
    let (pack, backend) = (root.join("pack"), root.join("backend"));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&pack).expect("creates the pack directory");
    fs::create_dir_all(&backend).expect("creates the scratch backend");
    run(
        Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&pack)
            .current_dir(module),
        "npm pack",
    );
    let tarball = fs::read_dir(&pack)
        .expect("reads the pack directory")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .expect("npm pack wrote a tarball");

    // Hard links when the target directory shares the file system, else a copy.
    let linked = Command::new("cp")
        .arg("-al")
        .arg(module.join("node_modules"))
        .arg(backend.join("node_modules"))
        .status()
        .is_ok_and(|s| s.success());
    if !linked {
        let _ = fs::remove_dir_all(backend.join("node_modules"));
        run(
            Command::new("cp")
                .arg("-a")
                .arg(module.join("node_modules"))
                .arg(backend.join("node_modules")),
            "copying the installed packages",
        );
    }
    for file in ["package-lock.json", ".npmrc"] {
        fs::copy(module.join(file), backend.join(file)).expect("copies the lock file");
    }
    fs::copy(
        module.join("test/scratch/index.js"),
        backend.join("index.js"),
    )
    .expect("copies the backend");
    // The backend's dependencies: what the lock file already holds.
    let manifest: Value =
        serde_json::from_slice(&fs::read(module.join("package.json")).expect("reads package.json"))
            .expect("package.json is JSON");
    let mut dependencies = manifest["dependencies"]
        .as_object()
        .expect("dependencies")
        .clone();
    dependencies.extend(
        manifest["devDependencies"]
            .as_object()
            .expect("devDependencies")
            .clone(),
    );
    let scratch = serde_json::json!({"name": "scratch-backend", "private": true, "dependencies": dependencies});
    fs::write(backend.join("package.json"), scratch.to_string()).expect("writes package.json");
    run(
        Command::new("npm")
            .args([
                "install",
                "--prefer-offline",
                "--no-audit",
                "--no-fund",
                "--silent",
            ])
            .arg(&tarball)
            .current_dir(&backend),
        "npm install <tarball>",
    );
    assert!(
        backend
            .join("node_modules/@bitbucket-catalogd/backstage-plugin-catalog-backend-module-catalogd/config.d.ts")
            .is_file(),
        "the tarball carries the config schema"
    );
    backend
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The scratch backend started with `catalog.providers.catalogd` set to
/// `providers` (YAML lines under that key), its database on PostgreSQL.
struct Backend {
    child: Child,
    url: String,
    log: PathBuf,
    /// Taken by [`Backend::stop`], which drops it.
    database: Option<PgDatabase>,
    http: reqwest::Client,
}

impl Backend {
    fn start(dir: &Path, providers: &str) -> Self {
        let port = free_port();
        let database = PgDatabase::fresh();
        let config = format!(
            "backend:\n  baseUrl: http://127.0.0.1:{port}\n  listen: {{port: {port}, host: 127.0.0.1}}\n  database:\n    client: pg\n    prefix: {prefix}_\n    connection: {{host: 127.0.0.1, port: 5432, user: postgres}}\n  auth: {{dangerouslyDisableDefaultAuthPolicy: true}}\ncatalog:\n  providers:\n    catalogd:\n{providers}",
            prefix = database.name,
        );
        let file = dir.join(format!("app-config.{port}.yaml"));
        fs::write(&file, config).expect("writes app-config");
        let log = dir.join(format!("backend.{port}.log"));
        let out = fs::File::create(&log).expect("creates the log");
        let child = Command::new("node")
            .arg("index.js")
            .arg("--config")
            .arg(&file)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("node starts");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            // Backstage names the catalog's database `<prefix>catalog`.
            database: Some(PgDatabase {
                url: format!("{POSTGRES}/{}_catalog", database.name),
                name: format!("{}_catalog", database.name),
            }),
            http: reqwest::Client::new(),
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self, form: &str) {
        if let Some(status) = self.child.try_wait().expect("waits") {
            panic!(
                "the {form} form: Backstage exited ({status}):\n{}",
                self.log()
            );
        }
    }

    /// What Backstage's catalog serves (Locations aside), once it answers.
    async fn entity_refs(&self) -> Option<BTreeSet<String>> {
        let response = self
            .http
            .get(format!("{}/api/catalog/entities", self.url))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let entities: Vec<Value> = response.json().await.ok()?;
        Some(
            entities
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}/{}",
                        e["kind"].as_str().unwrap_or_default(),
                        e["metadata"]["namespace"].as_str().unwrap_or("default"),
                        e["metadata"]["name"].as_str().unwrap_or_default()
                    )
                    .to_lowercase()
                })
                .filter(|r| !r.starts_with("location:"))
                .collect(),
        )
    }

    async fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(database) = self.database.take() {
            database.drop_database().await;
        }
    }
}

/// A failed assertion leaves no Backstage running.
impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
