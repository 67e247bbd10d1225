//! Black-box: the binary's commands, exit codes and output streams.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    BIN, FakeServer, free_port, run_binary, run_on_config, server_config, text, write_config,
};
use serde_json::Value;

async fn fake_with_two_services() -> FakeServer {
    FakeServer::builder()
        .component("PLAT", "a")
        .component("PLAT", "b")
        .catalog("PLAT", "broken", "kind: [")
        .start()
        .await
}

#[tokio::test]
async fn run_once_prints_entities_as_json_and_a_summary_on_stderr() {
    let fake = fake_with_two_services().await;
    let (_dir, file) = write_config(&server_config(&fake, "", ""));
    let out = run_on_config(&["run-once"], &file).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let entities: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON array");
    let names: Vec<&str> = entities
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("provider main: ok"), "{stderr}");
    assert!(stderr.contains("3 repos seen"), "{stderr}");
    assert!(
        stderr.contains("3 catalog files, 2 entities, 1 problems"),
        "{stderr}"
    );
    assert!(stderr.contains("5 requests"), "{stderr}");
    assert!(
        stderr.contains("/repos/broken/browse/catalog-info.yaml"),
        "{stderr}"
    );
}

#[tokio::test]
async fn run_once_prints_multi_document_yaml() {
    let fake = fake_with_two_services().await;
    let (_dir, file) = write_config(&server_config(&fake, "", ""));
    let out = run_binary(
        vec![
            "run-once".into(),
            "-c".into(),
            file.display().to_string(),
            "--format".into(),
            "yaml".into(),
            "--provider".into(),
            "main".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text(&out.stdout)).expect("multi-document YAML");
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
}

#[tokio::test]
async fn run_once_exits_1_when_a_provider_run_fails() {
    let fake = FakeServer::start().await; // answers 404 to the project listing
    let (_dir, file) = write_config(&server_config(&fake, "", ""));
    let out = run_on_config(&["run-once"], &file).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("provider main: FAILED"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).trim(), "[]");
}

