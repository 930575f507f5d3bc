//! MPS end to end (docs/attribution.md, rule 7): the real binary, the mock's `mps_server` (NVML as
//! measured on an H200 under MPS: the server and its clients in the compute list, the clients
//! in the MPS list, every utilization sample on the server's pid), and a fake node with the
//! server on the host or in the NVIDIA device plugin's MPS control daemon pod.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::Path;

use common::node::{pod, process};
use common::{prom, Agent, WAIT};

const SERVER: u32 = 4100;
/// 66 MiB: the server's memory on the H200.
const SERVER_MEMORY: f64 = 69206016.0;
const GPU0: &str = "GPU-5a1e7c3b-0d2f-4b8e-9a61-3c7e5d2f1a08";
const GPU1: &str = "GPU-b7d2e9a4-6c1f-4e30-8d5b-2f9a0c4e6b13";

/// The scenario: one MPS server (pid 4100) on both GPUs. GPU 0 has two client pods (50 % and
/// 37 % SM, all of it reported on the server), GPU 1 one. `extra0` adds fields to GPU 0.
fn scenario(extra0: &str) -> String {
    let device = |uuid: &str, bus: u8, util: u32, gpm: &str, procs: &str, extra: &str| {
        format!(
            r#"  - uuid: {uuid}
    name: NVIDIA H200
    pci_bus_id: "00000000:{bus:02X}:00.0"
    memory_total_bytes: 150754820096
    memory_used_bytes: 20000000000
    utilization_gpu_percent: {util}
    utilization_memory_percent: 30
    power_milliwatts: 500000
    temperature_celsius: 55
    sm_clock_mhz: 1980
    process_utilization: supported
    gpm: {gpm}
    mps_server: {{pid: {SERVER}, used_memory_bytes: {SERVER_MEMORY}}}
    processes:
{procs}{extra}"#
        )
    };
    format!(
        "driver_version: \"570.133.20\"\ndevices:\n{}{}",
        device(
            GPU0,
            0x18,
            87,
            "{sm_active: 0.8, sm_occupancy: 0.2, tensor_active: 0.3, dram_active: 0.6}",
            "      - {pid: 4200, used_memory_bytes: 5000000000, sm_util_percent: 50, mem_util_percent: 20}\n      - {pid: 4300, used_memory_bytes: 7000000000, sm_util_percent: 37, mem_util_percent: 10}\n",
            extra0,
        ),
        device(
            GPU1,
            0x19,
            60,
            "{sm_active: 0.55, sm_occupancy: 0.1, tensor_active: 0.2, dram_active: 0.4}",
            "      - {pid: 4400, used_memory_bytes: 9000000000, sm_util_percent: 60, mem_util_percent: 20}\n",
            "",
        ),
    )
}

/// Where the MPS server runs.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    /// A systemd service on the host.
    OnHost,
    /// In the NVIDIA device plugin's MPS control daemon pod (`sharing.mps`).
    InPod,
}

const PLUGIN_NS: &str = "nvidia-device-plugin";
const PLUGIN_POD: &str = "nvidia-device-plugin-mps-control-daemon-x7k2p";

/// The node: three client pods and the server where `server` says. `server_comm`: what the
/// kernel shows of the server's name (`None`: no `comm` to read).
fn node(server: Server, server_comm: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    pod(root, 1, "team-a", "client-a", "app", 4200, "python3");
    pod(root, 2, "team-b", "client-b", "app", 4300, "python3");
    pod(root, 3, "team-c", "solo", "app", 4400, "python3");
    match server {
        Server::OnHost => process(
            root,
            SERVER,
            "0::/system.slice/nvidia-mps.service\n",
            server_comm,
        ),
        Server::InPod => {
            pod(
                root,
                4,
                PLUGIN_NS,
                PLUGIN_POD,
                "mps-control-daemon",
                SERVER,
                "unused",
            );
            let comm = root.join(format!("proc/{SERVER}/comm"));
            match server_comm {
                Some(c) => fs::write(comm, format!("{c}\n")).unwrap(),
                None => fs::remove_file(comm).unwrap(),
            }
        }
    }
    dir
}

fn settled(s: &prom::Samples) -> bool {
    s.find("pod_gpu_memory_used_bytes", &[]).len() == 3
        && s.value("gpu_sm_active_ratio", &[("gpu", "1")]).is_some()
        && s.has("pod_gpu_sm_active_ratio")
}

