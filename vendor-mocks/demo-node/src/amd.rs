//! The AMD demo node (`demo-node --amd`): three MI300X GPUs in sysfs, the DRM fdinfo and KFD
//! files of the pods on them, with load moving in waves, for the exporter's AMD collector.
//!
//! Pods: two vLLM replicas (one GPU each, seen through fdinfo engine time), a ROCm training job
//! (seen through KFD: VRAM and CU occupancy), and a notebook that comes and goes on GPU 0.

use std::collections::HashMap;
use std::f64::consts::TAU;
use std::fmt::Write;
use std::fs;
use std::path::Path;

use anyhow::Context;

use crate::scenario::DemoPod;

/// (PCI address, unique_id, KFD gpu_id, seconds per load wave, phase).
const GPUS: [(&str, &str, u32, f64, f64); 3] = [
    ("0000:19:00.0", "5f1c7a2e9b3d4c61", 41437, 60.0, 0.0),
    ("0000:1a:00.0", "6a2d8b3fac4e5d72", 2271, 90.0, 1.5),
    ("0000:9c:00.0", "0a1b2c3d4e5f6071", 63042, 45.0, 3.0),
];
const VRAM_TOTAL: u64 = 206_158_430_208;
const COMPUTE_UNITS: u64 = 304;

/// The load of GPU `i` at `t`, 0..1.
fn load(i: usize, t: f64) -> f64 {
    let (_, _, _, period, phase) = GPUS[i];
    (0.55 + 0.4 * (TAU * t / period + phase).sin()).clamp(0.0, 1.0)
}

/// The pods at `t`; the notebook runs 40 s of every 120 s.
pub fn pods(t: f64) -> Vec<DemoPod> {
    let pod = |namespace, pod: &str, container, pid, gpus, share, memory| DemoPod {
        namespace,
        pod: pod.to_string(),
        container,
        pid,
        gpus,
        share,
        memory,
    };
    let mut pods = vec![
        pod("llm", "vllm-amd-0", "server", 5001, &[0], 0.85, 150 << 30),
        pod("llm", "vllm-amd-1", "server", 5002, &[1], 0.95, 150 << 30),
        pod(
            "train",
            "rocm-trainer",
            "trainer",
            5003,
            &[2],
            1.0,
            96 << 30,
        ),
    ];
    if t % 120.0 < 40.0 {
        pods.push(pod(
            "notebooks",
            "nb-bob",
            "notebook",
            5004,
            &[0],
            0.1,
            4 << 30,
        ));
    }
    pods
}

/// The sysfs and fdinfo side of the node; engine counters accumulate between updates.
#[derive(Debug, Default)]
pub struct AmdNode {
    busy_ns: HashMap<u32, u64>,
    last_t: f64,
}

impl AmdNode {
    /// Writes the parts that never change: the cards, their links, the KFD topology.
    pub fn new(root: &Path) -> anyhow::Result<AmdNode> {
        let sys = root.join("sys");
        write(&sys.join("bus/pci/drivers/amdgpu/uevent"), "")?;
        write(&sys.join("module/amdgpu/version"), "6.10.5\n")?;
        for (i, (pci, unique_id, gpu_id, _, _)) in GPUS.iter().enumerate() {
            let dev = sys.join(format!("devices/pci0000:00/{pci}"));
            link(&dev.join("driver"), "../../../bus/pci/drivers/amdgpu")?;
            write(&dev.join("device"), "0x74a1\n")?;
            write(&dev.join("unique_id"), &format!("{unique_id}\n"))?;
            write(&dev.join("mem_info_vram_total"), &format!("{VRAM_TOTAL}\n"))?;
            let card = sys.join(format!("class/drm/card{i}"));
            link(
                &card.join("device"),
                &format!("../../../devices/pci0000:00/{pci}"),
            )?;
            let node = sys.join(format!("class/kfd/kfd/topology/nodes/{}", i + 1));
            write(&node.join("gpu_id"), &format!("{gpu_id}\n"))?;
            let (bus, slot) = (&pci[5..7], &pci[8..10]);
            let location =
                (u64::from_str_radix(bus, 16)? << 8) | (u64::from_str_radix(slot, 16)? << 3);
            write(
                &node.join("properties"),
                &format!(
                    "simd_count {}\nsimd_per_cu 4\nlocation_id {location}\ndomain 0\n",
                    COMPUTE_UNITS * 4
                ),
            )?;
        }
        Ok(AmdNode::default())
    }

