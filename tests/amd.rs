//! The AMD collector end to end: the real binary on the fake AMD node
//! (`tests/fixtures/nodes/amd`, written by `make_amd.py`), with the NVIDIA collector off.
//!
//! Busy ratios need two samples: each test copies the node, lets the agent take its first
//! sample, then adds engine time to the fdinfo files and moves `proc/uptime` ten seconds on,
//! so every ratio is an exact number of the test's choosing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{fixture, prom, write_atomic, Agent, WAIT};

const TEN_SECONDS_NS: u64 = 10_000_000_000;

/// A private copy of the AMD node.
fn node() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    common::copy_tree(&fixture("nodes/amd"), &root);
    (dir, root)
}

fn start(root: &Path) -> Agent {
    Agent::with_scenario("")
        .no_scenario()
        .library("/nonexistent/libnvidia-ml.so.1")
        .rootfs(root)
        .arg("--no-collector.nvidia")
        .start()
}

/// Adds `ns` to an engine's counter in one fdinfo file, adding the line for an engine that
/// had not run before (amdgpu prints an engine once its time is non-zero).
fn bump(root: &Path, rel: &str, engine: &str, ns: u64) {
    let path = root.join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    let key = format!("drm-engine-{engine}:\t");
    let mut found = false;
    let mut out: String = text
        .lines()
        .map(|l| match l.strip_prefix(&key) {
            Some(v) => {
                found = true;
                let old: u64 = v.trim_end_matches(" ns").parse().unwrap();
                format!("{key}{} ns\n", old + ns)
            }
            None => format!("{l}\n"),
        })
        .collect();
    if !found {
        out.push_str(&format!("{key}{ns} ns\n"));
    }
    write_atomic(&path, &out);
}

/// Ten seconds of work: every client's engine time grows by its share of ten seconds, then
/// the clock moves (last, so that a sample that sees the new clock sees every new counter).
fn ten_seconds_of_work(root: &Path) {
    let share = |r: f64| (r * TEN_SECONDS_NS as f64) as u64;
    // vllm-0: one client on two fds; compute is the busier engine.
    for fd in [5, 9] {
        bump(root, &format!("proc/3001/fdinfo/{fd}"), "gfx", share(0.125));
        bump(
            root,
            &format!("proc/3001/fdinfo/{fd}"),
            "compute",
            share(0.5),
        );
    }
    bump(root, "proc/3002/fdinfo/7", "gfx", share(0.25)); // vllm-1
    bump(root, "proc/3003/fdinfo/4", "gfx", share(0.0625)); // the host's Xwayland
    bump(root, "proc/3004/fdinfo/6", "gfx", share(0.125)); // the notebook's two clients
    bump(root, "proc/3004/fdinfo/8", "compute", share(0.0625));
    bump(root, "proc/3010/fdinfo/5", "compute", share(0.25)); // the trainer
    write_atomic(&root.join("proc/uptime"), "1010.00 15100.00\n");
}

