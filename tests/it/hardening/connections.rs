//! Connections and descriptors: idle, trickling, over the cap, h2c and
//! keep-alive.

use super::*;
use crate::support::free_port;

// ---------------------------------------------------------------- 4: connections

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
        // The test refreshes anonymously: open writes as the sandbox does.
        .env(crate::support::OPEN_WRITES, "true")
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
    // More than the cap's worth of connections busy with a request (a slow
    // body), paced so that the idle keep-alive connection of the wait above
    // is reclaimed (see `fair::connections`): none idle is left.
    let mut holders = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        holders.push(
            raw_connection(
                &app,
                b"POST /api/catalog/entities/by-refs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
            )
            .await,
        );
    }
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
