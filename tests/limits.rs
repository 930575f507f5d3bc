//! dcgm-exporter's counters through the mock NVML, end to end: memory clock and temperature,
//! reserved framebuffer, power limit, remapped rows and row remapping state, time throttled
//! per violation reason. The values in base units; absent where a device does not support a
//! call (never 0, and not counted as an error); a failing call counted while the device stays
//! up; a remap that fails under the running agent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{fixture, prom, Agent, WAIT};

/// The mock's health-and-MIG example: GPU 0 with every counter, GPU 1 (MIG mode) with some.
fn health_and_mig() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vendor-mocks/nvml-mock/scenarios/health-and-mig.yaml");
    std::fs::read_to_string(path).unwrap()
}

fn nvidia_ok(s: &prom::Samples) -> bool {
    s.value(
        "gpu_pod_exporter_collector_success",
        &[("collector", "nvidia")],
    ) == Some(1.0)
}

fn reason(s: &prom::Samples, gpu: &str, reason: &str) -> Option<f64> {
    s.value(
        "gpu_throttle_seconds_total",
        &[("gpu", gpu), ("reason", reason)],
    )
}

/// The `call` labels of the driver call errors counted so far.
fn failed_calls(s: &prom::Samples) -> Vec<(String, String)> {
    s.find("gpu_pod_exporter_driver_call_errors_total", &[])
        .iter()
        .filter(|x| x.value > 0.0)
        .map(|x| (x.labels["call"].clone(), x.labels["error"].clone()))
        .collect()
}

