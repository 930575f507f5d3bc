//! End to end: `hpa-sim simulate`/`tune` on bad input (malformed or unknown YAML, broken trace
//! CSVs, HPAs Kubernetes would reject, unmapped metric names, bad `--sweep`/`--saturation`), each
//! a nonzero exit naming the file and line; and the `--prometheus` trace source against a closed
//! port and a fake Prometheus (a matrix, an error answer, no series).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::PathBuf;

use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::fake_prom::FakeProm;
use common::{fixture, hpa_sim, path_str};

/// Runs, requires a clean failure (exit 2, nothing on stdout, no panic) and returns stderr.
fn fails(args: &[&str]) -> String {
    let out = hpa_sim(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "hpa-sim {args:?} should fail with exit 2:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{args:?}: nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn assert_has(stderr: &str, parts: &[&str]) {
    for p in parts {
        assert!(stderr.contains(p), "the error should say {p:?}:\n{stderr}");
    }
}

const HPA: &str = "hpa:
  minReplicas: 1
  maxReplicas: 4
  metrics:
    - type: Pods
      pods:
        metric: {name: vllm_num_requests_waiting}
        target: {type: AverageValue, averageValue: \"5\"}
";

const TRACE: &str = "t_seconds,requests_per_second\n0,5\n60,5\n120,5\n180,5\n240,5\n";

/// A scenario `scenario.yaml` with `trace.csv` beside it, in a fresh folder.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(scenario: &str, trace: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("scenario.yaml"), scenario).unwrap();
        std::fs::write(dir.path().join("trace.csv"), trace).unwrap();
        Files { dir }
    }

    fn with_hpa(hpa: &str, trace: &str) -> Files {
        Files::new(&format!("name: t\n{hpa}trace:\n  csv: trace.csv\n"), trace)
    }

    fn scenario(&self) -> PathBuf {
        self.dir.path().join("scenario.yaml")
    }

    fn simulate(&self) -> String {
        fails(&["simulate", path_str(&self.scenario())])
    }
}

