//! Trees and history on both flavours: Data Center's `files`, `changes`,
//! `compare/changes`, `branches/default` and `raw?at=`; Cloud's
//! `refs/branches`, `src` listings and files at a commit, and `diffstat`;
//! the admin edits that make new commits; the request counts of each.

use std::collections::BTreeSet;

use crate::support::{client, cloud_all, get_json, get_text, server_all, start};
use bitbucket_sim::{
    DatasetConfig, EndpointKind, HISTORY_DEPTH, Repo, RepoRef, SimConfig, Simulator,
};
use serde_json::{Value, json};

fn config() -> SimConfig {
    SimConfig {
        dataset: DatasetConfig {
            projects: 2,
            repos_per_project: 4,
            cloud_projects: 1,
            cloud_repos_per_project: 4,
            monorepo_ratio: 1.0,
            monorepo_files: (12, 20),
            ..DatasetConfig::default()
        },
        ..SimConfig::default()
    }
}

fn server_repo(sim: &Simulator) -> (RepoRef, Repo) {
    let repo = sim.dataset().server_repos().next().expect("a repo").clone();
    let reference = RepoRef::Server {
        project: repo.project_key.clone(),
        slug: repo.slug.clone(),
    };
    (reference, repo)
}

fn nested(repo: &Repo) -> Vec<String> {
    repo.catalog_paths()
        .into_iter()
        .filter(|p| p.contains('/'))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn data_center_lists_files_and_changes_and_reads_at_a_commit() {
    let sim = start(config()).await;
    let c = client();
    let (reference, repo) = server_repo(&sim);
    let base = format!(
        "{}/projects/{}/repos/{}",
        sim.server_api_base(),
        repo.project_key,
        repo.slug
    );

    for path in ["branches/default", "default-branch"] {
        let (status, branch) = get_json(&c, &format!("{base}/{path}")).await;
        assert_eq!(status, 200);
        assert_eq!(branch["displayId"], json!(repo.default_branch));
        assert_eq!(branch["latestCommit"], json!(repo.commit));
    }

    // Every file, paged, relative to the listed directory.
    let (values, pages) = server_all(&c, &format!("{base}/files?at={}", repo.commit), 7).await;
    let listed: BTreeSet<&str> = values.iter().filter_map(Value::as_str).collect();
    let want: BTreeSet<&str> = repo.files.keys().map(String::as_str).collect();
    assert_eq!(listed, want);
    assert_eq!(pages.len(), repo.files.len().div_ceil(7));
    let (docs, _) = server_all(&c, &format!("{base}/files/docs"), 100).await;
    assert_eq!(docs, vec![json!("catalog-info.yaml.bak")]);
    let (status, _) = get_json(&c, &format!("{base}/files/nowhere")).await;
    assert_eq!(status, 404);
    let (status, _) = get_json(&c, &format!("{base}/files?at=0000000")).await;
    assert_eq!(status, 404);

    // One commit modifies, deletes and adds a catalog file (three pushes).
    let files = nested(&repo);
    let (changed, deleted) = (&files[0], &files[1]);
    sim.push_file(&reference, changed, "kind: Component\n")
        .expect("push");
    sim.delete_file(&reference, deleted).expect("delete");
    let added = "services/new/catalog-info.yaml";
    let last = sim
        .push_file(&reference, added, "kind: Group\n")
        .expect("push");
    let head = last.commit.expect("new head");
    let old = &repo.commit;

    let expect = vec![
        json!([added, "ADD"]),
        json!([changed, "MODIFY"]),
        json!([deleted, "DELETE"]),
    ];
    let pairs = |values: Vec<Value>| {
        let mut got: Vec<Value> = values
            .iter()
            .map(|v| json!([v["path"]["toString"], v["type"]]))
            .collect();
        got.sort_by_key(|v| v[0].as_str().map(str::to_owned));
        got
    };
    let mut want = expect.clone();
    want.sort_by_key(|v| v[0].as_str().map(str::to_owned));
    let (values, _) = server_all(&c, &format!("{base}/changes?since={old}&until={head}"), 2).await;
    assert_eq!(pairs(values.clone()), want);
    let name = changed.rsplit('/').next().unwrap_or_default();
    let one = values
        .iter()
        .find(|v| v["path"]["toString"] == json!(changed))
        .expect("changed");
    assert_eq!(one["path"]["name"], json!(name));
    assert_eq!(one["path"]["extension"], json!("yaml"));
    let (values, _) = server_all(
        &c,
        &format!("{base}/compare/changes?from={head}&to={old}"),
        25,
    )
    .await;
    assert_eq!(pairs(values), want);
    // Without `since`: the last commit alone.
    let (values, _) = server_all(&c, &format!("{base}/changes?until={head}"), 25).await;
    assert_eq!(pairs(values), vec![json!([added, "ADD"])]);
    let (status, _) = get_json(&c, &format!("{base}/changes?since=0000000&until={head}")).await;
    assert_eq!(
        status, 404,
        "an unknown commit: clients fall back to a full listing"
    );

    // Reads at a commit see that commit's content.
    let (status, before) = get_text(&c, &format!("{base}/raw/{changed}?at={old}")).await;
    assert_eq!(
        (status, before.as_str()),
        (200, repo.file(changed).unwrap_or_default())
    );
    let (_, after) = get_text(&c, &format!("{base}/raw/{changed}?at={head}")).await;
    assert_eq!(after, "kind: Component\n");
    let (status, _) = get_text(&c, &format!("{base}/raw/{deleted}?at={old}")).await;
    assert_eq!(status, 200);
    let (status, _) = get_text(&c, &format!("{base}/raw/{deleted}")).await;
    assert_eq!(status, 404);
    let (status, _) = get_text(&c, &format!("{base}/raw/{added}?at={old}")).await;
    assert_eq!(status, 404);

    let stats = sim.stats();
    assert_eq!(stats.kind_requests(EndpointKind::ServerDefaultBranch), 2);
    assert_eq!(
        stats.kind_requests(EndpointKind::ServerFiles),
        (pages.len() + 3) as u64
    );
    assert!(stats.kind_requests(EndpointKind::ServerChanges) >= 4);

    // History is bounded: the first commit goes after HISTORY_DEPTH more.
    for i in 0..HISTORY_DEPTH {
        sim.push_file(&reference, "n.txt", &i.to_string())
            .expect("push");
    }
    let (status, _) = get_text(&c, &format!("{base}/raw/README.md?at={old}")).await;
    assert_eq!(status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_default_branch_can_change_through_the_admin_endpoint() {
    let sim = start(config()).await;
    let c = client();
    let (_, repo) = server_repo(&sim);
    let response = c
        .post(format!("{}/__sim/push", sim.base_url()))
        .json(&json!({
            "repository": {"server": {"project": repo.project_key, "slug": repo.slug}},
            "defaultBranch": "trunk",
        }))
        .send()
        .await
        .expect("push");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["event"], Value::Null);
    let commit = body["commit"].as_str().expect("commit").to_owned();
    assert_ne!(commit, repo.commit);
    let base = format!(
        "{}/projects/{}/repos/{}",
        sim.server_api_base(),
        repo.project_key,
        repo.slug
    );
    let (_, branch) = get_json(&c, &format!("{base}/branches/default")).await;
    assert_eq!(branch["displayId"], json!("trunk"));
    assert_eq!(branch["latestCommit"], json!(commit));
    let (_, page) = get_json(
        &c,
        &format!(
            "{}/projects/{}/repos",
            sim.server_api_base(),
            repo.project_key
        ),
    )
    .await;
    assert_eq!(page["values"][0]["defaultBranch"], json!("trunk"));
    // Same files at the new head; the old branch name is gone.
    let (status, _) = get_text(&c, &format!("{base}/raw/README.md?at=trunk")).await;
    assert_eq!(status, 200);
    let (_, changes) = get_json(&c, &format!("{base}/changes?until={commit}")).await;
    assert_eq!(changes["values"], json!([]));

    // Deleting through the admin endpoint, and its errors.
    let path = nested(&repo).remove(0);
    let delete = |path: String| {
        c.post(format!("{}/__sim/push", sim.base_url()))
            .json(&json!({
                "repository": {"server": {"project": repo.project_key, "slug": repo.slug}},
                "path": path,
                "delete": true,
            }))
            .send()
    };
    let response = delete(path.clone()).await.expect("delete");
    assert_eq!(response.status().as_u16(), 200);
    let response = delete(path).await.expect("delete again");
    assert_eq!(response.status().as_u16(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn cloud_branches_listings_diffstat_and_files_at_a_commit() {
    let sim = start(config()).await;
    let c = client();
    let repo = sim.dataset().cloud.repos[0].clone();
    let reference = RepoRef::Cloud {
        slug: repo.slug.clone(),
    };
    let api = format!(
        "{}/repositories/{}/{}",
        sim.cloud_api_base(),
        sim.cloud_workspace(),
        repo.slug
    );
    let (status, branch) =
        get_json(&c, &format!("{api}/refs/branches/{}", repo.default_branch)).await;
    assert_eq!(status, 200);
    assert_eq!(branch["target"]["hash"], json!(repo.commit));
    assert_eq!(branch["name"], json!(repo.default_branch));
    let (status, _) = get_json(&c, &format!("{api}/refs/branches/nope")).await;
    assert_eq!(status, 404);

    // The root, one level: top-level files and directories.
    let old = repo.commit.clone();
    let (values, _) = cloud_all(&c, &format!("{api}/src/{old}/?pagelen=5")).await;
    let top: BTreeSet<(String, String)> = values
        .iter()
        .map(|v| {
            (
                v["type"].as_str().unwrap_or_default().to_owned(),
                v["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(top.contains(&("commit_file".into(), "README.md".into())));
    assert!(top.contains(&("commit_directory".into(), "docs".into())));
    assert!(top.iter().all(|(_, p)| !p.contains('/')));
    assert!(values.iter().all(|v| v["commit"]["hash"] == json!(old)));
    // Deep enough: every file once.
    let (values, _) = cloud_all(&c, &format!("{api}/src/{old}/?max_depth=10&pagelen=100")).await;
    let files: BTreeSet<&str> = values
        .iter()
        .filter(|v| v["type"] == "commit_file")
        .filter_map(|v| v["path"].as_str())
        .collect();
    assert_eq!(files, repo.files.keys().map(String::as_str).collect());
    let (values, _) = cloud_all(&c, &format!("{api}/src/{old}/docs/")).await;
    assert_eq!(values[0]["path"], json!("docs/catalog-info.yaml.bak"));

    let target = nested(&repo).remove(0);
    let event = sim
        .push_file(&reference, &target, "kind: Component\n")
        .expect("push");
    let new = event.commit.expect("commit");
    sim.delete_file(&reference, "README.md").expect("delete");
    let (_, diff) = get_json(&c, &format!("{api}/diffstat/{new}..{old}")).await;
    assert_eq!(diff["size"], json!(1));
    assert_eq!(diff["values"][0]["status"], json!("modified"));
    assert_eq!(diff["values"][0]["new"]["path"], json!(target));
    let head = sim
        .current_dataset()
        .cloud_repo(&repo.slug)
        .expect("repo")
        .commit
        .clone();
    let (_, diff) = get_json(&c, &format!("{api}/diffstat/{head}")).await;
    assert_eq!(diff["values"][0]["status"], json!("removed"));
    assert_eq!(diff["values"][0]["new"], Value::Null);
    let (status, _) = get_json(&c, &format!("{api}/diffstat/{head}..0000000")).await;
    assert_eq!(status, 404);

    let (_, before) = get_text(&c, &format!("{api}/src/{old}/{target}")).await;
    assert_eq!(before, repo.file(&target).unwrap_or_default());
    let (_, after) = get_text(&c, &format!("{api}/src/{head}/{target}")).await;
    assert_eq!(after, "kind: Component\n");
    let (status, _) = get_text(&c, &format!("{api}/src/{head}/README.md")).await;
    assert_eq!(status, 404);

    let stats = sim.stats();
    assert_eq!(stats.kind_requests(EndpointKind::CloudBranch), 2);
    assert_eq!(stats.kind_requests(EndpointKind::CloudDiffstat), 3);
    assert!(stats.kind_requests(EndpointKind::CloudSrcDirectory) >= 3);
    assert_eq!(stats.kind_requests(EndpointKind::CloudSrc), 3);

    sim.set_default_branch(&reference, "develop")
        .expect("branch");
    let (_, listing) = get_json(
        &c,
        &format!(
            "{}/repositories/{}",
            sim.cloud_api_base(),
            sim.cloud_workspace()
        ),
    )
    .await;
    assert_eq!(listing["values"][0]["mainbranch"]["name"], json!("develop"));
    sim.shutdown().await;
}