#[tokio::test]
async fn run_once_with_an_unknown_provider_is_a_config_error() {
    let fake = FakeServer::start().await;
    let (_dir, file) = write_config(&server_config(&fake, "", ""));
    let out = run_binary(
        vec![
            "run-once".into(),
            "--config".into(),
            file.display().to_string(),
            "--provider".into(),
            "nope".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no provider 'nope'") && stderr.contains("known: main"),
        "{stderr}"
    );
}

#[tokio::test]
async fn config_check_redacts_secrets_and_explains_mistakes() {
    let fake = FakeServer::start().await;
    let (_dir, file) = write_config(&server_config(&fake, "      token: ${BB_TOKEN}\n", ""));
    let out = run_binary(
        vec![
            "config".into(),
            "check".into(),
            "--config".into(),
            file.display().to_string(),
        ],
        vec![("BB_TOKEN", "super-secret-value".into())],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("token: <redacted>"), "{stdout}");
    assert!(
        !stdout.contains("super-secret-value") && !text(&out.stderr).contains("super-secret-value")
    );

    let (_dir, bad) = write_config(&server_config(
        &fake,
        "",
        "        filters:\n          repoSlug: '[unclosed'\n",
    ));
    let out = run_on_config(&["config", "check"], &bad).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&bad.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("catalog.providers.bitbucketServer.main.filters.repoSlug"),
        "{stderr}"
    );
    assert!(stderr.contains("invalid regular expression"), "{stderr}");

    let out = run_on_config(
        &["config", "check"],
        Path::new("/nonexistent/app-config.yaml"),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/app-config.yaml"));
}

#[tokio::test]
async fn the_shipped_example_config_is_valid() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/app-config.yaml");
    let out = run_on_config(&["config", "check"], Path::new(config)).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let fake = FakeServer::builder().start().await;
    let (_dir, file) = write_config(&server_config(&fake, "", ""));
    let mut child = Command::new(BIN)
        .args(["serve", "--config", &file.display().to_string()])
        .env("APP_CONFIG_backend_listen_host", "127.0.0.1")
        .env("APP_CONFIG_backend_listen_port", "0")
        .env("APP_CONFIG_backend_database_connection", ":memory:")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    // Wait until it has run discovery once, so it is fully up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.requests_to("/projects").await == 0 {
        assert!(Instant::now() < deadline, "daemon never called Bitbucket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().expect("wait");
        (status, child)
    });
    let (status, mut child) = tokio::time::timeout(Duration::from_secs(10), status)
        .await
        .expect("exits within 10 s")
        .expect("join");
    assert_eq!(status.code(), Some(0));
    // Without backend.auth.externalAccess, the start-up log says writes are closed.
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
    }
    assert!(
        stderr.contains("no backend.auth.externalAccess")
            && stderr.contains("every write endpoint answers 401"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn config_check_suggests_fixes_for_typos_and_strict_turns_warnings_into_exit_2() {
    let fake = FakeServer::start().await;
    let (_dir, file) = write_config(&format!(
        "{}catalg:\n  providers: {{}}\n",
        server_config(
            &fake,
            "      tokn: misspelled-secret-value\n",
            "        frequncy: {minutes: 5}\n"
        )
        .replace("catalog:\n", "catalog:\n  provider: {}\n")
    ));
    let check = |strict: bool| {
        let mut args = vec!["config".to_owned(), "check".to_owned()];
        if strict {
            args.push("--strict".into());
        }
        args.extend(["--config".to_owned(), file.display().to_string()]);
        run_binary(args, vec![])
    };
    let out = check(false).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for expected in [
        "integrations.bitbucketServer[0].tokn: unknown key is ignored; check its spelling (did you mean `token`?)",
        "catalog.providers.bitbucketServer.main.frequncy: unknown key is ignored; check its spelling (did you mean `frequency`?)",
        "catalg: unknown section is ignored (did you mean `catalog`?)",
        "catalog.provider: unknown key is ignored; check its spelling (did you mean `providers`?)",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    // A misspelt secret key is still a secret.
    assert!(stdout.contains("tokn: <redacted>"), "{stdout}");
    assert!(
        !stdout.contains("misspelled-secret-value") && !stderr.contains("misspelled-secret-value")
    );
    // The implicit anonymous bitbucket.org is not something the operator configured.
    assert!(
        stderr.contains("1 Bitbucket Server and 0 Bitbucket Cloud integration(s)"),
        "{stderr}"
    );

    let out = check(true).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("4 warning(s) and --strict"), "{stderr}");

    // Without warnings, --strict passes.
    let (_dir, clean) = write_config(&server_config(&fake, "", ""));
    let out = run_on_config(&["config", "check", "--strict"], &clean).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test]
async fn health_probes_the_port_the_layered_config_listens_on() {
    let fake = FakeServer::builder().start().await;
    let (_dir, file) = write_config(&server_config(&fake, "", ""));
    let port = free_port();
    // As in the README: the port comes from an override, not the file.
    let env = vec![
        ("APP_CONFIG_backend_listen_host", "127.0.0.1".to_owned()),
        ("APP_CONFIG_backend_listen_port", port.to_string()),
        ("APP_CONFIG_backend_database_connection", ":memory:".into()),
    ];
    let health = || {
        run_binary(
            vec![
                "health".into(),
                "--config".into(),
                file.display().to_string(),
            ],
            env.clone(),
        )
    };
    let out = health().await;
    assert_eq!(out.status.code(), Some(1), "nothing listens yet");
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    // The cause, not only reqwest's "error sending request".
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );

    let mut child = Command::new(BIN)
        .args(["serve", "--config", &file.display().to_string()])
        .envs(env.clone())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = health().await;
        if out.status.code() == Some(0) || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ready"));

    // A broken config is unhealthy (1: Docker reserves 2), naming the file.
    let out = run_on_config(&["health"], Path::new("/nonexistent/app-config.yaml")).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/app-config.yaml"));
}

/// `serve` with stderr read line by line as it comes (the child ends when
/// dropped).
struct Served {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    fn start(file: &std::path::Path, env: Vec<(&'static str, String)>) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--config", &file.display().to_string()])
            .env("APP_CONFIG_backend_listen_host", "127.0.0.1")
            .env("APP_CONFIG_backend_listen_port", "0")
            .env("APP_CONFIG_backend_database_connection", ":memory:")
            .env_remove("RUST_LOG")
            .env_remove("LOG_FORMAT")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until `count` lines contain `needle`; returns every line so far.
    async fn wait_for(&mut self, needle: &str, count: usize) -> &[String] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.seen.iter().filter(|l| l.contains(needle)).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {count}× '{needle}' in:\n{}",
                self.seen.join("\n")
            );
            match self.lines.try_recv() {
                Ok(line) => self.seen.push(line),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        &self.seen
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serve_logs_a_start_up_summary_and_each_file_problem_once() {
    let fake = fake_with_two_services().await;
    let (_dir, file) = write_config(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: {seconds: 2}\n          initialDelay: {seconds: 1}\n",
    ));
    let mut served = Served::start(&file, vec![]);
    let lines = served.wait_for("file(s) have problems", 3).await.to_vec();
    let log = lines.join("\n");
    // Start-up: version, config files, store, the provider with its schedule and first run.
    assert!(
        log.contains(&format!(
            "bitbucket-catalogd {} starting with {}",
            env!("CARGO_PKG_VERSION"),
            file.display()
        )),
        "{log}"
    );
    assert!(log.contains("SQLite :memory:"), "{log}");
    let scheduled = lines
        .iter()
        .find(|l| l.contains("bitbucketServer main: every 2s, first run 20"))
        .unwrap_or_else(|| panic!("no schedule line in\n{log}"));
    assert!(scheduled.contains("initial_delay_s=1"), "{scheduled}");
    // The trigger of each run.
    assert!(log.contains("discovery run started (start-up)"), "{log}");
    assert!(log.contains("discovery run started (schedule)"), "{log}");
    // The broken file: one WARN when it first appears, then only the
    // per-run summary line.
    let broken: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("repos/broken/browse/catalog-info.yaml"))
        .collect();
    assert_eq!(broken.len(), 1, "{log}");
    let summaries = lines
        .iter()
        .filter(|l| {
            l.contains("1 file(s) have problems")
                && l.contains("GET /api/catalog/providers/main/errors")
        })
        .count();
    assert!(summaries >= 3, "{log}");
    assert!(
        log.contains("(1 new this run)") && log.contains("(0 new this run)"),
        "{log}"
    );
}

/// The README's simulator quick start: the fragment `bitbucket-sim
/// --write-config sim.yaml` writes, layered over the shipped example config.
#[tokio::test]
async fn the_simulator_quick_start_discovers_its_catalog() {
    let sim = bitbucket_sim::Simulator::start(bitbucket_sim::SimConfig::default())
        .await
        .expect("simulator starts");
    let (_dir, fragment) = write_config(&sim.app_config_snippet());
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/app-config.yaml");
    let out = run_binary(
        vec![
            "run-once".into(),
            "--config".into(),
            example.into(),
            "--config".into(),
            fragment.display().to_string(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let entities: Value = serde_json::from_slice(&out.stdout).expect("JSON array");
    assert!(
        entities.as_array().is_some_and(|e| e.len() > 10),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("provider sim: ok"));
}

/// `run-once` reports progress on stderr while it runs (issue 28): a line
/// per source every `--progress-every` seconds when stderr is not a
/// terminal; stdout still holds only the entities.
#[tokio::test]
async fn run_once_prints_progress_lines_while_it_runs() {
    // Every answer takes 300 ms, so the run outlasts one progress period.
    let sim = bitbucket_sim::Simulator::start(bitbucket_sim::SimConfig {
        dataset: bitbucket_sim::DatasetConfig::components_only(2, 6),
        behaviour: bitbucket_sim::Behaviour {
            latency: std::time::Duration::from_millis(300),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("simulator starts");
    let yaml = crate::support::sim::SimProviderConfig::new(&sim).yaml();
    let (_dir, file) = write_config(&yaml);
    let out = run_on_config(&["run-once", "--progress-every", "1"], &file).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("progress: sim: "), "{stderr}");
    let entities: Value = serde_json::from_slice(&out.stdout).expect("only JSON on stdout");
    assert_eq!(entities.as_array().map(Vec::len), Some(12), "{stderr}");

    let quiet = run_on_config(&["run-once", "--progress-every", "0"], &file).await;
    assert!(!text(&quiet.stderr).contains("progress:"));
}

/// A readiness 503 is reported with the reason the daemon gave (issue 28).
#[tokio::test]
async fn health_names_why_the_daemon_is_not_ready() {
    let readiness = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/.backstage/health/v1/readiness"))
        .respond_with(
            wiremock::ResponseTemplate::new(503).set_body_json(serde_json::json!({
                "status": "error",
                "message": "not ready: catching up with the leader's changes"
            })),
        )
        .mount(&readiness)
        .await;
    let fake = FakeServer::builder().start().await;
    let (_dir, file) = write_config(&server_config(&fake, "", ""));
    let env = vec![
        ("APP_CONFIG_backend_listen_host", "127.0.0.1".to_owned()),
        (
            "APP_CONFIG_backend_listen_port",
            readiness.address().port().to_string(),
        ),
    ];
    let out = run_binary(
        vec![
            "health".into(),
            "--config".into(),
            file.display().to_string(),
        ],
        env,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("503 Service Unavailable: not ready: catching up with the leader's changes"),
        "{stderr}"
    );
}
