//! Black-box regression tests for issue 14 (hardening): what an
//! unauthenticated client, a hostile repository author, a hostile or broken
//! Bitbucket and a careless operator can no longer do. One test per item,
//! each asserting the bounded outcome.

use std::time::{Duration, Instant};

use crate::support::{FakeServer, TestApp, assert_backstage_error, component, server_config};
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
    let mut samples = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        let response = app.get("/.backstage/health/v1/liveness").await;
        assert_eq!(response.status(), 200);
        samples.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let mut answered = 0;
    for task in load {
        answered += task.await.unwrap();
    }
    assert!(answered > 4, "the hostile load ran ({answered} answers)");
    // Under 100 ms, allowing for a scheduling hiccup of a shared CI machine.
    samples.sort();
    let (p90, slowest) = (samples[26], samples[29]);
    assert!(
        p90 < Duration::from_millis(100) && slowest < Duration::from_millis(500),
        "liveness under query load: p90 {p90:?}, slowest {slowest:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn order_parameters_are_deduplicated_and_capped() {
    let (_fake, app) = big_catalog(3).await;
    // Thousands of one field: one key per entity, the same answer.
    let repeated = vec!["order=desc:metadata.name"; 2_000].join("&");
    let response = app
        .get(&format!(
            "/api/catalog/entities?{repeated}&fields=metadata.name"
        ))
        .await;
    assert_eq!(response.status(), 200);
    let names: Vec<Value> = response.json().await.unwrap();
    assert_eq!(
        names,
        vec![
            json!({"metadata": {"name": "c2"}}),
            json!({"metadata": {"name": "c1"}}),
            json!({"metadata": {"name": "c0"}}),
        ]
    );
    // More distinct fields than MAX_FIELDS (100): a Backstage-shaped 400.
    let distinct: Vec<String> = (0..101).map(|i| format!("order=asc:f{i}")).collect();
    let response = app
        .get(&format!("/api/catalog/entities?{}", distinct.join("&")))
        .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_backstage_error(&error, 400, "InputError");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("100"),
        "{error:#}"
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

/// The daemon binary with `yaml` on `port` under 512 descriptors, soft and
/// hard (so it cannot raise them); its log (info) piped when `log`.
fn serve_with_512_descriptors(
    yaml: &str,
    port: u16,
    log: bool,
) -> (tempfile::TempDir, std::process::Child) {
    let (dir, file) = crate::support::write_config(yaml);
    let output = || {
        if log {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        }
    };
    let child = std::process::Command::new("prlimit")
        .arg("--nofile=512:512")
        .arg(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
        .args(["serve", "--config", &file.display().to_string()])
        .env("APP_CONFIG_backend_listen_host", "127.0.0.1")
        .env("APP_CONFIG_backend_listen_port", port.to_string())
        .env("APP_CONFIG_backend_database_connection", ":memory:")
        .env("RUST_LOG", if log { "info" } else { "error" })
        .stdin(std::process::Stdio::null())
        .stdout(output())
        .stderr(output())
        .spawn()
        .expect("serve starts");
    (dir, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_take_the_descriptors_discovery_needs() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["svc"]).await;
    let yaml = format!(
        "{}backend:\n  listen:\n    headerTimeout: {{ seconds: 1 }}\n",
        server_config(&fake, "", "")
    );
    let port = free_port();
    let (_dir, mut child) = serve_with_512_descriptors(&yaml, port, false);
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
    // Over the connection cap a write is shed with 503 and Retry-After.
    let mut refreshed = Ok(503);
    let deadline = Instant::now() + Duration::from_secs(20);
    while refreshed.as_ref().is_ok_and(|s| *s == 503) && Instant::now() < deadline {
        refreshed = http
            .post(format!("{base}/api/catalog/providers/main/refresh"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if refreshed.as_ref().is_ok_and(|s| *s == 503) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
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

#[tokio::test]
async fn a_trickling_body_is_cut_off_after_30_seconds_in_all() {
    use tokio::io::AsyncWriteExt;
    let (_fake, app) = big_catalog(1).await;
    // One byte every 5 s: never a pause long enough for a per-pause timeout.
    let mut stream = raw_connection(
        &app,
        b"POST /api/catalog/entities/by-refs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
    )
    .await;
    let started = Instant::now();
    let answer = loop {
        if let Some(answer) = read_some(&mut stream, Duration::from_secs(5)).await {
            break answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "the body was still being read after {:?}",
            started.elapsed()
        );
        let _ = stream.write_all(b" ").await;
    };
    assert!(
        started.elapsed() >= Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(answer.contains("InputError"), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn max_connections_over_the_descriptor_limit_is_lowered() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["svc"]).await;
    let yaml = format!(
        "{}backend:\n  listen:\n    maxConnections: 100000\n",
        server_config(&fake, "", "")
    );
    let port = free_port();
    let (_dir, mut child) = serve_with_512_descriptors(&yaml, port, true);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http
        .get(format!(
            "http://127.0.0.1:{port}/.backstage/health/v1/liveness"
        ))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the daemon did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // 512 − 256 reserved − 64 shed connections.
    let warning = log
        .lines()
        .find(|l| l.contains("maxConnections is more than the open-file limit"))
        .unwrap_or_else(|| panic!("no warning: {log}"));
    assert!(warning.contains("192"), "{warning}");
}

/// A raw connection to `app` with `bytes` sent.
async fn raw_connection(app: &TestApp, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// What arrives on `stream` within `within`, up to its end or a pause.
async fn read_some(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0; 64 * 1024];
    match tokio::time::timeout(within, stream.read(&mut buf)).await {
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Ok(Err(_)) => Some(String::new()),
        Err(_) => None,
    }
}

const LIVENESS_REQUEST: &[u8] = b"GET /.backstage/health/v1/liveness HTTP/1.1\r\nhost: x\r\n\r\n";

#[tokio::test]
async fn h2c_with_prior_knowledge_is_answered() {
    let (_fake, app) = big_catalog(1).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .get(format!("{}/api/catalog/entities", app.address))
        .send()
        .await
        .expect("an h2c answer");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let entities: Vec<Value> = response.json().await.unwrap();
    assert_eq!(entities.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn keep_alive_outlasts_the_header_timeout() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["svc"]).await;
    let app = TestApp::spawn(&format!(
        "{}backend:\n  listen:\n    headerTimeout: {{ seconds: 1 }}\n",
        server_config(&fake, "", "")
    ))
    .await;
    // A kept-alive connection idle for longer than the header timeout is
    // still open (a load balancer reuses it without a 502)...
    let mut kept = raw_connection(&app, LIVENESS_REQUEST).await;
    let first = read_some(&mut kept, Duration::from_secs(5)).await.unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    use tokio::io::AsyncWriteExt;
    kept.write_all(LIVENESS_REQUEST).await.unwrap();
    let second = read_some(&mut kept, Duration::from_secs(5)).await.unwrap();
    assert!(second.starts_with("HTTP/1.1 200"), "{second:?}");
    // ...while headers trickling in are cut off after the header timeout,
    // counted from their first byte, on a fresh and on a kept-alive
    // connection.
    let mut slow = raw_connection(&app, b"GET /.backstage/health/v1/liveness HTTP/1.1\r\n").await;
    let started = Instant::now();
    let cut = read_some(&mut slow, Duration::from_secs(5)).await;
    assert!(cut.is_some(), "slow headers were not cut off");
    assert!(!cut.unwrap().contains("200 OK"));
    assert!(started.elapsed() < Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    kept.write_all(b"GET /.backstage/health/v1/liveness HTTP/1.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let cut = read_some(&mut kept, Duration::from_secs(5)).await;
    assert!(cut.is_some(), "slow headers were not cut off");
    assert!(started.elapsed() < Duration::from_secs(3));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_health_is_answered_and_the_rest_shed() {
    // Default timeouts; a small cap keeps the test small.
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["svc"]).await;
    let app = TestApp::spawn(&format!(
        "{}backend:\n  listen:\n    maxConnections: 4\n",
        server_config(&fake, "", "")
    ))
    .await;
    app.wait_for_run("main", |s| s["entities"] == 1).await;
    // The cap's worth of connections that hold on: idle, slow headers, a
    // slow body, and one that never reads its (pipelined) answers.
    let mut holders = vec![
        raw_connection(&app, b"").await,
        raw_connection(&app, b"GET /api/catalog/entities HTTP/1.1\r\n").await,
        raw_connection(
            &app,
            b"POST /api/catalog/entities/by-refs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
        )
        .await,
    ];
    let pipelined = b"GET /api/catalog/entities HTTP/1.1\r\nhost: x\r\n\r\n".repeat(2_000);
    holders.push(raw_connection(&app, &pipelined).await);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    for path in [
        "/.backstage/health/v1/liveness",
        "/.backstage/health/v1/readiness",
    ] {
        let started = Instant::now();
        let response = fresh()
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("health answered over the cap");
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    let response = fresh()
        .get(format!("{}/api/catalog/entities", app.address))
        .send()
        .await
        .expect("shed, not left in the backlog");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let error: Value = response.json().await.unwrap();
    assert_backstage_error(&error, 503, "ServiceUnavailableError");
    drop(holders);
    app.stop().await;
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

#[tokio::test]
async fn the_placeholder_budget_counts_served_bytes_and_stops_reading() {
    use wiremock::{Mock, ResponseTemplate, matchers};

    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &[("quotes", false), ("flaky", false)], 25)
        .await;
    // 8 × 300 KiB read is under the 4 MiB default, but each `"` is served
    // as `\"`: 4.8 MiB. The next document's file is then not read at all.
    let quoted = amplifier("quotes", 8).replace("./big.txt", "./quotes.txt");
    let after = component("after").replace(
        "  owner: team-a\n",
        "  owner: team-a\n  notes:\n    $text: ./other.txt\n",
    );
    fake.mount_file(
        "PLAT",
        "quotes",
        "catalog-info.yaml",
        &format!("{quoted}---\n{after}"),
    )
    .await;
    fake.mount_file("PLAT", "quotes", "quotes.txt", &"\"".repeat(300 * 1024))
        .await;
    fake.mount_file("PLAT", "quotes", "other.txt", "other")
        .await;
    // A file that fails to read is read once, however often it is used.
    fake.mount_file(
        "PLAT",
        "flaky",
        "catalog-info.yaml",
        &amplifier("flaky", 3).replace("./big.txt", "./broken.txt"),
    )
    .await;
    Mock::given(matchers::path(format!(
        "{}/projects/PLAT/repos/flaky/raw/broken.txt",
        crate::support::API
    )))
    .respond_with(ResponseTemplate::new(500))
    .mount(&fake.server)
    .await;
    let app = TestApp::spawn(&server_config(&fake, "      maxRetries: 0\n", "")).await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;

    let names = app.entity_names().await;
    assert!(!names.contains(&"quotes".to_owned()), "{names:?}");
    let errors = app.get_json("/api/catalog/providers/main/errors").await;
    let messages = errors["problems"].to_string();
    assert!(
        messages.contains("catalog.processing.maxExpandedSize"),
        "{errors:#}"
    );
    assert_eq!(fake.requests_to("/quotes/raw/quotes.txt").await, 1);
    assert_eq!(
        fake.requests_to("/quotes/raw/other.txt").await,
        0,
        "read after the budget was spent"
    );
    assert_eq!(fake.requests_to("/flaky/raw/broken.txt").await, 1);
    app.stop().await;
}

// ---------------------------------------------------------------- 6, 7, 8, 11: hostile Bitbucket

/// The error of the provider's first finished run, which must have failed.
async fn failed_run(app: &TestApp, provider: &str) -> String {
    let status = app
        .wait_for_run(provider, |s| s["inProgress"] == false)
        .await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "failed",
        "{status:#}"
    );
    status["lastRun"]["outcome"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Serves `router` on a free loopback port; returns `127.0.0.1:PORT`.
async fn serve_hostile(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test]
async fn an_endless_error_body_is_not_read() {
    // A 500 whose body never ends: only a prefix is read, the run fails
    // quickly with the status, not at the request timeout.
    let router = axum::Router::new().fallback(|| async {
        let chunk = axum::body::Bytes::from(vec![b'e'; 64 * 1024]);
        let endless =
            futures::StreamExt::map(futures::stream::repeat(chunk), Ok::<_, std::io::Error>);
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::body::Body::from_stream(endless),
        )
    });
    let host = serve_hostile(router).await;
    let yaml = format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: http://{host}/rest/api/1.0\n      maxRetries: 0\n      requestTimeout: {{ seconds: 60 }}\ncatalog:\n  providers:\n    bitbucketServer:\n      main:\n        host: {host}\n"
    );
    let started = Instant::now();
    let app = TestApp::spawn(&yaml).await;
    let error = failed_run(&app, "main").await;
    assert!(error.contains("500"), "{error}");
    assert!(error.len() < 2000, "the error quotes {} bytes", error.len());
    assert!(started.elapsed() < Duration::from_secs(15));
    app.stop().await;
}

#[tokio::test]
async fn paging_is_bounded_in_pages_and_bytes() {
    use wiremock::{Mock, ResponseTemplate, matchers};

    // Cloud: a `next` that never ends.
    let cloud = crate::support::FakeCloud::start().await;
    let api = cloud.api_base();
    Mock::given(matchers::path("/2.0/workspaces/ws/projects"))
        .respond_with(move |request: &wiremock::Request| {
            let page: usize = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "page")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(1);
            ResponseTemplate::new(200).set_body_json(json!({
                "values": [{"type": "project", "key": format!("P{page}")}],
                "next": format!("{api}/workspaces/ws/projects?page={}", page + 1),
            }))
        })
        .mount(&cloud.server)
        .await;
    let app = TestApp::spawn(&crate::support::cloud_config(&cloud, "ws", "", "")).await;
    let error = failed_run(&app, "cloud").await;
    assert!(error.contains("1000 pages"), "{error}");
    app.stop().await;

    // Server: a 10 MB page is refused, not decoded.
    let fake = FakeServer::start().await;
    let padding = "x".repeat(10 * 1024 * 1024);
    Mock::given(matchers::path(format!("{}/projects", crate::support::API)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"key": "PLAT", "padding": padding}],
            "isLastPage": true, "size": 1, "start": 0, "limit": 1000,
        })))
        .mount(&fake.server)
        .await;
    fake.mount_repos("PLAT", &[], 25).await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    let error = failed_run(&app, "main").await;
    assert!(error.contains("larger than 8 MiB"), "{error}");
    app.stop().await;

    // Server: pages just under 8 MiB that never end stop at 256 MiB for
    // the listing, far before 1000 pages (8 GB); nothing is kept.
    let fake = FakeServer::start().await;
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&served);
    let padding = "x".repeat(7 * 1024 * 1024);
    Mock::given(matchers::path(format!("{}/projects", crate::support::API)))
        .respond_with(move |request: &wiremock::Request| {
            let start: u64 = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "start")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let body = json!({
                "values": [{"key": format!("P{start}"), "padding": padding}],
                "isLastPage": false, "nextPageStart": start + 1,
                "size": 1, "start": start, "limit": 1000,
            })
            .to_string();
            counted.fetch_add(body.len(), std::sync::atomic::Ordering::Relaxed);
            ResponseTemplate::new(200).set_body_raw(body, "application/json")
        })
        .mount(&fake.server)
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    let error = failed_run(&app, "main").await;
    assert!(error.contains("more than 256 MiB"), "{error}");
    let served = served.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        served <= 264 * 1024 * 1024,
        "{} MiB served before giving up",
        served / (1024 * 1024)
    );
    app.stop().await;
}

#[tokio::test]
async fn answers_that_are_not_bitbucket_data_remove_nothing() {
    let fake = FakeServer::start().await;
    let slugs = ["a", "b", "c", "d", "e", "f"];
    let repos: Vec<(&str, bool)> = slugs.iter().map(|s| (*s, false)).collect();
    fake.mount_components("PLAT", &slugs).await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { trigger: manual }\n",
    ))
    .await;
    app.refresh("main", "").await;

    // A proxy answering `200 {}` to the listing: the run fails, nothing goes.
    fake.server.reset().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&fake.server)
        .await;
    let status = app.refresh("main", "").await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "failed",
        "{status:#}"
    );
    assert_eq!(app.entity_names().await.len(), 6);

    // An SSO login page (200 HTML) for every file: the reads fail, the
    // entities stay, and the problem says what answered.
    fake.server.reset().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &repos, 25).await;
    wiremock::Mock::given(wiremock::matchers::path_regex("/raw/"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .insert_header("content-type", "text/html; charset=utf-8")
                .set_body_string("<!DOCTYPE html><html><body>Sign in</body></html>"),
        )
        .mount(&fake.server)
        .await;
    app.refresh("main", "").await;
    assert_eq!(app.entity_names().await.len(), 6);
    let errors = app.get_json("/api/catalog/providers/main/errors").await;
    assert!(
        errors["problems"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("a login page or proxy answered instead of Bitbucket"),
        "{errors:#}"
    );
    app.stop().await;
}

#[tokio::test]
async fn redirects_to_another_host_are_not_followed() {
    let elsewhere = FakeServer::start().await;
    elsewhere
        .mount_file("X", "y", "catalog-info.yaml", &component("foreign"))
        .await;
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &[("svc", false)], 25).await;
    wiremock::Mock::given(wiremock::matchers::path_regex("/raw/"))
        .respond_with(wiremock::ResponseTemplate::new(302).insert_header(
            "location",
            format!(
                "{}/projects/X/repos/y/raw/catalog-info.yaml",
                elsewhere.api_base()
            ),
        ))
        .mount(&fake.server)
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;
    assert!(!app.entity_names().await.contains(&"foreign".to_owned()));
    assert_eq!(elsewhere.requests_to("catalog-info.yaml").await, 0);
    app.stop().await;

    // A Cloud `next` with user info does not replace our credentials.
    let cloud = crate::support::FakeCloud::start().await;
    let api = cloud.api_base();
    let next = api.replacen("http://", "http://attacker:stolen@", 1);
    wiremock::Mock::given(wiremock::matchers::path("/2.0/workspaces/ws/projects"))
        .respond_with(move |request: &wiremock::Request| {
            let body = if request.url.query().unwrap_or_default().contains("page=2") {
                json!({"values": []})
            } else {
                json!({"values": [{"type": "project", "key": "P"}], "next": format!("{next}/workspaces/ws/projects?page=2")})
            };
            wiremock::ResponseTemplate::new(200).set_body_json(body)
        })
        .mount(&cloud.server)
        .await;
    let app = TestApp::spawn(&crate::support::cloud_config(
        &cloud,
        "ws",
        "      token: our-token-123\n",
        "",
    ))
    .await;
    app.wait_for_run("cloud", |s| s["inProgress"] == false)
        .await;
    let requests = cloud.requests().await;
    let page_two: Vec<_> = requests
        .iter()
        .filter(|r| r.url.query().unwrap_or_default().contains("page=2"))
        .collect();
    assert!(!page_two.is_empty(), "page 2 was not read");
    for request in page_two {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer our-token-123")
        );
    }
    app.stop().await;
}

