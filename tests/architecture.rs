//! The rules of docs/design.md ("Rules no code may break") that the source itself can show,
//! checked on the source tree: which stage may import which, no import cycle, and no file
//! over the size limit outside its tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines a source file may have before its `#[cfg(test)]` module.
const MAX_LINES: usize = 600;

/// Files allowed over [`MAX_LINES`] for now, each with the issue that splits it.
const TOO_LONG_FOR_NOW: &[(&str, &str)] = &[];

/// The floor every stage may import, which imports no stage.
const SHARED: &[&str] = &["sample", "pod", "pci", "backoff", "paths", "timing"];

struct Source {
    /// `src/collect/amd/mod.rs`, relative to the crate.
    rel: String,
    /// The module path: `["collect", "amd"]` for `src/collect/amd/mod.rs`.
    module: Vec<String>,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mut module: Vec<String> = rel
                .trim_start_matches("src/")
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_string)
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            Source { rel, module, text }
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code before the file's test module, without comment lines.
fn code(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("//")
        })
}

/// The top-level modules `crate::<name>` this file's code names.
fn crate_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code(text) {
        for (i, _) in line.match_indices("crate::") {
            if i > 0 && line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue; // `gpu_pod_exporter_crate::` and the like.
            }
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The sibling modules `super::<name>` this file's code names.
fn sibling_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code(text) {
        for (i, _) in line.match_indices("super::") {
            if line[..i].ends_with("super::") {
                continue; // `super::super::`: not a sibling.
            }
            let name: String = line[i + "super::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != "super" {
                out.insert(name);
            }
        }
    }
    out
}

/// A cycle in `graph`, if there is one, as the nodes along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn collect_and_encode_import_nothing_from_attribute() {
    let mut offenders = Vec::new();
    for s in sources() {
        let top = s.module.first().map(String::as_str);
        if !matches!(top, Some("collect" | "encode")) {
            continue;
        }
        if crate_modules(&s.text).contains("attribute") {
            offenders.push(s.rel);
        }
    }
    assert!(
        offenders.is_empty(),
        "collect and encode must not import attribute (docs/design.md, rules); shared types \
         belong one floor down (src/sample.rs, src/pod.rs, src/pci.rs): {offenders:?}"
    );
}

#[test]
fn the_shared_floor_imports_no_stage() {
    let mut offenders = Vec::new();
    for s in sources() {
        if !s
            .module
            .first()
            .is_some_and(|m| SHARED.contains(&m.as_str()))
        {
            continue;
        }
        let stages: Vec<String> = crate_modules(&s.text)
            .into_iter()
            .filter(|m| !SHARED.contains(&m.as_str()))
            .collect();
        if !stages.is_empty() {
            offenders.push(format!("{} imports {stages:?}", s.rel));
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}

#[test]
fn no_import_cycle_between_modules() {
    let sources = sources();
    // The stages: `crate::x` named from a file of another top-level module.
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Sibling files of one folder: `super::x` named from a file that is not the folder's mod.rs.
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &sources {
        let Some(first) = s.module.first() else {
            continue;
        };
        if matches!(first.as_str(), "lib" | "main") {
            continue;
        }
        for m in crate_modules(&s.text) {
            if m != *first {
                top.entry(first.clone()).or_default().insert(m);
            }
        }
        if s.module.len() >= 2 && !s.rel.ends_with("/mod.rs") {
            let parent = s.module[..s.module.len() - 1].join("::");
            let me = format!("{parent}::{}", s.module[s.module.len() - 1]);
            let mut names = sibling_modules(&s.text);
            // Items of the parent itself (`super::Backend`) are not siblings.
            names.retain(|n| {
                sources.iter().any(|o| {
                    o.module.len() == s.module.len()
                        && o.module[..s.module.len() - 1] == s.module[..s.module.len() - 1]
                        && o.module.last() == Some(n)
                })
            });
            for n in names {
                siblings
                    .entry(me.clone())
                    .or_default()
                    .insert(format!("{parent}::{n}"));
            }
        }
    }
    assert_eq!(cycle(&top), None, "stages importing each other: {top:#?}");
    assert_eq!(
        cycle(&siblings),
        None,
        "sibling files importing each other: {siblings:#?}"
    );
    // The direction of flow (docs/design.md): collect knows no later stage.
    for later in ["attribute", "snapshot", "encode", "web"] {
        assert!(
            !top.get("collect").is_some_and(|m| m.contains(later)),
            "collect imports {later}"
        );
    }
}

#[test]
fn no_file_is_over_the_limit_outside_its_tests() {
    let mut long = Vec::new();
    for s in sources() {
        let lines = s
            .text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .count();
        let excused = TOO_LONG_FOR_NOW.iter().any(|(f, _)| *f == s.rel);
        if lines > MAX_LINES && !excused {
            long.push(format!("{}: {lines} lines before its tests", s.rel));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines outside tests (split them by what they own): {long:#?}"
    );
}

#[test]
fn the_rules_see_what_they_check() {
    assert!(crate_modules("use crate::attribute::deviceid::X;").contains("attribute"));
    assert!(crate_modules("    let x = crate::attribute::f();").contains("attribute"));
    assert!(crate_modules("// crate::attribute in a comment").is_empty());
    assert!(crate_modules("#[cfg(test)]\nuse crate::attribute::X;").is_empty());
    assert_eq!(
        sibling_modules("use super::calls::X;\nuse super::super::y;"),
        ["calls".to_string()].into()
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert!(cycle(&graph).is_some());
}
