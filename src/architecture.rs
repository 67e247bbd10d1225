//! The dependency graph stays acyclic at two levels: no top-level module
//! reaches one that reaches it, and inside a folder no file reaches a
//! sibling that reaches it. Both are read from the `crate::`, `super::` and
//! `self::` paths of non-test code (before a file's first `#[cfg(test)]`);
//! a name re-exported by a folder's `mod.rs` counts as the child defining it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// One source file: its module path and its non-test code.
struct File {
    module: Module,
    code: String,
}

/// The `.rs` files below `root` (a crate's `src/`, relative to this crate).
fn files(root: &str) -> Vec<File> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
    let mut found = Vec::new();
    let mut pending = vec![src.clone()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let mut module: Module = path
            .strip_prefix(&src)
            .unwrap()
            .components()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_owned()
            })
            .collect();
        if module.last().is_some_and(|last| last == "mod") {
            module.pop();
        }
        if matches!(module.as_slice(), [one] if ["lib", "main", "architecture"].contains(&one.as_str()))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code =
            without_comments_and_strings(text.split("#[cfg(test)]").next().unwrap_or_default());
        found.push(File { module, code });
    }
    found
}

/// Code with comments dropped and string and character literals emptied,
/// so prose and messages that mention a path are not read as imports.
fn without_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut code = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        match rest {
            ['/', '/', ..] => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ['/', '*', ..] => {
                let mut depth = 0;
                while i < chars.len() {
                    match &chars[i..] {
                        ['/', '*', ..] => (depth, i) = (depth + 1, i + 2),
                        ['*', '/', ..] => (depth, i) = (depth - 1, i + 2),
                        _ => i += 1,
                    }
                    if depth == 0 {
                        break;
                    }
                }
            }
            ['r', '#', ..] | ['r', '"', ..] if i == 0 || !chars[i - 1].is_alphanumeric() => {
                let hashes = rest[1..].iter().take_while(|c| **c == '#').count();
                i += 2 + hashes;
                while i < chars.len()
                    && !(chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|c| *c == '#'))
                {
                    i += 1;
                }
                i += 1 + hashes;
                code.push_str("\"\"");
            }
            ['"', ..] => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                code.push_str("\"\"");
            }
            ['\'', '\\', ..] => {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            }
            ['\'', _, '\'', ..] => i += 3,
            [c, ..] => {
                code.push(*c);
                i += 1;
            }
            [] => break,
        }
    }
    code
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into whole paths.
fn expand_use(tree: &str, prefix: &[String], out: &mut Vec<Module>) {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        let plain = tree.split(" as ").next().unwrap_or_default();
        let mut path = prefix.to_vec();
        path.extend(
            plain
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        out.push(path);
        return;
    };
    let mut head = prefix.to_vec();
    head.extend(
        tree[..open]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    );
    let close = tree
        .rfind('}')
        .filter(|close| *close > open)
        .unwrap_or(tree.len());
    let body = &tree[open + 1..close];
    let (mut depth, mut start) = (0, 0);
    for (index, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand_use(&body[start..index], &head, out);
                start = index + 1;
            }
            _ => {}
        }
    }
    if start < body.len() {
        expand_use(&body[start..], &head, out);
    }
}