/// What every layout must show: memory for every client, no ratio from the per-process 0s,
/// the sole client holding GPU 1 alone, the server no pod and its memory unattributed.
fn assert_rule_7(s: &prom::Samples, layout: &str) {
    let memory = |pod| s.value("pod_gpu_memory_used_bytes", &[("pod", pod)]);
    let ratio = |pod| s.value("pod_gpu_utilization_ratio", &[("pod", pod)]);
    assert_eq!(memory("client-a"), Some(5e9), "{layout}");
    assert_eq!(memory("client-b"), Some(7e9), "{layout}");
    assert_eq!(memory("solo"), Some(9e9), "{layout}");
    // NVML gave the clients 0 and the server 87: no false 0, and no share guessed.
    assert_eq!(ratio("client-a"), None, "{layout}");
    assert_eq!(ratio("client-b"), None, "{layout}");
    assert!(
        s.find("pod_gpu_sm_active_ratio", &[("gpu", "0")])
            .is_empty(),
        "{layout}"
    );
    // The only client on GPU 1 holds it alone: the device's utilization and GPM.
    assert_eq!(ratio("solo"), Some(0.6), "{layout}");
    assert_eq!(
        s.value("pod_gpu_sm_active_ratio", &[("pod", "solo")]),
        Some(0.55),
        "{layout}"
    );
    // The server is never a pod's process: no series carries the plugin's pod.
    assert!(
        s.samples
            .iter()
            .all(|x| x.labels.get("pod").map(String::as_str) != Some(PLUGIN_POD)),
        "{layout}: the MPS daemon's pod has pod series"
    );
    for gpu in ["0", "1"] {
        let l = [("gpu", gpu)];
        assert_eq!(
            s.value("gpu_unattributed_memory_bytes", &l),
            Some(SERVER_MEMORY),
            "{layout}"
        );
        assert_eq!(
            s.value("gpu_unattributed_processes", &l),
            Some(1.0),
            "{layout}"
        );
    }
    assert_eq!(s.value("gpu_processes", &[("gpu", "0")]), Some(3.0));
    for f in s.find("gpu_pod_exporter_attribution_failures_total", &[]) {
        assert_eq!(f.value, 0.0, "{layout}: {:?}", f.labels);
    }
}

/// No failed MPS list call was counted.
fn assert_no_mps_list_errors(s: &prom::Samples) {
    assert!(s
        .find(
            "gpu_pod_exporter_driver_call_errors_total",
            &[("call", "mps")]
        )
        .is_empty());
}

fn run(yaml: &str, root: &Path) -> (Agent, prom::Samples) {
    let agent = Agent::with_scenario(yaml).rootfs(root).start();
    let s = agent.scrape_until(WAIT, "every client's memory, and GPM", settled);
    (agent, s)
}

#[test]
fn mps_server_on_the_host() {
    let node = node(Server::OnHost, Some("nvidia-cuda-mps"));
    let (_agent, s) = run(&scenario(""), node.path());
    assert_rule_7(&s, "server on the host");
    assert_no_mps_list_errors(&s);
}

#[test]
fn mps_server_in_the_device_plugins_pod() {
    let node = node(Server::InPod, Some("nvidia-cuda-mps"));
    let (_agent, s) = run(&scenario(""), node.path());
    assert_rule_7(&s, "server in a pod");
}

/// Where the server's name cannot be read, NVML's MPS list tells it (in the compute list, not
/// among the clients); where the MPS list is not supported, the name does.
#[test]
fn either_nvml_or_the_name_tells_the_server() {
    let node_without_comm = node(Server::InPod, None);
    let (_agent, s) = run(&scenario(""), node_without_comm.path());
    assert_rule_7(&s, "server in a pod, no comm");

    let node_with_comm = node(Server::InPod, Some("nvidia-cuda-mps"));
    let no_mps_list = scenario("    errors: {mps: NOT_SUPPORTED}\n");
    let (_agent, s) = run(&no_mps_list, node_with_comm.path());
    assert_rule_7(&s, "MPS list not supported");
    assert_no_mps_list_errors(&s);
}

/// A failing MPS list is counted, never fatal; the name still tells the server.
#[test]
fn a_failing_mps_list_is_counted() {
    let node = node(Server::OnHost, Some("nvidia-cuda-mps"));
    let (agent, _) = run(&scenario("    errors: {mps: UNKNOWN}\n"), node.path());
    let s = agent.scrape_until(WAIT, "the MPS list's error counted", |s| {
        s.value(
            "gpu_pod_exporter_driver_call_errors_total",
            &[("call", "mps"), ("error", "UNKNOWN")],
        )
        .is_some_and(|v| v >= 1.0)
    });
    assert_rule_7(&s, "MPS list failing");
    assert_eq!(s.value("gpu_up", &[("gpu", "0")]), Some(1.0));
}
