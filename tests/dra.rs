//! DRA end to end: the real binary, the mock NVML, the every-layout node and one fake kubelet
//! that reports device-plugin devices and DRA claims side by side (`dynamic_resources`, as a
//! kubelet 1.31 or later sends them; two claims as a kubelet 1.27-1.30 does, CDI names only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::fake_kubelet::{ClaimSpec, FakeKubelet, PodSpec};
use common::{fixture, prom, Agent, WAIT};

const NVIDIA: &str = "gpu.nvidia.com";
const CLAIM_UID: &str = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b";

/// `<rootfs>/proc/driver/nvidia/gpus/<pci>/information` for the every-layout devices, with
/// minors that run against NVML's index order, as they may on a real host: `gpu-0` is the GPU
/// at 0000:1a:00.0, NVML index 2.
const MINORS: [(&str, u32); 5] = [
    ("0000:18:00.0", 2),
    ("0000:19:00.0", 1),
    ("0000:1a:00.0", 0),
    ("0000:1b:00.0", 3),
    ("0000:1c:00.0", 4),
];

fn nvidia_cdi(device: &str) -> String {
    format!("k8s.gpu.nvidia.com/claim={CLAIM_UID}-{device}")
}

/// The claim the DRA pod holds: the NVIDIA driver's `gpu-0`.
fn h100_claim() -> ClaimSpec {
    ClaimSpec::new("ocp", "h100").device(NVIDIA, "node-1", "gpu-0", &[&nvidia_cdi("gpu-0")])
}

/// Device-plugin and DRA pods on one kubelet.
fn pods(uuids: &[String]) -> Vec<PodSpec> {
    vec![
        // DRA: the only container on GPU 2 (pid 1006), allocated it by the claim.
        PodSpec::new("ocp", "crio-cgroupfs-guaranteed").claim("app", h100_claim()),
        // A device plugin: GPU 4 by UUID, nothing running yet.
        PodSpec::new("llm", "vllm-pending")
            .container("server", &[("nvidia.com/gpu", &[uuids[4].as_str()])]),
        // A kubelet before 1.31: no driver or device name, a CDI name that carries the UUID.
        PodSpec::new("llm", "cdi-form").claim(
            "server",
            ClaimSpec::new("llm", "cdi-form-gpu").device(
                "",
                "",
                "",
                &[&format!("nvidia.com/gpu={}", uuids[4])],
            ),
        ),
        // A kubelet before 1.31 with the NVIDIA driver: its CDI name carries the device name,
        // gpu-4: minor 4, 0000:1c:00.0, GPU 4.
        PodSpec::new("llm", "cdi-device-name").claim(
            "server",
            ClaimSpec::new("llm", "legacy-gpu").device("", "", "", &[&nvidia_cdi("gpu-4")]),
        ),
        // A GPU this node does not have.
        PodSpec::new("llm", "elsewhere").claim(
            "server",
            ClaimSpec::new("llm", "elsewhere").device(NVIDIA, "node-1", "gpu-9", &[]),
        ),
        // Another driver's claim: not a GPU, not a pod series, not a failure.
        PodSpec::new("net", "sriov").claim(
            "c",
            ClaimSpec::new("net", "nic").device("dra.example.com", "node-1", "eth1", &[]),
        ),
    ]
}

fn allocated(s: &prom::Samples, pod: &str) -> Option<f64> {
    s.value("pod_gpu_allocated", &[("pod", pod)])
}

fn device_unknown(s: &prom::Samples) -> f64 {
    s.value(
        "gpu_pod_exporter_attribution_failures_total",
        &[("reason", "device_unknown")],
    )
    .unwrap_or(0.0)
}

