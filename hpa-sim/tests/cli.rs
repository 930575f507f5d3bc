//! End to end: the `hpa-sim` binary's `simulate` and `tune` on the short scenarios under
//! `tests/fixtures/` (text, `--json` and `--report` outputs), the behaviours the tool exists to
//! show (a queue HPA follows a step up; NVML utilization over-provisions a steady load the queue
//! serves with one replica), and a reader that closes the pipe early.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;
use common::{fixture, hpa_sim, path_str};

/// Runs and requires exit 0; returns (stdout, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let out = hpa_sim(args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success(),
        "hpa-sim {args:?} failed ({}):\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("panicked"),
        "hpa-sim {args:?} panicked:\n{stderr}"
    );
    (stdout, stderr)
}

fn simulate_json(scenario: &str) -> Value {
    let path = fixture(scenario);
    let (stdout, _) = ok(&["simulate", "--json", path_str(&path)]);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{scenario}: not JSON ({e}):\n{stdout}"))
}

fn f(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is not a number"))
}

fn i(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("{pointer} is not an integer"))
}

/// The text after `label` up to the end of its line.
fn line_after<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no line starting {label:?} in:\n{text}"))
        .trim()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{name} in the report folder: {e}"))
}

/// An SVG that draws something: a document, lines, and the axis labels named.
fn check_svg(dir: &Path, name: &str, labels: &[&str]) {
    let svg = read(dir, name);
    assert!(svg.contains("<svg"), "{name} is not an SVG");
    assert!(svg.trim_end().ends_with("</svg>"), "{name} is cut short");
    assert!(
        svg.contains("<polyline") || svg.contains("<path"),
        "{name} draws no line"
    );
    // At least one line with many points: the data, not just axes and ticks.
    let most_points = svg
        .split("points=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or("").split(' ').count())
        .max()
        .unwrap_or(0);
    assert!(
        most_points >= 20,
        "{name}: its longest line has {most_points} points"
    );
    for l in labels {
        assert!(svg.contains(l), "{name} has no label {l:?}");
    }
}

#[test]
fn simulate_prints_the_totals_as_text_and_json() {
    let path = fixture("step-queue.yaml");
    let (text, _) = ok(&["simulate", path_str(&path)]);
    assert!(
        text.starts_with("step-queue: 0.5 h of trace from "),
        "the header names the scenario and the trace's length:\n{text}"
    );
    let gpu = line_after(&text, "GPU-hours");
    assert!(
        gpu.contains("x lower bound,") && gpu.contains("x best schedule)"),
        "the GPU-hours line gives both ratios: {gpu}"
    );
    for label in [
        "lower bound",
        "best schedule",
        "queue wait",
        "scale events",
        "peak replicas",
        "requests",
        "verdict",
    ] {
        line_after(&text, label);
    }

    let json = simulate_json("step-queue.yaml");
    assert_eq!(json["scenario"], "step-queue");
    let gpu_hours = f(&json, "/totals/gpuHours");
    let lower = f(&json, "/bounds/lower/gpuHours");
    let best = f(&json, "/bounds/bestSchedule/gpuHours");
    assert!(gpu_hours > 0.0 && lower > 0.0 && best >= lower);
    assert!(json["bounds"]["lower"]["method"].is_string());
    assert!(f(&json, "/bounds/bestSchedule/waitP95") >= 0.0);
    assert_eq!(json["bounds"]["bestSchedule"]["meetsGoal"], true);
    assert!(json.get("clairvoyant").is_none(), "the old key is gone");
    assert_eq!(f(&json, "/totals/hours"), 0.5);
    // The text and the JSON are the same run (the seed is fixed).
    assert!(
        gpu.starts_with(&format!(
            "{gpu_hours:.2}  ({:.2} x lower bound, {:.2} x best schedule)",
            gpu_hours / lower,
            gpu_hours / best
        )),
        "text {gpu:?} against JSON {gpu_hours} / {lower}, {best}"
    );
    // One step per 15 s sync over the 30 min trace.
    let steps = json["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1800 / 15);
    for (k, s) in steps.iter().enumerate() {
        assert_eq!(f(s, "/t"), 15.0 * (k + 1) as f64, "step {k}");
        assert!(s["metrics"]["vllm_num_requests_waiting"]["target"] == 5.0);
    }
    let requests = i(&json, "/totals/requests");
    // 2/s for 10 min, 40/s for 20 min (one ramp minute between): about 48 000.
    assert!(
        (45_000..51_000).contains(&requests),
        "{requests} requests arrived"
    );
}

#[test]
fn simulate_without_bounds_skips_them_and_says_so() {
    let path = fixture("step-queue.yaml");
    let (stdout, _) = ok(&["simulate", "--json", "--no-bounds", path_str(&path)]);
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert!(json["bounds"].is_null(), "{}", json["bounds"]);
    // The same run as with them.
    assert_eq!(json["totals"], simulate_json("step-queue.yaml")["totals"]);
    let (text, _) = ok(&["simulate", "--no-bounds", path_str(&path)]);
    let gpu = line_after(&text, "GPU-hours");
    assert!(!gpu.contains("lower bound"), "{gpu}");
    assert!(!text.contains("\nbest schedule "), "{text}");
}

#[test]
fn simulate_writes_a_report_folder() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let path = fixture("step-queue.yaml");
    let (_, stderr) = ok(&["simulate", path_str(&path), "--report", path_str(&report)]);
    assert!(stderr.contains("report written to"), "{stderr}");

    let summary = read(&report, "summary.txt");
    assert!(summary.starts_with("GPU-hours"), "{summary}");
    assert!(summary.contains("x lower bound"), "{summary}");
    assert!(!summary.contains("clairvoyant"), "{summary}");

    let json: Value = serde_json::from_str(&read(&report, "summary.json")).unwrap();
    assert!(f(&json, "/totals/gpuHours") > 0.0);
    assert!(f(&json, "/bounds/lower/gpuHours") > 0.0);
    assert!(json.get("clairvoyant").is_none());
    assert_eq!(
        json["totals"],
        simulate_json("step-queue.yaml")["totals"],
        "the report's totals are --json's"
    );

    let csv = read(&report, "steps.csv");
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("t,requests_per_second,current_replicas,desired_replicas"));
    assert!(header.contains("vllm_num_requests_waiting_target"));
    let columns = header.split(',').count();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1800 / 15, "one row per sync");
    for r in &rows {
        assert_eq!(r.split(',').count(), columns, "row {r}");
    }

    check_svg(
        &report,
        "replicas.svg",
        &[
            "replicas",
            "hours",
            "requests/s",
            "GPUs held by the best schedule (charged)",
            "HPA replicas",
        ],
    );
    hpa_line_is_drawn_last(&read(&report, "replicas.svg"));
    check_svg(&report, "metrics.svg", &["hours", "value / target"]);
}

