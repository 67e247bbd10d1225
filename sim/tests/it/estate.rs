//! The real estate: monorepos with nested catalog files and decoys, and
//! code owners files, opt-in and deterministic.

use std::collections::BTreeSet;

use bitbucket_sim::{CODEOWNERS_PATH, CodeOwners, Dataset, DatasetConfig, Repo};

fn estate() -> DatasetConfig {
    DatasetConfig {
        projects: 3,
        repos_per_project: 20,
        cloud_projects: 2,
        cloud_repos_per_project: 20,
        monorepo_ratio: 0.3,
        monorepo_files: (5, 40),
        codeowners_ratio: 0.6,
        ..DatasetConfig::default()
    }
}

fn all_repos(d: &Dataset) -> Vec<&Repo> {
    d.server_repos().chain(&d.cloud.repos).collect()
}

#[test]
fn the_options_off_leave_the_simple_estate_and_on_only_add_files() {
    let plain = Dataset::generate(
        9,
        &DatasetConfig {
            monorepo_ratio: 0.0,
            codeowners_ratio: 0.0,
            ..estate()
        },
    );
    let s = plain.summary();
    assert_eq!((s.server_monorepos, s.cloud_monorepos), (0, 0));
    assert_eq!((s.server_codeowners, s.cloud_codeowners), (0, 0));
    assert_eq!(s.server_glob_entities, s.server_entities);
    assert_eq!(s.cloud_glob_entities, s.cloud_entities);

    let rich = Dataset::generate(9, &estate());
    for (a, b) in all_repos(&plain).into_iter().zip(all_repos(&rich)) {
        assert_eq!(
            (&a.slug, &a.commit, &a.default_branch),
            (&b.slug, &b.commit, &b.default_branch)
        );
        assert_eq!((a.file_kind, &a.entity_refs), (b.file_kind, &b.entity_refs));
        for (path, content) in &a.files {
            assert_eq!(b.file(path), Some(content.as_str()), "{path} unchanged");
        }
    }
    let again = Dataset::generate(9, &estate());
    for (a, b) in all_repos(&rich).into_iter().zip(all_repos(&again)) {
        assert_eq!(a.files, b.files);
        assert_eq!(a.code_owners, b.code_owners);
        assert_eq!(a.nested_entity_refs, b.nested_entity_refs);
    }
}

#[test]
fn monorepos_hold_many_catalog_files_at_any_depth_and_decoys() {
    let d = Dataset::generate(4, &estate());
    let s = d.summary();
    assert!(s.server_monorepos > 5 && s.cloud_monorepos > 3, "{s:?}");
    let mut names = BTreeSet::new();
    let mut depths = BTreeSet::new();
    let mut without_root = 0;
    for r in all_repos(&d) {
        for name in r.glob_entity_refs() {
            assert!(names.insert(name.clone()), "{name} is unique");
        }
        if !r.monorepo {
            assert!(r.nested_entity_refs.is_empty());
            assert!(r.catalog_paths().len() <= 1);
            continue;
        }
        without_root += usize::from(r.catalog_file().is_none());
        let nested: Vec<&str> = r
            .catalog_paths()
            .into_iter()
            .filter(|p| *p != "catalog-info.yaml")
            .collect();
        assert!((5..=40).contains(&nested.len()), "{}", nested.len());
        assert_eq!(nested.len(), r.nested_entity_refs.len());
        for path in &nested {
            depths.insert(path.matches('/').count());
        }
        for name in &r.nested_entity_refs {
            let bare = name.trim_start_matches("component:default/");
            let holders = nested
                .iter()
                .filter(|p| r.file(p).is_some_and(|c| c.contains(bare)))
                .count();
            assert_eq!(holders, 1, "{name} is in exactly one nested file");
        }
        for decoy in [
            "docs/catalog-info.yaml.bak",
            "services/legacy/catalog-info.yml",
        ] {
            assert!(r.file(decoy).is_some(), "{decoy}");
            assert!(!r.catalog_paths().contains(&decoy));
        }
    }
    assert!(depths.len() >= 3, "depths {depths:?}");
    assert!(without_root > 0, "some monorepos have no root file");
    assert_eq!(
        s.server_glob_entities,
        d.expected_server_glob_refs(false).len()
    );
    assert!(
        s.server_glob_files
            > s.server_files_by_kind.values().sum::<usize>() - s.server_files_by_kind["none"]
    );
    // Glob minimum: listing pages + per repository its file listing and its catalog reads.
    let want: usize = d.server_listing_pages(1000, true)
        + d.server_repos()
            .map(|r| 1 + r.catalog_paths().len())
            .sum::<usize>();
    assert_eq!(d.server_glob_minimum_requests(1000, true, false), want);
}

/// The owners of the last `*` rule, as the data set promises them.
fn star_owner(text: &str, cloud: bool) -> CodeOwners {
    let mut owner = CodeOwners::Nobody;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next() != Some("*") {
            continue;
        }
        owner = match words.next() {
            None => CodeOwners::Nobody,
            Some(w) if w.starts_with("@@") => {
                CodeOwners::Owner(format!("group:default/{}", &w[2..]))
            }
            Some(w) if cloud && w.contains('/') => {
                let team = w.rsplit('/').next().unwrap_or_default();
                CodeOwners::Owner(format!("group:default/{team}"))
            }
            Some(w) => CodeOwners::Owner(format!("user:default/{}", w.trim_start_matches('@'))),
        };
    }
    owner
}

#[test]
fn code_owners_files_name_the_owner_the_data_set_records() {
    let d = Dataset::generate(5, &estate());
    let (mut groups, mut users, mut nobody, mut none) = (0, 0, 0, 0);
    for (r, cloud) in d
        .server_repos()
        .map(|r| (r, false))
        .chain(d.cloud.repos.iter().map(|r| (r, true)))
    {
        match (&r.code_owners, r.file(CODEOWNERS_PATH)) {
            (CodeOwners::NoFile, None) => none += 1,
            (CodeOwners::NoFile, Some(_)) => {
                panic!("{} has a file the data set does not record", r.slug)
            }
            (recorded, Some(text)) => {
                assert_eq!(&star_owner(text, cloud), recorded, "{}: {text}", r.slug);
                match recorded {
                    CodeOwners::Owner(o) if o.starts_with("group:") => groups += 1,
                    CodeOwners::Owner(_) => users += 1,
                    _ => nobody += 1,
                }
                if cloud {
                    assert!(
                        !text.contains("@@team"),
                        "Cloud names teams as @workspace/team"
                    );
                }
            }
            (_, None) => panic!("{} records owners without a file", r.slug),
        }
    }
    assert!(
        groups > 0 && users > 0 && nobody > 0 && none > 0,
        "{groups} {users} {nobody} {none}"
    );
    let s = d.summary();
    assert_eq!(
        s.server_codeowners + s.cloud_codeowners,
        groups + users + nobody
    );
    let without_catalog = d
        .server_repos()
        .filter(|r| r.catalog_paths().is_empty())
        .count();
    assert!(
        without_catalog > 0,
        "some repositories have no catalog file at all"
    );
}
