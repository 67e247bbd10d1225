//! Black-box: `bitbucket-catalogd validate`, a repository's own CI check,
//! and its verdicts compared with Backstage's (`@backstage/catalog-model`
//! over the same corpus, tests/catalog-client/verdicts.mjs). Needs
//! `npm ci --prefix tests/catalog-client` (the README's test command runs it).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{BIN, text};

/// Every kind Backstage builds in, for the corpus run with `--config`.
const ALL_KINDS: &str = "Component,API,Location,System,Domain,Resource,Group,User";

/// Files on which `validate` deliberately disagrees with
/// `@backstage/catalog-model` alone (see the README's "Validate catalog
/// files in CI"): none in this corpus.
const DELIBERATE_DIFFERENCES: &[&str] = &[];

fn validate(args: &[&str], dir: &Path, stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("validate")
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("binary ends")
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/validate")
}

/// `good/x.yaml`, `bad/y.yaml`, … relative to the corpus directory.
fn corpus() -> Vec<String> {
    let mut files = Vec::new();
    for group in ["good", "bad"] {
        for entry in std::fs::read_dir(corpus_dir().join(group)).expect("corpus") {
            let name = entry.expect("entry").file_name();
            files.push(format!("{group}/{}", name.to_string_lossy()));
        }
    }
    files.sort();
    files
}

/// Backstage's verdict per file.
fn backstage_verdicts(files: &[String], allow: Option<&str>) -> BTreeMap<String, bool> {
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/catalog-client");
    assert!(
        node_dir
            .join("node_modules/@backstage/catalog-model")
            .is_dir(),
        "@backstage/catalog-model is not installed: run `npm ci --prefix tests/catalog-client` (the README's test command does)"
    );
    let mut command = Command::new("node");
    command.arg(node_dir.join("verdicts.mjs"));
    if let Some(allow) = allow {
        command.arg(format!("--allow={allow}"));
    }
    let output = command
        .args(files)
        .current_dir(corpus_dir())
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "verdicts.mjs failed: {}",
        text(&output.stderr)
    );
    let verdicts: BTreeMap<String, Value> =
        serde_json::from_slice(&output.stdout).expect("verdicts.mjs prints JSON");
    verdicts
        .into_iter()
        .map(|(file, v)| (file, v["valid"].as_bool().expect("valid")))
        .collect()
}

/// Our verdict per file (exit 0 or 1, and lines exactly when invalid).
fn our_verdicts(files: &[String], config: Option<&Path>) -> BTreeMap<String, bool> {
    files
        .iter()
        .map(|file| {
            let mut args = Vec::new();
            let config_arg;
            if let Some(config) = config {
                config_arg = config.to_string_lossy().into_owned();
                args.extend(["--config", config_arg.as_str()]);
            }
            args.push(file);
            let output = validate(&args, &corpus_dir(), None);
            let stdout = text(&output.stdout);
            let valid = match output.status.code() {
                Some(0) => true,
                Some(1) => false,
                other => panic!("{file}: exit {other:?}: {}", text(&output.stderr)),
            };
            assert_eq!(stdout.is_empty(), valid, "{file}: {stdout}");
            for line in stdout.lines() {
                assert!(
                    line.starts_with(&format!("{file}:")),
                    "{file}: a line names another file: {line}"
                );
            }
            (file.clone(), valid)
        })
        .collect()
}

fn assert_agree(ours: &BTreeMap<String, bool>, backstage: &BTreeMap<String, bool>) {
    let differing: Vec<&str> = ours
        .iter()
        .filter(|(file, valid)| backstage.get(*file) != Some(valid))
        .map(|(file, _)| file.as_str())
        .collect();
    assert_eq!(
        differing, DELIBERATE_DIFFERENCES,
        "ours: {ours:#?}\nbackstage: {backstage:#?}"
    );
}

#[test]
fn verdicts_match_backstages_own_validation() {
    let files = corpus();
    assert!(files.len() >= 15, "{files:?}");

    // Backstage's default catalog.rules: Component, API and Location only.
    let ours = our_verdicts(&files, None);
    assert_agree(&ours, &backstage_verdicts(&files, None));
    assert!(!ours["good/many-kinds.yaml"]);

    // With a config, its catalog.rules count.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rules.yaml");
    std::fs::write(
        &config,
        format!("catalog:\n  rules:\n    - allow: [{ALL_KINDS}]\n"),
    )
    .unwrap();
    let ours = our_verdicts(&files, Some(&config));
    assert_agree(&ours, &backstage_verdicts(&files, Some(ALL_KINDS)));
    // The corpus says what it means: good files pass, bad ones fail.
    for (file, valid) in &ours {
        assert_eq!(*valid, file.starts_with("good/"), "{file}");
    }
}

