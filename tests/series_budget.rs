//! The series budget of one node, from the agent itself: the real binary on four fake nodes (an
//! 8-GPU node with a GPU per pod, the same node time-sliced between 32 pods, an 8 x 7 MIG node,
//! an 8-GPU AMD node), each with a fake kubelet that allocates the pods their devices.
//!
//! What it asserts is the shape that keeps label cardinality bounded: no label that grows with
//! processes (a pid, a command), at most one series of each per-pod family for each container
//! and device (a container's two processes on one GPU make one series, not two), the same
//! series from one scrape to the next, and a pod that leaves taking its series with it. What it
//! prints (`-- --nocapture`) is the budget table of docs/operations.md, "At fleet scale".
//!
//! `SERIES_BUDGET_RECORD=<dir>` also writes each node's `/metrics` to `<dir>/<node>.prom`:
//! `scripts/fleet-scale.sh` serves those, rewritten per simulated node, to a real Prometheus.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::fake_kubelet::{FakeKubelet, PodSpec};
use common::{prom, Agent, WAIT};

/// Labels that would grow with processes rather than with pods and devices.
const PROCESS_LABELS: [&str; 6] = ["pid", "process", "comm", "command", "exe", "cmdline"];

/// A pod: its namespace and name, one container, the pids of its GPU processes, and the
/// device IDs the kubelet allocated it under one resource name.
struct Pod {
    namespace: String,
    name: String,
    pids: Vec<u32>,
    resource: &'static str,
    devices: Vec<String>,
}

/// A fake node: its pods, and the agent's scenario (NVIDIA) or sysfs (AMD) written beside them.
struct Node {
    name: &'static str,
    what: &'static str,
    devices: usize,
    /// Per-pod families served for each container and device: 3 (allocated, memory,
    /// utilization), 7 with the four profiling series of a device held alone.
    pod_families: usize,
    pods: Vec<Pod>,
    scenario: Option<String>,
}

fn gpu_uuid(g: usize) -> String {
    format!("GPU-00000000-0000-4000-8000-{g:012x}")
}

fn mig_uuid(g: usize, i: usize) -> String {
    format!("MIG-00000000-0000-5000-8000-{:012x}", g * 16 + i)
}

/// One H100 as a busy production node has it: every family NVML answers there.
fn h100(g: usize, gpm: bool, processes: &[(u32, u32)]) -> String {
    let mut s = format!(
        "  - uuid: {}\n    name: NVIDIA H100 80GB HBM3\n    pci_bus_id: \"00000000:{:02X}:00.0\"\n\
         \x20   memory_total_bytes: 85520809984\n    memory_used_bytes: 40265318400\n\
         \x20   utilization_gpu_percent: 87\n    utilization_memory_percent: 45\n\
         \x20   power_milliwatts: 350000\n    temperature_celsius: 61\n    sm_clock_mhz: 1980\n\
         \x20   process_utilization: supported\n\
         \x20   energy_millijoules: 123456789\n    ecc: {{corrected: 0, uncorrected: 0}}\n\
         \x20   xid_events: []\n    throttle_reasons: []\n\
         \x20   pcie: {{tx_kib_per_second: 1200000, rx_kib_per_second: 800000, replay_errors: 0}}\n\
         \x20   nvlink: {{tx_bytes: 5368709120, rx_bytes: 4294967296}}\n\
         \x20   encoder_percent: 0\n    decoder_percent: 0\n    memory_clock_mhz: 2619\n\
         \x20   memory_temperature_celsius: 45\n    power_limit_milliwatts: 700000\n\
         \x20   remapped_rows: {{correctable: 0, uncorrectable: 0, pending: false, failure: false}}\n\
         \x20   violations_ns: {{power: 0, thermal: 0, sync_boost: 0, board_limit: 0, low_utilization: 0, reliability: 0}}\n\
         \x20   memory_reserved_bytes: 565182464\n",
        gpu_uuid(g),
        0x18 + g
    );
    s.push_str(if gpm {
        "    gpm: {sm_active: 0.6, sm_occupancy: 0.4, tensor_active: 0.3, dram_active: 0.5}\n"
    } else {
        "    gpm: null\n"
    });
    s.push_str(&processes_yaml("    ", processes));
    s
}