#[test]
fn a_queue_hpa_follows_a_step_up_and_costs_more_than_the_lower_bound() {
    let json = simulate_json("step-queue.yaml");
    let steps = json["steps"].as_array().unwrap();
    let replicas = |s: &Value| i(s, "/currentReplicas");
    // 2 requests/s for the first 10 min: one replica holds.
    assert!(steps
        .iter()
        .filter(|s| f(s, "/t") <= 600.0)
        .all(|s| replicas(s) == 1));
    let peak = i(&json, "/totals/peakReplicas");
    assert!(
        peak > 1,
        "the step to 40 requests/s scales up (peak {peak})"
    );
    assert_eq!(
        peak,
        steps.iter().map(replicas).max().unwrap(),
        "the peak is the steps' highest"
    );
    assert!(
        steps.iter().any(|s| f(s, "/t") > 600.0 && replicas(s) > 1),
        "it scales after the step"
    );
    assert!(i(&json, "/bounds/bestSchedule/peakReplicas") >= 2);
    let ratio = f(&json, "/totals/gpuHours") / f(&json, "/bounds/lower/gpuHours");
    assert!(
        ratio >= 1.0,
        "an HPA that meets the goal is not under the lower bound ({ratio})"
    );
}

#[test]
fn nvml_utilization_runs_max_replicas_where_the_queue_runs_one() {
    // A steady 15 requests/s; one replica serves about 20 within the goal.
    let nvml = simulate_json("steady-nvml.yaml");
    let queue = simulate_json("steady-queue.yaml");
    let capacity = f(&nvml, "/bounds/lower/maxRequestsPerSecondPerReplica");
    assert!(
        capacity > 15.0 * 1.2,
        "one replica serves the load with room ({capacity} requests/s)"
    );
    assert_eq!(i(&nvml, "/bounds/bestSchedule/peakReplicas"), 1);
    assert_eq!(nvml["bounds"]["bestSchedule"]["meetsGoal"], true);

    assert_eq!(
        i(&nvml, "/totals/peakReplicas"),
        3,
        "NVML utilization at 0.7 reads busy on a light decoder: maxReplicas"
    );
    let last = nvml["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(i(&last, "/currentReplicas"), 3, "and stays there");
    assert!(
        f(&nvml, "/totals/secondsAtMaxReplicas") > 1200.0,
        "most of the 30 min at maxReplicas"
    );

    assert_eq!(
        i(&queue, "/totals/peakReplicas"),
        1,
        "the queue stays at one"
    );
    assert!(queue["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| i(s, "/currentReplicas") == 1));
    assert_eq!(queue["totals"]["meetsGoal"], true);
    // Both serve the load; NVML pays for about three GPUs where one does.
    assert!(f(&nvml, "/totals/gpuHours") > 2.0 * f(&queue, "/totals/gpuHours"));
}

#[test]
fn tune_sweeps_a_target_and_max_replicas_and_recommends_one() {
    let path = fixture("tune.yaml");
    let (text, stderr) = ok(&[
        "tune",
        path_str(&path),
        "--sweep",
        "target.gpu_utilization_ratio=0.6,0.8",
        "--sweep",
        "maxReplicas=2,4",
        "--threads",
        "2",
    ]);
    assert!(
        text.starts_with("tune-small: 4 settings over 0.5 h of trace"),
        "{text}"
    );
    assert!(stderr.contains("[4/4]"), "progress per setting: {stderr}");
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.get(2..).is_some_and(|r| r.starts_with("maxReplicas=")))
        .collect();
    assert_eq!(rows.len(), 4, "one row per setting:\n{text}");
    for max in ["2", "4"] {
        for (target, milli) in [("0.6", "600m"), ("0.8", "800m")] {
            let label = format!(
                "maxReplicas={max} target.gpu_utilization_ratio={target} (gpu_utilization_ratio target {milli})"
            );
            assert!(
                rows.iter().any(|r| r[2..].starts_with(&label)),
                "no row {label:?}:\n{text}"
            );
        }
    }
    let marked: Vec<&&str> = rows.iter().filter(|r| r.starts_with("* ")).collect();
    assert_eq!(marked.len(), 1, "one recommendation marked:\n{text}");
    let rec = line_after(&text, "recommendation (*): ");
    let label = marked[0][2..].split("  ").next().unwrap();
    assert!(
        rec.starts_with(label),
        "{rec:?} is the marked row {label:?}"
    );
    assert!(text.contains("\nlower bound "), "{text}");
    assert!(text.contains("\nbest schedule "), "{text}");
    assert!(!text.contains("clairvoyant"), "{text}");
    assert!(
        !text.contains("best setting per candidate"),
        "no candidates swept"
    );
}

#[test]
fn tune_sweeps_candidates_into_a_report_folder() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("sweep");
    let path = fixture("tune.yaml");
    let (text, _) = ok(&[
        "tune",
        path_str(&path),
        "--sweep",
        "candidate=queue,nvml",
        "--sweep",
        "maxReplicas=2,4",
        "--report",
        path_str(&report),
    ]);
    for c in ["queue", "nvml"] {
        for m in ["2", "4"] {
            let label = format!("candidate={c} maxReplicas={m}");
            assert!(
                text.lines()
                    .any(|l| l.get(2..).is_some_and(|r| r.starts_with(&label))),
                "no row {label:?}:\n{text}"
            );
        }
    }
    line_after(&text, "recommendation (*): ");
    assert!(text.contains("best setting per candidate:"), "{text}");
    assert!(
        text.contains("| candidate | best setting | GPU-hours | × lower bound | × best schedule | p95 wait | p99 wait |"),
        "{text}"
    );
    assert!(text.contains("|---|---|"), "{text}");
    for c in ["queue", "nvml"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("| {c} | "))),
            "no candidate row for {c}:\n{text}"
        );
    }

    assert_eq!(read(&report, "sweep.txt"), {
        // The table as printed, from its header down to the recommendation.
        let start = text.find("  setting").unwrap();
        let end = text.find("\nbest setting per candidate").unwrap();
        text[start..end].to_string()
    });
    let md = read(&report, "candidates.md");
    assert!(md.starts_with("| candidate |"), "{md}");

    let json: Value = serde_json::from_str(&read(&report, "sweep.json")).unwrap();
    let outcomes = json["outcomes"].as_array().expect("outcomes");
    assert_eq!(outcomes.len(), 4);
    let rec = json["recommendation"].as_u64().expect("a recommendation") as usize;
    assert!(rec < outcomes.len());
    let best = &outcomes[rec];
    assert_eq!(best["totals"]["meetsGoal"], true);
    let best_gpu = f(best, "/totals/gpuHours");
    for o in outcomes {
        if o["totals"]["meetsGoal"] == true {
            assert!(
                f(o, "/totals/gpuHours") >= best_gpu,
                "the recommendation is the cheapest setting that meets the goal"
            );
        }
    }
    let per = json["bestPerCandidate"].as_object().unwrap();
    assert!(
        per.contains_key("queue") && per.contains_key("nvml"),
        "{per:?}"
    );
    let bounds = json["bounds"].as_array().expect("bounds per range");
    assert_eq!(bounds.len(), 2, "maxReplicas 2 and 4: {bounds:?}");
    for b in bounds {
        assert!(f(b, "/lower/gpuHours") > 0.0);
        assert!(f(b, "/bestSchedule/gpuHours") >= f(b, "/lower/gpuHours"));
    }
    assert_eq!(json["rejected"], Value::Array(vec![]));

    let csv = read(&report, "sweep.csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("candidate,maxReplicas,gpu_hours,lower_bound_gpu_hours,best_schedule_gpu_hours,ratio_to_lower_bound,ratio_to_best_schedule,"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 1 + 4);
    assert!(lines[1..]
        .iter()
        .all(|l| l.split(',').count() == lines[0].split(',').count()));

    check_svg_points(&report, "cost-latency.svg");
    check_svg(&report, "replicas.svg", &["replicas", "hours"]);
    check_svg(&report, "metrics.svg", &["hours", "value / target"]);
    assert!(read(&report, "steps.csv").lines().count() == 1 + 1800 / 15);
}

