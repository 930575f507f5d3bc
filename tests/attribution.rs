//! Pod attribution end to end: the real binary, the mock NVML, and fake node trees (docs/design.md,
//! "A fake node") whose pids match the scenario. One pod per cgroup layout real nodes produce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{fixture, prom, Agent, WAIT};

const EVERY_LAYOUT_PODS: usize = 12;

fn every_layout() -> (String, std::path::PathBuf) {
    (
        std::fs::read_to_string(fixture("nodes/every-layout.yaml")).unwrap(),
        fixture("nodes/every-layout"),
    )
}

fn pod_lines(text: &str) -> String {
    text.lines()
        .filter(|l| {
            l.starts_with("pod_gpu_")
                || l.starts_with("# HELP pod_gpu_")
                || l.starts_with("# TYPE pod_gpu_")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn ratio(s: &prom::Samples, pod: &str) -> Option<f64> {
    s.value("pod_gpu_utilization_ratio", &[("pod", pod)])
}

/// Rule 5: on each device, the containers' ratios add up to at most the device's.
fn assert_pods_within_devices(s: &prom::Samples) {
    for dev in s.find("gpu_utilization_ratio", &[]) {
        let gpu = dev.labels["gpu"].as_str();
        let sum: f64 = s
            .find("pod_gpu_utilization_ratio", &[("gpu", gpu)])
            .iter()
            .map(|p| p.value)
            .sum();
        assert!(
            sum <= dev.value + 1e-9,
            "gpu {gpu}: pods {sum} > device {}",
            dev.value
        );
    }
}

fn all_memory(s: &prom::Samples) -> bool {
    s.find("pod_gpu_memory_used_bytes", &[]).len() == EVERY_LAYOUT_PODS
}

/// Every pod's memory, and GPM (which needs two samples) on the devices that have it.
fn all_series(s: &prom::Samples) -> bool {
    // GPM needs two samples per device, and each device's worker answers on its own: wait for
    // both GPM devices (GPU 1, shared; GPU 2, held alone), not only the first to get there.
    // And every device up in that scrape: on a loaded machine one cycle can time a device out,
    // and a late device carries no unattributed series for that cycle.
    let devices = s.find("gpu_up", &[]);
    all_memory(s)
        && !devices.is_empty()
        && devices.iter().all(|d| d.value == 1.0)
        && s.has("pod_gpu_tensor_active_ratio")
        && s.value("gpu_tensor_active_ratio", &[("gpu", "1")])
            .is_some()
        && s.value("gpu_tensor_active_ratio", &[("gpu", "2")])
            .is_some()
}

#[test]
fn every_cgroup_layout_is_attributed_by_the_rules() {
    let (scenario, root) = every_layout();
    let agent = Agent::with_scenario(&scenario).rootfs(&root).start();
    let s = agent.scrape_until(WAIT, "a memory series for every pod, and GPM", all_series);

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
    assert_eq!(
        s.value(
            "pod_gpu_memory_used_bytes",
            &[("pod", "guaranteed-systemd")]
        ),
        Some(8000.0 * 1048576.0)
    );
    // Nested runtimes, namespaces and static pods.
    assert_eq!(ratio(&s, "kind"), Some(0.15));
    assert_eq!(ratio(&s, "dind-v1"), Some(0.25));
    assert_eq!(ratio(&s, "cgroupns"), Some(0.35));
    assert_eq!(ratio(&s, "static-gpu-probe-node1"), Some(0.05));

    // GPM: the device's values for the pod that holds GPU 2 alone; none on GPU 1, which two
    // pods share, nor on the devices without GPM.
    assert_eq!(
        s.pod_profiling("crio-cgroupfs-guaranteed"),
        [Some(0.55), Some(0.35), Some(0.25), Some(0.45)]
    );
    for pod in ["v1-systemd-colon", "crio-systemd", "v2-cgroupfs", "kind"] {
        assert_eq!(s.pod_profiling(pod), [None; 4], "{pod}");
    }
    assert_eq!(
        s.value("gpu_tensor_active_ratio", &[("gpu", "1")]),
        Some(0.2)
    );
    let g = s.find(
        "pod_gpu_tensor_active_ratio",
        &[("pod", "crio-cgroupfs-guaranteed")],
    )[0];
    let keys: Vec<&str> = g.labels.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["container", "gpu", "namespace", "pod", "uuid", "vendor"]
    );
    assert_eq!(g.labels["gpu"], "2");

    // Labels are the contract's, and the device labels match the device's.
    let v = s.find("pod_gpu_utilization_ratio", &[("pod", "v1-systemd-colon")])[0];
    let keys: Vec<&str> = v.labels.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["container", "gpu", "namespace", "pod", "uuid", "vendor"]
    );
    assert_eq!(
        (
            v.labels["namespace"].as_str(),
            v.labels["container"].as_str(),
            v.labels["gpu"].as_str()
        ),
        ("batch", "worker", "1")
    );

    // The host daemon and CRI-O's conmon are not pod series, and nothing failed.
    assert_eq!(
        s.find("pod_gpu_memory_used_bytes", &[]).len(),
        EVERY_LAYOUT_PODS
    );
    // They are unattributed use: nvidia-persistenced's 300 MiB on GPU 0, conmon's 10 MiB on GPU 1.
    for (gpu, memory, processes) in [
        ("0", 314572800.0, 1.0),
        ("1", 10485760.0, 1.0),
        ("2", 0.0, 0.0),
        ("3", 0.0, 0.0),
        ("4", 0.0, 0.0),
    ] {
        let l = [("gpu", gpu)];
        assert_eq!(
            s.value("gpu_unattributed_memory_bytes", &l),
            Some(memory),
            "gpu {gpu}"
        );
        assert_eq!(
            s.value("gpu_unattributed_processes", &l),
            Some(processes),
            "gpu {gpu}"
        );
    }
    for f in s.find("gpu_pod_exporter_attribution_failures_total", &[]) {
        assert_eq!(f.value, 0.0, "{:?}", f.labels);
    }
}

#[test]
fn per_pod_ratios_never_exceed_the_device() {
    let (scenario, root) = every_layout();
    let agent = Agent::with_scenario(&scenario).rootfs(&root).start();
    let s = agent.scrape_until(WAIT, "every pod", all_memory);
    assert_pods_within_devices(&s);
}

#[test]
fn golden_pod_series() {
    let (scenario, root) = every_layout();
    let agent = Agent::with_scenario(&scenario).rootfs(&root).start();
    let s = agent.scrape_until(WAIT, "every pod, and GPM", all_series);
    let actual = pod_lines(&s.text);
    common::assert_golden("every-layout-pods.prom", &actual);
}

#[test]
fn a_pod_removed_from_the_node_is_gone_after_the_next_sample() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    common::copy_tree(&fixture("nodes/every-layout"), &root);
    let (scenario, _) = every_layout();
    let agent = Agent::with_scenario(&scenario)
        .rootfs(&root)
        .interval("1s")
        .start();
    agent.scrape_until(WAIT, "every pod", all_memory);

    // The vLLM pod on GPU 0 is deleted: its process leaves the driver's list and /proc, its
    // log folders are garbage-collected.
    let gone: String = scenario
        .lines()
        .filter(|l| !l.contains("pid: 1001,"))
        .map(|l| format!("{l}\n"))
        .collect();
    agent.set_scenario(&gone);
    std::fs::remove_dir_all(root.join("proc/1001")).unwrap();
    let start = std::time::Instant::now();
    let s = agent.scrape_until(WAIT, "the deleted pod's series gone", |s| {
        s.find("pod_gpu_memory_used_bytes", &[]).len() == EVERY_LAYOUT_PODS - 1
    });
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        start.elapsed()
    );
    assert!(s
        .find(
            "pod_gpu_utilization_ratio",
            &[("pod", "v2-systemd-containerd")]
        )
        .is_empty());
    assert!(s
        .find(
            "pod_gpu_memory_used_bytes",
            &[("pod", "v2-systemd-containerd")]
        )
        .is_empty());
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
        s.value(
            "gpu_pod_exporter_attribution_failures_total",
            &[("reason", "process_vanished")],
        )
        .is_some_and(|v| v >= 1.0)
    });
    assert_eq!(ratio(&s, "v2-systemd-containerd"), Some(0.2));
    // Its memory is unattributed, beside the host daemon's.
    assert_eq!(
        s.value("gpu_unattributed_memory_bytes", &[("gpu", "0")]),
        Some(314572800.0 + 1.0)
    );
    assert_eq!(
        s.value("gpu_unattributed_processes", &[("gpu", "0")]),
        Some(2.0)
    );
}