    /// Writes the GPUs' gauges and the pods' fdinfo and KFD files at `t`.
    pub fn update(&mut self, root: &Path, t: f64, pods: &[DemoPod]) -> anyhow::Result<()> {
        let dt = (t - self.last_t).max(0.0);
        self.last_t = t;
        let sys = root.join("sys");
        for (i, (pci, _, gpu_id, _, _)) in GPUS.iter().enumerate() {
            let on: Vec<&DemoPod> = pods.iter().filter(|p| p.gpus.contains(&i)).collect();
            let busy = on
                .iter()
                .map(|p| p.share * load(i, t))
                .sum::<f64>()
                .min(1.0);
            let used: u64 = on.iter().map(|p| p.memory).sum::<u64>() + (512 << 20);
            let dev = sys.join(format!("devices/pci0000:00/{pci}"));
            write(
                &dev.join("gpu_busy_percent"),
                &format!("{}\n", (busy * 100.0).round()),
            )?;
            write(
                &dev.join("mem_busy_percent"),
                &format!("{}\n", (busy * 40.0).round()),
            )?;
            write(&dev.join("mem_info_vram_used"), &format!("{used}\n"))?;
            let mhz = 500.0 + 1600.0 * busy;
            write(
                &dev.join("pp_dpm_sclk"),
                &format!("0: 500Mhz\n1: {mhz:.0}Mhz *\n2: 2100Mhz\n"),
            )?;
            let hwmon = dev.join(format!("hwmon/hwmon{}", i + 3));
            write(
                &hwmon.join("power1_average"),
                &format!("{}\n", ((140.0 + 600.0 * busy) * 1e6) as u64),
            )?;
            write(
                &hwmon.join("temp1_input"),
                &format!("{}\n", ((38.0 + 40.0 * busy) * 1000.0) as u64),
            )?;
            for p in on {
                let share = p.share * load(i, t);
                let dir = root.join(format!("proc/{}", p.pid));
                write(&dir.join("stat"), &stat(p.pid))?;
                if p.pod == "rocm-trainer" {
                    // ROCm: user-mode queues; KFD shows its VRAM and the CUs its waves occupy.
                    let kfd = sys.join(format!("class/kfd/kfd/proc/{}", p.pid));
                    write(
                        &kfd.join(format!("vram_{gpu_id}")),
                        &format!("{}\n", p.memory),
                    )?;
                    let cus = (share * COMPUTE_UNITS as f64).round() as u64;
                    write(
                        &kfd.join(format!("stats_{gpu_id}/cu_occupancy")),
                        &format!("{cus}\n"),
                    )?;
                    continue;
                }
                let ns = self.busy_ns.entry(p.pid).or_insert(0);
                *ns += (share * dt * 1e9) as u64;
                write(&dir.join("fdinfo/7"), &fdinfo(pci, p, *ns))?;
            }
        }
        // Processes that are gone take their KFD folder with them.
        let kfd_procs = sys.join("class/kfd/kfd/proc");
        if let Ok(entries) = fs::read_dir(&kfd_procs) {
            for e in entries.filter_map(Result::ok) {
                let pid: Option<u32> = e.file_name().to_str().and_then(|n| n.parse().ok());
                if !pids_has(pods, pid) {
                    fs::remove_dir_all(e.path())?;
                }
            }
        }
        self.busy_ns.retain(|pid, _| pids_has(pods, Some(*pid)));
        Ok(())
    }
}

fn pids_has(pods: &[DemoPod], pid: Option<u32>) -> bool {
    pid.is_some_and(|pid| pods.iter().any(|p| p.pid == pid))
}

fn fdinfo(pci: &str, p: &DemoPod, busy_ns: u64) -> String {
    let mut s = format!(
        "pos:\t0\nflags:\t02100002\nmnt_id:\t26\nino:\t1061\ndrm-driver:\tamdgpu\n\
         drm-client-id:\t{}\ndrm-pdev:\t{pci}\n",
        p.pid
    );
    let mib = p.memory >> 20;
    let _ = writeln!(
        s,
        "drm-total-vram:\t{mib} MiB\ndrm-resident-vram:\t{mib} MiB"
    );
    let _ = writeln!(s, "drm-engine-compute:\t{busy_ns} ns");
    s
}

fn stat(pid: u32) -> String {
    format!(
        "{pid} (python3) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 8 0 {} 0 0\n",
        100_000 + pid
    )
}

fn write(path: &Path, content: &str) -> anyhow::Result<()> {
    fs::create_dir_all(path.parent().context("file has a folder")?)?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn link(path: &Path, target: &str) -> anyhow::Result<()> {
    fs::create_dir_all(path.parent().context("link has a folder")?)?;
    if fs::symlink_metadata(path).is_err() {
        std::os::unix::fs::symlink(target, path)
            .with_context(|| format!("linking {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_grow_and_the_notebook_comes_and_goes() {
        let root = std::env::temp_dir().join(format!("amd-demo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let mut node = AmdNode::new(&root).unwrap();
        node.update(&root, 0.0, &pods(0.0)).unwrap();
        node.update(&root, 10.0, &pods(10.0)).unwrap();
        let read = |rel: &str| fs::read_to_string(root.join(rel)).unwrap();
        let busy = |text: &str| -> u64 {
            let line = text
                .lines()
                .find(|l| l.starts_with("drm-engine-compute:"))
                .unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        let first = busy(&read("proc/5001/fdinfo/7"));
        assert!(first > 0);
        assert!(read("sys/class/kfd/kfd/proc/5003/vram_63042").starts_with("103079215104"));
        assert!(pods(10.0).iter().any(|p| p.pod == "nb-bob"));
        assert!(!pods(50.0).iter().any(|p| p.pod == "nb-bob"));
        node.update(&root, 20.0, &pods(20.0)).unwrap();
        assert!(busy(&read("proc/5001/fdinfo/7")) > first);
        fs::remove_dir_all(&root).unwrap();
    }
}
