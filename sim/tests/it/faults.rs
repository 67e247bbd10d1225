//! Injected faults: ratios within loose statistical bounds, what a client
//! sees for each kind, determinism per seed, and latency.

use std::time::{Duration, Instant};

use crate::support::{client, start};
use bitbucket_sim::{Behaviour, DatasetConfig, EndpointKind, Faults, SimConfig, Simulator};

fn with_faults(seed: u64, faults: Faults) -> SimConfig {
    SimConfig {
        seed,
        dataset: DatasetConfig {
            projects: 10,
            repos_per_project: 40,
            ..DatasetConfig::default()
        },
        behaviour: Behaviour {
            faults,
            ..Behaviour::default()
        },
        ..SimConfig::default()
    }
}

/// Raw-file URLs of every repository: 400 distinct requests.
fn raw_urls(sim: &Simulator) -> Vec<String> {
    sim.dataset()
        .server_repos()
        .map(|r| {
            format!(
                "{}/projects/{}/repos/{}/raw/README.md",
                sim.server_api_base(),
                r.project_key,
                r.slug
            )
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Ok,
    Status(u16),
    /// No response, or a body that did not arrive whole.
    Broken,
}

async fn fetch(c: &reqwest::Client, url: &str) -> Seen {
    match c.get(url).send().await {
        Err(_) => Seen::Broken,
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Err(_) => Seen::Broken,
                Ok(_) if status == 200 => Seen::Ok,
                Ok(_) => Seen::Status(status),
            }
        }
    }
}

async fn fetch_all(sim: &Simulator) -> Vec<Seen> {
    let c = client();
    let mut seen = Vec::new();
    for url in raw_urls(sim) {
        seen.push(fetch(&c, &url).await);
    }
    seen
}

#[tokio::test]
async fn server_errors_at_about_the_ratio() {
    let sim = start(with_faults(
        1,
        Faults {
            server_error: 0.2,
            ..Faults::default()
        },
    ))
    .await;
    let seen = fetch_all(&sim).await;
    let errors = seen
        .iter()
        .filter(|s| matches!(s, Seen::Status(500 | 502 | 503)))
        .count();
    assert!((50..=110).contains(&errors), "{errors} of 400 (expect ~80)");
    assert_eq!(
        seen.iter().filter(|s| **s == Seen::Ok).count() + errors,
        400
    );
    let stats = sim.stats();
    assert_eq!(stats.faults.server_error, errors as u64);
    assert_eq!(stats.kind_requests(EndpointKind::ServerRaw), 400);
    let counted: u64 = ["500", "502", "503"].iter().map(|s| stats.status(s)).sum();
    assert_eq!(counted, errors as u64);
}

#[tokio::test]
async fn resets_close_the_connection_without_a_response() {
    let sim = start(with_faults(
        2,
        Faults {
            reset: 0.2,
            ..Faults::default()
        },
    ))
    .await;
    let seen = fetch_all(&sim).await;
    let broken = seen.iter().filter(|s| **s == Seen::Broken).count();
    assert!((50..=110).contains(&broken), "{broken} of 400 (expect ~80)");
    let stats = sim.stats();
    assert_eq!(stats.faults.reset, broken as u64);
    assert_eq!(stats.status("reset"), broken as u64);
    assert_eq!(stats.status("200"), 400 - broken as u64);
}

#[tokio::test]
async fn truncated_bodies_fail_to_read_and_slow_ones_arrive_late_but_whole() {
    let sim = start(with_faults(
        3,
        Faults {
            truncate: 1.0,
            ..Faults::default()
        },
    ))
    .await;
    let c = client();
    let url = raw_urls(&sim).remove(0);
    let response = c.get(&url).send().await.expect("headers arrive");
    assert_eq!(response.status().as_u16(), 200);
    let declared = response.content_length().expect("Content-Length");
    assert!(response.bytes().await.is_err(), "body ends early");
    let stats = sim.stats();
    assert_eq!(stats.faults.truncated, 1);
    assert_eq!(stats.bytes, declared / 2);

    sim.set_behaviour(Behaviour {
        faults: Faults {
            slow: 1.0,
            slow_body: Duration::from_millis(400),
            ..Faults::default()
        },
        ..Behaviour::default()
    })
    .expect("valid");
    let started = Instant::now();
    let response = c.get(&url).send().await.expect("headers arrive");
    let body = response.text().await.expect("whole body");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let repo = sim.dataset().server_repos().next().expect("repo");
    assert_eq!(Some(body.as_str()), repo.file("README.md"));
    assert_eq!(sim.stats().faults.slow, 1);
}

#[tokio::test]
async fn same_seed_same_faults_and_retries_are_rolled_afresh() {
    let faults = Faults {
        server_error: 0.15,
        reset: 0.15,
        ..Faults::default()
    };
    let a = fetch_all(&start(with_faults(9, faults.clone())).await).await;
    let b = fetch_all(&start(with_faults(9, faults.clone())).await).await;
    let c = fetch_all(&start(with_faults(10, faults.clone())).await).await;
    assert_eq!(a, b, "same seed, same outcomes");
    assert_ne!(a, c, "another seed, other outcomes");

    // A request that failed succeeds on a later attempt (bounded retries).
    let sim = start(with_faults(
        9,
        Faults {
            server_error: 0.5,
            ..Faults::default()
        },
    ))
    .await;
    let client = client();
    for url in raw_urls(&sim).into_iter().take(20) {
        let mut attempts = 0;
        while fetch(&client, &url).await != Seen::Ok {
            attempts += 1;
            assert!(attempts < 30, "{url} never succeeded");
        }
    }
    let stats = sim.stats();
    assert_eq!(stats.distinct_requests, 20);
    assert_eq!(stats.repeated_requests(), stats.faults.server_error);
}

#[tokio::test]
async fn latency_delays_api_requests_only() {
    let sim = start(SimConfig {
        behaviour: Behaviour {
            latency: Duration::from_millis(150),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let started = Instant::now();
    let response = c
        .get(format!("{}/projects", sim.server_api_base()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    c.get(format!("{}/__sim/stats", sim.base_url()))
        .send()
        .await
        .expect("request");
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn fault_ratios_over_one_are_rejected() {
    let config = with_faults(
        1,
        Faults {
            server_error: 0.6,
            reset: 0.6,
            ..Faults::default()
        },
    );
    assert!(Simulator::start(config).await.is_err());
}
