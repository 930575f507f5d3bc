//! DCGM as the profiling source of the GPUs without GPM, end to end: the real binary, the mock
//! NVML and the mock DCGM (`libdcgm_mock.so`) on one scenario, and a fake node whose pods hold
//! or share those GPUs. GPM wins where a GPU has both; the per-pod series follow the holds-alone
//! rule; the host engine goes down and comes back, and the device series never stop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::node::pod;
use common::{built_library, prom, Agent};

/// Longer than `common::WAIT`: the cases with the host engine down wait out the agent's connect
/// backoff (1, 2, 4, 8 s) before DCGM's series come.
const WAIT: Duration = Duration::from_secs(25);
const A100: &str = "GPU-a1000000-0b7f-4c55-9e1e-6b1f0c2d3e4f";
const H100: &str = "GPU-41000000-1a4d-4c55-9e1e-6b1f0c2d3e4f";
const L4: &str = "GPU-14000000-2c3e-4c55-9e1e-6b1f0c2d3e4f";
const T4: &str = "GPU-74000000-3d4f-4c55-9e1e-6b1f0c2d3e4f";

/// DCGM's fields on the A100, as an A100 at moderate load could read.
const A100_DCGM: &str = "{graphics_active: 0.9, sm_active: 0.6, sm_occupancy: 0.3, tensor_active: 0.25, dram_active: 0.4, fp64_active: 0.0, fp32_active: 0.1, fp16_active: 0.05}";
/// The H100's GPM, and (different) DCGM values for it: GPM must win.
const H100_GPM: &str = "{graphics_active: 0.8, sm_active: 0.7, sm_occupancy: 0.2, tensor_active: 0.35, dram_active: 0.5, fp64_active: 0.01, fp32_active: 0.15, fp16_active: 0.02}";
const H100_DCGM: &str = "{graphics_active: 0.11, sm_active: 0.11, sm_occupancy: 0.11, tensor_active: 0.11, dram_active: 0.11, fp64_active: 0.11, fp32_active: 0.11, fp16_active: 0.11}";
const L4_DCGM: &str = "{graphics_active: 0.5, sm_active: 0.45, sm_occupancy: 0.15, tensor_active: 0.12, dram_active: 0.3, fp64_active: 0.0, fp32_active: 0.2, fp16_active: 0.1}";

fn device(
    uuid: &str,
    name: &str,
    bus: u8,
    gpm: &str,
    dcgm: &str,
    procs: &str,
    extra: &str,
) -> String {
    let dcgm = if dcgm.is_empty() {
        String::new()
    } else {
        format!("    dcgm_profiling: {dcgm}\n")
    };
    format!(
        r#"  - uuid: {uuid}
    name: {name}
    pci_bus_id: "00000000:{bus:02X}:00.0"
    memory_total_bytes: 25769803776
    memory_used_bytes: 8000000000
    utilization_gpu_percent: 60
    utilization_memory_percent: 30
    power_milliwatts: 200000
    temperature_celsius: 55
    sm_clock_mhz: 1410
    process_utilization: not_supported
    gpm: {gpm}
{dcgm}    processes:
{procs}{extra}"#
    )
}

fn proc_line(pid: u32) -> String {
    format!("      - {{pid: {pid}, used_memory_bytes: 1000000000}}\n")
}

/// The node: an A100 (no GPM) held by `solo`, an H100 (GPM and DCGM) held by `hopper`, an L4
/// (no GPM) shared by `share-a` and `share-b`, a T4 DCGM cannot profile. `top` goes before
/// the devices (the `dcgm` block, top-level faults); `a100` adds fields to the A100.
fn scenario(top: &str, a100: &str) -> String {
    format!(
        "{top}devices:\n{}{}{}{}",
        device(
            A100,
            "NVIDIA A100-SXM4-80GB",
            0x07,
            "null",
            A100_DCGM,
            &proc_line(5100),
            a100
        ),
        device(
            H100,
            "NVIDIA H100 80GB HBM3",
            0x18,
            H100_GPM,
            H100_DCGM,
            &proc_line(5200),
            ""
        ),
        device(
            L4,
            "NVIDIA L4",
            0x21,
            "null",
            L4_DCGM,
            &(proc_line(5300) + &proc_line(5400)),
            ""
        ),
        device(T4, "Tesla T4", 0x3B, "null", "", "      []\n", ""),
    )
}

fn node() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    pod(root, 1, "llm", "solo", "server", 5100, "python3");
    pod(root, 2, "llm", "hopper", "server", 5200, "python3");
    pod(root, 3, "batch", "share-a", "worker", 5300, "python3");
    pod(root, 4, "batch", "share-b", "worker", 5400, "python3");
    dir
}

