//! Pod attribution end to end: the real binary, the mock NVML, and fake node trees (CONTRACT §5)
//! whose pids match the scenario. One pod per cgroup layout real nodes produce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{fixture, prom, Agent};

const WAIT: Duration = Duration::from_secs(20);
const EVERY_LAYOUT_PODS: usize = 12;

fn every_layout() -> (String, std::path::PathBuf) {
    (
        std::fs::read_to_string(fixture("nodes/every-layout.yaml")).unwrap(),
        fixture("nodes/every-layout"),
    )
}

fn pod_lines(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with("pod_gpu_") || l.starts_with("# HELP pod_gpu_") || l.starts_with("# TYPE pod_gpu_"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn ratio(s: &prom::Samples, pod: &str) -> Option<f64> {
    s.value("pod_gpu_utilization_ratio", &[("pod", pod)])
}

fn all_memory(s: &prom::Samples) -> bool {
    s.find("pod_gpu_memory_used_bytes", &[]).len() == EVERY_LAYOUT_PODS
}

#[test]
fn every_cgroup_layout_is_attributed_by_the_rules() {
    let (scenario, root) = every_layout();
    let agent = Agent::with_scenario(&scenario).rootfs(&root).start();
    let s = agent.scrape_until(WAIT, "a memory series for every pod", all_memory);

    // Per-process utilization, shares within the device's: the processes' SM utilization.
    assert_eq!(ratio(&s, "v2-systemd-containerd"), Some(0.2));
    assert_eq!(ratio(&s, "v2-cgroupfs"), Some(0.3));
    assert_eq!(ratio(&s, "v1-cgroupfs"), Some(0.1));
    // Per-process shares over the device's 50 %: scaled down to add up to it (rule 5).
    assert_eq!(ratio(&s, "v1-systemd-colon"), Some(0.25));
    assert_eq!(ratio(&s, "crio-systemd"), Some(0.25));
    // No per-process data, one container alone on the device: the device's utilization.
    assert_eq!(ratio(&s, "crio-cgroupfs-guaranteed"), Some(0.7));
    // No per-process data, shared: no ratio at all, memory still.
    assert_eq!(ratio(&s, "docker-systemd"), None);
    assert_eq!(ratio(&s, "guaranteed-systemd"), None);
    assert_eq!(s.value("pod_gpu_memory_used_bytes", &[("pod", "guaranteed-systemd")]), Some(8000.0 * 1048576.0));
    // Nested runtimes, namespaces and static pods.
    assert_eq!(ratio(&s, "kind"), Some(0.15));
    assert_eq!(ratio(&s, "dind-v1"), Some(0.25));
    assert_eq!(ratio(&s, "cgroupns"), Some(0.35));
    assert_eq!(ratio(&s, "static-gpu-probe-node1"), Some(0.05));

    // Labels are the contract's, and the device labels match the device's.
    let v = s.find("pod_gpu_utilization_ratio", &[("pod", "v1-systemd-colon")])[0];
    let keys: Vec<&str> = v.labels.keys().map(String::as_str).collect();
    assert_eq!(keys, ["container", "gpu", "namespace", "pod", "uuid", "vendor"]);
    assert_eq!((v.labels["namespace"].as_str(), v.labels["container"].as_str(), v.labels["gpu"].as_str()), ("batch", "worker", "1"));

    // The host daemon and CRI-O's conmon are not pod series, and nothing failed.
    assert_eq!(s.find("pod_gpu_memory_used_bytes", &[]).len(), EVERY_LAYOUT_PODS);
    for f in s.find("gpu_pod_exporter_attribution_failures_total", &[]) {
        assert_eq!(f.value, 0.0, "{:?}", f.labels);
    }
}

#[test]
fn per_pod_ratios_never_exceed_the_device() {
    let (scenario, root) = every_layout();
    let agent = Agent::with_scenario(&scenario).rootfs(&root).start();
    let s = agent.scrape_until(WAIT, "every pod", all_memory);
    for dev in s.find("gpu_utilization_ratio", &[]) {
        let gpu = dev.labels["gpu"].as_str();
        let sum: f64 = s.find("pod_gpu_utilization_ratio", &[("gpu", gpu)]).iter().map(|p| p.value).sum();
        assert!(sum <= dev.value + 1e-9, "gpu {gpu}: pods {sum} > device {}", dev.value);
    }
}

#[test]
fn golden_pod_series() {
    let (scenario, root) = every_layout();
    let agent = Agent::with_scenario(&scenario).rootfs(&root).start();
    let s = agent.scrape_until(WAIT, "every pod", all_memory);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/every-layout-pods.prom");
    let actual = pod_lines(&s.text);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).expect("golden file missing: run with UPDATE_GOLDEN=1");
    assert_eq!(actual, expected, "UPDATE_GOLDEN=1 to accept");
}

#[test]
fn a_pod_removed_from_the_node_is_gone_after_the_next_sample() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    common::copy_tree(&fixture("nodes/every-layout"), &root);
    let (scenario, _) = every_layout();
    let agent = Agent::with_scenario(&scenario).rootfs(&root).interval("1s").start();
    agent.scrape_until(WAIT, "every pod", all_memory);

    // The vLLM pod on GPU 0 is deleted: its process leaves the driver's list and /proc, its
    // log folders are garbage-collected.
    let gone: String = scenario.lines().filter(|l| !l.contains("pid: 1001,")).map(|l| format!("{l}\n")).collect();
    agent.set_scenario(&gone);
    std::fs::remove_dir_all(root.join("proc/1001")).unwrap();
    let start = std::time::Instant::now();
    let s = agent.scrape_until(WAIT, "the deleted pod's series gone", |s| s.find("pod_gpu_memory_used_bytes", &[]).len() == EVERY_LAYOUT_PODS - 1);
    assert!(start.elapsed() < Duration::from_millis(2500), "took {:?}", start.elapsed());
    assert!(s.find("pod_gpu_utilization_ratio", &[("pod", "v2-systemd-containerd")]).is_empty());
    assert!(s.find("pod_gpu_memory_used_bytes", &[("pod", "v2-systemd-containerd")]).is_empty());
    // The others keep theirs.
    assert_eq!(ratio(&s, "v2-cgroupfs"), Some(0.3));
}

#[test]
fn a_process_that_vanished_is_counted_and_skipped() {
    let (scenario, root) = every_layout();
    // pid 4040 is in the driver's list but has no /proc entry.
    let scenario = scenario.replacen(
        "      - {pid: 1001,",
        "      - {pid: 4040, used_memory_bytes: 1, sm_util_percent: 1, mem_util_percent: 1}\n      - {pid: 1001,",
        1,
    );
    let agent = Agent::with_scenario(&scenario).rootfs(&root).start();
    let s = agent.scrape_until(WAIT, "a vanished-process failure", |s| {
        s.value("gpu_pod_exporter_attribution_failures_total", &[("reason", "process_vanished")]).is_some_and(|v| v >= 1.0)
    });
    assert_eq!(ratio(&s, "v2-systemd-containerd"), Some(0.2));
}
