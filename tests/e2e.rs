//! End to end: the real binary on the mock NVML. Golden output, contract names and values for
//! every example scenario, `promtool check metrics`, content negotiation, the HTTP endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{fixture, prom, Agent, WAIT};

fn read(rel: &str) -> String {
    std::fs::read_to_string(fixture(rel)).unwrap()
}

/// Series whose values change from run to run, left out of golden comparisons.
fn is_volatile(line: &str) -> bool {
    let name = line
        .trim_start_matches("# HELP ")
        .trim_start_matches("# TYPE ")
        .split(['{', ' '])
        .next()
        .unwrap_or("");
    name.starts_with("process_")
        || name == "gpu_pod_exporter_collector_duration_seconds"
        || name == "gpu_pod_exporter_build_info"
        || name == "gpu_pod_exporter_snapshot_age_seconds"
        || name == "gpu_pod_exporter_attribution_duration_seconds"
        || name == "gpu_pod_exporter_http_connections"
}

fn stable(text: &str) -> String {
    text.lines()
        .filter(|l| !is_volatile(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Every device answered (none is a first-cycle placeholder), GPM has two samples, and the
/// L4's failing power call has been counted.
fn gpm_ready(s: &prom::Samples) -> bool {
    s.value(
        "gpu_pod_exporter_collector_success",
        &[("collector", "nvidia")],
    ) == Some(1.0)
        && s.has("gpu_sm_active_ratio")
        && s.value(
            "gpu_pod_exporter_driver_call_errors_total",
            &[("call", "power")],
        )
        .is_some()
}

#[test]
fn golden_metrics() {
    // The node tree: pid 4242 in a pod, 4243 a host process (unattributed), 7070 gone before
    // it could be read (unattributed too).
    let agent = Agent::with_scenario(&read("scenarios/golden.yaml"))
        .rootfs(fixture("nodes/golden"))
        .start();
    let s = agent.scrape_until(
        WAIT,
        "GPM values (two samples) and the power error",
        gpm_ready,
    );
    // Counters move with the number of cycles: their values are masked.
    let text: String = stable(&s.text)
        .lines()
        .map(|l| {
            if l.starts_with("gpu_pod_exporter_") && l.contains("_total{") {
                format!("{} N\n", l.rsplit_once(' ').unwrap().0)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    common::assert_golden("golden.prom", &text);
}

/// The scenario fields of one device, read the way the contract defines them.
#[derive(Debug, serde::Deserialize)]
struct ScenarioDevice {
    uuid: String,
    name: String,
    pci_bus_id: String,
    memory_total_bytes: f64,
    memory_used_bytes: f64,
    utilization_gpu_percent: f64,
    utilization_memory_percent: f64,
    power_milliwatts: f64,
    temperature_celsius: f64,
    sm_clock_mhz: f64,
    #[serde(default)]
    gpm: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    processes: Vec<BTreeMap<String, f64>>,
    #[serde(default)]
    errors: BTreeMap<String, String>,
    #[serde(default)]
    delays_ms: BTreeMap<String, u64>,
    /// MIG instances: a GPU in MIG mode reports no device-wide utilization, and its instances
    /// are devices of their own (checked by the MIG tests, not here).
    #[serde(default)]
    mig: Option<Vec<serde::de::IgnoredAny>>,
    /// An MPS server: in the compute list beside `processes` (its clients).
    #[serde(default)]
    mps_server: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, serde::Deserialize)]
struct Scenario {
    driver_version: String,
    #[serde(default)]
    init_error: Option<String>,
    devices: Vec<ScenarioDevice>,
}

/// Every device series equals the scenario's value under the contract's name and labels.
fn check_scenario_values(yaml: &str, origin: &str) {
    let sc: Scenario = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{origin}: {e}"));
    assert!(
        sc.init_error.is_none(),
        "{origin}: pick scenarios that initialize"
    );
    let agent = Agent::with_scenario(yaml).start();
    let healthy =
        |d: &ScenarioDevice| d.errors.is_empty() && d.delays_ms.is_empty() && d.mig.is_none();
    let s = agent.scrape_until(
        WAIT,
        &format!("{origin}: every healthy device, with GPM"),
        |s| {
            sc.devices.iter().enumerate().all(|(i, d)| {
                let gpu = i.to_string();
                let l = [("gpu", gpu.as_str())];
                !healthy(d)
                    || (s.value("gpu_up", &l) == Some(1.0)
                        && (d.gpm.is_none() || s.value("gpu_sm_active_ratio", &l).is_some()))
            })
        },
    );
    for (i, d) in sc.devices.iter().enumerate() {
        if !healthy(d) {
            continue;
        }
        let gpu = i.to_string();
        let l = [
            ("gpu", gpu.as_str()),
            ("uuid", d.uuid.as_str()),
            ("vendor", "nvidia"),
        ];
        let info = [
            ("gpu", gpu.as_str()),
            ("uuid", d.uuid.as_str()),
            ("vendor", "nvidia"),
            ("model", d.name.as_str()),
            ("pci_bus_id", d.pci_bus_id.as_str()),
            ("driver_version", sc.driver_version.as_str()),
        ];
        assert_eq!(
            s.value("gpu_info", &info),
            Some(1.0),
            "{origin} gpu {i} info"
        );
        let expect = [
            ("gpu_up", 1.0),
            ("gpu_utilization_ratio", d.utilization_gpu_percent / 100.0),
            (
                "gpu_memory_bandwidth_utilization_ratio",
                d.utilization_memory_percent / 100.0,
            ),
            ("gpu_memory_used_bytes", d.memory_used_bytes),
            ("gpu_memory_total_bytes", d.memory_total_bytes),
            ("gpu_power_watts", d.power_milliwatts / 1000.0),
            ("gpu_temperature_celsius", d.temperature_celsius),
            ("gpu_sm_clock_hertz", d.sm_clock_mhz * 1e6),
            (
                "gpu_processes",
                (d.processes.len() + usize::from(d.mps_server.is_some())) as f64,
            ),
        ];
        for (name, want) in expect {
            let got = s
                .value(name, &l)
                .unwrap_or_else(|| panic!("{origin}: {name} gpu {i} missing"));
            assert!(
                (got - want).abs() <= want.abs() * 1e-9,
                "{origin}: {name} gpu {i}: {got} != {want}"
            );
        }
        let gpm_names = [
            ("graphics_active", "gpu_graphics_active_ratio"),
            ("sm_active", "gpu_sm_active_ratio"),
            ("sm_occupancy", "gpu_sm_occupancy_ratio"),
            ("tensor_active", "gpu_tensor_active_ratio"),
            ("dram_active", "gpu_dram_active_ratio"),
            ("fp64_active", "gpu_fp64_active_ratio"),
            ("fp32_active", "gpu_fp32_active_ratio"),
            ("fp16_active", "gpu_fp16_active_ratio"),
        ];
        for (field, name) in gpm_names {
            let want = d.gpm.as_ref().and_then(|g| g.get(field)).copied();
            let got = s.value(name, &l);
            match (want, got) {
                (Some(w), Some(g)) => {
                    assert!((w - g).abs() < 1e-9, "{origin}: {name} gpu {i}: {g} != {w}")
                }
                (None, None) => {}
                _ => panic!("{origin}: {name} gpu {i}: scenario {want:?}, scrape {got:?}"),
            }
        }
    }
}

#[test]
fn every_example_scenario_is_exported_under_the_contract_names() {
    let mut dirs = vec![fixture("scenarios")];
    dirs.push(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor-mocks/nvml-mock/scenarios"),
    );
    let mut checked = 0;
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                let yaml = std::fs::read_to_string(&path).unwrap();
                let sc: Result<Scenario, _> = serde_saphyr::from_str(&yaml);
                if sc.as_ref().is_ok_and(|s| s.init_error.is_none()) {
                    check_scenario_values(&yaml, &path.display().to_string());
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked >= 2,
        "expected example scenarios, checked {checked}"
    );
}

#[test]
fn promtool_check_metrics_is_clean() {
    let agent = Agent::with_scenario(&read("scenarios/golden.yaml")).start();
    let s = agent.scrape_until(WAIT, "GPM values", gpm_ready);
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is required (Debian package `prometheus`; .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(s.text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool:\n{report}"
    );
}

#[test]
fn content_negotiation() {
    let agent = Agent::with_scenario(&read("scenarios/golden.yaml")).start();
    agent.scrape_until(WAIT, "a first sample", gpm_ready);

    let plain = agent.get("/metrics", &[]);
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!plain.body.contains("# EOF"));
    assert!(plain
        .body
        .contains("# TYPE gpu_pod_exporter_attribution_failures_total counter"));

    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = agent.get("/metrics", &[("Accept", prometheus_accept)]);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(om
        .body
        .contains("# TYPE gpu_pod_exporter_attribution_failures counter"));

    let text_preferred = agent.get(
        "/metrics",
        &[("Accept", "application/openmetrics-text;q=0.3,text/plain")],
    );
    assert!(text_preferred
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));

    // gzip when the scrape takes it (Prometheus sends `Accept-Encoding: gzip`), the same text.
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let gz = agent.get("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(gz.raw_body.as_slice()),
        &mut text,
    )
    .unwrap();
    assert!(
        gz.raw_body.len() * 3 < text.len(),
        "{} bytes",
        gz.raw_body.len()
    );
    assert_eq!(stable(&text), stable(&agent.get("/metrics", &[]).body));
    let refused = agent.get("/metrics", &[("Accept-Encoding", "gzip;q=0, identity")]);
    assert_eq!(refused.header("content-encoding"), None);
    assert!(refused.body.contains("# TYPE gpu_info gauge"));
}

#[test]
fn endpoints() {
    let agent = Agent::with_scenario(&read("scenarios/golden.yaml")).start();
    agent.wait_for(WAIT, "/readyz 200", |a| a.get("/readyz", &[]).status == 200);
    assert_eq!(agent.get("/healthz", &[]).status, 200);
    let landing = agent.get("/", &[]);
    assert_eq!(landing.status, 200);
    assert!(landing.body.contains("href=\"/metrics\""));
    assert_eq!(agent.get("/nope", &[]).status, 404);
    let s = prom::parse(&agent.scrape());
    for name in [
        "gpu_pod_exporter_build_info",
        "gpu_pod_exporter_collector_success",
        "gpu_pod_exporter_collector_duration_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(s.has(name), "{name} missing:\n{}", s.text);
    }
    assert!(s.value("process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert_eq!(agent.terminate().code(), Some(0), "SIGTERM is a clean exit");
}

#[test]
fn custom_telemetry_path() {
    let agent = Agent::with_scenario(&read("scenarios/golden.yaml"))
        .arg("--web.telemetry-path=/custom")
        .start();
    assert_eq!(agent.get("/custom", &[]).status, 200);
    assert_eq!(agent.get("/metrics", &[]).status, 404);
}

/// The default binary starts on any node: it never links ROCm SMI (only the `rocm-smi`
/// feature does, and `tests/rocm_smi.rs` checks that it then does).
#[cfg(not(feature = "rocm-smi"))]
#[test]
fn the_default_binary_does_not_link_rocm() {
    let needed =
        common::needed_libraries(std::path::Path::new(env!("CARGO_BIN_EXE_gpu-pod-exporter")));
    assert!(
        needed.iter().any(|l| l.starts_with("libc.so")),
        "{needed:?}"
    );
    assert!(!needed.iter().any(|l| l.contains("rocm")), "{needed:?}");
}