fn agent(yaml: &str, root: &std::path::Path, address: &str) -> Agent {
    Agent::with_scenario(yaml)
        .rootfs(root)
        .arg(format!("--dcgm.address={address}"))
        .arg(format!(
            "--dcgm.library={}",
            built_library("libdcgm_mock.so").display()
        ))
        .arg("--no-collector.amd")
        .start()
}

fn source(s: &prom::Samples, gpu: &str) -> Option<String> {
    s.find("gpu_profiling_info", &[("gpu", gpu)])
        .first()
        .map(|p| p.labels["source"].clone())
}

fn errors(s: &prom::Samples, call: &str, error: &str) -> f64 {
    s.value(
        "gpu_pod_exporter_driver_call_errors_total",
        &[("collector", "nvidia"), ("call", call), ("error", error)],
    )
    .unwrap_or(0.0)
}

/// The eight profiling series of a device, in DCGM's field order.
fn profiling(s: &prom::Samples, gpu: &str) -> Vec<Option<f64>> {
    [
        "gpu_graphics_active_ratio",
        "gpu_sm_active_ratio",
        "gpu_sm_occupancy_ratio",
        "gpu_tensor_active_ratio",
        "gpu_dram_active_ratio",
        "gpu_fp64_active_ratio",
        "gpu_fp32_active_ratio",
        "gpu_fp16_active_ratio",
    ]
    .iter()
    .map(|m| s.value(m, &[("gpu", gpu)]))
    .collect()
}

/// Every device answered, with its utilization: the device series go on.
fn devices_go_on(s: &prom::Samples) {
    let up = s.find("gpu_up", &[]);
    assert_eq!(up.len(), 4, "{}", s.text);
    assert!(up.iter().all(|d| d.value == 1.0), "{}", s.text);
    assert_eq!(s.find("gpu_utilization_ratio", &[]).len(), 4, "{}", s.text);
    // GPM needs no host engine.
    assert_eq!(s.value("gpu_sm_active_ratio", &[("gpu", "1")]), Some(0.7));
}

/// Scrapes until `cond`, checking every scrape on the way that the device series go on (once
/// GPM has its first values).
fn until_devices_going_on(
    agent: &Agent,
    what: &str,
    cond: impl Fn(&prom::Samples) -> bool,
) -> prom::Samples {
    let each = |s: &prom::Samples| {
        if s.value("gpu_sm_active_ratio", &[("gpu", "1")]).is_some() {
            devices_go_on(s);
        }
    };
    agent.scrape_until_each(WAIT, what, each, cond)
}

fn settled(s: &prom::Samples) -> bool {
    source(s, "0").as_deref() == Some("dcgm")
        && source(s, "2").as_deref() == Some("dcgm")
        && source(s, "1").as_deref() == Some("gpm")
        && s.has("pod_gpu_sm_active_ratio")
        && s.value("pod_gpu_sm_active_ratio", &[("pod", "solo")])
            .is_some()
}