/// Turns `path` into a FIFO nobody writes: opening it blocks, as amdgpu's reads of a GPU in
/// reset do.
fn block(path: &Path) {
    std::fs::remove_file(path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

/// Puts a file with `content` in the FIFO's place, then answers the read blocked on the FIFO
/// with the same content (through a second name, `held`, in the same file system).
fn unblock(path: &Path, held: &Path, content: &str) {
    std::fs::hard_link(path, held).unwrap();
    std::fs::remove_file(path).unwrap();
    write_atomic(path, content);
    std::fs::write(held, content).unwrap();
}

fn ratio(s: &prom::Samples, pod: &str) -> Option<f64> {
    s.value("pod_gpu_utilization_ratio", &[("pod", pod)])
}

fn memory(s: &prom::Samples, pod: &str) -> Option<f64> {
    s.value("pod_gpu_memory_used_bytes", &[("pod", pod)])
}

fn dev(s: &prom::Samples, name: &str, gpu: &str) -> Option<f64> {
    s.value(name, &[("gpu", gpu)])
}

const PODS: usize = 5;

fn all_pods(s: &prom::Samples) -> bool {
    s.find("pod_gpu_memory_used_bytes", &[]).len() == PODS
}

fn busy_ratios_in(s: &prom::Samples) -> bool {
    all_pods(s) && ratio(s, "vllm-1") == Some(0.25)
}

#[test]
fn a_fake_amd_node_yields_the_contract_series() {
    let (_dir, root) = node();
    let agent = start(&root);
    // The agent's own pid, as if it had opened a GPU: never counted.
    let own = root.join(format!("proc/{}", agent.child.id()));
    std::fs::create_dir_all(own.join("fdinfo")).unwrap();
    std::fs::copy(root.join("proc/3001/cgroup"), own.join("cgroup")).unwrap();
    let client = std::fs::read_to_string(root.join("proc/3001/fdinfo/5")).unwrap();
    std::fs::write(
        own.join("fdinfo/3"),
        client.replace("drm-client-id:\t11", "drm-client-id:\t99"),
    )
    .unwrap();
    let own_kfd = root.join(format!("sys/class/kfd/kfd/proc/{}", agent.child.id()));
    std::fs::create_dir_all(&own_kfd).unwrap();
    std::fs::write(own_kfd.join("vram_41437"), "4096\n").unwrap();

    let s = agent.scrape_until(WAIT, "every pod's memory", all_pods);

    // Three amdgpu devices, by card order; the i915 card is not ours.
    let info = s.find("gpu_info", &[]);
    assert_eq!(info.len(), 3, "{}", s.text);
    let label = |gpu: &str, k: &str| s.find("gpu_info", &[("gpu", gpu)])[0].labels[k].clone();
    assert_eq!(label("0", "vendor"), "amd");
    assert_eq!(label("0", "uuid"), "5f1c7a2e9b3d4c61");
    assert_eq!(label("0", "model"), "AMD Instinct MI300X");
    assert_eq!(label("0", "pci_bus_id"), "0000:19:00.0");
    assert_eq!(label("0", "driver_version"), "6.10.5");
    // No unique_id: the PCI address stands in; the board's own product name.
    assert_eq!(label("1", "uuid"), "0000:1a:00.0");
    assert_eq!(label("1", "model"), "Instinct MI210");
    assert_eq!(label("2", "model"), "AMD GPU 0x75a3");
    assert_eq!(label("2", "pci_bus_id"), "0000:9c:00.0");

    // Device gauges, in base units.
    assert_eq!(dev(&s, "gpu_up", "0"), Some(1.0));
    assert_eq!(dev(&s, "gpu_utilization_ratio", "0"), Some(0.96));
    assert_eq!(
        dev(&s, "gpu_memory_bandwidth_utilization_ratio", "0"),
        Some(0.35)
    );
    assert_eq!(dev(&s, "gpu_memory_used_bytes", "0"), Some(68719476736.0));
    assert_eq!(dev(&s, "gpu_memory_total_bytes", "0"), Some(206158430208.0));
    assert_eq!(dev(&s, "gpu_power_watts", "0"), Some(550.0));
    assert_eq!(dev(&s, "gpu_temperature_celsius", "0"), Some(61.0));
    assert_eq!(dev(&s, "gpu_sm_clock_hertz", "0"), Some(2.1e9));
    // No power file at all; no shader clock level marked.
    assert_eq!(dev(&s, "gpu_power_watts", "1"), None);
    assert_eq!(dev(&s, "gpu_temperature_celsius", "1"), Some(45.0));
    assert_eq!(dev(&s, "gpu_sm_clock_hertz", "2"), None);
    // power1_input where there is no power1_average.
    assert_eq!(dev(&s, "gpu_power_watts", "2"), Some(300.0));
    assert_eq!(
        s.value(
            "gpu_pod_exporter_collector_success",
            &[("collector", "amd")]
        ),
        Some(1.0)
    );

    // Processes: four on GPU 0 (a client on two fds counted once; the agent not at all), the
    // trainer on GPU 1, the ROCm job on GPU 2 only (it holds nothing on GPU 0).
    assert_eq!(dev(&s, "gpu_processes", "0"), Some(4.0));
    assert_eq!(dev(&s, "gpu_processes", "1"), Some(1.0));
    assert_eq!(dev(&s, "gpu_processes", "2"), Some(1.0));

    // Memory per pod: new keys (resident), old keys, a unitless size, KFD over fdinfo.
    assert_eq!(memory(&s, "vllm-0"), Some(8192.0 * 1048576.0));
    assert_eq!(memory(&s, "vllm-1"), Some(4.0 * 1073741824.0));
    assert_eq!(memory(&s, "nb-alice"), Some(1073741824.0 + 5242881.0));
    assert_eq!(memory(&s, "trainer-0"), Some(2.0 * 1073741824.0));
    assert_eq!(memory(&s, "hip-job"), Some(16.0 * 1073741824.0));

    // First sample: no engine ratios yet. KFD's occupancy is a point sample (76 of 304 CUs);
    // the trainer holds its GPU alone and gets the device's; GPU 0 is shared: no ratio.
    assert_eq!(ratio(&s, "hip-job"), Some(0.25));
    assert_eq!(ratio(&s, "trainer-0"), Some(0.4));
    assert_eq!(ratio(&s, "vllm-0"), None);

    ten_seconds_of_work(&root);
    let s = agent.scrape_until(WAIT, "busy ratios over ten seconds", busy_ratios_in);
    // The larger of gfx (0.125) and compute (0.5).
    assert_eq!(ratio(&s, "vllm-0"), Some(0.5));
    assert_eq!(ratio(&s, "vllm-1"), Some(0.25));
    // Two clients: 0.125 + 0.0625, the second's engine first seen in this sample.
    assert_eq!(ratio(&s, "nb-alice"), Some(0.1875));
    assert_eq!(ratio(&s, "trainer-0"), Some(0.25));
    assert_eq!(ratio(&s, "hip-job"), Some(0.25));
    // The host's process is no pod, and the pods stay within the device (0.9375 <= 0.96).
    assert_eq!(s.find("pod_gpu_utilization_ratio", &[]).len(), PODS);
    // AMD devices have no GPM, so no pod has the per-pod GPM series, even alone on a device.
    for m in [
        "pod_gpu_sm_active_ratio",
        "pod_gpu_sm_occupancy_ratio",
        "pod_gpu_tensor_active_ratio",
        "pod_gpu_dram_active_ratio",
    ] {
        assert!(!s.has(m), "{m}");
    }
    assert_eq!(dev(&s, "gpu_processes", "0"), Some(4.0));
    for f in s.find("gpu_pod_exporter_attribution_failures_total", &[]) {
        assert_eq!(f.value, 0.0, "{:?}", f.labels);
    }
    assert!(s
        .find(
            "gpu_pod_exporter_driver_call_errors_total",
            &[("collector", "amd")]
        )
        .is_empty());
}

/// Device, pod and collector series of the AMD node after ten seconds of work.
fn golden_lines(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let name = l
                .trim_start_matches("# HELP ")
                .trim_start_matches("# TYPE ");
            (name.starts_with("gpu_") && !name.starts_with("gpu_pod_exporter_"))
                || name.starts_with("pod_gpu_")
                || name.starts_with("gpu_pod_exporter_collector_success")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn golden_amd_series() {
    let (_dir, root) = node();
    let agent = start(&root);
    agent.scrape_until(WAIT, "every pod's memory", all_pods);
    ten_seconds_of_work(&root);
    let s = agent.scrape_until(WAIT, "busy ratios", busy_ratios_in);
    let actual = golden_lines(&s.text);
    common::assert_golden("amd.prom", &actual);
}

#[test]
fn kubelet_allocations_of_amd_gpus_map_by_pci_address() {
    use common::fake_kubelet::{FakeKubelet, PodSpec};
    let (_dir, root) = node();
    let kubelet = FakeKubelet::start_at(root.join("var/lib/kubelet/pod-resources/kubelet.sock"));
    kubelet.set_pods(vec![
        // The AMD device plugin's IDs are PCI addresses.
        PodSpec::new("train", "trainer-0")
            .container("trainer", &[("amd.com/gpu", &["0000:1a:00.0"])]),
        PodSpec::new("rocm", "hip-job").container("worker", &[("amd.com/gpu", &["0000:9c:00.0"])]),
        // Allocated, nothing running yet.
        PodSpec::new("rocm", "pending").container("worker", &[("amd.com/gpu", &["0000:19:00.0"])]),
        // Not on this node.
        PodSpec::new("rocm", "elsewhere")
            .container("worker", &[("amd.com/gpu", &["0000:ff:00.0"])]),
    ]);
    let agent = start(&root);
    let s = agent.scrape_until(WAIT, "the kubelet's allocations", |s| {
        s.find("pod_gpu_allocated", &[]).len() == 3
            && s.value(
                "gpu_pod_exporter_attribution_failures_total",
                &[("reason", "device_unknown")],
            )
            .is_some_and(|v| v >= 1.0)
    });
    let allocated =
        |pod: &str, gpu: &str| s.value("pod_gpu_allocated", &[("pod", pod), ("gpu", gpu)]);
    assert_eq!(allocated("trainer-0", "1"), Some(1.0));
    assert_eq!(allocated("hip-job", "2"), Some(1.0));
    assert_eq!(allocated("pending", "0"), Some(1.0));
    let pending = [("pod", "pending"), ("gpu", "0")];
    assert_eq!(s.value("pod_gpu_utilization_ratio", &pending), Some(0.0));
    assert_eq!(s.value("pod_gpu_memory_used_bytes", &pending), Some(0.0));
    // Exclusive by allocation, before any engine ratio: the device's utilization.
    assert_eq!(ratio(&s, "trainer-0"), Some(0.4));
}

/// The AMD DRA driver (`gpu.amd.com`) names devices `gpu-<card>-<render>`, and
/// `gpu-<index>-<compute>-<memory>` in auto-partition mode (ROCm/k8s-gpu-dra-driver).
#[test]
fn dra_claims_of_amd_gpus_join_by_drm_card() {
    use common::fake_kubelet::{ClaimSpec, FakeKubelet, PodSpec};
    let (_dir, root) = node();
    let kubelet = FakeKubelet::start_at(root.join("var/lib/kubelet/pod-resources/kubelet.sock"));
    let claim = |name: &str, device: &str| {
        ClaimSpec::new("rocm", name).device(
            "gpu.amd.com",
            "node-1",
            device,
            &[
                &format!("k8s.gpu.amd.com/gpu=5c0a6e1d-2b3f-4a7c-9d8e-1f2a3b4c5d6e-{device}"),
                "k8s.gpu.amd.com/gpu=common",
            ],
        )
    };
    kubelet.set_pods(vec![
        // card1 is the MI210 at 0000:1a:00.0, gpu "1".
        PodSpec::new("train", "trainer-0").claim("trainer", claim("mi210", "gpu-1-129")),
        // Auto-partition: the third AMD GPU in PCI address order, 0000:9c:00.0, gpu "2".
        PodSpec::new("rocm", "hip-job").claim("worker", claim("cpx", "gpu-2-cpx-nps4")),
        // card2 is the i915: no amdgpu device.
        PodSpec::new("rocm", "elsewhere").claim("worker", claim("igpu", "gpu-2-130")),
    ]);
    let agent = start(&root);
    let s = agent.scrape_until(WAIT, "the claims", |s| {
        s.find("pod_gpu_allocated", &[]).len() == 2
            && s.value(
                "gpu_pod_exporter_attribution_failures_total",
                &[("reason", "device_unknown")],
            )
            .is_some_and(|v| v >= 1.0)
    });
    let allocated =
        |pod: &str, gpu: &str| s.value("pod_gpu_allocated", &[("pod", pod), ("gpu", gpu)]);
    assert_eq!(allocated("trainer-0", "1"), Some(1.0));
    assert_eq!(allocated("hip-job", "2"), Some(1.0));
    // Held alone by its claim, before any engine ratio: the device's utilization.
    assert_eq!(ratio(&s, "trainer-0"), Some(0.4));
}

fn errors(s: &prom::Samples, call: &str, error: &str) -> f64 {
    s.value(
        "gpu_pod_exporter_driver_call_errors_total",
        &[("collector", "amd"), ("call", call), ("error", error)],
    )
    .unwrap_or(0.0)
}

#[test]
fn bad_input_is_counted_and_skipped() {
    let (_dir, root) = node();
    let attr = |pci: &str, f: &str| root.join(format!("sys/devices/pci0000:00/{pci}/{f}"));
    // Absurd values.
    std::fs::write(attr("0000:1a:00.0", "gpu_busy_percent"), "250\n").unwrap();
    std::fs::write(attr("0000:19:00.0", "mem_busy_percent"), "-5\n").unwrap();
    std::fs::write(attr("0000:19:00.0", "hwmon/hwmon3/temp1_input"), "511000\n").unwrap();
    // An unreadable attribute (a folder where the file should be; the tests run as root,
    // which reads files whatever their mode).
    std::fs::remove_file(attr("0000:9c:00.0", "mem_info_vram_used")).unwrap();
    std::fs::create_dir(attr("0000:9c:00.0", "mem_info_vram_used")).unwrap();
    // Malformed fdinfo lines beside good ones, a garbled stat, a garbled KFD file.
    let fdinfo = root.join("proc/3002/fdinfo/7");
    let text = std::fs::read_to_string(&fdinfo).unwrap()
        + "drm-engine-compute:\tlots ns\ndrm-memory-vram:\t12 parsecs\nno colon at all\n";
    std::fs::write(&fdinfo, text).unwrap();
    std::fs::write(root.join("proc/3010/stat"), "3010 (torchrun) S 1\n").unwrap();
    std::fs::write(
        root.join("sys/class/kfd/kfd/proc/3020/stats_63042/cu_occupancy"),
        "many\n",
    )
    .unwrap();

    let agent = start(&root);
    let s = agent.scrape_until(WAIT, "the bad values counted", |s| {
        all_pods(s) && errors(s, "fdinfo", "MALFORMED") >= 3.0
    });
    assert!(errors(&s, "sysfs", "OUT_OF_RANGE") >= 3.0, "{}", s.text);
    assert!(errors(&s, "sysfs", "IS_A_DIRECTORY") >= 1.0);
    assert!(errors(&s, "procfs", "MALFORMED") >= 1.0);
    assert!(errors(&s, "kfd", "MALFORMED") >= 1.0);
    // Those values are absent; everything else stands.
    assert_eq!(dev(&s, "gpu_utilization_ratio", "1"), None);
    assert_eq!(dev(&s, "gpu_memory_bandwidth_utilization_ratio", "0"), None);
    assert_eq!(dev(&s, "gpu_temperature_celsius", "0"), None);
    assert_eq!(dev(&s, "gpu_memory_used_bytes", "2"), None);
    assert_eq!(dev(&s, "gpu_utilization_ratio", "0"), Some(0.96));
    assert_eq!(dev(&s, "gpu_up", "0"), Some(1.0));
    assert_eq!(memory(&s, "vllm-1"), Some(4.0 * 1073741824.0));
    // KFD memory without its occupancy: memory, no ratio from it.
    assert_eq!(memory(&s, "hip-job"), Some(16.0 * 1073741824.0));
    // File errors are not device failures.
    assert_eq!(
        s.value(
            "gpu_pod_exporter_collector_success",
            &[("collector", "amd")]
        ),
        Some(1.0)
    );

    // Ratios still come, for clients with a good counter.
    ten_seconds_of_work(&root);
    let s = agent.scrape_until(WAIT, "busy ratios", busy_ratios_in);
    assert_eq!(ratio(&s, "vllm-0"), Some(0.5));
    // A process whose stat cannot be read is still tracked (by pid alone).
    assert_eq!(ratio(&s, "trainer-0"), Some(0.25));
}

#[test]
fn a_gpu_that_disappears_is_reported_down() {
    let (_dir, root) = node();
    let agent = start(&root);
    agent.scrape_until(WAIT, "every pod", all_pods);
    // GPU 2 (card3) falls off the bus: its card folder goes.
    std::fs::remove_dir_all(root.join("sys/class/drm/card3")).unwrap();
    std::fs::remove_dir_all(root.join("sys/class/drm/renderD131")).unwrap();
    let s = agent.scrape_until(WAIT, "GPU 2 down", |s| dev(s, "gpu_up", "2") == Some(0.0));
    // It keeps its identity and index; its values and processes go; the others stay.
    assert_eq!(
        s.find("gpu_info", &[("gpu", "2"), ("uuid", "0a1b2c3d4e5f6071")])
            .len(),
        1
    );
    assert_eq!(dev(&s, "gpu_utilization_ratio", "2"), None);
    assert_eq!(memory(&s, "hip-job"), None);
    assert_eq!(dev(&s, "gpu_up", "0"), Some(1.0));
    assert_eq!(dev(&s, "gpu_utilization_ratio", "1"), Some(0.4));
    assert_eq!(
        s.value(
            "gpu_pod_exporter_collector_success",
            &[("collector", "amd")]
        ),
        Some(0.0)
    );
    assert!(errors(&s, "sysfs", "DEVICE_GONE") >= 1.0);
}

#[test]
fn a_gpu_whose_reads_hang_holds_up_neither_the_others_nor_metrics() {
    let (dir, root) = node();
    let agent = start(&root);
    agent.scrape_until(WAIT, "every pod", all_pods);
    // GPU 1's busy file becomes a FIFO nobody writes: opening it blocks, as amdgpu's reads
    // of a GPU in reset do.
    let busy = root.join("sys/class/drm/card1/device/gpu_busy_percent");
    block(&busy);
    write_atomic(
        &root.join("sys/class/drm/card0/device/gpu_busy_percent"),
        "50\n",
    );
    let s = agent.scrape_until(WAIT, "GPU 1 late while GPU 0 is fresh", |s| {
        dev(s, "gpu_up", "1") == Some(0.0) && dev(s, "gpu_utilization_ratio", "0") == Some(0.5)
    });
    // The hung GPU keeps its last values, marked down; the others report as usual.
    assert_eq!(dev(&s, "gpu_utilization_ratio", "1"), Some(0.4));
    assert_eq!(dev(&s, "gpu_temperature_celsius", "1"), Some(45.0));
    assert_eq!(dev(&s, "gpu_up", "0"), Some(1.0));
    assert_eq!(dev(&s, "gpu_up", "2"), Some(1.0));
    assert_eq!(memory(&s, "trainer-0"), Some(2.0 * 1073741824.0));
    assert_eq!(
        s.value(
            "gpu_pod_exporter_collector_success",
            &[("collector", "amd")]
        ),
        Some(0.0)
    );
    // /metrics never waits for it (the read blocks for good: any bound shows that).
    for _ in 0..10 {
        let t = std::time::Instant::now();
        agent.scrape();
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    // The read returns: the GPU is up again with fresh values.
    unblock(&busy, &dir.path().join("held-fifo"), "20\n");
    let s = agent.scrape_until(WAIT, "GPU 1 back", |s| {
        dev(s, "gpu_up", "1") == Some(1.0)
            && dev(s, "gpu_utilization_ratio", "1") == Some(0.2)
            && s.value(
                "gpu_pod_exporter_collector_success",
                &[("collector", "amd")],
            ) == Some(1.0)
    });
    assert_eq!(dev(&s, "gpu_utilization_ratio", "0"), Some(0.5));
}

#[test]
fn a_process_file_whose_read_hangs_holds_up_neither_the_devices_nor_metrics() {
    let (dir, root) = node();
    let agent = start(&root);
    agent.scrape_until(WAIT, "every pod", all_pods);
    // vllm-1's fdinfo becomes a FIFO nobody writes: the process pass blocks on it.
    let fdinfo = root.join("proc/3002/fdinfo/7");
    let original = std::fs::read_to_string(&fdinfo).unwrap();
    block(&fdinfo);
    let s = agent.scrape_until(WAIT, "the late pass counted", |s| {
        errors(s, "processes", "TIMEOUT") >= 2.0
    });
    // The devices keep reporting fresh values and stay up; the last pass's pods stand; the
    // collector says it is not well.
    write_atomic(
        &root.join("sys/class/drm/card0/device/gpu_busy_percent"),
        "50\n",
    );
    let s2 = agent.scrape_until(WAIT, "a fresh device value", |s| {
        dev(s, "gpu_utilization_ratio", "0") == Some(0.5)
    });
    for s in [&s, &s2] {
        for gpu in ["0", "1", "2"] {
            assert_eq!(dev(s, "gpu_up", gpu), Some(1.0));
        }
        assert_eq!(memory(s, "vllm-1"), Some(4.0 * 1073741824.0));
        assert_eq!(s.find("pod_gpu_memory_used_bytes", &[]).len(), PODS);
        assert_eq!(
            s.value(
                "gpu_pod_exporter_collector_success",
                &[("collector", "amd")]
            ),
            Some(0.0)
        );
    }

    // The read returns: passes finish again.
    unblock(&fdinfo, &dir.path().join("held-fifo"), &original);
    let s = agent.scrape_until(WAIT, "the collector well again", |s| {
        s.value(
            "gpu_pod_exporter_collector_success",
            &[("collector", "amd")],
        ) == Some(1.0)
    });
    let timeouts = errors(&s, "processes", "TIMEOUT");
    std::thread::sleep(Duration::from_secs(1));
    let s = prom::parse(&agent.scrape());
    assert_eq!(errors(&s, "processes", "TIMEOUT"), timeouts);
    assert_eq!(memory(&s, "vllm-1"), Some(4.0 * 1073741824.0));
}

/// Figures for docs/benchmarks.md: scans of this machine's real /proc (no amdgpu, so every fd
/// is looked at and ruled out), with this test holding 2,000 extra fds, and what reading every
/// fdinfo instead would cost. `cargo test --release --test amd -- --ignored --nocapture`.
#[test]
#[ignore]
fn scan_cost_on_this_machine() {
    use gpu_pod_exporter::collect::amd::procscan;
    use std::time::Instant;
    let proc = Path::new("/proc");
    let measure = |what: &str| {
        let first = procscan::scan(proc, 0, &mut Vec::new());
        let runs = 20;
        let start = Instant::now();
        for _ in 0..runs {
            procscan::scan(proc, 0, &mut Vec::new());
        }
        let per = start.elapsed() / runs;
        println!(
            "{what}: {} processes, {} fds, {} fdinfo reads: {per:?} per scan ({:.2} µs per fd)",
            first.pids,
            first.fds,
            first.fdinfo_reads,
            per.as_secs_f64() * 1e6 / first.fds.max(1) as f64
        );
    };
    measure("as is");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..1000 {
        files.push(std::fs::File::create(dir.path().join(i.to_string())).unwrap());
        sockets.push(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    }
    measure("with 2,000 more fds");
    // The same fds, every fdinfo read (what the scan does where fd links cannot be read).
    let fds: Vec<PathBuf> = std::fs::read_dir("/proc/self/fdinfo")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let start = Instant::now();
    for p in &fds {
        let _ = std::fs::read_to_string(p);
    }
    let read = start.elapsed();
    let start = Instant::now();
    for p in &fds {
        let _ = std::fs::read_link(Path::new("/proc/self/fd").join(p.file_name().unwrap()));
    }
    let link = start.elapsed();
    println!(
        "this process's {} fds: fdinfo read {:.2} µs per fd, fd link {:.2} µs per fd",
        fds.len(),
        read.as_secs_f64() * 1e6 / fds.len() as f64,
        link.as_secs_f64() * 1e6 / fds.len() as f64
    );
    drop((files, sockets));
}
