//! Large answers are streamed as they are rendered (chunked, no length
//! known up front) and are the same JSON as before.

use serde_json::Value;

use crate::support::big_catalog;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entity_list_and_full_change_feed_pages_are_streamed() {
    let (_fake, app) = big_catalog(3000).await;
    for path in [
        "/api/catalog/entities",
        "/api/catalog/entities?filter=kind=component&order=desc:metadata.name",
        "/api/catalog/changes?limit=10000",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        // Written as produced: the length is not known before the end.
        assert!(
            response.headers().get("content-length").is_none(),
            "{path} was built whole before it was sent"
        );
        let body: Value = response.json().await.unwrap();
        let items = body
            .as_array()
            .or_else(|| body["items"].as_array())
            .unwrap();
        assert_eq!(items.len(), 3000, "{path}");
    }
    // The order asked for holds across chunks.
    let names: Vec<String> = app
        .get_json("/api/catalog/entities?order=desc:metadata.name&fields=metadata.name")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(names, sorted);
    // The change feed's page ends with its cursor, after every item.
    let page = app.get_json("/api/catalog/changes?limit=10000").await;
    assert_eq!(page["hasMore"], false);
    assert!(page["cursor"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    app.stop().await;
}