/// In the replicas plot, the HPA's own replica line is drawn after (on top of) the other
/// replica lines, and thicker.
fn hpa_line_is_drawn_last(svg: &str) {
    // The data lines: the polylines with many points, in drawing order, by stroke colour.
    let lines: Vec<&str> = svg
        .split("<polyline")
        .skip(1)
        .filter(|p| {
            p.split("points=\"")
                .nth(1)
                .is_some_and(|pts| pts.split('"').next().unwrap_or("").split(' ').count() >= 20)
        })
        .collect();
    let at = |colour: &str| {
        lines
            .iter()
            .position(|l| l.contains(&format!("stroke=\"{colour}\"")))
            .unwrap_or_else(|| panic!("no line in {colour}"))
    };
    let hpa = at("#142878");
    for other in ["#2CA02C", "#8CB4E6", "#D62728"] {
        assert!(at(other) < hpa, "{other} is drawn over the HPA's line");
    }
    assert!(lines[hpa].contains("stroke-width=\"3\""), "{}", lines[hpa]);
}

/// The cost-latency plot draws points (circles), not lines.
fn check_svg_points(dir: &Path, name: &str) {
    let svg = read(dir, name);
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.matches("<circle").count() >= 4,
        "{name}: a point per setting"
    );
    for l in [
        "GPU-hours / lower bound",
        "p95 queue wait",
        "recommendation",
    ] {
        assert!(svg.contains(l), "{name} has no label {l:?}");
    }
}

