//! The pod-resources client against a fake kubelet on a unix socket: every device ID form,
//! the resource filter, a socket that appears late, a kubelet that dies and comes back, a hung
//! kubelet, kubelets that do not serve GetAllocatableResources, and DRA claims beside
//! device-plugin devices.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/fake_kubelet.rs"]
mod fake_kubelet;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_kubelet::{ClaimSpec, FakeKubelet, PodSpec};
use gpu_pod_exporter::attribute::podresources::{
    ClaimDevice, ContainerClaim, ContainerDevices, KubeletView, PodResources, BACKOFF_MIN,
    RPC_TIMEOUT,
};
use tonic::Code;

const INTERVAL: Duration = Duration::from_millis(100);
const UUID: &str = "0b7f3c2e-1a4d-4c55-9e1e-6b1f0c2d3e4f";
const MIG_UUID: &str = "MIG-5c1a7b9e-2f3d-5a6b-8c7d-9e0f1a2b3c4d";

fn prefixes() -> Vec<String> {
    vec!["nvidia.com/".into(), "amd.com/".into()]
}

/// A runtime for the client; the fake kubelet runs its own.
fn client(socket: std::path::PathBuf) -> (tokio::runtime::Runtime, PodResources) {
    // The client's state-change lines, shown for failing tests (or with --nocapture).
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("gpu_pod_exporter=debug")
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pr = {
        let _guard = rt.enter();
        PodResources::spawn(socket, INTERVAL, prefixes())
    };
    (rt, pr)
}