/// The every-layout node with a fake kubelet answering pod-resources on its socket.
fn with_kubelet() -> (
    tempfile::TempDir,
    Agent,
    common::fake_kubelet::FakeKubelet,
    Vec<String>,
) {
    use common::fake_kubelet::{FakeKubelet, PodSpec};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    common::copy_tree(&fixture("nodes/every-layout"), &root);
    let (scenario, _) = every_layout();
    let uuids: Vec<String> = scenario
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- uuid: "))
        .map(str::to_string)
        .collect();
    let kubelet = FakeKubelet::start_at(root.join("var/lib/kubelet/pod-resources/kubelet.sock"));
    let u = |i: usize| uuids[i].as_str();
    let replica = |i: usize, n: u32| format!("{}::{n}", uuids[i]);
    kubelet.set_pods(vec![
        // Exclusive, by UUID, on a device without per-process data.
        PodSpec::new("ocp", "crio-cgroupfs-guaranteed")
            .container("app", &[("nvidia.com/gpu", &[u(2)])]),
        // Time-sliced replicas of one device.
        PodSpec::new("legacy", "docker-systemd")
            .container("app", &[("nvidia.com/gpu", &[&replica(3, 0)])]),
        PodSpec::new("llm", "guaranteed-systemd")
            .container("server", &[("nvidia.com/gpu", &[&replica(3, 1)])]),
        // Allocated, nothing running yet; GKE's device name form.
        PodSpec::new("llm", "vllm-pending")
            .container("server", &[("nvidia.com/gpu", &["nvidia0"])]),
        // The AMD device plugin's PCI address form (any vendor's device matches by address).
        PodSpec::new("llm", "pci-form")
            .container("server", &[("nvidia.com/gpu", &["0000:1c:00.0"])]),
        // A device this node does not have.
        PodSpec::new("llm", "elsewhere").container(
            "server",
            &[(
                "nvidia.com/gpu",
                &["GPU-00000000-dead-beef-0000-000000000000"],
            )],
        ),
        // Not a GPU: filtered out.
        PodSpec::new("net", "sriov").container("c", &[("example.com/nic", &["0000:3b:00.1"])]),
    ]);
    let agent = Agent::with_scenario(&scenario)
        .rootfs(&root)
        .interval("1s")
        .start();
    (dir, agent, kubelet, uuids)
}

