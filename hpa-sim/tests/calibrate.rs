//! End to end: `hpa-sim calibrate` fits a profile to a load test (CSV) and to a history in a
//! fake Prometheus on loopback, prints the fit and its residuals, writes a profile a scenario
//! runs on, and refuses data that cannot support a fit (too few points, no spread in batch
//! size, no saturation, no line), each with a nonzero exit and the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use hpa_sim::profile::Profile;

mod common;
use common::fake_prom::{query_of, FakeProm};
use common::{hpa_sim, path_str};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn ok(args: &[&str]) -> (String, String) {
    let out = hpa_sim(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "hpa-sim {args:?}:\n{stderr}");
    (stdout, stderr)
}

/// Runs, requires exit 2 without a panic, and returns stderr; nothing may be written.
fn refused(csv: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("samples.csv");
    std::fs::write(&input, csv).unwrap();
    let out_path = dir.path().join("profile.yaml");
    let out = hpa_sim(&[
        "calibrate",
        "--csv",
        path_str(&input),
        "--out",
        path_str(&out_path),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "should be refused:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out_path.exists(), "a refused fit writes no profile");
    stderr
}

/// Rows on a step-time line of `base` + `per` ms per sequence, at the given batch sizes.
fn line_rows(base: f64, per: f64, batches: &[f64]) -> String {
    let mut s = String::from("batch,tokens_per_second,tensor_active\n");
    for b in batches {
        let tps = 1000.0 * b / (base + per * b);
        s.push_str(&format!("{b},{tps},{}\n", 0.1 * tps / (1000.0 / per)));
    }
    s
}

#[test]
fn the_h200_table_gives_the_bundled_profile_and_a_scenario_runs_on_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h200.yaml");
    let (stdout, stderr) = ok(&[
        "calibrate",
        "--csv",
        path_str(&repo("examples/profiles/h200-decode.csv")),
        "--out",
        path_str(&out),
        "--name",
        "my-h200",
        "--gpu",
        "NVIDIA H200",
        "--date",
        "2026-11-30",
    ]);
    assert!(
        stdout.starts_with("step time = 1.0404 ms + 0.031332 ms x batch"),
        "{stdout}"
    );
    // The residuals, batch by batch.
    for (batch, residual) in [("1", "+17.5 %"), ("16", "-10.0 %"), ("256", "+0.4 %")] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(batch))
            .unwrap_or_else(|| panic!("no row for batch {batch}:\n{stdout}"));
        assert!(line.ends_with(residual), "{line}");
    }
    assert!(stderr.contains("profile written to"), "{stderr}");

    // The profile written is the bundled one's fit, with its provenance.
    let mine = Profile::load(&out).unwrap();
    let bundled = Profile::bundled("h200-decode").unwrap();
    assert_eq!(mine.name, "my-h200");
    assert_eq!(mine.measured.gpu.as_deref(), Some("NVIDIA H200"));
    assert!((mine.step_base_ms - bundled.step_base_ms).abs() < 1e-4);
    assert!((mine.step_per_seq_ms - bundled.step_per_seq_ms).abs() < 1e-6);
    assert_eq!(mine.points, bundled.points);
    assert!(!mine.prefill.measured);

    // A scenario names it by path and runs on it.
    std::fs::write(
        dir.path().join("trace.csv"),
        "t_seconds,requests_per_second\n0,20\n60,20\n120,20\n",
    )
    .unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::write(
        &scenario,
        "hpa:
  minReplicas: 1
  maxReplicas: 2
  metrics:
    - type: Pods
      pods: {metric: {name: gpu_tensor_active_ratio}, target: {type: AverageValue, averageValue: 76m}}
trace: {csv: trace.csv}
profile: h200.yaml
",
    )
    .unwrap();
    let (text, _) = ok(&["simulate", path_str(&scenario)]);
    assert!(
        text.contains("serving profile      my-h200 (NVIDIA H200, 2026-11-30)"),
        "{text}"
    );
}

#[test]
fn a_load_test_with_too_few_batch_sizes_is_refused() {
    let err = refused(&line_rows(1.0, 0.03, &[4.0, 256.0]));
    assert!(
        err.contains("too few points: 2 samples at 2 batch sizes"),
        "{err}"
    );
    // Idle samples do not count.
    let err = refused("batch,tokens_per_second\n0,0\n0.5,300\n16,10000\n256,28000\n");
    assert!(err.contains("2 idle or partly idle"), "{err}");
}

