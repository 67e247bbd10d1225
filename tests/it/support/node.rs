//! The Node.js packages of ours under `tests/`.

use std::path::PathBuf;

use serde_json::Value;

/// Runs `node <args>` in `dir` (a Node package of ours under `tests/`)
/// off the async runtime; panics with its stderr unless it succeeds, and
/// returns its stdout parsed as JSON.
pub async fn node_json(dir: PathBuf, args: Vec<String>) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("node runs")
    })
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}