// ---------------------------------------------------------------- 9: config check

/// `config check` on `yaml` (with `HARDENING_*` variables unset): its exit
/// code, stdout and stderr.
fn config_check(yaml: &str) -> (Option<i32>, String, String) {
    let (_dir, file) = crate::support::write_config(yaml);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
        .args(["config", "check", "--config", &file.display().to_string()])
        .env_remove("RUST_LOG")
        .env_remove("HARDENING_UNSET_BB_HOST")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_redacts_shared_sections_urls_and_misspelled_secrets() {
    let (code, stdout, stderr) = config_check(
        "integrations:\n  bitbucketServer:\n    - host: bb.example.com\n      tokn: typo-s3cret-1\n\
         proxy:\n  endpoints:\n    /jira:\n      target: https://jira.example.com\n      headers:\n        Authorization: Basic auth-s3cret-2\n        X-Api-Key: apikey-s3cret-3\n        Cookie: session=cookie-s3cret-4\n\
         sentry:\n  dsn: https://dsnuser-s3cret-5@o1.ingest.sentry.io/42\n\
         app:\n  homepage: https://webuser:url-s3cret-6@portal.example.com/\n\
         auth:\n  providers:\n    saml:\n      decryptionPassphrase: pass-s3cret-7\n\
         azure:\n  connectionString: AccountName=a;AccountKey=conn-s3cret-8\n\
         catalog:\n  processing:\n    pasword: typo-s3cret-9\n  providers:\n    bitbucketServer:\n      host: bb.example.com\n      filters:\n        projectKey: '^PLAT$'\n",
    );
    let printed = format!("{stdout}{stderr}");
    assert_eq!(code, Some(0), "{printed}");
    for n in 1..=9 {
        assert!(
            !printed.contains(&format!("s3cret-{n}")),
            "secret {n} leaked:\n{printed}"
        );
    }
    assert!(
        printed.contains("https://<redacted>@portal.example.com/"),
        "{printed}"
    );
    assert!(
        printed.contains("^PLAT$"),
        "filters stay readable:\n{printed}"
    );
    assert!(
        printed.contains("tokn"),
        "the warning names the key:\n{printed}"
    );
}

// ---------------------------------------------------------------- 10: open writes

#[tokio::test]
async fn open_writes_are_capped_rate_limited_and_cannot_force() {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &[], 25).await;
    for i in 0..8 {
        fake.mount_file(
            "LOC",
            &format!("r{i}"),
            "catalog-info.yaml",
            &component(&format!("r{i}")),
        )
        .await;
    }
    let yaml = format!(
        "{}  maxRegisteredLocations: 3\n  registrationsPerMinute: 5\n",
        server_config(&fake, "", "")
    );
    let app = TestApp::spawn(&yaml).await;
    let target = |i: usize| {
        format!(
            "{}/projects/LOC/repos/r{i}/browse/catalog-info.yaml",
            fake.server.uri()
        )
    };
    for i in 0..3 {
        let (status, body) = app.register(&target(i), "", None).await;
        assert_eq!(status, 201, "{body:#}");
    }
    let (status, body) = app.register(&target(3), "", None).await;
    assert_eq!(status, 403, "{body:#}");
    assert_backstage_error(&body, 403, "NotAllowedError");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("catalog.maxRegisteredLocations")
    );
    let mut limited = None;
    for i in 4..8 {
        let (status, body) = app.register(&target(i), "", None).await;
        if status == 429 {
            limited = Some(body);
            break;
        }
    }
    let limited = limited.expect("registrations are rate-limited");
    assert_backstage_error(&limited, 429, "TooManyRequestsError");
    assert_eq!(
        app.get_json("/api/catalog/locations")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Writes are open, but forcing past the deletion guard needs a token.
    let (status, body) = app
        .send(
            reqwest::Method::POST,
            "/api/catalog/providers/main/refresh?force=true",
            None,
            None,
        )
        .await;
    assert_eq!(status, 403, "{body:#}");
    assert_backstage_error(&body, 403, "NotAllowedError");
    let (status, _) = app
        .send(
            reqwest::Method::POST,
            "/api/catalog/providers/main/refresh",
            None,
            None,
        )
        .await;
    assert_eq!(status, 202);
    app.stop().await;
}

