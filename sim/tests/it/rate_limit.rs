//! The token bucket: 429 with Retry-After when empty, recovery after the
//! wait, one bucket per credential, refill rate, run-time changes.

use std::time::{Duration, Instant};

use crate::support::{client, get_json, start};
use bitbucket_sim::{Behaviour, EndpointKind, RateLimit, SimConfig};

fn limited(burst: u32, per_second: f64) -> SimConfig {
    SimConfig {
        behaviour: Behaviour {
            rate_limit: Some(RateLimit { burst, per_second }),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn empty_bucket_answers_429_with_retry_after_then_recovers() {
    let sim = start(limited(5, 2.0)).await;
    let c = client();
    let url = format!("{}/projects", sim.server_api_base());
    for i in 0..5 {
        let (status, _) = get_json(&c, &url).await;
        assert_eq!(status, 200, "request {i} is within the burst");
    }
    let response = c.get(&url).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert_eq!(retry_after, 1, "one token at 2/s is back within a second");
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["errors"][0]["message"].is_string());

    // The simulator's own endpoints are never limited.
    let (status, _) = get_json(&c, &format!("{}/__sim/stats", sim.base_url())).await;
    assert_eq!(status, 200);

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, _) = get_json(&c, &url).await;
    assert_eq!(status, 200, "recovered after Retry-After");

    let stats = sim.stats();
    assert_eq!(stats.rate_limited(), 1);
    assert_eq!(stats.kind_status(EndpointKind::ServerProjects, "200"), 6);
}

#[tokio::test]
async fn each_credential_has_its_own_bucket_and_cloud_shares_the_rules() {
    let sim = start(limited(2, 0.5)).await;
    let c = client();
    let url = format!("{}/repositories/acme", sim.cloud_api_base());
    for _ in 0..2 {
        assert_eq!(get_json(&c, &url).await.0, 200);
    }
    let response = c.get(&url).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"2"[..]),
        "0.5 tokens per second: two seconds"
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["type"], "error", "Cloud's error dialect");
    let other = c
        .get(&url)
        .bearer_auth("someone-else")
        .send()
        .await
        .expect("request");
    assert_eq!(
        other.status().as_u16(),
        200,
        "another user's bucket is full"
    );
}

#[tokio::test]
async fn throughput_follows_burst_plus_refill() {
    // 5 tokens up front, 20 per second: about 5 + 20 × 1 s in one second.
    let sim = start(limited(5, 20.0)).await;
    let c = client();
    let url = format!("{}/projects", sim.server_api_base());
    let started = Instant::now();
    let (mut ok, mut limited) = (0, 0);
    while started.elapsed() < Duration::from_secs(1) {
        match get_json(&c, &url).await.0 {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Never more than the bucket allows; on a busy machine fewer requests
    // are attempted, so the lower bound is loose.
    let most = 5 + (20.0 * elapsed).ceil() as usize;
    assert!(
        ok <= most,
        "{ok} answered in {elapsed:.2} s, at most {most}"
    );
    assert!(ok >= 15, "{ok} answered in {elapsed:.2} s");
    assert!(limited > 0);
}

#[tokio::test]
async fn limit_can_be_lifted_and_imposed_at_run_time() {
    let sim = start(limited(1, 0.1)).await;
    let c = client();
    let url = format!("{}/projects", sim.server_api_base());
    assert_eq!(get_json(&c, &url).await.0, 200);
    assert_eq!(get_json(&c, &url).await.0, 429);
    sim.set_behaviour(Behaviour::default()).expect("valid");
    for _ in 0..10 {
        assert_eq!(get_json(&c, &url).await.0, 200);
    }
    let response = c
        .put(format!("{}/__sim/behaviour", sim.base_url()))
        .body(r#"{"rate_limit": {"burst": 1, "per_second": 1.0}}"#)
        .send()
        .await
        .expect("put");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(get_json(&c, &url).await.0, 200);
    assert_eq!(get_json(&c, &url).await.0, 429);
    let invalid = c
        .put(format!("{}/__sim/behaviour", sim.base_url()))
        .body(r#"{"rate_limit": {"burst": 0, "per_second": 1.0}}"#)
        .send()
        .await
        .expect("put");
    assert_eq!(invalid.status().as_u16(), 400);
}
