//! Encoding: turns the current snapshot into Prometheus text or OpenMetrics. Never samples.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::pod::{PodProfiling, PodSample};
use crate::sample::{
    DeviceDown, DeviceHealth, DeviceMetrics, DeviceSample, ProfilingValues, THROTTLE_REASONS,
};
use crate::selfstats::HttpStats;
use crate::snapshot::{Snapshot, SnapshotStore};

mod agent;
mod limits;

/// The exposition formats a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4, the default.
    Text,
    /// OpenMetrics 1.0 text, when the scrape's `Accept` header prefers it.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Encodes the latest snapshot; one registry, built once, serves every scrape.
#[derive(Debug)]
pub struct Encoder {
    registry: Registry,
}

impl Encoder {
    /// An encoder of `store`'s snapshots, with the HTTP server's own figures from `http`.
    pub fn new(store: Arc<SnapshotStore>, http: Arc<HttpStats>) -> Encoder {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector { store, http }));
        Encoder { registry }
    }

    /// The whole exposition in `format`.
    pub fn encode(&self, format: Format) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        match format {
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)?
            }
        }
        Ok(out)
    }
}

#[derive(Debug)]
struct SnapshotCollector {
    store: Arc<SnapshotStore>,
    http: Arc<HttpStats>,
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snap = self.store.load();
        encode_devices(&snap, &mut enc)?;
        encode_pods(&snap, &mut enc)?;
        encode_unattributed(&snap, &mut enc)?;
        agent::encode(&snap, &self.http, &mut enc)
    }
}

type Getter = fn(&DeviceMetrics) -> Option<f64>;

/// The device gauges (docs/metrics.md, "Device series"): name, help, value.
const DEVICE_GAUGES: &[(&str, &str, Getter)] = &[
    (
        "gpu_utilization_ratio",
        "Share of the last sample period during which a kernel ran on the GPU (0..1).",
        |m| m.utilization_ratio,
    ),
    (
        "gpu_memory_bandwidth_utilization_ratio",
        "Share of the last sample period during which device memory was read or written (0..1).",
        |m| m.memory_bandwidth_utilization_ratio,
    ),
    (
        "gpu_memory_used_bytes",
        "Device memory (framebuffer, VRAM) in use, in bytes.",
        |m| m.memory_used_bytes,
    ),
    (
        "gpu_memory_total_bytes",
        "Device memory (framebuffer, VRAM) in total, in bytes.",
        |m| m.memory_total_bytes,
    ),
    (
        "gpu_power_watts",
        "Power draw of the device, in watts.",
        |m| m.power_watts,
    ),
    (
        "gpu_temperature_celsius",
        "GPU die temperature, in degrees Celsius.",
        |m| m.temperature_celsius,
    ),
    ("gpu_sm_clock_hertz", "Current SM clock, in hertz.", |m| {
        m.sm_clock_hertz
    }),
    (
        "gpu_memory_reserved_bytes",
        "Device memory the driver and firmware reserve, outside used memory, in bytes; free is total - used - reserved.",
        |m| m.memory_reserved_bytes,
    ),
];

type ProfilingGetter = fn(&ProfilingValues) -> Option<f64>;

/// The profiling gauges (docs/metrics.md, "Profiling"): name, help, value. From GPM where the
/// device has it, else from DCGM; `gpu_profiling_info{source}` says which.
const PROFILING_GAUGES: &[(&str, &str, ProfilingGetter)] = &[
    (
        "gpu_graphics_active_ratio",
        "Profiling (GPM or DCGM): share of time the graphics engine (graphics or compute pipe) was active (0..1).",
        |v| v.graphics_active,
    ),
    (
        "gpu_sm_active_ratio",
        "Profiling (GPM or DCGM): share of time SMs had at least one warp assigned (0..1).",
        |v| v.sm_active,
    ),
    (
        "gpu_sm_occupancy_ratio",
        "Profiling (GPM or DCGM): resident warps over the theoretical maximum, averaged over SMs (0..1).",
        |v| v.sm_occupancy,
    ),
    (
        "gpu_tensor_active_ratio",
        "Profiling (GPM or DCGM): share of time tensor cores were active (0..1).",
        |v| v.tensor_active,
    ),
    (
        "gpu_dram_active_ratio",
        "Profiling (GPM or DCGM): share of peak device memory bandwidth used (0..1).",
        |v| v.dram_active,
    ),
    (
        "gpu_fp64_active_ratio",
        "Profiling (GPM or DCGM): share of time the FP64 pipe was active (0..1).",
        |v| v.fp64_active,
    ),
    (
        "gpu_fp32_active_ratio",
        "Profiling (GPM or DCGM): share of time the FP32 pipe was active (0..1).",
        |v| v.fp32_active,
    ),
    (
        "gpu_fp16_active_ratio",
        "Profiling (GPM or DCGM): share of time the FP16 pipe was active, tensor cores excluded (0..1).",
        |v| v.fp16_active,
    ),
];

