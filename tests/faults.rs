//! Faults: NVML missing, init failing then recovering, a lost GPU, a hung driver call, a
//! scenario changed under the running agent, a broken scenario, bad flags.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{fixture, Agent, WAIT};

fn golden() -> String {
    std::fs::read_to_string(fixture("scenarios/golden.yaml")).unwrap()
}

/// The golden scenario with one device's `errors` or `delays_ms` (a YAML flow map) replaced.
fn with_device_field(gpu: usize, field: &str, value: &str) -> String {
    let mut seen = 0;
    golden()
        .lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("{field}:")) {
                seen += 1;
                if seen == gpu + 1 {
                    return format!("    {field}: {value}\n");
                }
            }
            format!("{l}\n")
        })
        .collect()
}

const NVIDIA: [(&str, &str); 1] = [("collector", "nvidia")];

#[test]
fn library_missing_the_agent_serves_and_reports_the_collector_down() {
    let agent = Agent::with_scenario(&golden())
        .library("/nonexistent/libnvidia-ml.so.1")
        .start();
    let s = agent.scrape_until(WAIT, "collector_success 0", |s| {
        s.value("gpu_pod_exporter_collector_success", &NVIDIA) == Some(0.0)
    });
    assert!(!s.has("gpu_up"));
    // Without its library the collector completes no cycle: not ready while NVML is missing.
    let r = agent.get("/readyz", &[]);
    assert_eq!(r.status, 503, "{}", r.body);
    // Said once, however many retries follow.
    std::thread::sleep(Duration::from_secs(2));
    let log = agent.log_text();
    assert_eq!(log.matches("NVML is not available").count(), 1, "{log}");
    assert!(log.contains("/nonexistent/libnvidia-ml.so.1"), "{log}");
}

#[test]
fn init_failure_then_recovery() {
    let failing = golden().replace("init_error: null", "init_error: DRIVER_NOT_LOADED");
    let agent = Agent::with_scenario(&failing).start();
    agent.scrape_until(WAIT, "collector down while init fails", |s| {
        s.value("gpu_pod_exporter_collector_success", &NVIDIA) == Some(0.0)
            && s.value(
                "gpu_pod_exporter_driver_call_errors_total",
                &[("call", "init"), ("error", "DRIVER_NOT_LOADED")],
            )
            .is_some()
    });
    assert_eq!(agent.get("/readyz", &[]).status, 503);
    // The driver "gets installed": init works on a later retry.
    agent.set_scenario(&golden());
    let s = agent.scrape_until(WAIT, "recovery after the driver appears", |s| {
        s.value("gpu_pod_exporter_collector_success", &NVIDIA) == Some(1.0)
    });
    assert_eq!(s.value("gpu_up", &[("gpu", "0")]), Some(1.0));
    assert!(agent.log_text().contains("NVML initialized"));
    agent.wait_for(WAIT, "/readyz 200 once a sample succeeded", |a| {
        a.get("/readyz", &[]).status == 200
    });
}