#[test]
fn tune_json_applies_targets_to_the_candidates_that_have_the_metric() {
    let path = fixture("tune.yaml");
    let (stdout, _) = ok(&[
        "tune",
        "--json",
        path_str(&path),
        "--sweep",
        "candidate=queue,nvml",
        "--sweep",
        "target.vllm_num_requests_waiting=2,5",
        "--sweep",
        "maxReplicas=2,4",
    ]);
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let outcomes = json["outcomes"].as_array().unwrap();
    // queue: 2 targets x 2 bounds; nvml has no queue metric: 2 bounds (the target sweep does
    // not apply, so its settings repeat and are run once).
    assert_eq!(outcomes.len(), 6, "{stdout}");
    let of = |c: &'static str| outcomes.iter().filter(move |o| o["candidate"] == c);
    assert_eq!(of("queue").count(), 4);
    assert_eq!(of("nvml").count(), 2);
    for o in of("queue") {
        assert!(
            o["params"]["target.vllm_num_requests_waiting"].is_string(),
            "{o}"
        );
    }
    for o in of("nvml") {
        assert!(o["params"]
            .get("target.vllm_num_requests_waiting")
            .is_none());
    }
    // Each setting is judged by the bounds of its own replica range.
    let bounds = json["bounds"].as_array().unwrap();
    for o in outcomes {
        let max = o["params"]["maxReplicas"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap();
        let b = bounds
            .iter()
            .find(|b| i(b, "/maxReplicas") == max)
            .unwrap_or_else(|| panic!("no bounds for maxReplicas {max}: {bounds:?}"));
        let lower = f(b, "/lower/gpuHours");
        let best = f(b, "/bestSchedule/gpuHours");
        assert_eq!(f(o, "/lowerBoundGpuHours"), lower);
        assert_eq!(f(o, "/bestScheduleGpuHours"), best);
        let gpu = f(o, "/totals/gpuHours");
        assert!((f(o, "/ratioToLowerBound") - gpu / lower).abs() < 1e-9);
        assert!((f(o, "/ratioToBestSchedule") - gpu / best).abs() < 1e-9);
        if o["totals"]["meetsGoal"] == true {
            assert!(gpu >= lower, "{o}");
        }
    }
    assert!(json["recommendation"].is_u64() || json["recommendation"].is_null());
}

#[test]
fn tune_skips_a_setting_kubernetes_would_reject() {
    let path = fixture("tune.yaml");
    let (text, stderr) = ok(&["tune", path_str(&path), "--sweep", "minReplicas=1,5"]);
    assert!(
        stderr.contains("skipped, Kubernetes would reject it: minReplicas=5: spec.maxReplicas: Invalid value: 3: must be greater than or equal to `minReplicas` (5)"),
        "{stderr}"
    );
    assert!(text.starts_with("tune-small: 1 settings"), "{text}");

    let out = hpa_sim(&["tune", path_str(&path), "--sweep", "minReplicas=4,5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the sweep leaves no valid setting"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn tune_sweeps_the_tolerance_and_skips_a_negative_one() {
    let path = fixture("tune.yaml");
    let (text, stderr) = ok(&[
        "tune",
        path_str(&path),
        "--sweep",
        "tolerance=-0.1,0.05,0.3",
    ]);
    assert!(
        stderr.contains(
            "skipped, Kubernetes would reject it: tolerance=-0.1: spec.behavior.scaleUp.tolerance"
        ),
        "{stderr}"
    );
    assert!(text.starts_with("tune-small: 2 settings"), "{text}");
    // The tolerance reaches the controller: a wider band holds fewer replicas on this load.
    let gpu_hours = |t: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| {
                l.get(1..)
                    .is_some_and(|r| r.trim_start().starts_with(&format!("tolerance={t} ")))
            })
            .unwrap_or_else(|| panic!("no row for {t}: {text}"));
        line.split_whitespace()
            .find_map(|w| w.parse::<f64>().ok())
            .unwrap()
    };
    assert!(gpu_hours("0.3") < gpu_hours("0.05"), "{text}");
}

#[test]
fn tune_names_the_candidates_when_one_is_unknown() {
    let path = fixture("tune.yaml");
    let out = hpa_sim(&["tune", path_str(&path), "--sweep", "candidate=queue,tensor"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr
            .contains("candidate=tensor: the scenario has no such candidate (it has: nvml, queue)"),
        "{stderr}"
    );
}

/// A CASE with many syncs, so that `replay` writes well past a pipe's buffer.
fn long_case(dir: &Path) -> PathBuf {
    let mut s = String::from(
        "hpa:\n  maxReplicas: 10\n  metrics:\n  - type: Pods\n    pods:\n      metric: {name: load}\n      target: {type: AverageValue, averageValue: 10}\nreplicas: 2\ntimeline:\n",
    );
    for k in 0..3000 {
        s.push_str(&format!(
            "  - {{t: {}, pods: [{{metrics: {{load: 10}}}}, {{metrics: {{load: 10}}}}]}}\n",
            k * 15
        ));
    }
    let p = dir.join("long.yaml");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn replay_into_a_pipe_closed_after_one_line_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let case = long_case(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hpa-sim"))
        .arg("replay")
        .arg(&case)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        // `| head -1`: read a line, then close the pipe.
        let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
        r.read_line(&mut first).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["t"], 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
    assert!(out.status.success(), "{}", out.status);
}

#[test]
fn simulate_into_a_closed_pipe_is_not_an_error() {
    for json in [true, false] {
        let path = fixture("steady-queue.yaml");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hpa-sim"));
        cmd.arg("simulate").arg(&path);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "--json {json}: {stderr}");
        assert!(out.status.success(), "--json {json}: {}", out.status);
    }
}