#[test]
fn the_well_formed_base_runs() {
    // The files the cases below break, unbroken: the failures are theirs.
    let f = Files::with_hpa(HPA, TRACE);
    let out = hpa_sim(&["simulate", path_str(&f.scenario())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let f = Files::new(
        "name: t\nhpa:\n  minReplicas: 1\n  maxReplicas: [4\n  metrics: []\n",
        TRACE,
    );
    let err = f.simulate();
    assert_has(
        &err,
        &[
            "hpa-sim: error: ",
            path_str(&f.scenario()),
            "malformed YAML",
            "line 4",
            "scenario.yaml:4:",
        ],
    );
}

#[test]
fn an_unknown_field_is_named_with_its_line() {
    let f = Files::new(
        &format!("name: t\n{HPA}trace:\n  csv: trace.csv\nreplicsa: 3\n"),
        TRACE,
    );
    let err = f.simulate();
    assert_has(
        &err,
        &[
            path_str(&f.scenario()),
            "unknown field `replicsa`",
            "line 12",
        ],
    );
    // Nested too: a field the HPA's Pods source does not have.
    let f = Files::with_hpa(
        &HPA.replace("      pods:\n", "      pods:\n        selector: {}\n"),
        TRACE,
    );
    let err = f.simulate();
    assert_has(&err, &["unknown field `selector`", "line 8"]);
}

#[test]
fn a_missing_file_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let err = fails(&["simulate", path_str(&missing)]);
    assert_has(&err, &[path_str(&missing)]);
    assert_eq!(
        err.matches("os error").count(),
        1,
        "the I/O error once, not twice: {err}"
    );
    let f = Files::new(&format!("name: t\n{HPA}trace:\n  csv: other.csv\n"), TRACE);
    let err = f.simulate();
    assert_has(&err, &["other.csv"]);
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

#[test]
fn a_trace_whose_time_goes_back_names_the_csv_line() {
    let f = Files::with_hpa(
        HPA,
        "t_seconds,requests_per_second\n0,5\n60,5\n120,5\n90,5\n180,5\n",
    );
    let err = f.simulate();
    let csv = f.dir.path().join("trace.csv");
    assert_has(
        &err,
        &[
            &format!("{}:5: ", csv.display()),
            "time 90 is not after the previous row's 120",
        ],
    );
}

#[test]
fn a_trace_with_a_gap_names_the_line_and_says_gap() {
    let f = Files::with_hpa(
        HPA,
        "# comment lines count\nt_seconds,requests_per_second\n0,5\n60,5\n120,5\n180,5\n900,5\n960,5\n",
    );
    let err = f.simulate();
    assert_has(&err, &["trace.csv:7: ", "a gap of 720 s after time 180"]);
}

#[test]
fn a_trace_field_that_is_not_a_number_names_the_line() {
    let f = Files::with_hpa(HPA, "t_seconds,requests_per_second\n0,5\n60,five\n120,5\n");
    let err = f.simulate();
    assert_has(
        &err,
        &["trace.csv:3: ", "field 2 (\"five\") is not a number"],
    );
    let f = Files::with_hpa(HPA, "t_seconds,requests_per_second\n0,5\n60\n120,5\n");
    let err = f.simulate();
    assert_has(&err, &["trace.csv:3: ", "1 fields where the header has 2"]);
    let f = Files::with_hpa(HPA, "t_seconds,requests_per_second\n0,5\n60,-1\n120,5\n");
    let err = f.simulate();
    assert_has(
        &err,
        &["trace.csv:3: ", "requests per second -1 is negative"],
    );
}

#[test]
fn min_replicas_above_max_replicas_is_refused() {
    let f = Files::with_hpa(&HPA.replace("minReplicas: 1", "minReplicas: 5"), TRACE);
    let err = f.simulate();
    assert_has(
        &err,
        &[
            path_str(&f.scenario()),
            "the API server would reject this HorizontalPodAutoscaler",
            "spec.maxReplicas: Invalid value: 4: must be greater than or equal to `minReplicas` (5)",
        ],
    );
}

#[test]
fn a_pods_metric_with_a_value_target_is_refused() {
    let f = Files::with_hpa(
        &HPA.replace(
            "{type: AverageValue, averageValue: \"5\"}",
            "{type: Value, value: \"5\"}",
        ),
        TRACE,
    );
    let err = f.simulate();
    assert_has(
        &err,
        &[
            path_str(&f.scenario()),
            "spec.metrics[0].pods.target.type: Unsupported value: Value: supported values: AverageValue",
        ],
    );
}

#[test]
fn an_unmapped_metric_name_lists_the_known_series() {
    let f = Files::with_hpa(
        &HPA.replace("vllm_num_requests_waiting", "tokens_per_second"),
        TRACE,
    );
    let err = f.simulate();
    assert_has(
        &err,
        &[
            path_str(&f.scenario()),
            "hpa.metrics: metric \"tokens_per_second\" is not a known name",
            "gpu_utilization",
            "num_requests_waiting",
            "kv_cache_usage",
            "request_rate",
        ],
    );
    // Mapped under `metrics:`, the same name runs.
    let f = Files::new(
        &format!(
            "name: t\n{}metrics:\n  tokens_per_second: {{series: num_requests_waiting}}\ntrace:\n  csv: trace.csv\n",
            HPA.replace("vllm_num_requests_waiting", "tokens_per_second")
        ),
        TRACE,
    );
    let out = hpa_sim(&["simulate", path_str(&f.scenario())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_sweeps_and_saturations_are_refused() {
    let f = Files::with_hpa(HPA, TRACE);
    let s = f.scenario();
    let sc = path_str(&s);
    let err = fails(&["tune", sc, "--sweep", "maxReplicas"]);
    assert_has(
        &err,
        &["--sweep \"maxReplicas\": expected NAME=FROM:TO:STEP or NAME=A,B,C"],
    );
    let err = fails(&["tune", sc, "--sweep", "maxReplicas=4:2:1"]);
    assert_has(&err, &["FROM:TO:STEP needs three numbers"]);
    let err = fails(&["tune", sc, "--sweep", "maxReplicas=two,three"]);
    assert_has(&err, &["values must be numbers"]);
    let err = fails(&["tune", sc, "--sweep", "replicas=1,2"]);
    assert_has(
        &err,
        &[
            "unknown parameter \"replicas\"",
            "target.<metric>",
            "maxReplicas",
            "candidate",
        ],
    );
    let err = fails(&[
        "tune",
        sc,
        "--sweep",
        "maxReplicas=2,4",
        "--saturation",
        "gpu_tensor_active_ratio",
    ]);
    assert_has(
        &err,
        &["--saturation \"gpu_tensor_active_ratio\": expected METRIC=VALUE"],
    );
    let err = fails(&[
        "tune",
        sc,
        "--sweep",
        "maxReplicas=2,4",
        "--saturation",
        "gpu_tensor_active_ratio=high",
    ]);
    assert_has(&err, &["\"high\" is not a number"]);
    // A share of a metric that is no GPU series needs its saturation.
    let err = fails(&["tune", sc, "--sweep", "share.vllm_num_requests_waiting=0.5"]);
    assert_has(&err, &["--saturation vllm_num_requests_waiting=VALUE"]);
    // A replica count of 1.5 would run as 1 under the label 1.5: refused.
    let err = fails(&["tune", sc, "--sweep", "maxReplicas=1.5"]);
    assert_has(
        &err,
        &["--sweep \"maxReplicas=1.5\": maxReplicas takes whole numbers, and 1.5 is not one"],
    );
    let err = fails(&["tune", sc, "--sweep", "minReplicas=1:2:0.5"]);
    assert_has(&err, &["minReplicas takes whole numbers"]);
    let err = fails(&[
        "tune",
        sc,
        "--sweep",
        "scaleDown.stabilizationWindowSeconds=300.5",
    ]);
    assert_has(&err, &["takes whole numbers, and 300.5 is not one"]);
}

#[test]
fn an_absurd_trace_rate_is_refused_at_once() {
    // 1e12 requests/s: simulating it would never end. Refused before anything runs.
    let f = Files::with_hpa(HPA, "t,rps\n0,1e12\n60,1e12\n120,1e12\n");
    let started = Instant::now();
    let err = f.simulate();
    assert_has(
        &err,
        &[
            "scenario.yaml",
            "the trace asks for about 1.200e14 requests",
            "peak 1.000e12 requests/s",
            "at most 2e7 in one run",
            "trace.scale",
        ],
    );
    let err = fails(&[
        "tune",
        path_str(&f.scenario()),
        "--sweep",
        "maxReplicas=2,4",
    ]);
    assert_has(&err, &["the trace asks for about 1.200e14 requests"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    // So is a scale that makes an ordinary trace absurd.
    let f = Files::new(
        &format!("name: t\n{HPA}trace:\n  csv: trace.csv\n  scale: 1e11\n"),
        TRACE,
    );
    assert_has(&f.simulate(), &["requests over 0.1 h", "at most 2e7"]);
}

#[test]
fn every_flag_has_its_help_and_names_only_flags_that_exist() {
    for cmd in ["simulate", "tune"] {
        let out = hpa_sim(&[cmd, "--help"]);
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        let option_lines: Vec<&str> = help
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('-'))
            .collect();
        let flags: Vec<String> = option_lines
            .iter()
            .filter_map(|l| l.split_once("--"))
            .filter_map(|(_, f)| f.split([' ', '=']).next())
            .map(|f| format!("--{f}"))
            .collect();
        assert!(flags.contains(&"--end".to_string()), "{help}");
        // Each flag's line has a description after it.
        for l in option_lines {
            let rest = l.trim_start().split_once("  ").map_or("", |x| x.1).trim();
            assert!(!rest.is_empty(), "{cmd}: no help for {l:?}:\n{help}");
        }
        // Every flag the help mentions exists.
        for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')') {
            if let Some(flag) = word.strip_prefix("--") {
                let flag = format!(
                    "--{}",
                    flag.split(['=', '/', '.', ';', ':']).next().unwrap()
                );
                if flag != "--" {
                    assert!(
                        flags.contains(&flag),
                        "{cmd} --help names {flag}, which does not exist:\n{help}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_scenario_without_a_trace_asks_for_one() {
    let err = fails(&["simulate", path_str(&fixture("no-trace.yaml"))]);
    assert_has(
        &err,
        &[
            "no-trace.yaml",
            "trace.csv: no arrival trace",
            "--prometheus",
        ],
    );
}

// --- Prometheus ---------------------------------------------------------------------------

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A fake Prometheus that answers one request with `status` and `body`.
fn answering_once(status: &'static str, body: String) -> FakeProm {
    FakeProm::start(Some(1), move |_| (status, body.clone()))
}

const START: i64 = 1_700_000_000;

fn prom_args<'a>(cmd: &'a str, scenario: &'a str, url: &'a str) -> Vec<&'a str> {
    vec![
        cmd,
        scenario,
        "--prometheus",
        url,
        "--query",
        "sum(rate(vllm:request_success_total[1m]))",
        "--start",
        "1700000000",
        "--end",
        "1700001800",
        "--step",
        "60",
    ]
}

#[test]
fn an_unreachable_prometheus_is_named() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let scenario = fixture("no-trace.yaml");
    let err = fails(&[
        "simulate",
        path_str(&scenario),
        "--prometheus",
        &url,
        "--query",
        "up",
    ]);
    assert_has(&err, &[&format!("{url}: cannot reach Prometheus")]);
}

#[test]
fn a_prometheus_matrix_becomes_the_trace_summed_over_series() {
    // Two series over 30 min at a 60 s step: 1 and 2 requests/s, 3 in all.
    let series = |rate: &str, pod: &str| {
        let values: Vec<Value> = (0..=30)
            .map(|k| serde_json::json!([START + 60 * k, rate]))
            .collect();
        serde_json::json!({"metric": {"pod": pod}, "values": values})
    };
    let body = serde_json::json!({
        "status": "success",
        "data": {"resultType": "matrix", "result": [series("1", "a"), series("2", "b")]}
    })
    .to_string();
    let prom = answering_once("200 OK", body);
    let scenario = fixture("no-trace.yaml");
    let mut args = prom_args("simulate", path_str(&scenario), &prom.url);
    args.push("--json");
    let out = hpa_sim(&args);
    let url = prom.url.clone();
    let requests = prom.finish();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("fetching the trace from {url}")),
        "{stderr}"
    );
    assert_eq!(requests.len(), 1, "one request");
    let line = requests[0].lines().next().unwrap_or_default();
    assert!(
        line.starts_with("GET /api/v1/query_range?query=sum%28rate%28vllm%3Arequest_success_total%5B1m%5D%29%29&start=1700000000&end=1700001800&step=60 HTTP/1.1"),
        "{line}"
    );

    let json: Value = serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(json["totals"]["hours"], 0.5, "the range is 30 min");
    assert_eq!(json["steps"].as_array().unwrap().len(), 1800 / 15);
    for s in json["steps"].as_array().unwrap() {
        assert_eq!(s["requestsPerSecond"], 3.0, "the two series summed");
    }
    // About 3 × 1800 = 5400 arrivals (Poisson: ± 74 is one standard deviation).
    let requests = json["totals"]["requests"].as_u64().unwrap();
    assert!((5000..5800).contains(&requests), "{requests} requests");
}

#[test]
fn a_prometheus_error_answer_is_reported_with_the_url() {
    let prom = answering_once(
        "400 Bad Request",
        r#"{"status":"error","errorType":"bad_data","error":"bad_data: parse error"}"#.into(),
    );
    let scenario = fixture("no-trace.yaml");
    let err = fails(&prom_args("simulate", path_str(&scenario), &prom.url));
    let url = prom.url.clone();
    assert_eq!(prom.finish().len(), 1);
    assert_has(
        &err,
        &[&format!(
            "{url}: Prometheus answered an error: bad_data: parse error"
        )],
    );
}

#[test]
fn a_prometheus_query_without_series_is_reported() {
    let prom = answering_once(
        "200 OK",
        r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#.into(),
    );
    let scenario = fixture("no-trace.yaml");
    let err = fails(
        &prom_args("tune", path_str(&scenario), &prom.url)
            .into_iter()
            .chain(["--sweep", "maxReplicas=2,4"])
            .collect::<Vec<_>>(),
    );
    let url = prom.url.clone();
    assert_eq!(prom.finish().len(), 1);
    assert_has(
        &err,
        &[
            &url,
            "the query \"sum(rate(vllm:request_success_total[1m]))\" returned no series in that range",
        ],
    );
}

#[test]
fn a_prometheus_answer_that_is_not_json_is_reported() {
    let prom = answering_once("200 OK", "<html>login</html>".into());
    let scenario = fixture("no-trace.yaml");
    let err = fails(&prom_args("simulate", path_str(&scenario), &prom.url));
    let url = prom.url.clone();
    prom.finish();
    assert_has(&err, &[&format!("{url}: the answer is not JSON")]);
}