#[test]
fn one_lost_gpu_does_not_hide_the_others() {
    let agent = Agent::with_scenario(&with_device_field(
        0,
        "errors",
        "{utilization: GPU_IS_LOST}",
    ))
    .start();
    // Lost (not merely slow on a first cycle): its failure is counted, and the others answered.
    let s = agent.scrape_until(WAIT, "gpu 0 lost, gpus 1 and 2 up", |s| {
        s.value("gpu_up", &[("gpu", "0")]) == Some(0.0)
            && s.value("gpu_up", &[("gpu", "1")]) == Some(1.0)
            && s.value("gpu_up", &[("gpu", "2")]) == Some(1.0)
            && s.value(
                "gpu_pod_exporter_driver_call_errors_total",
                &[("call", "utilization"), ("error", "GPU_IS_LOST")],
            )
            .is_some()
    });
    // One GPU of three lost from the start: the agent is ready all the same.
    let r = agent.get("/readyz", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    // The lost GPU keeps its identity, and no values.
    assert_eq!(s.value("gpu_info", &[("gpu", "0")]), Some(1.0));
    assert_eq!(s.value("gpu_utilization_ratio", &[("gpu", "0")]), None);
    assert_eq!(s.value("gpu_power_watts", &[("gpu", "0")]), None);
    assert_eq!(
        s.value("gpu_temperature_celsius", &[("gpu", "1")]),
        Some(33.0)
    );
    assert_eq!(
        s.value("gpu_temperature_celsius", &[("gpu", "2")]),
        Some(70.0)
    );
    assert_eq!(
        s.value("gpu_pod_exporter_collector_success", &NVIDIA),
        Some(0.0)
    );
    assert!(
        s.value(
            "gpu_pod_exporter_driver_call_errors_total",
            &[("call", "utilization"), ("error", "GPU_IS_LOST")]
        )
        .unwrap()
            >= 1.0
    );
}

/// The node's only GPU is lost from the start, as a GPU that fell off the bus answers:
/// every call on it fails with `GPU_IS_LOST`. NVML itself answers, so the agent is ready (a
/// rollout must not stop on the node that most needs watching) and the GPU is `gpu_up 0`.
#[test]
fn a_node_whose_only_gpu_is_lost_from_the_start_is_ready() {
    let only_gpu: String = golden()
        .split("\n  # Ampere without GPM")
        .next()
        .unwrap()
        .replace(
            "    errors: {}",
            "    errors: {handle: GPU_IS_LOST, uuid: GPU_IS_LOST, utilization: GPU_IS_LOST, memory: GPU_IS_LOST}",
        );
    let agent = Agent::with_scenario(&only_gpu).start();
    agent.scrape_until(WAIT, "gpu 0 down", |s| {
        s.value("gpu_up", &[("gpu", "0")]) == Some(0.0)
            && s.value("gpu_pod_exporter_collector_success", &NVIDIA) == Some(0.0)
    });
    let r = agent.get("/readyz", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    // It stays ready, cycle after cycle, while the GPU stays lost.
    std::thread::sleep(Duration::from_secs(2));
    let s = common::prom::parse(&agent.scrape());
    assert_eq!(s.value("gpu_up", &[("gpu", "0")]), Some(0.0));
    assert_eq!(agent.get("/readyz", &[]).status, 200);
}

#[test]
fn a_hung_call_never_blocks_metrics() {
    let agent = Agent::with_scenario(&golden()).interval("1s").start();
    agent.scrape_until(WAIT, "all up", |s| {
        s.value("gpu_up", &[("gpu", "1")]) == Some(1.0)
    });
    let before = common::prom::parse(&agent.scrape());
    let temp0 = before.value("gpu_temperature_celsius", &[("gpu", "1")]);

    // GPU 1's utilization call now blocks for 10 s.
    agent.set_scenario(&with_device_field(1, "delays_ms", "{utilization: 10000}"));
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut saw_down = false;
    while started.elapsed() < Duration::from_secs(6) {
        let t = Instant::now();
        let s = common::prom::parse(&agent.scrape());
        slowest = slowest.max(t.elapsed());
        if s.value("gpu_up", &[("gpu", "1")]) == Some(0.0) {
            saw_down = true;
            assert_eq!(
                s.value("gpu_pod_exporter_collector_success", &NVIDIA),
                Some(0.0)
            );
            // The last data is still served for the hung device, and fresh data for the others.
            assert_eq!(s.value("gpu_temperature_celsius", &[("gpu", "1")]), temp0);
            assert_eq!(s.value("gpu_up", &[("gpu", "0")]), Some(1.0));
            assert_eq!(s.value("gpu_up", &[("gpu", "2")]), Some(1.0));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        saw_down,
        "gpu 1 was never reported down while hung:\n{}",
        agent.log_text()
    );
    assert!(
        slowest < Duration::from_millis(100),
        "a scrape took {slowest:?} while NVML hung"
    );
    // The hang shows: counted under the call it is blocked in, and said in the log, once.
    let s = common::prom::parse(&agent.scrape());
    assert!(
        s.value(
            "gpu_pod_exporter_driver_call_errors_total",
            &[("call", "utilization"), ("error", "TIMEOUT")]
        )
        .is_some_and(|n| n >= 1.0),
        "{}",
        agent.scrape()
    );
    let log = agent.log_text();
    let hung_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("has not returned by its deadline"))
        .collect();
    assert_eq!(hung_lines.len(), 1, "{log}");
    assert!(
        hung_lines[0].contains("call=\"utilization\"")
            || hung_lines[0].contains("call=utilization"),
        "{log}"
    );

    // When the call returns, the device comes back.
    agent.set_scenario(&golden());
    agent.scrape_until(Duration::from_secs(30), "gpu 1 back after the hang", |s| {
        s.value("gpu_up", &[("gpu", "1")]) == Some(1.0)
            && s.value("gpu_pod_exporter_collector_success", &NVIDIA) == Some(1.0)
    });
    assert!(agent.log_text().contains("the hung NVML call returned"));
}

#[test]
fn a_changed_scenario_is_picked_up_within_one_interval() {
    let agent = Agent::with_scenario(&golden()).interval("1s").start();
    agent.scrape_until(WAIT, "first values", |s| {
        s.value("gpu_utilization_ratio", &[("gpu", "0")]) == Some(0.87)
    });
    agent.set_scenario(
        &golden().replace("utilization_gpu_percent: 87", "utilization_gpu_percent: 13"),
    );
    let t = Instant::now();
    agent.scrape_until(WAIT, "the new utilization", |s| {
        s.value("gpu_utilization_ratio", &[("gpu", "0")]) == Some(0.13)
    });
    // One interval, plus the time the snapshot takes to publish.
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        t.elapsed()
    );
}

/// A GPU that leaves NVML's device list (fallen off the bus) is `gpu_up 0` under its last
/// identity, its other series gone, until it comes back: `GPUDown` must fire for it.
#[test]
fn a_gpu_that_leaves_the_device_list_is_down_until_it_returns() {
    const L4: &str = "GPU-9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4";
    let agent = Agent::with_scenario(&golden()).start();
    agent.scrape_until(WAIT, "three GPUs", |s| {
        s.find("gpu_up", &[]).len() == 3 && s.value("gpu_up", &[("uuid", L4)]) == Some(1.0)
    });
    // Drop the last device (the L4).
    let two: String = golden()
        .split("  # A device whose power sensor fails")
        .next()
        .unwrap()
        .to_string();
    agent.set_scenario(&two);
    let s = agent.scrape_until(WAIT, "the L4 down, the others up", |s| {
        s.value("gpu_up", &[("uuid", L4)]) == Some(0.0)
            && s.value("gpu_up", &[("gpu", "0")]) == Some(1.0)
            && s.value("gpu_up", &[("gpu", "1")]) == Some(1.0)
    });
    assert!(agent.log_text().contains("NVIDIA devices enumerated"));
    assert!(agent.log_text().contains("GPU left NVML's device list"));
    assert_eq!(s.find("gpu_up", &[]).len(), 3);
    assert_eq!(
        s.value(
            "gpu_info",
            &[("uuid", L4), ("gpu", "2"), ("model", "NVIDIA L4")]
        ),
        Some(1.0)
    );
    assert_eq!(s.value("gpu_temperature_celsius", &[("uuid", L4)]), None);
    assert_eq!(s.value("gpu_memory_used_bytes", &[("uuid", L4)]), None);
    assert!(s
        .value(
            "gpu_pod_exporter_driver_call_errors_total",
            &[("call", "count"), ("error", "DEVICE_GONE")]
        )
        .is_some());
    // The agent is still ready: a dead GPU is not a dead agent.
    assert_eq!(agent.get("/readyz", &[]).status, 200);

    // It comes back.
    agent.set_scenario(&golden());
    let s = agent.scrape_until(WAIT, "the L4 back", |s| {
        s.value("gpu_up", &[("uuid", L4)]) == Some(1.0)
    });
    assert_eq!(s.find("gpu_up", &[]).len(), 3);
    assert_eq!(
        s.value("gpu_temperature_celsius", &[("uuid", L4)]),
        Some(70.0)
    );
    assert!(agent
        .log_text()
        .contains("GPU is back in NVML's device list"));
}

#[test]
fn a_broken_scenario_keeps_the_last_good_one() {
    let agent = Agent::with_scenario(&golden()).start();
    agent.scrape_until(WAIT, "values", |s| {
        s.value("gpu_up", &[("gpu", "0")]) == Some(1.0)
    });
    agent.set_scenario("devices: [ {uuid: ");
    std::thread::sleep(Duration::from_secs(2));
    // Cycles after the break still succeed (waited for: one may time out on a loaded machine).
    let s = agent.scrape_until(WAIT, "a good cycle on the last good scenario", |s| {
        s.value("gpu_pod_exporter_collector_success", &NVIDIA) == Some(1.0)
    });
    assert_eq!(s.value("gpu_up", &[("gpu", "0")]), Some(1.0));
    assert!(
        agent.log_text().contains("keeping the last good one"),
        "{}",
        agent.log_text()
    );
}

fn run_with(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-pod-exporter"))
        .args(args)
        .env_remove("GPU_POD_EXPORTER_COLLECT_INTERVAL")
        .env_remove("GPU_POD_EXPORTER_COLLECT_HEALTH_INTERVAL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_are_one_line_naming_the_flag() {
    for (args, flag) in [
        (vec!["--collect.interval=fast"], "--collect.interval"),
        (vec!["--collect.interval=10ms"], "--collect.interval"),
        (
            vec!["--collect.interval=99999999999999h"],
            "--collect.interval",
        ),
        (
            vec!["--collect.health-interval=1s"],
            "--collect.health-interval",
        ),
        (
            vec!["--collect.health-interval=99999999999999h"],
            "--collect.health-interval",
        ),
        (
            vec!["--collect.interval=2s", "--collect.health-interval=1500ms"],
            "--collect.health-interval",
        ),
        (vec!["--web.listen-address=nowhere"], "--web.listen-address"),
        (vec!["--web.telemetry-path=metrics"], "--web.telemetry-path"),
        (vec!["--path.rootfs=/nonexistent-root"], "--path.rootfs"),
        (vec!["--path.procfs=/nonexistent-proc"], "--path.procfs"),
        (
            vec!["--web.config.file=/nonexistent.yml"],
            "--web.config.file",
        ),
        (vec!["--collector.nvidia=maybe"], "--collector.nvidia"),
        (vec!["--log.level=warning"], "--log.level"),
        (
            vec!["--collect.interval=18446744073709551615s"],
            "--collect.interval",
        ),
        (vec!["--collect.interval=11m"], "--collect.interval"),
        (vec!["--web.config.file=/"], "is a directory"),
        (vec!["--web.config.file=/dev/zero"], "not a regular file"),
        (vec!["--web.telemetry-path=/healthz"], "collides"),
        (vec!["--web.telemetry-path=/readyz"], "collides"),
        (vec!["--web.telemetry-path=/"], "collides"),
        (vec!["--web.telemetry-path=/m?x=1"], "'?' is not allowed"),
        (vec!["--web.telemetry-path=/a b"], "' ' is not allowed"),
        (vec!["--web.telemetry-path=/a//b"], "empty"),
        (vec!["--web.telemetry-path=/a/../healthz"], "'..'"),
        (vec!["--no-such-flag"], "--no-such-flag"),
    ] {
        let (code, stderr) = run_with(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?} gave:\n{stderr}"
        );
        assert!(
            stderr.contains(flag),
            "{args:?} does not name {flag}: {stderr}"
        );
    }
}

/// A procfs without pid 1 is not the host's: said at start as an error, not left to pass for
/// process churn.
#[test]
fn a_procfs_without_pid_1_is_an_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proc/4242")).unwrap();
    let agent = Agent::with_scenario(&golden())
        .arg(format!(
            "--path.procfs={}",
            dir.path().join("proc").display()
        ))
        .start();
    agent.wait_for(WAIT, "the error", |a| {
        a.log_text().contains("holds no pid 1")
    });
    assert!(agent.log_text().contains("ERROR"), "{}", agent.log_text());
}

#[test]
fn flags_read_environment_variables() {
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-pod-exporter"))
        .env("GPU_POD_EXPORTER_COLLECT_INTERVAL", "1ms")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--collect.interval"));

    // Below the (default 5s) collection interval, given through its environment variable.
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-pod-exporter"))
        .env_remove("GPU_POD_EXPORTER_COLLECT_INTERVAL")
        .env("GPU_POD_EXPORTER_COLLECT_HEALTH_INTERVAL", "2s")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--collect.health-interval"), "{stderr}");
}
