//! The deployment examples in `deploy/` match the daemon: the image is this
//! version's, the command is one the CLI accepts, the config they mount
//! loads without a warning (every `$file` is under the mounted Secret,
//! every `${VAR}` is set by the Compose file), the ports are the port the
//! config listens on, and the probe paths are answered. The Dockerfile's
//! dependency layer stubs every target the manifests declare.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::TestApp;
use bitbucket_catalogd::{Cli, Command};
use bitbucket_catalogd::{Config, DatabaseClient, Environment};
use clap::Parser;
use serde_json::Value;

pub(super) fn image() -> String {
    format!("bitbucket-catalogd:{}", env!("CARGO_PKG_VERSION"))
}

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

pub(super) fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy(path)).expect("example exists");
    serde_saphyr::from_multiple(&text).expect("valid YAML")
}

/// The config file `args` (after the binary's name) serve.
pub(super) fn served_config(args: &Value) -> PathBuf {
    let args: Vec<String> = args
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect();
    let cli = Cli::try_parse_from(std::iter::once("bitbucket-catalogd".to_owned()).chain(args))
        .expect("the CLI accepts the example's command");
    assert!(matches!(cli.command, Command::Serve));
    assert_eq!(cli.config.len(), 1);
    cli.config[0].clone()
}

/// Every `{$file: path}` in a config tree.
fn file_includes(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(path)) = map.get("$file") {
                into.push(path.clone());
            }
            map.values().for_each(|v| file_includes(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| file_includes(v, into)),
        _ => {}
    }
}

fn load(text: &str, env: &[(&str, &str)]) -> Config {
    let (_dir, file) = crate::support::write_config(text);
    let loaded = Config::load(&[file], &Environment::from_pairs(env.iter().copied()))
        .expect("the example's config loads");
    assert_eq!(loaded.warnings, Vec::<String>::new());
    loaded.config
}

/// What a test Secret holds under `key` (a token the daemon accepts).
fn secret_value(key: &str) -> String {
    format!("{key}-0123456789abcdef0123456789")
}

/// Loads a config whose `$file`s must all be keys of the Secret mounted at
/// `secret_dir`, each holding [`secret_value`]; returns it and how many
/// `$file`s it has.
pub(super) fn load_with_secret(text: &str, secret_dir: &str) -> (Config, usize) {
    let tree: Value = serde_saphyr::from_str(text).expect("config YAML");
    let mut includes = Vec::new();
    file_includes(&tree, &mut includes);
    let mounted = tempfile::tempdir().unwrap();
    for include in &includes {
        let key = include
            .strip_prefix(&format!("{secret_dir}/"))
            .unwrap_or_else(|| panic!("{include} is not under the Secret's mount {secret_dir}"));
        std::fs::write(mounted.path().join(key), secret_value(key)).unwrap();
    }
    let text = text.replace(secret_dir, &mounted.path().display().to_string());
    (load(&text, &[]), includes.len())
}

async fn assert_answered(paths: &[&str]) {
    let app = TestApp::spawn("").await;
    for path in paths {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_kubernetes_example_matches_the_daemon() {
    let docs = documents("kubernetes/bitbucket-catalogd.yaml");
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("a {k}"))
            .clone()
    };
    let (config_map, deployment, service) =
        (kind("ConfigMap"), kind("Deployment"), kind("Service"));
    // The Secret is the operator's (`kubectl create secret`): named, never shipped with placeholders.
    assert!(docs.iter().all(|d| d["kind"] != "Secret"));
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], image().as_str());
    assert!(deployment["spec"]["replicas"].as_u64().unwrap_or(0) >= 2);

    // Where each volume is mounted.
    let volumes: BTreeMap<String, Value> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v.clone()))
        .collect();
    let mount_of = |volume_kind: &str, name: &Value| -> String {
        let volume = volumes
            .values()
            .find(|v| match volume_kind {
                "configMap" => v["configMap"]["name"] == *name,
                _ => v["secret"]["secretName"] == *name,
            })
            .expect("the volume is declared");
        container["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["name"] == volume["name"])
            .and_then(|m| m["mountPath"].as_str())
            .expect("the volume is mounted")
            .to_owned()
    };

    // The config the command serves is the ConfigMap's.
    let config_path = served_config(&container["args"]);
    let config_dir = mount_of("configMap", &config_map["metadata"]["name"]);
    assert_eq!(config_path.parent(), Some(Path::new(&config_dir)));
    let file_name = config_path.file_name().unwrap().to_str().unwrap();
    let text = config_map["data"][file_name]
        .as_str()
        .expect("the ConfigMap holds the served file")
        .to_owned();

    // Every $file is a key of the Secret, where it is mounted.
    let secret_name = volumes
        .values()
        .find_map(|v| v["secret"]["secretName"].as_str())
        .expect("a Secret is mounted")
        .to_owned();
    let secret_dir = mount_of("secret", &Value::from(secret_name));
    let (config, includes) = load_with_secret(&text, &secret_dir);
    assert!(includes >= 3, "{includes} $file includes");
    assert_eq!(config.backend.database.client, DatabaseClient::Pg);
    let postgres = config.backend.database.postgres.as_ref().expect("pg");
    assert_eq!(
        postgres.password.as_ref().map(|p| p.expose()),
        Some(secret_value("postgres-password").as_str())
    );

    // One port: the one the config listens on, probed and served.
    let port = &container["ports"][0];
    assert_eq!(port["containerPort"], u64::from(config.backend.listen.port));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], port["name"]);
    }
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port["name"]);
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    assert_answered(&[
        container["readinessProbe"]["httpGet"]["path"]
            .as_str()
            .unwrap(),
        container["livenessProbe"]["httpGet"]["path"]
            .as_str()
            .unwrap(),
    ])
    .await;
}