#[test]
fn a_load_test_at_one_batch_size_is_refused() {
    let err = refused(&line_rows(1.0, 0.03, &[32.0, 48.0, 64.0, 100.0]));
    assert!(
        err.contains("no spread in batch size: the batch sizes span only 32 to 100 (3.1x)"),
        "{err}"
    );
}

#[test]
fn a_load_test_that_never_saturated_the_server_is_refused() {
    // The H200's line up to batch 32: throughput still nearly doubles with the batch.
    let err = refused(&line_rows(
        1.0404,
        0.031332,
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
    ));
    assert!(
        err.contains(
            "no saturation: throughput is still rising at the largest batch measured (32)"
        ),
        "{err}"
    );
    assert!(err.contains("would add 51 % more"), "{err}");
    // Throughput that grows in proportion to the batch: no per-sequence cost at all.
    let err = refused("batch,tokens_per_second\n1,1000\n4,4000\n16,16000\n64,64000\n");
    assert!(
        err.contains("no saturation: the step time does not grow"),
        "{err}"
    );
}

#[test]
fn data_that_are_not_a_step_time_line_are_refused() {
    // Step times of 0.6, 2.2, 5.4, 11.8 ms at 32-256 sequences: a line through them starts
    // below zero.
    let err = refused(&line_rows(-1.0, 0.05, &[32.0, 64.0, 128.0, 256.0]));
    assert!(
        err.contains(
            "the data do not follow a step-time line: the fit gives a base step time of -1 ms"
        ),
        "{err}"
    );
}

#[test]
fn bad_samples_name_the_file_and_line() {
    let err = refused("batch,tokens_per_second\n1,794\n4,-3\n");
    assert!(err.contains("samples.csv:3:"), "{err}");
    let err = refused("running,tps\n1,794\n");
    assert!(err.contains("the header has no `batch` column"), "{err}");
}

// --- Prometheus ---------------------------------------------------------------------------

const START: i64 = 1_700_000_000;

/// Two pods over 40 one-minute samples, their batch sweeping 1..256 (the second pod's
/// samples offset), on a line of 2 ms + 0.05 ms per sequence, with a prompt load that took a
/// tenth of each minute (2,000 tokens/s at 0.05 ms each).
fn batch_at(pod: usize, k: i64) -> f64 {
    let b = 2f64.powf(((k + 3 * pod as i64) % 17) as f64 / 2.0);
    b.round().max(1.0)
}

fn matrix(f: &dyn Fn(usize, i64) -> Option<f64>) -> serde_json::Value {
    let result: Vec<serde_json::Value> = (0..2)
        .map(|pod| {
            let values: Vec<serde_json::Value> = (0..40)
                .filter_map(|k| f(pod, k).map(|v| serde_json::json!([START + 60 * k, v.to_string()])))
                .collect();
            serde_json::json!({"metric": {"namespace": "llm", "pod": format!("vllm-abc-{pod}")}, "values": values})
        })
        .collect();
    serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": result}})
}

fn history(query: &str) -> serde_json::Value {
    let tps = |pod, k| {
        let b = batch_at(pod, k);
        0.9 * 1000.0 * b / (2.0 + 0.05 * b)
    };
    if query.contains("vllm:num_requests_running") {
        matrix(&|pod, k| Some(batch_at(pod, k)))
    } else if query.contains("vllm:generation_tokens_total") {
        matrix(&|pod, k| Some(tps(pod, k)))
    } else if query.contains("vllm:prompt_tokens_total") {
        matrix(&|_, _| Some(2000.0))
    } else if query.starts_with("namespace_pod:pod_gpu_tensor_active_ratio:avg1m") {
        // The recording rule is loaded for tensor activity only.
        matrix(&|pod, k| Some(0.1 * tps(pod, k) / 20_000.0))
    } else if query.contains("avg_over_time(pod_gpu_utilization_ratio") {
        // The agent's raw series, where the rule is missing.
        matrix(&|_, _| Some(0.9))
    } else {
        serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": []}})
    }
}

