//! What benchmarks share: the daemon as `serve` in a child process, on a
//! free loopback port, with a SQLite store in a temporary directory, and
//! what it serves; `serve` timed to readiness on a given store (`serve`);
//! `run-once` timed (`run_once`); a store seeded as a provider run leaves
//! it; by-name load under `wrk`; the bench's arguments (`args`); the
//! estate push and pull-request benches change (`pushes`), and their
//! latencies (`latencies`); the simulator's request counts by kind
//! (`requests`); and the simulator set-ups and co-tenant the
//! integration tests use too.
#![allow(dead_code)] // each bench uses a subset

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bitbucket_catalogd::{Batch, CatalogStore};
use bitbucket_catalogd::{Catalog, UnitEntities};

pub mod args;
pub mod latencies;
pub mod pushes;
pub mod requests;
pub mod run_once;
pub mod serve;

#[path = "../../tests/it/support/co_tenant.rs"]
pub mod co_tenant;
#[path = "../../tests/it/support/sim.rs"]
pub mod sim;

pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `serve` with `config` (the YAML after `backend`: integrations
    /// and catalog) under a `backend` of its own.
    pub fn spawn(config: &str) -> Self {
        Self::spawn_with(config, |_| {})
    }

    /// The same, with `adjust` setting the command's environment or
    /// output before it starts (after the defaults: quiet, logs at warn).
    pub fn spawn_with(config: &str, adjust: impl FnOnce(&mut Command)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("app-config.yaml");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        std::fs::write(
            &file,
            format!(
                "backend:\n  listen: {{ host: 127.0.0.1, port: {port} }}\n  database:\n    connection: {db}\n{config}",
                db = dir.path().join("catalog.sqlite").display(),
            ),
        )
        .expect("config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"));
        command
            .args(["serve", "--config"])
            .arg(&file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        adjust(&mut command);
        let child = command.spawn().expect("serve starts");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Daemon {
    /// The daemon's process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Provider `id`'s status; `None` while the daemon does not answer it.
    pub async fn provider(&self, http: &reqwest::Client, id: &str) -> Option<serde_json::Value> {
        let response = http
            .get(format!("{}/api/catalog/providers/{id}", self.base))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// Waits until provider `id` has finished a run (the start-up run).
    pub async fn first_run(&self, http: &reqwest::Client, id: &str) {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if self
                .provider(http, id)
                .await
                .is_some_and(|s| !s["lastRun"].is_null() && s["inProgress"] == false)
            {
                return;
            }
        }
    }

    /// Asks provider `id` for a run (which must be accepted): the
    /// `lastRun.startedAt` before it, to tell the new run from the last.
    pub async fn refresh(&self, http: &reqwest::Client, id: &str) -> serde_json::Value {
        let before =
            self.provider(http, id).await.expect("provider status")["lastRun"]["startedAt"].clone();
        let response = http
            .post(format!("{}/api/catalog/providers/{id}/refresh", self.base))
            .send()
            .await
            .expect("refresh reaches the daemon");
        assert_eq!(response.status(), 202, "refresh accepted");
        before
    }

    /// `GET /api/catalog/entities` with `fields` (e.g. `kind,metadata.name`).
    pub async fn entities(&self, http: &reqwest::Client, fields: &str) -> serde_json::Value {
        http.get(format!(
            "{}/api/catalog/entities?fields={fields}",
            self.base
        ))
        .send()
        .await
        .expect("entities")
        .json()
        .await
        .expect("entities JSON")
    }

    /// The served entities as `kind:namespace/name`, lower case.
    pub async fn served_refs(&self, http: &reqwest::Client) -> BTreeSet<String> {
        entity_refs(
            &self
                .entities(http, "kind,metadata.name,metadata.namespace")
                .await,
        )
    }
}

/// A list of entities as `kind:namespace/name`, lower case (what the
/// simulator's data set expects); empty for anything but a list.
pub fn entity_refs(entities: &serde_json::Value) -> BTreeSet<String> {
    entities
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| {
                    format!(
                        "{}:{}/{}",
                        e["kind"].as_str().unwrap_or_default(),
                        e["metadata"]["namespace"].as_str().unwrap_or_default(),
                        e["metadata"]["name"].as_str().unwrap_or_default()
                    )
                    .to_lowercase()
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `/proc/<pid>/status` field in KiB (`"VmRSS:"` now, `"VmHWM:"` the
/// peak); 0 when the process is gone or the field missing.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The same field in MiB, for reports.
pub fn status_mib(pid: u32, field: &str) -> f64 {
    status_kib(pid, field) as f64 / 1024.0
}

/// Stores `units` as a run of provider `bench` would.
pub async fn seed_units(store: &dyn CatalogStore, units: Vec<UnitEntities>) {
    let applied = Catalog::new().prepare("bench", units);
    store
        .apply(Batch {
            source: "bench",
            changes: &applied.changes,
            repositories: &[],
            forgotten: &[],
            withheld: &[],
        })
        .await
        .expect("seed");
}

/// `wrk -t1 -c{connections} -d10s --latency` on by-name lookups of
/// `component:default/service-NNNNNN`, where `pick` is the Lua that sets `i`
/// from `counter`; wrk's report, or `None` without wrk.
pub fn wrk_by_name(address: &str, dir: &Path, connections: u32, pick: &str) -> Option<String> {
    let script = dir.join("by-name.lua");
    std::fs::write(
        &script,
        format!("counter = 0\nrequest = function()\n  counter = counter + 1\n{pick}  return wrk.format('GET', string.format('/api/catalog/entities/by-name/component/default/service-%06d', i))\nend\n"),
    )
    .ok()?;
    let out = Command::new("wrk")
        .args([
            "-t1",
            "-c",
            &connections.to_string(),
            "-d10s",
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(address)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