fn processes_yaml(indent: &str, processes: &[(u32, u32)]) -> String {
    if processes.is_empty() {
        return format!("{indent}processes: []\n");
    }
    let mut s = format!("{indent}processes:\n");
    for (pid, sm) in processes {
        let _ = writeln!(
            s,
            "{indent}  - {{pid: {pid}, used_memory_bytes: 4000000000, sm_util_percent: {sm}, mem_util_percent: 10}}"
        );
    }
    s
}

/// 8 GPUs, a pod on each that holds it alone (one process): the LLM-serving node.
fn exclusive(prefix: &str, first_pid: u32) -> Node {
    let pods: Vec<Pod> = (0..8)
        .map(|g| Pod {
            namespace: "llm".into(),
            name: format!("{prefix}-{g}"),
            pids: vec![first_pid + g as u32],
            resource: "nvidia.com/gpu",
            devices: vec![gpu_uuid(g)],
        })
        .collect();
    let mut sc = String::from("driver_version: \"580.159.04\"\ndevices:\n");
    for (g, p) in pods.iter().enumerate() {
        sc.push_str(&h100(g, true, &[(p.pids[0], 80)]));
    }
    Node {
        name: "exclusive",
        pod_families: 7,
        what: "8 H100, one pod per GPU",
        devices: 8,
        pods,
        scenario: Some(sc),
    }
}

/// The same 8 GPUs time-sliced: 4 pods on each (the device plugin's replicas `<uuid>::<n>`),
/// two processes per pod. The per-pod GPM series are absent here (shared GPUs).
fn shared() -> Node {
    let mut pods = Vec::new();
    let mut sc = String::from("driver_version: \"580.159.04\"\ndevices:\n");
    for g in 0..8 {
        let mut procs = Vec::new();
        for k in 0..4 {
            let n = g * 4 + k;
            let pids = vec![20_000 + 2 * n as u32, 20_001 + 2 * n as u32];
            procs.extend(pids.iter().map(|&p| (p, 10)));
            pods.push(Pod {
                namespace: "batch".into(),
                name: format!("worker-{n}"),
                pids,
                resource: "nvidia.com/gpu",
                devices: vec![format!("{}::{k}", gpu_uuid(g))],
            });
        }
        sc.push_str(&h100(g, true, &procs));
    }
    Node {
        name: "shared",
        pod_families: 3,
        what: "8 H100 time-sliced, 32 pods x 2 processes",
        devices: 8,
        pods,
        scenario: Some(sc),
    }
}

/// 8 H100 in MIG mode, 7 1g.10gb instances each, a pod with one process on every instance.
fn mig() -> Node {
    let mut pods = Vec::new();
    let mut sc = String::from("driver_version: \"580.159.04\"\ndevices:\n");
    for g in 0..8 {
        sc.push_str(&h100(g, true, &[]));
        sc.push_str("    mig:\n");
        for i in 0..7 {
            let pid = 30_000 + (g * 7 + i) as u32;
            let _ = write!(
                sc,
                "      - uuid: {}\n        gpu_instance_id: {}\n        compute_instance_id: 0\n\
                 \x20       profile: 1g.10gb\n        memory_total_bytes: 10200547328\n\
                 \x20       memory_used_bytes: 4000000000\n\
                 \x20       gpm: {{sm_active: 0.6, sm_occupancy: 0.4, tensor_active: 0.3, dram_active: 0.5}}\n",
                mig_uuid(g, i),
                7 + i
            );
            sc.push_str(&processes_yaml("        ", &[(pid, 0)]));
            pods.push(Pod {
                namespace: "inference".into(),
                name: format!("small-{}", g * 7 + i),
                pids: vec![pid],
                resource: "nvidia.com/mig-1g.10gb",
                devices: vec![mig_uuid(g, i)],
            });
        }
    }
    Node {
        name: "mig",
        pod_families: 7,
        what: "8 H100 x 7 MIG 1g.10gb, one pod per instance",
        devices: 8 + 56,
        pods,
        scenario: Some(sc),
    }
}

