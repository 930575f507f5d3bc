//! The demo node at time `t`: five GPUs of three models, the pods on them, and the mock NVML
//! scenario that matches. Loads move in waves; one GPU falls off the bus now and then; a batch
//! job comes and goes.
//!
//! Pods: two vLLM replicas (one H200 each, held alone), a training job whose one process spans
//! two GPUs, two notebooks time-slicing the L4 with a batch job that comes and goes, and a host
//! daemon outside any pod (on the L4). A replica's load is its share of its server's capacity;
//! its GPU's utilization, GPM figures and power follow that share along the curve measured on a
//! real H200 under a decode-shaped load ([`h200_decode`]).

use std::fmt::Write;

/// A container with one GPU process.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPod {
    pub namespace: &'static str,
    pub pod: String,
    pub container: &'static str,
    pub pid: u32,
    /// GPUs the process runs on.
    pub gpus: &'static [usize],
    /// Share of each of its GPUs' load, 0..1.
    pub share: f64,
    pub memory: u64,
}

impl DemoPod {
    /// A stable pod UID derived from the pod's name.
    pub fn uid(&self) -> String {
        let h = fnv(&self.pod);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (h >> 32) as u32,
            (h >> 16) as u16,
            (h & 0xfff) as u16,
            ((h >> 12) & 0xfff) as u16,
            h & 0xffff_ffff_ffff
        )
    }

    /// A stable 64-hex container ID derived from the pod's name.
    pub fn container_id(&self) -> String {
        (0..4)
            .map(|i| format!("{:016x}", fnv(&format!("{}/{i}", self.pod))))
            .collect()
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

struct Gpu {
    uuid: &'static str,
    name: &'static str,
    pci: &'static str,
    memory_total: u64,
    max_power_mw: f64,
    /// Runs a vLLM replica: GPM, and utilization, GPM and power from [`h200_decode`] at its
    /// load. The other GPUs have no GPM and follow their wave directly.
    decode: bool,
    process_utilization: &'static str,
    /// Seconds per load wave, and where in the wave the GPU starts.
    period: f64,
    phase: f64,
    flaky: bool,
}

const GPUS: &[Gpu] = &[
    Gpu {
        uuid: "GPU-0b7f3c2e-1a4d-4c55-9e1e-6b1f0c2d3e4f",
        name: "NVIDIA H200",
        pci: "00000000:18:00.0",
        memory_total: 150_754_820_096,
        max_power_mw: 700_000.0,
        decode: true,
        process_utilization: "supported",
        period: 60.0,
        phase: 0.0,
        flaky: false,
    },
    Gpu {
        uuid: "GPU-6a1e2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b",
        name: "NVIDIA H200",
        pci: "00000000:2A:00.0",
        memory_total: 150_754_820_096,
        max_power_mw: 700_000.0,
        decode: true,
        process_utilization: "supported",
        period: 45.0,
        phase: 1.5,
        flaky: false,
    },
    Gpu {
        uuid: "GPU-3c4d5e6f-7081-4a92-b3c4-d5e6f7081920",
        name: "NVIDIA A100-SXM4-40GB",
        pci: "00000000:3B:00.0",
        memory_total: 42_949_672_960,
        max_power_mw: 400_000.0,
        decode: false,
        process_utilization: "not_supported",
        period: 90.0,
        phase: 3.0,
        flaky: false,
    },
    Gpu {
        uuid: "GPU-4d5e6f70-8192-4ab3-c4d5-e6f708192a3b",
        name: "NVIDIA A100-SXM4-40GB",
        pci: "00000000:3C:00.0",
        memory_total: 42_949_672_960,
        max_power_mw: 400_000.0,
        decode: false,
        process_utilization: "not_supported",
        period: 90.0,
        phase: 3.2,
        flaky: false,
    },
    Gpu {
        uuid: "GPU-9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4",
        name: "NVIDIA L4",
        pci: "00000000:86:00.0",
        memory_total: 24_152_899_584,
        max_power_mw: 72_000.0,
        decode: false,
        process_utilization: "supported",
        period: 30.0,
        phase: 0.7,
        flaky: true,
    },
];

/// The host daemon's pid: on the L4 (GPU 4), outside any pod. (Not beside a vLLM replica: a
/// replica that holds its GPU alone gets the GPU's GPM figures as its own.)
pub const HOST_PID: u32 = 999;
const HOST_GPU: usize = 4;

/// One point of a decode server's GPU figures at a share of its capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decode {
    /// Share of the server's capacity (tokens per second over the most it can do), 0..1.
    pub share: f64,
    /// NVML utilization, GPM SM active, SM occupancy, tensor active, DRAM active (0..1).
    pub utilization: f64,
    pub sm_active: f64,
    pub sm_occupancy: f64,
    pub tensor_active: f64,
    pub dram_active: f64,
    pub power_watts: f64,
}