#[tokio::test]
async fn the_compose_example_matches_the_daemon() {
    let compose = documents("compose/compose.yaml").remove(0);
    let services = compose["services"].as_object().expect("services");
    let postgres = &services["postgres"];
    let replicas: Vec<&Value> = services
        .iter()
        .filter(|(name, _)| name.starts_with("catalogd"))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(replicas.len(), 2);
    let mut host_ports = Vec::new();
    for replica in replicas {
        assert_eq!(replica["image"], image().as_str());
        let config_path = served_config(&replica["command"]);
        let mount = replica["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .filter_map(Value::as_str)
            .find(|v| v.contains(&*config_path.to_string_lossy()))
            .expect("the served config is mounted");
        let local = mount.split(':').next().unwrap();
        let text = std::fs::read_to_string(deploy("compose").join(local))
            .expect("the mounted config exists");
        let env: Vec<(String, String)> = replica["environment"]
            .as_object()
            .expect("environment")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let config = load(&text, &env);
        let connection = config.backend.database.postgres.as_ref().expect("pg");
        assert_eq!(connection.host, "postgres");
        assert_eq!(
            postgres["environment"]["POSTGRES_USER"],
            connection.user.as_str()
        );
        assert_eq!(
            postgres["environment"]["POSTGRES_DB"],
            connection.database.as_str()
        );
        assert_eq!(
            postgres["environment"]["POSTGRES_PASSWORD"].as_str(),
            connection.password.as_ref().map(|p| p.expose())
        );
        assert_eq!(
            replica["depends_on"]["postgres"]["condition"],
            "service_healthy"
        );
        let ports = replica["ports"][0].as_str().expect("a port mapping");
        let (host, container) = ports.split_once(':').expect("host:container");
        assert_eq!(container, config.backend.listen.port.to_string());
        host_ports.push(host.to_owned());
    }
    host_ports.dedup();
    assert_eq!(host_ports.len(), 2, "each replica on a port of its own");
}

/// The Dockerfile's build stage as instructions, continuation lines joined.
fn build_stage() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
        .expect("Dockerfile exists");
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .skip(1)
        .take_while(|l| !l.starts_with("FROM "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_dockerfile_stubs_every_target_cargo_declares() {
    // Its dependency layer, replayed: the COPYs before the stubs, the stubs,
    // then what `cargo build` first does with the manifests (find every
    // target of every workspace member).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stage = build_stage();
    let stubs = stage
        .iter()
        .position(|i| i.starts_with("RUN ") && i.contains("mkdir -p src"))
        .expect("a RUN that stubs the targets");
    let context = tempfile::tempdir().unwrap();
    for copy in stage[..stubs]
        .iter()
        .filter_map(|i| i.strip_prefix("COPY "))
    {
        let parts: Vec<&str> = copy.split_whitespace().collect();
        let (destination, sources) = parts.split_last().expect("COPY src… dest");
        for source in sources {
            let target = if destination.ends_with('/') {
                context.path().join(destination).join(source)
            } else {
                context.path().join(destination)
            };
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(root.join(source), &target)
                .unwrap_or_else(|e| panic!("COPY {source}: {e}"));
        }
    }
    let run = stage[stubs].strip_prefix("RUN ").unwrap();
    let status = std::process::Command::new("sh")
        .args(["-ec", run])
        .current_dir(context.path())
        .status()
        .expect("sh runs");
    assert!(status.success(), "the stub step fails: {run}");
    let fetch = std::process::Command::new(env!("CARGO"))
        .args(["fetch", "--offline", "--locked"])
        .current_dir(context.path())
        .output()
        .expect("cargo runs");
    assert!(
        fetch.status.success(),
        "cargo cannot read the stubbed workspace (a target Cargo.toml declares has no stub in the Dockerfile):\n{}",
        String::from_utf8_lossy(&fetch.stderr)
    );

    // Then the real sources replace every stubbed directory.
    for directory in ["src", "benches", "sim"] {
        assert!(
            stage
                .iter()
                .any(|i| i.starts_with(&format!("COPY {directory} "))),
            "the Dockerfile copies {directory}"
        );
    }
    // The image is the one the examples run.
    assert!(
        std::fs::read_to_string(root.join("Dockerfile"))
            .unwrap()
            .contains(&format!("docker build -t {} .", image())),
        "the Dockerfile's build line tags {}",
        image()
    );
}