const AMD_PCI: [&str; 8] = [
    "0000:05:00.0",
    "0000:26:00.0",
    "0000:46:00.0",
    "0000:65:00.0",
    "0000:85:00.0",
    "0000:a6:00.0",
    "0000:c6:00.0",
    "0000:e5:00.0",
];

/// 8 MI300X (amdgpu sysfs, KFD topology), a pod on each seen through DRM fdinfo.
fn amd(root: &Path) -> Node {
    let sys = root.join("sys");
    write(&sys.join("bus/pci/drivers/amdgpu/uevent"), "");
    write(&sys.join("module/amdgpu/version"), "6.10.5\n");
    let mut pods = Vec::new();
    for (i, pci) in AMD_PCI.iter().enumerate() {
        let dev = sys.join(format!("devices/pci0000:00/{pci}"));
        link(&dev.join("driver"), "../../../bus/pci/drivers/amdgpu");
        for (file, value) in [
            ("device", "0x74a1".to_string()),
            (
                "unique_id",
                format!("{:016x}", 0x5f1c_7a2e_9b3d_4c00_u64 + i as u64),
            ),
            ("mem_info_vram_total", "206158430208".into()),
            ("mem_info_vram_used", "161061273600".into()),
            ("gpu_busy_percent", "87".into()),
            ("mem_busy_percent", "35".into()),
            ("pp_dpm_sclk", "0: 500Mhz\n1: 2000Mhz *\n2: 2100Mhz".into()),
        ] {
            write(&dev.join(file), &format!("{value}\n"));
        }
        let hwmon = dev.join(format!("hwmon/hwmon{}", i + 3));
        write(&hwmon.join("power1_average"), "650000000\n");
        write(&hwmon.join("temp1_input"), "61000\n");
        link(
            &sys.join(format!("class/drm/card{i}/device")),
            &format!("../../../devices/pci0000:00/{pci}"),
        );
        let kfd = sys.join(format!("class/kfd/kfd/topology/nodes/{}", i + 1));
        write(&kfd.join("gpu_id"), &format!("{}\n", 41_000 + i));
        let bus = u64::from_str_radix(&pci[5..7], 16).unwrap();
        write(
            &kfd.join("properties"),
            &format!(
                "simd_count 1216\nsimd_per_cu 4\nlocation_id {}\ndomain 0\n",
                bus << 8
            ),
        );
        let pid = 40_000 + i as u32;
        let proc_dir = root.join(format!("proc/{pid}"));
        write(
            &proc_dir.join("stat"),
            &format!(
                "{pid} (python3) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 8 0 {} 0 0\n",
                100_000 + pid
            ),
        );
        write(
            &proc_dir.join("fdinfo/7"),
            &format!(
                "pos:\t0\nflags:\t02100002\nmnt_id:\t26\nino:\t1061\ndrm-driver:\tamdgpu\n\
                 drm-client-id:\t{pid}\ndrm-pdev:\t{pci}\ndrm-total-vram:\t153600 MiB\n\
                 drm-resident-vram:\t153600 MiB\ndrm-engine-compute:\t{} ns\n",
                1_000_000_000 * (i + 1)
            ),
        );
        pods.push(Pod {
            namespace: "llm".into(),
            name: format!("vllm-rocm-{i}"),
            pids: vec![pid],
            resource: "amd.com/gpu",
            devices: vec![pci.to_string()],
        });
    }
    Node {
        name: "amd",
        pod_families: 3,
        what: "8 MI300X, one pod per GPU",
        devices: 8,
        pods,
        scenario: None,
    }
}

