//! Issue 30's leftovers: the query budget is CPU time named by its config
//! key; clients are told apart by a known token's subject or, behind a
//! trusted proxy, by `X-Forwarded-For` (and invented tokens buy nothing);
//! a ref withheld after an API delete stays withheld across a restart;
//! `DELETE /entities/by-uid` racing a webhook re-read of the same
//! repository never undoes that read.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bitbucket_sim::{RepoRef, WebhookEvent};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{FakeServer, TestApp, component, server_config};

/// 999 `$hasPrefix` terms, none matching (the heavy query).
fn heavy_query() -> Value {
    let terms: Vec<Value> = (0..999)
        .map(|i| json!({"metadata.name": {"$hasPrefix": format!("no-such-prefix-{i:04}")}}))
        .collect();
    json!({"query": {"$any": terms}, "limit": 10})
}

/// A client whose requests come from `127.0.0.{n}`.
fn from_address(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `backend.queryBudget.cpu` sets the budget, and the 503 names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_stopped_at_its_cpu_budget_and_the_503_names_the_key() {
    let file: Vec<String> = (0..3000).map(|i| component(&format!("c{i}"))).collect();
    let fake = FakeServer::builder()
        .catalog("PLAT", "big", &file.join("---\n"))
        .start()
        .await;
    let yaml = format!(
        "{}backend:\n  queryBudget:\n    cpu: {{milliseconds: 300}}\n    wallClock: {{seconds: 30}}\n",
        server_config(&fake, "", "")
    );
    let app = TestApp::spawn(&yaml).await;
    app.wait_for_run("main", |s| s["entities"] == 3000).await;
    let started = Instant::now();
    let response = from_address(2)
        .post(format!("{}/api/catalog/entities/by-query", app.address))
        .json(&heavy_query())
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("budget of 300 ms of CPU time")
            && message.contains("backend.queryBudget.cpu"),
        "{body:#}"
    );
    // Stopped by its CPU time, not by the wall-clock backstop (30 s), even
    // when a loaded machine stretches 0.3 s of CPU over seconds.
    assert!(!message.contains("wallClock"), "{body:#}");
    assert!(took < Duration::from_secs(25), "stopped after {took:?}");
    app.stop().await;
}

/// The per-caller pace of requests that read Bitbucket, as a probe of who
/// the daemon thinks is calling.
const PACED: &str = "backend:\n  trustedProxies: [127.0.0.1/32]\n  apiRateLimit:\n    bitbucketReads:\n      perCaller: {perMinute: 1, burst: 2}\n      overall: {perMinute: 10000, burst: 10000}\n  auth:\n    dangerouslyDisableDefaultAuthPolicy: true\n    externalAccess:\n      - type: static\n        options:\n          token: portal-token\n          subject: portal\n";

/// `POST /validate-entity` (paced before anything is read) from `client`
/// with `headers`: `true` when the caller's pace refused it.
async fn refused_per_caller(
    app: &TestApp,
    client: &reqwest::Client,
    headers: &[(&str, &str)],
) -> bool {
    let mut request = client
        .post(format!("{}/api/catalog/validate-entity", app.address))
        .json(&json!({}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let per_caller = status == 429
        && body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("perCaller"));
    assert!(per_caller || status != 429, "{status}: {body:#}");
    per_caller
}

/// Sends three requests; `true` when the third (past a burst of two) was
/// refused, i.e. all three counted as one caller.
async fn one_caller(app: &TestApp, sends: [(&reqwest::Client, Vec<(&str, &str)>); 3]) -> bool {
    let mut refused = false;
    for (client, headers) in sends {
        refused = refused_per_caller(app, client, &headers).await;
    }
    refused
}

#[tokio::test]
async fn callers_are_a_known_tokens_subject_or_the_address_a_trusted_proxy_names() {
    let fake = FakeServer::builder().component("PLAT", "svc").start().await;
    let app = TestApp::spawn(&format!("{}{PACED}", server_config(&fake, "", ""))).await;
    let proxy = from_address(1);
    let xff = |client: &'static str| vec![("x-forwarded-for", client)];

    // Behind the trusted proxy (127.0.0.1), clients are the addresses it names.
    assert!(
        one_caller(
            &app,
            [
                (&proxy, xff("198.51.100.1")),
                (&proxy, xff("198.51.100.1")),
                (&proxy, xff("198.51.100.1")),
            ]
        )
        .await,
        "one client behind the proxy was not paced as one"
    );
    assert!(
        !refused_per_caller(&app, &proxy, &xff("198.51.100.2")).await,
        "another client behind the proxy shared the first one's pace"
    );

    // From an untrusted peer, X-Forwarded-For is the client's own claim.
    let direct = from_address(2);
    assert!(
        one_caller(
            &app,
            [
                (&direct, xff("203.0.113.1")),
                (&direct, xff("203.0.113.2")),
                (&direct, xff("203.0.113.3")),
            ]
        )
        .await,
        "an untrusted peer bought new paces with X-Forwarded-For"
    );

    // A known token is one caller from any address.
    let bearer = vec![("authorization", "Bearer portal-token")];
    assert!(
        one_caller(
            &app,
            [
                (&from_address(3), bearer.clone()),
                (&from_address(4), bearer.clone()),
                (&from_address(5), bearer.clone()),
            ]
        )
        .await,
        "a token's subject was not one caller across addresses"
    );

    // Invented tokens are no tokens: the address is the caller.
    let inventor = from_address(6);
    assert!(
        one_caller(
            &app,
            [
                (&inventor, vec![("authorization", "Bearer made-up-1")]),
                (&inventor, vec![("authorization", "Bearer made-up-2")]),
                (&inventor, vec![("authorization", "Bearer made-up-3")]),
            ]
        )
        .await,
        "invented tokens bought new paces"
    );
    app.stop().await;
}

/// The served entity named `name`, if any.
async fn served(app: &TestApp, name: &str) -> Option<Value> {
    let response = app
        .get(&format!(
            "/api/catalog/entities/by-name/component/default/{name}"
        ))
        .await;
    if response.status() != 200 {
        return None;
    }
    Some(response.json().await.expect("JSON"))
}

/// A `payments` component owned by `owner`.
fn payments(owner: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: payments\nspec:\n  type: service\n  lifecycle: production\n  owner: {owner}\n"
    )
}