#[test]
fn dcgm_serves_the_gpus_without_gpm_gpm_wins_and_the_host_engine_comes_back() {
    let dir = node();
    let agent = agent(&scenario("", ""), dir.path(), "127.0.0.1:5555");
    let s = until_devices_going_on(&agent, "DCGM's values on the A100 and the L4", settled);
    devices_go_on(&s);

    // The A100: every DCGM field, under the GPM names, and its source.
    let all = |v: &[f64]| v.iter().map(|x| Some(*x)).collect::<Vec<_>>();
    assert_eq!(
        profiling(&s, "0"),
        all(&[0.9, 0.6, 0.3, 0.25, 0.4, 0.0, 0.1, 0.05])
    );
    // The H100: GPM's values, never DCGM's 0.11.
    assert_eq!(
        profiling(&s, "1"),
        all(&[0.8, 0.7, 0.2, 0.35, 0.5, 0.01, 0.15, 0.02])
    );
    assert_eq!(
        profiling(&s, "2"),
        all(&[0.5, 0.45, 0.15, 0.12, 0.3, 0.0, 0.2, 0.1])
    );
    // The T4: DCGM refused to profile it; no series, no info, and the others unharmed.
    assert_eq!(profiling(&s, "3"), vec![None; 8]);
    assert_eq!(source(&s, "3"), None);
    assert!(errors(&s, "dcgm_watch", "PROFILING_NOT_SUPPORTED") >= 1.0);

    // Per pod: a container holding its GPU alone gets the GPU's values, from either source.
    assert_eq!(
        s.pod_profiling("solo"),
        [Some(0.6), Some(0.3), Some(0.25), Some(0.4)]
    );
    assert_eq!(
        s.pod_profiling("hopper"),
        [Some(0.7), Some(0.2), Some(0.35), Some(0.5)]
    );
    // The shared L4: no per-pod profiling (never a guess), and no ratio without per-process data.
    for p in ["share-a", "share-b"] {
        assert_eq!(s.pod_profiling(p), [None; 4], "{p}");
        assert_eq!(
            s.value("pod_gpu_utilization_ratio", &[("pod", p)]),
            None,
            "{p}"
        );
        assert!(
            s.value("pod_gpu_memory_used_bytes", &[("pod", p)])
                .is_some(),
            "{p}"
        );
    }

    // The host engine goes down: DCGM's series vanish, nothing else does, the agent stays ready.
    agent.set_scenario(&scenario("dcgm: {hostengine: down}\n", ""));
    let s = until_devices_going_on(&agent, "DCGM's series gone", |s| {
        source(s, "0").is_none() && source(s, "2").is_none()
    });
    assert_eq!(profiling(&s, "0"), vec![None; 8]);
    assert_eq!(s.pod_profiling("solo"), [None; 4]);
    assert_eq!(source(&s, "1").as_deref(), Some("gpm"));
    assert_eq!(agent.get("/readyz", &[]).status, 200);
    assert_eq!(
        s.value(
            "gpu_pod_exporter_collector_success",
            &[("collector", "nvidia")]
        ),
        Some(1.0),
        "DCGM is no part of the collector's success"
    );
    // It stays down long enough for a reconnect to be tried and refused.
    until_devices_going_on(&agent, "a refused reconnect", |s| {
        errors(s, "dcgm_connect", "CONNECTION_NOT_VALID") >= 1.0
    });

    // And comes back: so do the series, on a new connection.
    agent.set_scenario(&scenario("", ""));
    let s = until_devices_going_on(&agent, "DCGM's series back", settled);
    assert_eq!(profiling(&s, "0")[1], Some(0.6));
    assert_eq!(s.pod_profiling("solo")[0], Some(0.6));
    assert!(
        errors(&s, "dcgm_values", "CONNECTION_NOT_VALID")
            + errors(&s, "dcgm_watch", "CONNECTION_NOT_VALID")
            >= 1.0,
        "the lost connection is counted"
    );
    let log = agent.log_text();
    assert_eq!(log.matches("lost the DCGM host engine").count(), 1, "{log}");
    assert!(log.matches("DCGM connected").count() >= 2, "{log}");
}

/// `--dcgm.devices=all`: DCGM's values in place of GPM's, to compare the two on one GPU.
#[test]
fn dcgm_on_every_device_when_asked() {
    let dir = node();
    let agent = Agent::with_scenario(&scenario("", ""))
        .rootfs(dir.path())
        .arg("--dcgm.address=127.0.0.1:5555")
        .arg(format!(
            "--dcgm.library={}",
            built_library("libdcgm_mock.so").display()
        ))
        .arg("--dcgm.devices=all")
        .start();
    let s = agent.scrape_until(WAIT, "DCGM's values on the H100", |s| {
        source(s, "1").as_deref() == Some("dcgm") && source(s, "0").as_deref() == Some("dcgm")
    });
    assert_eq!(profiling(&s, "1"), vec![Some(0.11); 8]);
    assert_eq!(s.pod_profiling("hopper")[0], Some(0.11));
}

