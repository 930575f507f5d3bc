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
