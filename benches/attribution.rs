//! Attribution cost per sample: 2,048 GPU processes across 16 GPUs on a generated fake node
//! (one pod per process, cgroup v2 + systemd + containerd), with and without per-process
//! utilization. Prints figures; asserts nothing. Run: `cargo bench --bench attribution`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use gpu_pod_exporter::attribute::attribute;
use gpu_pod_exporter::attribute::names::NodeNames;
use gpu_pod_exporter::attribute::podresources::{ContainerDevices, KubeletView};
use gpu_pod_exporter::sample::{DeviceIdentity, DeviceMetrics, DeviceSample, GpuProcess, Vendor};

const GPUS: usize = 16;
const PROCESSES: usize = 2048;

fn uid(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-{i:012x}")
}

fn cid(i: usize) -> String {
    format!("{i:064x}")
}

fn build_node(root: &Path) {
    fs::create_dir_all(root.join("var/log/containers")).unwrap();
    for i in 0..PROCESSES {
        let (u, c, pid) = (uid(i), cid(i), 10_000 + i);
        let pod = format!("worker-{i}");
        fs::create_dir_all(root.join(format!("var/log/pods/bench_{pod}_{u}/main"))).unwrap();
        std::os::unix::fs::symlink(
            format!("/var/log/pods/bench_{pod}_{u}/main/0.log"),
            root.join(format!("var/log/containers/{pod}_bench_main-{c}.log")),
        )
        .unwrap();
        fs::create_dir_all(root.join(format!("proc/{pid}"))).unwrap();
        fs::write(
            root.join(format!("proc/{pid}/cgroup")),
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{c}.scope\n",
                u.replace('-', "_")
            ),
        )
        .unwrap();
        // Read too, to tell an MPS server (rule 7).
        fs::write(root.join(format!("proc/{pid}/comm")), "python3\n").unwrap();
    }
}

fn devices(per_process: bool) -> Vec<DeviceSample> {
    (0..GPUS)
        .map(|g| DeviceSample {
            vendor: Some(Vendor::Nvidia),
            identity: DeviceIdentity {
                gpu: g.to_string(),
                uuid: format!("GPU-{g:08x}-0000-4000-8000-000000000000"),
                ..DeviceIdentity::default()
            },
            metrics: DeviceMetrics {
                utilization_ratio: Some(0.9),
                ..DeviceMetrics::default()
            },
            processes: (0..PROCESSES / GPUS)
                .map(|j| GpuProcess {
                    pid: (10_000 + g * (PROCESSES / GPUS) + j) as u32,
                    used_memory_bytes: Some(1 << 20),
                    sm_utilization_ratio: per_process.then_some(0.001),
                    ..GpuProcess::default()
                })
                .collect(),
            per_process_utilization: per_process,
            health: Default::default(),
            profiling: None,
            down: None,
        })
        .collect()
}

fn kubelet() -> KubeletView {
    KubeletView {
        allocations: (0..PROCESSES)
            .map(|i| ContainerDevices {
                namespace: "bench".into(),
                pod: format!("worker-{i}"),
                container: "main".into(),
                resource_name: "nvidia.com/gpu".into(),
                device_ids: vec![format!(
                    "GPU-{:08x}-0000-4000-8000-000000000000::{}",
                    i / (PROCESSES / GPUS),
                    i % (PROCESSES / GPUS)
                )],
            })
            .collect(),
        ..KubeletView::default()
    }
}

fn measure(name: &str, mut f: impl FnMut()) {
    for _ in 0..3 {
        f();
    }
    let mut times = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end || times.len() < 10 {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name:<58} median {:>7.2} ms  p90 {:>7.2} ms  ({} runs)",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        times.len()
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    build_node(root);
    let procfs = root.join("proc");
    let (pods, ctrs) = (root.join("var/log/pods"), root.join("var/log/containers"));
    let kubelet = kubelet();
    println!("attribution: {PROCESSES} GPU processes in {PROCESSES} pods across {GPUS} GPUs");
    measure("read log folders (NodeNames::read)", || {
        std::hint::black_box(NodeNames::read(&pods, &ctrs));
    });
    let names = NodeNames::read(&pods, &ctrs);
    for per_process in [true, false] {
        let devs = devices(per_process);
        measure(
            &format!("attribute, per-process utilization {per_process}, no kubelet"),
            || {
                std::hint::black_box(attribute(&devs, &procfs, &names, &KubeletView::default()));
            },
        );
        measure(
            &format!("attribute, per-process utilization {per_process}, {PROCESSES} allocations"),
            || {
                std::hint::black_box(attribute(&devs, &procfs, &names, &kubelet));
            },
        );
    }
    let devs = devices(true);
    measure(
        "whole stage per sample (read names + attribute + allocations)",
        || {
            let names = NodeNames::read(&pods, &ctrs);
            std::hint::black_box(attribute(&devs, &procfs, &names, &kubelet));
        },
    );
}