#[test]
fn each_problem_is_one_line_naming_its_place() {
    let output = validate(
        &[
            "bad/second-document.yaml",
            "bad/syntax.yaml",
            "good/component.yaml",
        ],
        &corpus_dir(),
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    // A missing field is placed at the field holding it (`spec:` of the
    // second document); the parser names the column of a syntax error.
    assert!(
        lines[0].starts_with("bad/second-document.yaml:14:1: component:default/broken: spec.owner"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("bad/syntax.yaml:4:9: invalid YAML"),
        "{stdout}"
    );

    let output = validate(&["-"], &corpus_dir(), Some("kind: [\n"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).starts_with("<stdin>:1:"),
        "{}",
        text(&output.stdout)
    );
    let good = std::fs::read_to_string(corpus_dir().join("good/component.yaml")).unwrap();
    let output = validate(&["-"], &corpus_dir(), Some(&good));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
}

#[test]
fn unreadable_inputs_and_configs_exit_2() {
    let output = validate(&["missing.yaml"], &corpus_dir(), None);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("missing.yaml"));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(&config, "catalog:\n  rules: 7\n").unwrap();
    let output = validate(
        &["--config", config.to_str().unwrap(), "good/component.yaml"],
        &corpus_dir(),
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}

#[test]
fn relative_targets_are_followed_inside_the_repository_only() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("services")).unwrap();
    std::fs::write(
        repo.join("catalog-info.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: all\nspec:\n  targets:\n    - ./services/ok.yaml\n    - ./services/broken.yaml\n    - ../outside.yaml\n    - ./catalog-info.yaml\n    - https://bitbucket.example.com/projects/P/repos/r/browse/catalog-info.yaml\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("services/ok.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: ok\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("services/broken.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\nspec:\n  type: service\n  lifecycle: production\n",
    )
    .unwrap();
    // Readable, valid, but not the repository's.
    std::fs::write(
        dir.path().join("outside.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: outside\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
    )
    .unwrap();

    // A symbolic link inside the repository that leads out is refused too.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.path().join("outside.yaml"), repo.join("link.yaml"))
            .unwrap();
        let mut catalog = std::fs::read_to_string(repo.join("catalog-info.yaml")).unwrap();
        catalog.push_str("    - ./link.yaml\n");
        std::fs::write(repo.join("catalog-info.yaml"), catalog).unwrap();
    }

    let output = validate(&["catalog-info.yaml"], &repo, None);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    #[cfg(unix)]
    assert!(
        stdout.contains("link.yaml is outside the repository"),
        "{stdout}"
    );
    assert!(
        stdout.contains("services/broken.yaml:5:1: component:default/broken: spec.owner"),
        "{stdout}"
    );
    assert!(
        stdout.contains("../outside.yaml is outside the repository"),
        "{stdout}"
    );
    assert!(!stdout.contains("ok.yaml"), "{stdout}");
    // The cycle back to the file itself ends; the URL is not fetched.
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("https://bitbucket.example.com/projects/P/repos/r/browse/catalog-info.yaml is a URL and is not read offline"),
        "{stderr}"
    );

    // Fixed, the tree passes.
    std::fs::write(
        repo.join("catalog-info.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: all\nspec:\n  targets: [./services/ok.yaml]\n",
    )
    .unwrap();
    let output = validate(&["catalog-info.yaml"], &repo, None);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    assert!(
        text(&output.stderr).contains("2 entities"),
        "{}",
        text(&output.stderr)
    );
}

/// `validate` with a deadline: a read that hangs (FIFO) or never ends
/// (`/dev/zero`) fails the test instead of stalling the suite.
fn validate_within(args: &[&str], dir: &Path) -> Output {
    let mut child = Command::new(BIN)
        .arg("validate")
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("validate {args:?} did not end: it read what it should refuse");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("binary ends")
}

const COMPONENT: &str = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: ok\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n";

#[cfg(unix)]
#[test]
fn only_regular_files_inside_the_repository_are_read_and_only_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::write(repo.join("catalog-info.yaml"), COMPONENT).unwrap();
    std::fs::write(dir.path().join("outside.yaml"), COMPONENT).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.yaml"), repo.join("out.yaml")).unwrap();
    std::os::unix::fs::symlink(repo.join("catalog-info.yaml"), repo.join("in.yaml")).unwrap();
    let fifo = repo.join("pipe.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    // Over the default 1 MiB maxFileSize.
    let big = format!("{COMPONENT}# {}\n", "x".repeat(2 * 1024 * 1024));
    std::fs::write(repo.join("big.yaml"), big).unwrap();

    for (path, expected) in [
        ("/dev/zero", "/dev/zero is not a regular file (a device)"),
        ("pipe.yaml", "pipe.yaml is not a regular file (a FIFO)"),
        (".git", ".git is not a regular file (a directory)"),
        ("out.yaml", "out.yaml is a symbolic link to"),
        ("big.yaml", "big.yaml is larger than the 1048576-byte limit"),
    ] {
        let output = validate_within(&[path], &repo);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{path}: {stderr}");
        assert!(stderr.contains(expected), "{path}: {stderr}");
        assert!(text(&output.stdout).is_empty(), "{path}");
    }
    // Standard input is capped too (it stops reading: the writer sees a
    // closed pipe).
    let mut child = Command::new(BIN)
        .args(["validate", "-"])
        .current_dir(&repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(format!("{COMPONENT}# {}\n", "x".repeat(2 << 20)).as_bytes());
    drop(stdin);
    let output = child.wait_with_output().expect("binary ends");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("<stdin> is larger than the 1048576-byte limit"));

    // A link that stays inside the repository, and the file itself, pass.
    for path in ["in.yaml", "catalog-info.yaml"] {
        let output = validate_within(&[path], &repo);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{path}: {}",
            text(&output.stderr)
        );
    }
    // A larger cap from --config lets the big file through.
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "catalog:\n  processing:\n    maxFileSize: 4MiB\n").unwrap();
    let output = validate_within(&["--config", config.to_str().unwrap(), "big.yaml"], &repo);
    assert_ne!(output.status.code(), Some(2), "{}", text(&output.stderr));
}
