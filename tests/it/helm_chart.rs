//! The Helm chart in `deploy/helm/bitbucket-catalogd`, rendered and linted
//! by Helm's own engine (`deploy/helm/render.py`, helm-python-sdk) with its
//! default values and each documented variant (`ci/*-values.yaml`); every
//! manifest passes `kubernetes-validate --strict`, runs under the
//! restricted Pod Security profile, mounts a config the daemon loads, and
//! references its Secret instead of shipping one. `deploy/kubernetes/` is
//! the chart rendered, and the chart's README lists every value. Needs
//! `bash .ci/test-deps` (the venv with helm-python-sdk and kubernetes-validate).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::deploy::{image, load_with_secret, served_config};
use bitbucket_catalogd::{DatabaseClient, Frequency};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("deploy/helm/bitbucket-catalogd")
}

/// The venv `.ci/test-deps` installs (same path rules).
fn venv_bin(program: &str) -> PathBuf {
    let venv = std::env::var_os("CATALOGD_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
                });
            cache.join("bitbucket-catalogd/venv")
        });
    let bin = venv.join("bin").join(program);
    assert!(
        bin.is_file(),
        "{} is missing: run `bash .ci/test-deps` (it installs helm-python-sdk and kubernetes-validate)",
        bin.display()
    );
    bin
}

/// `render.py` with these values files: the manifests as one YAML stream.
fn render(values: &[PathBuf]) -> String {
    let mut command = Command::new(venv_bin("python"));
    command
        .arg(root().join("deploy/helm/render.py"))
        .arg(chart());
    for file in values {
        command.arg("-f").arg(file);
    }
    let output = command.output().expect("python runs");
    assert!(
        output.status.success(),
        "the chart does not lint or render with {values:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn validate_strictly(manifests: &str, variant: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{variant}.yaml"));
    std::fs::write(&file, manifests).unwrap();
    let output = Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate runs");
    assert!(
        output.status.success(),
        "{variant}: kubernetes-validate --strict rejects the rendered chart:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The documented variants: the defaults (SQLite) and each `ci/*-values.yaml`.
fn variants() -> Vec<(String, Vec<PathBuf>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .expect("ci/ holds the variants")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    std::iter::once(("default".to_owned(), Vec::new()))
        .chain(files.into_iter().map(|f| {
            let name = f.file_stem().unwrap().to_string_lossy().into_owned();
            (name, vec![f])
        }))
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The config the Deployment serves, loaded by the daemon with its `$file`s all under the Secret's mount.
fn assert_config_loads(docs: &[Value], variant: &str) -> bitbucket_catalogd::Config {
    let deployment = of_kind(docs, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let served = served_config(&container["args"]);
    let config_map = of_kind(docs, "ConfigMap")[0];
    let file_name = served.file_name().unwrap().to_str().unwrap();
    let text = config_map["data"][file_name]
        .as_str()
        .unwrap_or_else(|| panic!("{variant}: the ConfigMap holds {file_name}"))
        .to_owned();
    let secret_mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "secrets")
        .and_then(|m| m["mountPath"].as_str())
        .expect("the Secret is mounted")
        .to_owned();
    load_with_secret(&text, &secret_mount).0
}

/// `ci/tuned-values.yaml`: each tuning key set in `config` is read by the
/// daemon as written (the load already fails on any unknown key).
fn assert_tuning_reaches_the_daemon(config: &bitbucket_catalogd::Config) {
    let server = &config.integrations.bitbucket_server[0].http;
    assert_eq!(server.budget.share, Some(0.5), "rateLimit.share");
    assert_eq!(server.max_concurrent_requests, 16, "maxConcurrentRequests");
    let cloud = &config.integrations.bitbucket_cloud[0].http;
    assert_eq!(cloud.budget.per_hour, Some(400), "rateLimit.perHour");
    let main = config.provider("main").expect("the provider main");
    let sweep = main.listing_schedule.as_ref().expect("listingSchedule");
    assert_eq!(
        sweep.frequency,
        Frequency::Every(Duration::from_secs(15 * 60))
    );
    assert_eq!(sweep.timeout, Duration::from_secs(5 * 60));
    assert!(main.shared.pull_request_checks, "pullRequests.checks");
    assert_eq!(config.backend.query_budget.cpu, Duration::from_secs(1));
    assert_eq!(
        config.backend.query_budget.wall_clock,
        Duration::from_secs(5)
    );
    assert_eq!(config.backend.trusted_proxies.len(), 1, "trustedProxies");
}

#[test]
fn every_variant_renders_lints_and_passes_strict_validation() {
    let alerts: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join("deploy/prometheus/alerts.yaml")).unwrap(),
    )
    .unwrap();
    let readme = std::fs::read_to_string(chart().join("README.md")).expect("the chart's README");
    let mut seen = BTreeSet::new();
    for (variant, values) in variants() {
        let manifests = render(&values);
        validate_strictly(&manifests, &variant);
        assert!(
            !manifests.contains("change-me"),
            "{variant}: no placeholder secrets"
        );
        let docs: Vec<Value> = serde_saphyr::from_multiple(&manifests).expect("YAML");
        assert!(
            of_kind(&docs, "Secret").is_empty(),
            "{variant}: secrets are referenced, never created"
        );
        for doc in &docs {
            seen.insert(doc["kind"].as_str().unwrap().to_owned());
        }
        if variant != "default" {
            assert!(
                readme.contains(&format!("ci/{variant}.yaml")),
                "the chart's README documents the variant ci/{variant}.yaml"
            );
        }

        // Restricted Pod Security.
        let deployment = of_kind(&docs, "Deployment")[0];
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{variant}");
        assert_eq!(pod["securityContext"]["runAsUser"], 10001, "{variant}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{variant}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{variant}");
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(container["image"], image().as_str(), "{variant}");
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            assert_eq!(
                container[probe]["httpGet"]["port"], "http",
                "{variant} {probe}"
            );
        }
        assert!(container["resources"]["requests"].is_object(), "{variant}");

        let config = assert_config_loads(&docs, &variant);
        if variant == "tuned-values" {
            assert_tuning_reaches_the_daemon(&config);
        }
        assert_eq!(
            container["ports"][0]["containerPort"],
            u64::from(config.backend.listen.port)
        );
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
        match config.backend.database.client {
            DatabaseClient::Pg => {
                assert!(replicas >= 2, "{variant}: replicas on PostgreSQL");
                assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
                let pdb = of_kind(&docs, "PodDisruptionBudget");
                assert_eq!(pdb.len(), 1, "{variant}: a PodDisruptionBudget");
                assert_eq!(
                    pdb[0]["spec"]["selector"]["matchLabels"],
                    deployment["spec"]["selector"]["matchLabels"]
                );
            }
            _ => {
                assert_eq!(replicas, 1, "{variant}: one replica on SQLite");
                assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
                let claim = of_kind(&docs, "PersistentVolumeClaim");
                assert_eq!(claim.len(), 1, "{variant}: the store's claim");
                let data = pod["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["name"] == "data")
                    .expect("a data volume");
                assert_eq!(
                    data["persistentVolumeClaim"]["claimName"],
                    claim[0]["metadata"]["name"]
                );
                assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
            }
        }
        for rule in of_kind(&docs, "PrometheusRule") {
            assert_eq!(
                rule["spec"]["groups"], alerts["groups"],
                "the shipped alerts"
            );
        }
        for monitor in of_kind(&docs, "ServiceMonitor") {
            assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
            assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
        }
        for ingress in of_kind(&docs, "Ingress") {
            let paths = ingress["spec"]["rules"][0]["http"]["paths"]
                .as_array()
                .unwrap();
            assert!(!paths.is_empty());
            for path in paths {
                assert!(
                    path["path"]
                        .as_str()
                        .unwrap()
                        .starts_with("/api/events/http"),
                    "{variant}: the Ingress exposes only the webhook path"
                );
                assert_eq!(path["backend"]["service"]["port"]["name"], "http");
            }
        }
    }
    for kind in [
        "ConfigMap",
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "Ingress",
    ] {
        assert!(
            seen.contains(kind),
            "some documented variant renders a {kind}"
        );
    }
}

