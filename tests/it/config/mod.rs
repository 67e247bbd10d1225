//! Integration tests for the configuration loader: Backstage `app-config`
//! semantics (`${VAR}`, `$env`, `$file`, layering, `APP_CONFIG_*`), validation
//! of our own sections, warnings and secret redaction.
//!
//! Every test writes its YAML into a fresh temp dir and passes its own
//! environment; the process environment is never touched.

use std::path::PathBuf;
use std::time::Duration;

use bitbucket_catalogd::Secret;
use bitbucket_catalogd::{Auth, Integrations};
use bitbucket_catalogd::{
    Config, ConfigError, DatabaseClient, Environment, Frequency, ListenConfig, Loaded, Origin,
    Schedule, ServerProviderConfig,
};
use serde_json::{Value, json};
use tempfile::TempDir;

mod backend;
mod catalog;
mod cloud_providers;
mod integrations;
mod layering;
mod locations;
mod reading;
mod schedules;
mod secrets;
mod server_providers;
mod unknown_keys;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Strips the common indentation so YAML can be written indented in the source.
fn yaml(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = text
        .lines()
        .map(|l| {
            if l.trim().is_empty() {
                ""
            } else {
                &l[indent..]
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// A temp dir holding config files (and files they include).
struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    /// Writes `text` verbatim to `rel` (creating parent dirs).
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create dirs");
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// Writes dedented YAML to `rel`.
    fn config(&self, rel: &str, text: &str) -> PathBuf {
        self.write(rel, &yaml(text))
    }
}

/// Environment variables for one table row.
type Vars = &'static [(&'static str, &'static str)];

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs.iter().copied())
}

/// Loads one (dedented) YAML document with `pairs` as the whole environment.
fn load_yaml(
    text: &str,
    pairs: &[(&str, &str)],
) -> (Workspace, PathBuf, Result<Loaded, ConfigError>) {
    let ws = Workspace::new();
    let file = ws.config("app-config.yaml", text);
    let result = Config::load(std::slice::from_ref(&file), &env(pairs));
    (ws, file, result)
}

#[track_caller]
fn load_ok(text: &str, pairs: &[(&str, &str)]) -> (Workspace, PathBuf, Loaded) {
    let (ws, file, result) = load_yaml(text, pairs);
    match result {
        Ok(loaded) => (ws, file, loaded),
        Err(err) => panic!("expected the config to load, got: {err}\n--- config ---\n{text}"),
    }
}

#[track_caller]
fn load_err(text: &str, pairs: &[(&str, &str)]) -> (Workspace, PathBuf, ConfigError) {
    let (ws, file, result) = load_yaml(text, pairs);
    match result {
        Ok(loaded) => panic!(
            "expected an error, but the config loaded: {:?}\n--- config ---\n{text}",
            loaded.config.providers
        ),
        Err(err) => (ws, file, err),
    }
}

/// Asserts that `err` is an `Invalid` error at exactly `key`, blamed on
/// `origin`, and that its message starts by naming the origin and the key.
/// Returns the bare message.
#[track_caller]
fn assert_invalid(context: &str, err: &ConfigError, origin: &Origin, key: &str) -> String {
    let ConfigError::Invalid {
        origin: got_origin,
        key: got_key,
        message,
    } = err
    else {
        panic!("[{context}] expected an Invalid error at {key}, got: {err:?}");
    };
    assert_eq!(got_key, key, "[{context}] wrong key in: {err}");
    assert_eq!(
        got_origin.as_ref(),
        Some(origin),
        "[{context}] wrong origin in: {err}"
    );
    let named = match origin {
        Origin::File(path) => path.display().to_string(),
        Origin::EnvOverride(var) => format!("environment variable {var}"),
    };
    assert_eq!(
        err.to_string(),
        format!("{named}: {key}: {message}"),
        "[{context}]"
    );
    message.clone()
}

#[track_caller]
fn assert_message_contains(context: &str, message: &str, fragment: &str) {
    assert!(
        message.contains(fragment),
        "[{context}] message {message:?} should contain {fragment:?}"
    );
}

fn bearer(token: &str) -> Auth {
    Auth::Bearer {
        token: Secret::new(token),
    }
}

fn basic(username: &str, password: &str) -> Auth {
    Auth::Basic {
        username: username.into(),
        password: Secret::new(password),
    }
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

fn listen(host: &str, port: u16) -> ListenConfig {
    ListenConfig {
        host: host.into(),
        port,
        ..ListenConfig::default()
    }
}

#[track_caller]
fn assert_only_default_cloud(context: &str, integrations: &Integrations) {
    assert_eq!(
        integrations.bitbucket_cloud.len(),
        1,
        "[{context}] {integrations:?}"
    );
    let cloud = &integrations.bitbucket_cloud[0];
    assert_eq!(cloud.host, "bitbucket.org", "[{context}]");
    assert_eq!(
        cloud.api_base_url.as_str(),
        "https://api.bitbucket.org/2.0",
        "[{context}]"
    );
    assert_eq!(cloud.auth, Auth::Anonymous, "[{context}]");
}

/// The value at a dotted path of the merged tree (`Value::Null` if absent).
fn at<'a>(tree: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(tree, |node, part| match part.parse::<usize>() {
            Ok(index) => &node[index],
            Err(_) => &node[part],
        })
}

const SERVER_HOST: &str = "bitbucket.example.com";

/// One Bitbucket Server integration for `bitbucket.example.com`.
const ONE_SERVER: &str =
    "integrations: {bitbucketServer: [{host: bitbucket.example.com, token: server-token-value}]}\n";

/// The key of the `main` provider in map form.
const MAIN: &str = "catalog.providers.bitbucketServer.main";

/// [`ONE_SERVER`] plus a `main` provider for it with extra flow-mapping
/// `fields` (e.g. `catalogPath: x.yaml, concurrency: 4`).
fn with_provider(fields: &str) -> String {
    let fields = if fields.is_empty() {
        String::new()
    } else {
        format!(", {fields}")
    };
    format!(
        "{ONE_SERVER}catalog:\n  providers:\n    bitbucketServer:\n      main: {{host: bitbucket.example.com{fields}}}\n"
    )
}

#[track_caller]
fn main_provider(loaded: &Loaded) -> &ServerProviderConfig {
    assert_eq!(
        loaded.config.providers.len(),
        1,
        "{:?}",
        loaded.config.providers
    );
    loaded.config.provider("main").expect("provider `main`")
}
