//! Idle sockets filling the connection cap and the overflow slots.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{FakeServer, TestApp, server_config};

/// One keep-alive request on a new connection, its response read; the
/// connection left open and idle.
async fn idle_keep_alive(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /.backstage/health/v1/liveness HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_filling_the_cap_and_the_overflow_do_not_starve_health_checks() {
    let fake = FakeServer::start().await;
    fake.mount_components("PLAT", &["svc"]).await;
    let yaml = format!(
        "{}backend:\n  listen:\n    maxConnections: 16\n",
        server_config(&fake, "", "")
    );
    let app = TestApp::spawn(&yaml).await;
    let address = app.address.trim_start_matches("http://").to_owned();

    // The cap taken by keep-alive connections left idle (75 s idle
    // timeout), the 64 overflow slots and more by sockets that never send
    // a byte (10 s header timeout).
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(idle_keep_alive(&address).await);
    }
    for _ in 0..100 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for path in [
        "/.backstage/health/v1/liveness",
        "/.backstage/health/v1/readiness",
    ] {
        for _ in 0..3 {
            let status = http
                .get(format!("{}{path}", app.address))
                .send()
                .await
                .map(|r| r.status().as_u16());
            assert_eq!(status.ok(), Some(200), "{path} not answered within 2 s");
        }
    }
    // An API request gets through as well (not only the shed health path).
    let listed = http
        .get(format!("{}/api/catalog/entities", app.address))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(listed.ok(), Some(200));
    drop(idle);
}