#[test]
fn a_history_in_prometheus_gives_a_profile_over_the_recording_rules() {
    let prom = FakeProm::start(None, |req| ("200 OK", history(&query_of(req)).to_string()));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("history.yaml");
    let (stdout, stderr) = ok(&[
        "calibrate",
        "--prometheus",
        &prom.url,
        "--selector",
        "namespace=\"llm\",pod=~\"vllm-.*\"",
        "--start",
        "1700000000",
        "--end",
        "1700002400",
        "--prefill-ms-per-token",
        "0.05",
        "--out",
        path_str(&out),
    ]);
    let url = prom.url.clone();
    let queries: Vec<String> = prom.finish().iter().map(|r| query_of(r)).collect();
    assert!(
        stderr.contains(&format!("reading the samples from {url}")),
        "{stderr}"
    );
    // vLLM's own series, then the shipped rules (the raw series where a rule answers nothing).
    for q in [
        "avg by (namespace, pod) (avg_over_time(vllm:num_requests_running{namespace=\"llm\",pod=~\"vllm-.*\"}[1m]))",
        "sum by (namespace, pod) (rate(vllm:generation_tokens_total{namespace=\"llm\",pod=~\"vllm-.*\"}[1m]))",
        "sum by (namespace, pod) (rate(vllm:prompt_tokens_total{namespace=\"llm\",pod=~\"vllm-.*\"}[1m]))",
        "namespace_pod:pod_gpu_tensor_active_ratio:avg1m{namespace=\"llm\",pod=~\"vllm-.*\"}",
        "namespace_pod:pod_gpu_utilization_ratio:avg1m{namespace=\"llm\",pod=~\"vllm-.*\"}",
        "avg by (namespace, pod) (avg_over_time(pod_gpu_utilization_ratio{namespace=\"llm\",pod=~\"vllm-.*\"}[1m]))",
    ] {
        assert!(queries.iter().any(|x| x == q), "no query {q}: {queries:?}");
    }
    assert!(
        !queries
            .iter()
            .any(|x| x.contains("avg_over_time(pod_gpu_tensor_active_ratio")),
        "the rule answered: no fallback"
    );
    // The prefill tenth taken out, the line is the one the samples were drawn on.
    assert!(
        stdout.starts_with("step time = 2.0000 ms + 0.050000 ms x batch"),
        "{stdout}"
    );
    assert!(stdout.contains("80 samples"), "{stdout}");
    let p = Profile::load(&out).unwrap();
    assert!((p.step_base_ms - 2.0).abs() < 1e-6 && (p.step_per_seq_ms - 0.05).abs() < 1e-8);
    assert_eq!(p.prefill.ms_per_token, 0.05);
    assert!(p.prefill.measured);
    assert!(p
        .points
        .iter()
        .all(|x| x.tensor_active.is_some() && x.utilization == Some(0.9)));
    assert!(p.points.iter().all(|x| x.sm_active.is_none()));
    assert!(p
        .measured
        .method
        .as_deref()
        .unwrap_or_default()
        .contains(&url));
}

#[test]
fn a_prometheus_without_vllm_series_is_named() {
    fn empty(_: &str) -> serde_json::Value {
        serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": []}})
    }
    let prom = FakeProm::start(None, |req| ("200 OK", empty(&query_of(req)).to_string()));
    let dir = tempfile::tempdir().unwrap();
    let out = hpa_sim(&[
        "calibrate",
        "--prometheus",
        &prom.url,
        "--out",
        path_str(&dir.path().join("p.yaml")),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the running sequences query") && stderr.contains("returned no series"),
        "{stderr}"
    );
}

#[test]
fn a_scenario_naming_a_profile_that_is_not_there_or_not_valid_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("trace.csv"),
        "t_seconds,requests_per_second\n0,5\n60,5\n",
    )
    .unwrap();
    let scenario = |profile: &str| {
        let p = dir.path().join("s.yaml");
        std::fs::write(
            &p,
            format!(
                "hpa:
  maxReplicas: 2
  metrics:
    - type: Pods
      pods: {{metric: {{name: vllm_num_requests_waiting}}, target: {{type: AverageValue, averageValue: 5}}}}
trace: {{csv: trace.csv}}
profile: {profile}
"
            ),
        )
        .unwrap();
        p
    };
    let fails = |p: &Path| {
        let out = hpa_sim(&["simulate", path_str(p)]);
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = fails(&scenario("a100"));
    assert!(
        err.contains("s.yaml: no bundled profile named \"a100\""),
        "{err}"
    );
    let err = fails(&scenario("profiles/mine.yaml"));
    assert!(err.contains("profiles/mine.yaml"), "{err}");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "name: bad
stepBaseMs: 1
stepPerSeqMs: 0.03
prefill: {msPerToken: 0.01, measured: false}
points:
  - {batch: 16, tokensPerSecond: 10000}
  - {batch: 4, tokensPerSecond: 3000}
",
    )
    .unwrap();
    let err = fails(&scenario("bad.yaml"));
    assert!(
        err.contains("bad.yaml: points[1].batch: 4 is not above the previous point's 16"),
        "{err}"
    );
}