const fn point(
    share: f64,
    utilization: f64,
    sm_active: f64,
    sm_occupancy: f64,
    tensor_active: f64,
    dram_active: f64,
    power_watts: f64,
) -> Decode {
    Decode {
        share,
        utilization,
        sm_active,
        sm_occupancy,
        tensor_active,
        dram_active,
        power_watts,
    }
}

/// Measured on one H200 (driver 580.159.04) under a decoder-shaped load (8 layers, d=4096,
/// bf16, one decode step per sync) at batch sizes 1, 4, 16, 64 and 256, and idle: means over
/// six scrapes of the agent per phase.
pub const H200_DECODE: [Decode; 6] = [
    point(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 123.0),
    point(0.03, 0.63, 0.39, 0.054, 0.015, 0.37, 337.0),
    point(0.12, 0.70, 0.44, 0.062, 0.017, 0.41, 371.0),
    point(0.41, 0.89, 0.69, 0.097, 0.038, 0.64, 513.0),
    point(0.78, 0.97, 0.83, 0.123, 0.072, 0.77, 619.0),
    point(1.0, 0.975, 0.92, 0.140, 0.094, 0.84, 670.0),
];

/// The H200's figures at `share` of a decode server's capacity, interpolated linearly between
/// the measured points (clamped to 0..1).
pub fn h200_decode(share: f64) -> Decode {
    let share = share.clamp(0.0, 1.0);
    let mut lo = H200_DECODE[0];
    for hi in H200_DECODE {
        if share <= hi.share {
            let f = if hi.share > lo.share {
                (share - lo.share) / (hi.share - lo.share)
            } else {
                0.0
            };
            // Exact at both ends of the segment.
            let at = |a: f64, b: f64| a * (1.0 - f) + b * f;
            return Decode {
                share,
                utilization: at(lo.utilization, hi.utilization),
                sm_active: at(lo.sm_active, hi.sm_active),
                sm_occupancy: at(lo.sm_occupancy, hi.sm_occupancy),
                tensor_active: at(lo.tensor_active, hi.tensor_active),
                dram_active: at(lo.dram_active, hi.dram_active),
                power_watts: at(lo.power_watts, hi.power_watts),
            };
        }
        lo = hi;
    }
    lo
}

/// The pods on the node at time `t`.
pub fn pods(t: f64) -> Vec<DemoPod> {
    let mut v = vec![
        DemoPod {
            namespace: "llm",
            pod: "vllm-7d9f8b6c5d-x2x9k".into(),
            container: "vllm",
            pid: 4242,
            gpus: &[0],
            share: 0.95,
            memory: 60_000_000_000,
        },
        DemoPod {
            namespace: "llm",
            pod: "vllm-7d9f8b6c5d-q8m4z".into(),
            container: "vllm",
            pid: 5151,
            gpus: &[1],
            share: 0.95,
            memory: 60_000_000_000,
        },
        DemoPod {
            namespace: "ml",
            pod: "trainer-0".into(),
            container: "pytorch",
            pid: 6060,
            gpus: &[2, 3],
            share: 1.0,
            memory: 30_000_000_000,
        },
        DemoPod {
            namespace: "research",
            pod: "notebook-alice".into(),
            container: "jupyter",
            pid: 7070,
            gpus: &[4],
            share: 0.3,
            memory: 6_000_000_000,
        },
        DemoPod {
            namespace: "research",
            pod: "notebook-bob".into(),
            container: "jupyter",
            pid: 7171,
            gpus: &[4],
            share: 0.2,
            memory: 4_000_000_000,
        },
    ];
    // A batch job runs for 30 s of every minute, a new pod each time.
    if t % 60.0 < 30.0 {
        let n = (t / 60.0) as u64;
        v.push(DemoPod {
            namespace: "batch",
            pod: format!("embed-job-{n}-abcde"),
            container: "embed",
            pid: 8000 + (n % 1000) as u32,
            gpus: &[4],
            share: 0.4,
            memory: 3_000_000_000,
        });
    }
    v
}

