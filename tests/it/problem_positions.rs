//! Black-box: every problem of a file at once, each at the line and column
//! of the field at fault, the same in `validate`, the errors API and the
//! status page; bounded per file.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{BIN, FakeServer, TestApp, server_config, text};

/// Three mistakes in two entities: a bad name (line 4), a missing
/// `spec.owner` (placed at `spec:`, line 6) and an empty `spec.system`
/// (line 18).
const THREE_MISTAKES: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: Bad Name!
  description: first
spec:
  type: service
  lifecycle: production
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: second
spec:
  type: service
  lifecycle: production
  owner: team-a
  system: \"\"
";

/// `(line, column, start of the message)` of each expected problem.
const EXPECTED: [(u32, u32, &str); 3] = [
    (4, 9, "component:default/Bad Name!: metadata.name:"),
    (6, 1, "component:default/Bad Name!: spec.owner: is required"),
    (18, 11, "component:default/second: spec.system:"),
];

fn validate_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("validate")
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

#[test]
fn validate_reports_every_mistake_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("catalog-info.yaml"), THREE_MISTAKES).unwrap();
    let output = validate_in(dir.path(), &["catalog-info.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, (l, c, message)) in lines.iter().zip(EXPECTED) {
        let prefix = format!("catalog-info.yaml:{l}:{c}: {message}");
        assert!(line.starts_with(&prefix), "{prefix}\n{stdout}");
    }
}

#[test]
fn a_yaml_syntax_error_is_at_the_parsers_position() {
    let dir = tempfile::tempdir().unwrap();
    // Document 2 starts at line 6; its bad indentation is at line 8.
    let file = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\n# next\n---\napiVersion: backstage.io/v1alpha1\n  kind: - is - not [valid] yaml\n";
    std::fs::write(dir.path().join("broken.yaml"), file).unwrap();
    let output = validate_in(dir.path(), &["broken.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    // In the order of the file: the other document is still checked (it
    // lacks a spec).
    assert!(
        lines[0].starts_with("broken.yaml:1:1: component:default/a: spec: is required"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("broken.yaml:8:7: invalid YAML"),
        "{stdout}"
    );
}

#[test]
fn thousands_of_mistakes_report_at_most_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    // 2,000 bad tags in one entity.
    let tags: Vec<String> = (0..2000).map(|i| format!("Bad{i}")).collect();
    let one = format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: tags\n  tags: [{}]\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
        tags.join(", ")
    );
    std::fs::write(dir.path().join("tags.yaml"), one).unwrap();
    // 1,000 entities with a bad name each.
    let many: Vec<String> = (0..1000)
        .map(|i| {
            format!("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: Bad Name {i}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n")
        })
        .collect();
    std::fs::write(dir.path().join("many.yaml"), many.join("---\n")).unwrap();

    for (file, more) in [("tags.yaml", 1900), ("many.yaml", 900)] {
        let output = validate_in(dir.path(), &[file]);
        assert_eq!(output.status.code(), Some(1));
        let stdout = text(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 101, "{file}: {}", &stdout[..500]);
        assert!(
            lines[100].contains(&format!("and {more} more problem(s)")),
            "{file}: {}",
            lines[100]
        );
        // Each listed one is at its own field, not at 1:1.
        assert!(lines[1].starts_with(&format!("{file}:")), "{}", lines[1]);
        assert!(
            !lines[1].starts_with(&format!("{file}:1:1:")),
            "{}",
            lines[1]
        );
    }
    let output = validate_in(dir.path(), &["many.yaml"]);
    let stdout = text(&output.stdout);
    // Entity 2 starts at line 9 (after 8 lines and a `---`): its name on line 13.
    assert!(
        stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("many.yaml:13:9: component:default/Bad Name 1:")),
        "{}",
        &stdout[..500]
    );
}

#[tokio::test]
async fn the_daemon_serves_the_same_positions_on_the_api_and_the_status_page() {
    let fake = FakeServer::builder()
        .catalog("PLAT", "mistakes", THREE_MISTAKES)
        .catalog(
            "PLAT",
            "syntax",
            "apiVersion: backstage.io/v1alpha1\nkind: [\n",
        )
        .start()
        .await;
    let app = TestApp::spawn(&server_config(&fake, "", "")).await;
    app.wait_for_run("main", |_| true).await;
    let errors = app.get_json("/api/catalog/providers/main/errors").await;
    let problems = errors["problems"].as_array().expect("problems");
    let placed = |repo: &str| -> Vec<(u64, u64, String)> {
        problems
            .iter()
            .filter(|p| {
                p["url"]
                    .as_str()
                    .is_some_and(|u| u.contains(&format!("/repos/{repo}/")))
            })
            .map(|p| {
                let entity = p["entityRef"].as_str().unwrap_or_default();
                (
                    p["line"].as_u64().unwrap_or(0),
                    p["column"].as_u64().unwrap_or(0),
                    format!("{entity}: {}", p["message"].as_str().unwrap_or_default()),
                )
            })
            .collect()
    };
    let mistakes = placed("mistakes");
    assert_eq!(mistakes.len(), 3, "{errors:#}");
    for ((line, column, message), (l, c, expected)) in mistakes.iter().zip(EXPECTED) {
        assert_eq!((*line, *column), (u64::from(l), u64::from(c)), "{message}");
        assert!(message.starts_with(expected), "{message}");
    }
    let syntax = placed("syntax");
    assert_eq!(syntax.len(), 1, "{errors:#}");
    // The unclosed `[` of line 2.
    assert_eq!((syntax[0].0, syntax[0].1), (2, 7), "{syntax:?}");

    let html = app.get("/").await.text().await.unwrap();
    for (l, c, _) in EXPECTED {
        assert!(
            html.contains(&format!("catalog-info.yaml:{l}:{c}</a>")),
            "{l}:{c} {html}"
        );
    }
    let summary = app.get_json("/api/catalog/providers/main").await;
    let listed: Vec<&Value> = summary["lastRun"]["problems"]
        .as_array()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    assert!(
        listed.iter().any(|p| p["line"] == 18 && p["column"] == 11),
        "{summary:#}"
    );
    app.stop().await;
}