// ---------------------------------------------------------------- 5: target scope

#[tokio::test]
async fn targets_and_placeholders_stay_within_the_providers_filters() {
    let fake = FakeServer::start().await;
    let web = fake.server.uri();
    fake.mount_projects(&["PLAT", "SECRET"], 25).await;
    fake.mount_repos("PLAT", &[("app", false), ("lib", false)], 25)
        .await;
    fake.mount_file("SECRET", "vault", "prod.env", "DB_PASSWORD=hunter2-leaked")
        .await;
    fake.mount_file(
        "SECRET",
        "vault",
        "catalog-info.yaml",
        &component("excluded"),
    )
    .await;
    // `app` describes itself with another project's file; `app-own` uses
    // its own repository's; a Location leads into the excluded project.
    let app_file = format!(
        "{}---\n{}---\napiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: sneaky\nspec:\n  targets:\n    - {web}/projects/SECRET/repos/vault/browse/catalog-info.yaml\n    - ./team.yaml\n",
        component("app").replace(
            "  name: app\n",
            &format!("  name: app\n  description:\n    $text: {web}/projects/SECRET/repos/vault/browse/prod.env\n"),
        ),
        component("app-own").replace("  owner: team-a\n", "  owner: team-a\n  notes:\n    $text: ./notes.txt\n"),
    );
    fake.mount_file("PLAT", "app", "catalog-info.yaml", &app_file)
        .await;
    fake.mount_file("PLAT", "app", "notes.txt", "own notes")
        .await;
    fake.mount_file("PLAT", "app", "team.yaml", &component("in-repo"))
        .await;
    fake.mount_file("PLAT", "lib", "catalog-info.yaml", &component("lib"))
        .await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        filters:\n          projectKey: '^PLAT$'\n",
    ))
    .await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;

    let everything = app.get("/api/catalog/entities").await.text().await.unwrap();
    assert!(
        !everything.contains("hunter2"),
        "another project's file was served"
    );
    let names = app.entity_names().await;
    assert!(!names.contains(&"excluded".to_owned()), "{names:?}");
    assert!(names.contains(&"lib".to_owned()), "{names:?}");
    let own = app
        .get_json("/api/catalog/entities/by-name/component/default/app-own")
        .await;
    assert_eq!(
        own["spec"]["notes"], "own notes",
        "same-repository placeholders work"
    );
    assert_eq!(
        fake.requests_to("/prod.env").await,
        0,
        "nothing was requested"
    );
    let errors = app.get_json("/api/catalog/providers/main/errors").await;
    let messages = errors["problems"].to_string();
    assert!(messages.contains("targetScope"), "{errors:#}");
    // The out-of-scope target costs only its own entities: the Location's
    // in-repository target is kept.
    assert!(names.contains(&"in-repo".to_owned()), "{names:?}");
    assert!(names.contains(&"sneaky".to_owned()), "{names:?}");
    app.stop().await;

    // `targetScope: any` is the behaviour before the hardening.
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        filters:\n          projectKey: '^PLAT$'\n        targetScope: any\n",
    ))
    .await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;
    let names = app.entity_names().await;
    assert!(names.contains(&"excluded".to_owned()), "{names:?}");
    assert!(names.contains(&"in-repo".to_owned()), "{names:?}");
    app.stop().await;
}

