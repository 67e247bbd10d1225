//! The module graph stays acyclic: no top-level module reaches, through
//! its `crate::` paths (outside `#[cfg(test)]` code), one that reaches it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its non-test code names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if ["lib", "main", "architecture"].contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let deps = graph.entry(module.clone()).or_default();
        for (index, _) in code.match_indices("crate::") {
            let name: String = code[index + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    graph
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

#[test]
fn modules_depend_on_each_other_in_one_direction_only() {
    let graph = graph();
    assert!(graph.contains_key("catalog") && graph.contains_key("scheduler"));
    let cycles: Vec<String> = graph
        .iter()
        .flat_map(|(module, deps)| deps.iter().map(move |dep| (module, dep)))
        .filter(|(module, dep)| reaches(&graph, dep, module, &mut BTreeSet::new()))
        .map(|(module, dep)| format!("{module} → {dep}"))
        .collect();
    assert!(cycles.is_empty(), "import cycles through: {cycles:?}");
}

#[test]
fn metrics_and_telemetry_are_leaves() {
    let graph = graph();
    for leaf in ["metrics", "telemetry", "secret", "iso_duration"] {
        assert_eq!(
            graph.get(leaf),
            Some(&BTreeSet::new()),
            "{leaf} imports from the crate"
        );
    }
}