/// The takeover of issue 30 across a restart: a deleted entity's ref stays
/// its repository's, so the contesting file cannot take it once the daemon
/// comes back from its store.
#[tokio::test]
async fn a_withheld_ref_stays_withheld_across_a_restart() {
    let fake = FakeServer::builder()
        .catalog(
            "PAY",
            "payments",
            &format!("{}---\n{}", payments("team-pay"), component("pay-svc")),
        )
        .catalog(
            "ZZZ",
            "evil",
            &format!("{}---\n{}", component("evil-svc"), payments("mallory")),
        )
        .start()
        .await;
    let manual = "        schedule:\n          frequency: { trigger: manual }\n          initialDelay: { hours: 1 }\n";
    let yaml = server_config(&fake, "", manual);
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("catalog.sqlite");
    let database = database.to_str().unwrap();

    let app = TestApp::spawn_with_database(&yaml, database).await;
    app.refresh("main", "").await;
    let real = served(&app, "payments").await.expect("payments served");
    let holder = real["spec"]["owner"].as_str().expect("owner").to_owned();
    let contester_sibling = if holder == "team-pay" {
        "component:default/evil-svc"
    } else {
        "component:default/pay-svc"
    };
    let uid = real["metadata"]["uid"].as_str().expect("uid").to_owned();
    let (status, body) = app
        .send(
            Method::DELETE,
            &format!("/api/catalog/entities/by-uid/{uid}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 204, "{body:#}");
    app.stop().await;

    // Back from the store: only the contester's repository is read.
    let app = TestApp::spawn_with_database(&yaml, database).await;
    assert!(
        served(&app, "payments").await.is_none(),
        "withheld, not served"
    );
    let before = app.get_json("/api/catalog/providers/main").await["lastEvent"].clone();
    let (status, body) = app
        .send(
            Method::POST,
            "/api/catalog/refresh",
            Some(json!({"entityRef": contester_sibling})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let last = app.get_json("/api/catalog/providers/main").await["lastEvent"].clone();
        if last != before && last["outcome"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "the contester was never read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(taken) = served(&app, "payments").await {
        panic!("after a restart the contesting file took the ref: {taken:#}");
    }
    // The holder's repository, read again, serves it as before.
    app.refresh("main", "").await;
    let back = served(&app, "payments").await.expect("payments back");
    assert_eq!(back["spec"]["owner"], holder.as_str(), "{back:#}");
    app.stop().await;
}

const SECRET: &str = "race-s3cret";

/// A component `name` whose description is `text`.
fn described(name: &str, text: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  description: {text}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
    )
}

async fn deliver(app: &TestApp, event: &WebhookEvent) {
    let status = event
        .deliver(
            &format!("{}/api/events/http/bitbucketServer", app.address),
            Some(SECRET),
        )
        .await
        .expect("the event reaches the daemon");
    assert_eq!(status, 202);
}

/// Waits (10 s at most) until the simulator served a request more than `reads`.
async fn until_read(sim: &bitbucket_sim::Simulator, reads: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.stats().requests <= reads {
        assert!(Instant::now() < deadline, "the pushed file was never read");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Polls (10 s at most) until `name` is served with description `text`.
async fn until_described(app: &TestApp, name: &str, text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if served(app, name)
            .await
            .is_some_and(|e| e["metadata"]["description"] == text)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The uid-removal race: a `DELETE /entities/by-uid` that arrives while a
/// webhook's re-read of the same repository waits for its turn to apply
/// (behind a large batch of another provider) must not apply a copy of the
/// repository taken before that read. Whatever the order, the end state
/// is the pushed file: its sibling as pushed, the deleted entity either
/// withheld or served as pushed, never an older copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_removal_racing_a_webhook_reread_never_undoes_the_read() {
    let sim = crate::support::sim::components_simulator(2, 1).await;
    let repos: Vec<RepoRef> = sim
        .dataset()
        .server_repos()
        .map(|r| RepoRef::Server {
            project: r.project_key.clone(),
            slug: r.slug.clone(),
        })
        .collect();
    let keys: Vec<String> = sim
        .dataset()
        .server_repos()
        .map(|r| r.project_key.clone())
        .collect();
    let (target, big) = (&repos[0], &repos[1]);
    let provider = |id: &str, key: &str| {
        format!(
            "      {id}:\n        host: {host}\n        filters: {{projectKey: '{key}'}}\n        schedule: {{frequency: {{trigger: manual}}}}\n",
            host = sim.host()
        )
    };
    let yaml = format!(
        "integrations:\n  bitbucketServer:\n    - host: {host}\n      apiBaseUrl: {api}\n      webhookSecret: {SECRET}\nbackend:\n  apiRateLimit:\n    deletions: {{perMinute: 6000, burst: 1000}}\ncatalog:\n  providers:\n    bitbucketServer:\n{target_provider}{big_provider}",
        host = sim.host(),
        api = sim.server_api_base(),
        target_provider = provider("sim", &keys[0]),
        big_provider = provider("big", &keys[1]),
    );
    let app = TestApp::spawn(&yaml).await;
    app.refresh("sim", "").await;
    app.refresh("big", "").await;
    let big_file = |round: usize| {
        (0..1500)
            .map(|i| described(&format!("big-{i}"), &format!("round {round}")))
            .collect::<Vec<_>>()
            .join("---\n")
    };
    let target_file = |text: &str| {
        format!(
            "{}---\n{}",
            described("victim", text),
            described("sibling", text)
        )
    };
    deliver(
        &app,
        &sim.push_file(big, "catalog-info.yaml", &big_file(0))
            .unwrap(),
    )
    .await;
    assert!(until_described(&app, "big-1499", "round 0").await);

    // The target's push is delivered `offset` after the large file was
    // read, so that its read lands while the large batch parses or
    // applies; the removal follows the target's read at once, while that
    // read's batch waits for its turn behind the large one.
    let offsets = [0_u64, 150, 300, 450, 600, 800, 1000, 1300];
    for (round, offset) in offsets.iter().enumerate() {
        let round = round + 1;
        let before = format!("before {round}");
        let pushed = format!("pushed {round}");
        deliver(
            &app,
            &sim.push_file(target, "catalog-info.yaml", &target_file(&before))
                .unwrap(),
        )
        .await;
        assert!(
            until_described(&app, "victim", &before).await,
            "round {round}: set-up"
        );
        assert!(
            until_described(&app, "sibling", &before).await,
            "round {round}: set-up"
        );
        let uid = served(&app, "victim").await.expect("victim")["metadata"]["uid"]
            .as_str()
            .expect("uid")
            .to_owned();

        let reads = sim.stats().requests;
        deliver(
            &app,
            &sim.push_file(big, "catalog-info.yaml", &big_file(round))
                .unwrap(),
        )
        .await;
        until_read(&sim, reads).await;
        tokio::time::sleep(Duration::from_millis(*offset)).await;
        let reads = sim.stats().requests;
        deliver(
            &app,
            &sim.push_file(target, "catalog-info.yaml", &target_file(&pushed))
                .unwrap(),
        )
        .await;
        until_read(&sim, reads).await;
        let (status, body) = app
            .send(
                Method::DELETE,
                &format!("/api/catalog/entities/by-uid/{uid}"),
                None,
                None,
            )
            .await;
        assert!(
            [204, 404].contains(&status),
            "round {round}: {status} {body:#}"
        );

        assert!(
            until_described(&app, "big-1499", &format!("round {round}")).await,
            "round {round}: the large push was not applied"
        );
        assert!(
            until_described(&app, "sibling", &pushed).await,
            "round {round}: the pushed sibling was never served: {:#}",
            served(&app, "sibling").await.unwrap_or_default()
        );
        // Everything queued has applied by now.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let sibling = served(&app, "sibling").await.expect("sibling served");
        assert_eq!(
            sibling["metadata"]["description"], pushed,
            "round {round} (offset {offset} ms): the removal applied a copy older than the push: {sibling:#}"
        );
        if let Some(victim) = served(&app, "victim").await {
            assert_eq!(
                victim["metadata"]["description"], pushed,
                "round {round}: the deleted entity came back older than the push: {victim:#}"
            );
        }
    }
    app.stop().await;
}