// ---------------------------------------------------------------- 13: tokens

#[tokio::test]
async fn a_token_with_a_trailing_newline_works_and_a_broken_one_names_its_key() {
    let fake = FakeServer::with_authorization("Bearer t0ken-value").await;
    fake.mount_components("PLAT", &["svc"]).await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "      token: \"t0ken-value\\n\"\n",
        "",
    ))
    .await;
    let status = app.wait_for_run("main", |s| s["inProgress"] == false).await;
    assert_eq!(
        status["lastRun"]["outcome"]["status"], "succeeded",
        "{status:#}"
    );
    assert_eq!(app.entity_names().await, vec!["svc".to_owned()]);
    app.stop().await;

    let (code, _, stderr) = config_check(&server_config(
        &fake,
        "      token: \"t0ken\\nvalue\"\n",
        "",
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("integrations.bitbucketServer[0].token"),
        "{stderr}"
    );
    assert!(stderr.contains("line break"), "{stderr}");
    assert!(!stderr.contains("t0ken"), "{stderr}");
}

// ---------------------------------------------------------------- 18: unset variables

#[test]
fn an_unset_variable_in_a_required_key_is_named() {
    let (code, _, stderr) = config_check(
        "integrations:\n  bitbucketServer:\n    - host: ${HARDENING_UNSET_BB_HOST}\n      token: abcdefgh\n",
    );
    assert_eq!(code, Some(2), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.contains("missing field"))
        .unwrap_or_default();
    assert!(error.contains("HARDENING_UNSET_BB_HOST"), "{stderr}");
}

