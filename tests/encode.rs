//! The encoder alone, in process: a hand-built snapshot (every kind of device, pod and error
//! the snapshot can hold) encoded and compared with `tests/golden/encode.prom`, beside the
//! end-to-end goldens that run the agent binary. A change to a family's name, help, labels or
//! order, or to what a down device or an unattributable pod shows, fails here first, with a
//! line diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use gpu_pod_exporter::encode::{Encoder, Format};
use gpu_pod_exporter::pod::{ContainerKey, Failure, PodProfiling, PodSample, Unattributed};
use gpu_pod_exporter::sample::{
    CallError, DeviceDown, DeviceHealth, DeviceIdentity, DeviceMetrics, DeviceSample, ErrorLabel,
    MigIdentity, Profiling, ProfilingSource, ProfilingValues, RemappedRows, Vendor,
};
use gpu_pod_exporter::selfstats::{HttpStats, Rejection, SelfStats};
use gpu_pod_exporter::snapshot::{CollectorSummary, Snapshot, SnapshotStore};

fn identity(gpu: &str, uuid: &str, model: &str, pci: &str) -> DeviceIdentity {
    DeviceIdentity {
        gpu: gpu.into(),
        uuid: uuid.into(),
        model: model.into(),
        pci_bus_id: pci.into(),
        driver_version: "550.54.15".into(),
        mig: None,
    }
}

// Every field is set today; the update keeps the helper compiling as fields are added.
#[allow(clippy::needless_update)]
fn metrics(util: f64, used: f64) -> DeviceMetrics {
    DeviceMetrics {
        utilization_ratio: Some(util),
        memory_bandwidth_utilization_ratio: Some(0.25),
        memory_used_bytes: Some(used),
        memory_total_bytes: Some(85_899_345_920.0),
        power_watts: Some(312.5),
        temperature_celsius: Some(61.0),
        sm_clock_hertz: Some(1_980_000_000.0),
        memory_reserved_bytes: Some(565_182_464.0),
        ..DeviceMetrics::default()
    }
}

