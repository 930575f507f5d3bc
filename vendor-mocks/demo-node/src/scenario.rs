//! The demo node's mock NVML scenario at time `t`: four GPUs of three models whose load moves
//! in waves, and one (the L4) that falls off the bus for 10 s of every 60.

use std::fmt::Write;

struct Gpu {
    uuid: &'static str,
    name: &'static str,
    pci: &'static str,
    memory_total: u64,
    max_power_mw: f64,
    gpm: bool,
    process_utilization: &'static str,
    /// (pid, share of the device's load, memory in bytes)
    processes: &'static [(u32, f64, u64)],
    /// Seconds per load wave, and where in the wave the GPU starts.
    period: f64,
    phase: f64,
    flaky: bool,
}

const GPUS: &[Gpu] = &[
    Gpu {
        uuid: "GPU-0b7f3c2e-1a4d-4c55-9e1e-6b1f0c2d3e4f",
        name: "NVIDIA H100 80GB HBM3",
        pci: "00000000:18:00.0",
        memory_total: 85_520_809_984,
        max_power_mw: 700_000.0,
        gpm: true,
        process_utilization: "supported",
        processes: &[(4242, 0.7, 30_000_000_000), (4243, 0.3, 12_000_000_000)],
        period: 60.0,
        phase: 0.0,
        flaky: false,
    },
    Gpu {
        uuid: "GPU-6a1e2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b",
        name: "NVIDIA H100 80GB HBM3",
        pci: "00000000:2A:00.0",
        memory_total: 85_520_809_984,
        max_power_mw: 700_000.0,
        gpm: true,
        process_utilization: "supported",
        processes: &[(5151, 1.0, 71_000_000_000)],
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
        gpm: false,
        process_utilization: "supported",
        processes: &[(6060, 1.0, 20_000_000_000)],
        period: 90.0,
        phase: 3.0,
        flaky: false,
    },
    Gpu {
        uuid: "GPU-9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4",
        name: "NVIDIA L4",
        pci: "00000000:86:00.0",
        memory_total: 24_152_899_584,
        max_power_mw: 72_000.0,
        gpm: false,
        process_utilization: "not_supported",
        processes: &[(7070, 1.0, 8_000_000_000)],
        period: 30.0,
        phase: 0.7,
        flaky: true,
    },
];

/// A load between 0.05 and 0.95 that moves in a wave.
fn load(t: f64, period: f64, phase: f64) -> f64 {
    let w = (t / period * std::f64::consts::TAU + phase).sin();
    0.5 + 0.45 * w
}

pub fn render(t: f64) -> String {
    let mut y = String::from("driver_version: \"550.54.15\"\ninit_error: null\ndevices:\n");
    for g in GPUS {
        let l = load(t, g.period, g.phase);
        let util = (l * 100.0).round() as u32;
        let used: u64 = g.processes.iter().map(|p| p.2).sum();
        let _ = writeln!(y, "  - uuid: {}", g.uuid);
        let _ = writeln!(y, "    name: {}", g.name);
        let _ = writeln!(y, "    pci_bus_id: \"{}\"", g.pci);
        let _ = writeln!(y, "    memory_total_bytes: {}", g.memory_total);
        let _ = writeln!(y, "    memory_used_bytes: {used}");
        let _ = writeln!(y, "    utilization_gpu_percent: {util}");
        let _ = writeln!(y, "    utilization_memory_percent: {}", (l * 55.0).round());
        let _ = writeln!(
            y,
            "    power_milliwatts: {}",
            (g.max_power_mw * (0.15 + 0.8 * l)).round()
        );
        let _ = writeln!(y, "    temperature_celsius: {}", (35.0 + 40.0 * l).round());
        let _ = writeln!(y, "    sm_clock_mhz: {}", if l > 0.1 { 1980 } else { 345 });
        let _ = writeln!(y, "    process_utilization: {}", g.process_utilization);
        if g.gpm {
            let _ = writeln!(
                y,
                "    gpm: {{sm_active: {:.3}, sm_occupancy: {:.3}, tensor_active: {:.3}, dram_active: {:.3}}}",
                l * 0.95,
                l * 0.6,
                l * 0.7,
                l * 0.5
            );
        } else {
            let _ = writeln!(y, "    gpm: null");
        }
        let _ = writeln!(y, "    processes:");
        for (pid, share, mem) in g.processes {
            let sm = (f64::from(util) * share).round();
            let _ = writeln!(
                y,
                "      - {{pid: {pid}, used_memory_bytes: {mem}, sm_util_percent: {sm}, mem_util_percent: {}}}",
                (sm * 0.5).round()
            );
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
        assert_ne!(render(0.0), render(7.0));
        assert!(render(55.0).contains("GPU_IS_LOST"));
        assert!(!render(5.0).contains("GPU_IS_LOST"));
    }
}
