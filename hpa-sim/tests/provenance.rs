//! The repository stands on its own: no document links outside it, and hpa-sim's sources, its
//! docs, examples and the autoscaling manifests cite no document a reader of the repository does
//! not have (the project's internal notes and contract, its issue tracker by number).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file under `dir` (recursively) whose name ends with one of `exts`.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if !matches!(name, "target" | ".git" | "node_modules") {
                files(&p, exts, out);
            }
        } else if exts.iter().any(|x| name.ends_with(x)) {
            out.push(p);
        }
    }
}

/// `(file, line number, line)` of each line holding one of `needles`.
fn hits(paths: &[PathBuf], needles: &[String]) -> Vec<String> {
    let me = Path::new(file!()).file_name().unwrap();
    let mut out = Vec::new();
    for p in paths {
        if p.file_name() == Some(me) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if needles.iter().any(|n| line.contains(n.as_str())) {
                out.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
            }
        }
    }
    out
}

#[test]
fn no_document_links_outside_the_repository() {
    let root = repo();
    let mut docs = Vec::new();
    files(&root, &[".md"], &mut docs);
    assert!(docs.len() > 5, "found the documents");
    // The folder beside the repository that holds the project's own notes.
    let outside = format!("../{}/", "shared");
    let found = hits(&docs, &[outside]);
    assert!(
        found.is_empty(),
        "links outside the repository:\n{}",
        found.join("\n")
    );
}

#[test]
fn hpa_sim_and_its_docs_cite_nothing_a_reader_lacks() {
    let root = repo();
    let mut paths = Vec::new();
    files(
        &root.join("hpa-sim"),
        &[".rs", ".yaml", ".md", ".csv"],
        &mut paths,
    );
    files(
        &root.join("examples"),
        &[".yaml", ".sh", ".py", ".md"],
        &mut paths,
    );
    files(
        &root.join("daemonset/autoscaling"),
        &[".yaml", ".md"],
        &mut paths,
    );
    paths.push(root.join("docs/autoscaling.md"));
    let mut needles: Vec<String> = vec![
        format!("{}-{}", "FIELD", "NOTES"),
        format!("{}{}", "CONTR", "ACT"),
        format!("../{}", "shared"),
    ];
    needles.extend((0..10).map(|d| format!("{} {d}", "issue")));
    needles.extend((0..10).map(|d| format!("{} #{d}", "issue")));
    let found = hits(&paths, &needles);
    assert!(
        found.is_empty(),
        "citations a reader of the repository cannot follow:\n{}",
        found.join("\n")
    );
}
