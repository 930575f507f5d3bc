//! Helpers shared by the end-to-end tests of the `hpa-sim` binary: fixture paths and a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod fake_prom;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn hpa_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hpa-sim"))
        .args(args)
        .output()
        .expect("hpa-sim runs")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A path of the repository (the workspace root).
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[derive(serde::Deserialize)]
struct Manifest {
    spec: hpa_sim::spec::HpaSpec,
}

/// The HPA spec of a shipped manifest, `daemonset/autoscaling/<name>`.
pub fn manifest(name: &str) -> hpa_sim::spec::HpaSpec {
    let text = std::fs::read_to_string(repo(&format!("daemonset/autoscaling/{name}"))).unwrap();
    serde_saphyr::from_str::<Manifest>(&text).unwrap().spec
}

/// The shipped recipe's HPA (daemonset/autoscaling/hpa.yaml).
pub fn shipped() -> hpa_sim::spec::HpaSpec {
    manifest("hpa.yaml")
}