// ---------------------------------------------------------------- 12: names in location URLs

#[tokio::test]
async fn encoded_slashes_and_dot_segments_in_repository_names_are_refused() {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &[], 25).await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;
    let web = fake.server.uri();
    let before = fake.server.received_requests().await.unwrap().len();
    for target in [
        format!("{web}/projects/PLAT%2F..%2F..%2Fadmin/repos/svc/browse/catalog-info.yaml"),
        format!("{web}/projects/PLAT/repos/%2E%2E/browse/catalog-info.yaml"),
        format!("{web}/users/%2E%2E/repos/svc/browse/catalog-info.yaml"),
        format!("{web}/projects/PLAT/repos/a%5Cb/browse/catalog-info.yaml"),
    ] {
        let (status, body) = app.register(&target, "", None).await;
        assert_eq!(status, 400, "{target}: {body:#}");
        assert_backstage_error(&body, 400, "InputError");
    }
    let after = fake.server.received_requests().await.unwrap().len();
    assert_eq!(after, before, "no request reached Bitbucket");
    app.stop().await;
}

// ---------------------------------------------------------------- 17: oversized values

#[tokio::test]
async fn oversized_values_are_not_repeated_in_full() {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &[("huge", false), ("ok", false)], 25)
        .await;
    let name = "n".repeat(600 * 1024);
    fake.mount_file("PLAT", "huge", "catalog-info.yaml", &component(&name))
        .await;
    fake.mount_file("PLAT", "ok", "catalog-info.yaml", &component("ok"))
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["inProgress"] == false).await;
    assert_eq!(app.entity_names().await, vec!["ok".to_owned()]);
    let errors = app
        .get("/api/catalog/providers/main/errors")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        errors.contains("nnnnnnnn"),
        "the problem quotes the start: {}",
        &errors[..errors.len().min(500)]
    );
    assert!(
        errors.len() < 16 * 1024,
        "/errors is {} bytes",
        errors.len()
    );
    app.stop().await;
}