#[test]
fn dra_and_device_plugin_pods_on_one_kubelet() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    common::copy_tree(&fixture("nodes/every-layout"), &root);
    for (pci, minor) in MINORS {
        let d = root.join(format!("proc/driver/nvidia/gpus/{pci}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("information"),
            format!("Model: \t\t NVIDIA H100 80GB HBM3\nBus Location: \t {pci}\nDevice Minor: \t {minor}\n"),
        )
        .unwrap();
    }
    let scenario = std::fs::read_to_string(fixture("nodes/every-layout.yaml")).unwrap();
    let uuids: Vec<String> = scenario
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- uuid: "))
        .map(str::to_string)
        .collect();
    let kubelet = FakeKubelet::start_at(root.join("var/lib/kubelet/pod-resources/kubelet.sock"));
    kubelet.set_pods(pods(&uuids));
    let agent = Agent::with_scenario(&scenario)
        .rootfs(&root)
        .interval("1s")
        .start();

    // Every allocation in, the unknown GPU counted, and GPM (two samples) on GPU 2.
    let s = agent.scrape_until(WAIT, "the DRA and device-plugin allocations", |s| {
        s.find("pod_gpu_allocated", &[]).len() == 4
            && device_unknown(s) >= 1.0
            && s.value(
                "pod_gpu_tensor_active_ratio",
                &[("pod", "crio-cgroupfs-guaranteed")],
            )
            .is_some()
    });
    // The DRA pod: `gpu-0` is minor 0, the GPU at 0000:1a:00.0, NVML index 2 (not index 0).
    let dra = [("pod", "crio-cgroupfs-guaranteed"), ("gpu", "2")];
    assert_eq!(s.value("pod_gpu_allocated", &dra), Some(1.0));
    assert!(s
        .find(
            "pod_gpu_allocated",
            &[("pod", "crio-cgroupfs-guaranteed"), ("gpu", "0")]
        )
        .is_empty());
    // It holds the device alone: the device's utilization (no per-process data there) and GPM.
    assert_eq!(s.value("pod_gpu_utilization_ratio", &dra), Some(0.7));
    assert_eq!(
        s.pod_profiling("crio-cgroupfs-guaranteed"),
        [Some(0.55), Some(0.35), Some(0.25), Some(0.45)]
    );
    // The device-plugin pod and the pre-1.31 claims, on GPU 4, side by side.
    for pod in ["vllm-pending", "cdi-form", "cdi-device-name"] {
        let at = [("pod", pod), ("gpu", "4")];
        assert_eq!(s.value("pod_gpu_allocated", &at), Some(1.0), "{pod}");
        // Rule 4: allocated, nothing running yet.
        assert_eq!(
            s.value("pod_gpu_utilization_ratio", &at),
            Some(0.0),
            "{pod}"
        );
        assert_eq!(
            s.value("pod_gpu_memory_used_bytes", &at),
            Some(0.0),
            "{pod}"
        );
    }
    // The unknown GPU: counted and logged, no series; the NIC claim: neither.
    assert!(allocated(&s, "elsewhere").is_none());
    assert!(s.find("pod_gpu_allocated", &[("pod", "sriov")]).is_empty());
    agent.wait_for(Duration::from_secs(5), "the unknown device logged", |a| {
        a.log_text().contains("gpu.nvidia.com/node-1/gpu-9")
    });
    assert!(
        !agent.log_text().contains("eth1"),
        "another driver's device is no GPU"
    );

    // A second pod references the same claim: the device is shared, no container holds it
    // alone, so the DRA pod loses the device's utilization and GPM (rule 3, never a guess).
    let mut shared = pods(&uuids);
    shared.push(PodSpec::new("ocp", "reader").claim("reader", h100_claim()));
    kubelet.set_pods(shared);
    let s = agent.scrape_until(WAIT, "the shared claim", |s| {
        allocated(s, "reader") == Some(1.0) && s.value("pod_gpu_utilization_ratio", &dra).is_none()
    });
    assert_eq!(s.value("pod_gpu_allocated", &dra), Some(1.0));
    assert_eq!(
        s.value("pod_gpu_allocated", &[("pod", "reader"), ("gpu", "2")]),
        Some(1.0)
    );
    assert_eq!(s.pod_profiling("crio-cgroupfs-guaranteed"), [None; 4]);
    assert_eq!(s.pod_profiling("reader"), [None; 4]);
    // Its memory is still its own.
    assert!(s.value("pod_gpu_memory_used_bytes", &dra).is_some());
    // The reader runs nothing: rule 4.
    assert_eq!(
        s.value("pod_gpu_utilization_ratio", &[("pod", "reader")]),
        Some(0.0)
    );

    // The claims released: the series go with them, the process-based ones stay.
    kubelet.set_pods(vec![]);
    let s = agent.scrape_until(WAIT, "the claims released", |s| {
        s.find("pod_gpu_allocated", &[]).is_empty()
    });
    assert!(s
        .find("pod_gpu_utilization_ratio", &[("pod", "reader")])
        .is_empty());
    assert_eq!(s.value("pod_gpu_utilization_ratio", &dra), Some(0.7));
}
