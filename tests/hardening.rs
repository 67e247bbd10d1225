//! Black-box regression tests for issue 14 (hardening): what an
//! unauthenticated client, a hostile repository author, a hostile or broken
//! Bitbucket and a careless operator can no longer do. One test per item,
//! each asserting the bounded outcome.

mod common;

use std::time::{Duration, Instant};

use common::{FakeServer, TestApp, component, server_config};
use serde_json::{Value, json};

/// A provider `main` serving `count` components from one repository.
async fn big_catalog(count: usize) -> (FakeServer, TestApp) {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &[("big", false)], 25).await;
    let file: Vec<String> = (0..count).map(|i| component(&format!("c{i}"))).collect();
    fake.mount_file("PLAT", "big", "catalog-info.yaml", &file.join("---\n"))
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["entities"] == count).await;
    (fake, app)
}

#[track_caller]
fn assert_backstage_error(body: &Value, status: u16, name: &str) {
    assert_eq!(body["error"]["name"], name, "{body:#}");
    assert_eq!(body["response"]["statusCode"], status, "{body:#}");
    assert!(body["request"]["method"].is_string(), "{body:#}");
}

/// A predicate of `terms` conditions that all have to be evaluated.
fn wide_query(terms: usize) -> Value {
    let any: Vec<Value> = (0..terms)
        .map(|i| json!({"metadata.name": format!("nothing-{i}")}))
        .collect();
    json!({"query": {"$any": any}})
}