// ---------------------------------------------------------------- 20: error shapes, 409

#[tokio::test]
async fn every_error_has_backstages_shape_and_registrations_never_claim_others_entities() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["svc"]).await;
    fake.mount_file("LOC", "copy", "catalog-info.yaml", &component("svc"))
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |s| s["entities"] == 1).await;

    let big = format!(
        "{{\"query\": {{\"kind\": \"{}\"}}}}",
        "x".repeat(3 * 1024 * 1024)
    );
    let response = app
        .http
        .post(format!("{}/api/catalog/entities/by-query", app.address))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_backstage_error(&response.json().await.unwrap(), 413, "PayloadTooLargeError");

    // A 405 keeps its Allow header.
    let response = app
        .http
        .delete(format!("{}/api/catalog/entities", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let allow = response.headers().get("allow").cloned();
    assert_backstage_error(
        &response.json().await.unwrap(),
        405,
        "MethodNotAllowedError",
    );
    assert!(
        allow.is_some_and(|a| a.to_str().unwrap_or_default().contains("GET")),
        "no Allow header"
    );

    let response = app
        .get("/api/catalog/entities/by-name/component/default/%FF%FE")
        .await;
    assert_eq!(response.status(), 400);
    assert_backstage_error(&response.json().await.unwrap(), 400, "InputError");

    let target = format!(
        "{}/projects/LOC/repos/copy/browse/catalog-info.yaml",
        fake.server.uri()
    );
    let (status, body) = app.register(&target, "", None).await;
    assert_eq!(status, 409, "{body:#}");
    assert_backstage_error(&body, 409, "ConflictError");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("component:default/svc")
    );
    let locations = app.get_json("/api/catalog/locations").await;
    assert!(!locations.to_string().contains("/LOC/"), "{locations:#}");
    app.stop().await;
}

