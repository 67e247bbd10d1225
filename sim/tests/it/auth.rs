//! Required credentials: Bearer tokens and Basic pairs; 401 otherwise.

use crate::support::{client, start};
use bitbucket_sim::{AuthConfig, SimConfig};

#[tokio::test]
async fn only_configured_credentials_get_in() {
    let sim = start(SimConfig {
        auth: AuthConfig {
            bearer_tokens: vec!["s3cret-token".into()],
            basic: vec![("svc@example.com".into(), "api-token".into())],
        },
        ..SimConfig::default()
    })
    .await;
    let c = client();
    let server = format!("{}/projects", sim.server_api_base());
    let cloud = format!("{}/repositories/acme", sim.cloud_api_base());

    for url in [&server, &cloud] {
        let ok = c
            .get(url)
            .bearer_auth("s3cret-token")
            .send()
            .await
            .expect("req");
        assert_eq!(ok.status().as_u16(), 200);
        let ok = c
            .get(url)
            .basic_auth("svc@example.com", Some("api-token"))
            .send()
            .await
            .expect("req");
        assert_eq!(ok.status().as_u16(), 200);
        // Scheme names are case-insensitive.
        let ok = c
            .get(url)
            .header("Authorization", "bearer s3cret-token")
            .send()
            .await
            .expect("req");
        assert_eq!(ok.status().as_u16(), 200);

        for denied in [
            c.get(url),
            c.get(url).bearer_auth("wrong"),
            c.get(url).basic_auth("svc@example.com", Some("wrong")),
            c.get(url).basic_auth("s3cret-token", None::<&str>),
            c.get(url).header("Authorization", "Bearer"),
            c.get(url).header("Authorization", "Basic !!!not-base64"),
        ] {
            let response = denied.send().await.expect("req");
            assert_eq!(response.status().as_u16(), 401, "{url}");
            assert!(response.headers().contains_key("www-authenticate"));
            let body: serde_json::Value = response.json().await.expect("json");
            if url == &server {
                assert!(body["errors"][0]["message"].is_string(), "{body}");
            } else {
                assert_eq!(body["type"], "error");
            }
        }
    }
    // The simulator's own endpoints need no credentials.
    let stats = c
        .get(format!("{}/__sim/stats", sim.base_url()))
        .send()
        .await
        .expect("req");
    assert_eq!(stats.status().as_u16(), 200);
    assert_eq!(sim.stats().status("401"), 12);
    assert!(sim.app_config_snippet().contains("token: s3cret-token"));
}
