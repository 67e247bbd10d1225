//! The `/__sim` endpoints, shutdown, and the binary's start-up output.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{client, get_json, start};
use bitbucket_sim::{EndpointKind, SimConfig, Stats};

#[tokio::test]
async fn stats_over_http_match_the_library_and_reset() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let api = sim.server_api_base();
    get_json(&c, &format!("{api}/projects")).await;
    get_json(&c, &format!("{api}/projects")).await;
    get_json(&c, &format!("{api}/projects/NOPE/repos")).await;

    let response = c
        .get(format!("{}/__sim/stats", sim.base_url()))
        .send()
        .await
        .expect("stats");
    let over_http: Stats = response.json().await.expect("Stats JSON");
    assert_eq!(over_http, sim.stats());
    assert_eq!((over_http.requests, over_http.distinct_requests), (3, 2));
    assert_eq!(
        over_http.kind_status(EndpointKind::ServerProjects, "200"),
        2
    );
    assert_eq!(over_http.kind_status(EndpointKind::ServerRepos, "404"), 1);
    assert!(over_http.kind(EndpointKind::ServerProjects).bytes > 0);

    let reset = c
        .post(format!("{}/__sim/stats/reset", sim.base_url()))
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status().as_u16(), 204);
    assert_eq!(sim.stats(), Stats::default());

    let (status, dataset) = get_json(&c, &format!("{}/__sim/dataset", sim.base_url())).await;
    assert_eq!(status, 200);
    assert_eq!(
        dataset["summary"]["server_repos"],
        serde_json::json!(sim.dataset().server_repos().count())
    );
    let (_, repos) = get_json(&c, &format!("{}/__sim/dataset/repos", sim.base_url())).await;
    let first = &repos["server"][0];
    let want = sim.dataset().server_repos().next().expect("repo");
    assert_eq!(first["slug"], serde_json::json!(want.slug));
    assert_eq!(first["entity_refs"], serde_json::json!(want.entity_refs));
    assert_eq!(
        sim.stats(),
        Stats::default(),
        "admin requests are not counted"
    );
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let sim = start(SimConfig::default()).await;
    let addr = sim.addr();
    assert!(addr.ip().is_loopback());
    sim.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Kills the child we started even when an assertion fails first.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The simulator binary on a free port, and its stdout.
fn spawn_sim(args: &[&std::ffi::OsStr]) -> (KillOnDrop, std::process::ChildStdout) {
    let child = Command::new(env!("CARGO_BIN_EXE_bitbucket-sim"))
        .args(["--port", "0", "--token", "t0k"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bitbucket-sim");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("stdout");
    (child, stdout)
}

#[test]
fn binary_prints_urls_and_a_config_snippet() {
    let (child, stdout) = spawn_sim(&["--projects".as_ref(), "3".as_ref()]);
    // Read until the end of the snippet (bounded by the banner's size).
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.contains("timeout:"))
        .take(40)
        .collect();
    let text = lines.join("\n");
    let base = lines
        .first()
        .and_then(|l| l.strip_prefix("bitbucket-sim listening on "))
        .expect("first line names the URL")
        .to_owned();
    let host = base.trim_start_matches("http://");
    assert!(
        text.contains(&format!("apiBaseUrl: {base}/rest/api/1.0")),
        "{text}"
    );
    assert!(text.contains(&format!("- host: {host}")), "{text}");
    assert!(text.contains("token: t0k"));
    assert!(text.contains("3 projects"));

    // It answers plain HTTP on that address.
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET /__sim/stats HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .expect("read");
    assert!(status_line.starts_with("HTTP/1.1 200"), "{status_line}");
    drop(child);
}

#[test]
fn binary_writes_the_config_fragment_to_a_file() {
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sim-config-{}.yaml", std::process::id()));
    let (child, stdout) = spawn_sim(&["--write-config".as_ref(), file.as_os_str()]);
    // The banner comes after the file is written.
    let first = BufReader::new(stdout)
        .lines()
        .next()
        .and_then(Result::ok)
        .expect("banner");
    let base = first
        .strip_prefix("bitbucket-sim listening on ")
        .expect("first line names the URL");
    let written = std::fs::read_to_string(&file).expect("config written");
    let yaml: serde_json::Value = serde_saphyr::from_str(&written).expect("the file is YAML");
    assert_eq!(
        yaml["integrations"]["bitbucketServer"][0]["apiBaseUrl"],
        format!("{base}/rest/api/1.0")
    );
    assert_eq!(yaml["integrations"]["bitbucketServer"][0]["token"], "t0k");
    assert!(yaml["catalog"]["providers"]["bitbucketServer"]["sim"].is_object());
    drop(child);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn binary_takes_the_real_estate_flags() {
    let args = [
        "--monorepo-ratio",
        "1",
        "--monorepo-files",
        "3,4",
        "--codeowners-ratio",
        "0.5",
        "--code-search-unstable-order",
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let (child, stdout) = spawn_sim(&args);
    let estate = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take(20)
        .find(|l| l.starts_with("real estate:"))
        .expect("a real estate line");
    assert!(estate.contains("Server 40 monorepos"), "{estate}");
    drop(child);

    // A reversed range is refused before anything starts.
    let status = Command::new(env!("CARGO_BIN_EXE_bitbucket-sim"))
        .args(["--port", "0", "--monorepo-files", "9,2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    assert!(!status.success());
}