#[test]
fn deploy_kubernetes_is_the_chart_rendered() {
    let dir = root().join("deploy/kubernetes");
    let rendered = render(&[dir.join("values.yaml")]);
    validate_strictly(&rendered, "deploy-kubernetes");
    let file = std::fs::read_to_string(dir.join("bitbucket-catalogd.yaml")).unwrap();
    let (header, body) = file.split_at(file.find("---").expect("manifests"));
    assert!(
        header.lines().all(|l| l.starts_with('#')),
        "only comments before the rendered manifests"
    );
    assert_eq!(
        body, rendered,
        "deploy/kubernetes/bitbucket-catalogd.yaml has drifted from the chart: regenerate it with\n  deploy/helm/render.py deploy/helm/bitbucket-catalogd -f deploy/kubernetes/values.yaml"
    );
}

#[test]
fn the_chart_ships_the_alerts_and_its_readme_lists_every_value() {
    let chart = chart();
    assert_eq!(
        std::fs::read_to_string(chart.join("files/alerts.yaml")).unwrap(),
        std::fs::read_to_string(root().join("deploy/prometheus/alerts.yaml")).unwrap(),
        "files/alerts.yaml is a copy of deploy/prometheus/alerts.yaml"
    );
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap())
            .unwrap();
    let mut keys = Vec::new();
    leaf_keys(&values, "", &mut keys);
    let readme = std::fs::read_to_string(chart.join("README.md")).unwrap();
    let table = &readme[readme.find("## Values").expect("a Values section")..];
    let documented: BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_owned()))
        .collect();
    let keys: BTreeSet<String> = keys.into_iter().collect();
    assert_eq!(
        documented, keys,
        "the chart README's values table and values.yaml list the same keys"
    );
    // values.schema.json knows every top-level value.
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart.join("values.schema.json")).unwrap())
            .unwrap();
    for key in values.as_object().unwrap().keys() {
        assert!(
            schema["properties"].get(key).is_some(),
            "values.schema.json has {key}"
        );
    }
}

/// Dotted paths of the values a user sets (`config`, `resources` and lists are one value each).
fn leaf_keys(value: &Value, prefix: &str, into: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() && !["config", "resources"].contains(&prefix) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_keys(child, &path, into);
            }
        }
        _ => into.push(prefix.to_owned()),
    }
}
