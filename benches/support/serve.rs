//! `serve` on a store of the bench's own, timed from spawn to readiness
//! (probed with std only, so no client's start-up is in the figure), and
//! stopped the way an operator stops it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `serve` on `config` with `env` added (e.g. the store's
/// `APP_CONFIG_backend_database_connection`) on a free loopback port and
/// waits until it is ready, at most `limit`: the child, its base URL and
/// the time from spawn to ready.
pub fn serve_until_ready(
    config: &Path,
    env: &[(&str, String)],
    limit: Duration,
) -> (Child, String, Duration) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
        .args(["serve", "--config"])
        .arg(config)
        .env("APP_CONFIG_backend_listen_host", "127.0.0.1")
        .env("APP_CONFIG_backend_listen_port", port.to_string())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("daemon starts");
    let address = format!("http://127.0.0.1:{port}");
    let ready_url = format!("{address}/.backstage/health/v1/readiness");
    while !ready(&ready_url) {
        assert!(started.elapsed() < limit, "daemon never became ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, address, started.elapsed())
}

/// `true` when `url` answers 200.
pub fn ready(url: &str) -> bool {
    use std::io::{Read, Write};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

/// SIGTERM, then waits: the daemon closes its store before it exits.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
