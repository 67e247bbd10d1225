//! Shared helpers for the simulator's black-box tests.

use std::time::Duration;

use bitbucket_sim::{SimConfig, Simulator};
use serde_json::Value;

/// A client that never goes through a proxy and opens a fresh connection
/// per request, so a reset or truncation only affects its own request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

pub async fn start(config: SimConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

/// GET → (status, JSON body or Null when the body is not JSON).
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn get_text(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// Follows Bitbucket Server paging from `start=0`; returns every value and the pages seen.
pub async fn server_all(
    client: &reqwest::Client,
    url: &str,
    limit: usize,
) -> (Vec<Value>, Vec<Value>) {
    let mut values = Vec::new();
    let mut pages = Vec::new();
    let mut start = 0u64;
    for _ in 0..10_000 {
        let sep = if url.contains('?') { '&' } else { '?' };
        let (status, page) =
            get_json(client, &format!("{url}{sep}start={start}&limit={limit}")).await;
        assert_eq!(status, 200, "{page}");
        values.extend(page["values"].as_array().expect("values").iter().cloned());
        let last = page["isLastPage"].as_bool().expect("isLastPage");
        pages.push(page.clone());
        if last {
            return (values, pages);
        }
        start = page["nextPageStart"]
            .as_u64()
            .expect("nextPageStart when not last");
    }
    panic!("paging did not end");
}

/// Follows Bitbucket Cloud `next` links; returns every value and the pages seen.
pub async fn cloud_all(client: &reqwest::Client, first: &str) -> (Vec<Value>, Vec<Value>) {
    let mut values = Vec::new();
    let mut pages = Vec::new();
    let mut url = first.to_owned();
    for _ in 0..10_000 {
        let (status, page) = get_json(client, &url).await;
        assert_eq!(status, 200, "{url}: {page}");
        values.extend(page["values"].as_array().expect("values").iter().cloned());
        pages.push(page.clone());
        match page["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return (values, pages),
        }
    }
    panic!("paging did not end");
}