/// The paths a file's code names, relative to nothing (`crate::` dropped)
/// or to the file (`super::`, `self::`, a child module's name).
fn named_paths(file: &File) -> Vec<Module> {
    let mut raw = Vec::new();
    for statement in file.code.split(';') {
        let statement = statement.trim_start();
        let statement = statement
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ");
        if let Some(tree) = statement.strip_prefix("use ") {
            expand_use(tree, &[], &mut raw);
        }
    }
    for root in ["crate::", "super::", "self::"] {
        for (index, _) in file.code.match_indices(root) {
            let path: String = file.code[index..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            raw.push(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
    }
    raw.into_iter()
        .filter_map(|path| absolute(&file.module, &path))
        .collect()
}

fn absolute(here: &Module, path: &Module) -> Option<Module> {
    match path.first()?.as_str() {
        "crate" => Some(path[1..].to_vec()),
        "super" | "self" => {
            let mut base = here.clone();
            let mut rest = path.as_slice();
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop()?;
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            Some(base)
        }
        _ => None,
    }
}

/// Each file's module → the modules its code names, with names a folder's
/// `mod.rs` re-exports from a child resolved to that child.
fn graph(root: &str) -> BTreeMap<Module, BTreeSet<Module>> {
    let files = files(root);
    let modules: BTreeSet<Module> = files.iter().map(|f| f.module.clone()).collect();
    // `pub(crate) use child::Name;` in a folder: Name lives in the child.
    let mut reexports: BTreeMap<Module, Module> = BTreeMap::new();
    for file in &files {
        for statement in file.code.split(';') {
            let statement = statement.trim_start();
            let Some(tree) = ["pub use ", "pub(crate) use "]
                .iter()
                .find_map(|p| statement.strip_prefix(p))
            else {
                continue;
            };
            let mut paths = Vec::new();
            expand_use(tree, &[], &mut paths);
            for path in paths {
                let Some(target) = absolute(&file.module, &path)
                    .or_else(|| Some(file.module.iter().chain(&path).cloned().collect()))
                else {
                    continue;
                };
                if let Some(name) = path.last() {
                    let mut alias = file.module.clone();
                    alias.push(name.clone());
                    reexports.entry(alias).or_insert(target);
                }
            }
        }
    }
    let owner = |path: &Module| -> Option<Module> {
        let mut path = path.clone();
        for _ in 0..4 {
            let found = (0..=path.len())
                .rev()
                .map(|len| path[..len].to_vec())
                .find(|prefix| modules.contains(prefix))?;
            let next = (found.len() < path.len())
                .then(|| {
                    let mut alias = found.clone();
                    alias.push(path[found.len()].clone());
                    reexports.get(&alias).cloned()
                })
                .flatten();
            match next {
                Some(target) if target != path => path = target,
                _ => return Some(found),
            }
        }
        None
    };
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for file in &files {
        let mut deps = BTreeSet::new();
        for path in named_paths(file) {
            if let Some(target) = owner(&path).filter(|target| *target != file.module) {
                deps.insert(target);
            }
        }
        graph.insert(file.module.clone(), deps);
    }
    graph
}

/// The graph between the children of `folder` (a deeper module counts as
/// the child it lies in); `folder` itself is left out.
fn level(
    graph: &BTreeMap<Module, BTreeSet<Module>>,
    folder: &[String],
) -> BTreeMap<String, BTreeSet<String>> {
    let child = |module: &Module| -> Option<String> {
        (module.len() > folder.len() && module.starts_with(folder))
            .then(|| module[folder.len()].clone())
    };
    let mut level: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, deps) in graph {
        let Some(from_child) = child(from) else {
            continue;
        };
        let entry = level.entry(from_child.clone()).or_default();
        for dep in deps {
            if let Some(to_child) = child(dep).filter(|to| *to != from_child) {
                entry.insert(to_child);
            }
        }
    }
    level
}

fn reaches(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> bool {
    graph
        .get(from)
        .into_iter()
        .flatten()
        .any(|next| next == to || (seen.insert(next.clone()) && reaches(graph, next, to, seen)))
}

fn cycles(level: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    level
        .iter()
        .flat_map(|(module, deps)| deps.iter().map(move |dep| (module, dep)))
        .filter(|(module, dep)| reaches(level, dep, module, &mut BTreeSet::new()))
        .map(|(module, dep)| format!("{module} → {dep}"))
        .collect()
}

#[test]
fn modules_depend_on_each_other_in_one_direction_only() {
    let top = level(&graph("src"), &[]);
    assert!(top.contains_key("catalog") && top.contains_key("scheduler"));
    let cycles = cycles(&top);
    assert!(cycles.is_empty(), "import cycles through: {cycles:?}");
}

/// Every file circle below `root`, the crate's own top level included.
fn file_circles(root: &str) -> Vec<String> {
    let graph = graph(root);
    let folders: BTreeSet<Module> = graph
        .keys()
        .flat_map(|module| (0..module.len()).map(|len| module[..len].to_vec()))
        .collect();
    folders
        .iter()
        .flat_map(|folder| {
            cycles(&level(&graph, folder))
                .into_iter()
                .map(move |cycle| {
                    format!(
                        "{}: {cycle}",
                        [root]
                            .into_iter()
                            .chain(folder.iter().map(String::as_str))
                            .collect::<Vec<_>>()
                            .join("/")
                    )
                })
        })
        .collect()
}

#[test]
fn files_in_a_folder_depend_on_each_other_in_one_direction_only() {
    assert!(graph("src").contains_key(&vec!["scheduler".to_owned(), "runner".to_owned()]));
    let circles: Vec<String> = ["src", "sim/src"]
        .into_iter()
        .flat_map(file_circles)
        .collect();
    assert!(circles.is_empty(), "file circles: {circles:?}");
}

#[test]
fn metrics_and_telemetry_are_leaves() {
    let top = level(&graph("src"), &[]);
    for leaf in ["metrics", "telemetry", "secret", "iso_duration", "rfc3339"] {
        assert_eq!(
            top.get(leaf),
            Some(&BTreeSet::new()),
            "{leaf} imports from the crate"
        );
    }
}
