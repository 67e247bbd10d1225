//! Issue 30: refreshes asked through the API wait below webhook pushes.
//! Against a rate-limited Bitbucket, a push was served 21.5 s after a
//! flood of refreshes instead of 0.6 s.

use std::time::{Duration, Instant};

use bitbucket_sim::{Behaviour, DatasetConfig, RateLimit, RepoRef, SimConfig, Simulator};
use serde_json::json;

use crate::support::sim::SimProviderConfig;
use crate::support::{TestApp, component};

const SECRET: &str = "webhook-s3cret";
/// Issue 30's target: a push is served within seconds, whatever waits.
const BOUND: Duration = Duration::from_secs(3);

/// A push to one repository is served within [`BOUND`] while refreshes of
/// twenty others (the overall pace's burst, from twenty callers) wait
/// for a Bitbucket that lets 2 requests a second through.
#[tokio::test]
async fn a_push_is_served_before_a_flood_of_refreshes_against_a_rate_limited_bitbucket() {
    let sim = Simulator::start(SimConfig {
        dataset: DatasetConfig::components_only(2, 20),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let config = SimProviderConfig::new(&sim).webhook_secret(SECRET).yaml();
    let app = TestApp::spawn(&config).await;
    app.refresh("sim", "").await;
    let repos: Vec<_> = sim.dataset().server_repos().cloned().collect();
    assert_eq!(repos.len(), 40);
    sim.set_behaviour(Behaviour {
        rate_limit: Some(RateLimit {
            burst: 4,
            per_second: 2.0,
        }),
        ..Behaviour::default()
    })
    .expect("rate limit");

    let (pushed, flooded) = repos.split_last().expect("repositories");
    let mut admitted = 0;
    for (i, repo) in flooded.iter().enumerate() {
        // Many clients (an invented token is no token: callers are told
        // apart by address here).
        let last = u8::try_from(i + 2).expect("fits");
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                127, 0, 1, last,
            )))
            .build()
            .expect("client");
        let response = client
            .post(format!("{}/api/catalog/refresh", app.address))
            .json(&json!({"entityRef": repo.entity_refs[0]}))
            .send()
            .await
            .expect("request reaches the app");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert!(status == 200 || status == 429, "{status}: {body}");
        admitted += usize::from(status == 200);
    }
    assert!(admitted >= 15, "{admitted} refreshes admitted");
    // The first refreshes are being read when the push arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let repo = RepoRef::Server {
        project: pushed.project_key.clone(),
        slug: pushed.slug.clone(),
    };
    let event = sim
        .push_file(
            &repo,
            "catalog-info.yaml",
            &component("pushed-past-the-flood"),
        )
        .expect("push");
    let started = Instant::now();
    let status = event
        .deliver(
            &format!("{}/api/events/http/bitbucketServer", app.address),
            Some(SECRET),
        )
        .await
        .expect("the event reaches the daemon");
    assert_eq!(status, 202);
    let path = "/api/catalog/entities/by-name/component/default/pushed-past-the-flood";
    while app.get(path).await.status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the push was not served within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    eprintln!("push served {took:?} after delivery, behind {admitted} refreshes");
    assert!(
        took < BOUND,
        "the push was served {took:?} after delivery, behind {admitted} refreshes"
    );
    app.stop().await;
}