/// The labels every device series carries: `gpu`, `uuid`, `vendor`.
pub(crate) fn device_labels(d: &DeviceSample) -> [(&'static str, &str); 3] {
    [
        ("gpu", d.identity.gpu.as_str()),
        ("uuid", d.identity.uuid.as_str()),
        ("vendor", d.vendor.map_or("", |v| v.label())),
    ]
}

/// The devices whose value series are written: every one but a failed one, which reports none
/// (a late one keeps its last values).
fn reporting(snap: &Snapshot) -> impl Iterator<Item = &DeviceSample> {
    snap.devices
        .iter()
        .filter(|d| !matches!(d.down, Some(DeviceDown::Failed(_))))
}

/// Encodes a gauge family from `(labels, value)` pairs; a family with no series is left out.
pub(crate) fn gauge_family<'a, L, I>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: I,
) -> Result<(), fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet + 'a,
    I: IntoIterator<Item = (L, f64)>,
{
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        family.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

pub(crate) fn counter_family<L, I>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: I,
) -> Result<(), fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet,
    I: IntoIterator<Item = (L, f64)>,
{
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        family
            .encode_family(&labels)?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(&v, None)?;
    }
    Ok(())
}

fn encode_devices(snap: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    gauge_family(
        enc,
        "gpu_info",
        "Static facts about a GPU; always 1. MIG instances add parent_uuid and mig_profile.",
        snap.devices.iter().map(|d| {
            let mut labels: Vec<(&str, &str)> = device_labels(d).to_vec();
            labels.extend([
                ("model", d.identity.model.as_str()),
                ("pci_bus_id", d.identity.pci_bus_id.as_str()),
                ("driver_version", d.identity.driver_version.as_str()),
            ]);
            if let Some(mig) = &d.identity.mig {
                labels.push(("parent_uuid", mig.parent_uuid.as_str()));
                labels.push(("mig_profile", mig.profile.as_str()));
            }
            (labels, 1.0)
        }),
    )?;
    gauge_family(
        enc,
        "gpu_up",
        "1 when the GPU answered its last sample, else 0.",
        snap.devices
            .iter()
            .map(|d| (device_labels(d), if d.up() { 1.0 } else { 0.0 })),
    )?;
    gauge_family(
        enc,
        "gpu_processes",
        "Processes holding a compute context on the GPU (or reporting utilization on it).",
        snap.devices
            .iter()
            .filter(|d| d.up())
            .map(|d| (device_labels(d), d.processes.len() as f64)),
    )?;
    for (name, help, get) in DEVICE_GAUGES {
        gauge_family(
            enc,
            name,
            help,
            reporting(snap).filter_map(|d| get(&d.metrics).map(|v| (device_labels(d), v))),
        )?;
    }
    encode_profiling(snap, enc)?;
    encode_health(snap, enc)
}