// ---------------------------------------------------------------- 1: query CPU

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_are_bounded_and_liveness_stays_fast() {
    let (_fake, app) = big_catalog(300).await;
    let url = format!("{}/api/catalog/entities/by-query", app.address);

    // Over the bounds: a clear 400, not minutes of CPU.
    for (body, needle) in [
        (wide_query(20_000), "1000"),
        (
            json!({"query": (0..40).fold(json!({"kind": "component"}), |q, _| json!({"$not": q}))}),
            "nested deeper",
        ),
    ] {
        let started = Instant::now();
        let response = app.http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert_backstage_error(&error, 400, "InputError");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(needle),
            "{error:#}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let fields: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
    let response = app
        .get(&format!(
            "/api/catalog/entities?fields={}",
            fields.join(",")
        ))
        .await;
    assert_eq!(response.status(), 400);

    // Heavy queries inside the bounds, many at once, run off the async
    // workers: liveness answers quickly all along.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut load = Vec::new();
    for _ in 0..4 {
        let (http, url, stop) = (app.http.clone(), url.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut answered = 0;
            while !stop.is_cancelled() {
                for body in [wide_query(999), wide_query(20_000)] {
                    let response = http.post(&url).json(&body).send().await.unwrap();
                    assert!(response.status() == 200 || response.status() == 400);
                    answered += 1;
                }
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let started = Instant::now();
        let response = app.get("/.backstage/health/v1/liveness").await;
        assert_eq!(response.status(), 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let mut answered = 0;
    for task in load {
        answered += task.await.unwrap();
    }
    assert!(answered > 4, "the hostile load ran ({answered} answers)");
    assert!(
        slowest < Duration::from_millis(100),
        "liveness took {slowest:?} under query load"
    );
    app.stop().await;
}

// ---------------------------------------------------------------- 2: metrics labels

#[tokio::test]
async fn invented_methods_do_not_grow_metrics() {
    let (_fake, app) = big_catalog(1).await;
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("X{i}RANDOM").as_bytes()).unwrap();
        app.http
            .request(method, format!("{}/api/catalog/entities", app.address))
            .send()
            .await
            .unwrap();
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.contains("RANDOM"),
        "invented methods became labels"
    );
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    app.stop().await;
}

// ---------------------------------------------------------------- 4: connections

/// A free loopback port (bound, then released for the daemon).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_take_the_descriptors_discovery_needs() {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &[("svc", false)], 25).await;
    fake.mount_file("PLAT", "svc", "catalog-info.yaml", &component("svc"))
        .await;
    let yaml = format!(
        "{}backend:\n  listen:\n    idleTimeout: {{ seconds: 1 }}\n",
        server_config(&fake, "", "")
    );
    let (_dir, file) = common::write_config(&yaml);
    let port = free_port();
    // 512 descriptors, soft and hard: the daemon cannot raise it.
    let mut child = std::process::Command::new("prlimit")
        .arg("--nofile=512:512")
        .arg(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
        .args(["serve", "--config", &file.display().to_string()])
        .env("APP_CONFIG_backend_listen_host", "127.0.0.1")
        .env("APP_CONFIG_backend_listen_port", port.to_string())
        .env("APP_CONFIG_backend_database_connection", ":memory:")
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let provider = |http: reqwest::Client| {
        let url = format!("{base}/api/catalog/providers/main");
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(response) = http.get(&url).send().await
                    && let Ok(status) = response.json::<Value>().await
                    && !status["lastRun"].is_null()
                    && status["inProgress"] == false
                {
                    return status;
                }
                assert!(Instant::now() < deadline, "no run finished");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let first = provider(http.clone()).await;
    assert_eq!(
        first["lastRun"]["outcome"]["status"], "succeeded",
        "{first:#}"
    );

    // 600 sockets that never send a byte: more than the daemon's descriptors.
    let mut idle = Vec::new();
    for _ in 0..600 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 500, "only {} idle sockets", idle.len());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Idle sockets are closed after the idle timeout; liveness answers and a
    // discovery run still finds descriptors for its requests.
    let started = Instant::now();
    let live = http
        .get(format!("{base}/.backstage/health/v1/liveness"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    let waited = started.elapsed();
    let refreshed = http
        .post(format!("{base}/api/catalog/providers/main/refresh"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    let before = first["lastRun"]["startedAt"].clone();
    let second = if refreshed.is_ok() {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = provider(http.clone()).await;
            if status["lastRun"]["startedAt"] != before || Instant::now() > deadline {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        Value::Null
    };
    let _ = child.kill();
    let _ = child.wait();
    drop(idle);
    assert_eq!(live.ok(), Some(200), "liveness did not answer");
    assert!(waited < Duration::from_secs(15), "liveness took {waited:?}");
    assert_eq!(refreshed.ok(), Some(202));
    assert_eq!(
        second["lastRun"]["outcome"]["status"], "succeeded",
        "{second:#}"
    );
    assert_ne!(second["lastRun"]["startedAt"], before);
}

// ---------------------------------------------------------------- 3: placeholders

/// A component whose spec has `uses` placeholders of `./big.txt`.
fn amplifier(name: &str, uses: usize) -> String {
    let mut doc = component(name);
    for i in 0..uses {
        doc.push_str(&format!("  doc{i}:\n    $text: ./big.txt\n"));
    }
    doc
}

#[tokio::test]
async fn placeholders_cannot_amplify_a_file_and_each_target_is_read_once() {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos(
        "PLAT",
        &[("bomb", false), ("modest", false), ("plain", false)],
        25,
    )
    .await;
    let big = "x".repeat(200 * 1024);
    fake.mount_file("PLAT", "bomb", "catalog-info.yaml", &amplifier("bomb", 100))
        .await;
    fake.mount_file("PLAT", "bomb", "big.txt", &big).await;
    fake.mount_file(
        "PLAT",
        "modest",
        "catalog-info.yaml",
        &amplifier("modest", 3),
    )
    .await;
    fake.mount_file("PLAT", "modest", "big.txt", &big).await;
    fake.mount_file("PLAT", "plain", "catalog-info.yaml", &component("plain"))
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    let status = app.wait_for_run("main", |_| true).await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");

    // 100 × 200 KiB is over the 4 MiB default: a per-file problem, the
    // other repositories' entities are served.
    let names = app.entity_names().await;
    assert!(!names.contains(&"bomb".to_owned()), "{names:?}");
    assert!(names.contains(&"plain".to_owned()), "{names:?}");
    let errors = app.get_json("/api/catalog/providers/main/errors").await;
    let problem = errors["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["url"].as_str().unwrap_or_default().contains("/bomb/"))
        .unwrap_or_else(|| panic!("no problem for bomb: {errors:#}"));
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("catalog.processing.maxExpandedSize"),
        "{problem:#}"
    );
    // Within the budget the placeholders resolve; each file is read once.
    let modest = app
        .get_json("/api/catalog/entities/by-name/component/default/modest")
        .await;
    assert_eq!(
        modest["spec"]["doc2"].as_str().map(str::len),
        Some(big.len())
    );
    assert_eq!(fake.requests_to("/bomb/raw/big.txt").await, 1);
    assert_eq!(fake.requests_to("/modest/raw/big.txt").await, 1);
    app.stop().await;
}