// ---------------------------------------------------------------- 15, 16: the store

async fn build_app(
    yaml: &str,
    database: &std::path::Path,
) -> Result<bitbucket_catalogd::Application, String> {
    let (_dir, file) = crate::support::write_config(yaml);
    let env = bitbucket_catalogd::config::Environment::from_pairs([
        ("APP_CONFIG_backend_listen_host", "127.0.0.1"),
        ("APP_CONFIG_backend_listen_port", "0"),
        (
            "APP_CONFIG_backend_database_connection",
            &database.display().to_string(),
        ),
    ]);
    let loaded = bitbucket_catalogd::config::Config::load(&[file], &env).expect("config loads");
    bitbucket_catalogd::Application::build(loaded.config)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_corrupt_row_is_skipped_and_a_corrupt_file_is_named() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["a", "b"]).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.sqlite");
    let yaml = server_config(&fake, "      maxRetries: 0\n", "");
    let app = TestApp::spawn_with_database(&yaml, &db.display().to_string()).await;
    app.wait_for_run("main", |s| s["entities"] == 2).await;
    app.stop().await;

    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE catalog_entities SET body = '{\"broken' WHERE entity_ref = 'component:default/a'",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE sources SET last_run = '{\"broken' WHERE id = 'main'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // Bitbucket is down now: what is served comes from the store (a broken
    // last run does not stop start-up).
    fake.server.reset().await;
    let app = TestApp::spawn_with_database(&yaml, &db.display().to_string()).await;
    let response = app.get("/api/catalog/entities").await.text().await.unwrap();
    let entities: Value = serde_json::from_str(&response).expect("GET /entities is valid JSON");
    let names: Vec<&str> = entities
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["b"]);
    app.stop().await;

    // Back up: one run reads the skipped row's file again, though it did
    // not change.
    fake.mount_components("PLAT", &["a", "b"]).await;
    let app = TestApp::spawn_with_database(&yaml, &db.display().to_string()).await;
    app.wait_for_run("main", |s| s["lastRun"]["outcome"]["status"] == "succeeded")
        .await;
    let mut names = app.entity_names().await;
    names.sort();
    assert_eq!(names, vec!["a", "b"]);
    app.stop().await;

    std::fs::write(&db, vec![b'x'; 8192]).unwrap();
    let error = build_app(&yaml, &db)
        .await
        .err()
        .expect("a corrupt database is an error");
    assert!(error.contains(&db.display().to_string()), "{error}");
}