fn write(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn link(path: &Path, target: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

/// A pod's cgroup and log folders (cgroup v2, systemd, containerd), each pid in it.
fn lay_out(root: &Path, n: usize, pod: &Pod) {
    let uid = format!(
        "{n:08x}-5c1d-4e2f-8a3b-{:012x}",
        fnv(&pod.name) & 0xffff_ffff_ffff
    );
    let cid = format!("{:016x}", fnv(&pod.name)).repeat(4);
    let log = format!(
        "var/log/pods/{}_{}_{uid}/server/0.log",
        pod.namespace, pod.name
    );
    write(&root.join(&log), "");
    link(
        &root.join(format!(
            "var/log/containers/{}_{}_server-{cid}.log",
            pod.name, pod.namespace
        )),
        &format!("/{log}"),
    );
    let cgroup = format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{cid}.scope\n",
        uid.replace('-', "_")
    );
    for pid in &pod.pids {
        write(&root.join(format!("proc/{pid}/cgroup")), &cgroup);
        write(&root.join(format!("proc/{pid}/comm")), "python3\n");
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn kubelet_pods(pods: &[Pod]) -> Vec<PodSpec> {
    pods.iter()
        .map(|p| {
            let ids: Vec<&str> = p.devices.iter().map(String::as_str).collect();
            PodSpec::new(&p.namespace, &p.name).container("server", &[(p.resource, &ids)])
        })
        .collect()
}

/// A node's agent, its fake kubelet and its tree, kept alive together.
struct Running {
    agent: Agent,
    kubelet: FakeKubelet,
    dir: tempfile::TempDir,
}

fn run(make: impl FnOnce(&Path) -> Node) -> (Node, Running) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    fs::create_dir_all(root.join("proc/1")).unwrap();
    let node = make(&root);
    for (n, p) in node.pods.iter().enumerate() {
        lay_out(&root, n, p);
    }
    let kubelet = FakeKubelet::start_at(root.join("var/lib/kubelet/pod-resources/kubelet.sock"));
    kubelet.set_pods(kubelet_pods(&node.pods));
    let agent = match &node.scenario {
        Some(sc) => Agent::with_scenario(sc)
            .rootfs(&root)
            .arg("--no-collector.amd")
            .start(),
        None => Agent::with_scenario("")
            .no_scenario()
            .library("/nonexistent/libnvidia-ml.so.1")
            .rootfs(&root)
            .arg("--no-collector.nvidia")
            .start(),
    };
    let running = Running {
        agent,
        kubelet,
        dir,
    };
    (node, running)
}

/// Scrapes until every pod has its allocation and its processes' memory, and the per-pod
/// series have reached their number (the ratios need a second sample): the settled series set.
fn settled(node: &Node, agent: &Agent) -> prom::Samples {
    let want = node.pods.len();
    agent.scrape_until(WAIT, "every pod allocated, measured and profiled", |s| {
        // Memory above 0: the pod's processes attributed to it, not only its allocation.
        let pods_with = |family: &str| -> usize {
            s.find(family, &[])
                .iter()
                .filter(|x| family == "pod_gpu_allocated" || x.value > 0.0)
                .map(|x| x.labels["pod"].clone())
                .collect::<BTreeSet<_>>()
                .len()
        };
        let pod_series = s
            .samples
            .iter()
            .filter(|x| x.name.starts_with("pod_"))
            .count();
        pods_with("pod_gpu_allocated") == want
            && pods_with("pod_gpu_memory_used_bytes") == want
            && pod_series >= node.pod_families * want
    })
}

fn series_key(s: &prom::Sample) -> String {
    format!("{}{:?}", s.name, s.labels)
}

/// What the table prints for one node, and what the checks below need.
struct Budget {
    total: usize,
    device: usize,
    pod: usize,
    agent: usize,
}

fn budget(s: &prom::Samples) -> Budget {
    let count = |f: &dyn Fn(&str) -> bool| s.samples.iter().filter(|x| f(&x.name)).count();
    Budget {
        total: s.samples.len(),
        device: count(&|n| n.starts_with("gpu_") && !n.starts_with("gpu_pod_exporter_")),
        pod: count(&|n| n.starts_with("pod_")),
        agent: count(&|n| n.starts_with("gpu_pod_exporter_") || n.starts_with("process_")),
    }
}

/// The cardinality rules every node's series follow.
fn check_bounded(node: &Node, s: &prom::Samples) {
    for x in &s.samples {
        for l in PROCESS_LABELS {
            assert!(
                !x.labels.contains_key(l),
                "{}: a per-process label `{l}`: {x:?}",
                node.name
            );
        }
    }
    // One series per family, container and device: a pod's two processes on one GPU are one
    // series (the shared node has two per pod).
    let mut per: BTreeMap<(String, String, String, String, String), usize> = BTreeMap::new();
    for x in s.samples.iter().filter(|x| x.name.starts_with("pod_")) {
        let l = |k: &str| x.labels.get(k).cloned().unwrap_or_default();
        *per.entry((
            x.name.clone(),
            l("namespace"),
            l("pod"),
            l("container"),
            l("uuid"),
        ))
        .or_default() += 1;
        assert!(
            node.pods.iter().any(|p| p.name == l("pod")),
            "{}: a pod series for a pod the node does not run: {x:?}",
            node.name
        );
    }
    if let Some((k, n)) = per.iter().find(|(_, n)| **n > 1) {
        panic!("{}: {n} series of {k:?}", node.name);
    }
}

#[test]
fn series_per_node_are_bounded_by_pods_and_devices() {
    let record = std::env::var_os("SERIES_BUDGET_RECORD").map(std::path::PathBuf::from);
    let mut table = String::from(
        "| node | devices | pods | series | device (gpu_*) | per-pod (pod_*) | agent's own (gpu_pod_exporter_*, process_*) |\n|---|---|---|---|---|---|---|\n",
    );
    let makers: [fn(&Path) -> Node; 4] =
        [|_| exclusive("vllm", 10_000), |_| shared(), |_| mig(), amd];
    for make in makers {
        let (node, running) = run(make);
        let first = settled(&node, &running.agent);
        check_bounded(&node, &first);
        // The same series from one scrape to the next: nothing accumulates while nothing moves.
        std::thread::sleep(Duration::from_secs(2));
        let again = prom::parse(&running.agent.scrape());
        let keys = |s: &prom::Samples| s.samples.iter().map(series_key).collect::<BTreeSet<_>>();
        assert_eq!(
            keys(&first),
            keys(&again),
            "{}: the series set moved",
            node.name
        );
        let b = budget(&first);
        // Every pod here has one container on one device: the per-pod series are exactly the
        // families times the pods, whatever the processes.
        assert_eq!(
            b.pod,
            node.pod_families * node.pods.len(),
            "{}: per-pod series\n{}",
            node.name,
            first.text
        );
        let _ = writeln!(
            table,
            "| {} ({}) | {} | {} | {} | {} | {} | {} |",
            node.name,
            node.what,
            node.devices,
            node.pods.len(),
            b.total,
            b.device,
            b.pod,
            b.agent
        );
        if let Some(dir) = &record {
            fs::create_dir_all(dir).unwrap();
            fs::write(dir.join(format!("{}.prom", node.name)), &first.text).unwrap();
        }
        drop(running.kubelet);
    }
    println!("{table}");
}

/// Pod churn on the agent's side: every pod replaced by a new one (new names, new processes)
/// leaves as many series as before, none of the old pods'. The growth that churn causes is in
/// Prometheus's head, not in what the agent serves.
#[test]
fn replaced_pods_take_their_series_with_them() {
    let (node, running) = run(|_| exclusive("vllm", 10_000));
    let before = settled(&node, &running.agent);
    // The old processes exit (their /proc entries go), the new pods start on the same GPUs.
    let tree = running.dir.path().join("node");
    for pid in node.pods.iter().flat_map(|p| &p.pids) {
        fs::remove_dir_all(tree.join(format!("proc/{pid}"))).unwrap();
    }
    let next = exclusive("vllm-next", 11_000);
    for (n, p) in next.pods.iter().enumerate() {
        lay_out(&tree, 100 + n, p);
    }
    running.kubelet.set_pods(kubelet_pods(&next.pods));
    running
        .agent
        .set_scenario(next.scenario.as_deref().unwrap());
    let after = settled(&next, &running.agent);
    check_bounded(&next, &after);
    assert!(
        !after.samples.iter().any(|x| x
            .labels
            .get("pod")
            .is_some_and(|p| !p.starts_with("vllm-next-"))),
        "an old pod's series is still served:\n{}",
        after.text
    );
    assert_eq!(budget(&before).pod, budget(&after).pod);
    assert_eq!(budget(&before).device, budget(&after).device);
}