/// A load between 0.05 and 0.95 that moves in a wave.
fn load(t: f64, period: f64, phase: f64) -> f64 {
    let w = (t / period * std::f64::consts::TAU + phase).sin();
    0.5 + 0.45 * w
}

/// GPU `i`'s load at time `t`: for a vLLM replica's GPU, the replica's share of its capacity.
pub fn gpu_load(t: f64, i: usize) -> f64 {
    GPUS.get(i).map_or(0.0, |g| load(t, g.period, g.phase))
}

/// The mock NVML scenario at time `t`, with the processes of `pods`.
pub fn render(t: f64, pods: &[DemoPod]) -> String {
    let mut y = String::from("driver_version: \"550.54.15\"\ninit_error: null\ndevices:\n");
    for (i, g) in GPUS.iter().enumerate() {
        let l = gpu_load(t, i);
        let decode = g.decode.then(|| h200_decode(l));
        let util = (decode.map_or(l, |d| d.utilization) * 100.0).round();
        let on: Vec<&DemoPod> = pods.iter().filter(|p| p.gpus.contains(&i)).collect();
        let host_mem = if i == HOST_GPU { 300_000_000 } else { 0 };
        let used: u64 = on.iter().map(|p| p.memory).sum::<u64>() + host_mem;
        let _ = writeln!(y, "  - uuid: {}", g.uuid);
        let _ = writeln!(y, "    name: {}", g.name);
        let _ = writeln!(y, "    pci_bus_id: \"{}\"", g.pci);
        let _ = writeln!(y, "    memory_total_bytes: {}", g.memory_total);
        let _ = writeln!(y, "    memory_used_bytes: {}", used.min(g.memory_total));
        let _ = writeln!(y, "    utilization_gpu_percent: {util}");
        let _ = writeln!(y, "    utilization_memory_percent: {}", (l * 55.0).round());
        let power_mw = decode.map_or(g.max_power_mw * (0.15 + 0.8 * l), |d| {
            d.power_watts * 1000.0
        });
        let _ = writeln!(y, "    power_milliwatts: {}", power_mw.round());
        let _ = writeln!(y, "    temperature_celsius: {}", (35.0 + 40.0 * l).round());
        let _ = writeln!(y, "    sm_clock_mhz: {}", if l > 0.1 { 1980 } else { 345 });
        let _ = writeln!(y, "    process_utilization: {}", g.process_utilization);
        if let Some(d) = decode {
            let _ = writeln!(y, "    gpm: {{sm_active: {:.4}, sm_occupancy: {:.4}, tensor_active: {:.4}, dram_active: {:.4}}}", d.sm_active, d.sm_occupancy, d.tensor_active, d.dram_active);
        } else {
            let _ = writeln!(y, "    gpm: null");
        }
        let _ = writeln!(y, "    processes:");
        if i == HOST_GPU {
            let _ = writeln!(y, "      - {{pid: {HOST_PID}, used_memory_bytes: {host_mem}, sm_util_percent: 1, mem_util_percent: 0}}");
        }
        for p in &on {
            let sm = (util * p.share).round();
            let _ = writeln!(y, "      - {{pid: {}, used_memory_bytes: {}, sm_util_percent: {sm}, mem_util_percent: {}}}", p.pid, p.memory, (sm * 0.5).round());
        }
        if i != HOST_GPU && on.is_empty() {
            y.truncate(y.len() - "    processes:\n".len());
            let _ = writeln!(y, "    processes: []");
        }
        // The flaky GPU falls off the bus for 10 s of every minute.
        if g.flaky && t % 60.0 >= 50.0 {
            let _ = writeln!(y, "    errors: {{utilization: GPU_IS_LOST}}");
        } else {
            let _ = writeln!(y, "    errors: {{}}");
        }
        let _ = writeln!(y, "    delays_ms: {{}}");
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_stays_in_range_and_moves() {
        for i in 0..600 {
            let l = load(f64::from(i) * 0.5, 60.0, 0.3);
            assert!((0.05..=0.95).contains(&l));
        }
        assert_ne!(render(0.0, &pods(0.0)), render(7.0, &pods(7.0)));
        assert!(render(55.0, &pods(55.0)).contains("GPU_IS_LOST"));
        assert!(!render(5.0, &pods(5.0)).contains("GPU_IS_LOST"));
    }

    /// The curve passes through every measured point, and moves linearly between them.
    #[test]
    fn the_h200_curve_interpolates_the_measurements() {
        for p in H200_DECODE {
            assert_eq!(h200_decode(p.share), p);
        }
        // Half way from 41 % to 78 % of capacity.
        let d = h200_decode(0.595);
        assert!((d.tensor_active - 0.055).abs() < 1e-12, "{d:?}");
        assert!((d.sm_active - 0.76).abs() < 1e-12, "{d:?}");
        assert!((d.utilization - 0.93).abs() < 1e-12, "{d:?}");
        // Idle is all 0; out of range is clamped.
        assert_eq!(h200_decode(-1.0), H200_DECODE[0]);
        assert_eq!(h200_decode(2.0).tensor_active, 0.094);
        // Every figure rises with the load.
        let mut last = h200_decode(0.0);
        for i in 1..=1000 {
            let d = h200_decode(f64::from(i) / 1000.0);
            for (a, b) in [
                (last.utilization, d.utilization),
                (last.sm_active, d.sm_active),
                (last.sm_occupancy, d.sm_occupancy),
                (last.tensor_active, d.tensor_active),
                (last.dram_active, d.dram_active),
                (last.power_watts, d.power_watts),
            ] {
                assert!(b >= a, "{last:?} -> {d:?}");
            }
            last = d;
        }
    }

    /// The vLLM replicas' GPUs write the curve's figures at their load; the busier one's are
    /// higher.
    #[test]
    fn replica_gpus_follow_the_curve() {
        for t in [0.0, 20.0] {
            let y = render(t, &pods(t));
            let tensor: Vec<f64> = y
                .lines()
                .filter_map(|l| l.split("tensor_active: ").nth(1))
                .map(|v| {
                    v.trim_end_matches('}')
                        .split(',')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap()
                })
                .collect();
            assert_eq!(tensor.len(), 2, "{y}");
            for (i, v) in tensor.iter().enumerate() {
                assert!((v - h200_decode(gpu_load(t, i)).tensor_active).abs() < 1e-4);
            }
            let busier = usize::from(gpu_load(t, 1) > gpu_load(t, 0));
            assert!(tensor[busier] > tensor[1 - busier], "t={t}: {tensor:?}");
        }
        // At t = 0 the replica on GPU 1 is the busier, at t = 20 the one on GPU 0.
        assert!(gpu_load(0.0, 1) > gpu_load(0.0, 0) + 0.4);
        assert!(gpu_load(20.0, 0) > gpu_load(20.0, 1) + 0.4);
    }

    #[test]
    fn pods_come_and_go_with_stable_ids() {
        assert_eq!(pods(10.0).len(), 6);
        assert_eq!(pods(40.0).len(), 5);
        assert_ne!(pods(10.0)[5].pod, pods(70.0)[5].pod);
        let p = &pods(0.0)[0];
        assert_eq!(p.uid(), pods(99.0)[0].uid());
        assert_eq!(p.uid().len(), 36);
        assert_eq!(p.container_id().len(), 64);
    }
}