#[test]
fn down_at_start_counters_held_elsewhere_and_slow_calls() {
    let dir = node();
    let agent = agent(
        &scenario("dcgm: {hostengine: down}\n", ""),
        dir.path(),
        "127.0.0.1:5555",
    );
    // Ready and sampling without DCGM; the connect retried with backoff and logged once.
    agent.wait_for(WAIT, "/readyz", |a| a.get("/readyz", &[]).status == 200);
    let s = until_devices_going_on(&agent, "three refused connects", |s| {
        errors(s, "dcgm_connect", "CONNECTION_NOT_VALID") >= 3.0
    });
    assert!(!s.has("gpu_profiling_info") || source(&s, "0").is_none());
    let log = agent.log_text();
    assert_eq!(log.matches("cannot reach DCGM").count(), 1, "{log}");

    agent.set_scenario(&scenario("", ""));
    until_devices_going_on(&agent, "DCGM's values once the engine is up", settled);

    // Another profiler holds the A100's counters: its values go, the L4's stay.
    agent.set_scenario(&scenario("", "    errors: {dcgm_values: IN_USE}\n"));
    let s = until_devices_going_on(&agent, "the A100's values gone", |s| {
        source(s, "0").is_none() && errors(s, "dcgm_values", "IN_USE") >= 1.0
    });
    assert_eq!(source(&s, "2").as_deref(), Some("dcgm"));
    assert_eq!(s.pod_profiling("solo"), [None; 4]);
    agent.set_scenario(&scenario("", ""));
    until_devices_going_on(&agent, "the A100's values back", settled);
    let log = agent.log_text();
    assert_eq!(
        log.matches("DCGM answers no profiling values").count(),
        1,
        "logged once: {log}"
    );

    // Every DCGM call now takes 2 s (four intervals): the cycle's deadline holds, the devices
    // answer every cycle, and the late reads are counted.
    agent.set_scenario(&scenario("delays_ms: {dcgm_values: 2000}\n", ""));
    let start = Instant::now();
    let mut worst: f64 = 0.0;
    while start.elapsed() < Duration::from_secs(5) {
        let s = prom::parse(&agent.scrape());
        devices_go_on(&s);
        if let Some(d) = s.value(
            "gpu_pod_exporter_collector_duration_seconds",
            &[("collector", "nvidia")],
        ) {
            worst = worst.max(d);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(worst < 0.5, "a cycle took {worst} s, past its interval");
    let s = prom::parse(&agent.scrape());
    assert!(errors(&s, "dcgm_values", "TIMEOUT") >= 2.0, "{}", s.text);
    assert_eq!(agent.get("/readyz", &[]).status, 200);
}

#[test]
fn mig_instances_blank_fields_an_embedded_engine_and_no_library() {
    // An A100 in MIG mode: instance 1 with two of DCGM's fields (the others blank), instance 2
    // without profiling; a pod holds instance 1 alone.
    let mig = "    mig:\n      - {uuid: MIG-a1000001-0000-4000-8000-000000000001, gpu_instance_id: 1, compute_instance_id: 0, profile: 3g.40gb,\n         memory_total_bytes: 42949672960, memory_used_bytes: 2000000000, dcgm_profiling: {sm_active: 0.5, tensor_active: 0.2},\n         processes: [{pid: 5100, used_memory_bytes: 2000000000}]}\n      - {uuid: MIG-a1000002-0000-4000-8000-000000000002, gpu_instance_id: 2, compute_instance_id: 0, profile: 3g.40gb,\n         memory_total_bytes: 42949672960, memory_used_bytes: 0}\n";
    let yaml = format!(
        "dcgm: {{hostengine: down}}\ndevices:\n{}",
        device(
            A100,
            "NVIDIA A100-SXM4-80GB",
            0x07,
            "null",
            "",
            "      []\n",
            mig
        )
    );
    let dir = tempfile::tempdir().unwrap();
    pod(dir.path(), 1, "llm", "on-mig", "server", 5100, "python3");
    // Embedded: an engine inside the agent, whatever the node's host engine does.
    let agent = agent(&yaml, dir.path(), "embedded");
    let s = agent.scrape_until(WAIT, "the MIG instance's DCGM values", |s| {
        source(s, "0:1").is_some() && s.has("pod_gpu_sm_active_ratio")
    });
    assert_eq!(source(&s, "0:1").as_deref(), Some("dcgm"));
    let p = profiling(&s, "0:1");
    assert_eq!((p[1], p[3]), (Some(0.5), Some(0.2)));
    assert_eq!(
        p.iter().filter(|v| v.is_some()).count(),
        2,
        "blank fields are absent, not 0"
    );
    assert_eq!(source(&s, "0:2"), None);
    assert_eq!(
        source(&s, "0"),
        None,
        "the parent has no profiling of its own"
    );
    assert_eq!(
        s.pod_profiling("on-mig"),
        [Some(0.5), None, Some(0.2), None]
    );
    drop(agent);

    // No DCGM library on the node: counted, logged once, ready, nothing else changes.
    let dir = node();
    let agent = Agent::with_scenario(&scenario("", ""))
        .rootfs(dir.path())
        .arg("--dcgm.address=127.0.0.1:5555")
        .arg("--dcgm.library=/nonexistent/libdcgm.so.4")
        .start();
    agent.wait_for(WAIT, "/readyz", |a| a.get("/readyz", &[]).status == 200);
    let s = agent.scrape_until(WAIT, "two failed loads", |s| {
        errors(s, "dcgm_connect", "LIBRARY_NOT_FOUND") >= 2.0 && s.has("gpu_sm_active_ratio")
    });
    assert_eq!(source(&s, "0"), None);
    assert_eq!(source(&s, "1").as_deref(), Some("gpm"));
    let log = agent.log_text();
    assert_eq!(log.matches("cannot reach DCGM").count(), 1, "{log}");
}