/// `gpu_profiling_info{source}` and the profiling gauges, for each device (or MIG instance)
/// that answered with profiling values; a failed device reports none, a late one its last.
fn encode_profiling(snap: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    let profiled =
        || reporting(snap).filter_map(|d| Some((d, d.profiling.filter(|p| p.values.any())?)));
    gauge_family(
        enc,
        "gpu_profiling_info",
        "1 for each GPU (or MIG instance) with profiling series; source is gpm (NVML GPM) or dcgm (DCGM's profiling fields).",
        profiled().map(|(d, p)| (labels_plus(d, "source", p.source.label().to_string()), 1.0)),
    )?;
    for (name, help, get) in PROFILING_GAUGES {
        gauge_family(
            enc,
            name,
            help,
            profiled().filter_map(|(d, p)| get(&p.values).map(|v| (device_labels(d), v))),
        )?;
    }
    Ok(())
}

type HealthGetter = fn(&DeviceHealth) -> Option<f64>;

/// Health gauges (docs/metrics.md, "Health and long-tail series"): name, help, value.
const HEALTH_GAUGES: &[(&str, &str, HealthGetter)] = &[
    (
        "gpu_pcie_transmit_bytes_per_second",
        "PCIe transmit throughput, bytes per second.",
        |h| h.pcie_transmit_bytes_per_second,
    ),
    (
        "gpu_pcie_receive_bytes_per_second",
        "PCIe receive throughput, bytes per second.",
        |h| h.pcie_receive_bytes_per_second,
    ),
    (
        "gpu_encoder_utilization_ratio",
        "Video encoder utilization (0..1).",
        |h| h.encoder_utilization_ratio,
    ),
    (
        "gpu_decoder_utilization_ratio",
        "Video decoder utilization (0..1).",
        |h| h.decoder_utilization_ratio,
    ),
];

/// Health counters: name (without `_total`), help, value.
const HEALTH_COUNTERS: &[(&str, &str, HealthGetter)] = &[
    (
        "gpu_energy_joules",
        "Energy the GPU consumed since the driver loaded, joules.",
        |h| h.energy_joules,
    ),
    ("gpu_pcie_replay_errors", "PCIe replay errors.", |h| {
        h.pcie_replay_errors
    }),
    (
        "gpu_nvlink_transmit_bytes",
        "NVLink data transmitted, all links summed, bytes.",
        |h| h.nvlink_transmit_bytes,
    ),
    (
        "gpu_nvlink_receive_bytes",
        "NVLink data received, all links summed, bytes.",
        |h| h.nvlink_receive_bytes,
    ),
];

/// Device labels plus one more, as owned strings.
pub(crate) fn labels_plus(
    d: &DeviceSample,
    key: &'static str,
    value: String,
) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = device_labels(d)
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    v.push((key, value));
    v
}

fn encode_health(snap: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    let live = || reporting(snap);
    for (name, help, get) in HEALTH_COUNTERS {
        counter_family(
            enc,
            name,
            help,
            live().filter_map(|d| get(&d.health).map(|v| (device_labels(d), v))),
        )?;
    }
    counter_family(
        enc,
        "gpu_ecc_errors",
        "ECC errors since the counters were last cleared (aggregate), by type.",
        live().flat_map(|d| {
            [
                ("corrected", d.health.ecc_corrected),
                ("uncorrected", d.health.ecc_uncorrected),
            ]
            .into_iter()
            .filter_map(move |(t, v)| Some((labels_plus(d, "type", t.to_string()), v?)))
        }),
    )?;
    counter_family(
        enc,
        "gpu_xid_errors",
        "XID error events since the agent started watching, by XID code.",
        snap.devices.iter().flat_map(|d| {
            d.health
                .xid_errors
                .iter()
                .map(move |(xid, n)| (labels_plus(d, "xid", xid.to_string()), *n as f64))
        }),
    )?;
    gauge_family(
        enc,
        "gpu_clock_throttled",
        "1 while the clock event (throttle) reason is active, else 0.",
        live().flat_map(|d| {
            d.health.throttled.into_iter().flat_map(move |flags| {
                THROTTLE_REASONS.iter().zip(flags).map(move |(r, on)| {
                    (
                        labels_plus(d, "reason", r.to_string()),
                        if on { 1.0 } else { 0.0 },
                    )
                })
            })
        }),
    )?;
    for (name, help, get) in HEALTH_GAUGES {
        gauge_family(
            enc,
            name,
            help,
            live().filter_map(|d| get(&d.health).map(|v| (device_labels(d), v))),
        )?;
    }
    limits::encode(live, enc)
}