fn allocated(s: &prom::Samples, pod: &str) -> Option<f64> {
    s.value("pod_gpu_allocated", &[("pod", pod)])
}

#[test]
fn kubelet_allocations_join_by_name() {
    let (_dir, agent, _kubelet, _) = with_kubelet();
    // Every device answered (so an unmatched ID is a failure), and the allocations are in.
    let s = agent.scrape_until(WAIT, "the kubelet's allocations", |s| {
        s.find("pod_gpu_allocated", &[]).len() == 5
            && s.value(
                "gpu_pod_exporter_attribution_failures_total",
                &[("reason", "device_unknown")],
            )
            .is_some_and(|v| v >= 1.0)
    });
    for pod in [
        "crio-cgroupfs-guaranteed",
        "docker-systemd",
        "guaranteed-systemd",
        "vllm-pending",
        "pci-form",
    ] {
        assert_eq!(allocated(&s, pod), Some(1.0), "{pod}");
    }
    // Exclusive by allocation: the device's utilization, and its GPM values once it has two
    // GPM samples.
    assert_eq!(ratio(&s, "crio-cgroupfs-guaranteed"), Some(0.7));
    let s = agent.scrape_until(WAIT, "GPM", |s| s.has("pod_gpu_tensor_active_ratio"));
    assert_eq!(
        s.pod_profiling("crio-cgroupfs-guaranteed"),
        [Some(0.55), Some(0.35), Some(0.25), Some(0.45)]
    );
    // Allocated with nothing running yet, on a device others use: no GPM.
    assert_eq!(s.pod_profiling("vllm-pending"), [None; 4]);
    // Time-sliced without per-process data: allocated, memory, no ratio.
    assert_eq!(ratio(&s, "docker-systemd"), None);
    assert!(s
        .value("pod_gpu_memory_used_bytes", &[("pod", "docker-systemd")])
        .is_some());
    // Allocated with no process yet: ratio 0, memory 0, on the right device.
    let pending = [
        ("pod", "vllm-pending"),
        ("gpu", "0"),
        ("container", "server"),
        ("namespace", "llm"),
    ];
    assert_eq!(s.value("pod_gpu_utilization_ratio", &pending), Some(0.0));
    assert_eq!(s.value("pod_gpu_memory_used_bytes", &pending), Some(0.0));
    assert_eq!(
        s.value("pod_gpu_allocated", &[("pod", "pci-form"), ("gpu", "4")]),
        Some(1.0)
    );
    // Unknown devices are counted; non-GPU resources are not pod series.
    assert!(
        s.value(
            "gpu_pod_exporter_attribution_failures_total",
            &[("reason", "device_unknown")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(s.find("pod_gpu_allocated", &[("pod", "sriov")]).is_empty());
    // Rule 5 still holds with allocations in the mix.
    assert_pods_within_devices(&s);
}

#[test]
fn a_deallocated_pod_is_gone_after_the_next_sample() {
    use common::fake_kubelet::PodSpec;
    let (_dir, agent, kubelet, _) = with_kubelet();
    // Settled: every device answered, every allocation matched.
    agent.scrape_until(WAIT, "all five allocations", |s| {
        s.find("pod_gpu_allocated", &[]).len() == 5
    });
    kubelet.set_pods(vec![PodSpec::new("ocp", "crio-cgroupfs-guaranteed")
        .container("app", &[("nvidia.com/gpu", &["nvidia2"])])]);
    let s = agent.scrape_until(Duration::from_secs(5), "the pending pod gone", |s| {
        s.find("pod_gpu_allocated", &[]).len() == 1
            && allocated(s, "crio-cgroupfs-guaranteed") == Some(1.0)
    });
    assert!(s
        .find("pod_gpu_utilization_ratio", &[("pod", "vllm-pending")])
        .is_empty());
    assert!(s
        .find("pod_gpu_memory_used_bytes", &[("pod", "vllm-pending")])
        .is_empty());
    // Time-sliced pods lost their allocation but still run: per-pod memory stays.
    assert!(s
        .value("pod_gpu_memory_used_bytes", &[("pod", "docker-systemd")])
        .is_some());
}

#[test]
fn a_dead_kubelet_never_blocks_or_breaks_the_scrape() {
    let (_dir, agent, mut kubelet, _) = with_kubelet();
    agent.scrape_until(WAIT, "allocations", |s| {
        allocated(s, "vllm-pending") == Some(1.0)
            && s.value("gpu_pod_exporter_kubelet_up", &[]) == Some(1.0)
    });
    kubelet.stop();
    // The broken socket shows at once, long before the allocations fade.
    agent.scrape_until(WAIT, "kubelet_up 0", |s| {
        s.value("gpu_pod_exporter_kubelet_up", &[]) == Some(0.0)
            && allocated(s, "vllm-pending") == Some(1.0)
    });
    // Process-based series go on; allocations fade only after the grace period.
    for _ in 0..20 {
        let t = std::time::Instant::now();
        agent.scrape();
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "a scrape took {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = agent.scrape_until(Duration::from_secs(5), "process-based series", |s| {
        ratio(s, "v2-cgroupfs") == Some(0.3)
    });
    assert_eq!(
        allocated(&s, "vllm-pending"),
        Some(1.0),
        "allocations stand through the grace period"
    );
}

/// A driver whose per-process utilization comes only through the newer
/// `nvmlDeviceGetProcessesUtilizationInfo` (the legacy call answers NOT_SUPPORTED) gives the
/// same shares: the agent falls back to it, with the same one-call buffer sizing.
#[test]
fn per_process_utilization_through_the_newer_call_gives_the_same_shares() {
    let (scenario, root) = every_layout();
    let scenario = scenario.replace(
        "process_utilization: supported",
        "process_utilization: info_only",
    );
    assert!(scenario.contains("info_only"));
    let agent = Agent::with_scenario(&scenario).rootfs(&root).start();
    let s = agent.scrape_until(WAIT, "every pod's memory and GPU 0's shares", |s| {
        all_memory(s) && ratio(s, "v2-systemd-containerd").is_some()
    });
    assert_eq!(ratio(&s, "v2-systemd-containerd"), Some(0.2));
    assert_eq!(ratio(&s, "v2-cgroupfs"), Some(0.3));
    assert_eq!(ratio(&s, "v1-cgroupfs"), Some(0.1));
}
