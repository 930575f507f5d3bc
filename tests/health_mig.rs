//! Health counters and MIG end to end: every optional field of a contract scenario, MIG
//! instances as devices with pods attributed to them, and an XID event arriving while
//! `/metrics` is being scraped under load.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fake_kubelet::{FakeKubelet, PodSpec};
use common::{prom, Agent, WAIT};

const MIG_PARENT: &str = "GPU-3d9e1c47-2b6a-4f85-a0c3-7e1d9b4f2a60";

/// The mock's health-and-MIG example, with only the first (3 s) XID event so output is stable.
fn scenario() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vendor-mocks/nvml-mock/scenarios/health-and-mig.yaml");
    let s = std::fs::read_to_string(path).unwrap();
    assert!(
        s.contains(", {xid: 48, after_ms: 10000}"),
        "the example scenario changed"
    );
    s.replace(", {xid: 48, after_ms: 10000}", "")
}

fn settled(s: &prom::Samples) -> bool {
    s.value(
        "gpu_pod_exporter_collector_success",
        &[("collector", "nvidia")],
    ) == Some(1.0)
        && s.has("gpu_xid_errors_total")
        && s.value("gpu_sm_active_ratio", &[("gpu", "1:1")]).is_some()
}

#[test]
fn every_health_series_has_the_scenario_values() {
    let agent = Agent::with_scenario(&scenario()).start();
    let s = agent.scrape_until(WAIT, "the XID event and MIG GPM", settled);
    let g0 = [("gpu", "0")];
    assert_eq!(s.value("gpu_energy_joules_total", &g0), Some(123456.789));
    assert_eq!(
        s.value(
            "gpu_ecc_errors_total",
            &[("gpu", "0"), ("type", "corrected")]
        ),
        Some(12.0)
    );
    assert_eq!(
        s.value(
            "gpu_ecc_errors_total",
            &[("gpu", "0"), ("type", "uncorrected")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value("gpu_xid_errors_total", &[("gpu", "0"), ("xid", "79")]),
        Some(1.0)
    );
    assert_eq!(
        s.value("gpu_pcie_transmit_bytes_per_second", &g0),
        Some(1_200_000.0 * 1024.0)
    );
    assert_eq!(
        s.value("gpu_pcie_receive_bytes_per_second", &g0),
        Some(800_000.0 * 1024.0)
    );
    assert_eq!(s.value("gpu_pcie_replay_errors_total", &g0), Some(3.0));
    assert_eq!(
        s.value("gpu_nvlink_transmit_bytes_total", &g0),
        Some(5_368_709_120.0)
    );
    assert_eq!(
        s.value("gpu_nvlink_receive_bytes_total", &g0),
        Some(4_294_967_296.0)
    );
    assert_eq!(s.value("gpu_encoder_utilization_ratio", &g0), Some(0.07));
    assert_eq!(s.value("gpu_decoder_utilization_ratio", &g0), Some(0.12));
    let throttled: Vec<(String, f64)> = s
        .find("gpu_clock_throttled", &g0)
        .iter()
        .map(|x| (x.labels["reason"].clone(), x.value))
        .collect();
    assert_eq!(throttled.len(), 6);
    // What a device does not support is absent, never zero: GPU 1 has no NVLink, encoder or decoder.
    assert_eq!(
        s.value("gpu_nvlink_transmit_bytes_total", &[("gpu", "1")]),
        None
    );
    assert_eq!(
        s.value("gpu_encoder_utilization_ratio", &[("gpu", "1")]),
        None
    );
    assert!(s.find("gpu_xid_errors_total", &[("gpu", "1")]).is_empty());

    let stable: String = s
        .text
        .lines()
        .filter(|l| {
            let l = l
                .trim_start_matches("# HELP ")
                .trim_start_matches("# TYPE ");
            l.starts_with("gpu_") && !l.starts_with("gpu_pod_exporter_")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    common::assert_golden("health-and-mig.prom", &stable);
}

#[test]
fn mig_instances_are_devices_and_keep_the_parent_device_wide() {
    let agent = Agent::with_scenario(&scenario()).start();
    let s = agent.scrape_until(WAIT, "MIG GPM", settled);
    let info = s.find("gpu_info", &[("parent_uuid", MIG_PARENT)]);
    let mut gpus: Vec<&str> = info.iter().map(|i| i.labels["gpu"].as_str()).collect();
    gpus.sort();
    assert_eq!(gpus, ["1:1", "1:13", "1:5"]);
    let i1 = s.find("gpu_info", &[("gpu", "1:1")])[0];
    assert_eq!(
        i1.labels["uuid"],
        "MIG-7c2e9a10-4b3d-5f61-8e0a-1d2c3b4a5f60"
    );
    assert_eq!(i1.labels["mig_profile"], "3g.40gb");
    assert_eq!(
        s.value("gpu_memory_total_bytes", &[("gpu", "1:5")]),
        Some(20401094656.0)
    );
    assert_eq!(
        s.value("gpu_memory_used_bytes", &[("gpu", "1:1")]),
        Some(30e9)
    );
    assert_eq!(
        s.value("gpu_sm_active_ratio", &[("gpu", "1:5")]),
        Some(0.25)
    );
    assert_eq!(s.value("gpu_processes", &[("gpu", "1:1")]), Some(2.0));
    // The parent keeps power, temperature and its health counters; its processes live on the instances.
    assert_eq!(s.value("gpu_power_watts", &[("gpu", "1")]), Some(280.0));
    assert_eq!(s.value("gpu_processes", &[("gpu", "1")]), Some(0.0));
    assert_eq!(s.value("gpu_utilization_ratio", &[("gpu", "1")]), None);
}

/// A MIG reconfiguration that removes an instance is not a failure: the instance's series go,
/// they are not `gpu_up 0` (only physical GPUs that leave the list are reported down).
#[test]
fn mig_instances_removed_by_a_reconfiguration_go() {
    let agent = Agent::with_scenario(&scenario()).start();
    agent.scrape_until(WAIT, "MIG GPM", settled);
    let full = scenario();
    let start = full.find("      - uuid: MIG-1e8f4d22").unwrap();
    let end = start + 1 + full[start + 1..].find("      - uuid: MIG-").unwrap();
    let fewer = format!("{}{}", &full[..start], &full[end..]);
    agent.set_scenario(&fewer);
    let s = agent.scrape_until(WAIT, "instance 1:5 gone", |s| {
        s.find("gpu_info", &[("gpu", "1:5")]).is_empty()
            && s.value("gpu_up", &[("gpu", "1:1")]) == Some(1.0)
    });
    assert!(s.find("gpu_up", &[("gpu", "1:5")]).is_empty());
    assert_eq!(s.value("gpu_up", &[("gpu", "1")]), Some(1.0));
    assert!(!agent.log_text().contains("GPU left NVML's device list"));
}

#[test]
fn pods_on_mig_instances_are_attributed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    // Pod mig-a runs two processes in one container on instance 1:1; mig-b one on 1:5.
    let pods = [
        (
            "mig-a",
            "11111111-2222-4333-8444-555555555555",
            'a',
            &[5001u32, 5002][..],
        ),
        (
            "mig-b",
            "66666666-7777-4888-8999-aaaaaaaaaaaa",
            'b',
            &[5101][..],
        ),
    ];
    for (pod, uid, c, pids) in pods {
        let cid = c.to_string().repeat(64);
        std::fs::create_dir_all(root.join(format!("var/log/pods/ml_{pod}_{uid}/main"))).unwrap();
        std::fs::create_dir_all(root.join("var/log/containers")).unwrap();
        std::os::unix::fs::symlink(
            format!("/var/log/pods/ml_{pod}_{uid}/main/0.log"),
            root.join(format!("var/log/containers/{pod}_ml_main-{cid}.log")),
        )
        .unwrap();
        for pid in pids {
            std::fs::create_dir_all(root.join(format!("proc/{pid}"))).unwrap();
            std::fs::write(
                root.join(format!("proc/{pid}/cgroup")),
                format!("0::/kubepods/burstable/pod{uid}/{cid}\n"),
            )
            .unwrap();
        }
    }
    let kubelet = FakeKubelet::start_at(root.join("var/lib/kubelet/pod-resources/kubelet.sock"));
    kubelet.set_pods(vec![
        // The NVIDIA device plugin's two MIG spellings, and one instance allocated but idle.
        PodSpec::new("ml", "mig-a").container(
            "main",
            &[(
                "nvidia.com/mig-3g.40gb",
                &["MIG-7c2e9a10-4b3d-5f61-8e0a-1d2c3b4a5f60"],
            )],
        ),
        PodSpec::new("ml", "mig-b").container(
            "main",
            &[(
                "nvidia.com/mig-2g.20gb",
                &[&format!("MIG-{MIG_PARENT}/5/0")],
            )],
        ),
        PodSpec::new("ml", "mig-c").container(
            "main",
            &[(
                "nvidia.com/mig-1g.10gb",
                &["MIG-a4b5c6d7-e8f9-5a0b-9c1d-2e3f4a5b6c7d"],
            )],
        ),
    ]);
    let agent = Agent::with_scenario(&scenario()).rootfs(&root).start();
    let s = agent.scrape_until(WAIT, "three MIG pods with ratios", |s| {
        settled(s)
            && s.find("pod_gpu_allocated", &[]).len() == 3
            && s.find("pod_gpu_utilization_ratio", &[]).len() == 3
            && s.find("pod_gpu_tensor_active_ratio", &[]).len() == 3
    });
    let a = [
        ("pod", "mig-a"),
        ("gpu", "1:1"),
        ("uuid", "MIG-7c2e9a10-4b3d-5f61-8e0a-1d2c3b4a5f60"),
    ];
    // Alone on its instance, no per-process data on MIG: the instance's SM activity.
    assert_eq!(s.value("pod_gpu_utilization_ratio", &a), Some(0.7));
    assert_eq!(s.value("pod_gpu_memory_used_bytes", &a), Some(30e9));
    assert_eq!(s.value("pod_gpu_allocated", &a), Some(1.0));
    assert_eq!(
        s.value(
            "pod_gpu_utilization_ratio",
            &[("pod", "mig-b"), ("gpu", "1:5")]
        ),
        Some(0.25)
    );
    assert_eq!(
        s.value("pod_gpu_allocated", &[("pod", "mig-b"), ("gpu", "1:5")]),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "pod_gpu_utilization_ratio",
            &[("pod", "mig-c"), ("gpu", "1:13")]
        ),
        Some(0.0)
    );
    // GPM per instance, on the instance's own scale: each pod holds its instance alone.
    let gpm = |pod: &str, gpu: &str| {
        [
            "pod_gpu_sm_active_ratio",
            "pod_gpu_sm_occupancy_ratio",
            "pod_gpu_tensor_active_ratio",
            "pod_gpu_dram_active_ratio",
        ]
        .map(|m| s.value(m, &[("pod", pod), ("gpu", gpu)]))
    };
    assert_eq!(
        gpm("mig-a", "1:1"),
        [Some(0.7), Some(0.5), Some(0.4), Some(0.6)]
    );
    assert_eq!(
        gpm("mig-b", "1:5"),
        [Some(0.25), Some(0.2), Some(0.1), Some(0.15)]
    );
    // Allocated, nothing running yet, alone on its instance: the idle instance's values.
    assert_eq!(gpm("mig-c", "1:13"), [Some(0.0); 4]);
    // Nothing is attributed to the parent.
    assert!(s
        .find("pod_gpu_memory_used_bytes", &[("gpu", "1")])
        .is_empty());
    assert_eq!(
        s.value(
            "gpu_pod_exporter_attribution_failures_total",
            &[("reason", "device_unknown")]
        ),
        Some(0.0)
    );
}

#[test]
fn an_xid_event_arrives_while_metrics_is_scraped_under_load() {
    let scenario = scenario().replace("{xid: 79, after_ms: 3000}", "{xid: 79, after_ms: 1500}");
    let agent = Arc::new(Agent::with_scenario(&scenario).start());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (agent, stop) = (Arc::clone(&agent), Arc::clone(&stop));
        load.push(std::thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                assert_eq!(agent.get("/metrics", &[]).status, 200);
                slowest = slowest.max(t.elapsed());
                n += 1;
            }
            (n, slowest)
        }));
    }
    agent.scrape_until(WAIT, "the XID event", |s| {
        s.value("gpu_xid_errors_total", &[("gpu", "0"), ("xid", "79")]) == Some(1.0)
    });
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for h in load {
        let (n, slowest) = h.join().unwrap();
        total += n;
        assert!(
            slowest < Duration::from_millis(500),
            "a scrape took {slowest:?}"
        );
    }
    assert!(total > 20, "only {total} scrapes under load");
    // Sampling goes on (a cycle may still time out now and then on a loaded 2-core machine,
    // so wait for a good one rather than asserting on the moment of the event).
    agent.scrape_until(WAIT, "a successful cycle after the event", |s| {
        s.value(
            "gpu_pod_exporter_collector_success",
            &[("collector", "nvidia")],
        ) == Some(1.0)
    });
    // Delivered once.
    std::thread::sleep(Duration::from_secs(1));
    let s = prom::parse(&agent.scrape());
    assert_eq!(
        s.value("gpu_xid_errors_total", &[("gpu", "0"), ("xid", "79")]),
        Some(1.0)
    );
}