/// Labels of a pod series: the container's names and its device's labels.
fn pod_labels<'a>(snap: &'a Snapshot, p: &'a PodSample) -> Option<[(&'static str, &'a str); 6]> {
    let [gpu, uuid, vendor] = device_labels(snap.devices.get(p.device)?);
    Some([
        ("namespace", p.key.namespace.as_str()),
        ("pod", p.key.pod.as_str()),
        ("container", p.key.container.as_str()),
        gpu,
        uuid,
        vendor,
    ])
}

type PodProfilingGetter = fn(&PodProfiling) -> Option<f64>;

/// The per-pod profiling gauges (docs/metrics.md, "Profiling per pod"): name, help, value.
/// Present only for a container that holds its device (or MIG instance) alone.
const POD_PROFILING_GAUGES: &[(&str, &str, PodProfilingGetter)] = &[
    (
        "pod_gpu_sm_active_ratio",
        "Profiling (GPM or DCGM): the GPU's SM activity (0..1), for a container that holds the GPU or MIG instance alone.",
        |g| g.sm_active_ratio,
    ),
    (
        "pod_gpu_sm_occupancy_ratio",
        "Profiling (GPM or DCGM): the GPU's SM occupancy (0..1), for a container that holds the GPU or MIG instance alone.",
        |g| g.sm_occupancy_ratio,
    ),
    (
        "pod_gpu_tensor_active_ratio",
        "Profiling (GPM or DCGM): the GPU's tensor core activity (0..1), for a container that holds the GPU or MIG instance alone.",
        |g| g.tensor_active_ratio,
    ),
    (
        "pod_gpu_dram_active_ratio",
        "Profiling (GPM or DCGM): the GPU's share of peak memory bandwidth used (0..1), for a container that holds the GPU or MIG instance alone.",
        |g| g.dram_active_ratio,
    ),
];

fn encode_pods(snap: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    gauge_family(
        enc,
        "pod_gpu_utilization_ratio",
        "The container's share of the GPU's compute (0..1): its processes' SM utilization, or the GPU's utilization when it holds the GPU alone.",
        snap.pods
            .iter()
            .filter_map(|p| Some((pod_labels(snap, p)?, p.utilization_ratio?))),
    )?;
    gauge_family(
        enc,
        "pod_gpu_memory_used_bytes",
        "Device memory held by the container's processes on the GPU, in bytes.",
        snap.pods
            .iter()
            .filter_map(|p| Some((pod_labels(snap, p)?, p.memory_used_bytes?))),
    )?;
    gauge_family(
        enc,
        "pod_gpu_allocated",
        "1 for each GPU the kubelet allocated to the container.",
        snap.pods
            .iter()
            .filter(|p| p.allocated)
            .filter_map(|p| Some((pod_labels(snap, p)?, 1.0))),
    )?;
    for (name, help, get) in POD_PROFILING_GAUGES {
        gauge_family(
            enc,
            name,
            help,
            snap.pods
                .iter()
                .filter_map(|p| Some((pod_labels(snap, p)?, get(&p.profiling)?))),
        )?;
    }
    Ok(())
}

/// `gpu_unattributed_*` (docs/metrics.md, "Unattributed use"): per device that answered, what no pod series carries.
fn encode_unattributed(snap: &Snapshot, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    let live = || {
        snap.unattributed.iter().filter_map(|u| {
            let d = snap.devices.get(u.device)?;
            d.up().then_some((d, u))
        })
    };
    gauge_family(
        enc,
        "gpu_unattributed_memory_bytes",
        "Device memory held by processes outside any pod (host daemons, an MPS server, processes gone before they could be read), in bytes.",
        live().filter_map(|(d, u)| Some((device_labels(d), u.memory_bytes? as f64))),
    )?;
    gauge_family(
        enc,
        "gpu_unattributed_processes",
        "Processes on the GPU outside any pod (host daemons, an MPS server, processes gone before they could be read).",
        live().map(|(d, u)| (device_labels(d), u.processes as f64)),
    )
}