#[test]
fn the_counters_have_the_scenario_values_in_base_units() {
    let agent = Agent::with_scenario(&health_and_mig()).start();
    let s = agent.scrape_until(WAIT, "both GPUs' first health read", |s| {
        nvidia_ok(s)
            && s.value("gpu_power_limit_watts", &[("gpu", "0")]).is_some()
            && s.value("gpu_power_limit_watts", &[("gpu", "1")]).is_some()
    });
    let g0 = [("gpu", "0")];
    assert_eq!(s.value("gpu_memory_clock_hertz", &g0), Some(2_619e6));
    assert_eq!(s.value("gpu_memory_temperature_celsius", &g0), Some(48.0));
    assert_eq!(
        s.value("gpu_memory_reserved_bytes", &g0),
        Some(565_182_464.0)
    );
    assert_eq!(s.value("gpu_power_limit_watts", &g0), Some(700.0));
    let rows = |gpu, t| s.value("gpu_remapped_rows_total", &[("gpu", gpu), ("type", t)]);
    assert_eq!(rows("0", "correctable"), Some(3.0));
    assert_eq!(rows("0", "uncorrectable"), Some(1.0));
    assert_eq!(s.value("gpu_row_remap_pending", &g0), Some(1.0));
    assert_eq!(s.value("gpu_row_remap_failed", &g0), Some(0.0));
    // NVML counts nanoseconds.
    assert_eq!(reason(&s, "0", "power"), Some(1.5));
    assert_eq!(reason(&s, "0", "thermal"), Some(0.25));
    assert_eq!(reason(&s, "0", "low_utilization"), Some(8.0));
    for r in ["sync_boost", "board_limit", "reliability"] {
        assert_eq!(reason(&s, "0", r), Some(0.0), "{r}");
    }

    // GPU 1: no memory temperature, two violation reasons, and no remapped rows: NVML does not
    // report them for a GPU with MIG instances.
    let g1 = [("gpu", "1")];
    assert_eq!(s.value("gpu_memory_temperature_celsius", &g1), None);
    assert_eq!(s.value("gpu_memory_clock_hertz", &g1), Some(2_619e6));
    assert_eq!(s.value("gpu_power_limit_watts", &g1), Some(500.0));
    assert_eq!(rows("1", "uncorrectable"), None);
    assert_eq!(s.value("gpu_row_remap_pending", &g1), None);
    assert_eq!(s.value("gpu_row_remap_failed", &g1), None);
    let reasons: Vec<&str> = s
        .find("gpu_throttle_seconds_total", &g1)
        .iter()
        .map(|x| x.labels["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["power", "thermal"]);

    // MIG instances: NVML answers none of these for a MIG device; the parent has them.
    let mig = [("gpu", "1:1")];
    assert_eq!(s.value("gpu_memory_reserved_bytes", &mig), Some(0.0));
    for name in [
        "gpu_memory_clock_hertz",
        "gpu_power_limit_watts",
        "gpu_row_remap_failed",
    ] {
        assert_eq!(s.value(name, &mig), None, "{name}");
    }
    assert!(s.find("gpu_throttle_seconds_total", &mig).is_empty());
    // What is not supported is not an error.
    assert_eq!(failed_calls(&s), Vec::<(String, String)>::new());
}

#[test]
fn a_device_without_them_has_none_and_counts_no_error() {
    let golden = std::fs::read_to_string(fixture("scenarios/golden.yaml")).unwrap();
    let agent = Agent::with_scenario(&golden).start();
    agent.scrape_until(WAIT, "the collector's first good cycle", nvidia_ok);
    // Two more cycles (at 500 ms): the first health read has answered.
    std::thread::sleep(Duration::from_millis(1200));
    let s = prom::parse(&agent.scrape());
    assert!(s.has("gpu_memory_total_bytes"));
    for name in [
        "gpu_memory_clock_hertz",
        "gpu_memory_temperature_celsius",
        "gpu_power_limit_watts",
        "gpu_remapped_rows_total",
        "gpu_row_remap_pending",
        "gpu_row_remap_failed",
        "gpu_throttle_seconds_total",
    ] {
        assert!(
            !s.has(name),
            "{name} present on devices that do not support it"
        );
        assert!(
            !s.text.contains(&format!("# TYPE {name}")),
            "{name}: empty family"
        );
    }
    // The golden node's third GPU fails its power call by design; nothing else is counted.
    assert_eq!(
        failed_calls(&s),
        [("power".to_string(), "UNKNOWN".to_string())]
    );
}

/// Every family fails on GPU 0: each failure is counted under its call, the device stays up
/// with its other series, and GPU 1 is untouched.
#[test]
fn a_failing_call_is_counted_and_the_device_stays_up() {
    let errors = "    errors: {memory_clock: UNKNOWN, memory_temperature: UNKNOWN, power_limit: NO_PERMISSION, remapped_rows: CORRUPTED_INFOROM, violations: TIMEOUT}\n";
    let text = health_and_mig().replacen(
        "    decoder_percent: 12\n",
        &format!("    decoder_percent: 12\n{errors}"),
        1,
    );
    let agent = Agent::with_scenario(&text).start();
    let want = [
        ("memory_clock", "UNKNOWN"),
        ("memory_temperature", "UNKNOWN"),
        ("power_limit", "NO_PERMISSION"),
        ("remapped_rows", "CORRUPTED_INFOROM"),
        ("violations", "TIMEOUT"),
    ];
    let s = agent.scrape_until(WAIT, "every failing family counted", |s| {
        nvidia_ok(s)
            && want.iter().all(|(call, error)| {
                s.value(
                    "gpu_pod_exporter_driver_call_errors_total",
                    &[("collector", "nvidia"), ("call", call), ("error", error)],
                )
                .is_some_and(|n| n > 0.0)
            })
    });
    let g0 = [("gpu", "0")];
    assert_eq!(s.value("gpu_up", &g0), Some(1.0));
    assert_eq!(s.value("gpu_sm_clock_hertz", &g0), Some(1_980e6));
    assert_eq!(s.value("gpu_energy_joules_total", &g0), Some(123456.789));
    for name in [
        "gpu_memory_clock_hertz",
        "gpu_memory_temperature_celsius",
        "gpu_power_limit_watts",
        "gpu_row_remap_failed",
    ] {
        assert_eq!(s.value(name, &g0), None, "{name}");
    }
    assert!(s.find("gpu_throttle_seconds_total", &g0).is_empty());
    // All six violation policies failed: six failures per health read.
    let violations = s
        .value(
            "gpu_pod_exporter_driver_call_errors_total",
            &[("call", "violations")],
        )
        .unwrap();
    assert_eq!(violations % 6.0, 0.0, "{violations}");
    assert_eq!(
        s.value("gpu_power_limit_watts", &[("gpu", "1")]),
        Some(500.0)
    );
    assert_eq!(
        s.value("gpu_memory_clock_hertz", &[("gpu", "1")]),
        Some(2_619e6)
    );
    // Not a fault of the device, only of those calls: failing errors do not take it down.
    assert_eq!(failed_calls(&s).len(), want.len(), "{:?}", failed_calls(&s));
}

/// A remap that fails while the agent runs, and time throttled that grows, are seen within a
/// health interval.
#[test]
fn a_remap_failure_and_new_throttle_time_are_seen() {
    let agent = Agent::with_scenario(&health_and_mig())
        .arg("--collect.health-interval=1s")
        .start();
    agent.scrape_until(WAIT, "the first health read", |s| {
        s.value("gpu_row_remap_failed", &[("gpu", "0")]) == Some(0.0)
    });
    let changed = health_and_mig()
        .replacen(
            "pending: true, failure: false",
            "pending: false, failure: true",
            1,
        )
        .replacen("power: 1500000000", "power: 61500000000", 1);
    agent.set_scenario(&changed);
    let s = agent.scrape_until(WAIT, "the failed remap and the new power time", |s| {
        s.value("gpu_row_remap_failed", &[("gpu", "0")]) == Some(1.0)
            && reason(s, "0", "power") == Some(61.5)
    });
    assert_eq!(s.value("gpu_row_remap_pending", &[("gpu", "0")]), Some(0.0));
}