fn wait_for(
    pr: &PodResources,
    within: Duration,
    what: &str,
    ok: impl Fn(&KubeletView) -> bool,
) -> Arc<KubeletView> {
    let start = Instant::now();
    loop {
        let view = pr.latest();
        if ok(&view) {
            return view;
        }
        if start.elapsed() > within {
            panic!("not {what} within {within:?}; last view: {view:#?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the fake has answered `n` more List calls.
fn more_polls(kubelet: &FakeKubelet, n: usize) {
    let target = kubelet.list_calls() + n;
    let start = Instant::now();
    while kubelet.list_calls() < target {
        assert!(start.elapsed() < Duration::from_secs(3), "polling stalled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alloc(ns: &str, pod: &str, container: &str, resource: &str, ids: &[&str]) -> ContainerDevices {
    ContainerDevices {
        namespace: ns.into(),
        pod: pod.into(),
        container: container.into(),
        resource_name: resource.into(),
        device_ids: ids.iter().map(|s| s.to_string()).collect(),
    }
}

fn one_gpu_pod() -> Vec<PodSpec> {
    vec![PodSpec::new("llm", "vllm-0")
        .container("server", &[("nvidia.com/gpu", &[&format!("GPU-{UUID}")])])]
}

#[test]
fn every_device_id_form_with_the_resource_filter() {
    let dir = tempfile::tempdir().unwrap();
    let gpu = format!("GPU-{UUID}");
    let sliced = format!("GPU-{UUID}::2");
    let mig_by_parent = format!("MIG-GPU-{UUID}/1/0");
    let kubelet = FakeKubelet::start(dir.path());
    kubelet.set_pods(vec![
        // NVIDIA device plugin: whole GPU, time-slicing replica, MIG (both naming strategies).
        PodSpec::new("llm", "vllm-0").container(
            "server",
            &[("nvidia.com/gpu", &[&gpu]), ("example.com/nic", &["eth1"])],
        ),
        PodSpec::new("llm", "vllm-1").container("server", &[("nvidia.com/gpu", &[&sliced])]),
        PodSpec::new("batch", "mig-a")
            .container("work", &[("nvidia.com/mig-1g.10gb", &[MIG_UUID])]),
        PodSpec::new("batch", "mig-b")
            .container("work", &[("nvidia.com/mig-1g.10gb", &[&mig_by_parent])]),
        // GKE's plugin: minors, vGPU sharing, MIG by GPU instance; two containers, one without GPU.
        PodSpec::new("gke", "trainer")
            .container("main", &[("nvidia.com/gpu", &["nvidia0", "nvidia0/vgpu3"])])
            .container("logger", &[]),
        PodSpec::new("gke", "mig").container("main", &[("nvidia.com/gpu", &["nvidia0/gi1"])]),
        // AMD device plugin: PCI address.
        PodSpec::new("rocm", "bench").container("main", &[("amd.com/gpu", &["0000:19:00.0"])]),
        // Not ours: filtered out entirely.
        PodSpec::new("net", "router").container("main", &[("example.com/nic", &["eth2"])]),
        PodSpec::new("web", "cpu-only").container("app", &[]),
    ]);
    kubelet.set_allocatable(&[
        ("nvidia.com/gpu", &[&gpu, "nvidia0"]),
        ("amd.com/gpu", &["0000:19:00.0"]),
        ("example.com/nic", &["eth1", "eth2"]),
    ]);

    let (_rt, pr) = client(kubelet.socket_path().to_path_buf());
    let view = wait_for(&pr, Duration::from_secs(5), "available", |v| v.available);
    assert_eq!(
        view.allocations,
        [
            alloc("llm", "vllm-0", "server", "nvidia.com/gpu", &[&gpu]),
            alloc("llm", "vllm-1", "server", "nvidia.com/gpu", &[&sliced]),
            alloc(
                "batch",
                "mig-a",
                "work",
                "nvidia.com/mig-1g.10gb",
                &[MIG_UUID]
            ),
            alloc(
                "batch",
                "mig-b",
                "work",
                "nvidia.com/mig-1g.10gb",
                &[&mig_by_parent]
            ),
            // The fake, like the kubelet, sends one entry per device: merged back here.
            alloc(
                "gke",
                "trainer",
                "main",
                "nvidia.com/gpu",
                &["nvidia0", "nvidia0/vgpu3"]
            ),
            alloc("gke", "mig", "main", "nvidia.com/gpu", &["nvidia0/gi1"]),
            alloc("rocm", "bench", "main", "amd.com/gpu", &["0000:19:00.0"]),
        ]
    );
    assert_eq!(
        view.allocatable,
        [
            (
                "nvidia.com/gpu".to_string(),
                vec![gpu.clone(), "nvidia0".to_string()]
            ),
            ("amd.com/gpu".to_string(), vec!["0000:19:00.0".to_string()]),
        ]
    );
    assert!(view.fetched_at.is_some());

    // One channel, reused across polls.
    more_polls(&kubelet, 3);
    assert_eq!(kubelet.connections(), 1);

    // Changes are picked up on the next poll.
    kubelet.set_pods(one_gpu_pod());
    wait_for(&pr, Duration::from_secs(2), "updated", |v| {
        v.allocations.len() == 1
    });
}

#[test]
fn an_absent_socket_is_not_an_error_and_a_late_kubelet_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir
        .path()
        .join("var/lib/kubelet/pod-resources/kubelet.sock");
    let (_rt, pr) = client(socket.clone());
    std::thread::sleep(INTERVAL * 3);
    assert_eq!(*pr.latest(), KubeletView::default());

    let kubelet = FakeKubelet::start_at(socket);
    kubelet.set_pods(one_gpu_pod());
    // The first retries come after BACKOFF_MIN, then twice that.
    let view = wait_for(&pr, BACKOFF_MIN * 4, "picked up", |v| v.available);
    assert_eq!(view.allocations.len(), 1);
}

#[test]
fn a_kubelet_that_dies_and_comes_back_is_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let mut kubelet = FakeKubelet::start(dir.path());
    kubelet.set_pods(one_gpu_pod());
    let (_rt, pr) = client(kubelet.socket_path().to_path_buf());
    wait_for(&pr, Duration::from_secs(5), "available", |v| v.available);

    kubelet.stop();
    let view = wait_for(&pr, Duration::from_secs(2), "unavailable", |v| !v.available);
    // The last answer is kept, flagged stale; the consumer decides what to do with it.
    assert_eq!(view.allocations.len(), 1);

    kubelet.set_pods(vec![]);
    kubelet.restart();
    let view = wait_for(&pr, BACKOFF_MIN * 4, "reconnected", |v| v.available);
    assert!(view.allocations.is_empty());
    assert_eq!(kubelet.connections(), 2);
}

#[test]
fn a_hung_kubelet_times_out_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let kubelet = FakeKubelet::start(dir.path());
    kubelet.set_pods(one_gpu_pod());
    let (_rt, pr) = client(kubelet.socket_path().to_path_buf());
    wait_for(&pr, Duration::from_secs(5), "available", |v| v.available);

    kubelet.set_delay(Duration::from_secs(60));
    let hung = Instant::now();
    wait_for(
        &pr,
        RPC_TIMEOUT + Duration::from_secs(2),
        "timed out",
        |v| !v.available,
    );
    assert!(hung.elapsed() >= RPC_TIMEOUT - INTERVAL);

    kubelet.set_delay(Duration::ZERO);
    let view = wait_for(&pr, BACKOFF_MIN * 3, "recovered", |v| v.available);
    assert_eq!(view.allocations.len(), 1);
}

#[test]
fn a_kubelet_without_get_allocatable_resources_is_still_available() {
    // Unimplemented: kubelet before 1.21; Unknown: KubeletPodResourcesGetAllocatable off.
    for code in [Code::Unimplemented, Code::Unknown] {
        let dir = tempfile::tempdir().unwrap();
        let kubelet = FakeKubelet::start(dir.path());
        kubelet.set_pods(one_gpu_pod());
        kubelet.set_allocatable(&[("nvidia.com/gpu", &["nvidia0"])]);
        kubelet.set_allocatable_error(Some(code));
        let (_rt, pr) = client(kubelet.socket_path().to_path_buf());
        let view = wait_for(&pr, Duration::from_secs(5), "available", |v| v.available);
        assert_eq!(view.allocations.len(), 1, "{code:?}");
        assert!(view.allocatable.is_empty(), "{code:?}");
        // And it stays available on the same channel.
        more_polls(&kubelet, 2);
        assert!(pr.latest().available, "{code:?}");
        assert_eq!(kubelet.connections(), 1, "{code:?}");
    }
}

/// The poller lives as long as some handle does. The positive control: while one copy is left,
/// the kubelet sees two more polls, and the window after the last drop is twice as long as
/// those two polls took (at least four intervals), so a poller that had stalled for another
/// reason could not pass for one that stopped.
#[test]
fn dropping_every_handle_stops_polling() {
    let dir = tempfile::tempdir().unwrap();
    let kubelet = FakeKubelet::start(dir.path());
    let (_rt, pr) = client(kubelet.socket_path().to_path_buf());
    wait_for(&pr, Duration::from_secs(5), "available", |v| v.available);
    let copy = pr.clone();
    drop(pr);
    let start = Instant::now();
    more_polls(&kubelet, 2);
    let two_polls = start.elapsed();
    assert!(copy.latest().available);
    drop(copy);
    // A poll already under way when the last handle went may still land.
    std::thread::sleep(INTERVAL * 2);
    let calls = kubelet.list_calls();
    std::thread::sleep((two_polls * 2).max(INTERVAL * 4));
    assert_eq!(
        kubelet.list_calls(),
        calls,
        "polled after every handle was dropped"
    );
}

/// `dynamic_resources` as a kubelet 1.31 or later sends it, beside device-plugin devices: every
/// driver's claims are kept (the join decides which are GPUs), a claim two containers share is
/// reported under each, and the kubelet's cumulative CDI names come through as sent.
#[test]
fn dra_claims_beside_device_plugin_devices() {
    let dir = tempfile::tempdir().unwrap();
    let kubelet = FakeKubelet::start(dir.path());
    let cdi =
        |n: &str| format!("k8s.gpu.nvidia.com/claim=dab5ab50-d59a-42a6-af16-cfd4628c0f7a-{n}");
    let two_gpus = ClaimSpec::new("ml", "trainer-gpus")
        .device("gpu.nvidia.com", "node-1", "gpu-0", &[&cdi("gpu-0")])
        .device("gpu.nvidia.com", "node-1", "gpu-1", &[&cdi("gpu-1")])
        .device("dra.example.com", "node-1", "eth1", &[]);
    let shared = ClaimSpec::new("ml", "shared").device("gpu.amd.com", "node-1", "gpu-0-128", &[]);
    kubelet.set_pods(vec![
        PodSpec::new("llm", "vllm-0")
            .container("server", &[("nvidia.com/gpu", &[&format!("GPU-{UUID}")])]),
        PodSpec::new("ml", "trainer")
            .claim("main", two_gpus)
            .claim("main", shared.clone())
            .claim("sidecar", shared),
    ]);
    kubelet.set_allocatable(&[("nvidia.com/gpu", &[&format!("GPU-{UUID}")])]);
    let (_rt, pr) = client(kubelet.socket_path().to_path_buf());
    let view = wait_for(&pr, Duration::from_secs(5), "available", |v| v.available);
    assert_eq!(view.allocations.len(), 1, "device-plugin devices as before");
    let dev = |driver: &str, device: &str, cdi: &[String]| ClaimDevice {
        driver: driver.into(),
        pool: "node-1".into(),
        device: device.into(),
        cdi_devices: cdi.to_vec(),
    };
    let claim = |container: &str, name: &str, devices: Vec<ClaimDevice>| ContainerClaim {
        namespace: "ml".into(),
        pod: "trainer".into(),
        container: container.into(),
        claim_namespace: "ml".into(),
        claim_name: name.into(),
        devices,
    };
    let amd = || vec![dev("gpu.amd.com", "gpu-0-128", &[])];
    assert_eq!(
        view.claims,
        [
            claim(
                "main",
                "trainer-gpus",
                vec![
                    dev("gpu.nvidia.com", "gpu-0", &[cdi("gpu-0")]),
                    dev("gpu.nvidia.com", "gpu-1", &[cdi("gpu-0"), cdi("gpu-1")]),
                    dev("dra.example.com", "eth1", &[]),
                ]
            ),
            claim("main", "shared", amd()),
            claim("sidecar", "shared", amd()),
        ]
    );
    // GetAllocatableResources carries no DRA devices.
    assert_eq!(view.allocatable.len(), 1);
}
