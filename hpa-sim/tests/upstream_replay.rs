//! End to end: `hpa-sim replay` on the CASE files under `tests/cases/` (docs/autoscaling.md,
//! "CASE format"), each a small timeline built on the upstream behaviour its header names,
//! compared line by line with
//! `<case>.expected.jsonl` (`t`, `currentReplicas`, `proposals`, `desiredReplicas`, and
//! `reasonStartsWith` where given), plus an HPA the API server would reject.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

fn replay(case: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hpa-sim"))
        .arg("replay")
        .arg(case)
        .output()
        .expect("hpa-sim runs")
}

fn check(name: &str) {
    let case = cases_dir().join(format!("{name}.yaml"));
    let expected =
        std::fs::read_to_string(cases_dir().join(format!("{name}.expected.jsonl"))).unwrap();
    let out = replay(&case);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{name}: replay failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want: Vec<Value> = expected
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "{name}: one output line per sync\n{stdout}"
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        for key in ["t", "currentReplicas", "proposals", "desiredReplicas"] {
            assert_eq!(
                g[key], w[key],
                "{name}: sync {i}, {key}\n got: {g}\nwant: {w}"
            );
        }
        if let Some(prefix) = w["reasonStartsWith"].as_str() {
            let reason = g["reason"].as_str().unwrap_or_default();
            assert!(
                reason.starts_with(prefix),
                "{name}: sync {i}: reason {reason:?} should start with {prefix:?}"
            );
        }
    }
}

#[test]
fn default_behavior_scales_down_after_the_300_s_window() {
    check("default-scale-down-stabilization");
}

#[test]
fn missing_pods_count_at_target_on_scale_down_and_zero_on_scale_up() {
    check("missing-pods");
}

#[test]
fn not_ready_pods_count_for_non_cpu_metrics() {
    check("not-ready-pods-count");
}

#[test]
fn an_invalid_metric_blocks_scale_in_but_not_scale_out() {
    check("invalid-metric-blocks-scale-in");
}

#[test]
fn select_policy_disabled_never_scales_in() {
    check("select-policy-disabled");
}

#[test]
fn every_case_has_its_expectations() {
    for entry in std::fs::read_dir(cases_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".yaml") {
            if !stem.starts_with("invalid-min") {
                assert!(
                    cases_dir().join(format!("{stem}.expected.jsonl")).exists(),
                    "{name} has no {stem}.expected.jsonl"
                );
            }
        }
    }
}

#[test]
fn an_hpa_kubernetes_would_reject_fails_naming_the_file() {
    let case = cases_dir().join("invalid-min-above-max.yaml");
    let out = replay(&case);
    assert!(
        !out.status.success(),
        "minReplicas > maxReplicas must be refused"
    );
    assert!(out.stdout.is_empty(), "no sync output for a rejected HPA");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid-min-above-max.yaml"),
        "the error names the file: {stderr}"
    );
    assert!(
        stderr.contains("spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas` (5)"),
        "the error says what Kubernetes would say: {stderr}"
    );
}