#[tokio::test]
async fn a_second_daemon_on_one_database_is_refused() {
    let fake = FakeServer::start().await;
    fake.mount_projects(&["PLAT"], 25).await;
    fake.mount_repos("PLAT", &[], 25).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.sqlite");
    let yaml = server_config(&fake, "", "");
    let first = TestApp::spawn_with_database(&yaml, &db.display().to_string()).await;
    let error = build_app(&yaml, &db)
        .await
        .err()
        .expect("the second daemon is refused");
    assert!(error.contains("another bitbucket-catalogd"), "{error}");
    assert!(error.contains("catalog.sqlite.lock"), "{error}");
    first.stop().await;
    // Once the first one stopped, the file is free again.
    assert!(build_app(&yaml, &db).await.is_ok());
}

// ---------------------------------------------------------------- 14: config alias bombs

#[test]
fn an_alias_bomb_in_the_config_is_an_error() {
    let mut yaml = String::from("x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for level in 1..=5 {
        let previous = format!("*x{}", level - 1);
        yaml.push_str(&format!(
            "x{level}: &x{level} [{}]\n",
            vec![previous; 10].join(", ")
        ));
    }
    // 2 × 10^6 scalars once expanded.
    yaml.push_str("bomb: [*x5, *x5]\n");
    let (_dir, file) = crate::support::write_config(&yaml);
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
        .args(["config", "check", "--config", &file.display().to_string()])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("config check did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("alias"), "{stderr}");
    assert!(stderr.contains("app-config.yaml"), "{stderr}");
}

// ---------------------------------------------------------------- 19: manual triggers

#[tokio::test]
async fn a_manual_provider_runs_only_when_asked() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["svc"]).await;
    let app = TestApp::spawn(&server_config(
        &fake,
        "",
        "        schedule:\n          frequency: { trigger: manual }\n",
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = app.get_json("/api/catalog/providers/main").await;
    assert!(status["lastRun"].is_null(), "{status:#}");
    assert_eq!(fake.server.received_requests().await.unwrap().len(), 0);
    let status = app.refresh("main", "").await;
    assert_eq!(status["lastRun"]["outcome"]["status"], "succeeded");
    assert_eq!(app.entity_names().await, vec!["svc".to_owned()]);
    app.stop().await;
}