/// Four devices: an H100 up with GPM and health, a MIG instance of it, an A100 that timed out
/// (last values kept), an AMD card that failed (no value series); two pods, one failure
/// reason counted, and call errors with agent, driver and unnamed-status labels.
fn snapshot() -> Snapshot {
    let h100 = DeviceSample {
        vendor: Some(Vendor::Nvidia),
        identity: identity("0", "GPU-aaaa", "NVIDIA H100 80GB HBM3", "00000000:19:00.0"),
        metrics: metrics(0.75, 42_949_672_960.0),
        profiling: Some(Profiling {
            source: ProfilingSource::Gpm,
            values: ProfilingValues {
                graphics_active: Some(0.875),
                sm_active: Some(0.5),
                sm_occupancy: Some(0.125),
                tensor_active: Some(0.375),
                dram_active: Some(0.0625),
                fp64_active: Some(0.0),
                fp32_active: Some(0.25),
                fp16_active: Some(0.03125),
            },
        }),
        health: DeviceHealth {
            energy_joules: Some(123_456.5),
            ecc_corrected: Some(3.0),
            ecc_uncorrected: Some(0.0),
            throttled: Some([false, false, true, false, false, false]),
            pcie_transmit_bytes_per_second: Some(1_048_576.0),
            pcie_receive_bytes_per_second: Some(2_097_152.0),
            pcie_replay_errors: Some(1.0),
            nvlink_transmit_bytes: Some(1e9),
            nvlink_receive_bytes: Some(2e9),
            encoder_utilization_ratio: Some(0.0),
            decoder_utilization_ratio: Some(0.5),
            memory_clock_hertz: Some(2_619_000_000.0),
            memory_temperature_celsius: Some(48.0),
            power_limit_watts: Some(700.0),
            remapped_rows: Some(RemappedRows {
                correctable: 3.0,
                uncorrectable: 1.0,
                pending: true,
                failed: false,
            }),
            // The reliability policy not reported: its series is absent.
            throttle_seconds: [Some(1.5), Some(0.25), Some(0.0), Some(0.0), Some(8.0), None],
            xid_errors: vec![(79, 1)],
        },
        per_process_utilization: true,
        ..DeviceSample::default()
    };
    let mig = DeviceSample {
        vendor: Some(Vendor::Nvidia),
        identity: DeviceIdentity {
            mig: Some(MigIdentity {
                parent_uuid: "GPU-aaaa".into(),
                profile: "1g.10gb".into(),
                gpu_instance_id: 1,
                compute_instance_id: 0,
            }),
            ..identity(
                "0:1",
                "MIG-bbbb",
                "NVIDIA H100 80GB HBM3",
                "00000000:19:00.0",
            )
        },
        metrics: DeviceMetrics {
            memory_used_bytes: Some(1_073_741_824.0),
            memory_total_bytes: Some(10_737_418_240.0),
            ..DeviceMetrics::default()
        },
        ..DeviceSample::default()
    };
    let late = DeviceSample {
        vendor: Some(Vendor::Nvidia),
        identity: identity("1", "GPU-cccc", "NVIDIA A100-SXM4-80GB", "00000000:1A:00.0"),
        down: Some(DeviceDown::TimedOut),
        metrics: metrics(0.5, 1_000.0),
        // DCGM's values on a GPU without GPM; a field DCGM left blank is absent.
        profiling: Some(Profiling {
            source: ProfilingSource::Dcgm,
            values: ProfilingValues {
                sm_active: Some(0.25),
                tensor_active: Some(0.125),
                fp16_active: None,
                ..ProfilingValues::default()
            },
        }),
        ..DeviceSample::default()
    };
    let failed = DeviceSample {
        vendor: Some(Vendor::Amd),
        identity: identity("0", "0x1234abcd", "AMD Instinct MI300X", "0000:9c:00.0"),
        down: Some(DeviceDown::Failed(ErrorLabel::DeviceGone)),
        metrics: metrics(0.9, 5.0),
        // A failed device reports no profiling series (nor its info).
        profiling: Some(Profiling {
            source: ProfilingSource::Dcgm,
            values: ProfilingValues {
                sm_active: Some(0.5),
                ..ProfilingValues::default()
            },
        }),
        ..DeviceSample::default()
    };
    let key = |pod: &str, container: &str| ContainerKey {
        namespace: "ml".into(),
        pod: pod.into(),
        container: container.into(),
    };
    let pods = vec![
        PodSample {
            key: key("train-0", "trainer"),
            device: 0,
            utilization_ratio: Some(0.75),
            memory_used_bytes: Some(42_000_000_000.0),
            allocated: true,
            profiling: PodProfiling {
                sm_active_ratio: Some(0.5),
                sm_occupancy_ratio: Some(0.125),
                tensor_active_ratio: Some(0.375),
                dram_active_ratio: Some(0.0625),
            },
        },
        // Allocated but with no figures the agent can know: only `pod_gpu_allocated`.
        PodSample {
            key: key("serve-1", "server"),
            device: 1,
            utilization_ratio: None,
            memory_used_bytes: None,
            allocated: true,
            profiling: PodProfiling::default(),
        },
    ];
    let unattributed = vec![
        Unattributed {
            device: 0,
            processes: 1,
            memory_bytes: Some(949_672_960),
        },
        Unattributed {
            device: 1,
            processes: 0,
            memory_bytes: Some(0),
        },
    ];
    let mut attribution_failures: BTreeMap<Failure, u64> =
        Failure::ALL.iter().map(|f| (*f, 0)).collect();
    attribution_failures.insert(Failure::PodUnknown, 2);
    Snapshot {
        devices: vec![h100, mig, late, failed],
        collectors: vec![
            CollectorSummary {
                name: "amd",
                success: false,
                duration_seconds: 0.004,
            },
            CollectorSummary {
                name: "nvidia",
                success: false,
                duration_seconds: 0.25,
            },
        ],
        call_errors: vec![
            ("amd", CallError::new("sysfs", ErrorLabel::DeviceGone), 3),
            (
                "amd",
                CallError::new("rsmi_dev_ecc_count_get", ErrorLabel::Status(77)),
                1,
            ),
            (
                "nvidia",
                CallError::new("power", ErrorLabel::Driver("UNKNOWN")),
                5,
            ),
        ],
        pods,
        unattributed,
        attribution_failures,
        process: Some(SelfStats {
            cpu_seconds: 1.5,
            resident_memory_bytes: 9_437_184.0,
            virtual_memory_bytes: 104_857_600.0,
            open_fds: 12.0,
            threads: 9.0,
            start_time_seconds: 1_700_000_000.0,
        }),
        ready: true,
        // No build time: the age series moves with the clock, and is left out with it.
        built_at: None,
        interval: std::time::Duration::from_secs(5),
        attribution_seconds: Some(0.0125),
        kubelet_up: Some(false),
    }
}

fn encode(format: Format) -> String {
    let store = Arc::new(SnapshotStore::default());
    store.store(snapshot());
    let http = Arc::new(HttpStats::default());
    let _open = http.opened();
    http.reject(Rejection::HeaderTimeout);
    Encoder::new(store, http).encode(format).unwrap()
}

#[test]
fn a_hand_built_snapshot_encodes_as_the_golden_file() {
    // The version moves with every release: left out, as in the end-to-end goldens.
    let text: String = encode(Format::Text)
        .lines()
        .filter(|l| !l.contains("gpu_pod_exporter_build_info"))
        .map(|l| format!("{l}\n"))
        .collect();
    common::assert_golden("encode.prom", &text);
}

#[test]
fn openmetrics_carries_the_same_samples() {
    let om = encode(Format::OpenMetrics);
    assert!(om.ends_with("# EOF\n"), "{om}");
    let samples = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.replace("_total{", "{").replace("_total ", " "))
            .collect()
    };
    let text = encode(Format::Text);
    let (mut a, mut b) = (samples(&text), samples(&om));
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn the_golden_diff_shows_changed_lines_in_place() {
    let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    let new = "a\nB\nc\nd\ne\nf\ng\nh\nI\nj\n";
    let expected = [
        "@@ golden line 1, actual line 1",
        "  a",
        "- b",
        "+ B",
        "  c",
        "  d",
        "@@ golden line 7, actual line 7",
        "  g",
        "  h",
        "- i",
        "+ I",
        "  j",
    ];
    assert_eq!(common::line_diff(old, new), expected.join("\n"));
    // A line added at the end, with the line counts.
    assert_eq!(
        common::line_diff("a\n", "a\nb\n"),
        "@@ golden line 1, actual line 1\n  a\n+ b\n(1 golden lines, 2 actual)"
    );
}
