//! Vendor-neutral samples: what every backend reports, whatever library it reads.

use std::time::Duration;

/// Which vendor a device belongs to; the `vendor` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vendor {
    Nvidia,
    Amd,
}

impl Vendor {
    pub fn label(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvidia",
            Vendor::Amd => "amd",
        }
    }
}

/// Static facts about a device, the labels of `gpu_info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceIdentity {
    /// Index on this node, as a string (`0`, or `0:1` for a MIG instance).
    pub gpu: String,
    pub uuid: String,
    pub model: String,
    pub pci_bus_id: String,
    pub driver_version: String,
    /// For a MIG instance: its parent GPU's UUID, its profile (`1g.10gb`) and its GPU instance id.
    pub mig: Option<MigIdentity>,
}

/// What makes a MIG instance a device of its own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigIdentity {
    pub parent_uuid: String,
    pub profile: String,
    pub gpu_instance_id: u32,
    pub compute_instance_id: u32,
}

/// Clock event (throttle) reasons exported as `gpu_clock_throttled{reason}`, in label order.
pub const THROTTLE_REASONS: [&str; 6] = [
    "sw_power_cap",
    "hw_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
    "sw_thermal_slowdown",
    "sync_boost",
];

/// NVML's violation counters (performance policies) exported as
/// `gpu_throttle_seconds_total{reason}`, in label order.
pub const VIOLATION_REASONS: [&str; 6] = [
    "power",
    "thermal",
    "sync_boost",
    "board_limit",
    "low_utilization",
    "reliability",
];

/// Row remapping (A100 and later): how many memory rows were replaced by spares, and whether
/// one waits for a GPU reset or could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RemappedRows {
    /// Counters: rows remapped for correctable and for uncorrectable errors.
    pub correctable: f64,
    pub uncorrectable: f64,
    /// A remap is waiting for the next GPU reset to take effect.
    pub pending: bool,
    /// A remap failed: the GPU could not repair a memory fault itself.
    pub failed: bool,
}

/// Health and long-tail values of one device; `None` where the device does not report them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceHealth {
    /// Counter: total energy since the driver loaded, joules.
    pub energy_joules: Option<f64>,
    /// Counters: aggregate ECC errors (corrected, uncorrected).
    pub ecc_corrected: Option<f64>,
    pub ecc_uncorrected: Option<f64>,
    /// Whether each of `THROTTLE_REASONS` is active, in that order.
    pub throttled: Option<[bool; 6]>,
    pub pcie_transmit_bytes_per_second: Option<f64>,
    pub pcie_receive_bytes_per_second: Option<f64>,
    /// Counter.
    pub pcie_replay_errors: Option<f64>,
    /// Counters: all links summed.
    pub nvlink_transmit_bytes: Option<f64>,
    pub nvlink_receive_bytes: Option<f64>,
    pub encoder_utilization_ratio: Option<f64>,
    pub decoder_utilization_ratio: Option<f64>,
    pub memory_clock_hertz: Option<f64>,
    /// Device memory (HBM) temperature.
    pub memory_temperature_celsius: Option<f64>,
    /// The power limit the driver enforces, watts.
    pub power_limit_watts: Option<f64>,
    pub remapped_rows: Option<RemappedRows>,
    /// Counters: seconds the clocks were held down by each of `VIOLATION_REASONS`, in that
    /// order; `None` for a reason the device does not report.
    pub throttle_seconds: [Option<f64>; 6],
    /// Counters: XID events since the agent started watching, by XID code.
    pub xid_errors: Vec<(u64, u64)>,
}

/// Gauges of one device; `None` where the device does not report the value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceMetrics {
    pub utilization_ratio: Option<f64>,
    pub memory_bandwidth_utilization_ratio: Option<f64>,
    pub memory_used_bytes: Option<f64>,
    pub memory_total_bytes: Option<f64>,
    pub power_watts: Option<f64>,
    pub temperature_celsius: Option<f64>,
    pub sm_clock_hertz: Option<f64>,
    /// Framebuffer the driver and firmware reserve, outside `memory_used_bytes`: the free
    /// memory is total - used - reserved.
    pub memory_reserved_bytes: Option<f64>,
}

impl DeviceMetrics {
    /// Fills each gauge this one lacks from `other` (a second source of the same device).
    /// Every field is named, so a new gauge cannot be forgotten here.
    pub fn fill_from(&mut self, other: DeviceMetrics) {
        let DeviceMetrics {
            utilization_ratio,
            memory_bandwidth_utilization_ratio,
            memory_used_bytes,
            memory_total_bytes,
            power_watts,
            temperature_celsius,
            sm_clock_hertz,
            memory_reserved_bytes,
        } = other;
        let pairs = [
            (&mut self.utilization_ratio, utilization_ratio),
            (
                &mut self.memory_bandwidth_utilization_ratio,
                memory_bandwidth_utilization_ratio,
            ),
            (&mut self.memory_used_bytes, memory_used_bytes),
            (&mut self.memory_total_bytes, memory_total_bytes),
            (&mut self.power_watts, power_watts),
            (&mut self.temperature_celsius, temperature_celsius),
            (&mut self.sm_clock_hertz, sm_clock_hertz),
            (&mut self.memory_reserved_bytes, memory_reserved_bytes),
        ];
        for (slot, value) in pairs {
            if slot.is_none() {
                *slot = value;
            }
        }
    }
}

/// Where a device's profiling series come from; the `source` label of `gpu_profiling_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProfilingSource {
    /// NVML's GPU Performance Monitoring (Hopper and later), read by the device's own worker.
    Gpm,
    /// DCGM's profiling fields, read from an nv-hostengine for devices without GPM.
    Dcgm,
}

impl ProfilingSource {
    pub fn label(self) -> &'static str {
        match self {
            ProfilingSource::Gpm => "gpm",
            ProfilingSource::Dcgm => "dcgm",
        }
    }
}

/// Profiling ratios of one device or MIG instance, 0..1; `None` where the source gave none
/// (not supported, no sample yet, a blank value).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProfilingValues {
    /// Graphics engine (graphics or compute pipe) active.
    pub graphics_active: Option<f64>,
    /// SMs with at least one warp assigned.
    pub sm_active: Option<f64>,
    /// Resident warps over the theoretical maximum.
    pub sm_occupancy: Option<f64>,
    /// Any tensor pipe active.
    pub tensor_active: Option<f64>,
    /// Device memory interface active (share of peak bandwidth).
    pub dram_active: Option<f64>,
    pub fp64_active: Option<f64>,
    pub fp32_active: Option<f64>,
    pub fp16_active: Option<f64>,
}

impl ProfilingValues {
    /// Whether any value is present.
    pub fn any(&self) -> bool {
        [
            self.graphics_active,
            self.sm_active,
            self.sm_occupancy,
            self.tensor_active,
            self.dram_active,
            self.fp64_active,
            self.fp32_active,
            self.fp16_active,
        ]
        .iter()
        .any(Option::is_some)
    }
}

/// A device's profiling: which source serves it, and what it gave this sample. A device whose
/// source is known but has no value yet (GPM's first sample) has `Some` with empty values; a
/// device without any source has `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profiling {
    pub source: ProfilingSource,
    pub values: ProfilingValues,
}

/// One process that holds a context on a device, as the driver reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuProcess {
    /// Host pid (NVML and KFD report pids of the host's pid namespace).
    pub pid: u32,
    pub used_memory_bytes: Option<u64>,
    /// Share of the device's SM time over the last interval, 0..1, where the device reports it.
    pub sm_utilization_ratio: Option<f64>,
    /// MIG GPU and compute instance ids, when the device is in MIG mode.
    pub gpu_instance_id: Option<u32>,
    pub compute_instance_id: Option<u32>,
    /// The driver lists the process as an MPS client (NVML's MPS list): its kernels run in
    /// the MPS server's context, and its utilization samples go to the server (rule 7).
    pub mps_client: bool,
}

/// Why a device did not answer its last sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceDown {
    /// A call did not return within the collection interval; values are the last ones seen.
    TimedOut,
    /// The driver said the device is gone or unusable (e.g. NVML `GPU_IS_LOST`), or the agent
    /// could not read it at all (`NO_HANDLE`, `PANIC`, `DEVICE_GONE`).
    Failed(ErrorLabel),
}

/// Everything one device reported in one sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceSample {
    pub vendor: Option<Vendor>,
    pub identity: DeviceIdentity,
    /// `None` when the device answered; otherwise why not.
    pub down: Option<DeviceDown>,
    pub metrics: DeviceMetrics,
    /// Profiling ratios and their source (GPM, else DCGM); `None` where neither serves it.
    pub profiling: Option<Profiling>,
    pub health: DeviceHealth,
    pub processes: Vec<GpuProcess>,
    /// Whether `processes[].sm_utilization_ratio` is meaningful for this device.
    pub per_process_utilization: bool,
}

impl DeviceSample {
    pub fn up(&self) -> bool {
        self.down.is_none()
    }
}

/// A failed driver call that did not take the device down: counted, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallError {
    /// The call family (`power`, `processes`, ...).
    pub call: &'static str,
    /// Why it failed: the `error` label.
    pub error: ErrorLabel,
}

impl CallError {
    pub fn new(call: &'static str, error: ErrorLabel) -> CallError {
        CallError { call, error }
    }
}

/// Why a call failed or a device is down, as the `error` label of
/// `gpu_pod_exporter_driver_call_errors_total` spells it. The agent's own reasons are variants,
/// so a typo does not compile; a driver's own names come from one table per library.
///
/// Two values are the same label when they render the same (NVML's `TIMEOUT` is the agent's
/// `TIMEOUT`): equality, order and hash go by the rendered label, so a count is never split.
#[derive(Debug, Clone)]
pub enum ErrorLabel {
    /// Did not answer within the cycle (`TIMEOUT`).
    Timeout,
    /// Its thread could not be started (`NO_THREAD`).
    NoThread,
    /// The device's folder is gone: unplugged, unbound, fallen off the bus (`DEVICE_GONE`).
    DeviceGone,
    /// A process names a device that is not on this node (`UNKNOWN_DEVICE`).
    UnknownDevice,
    /// An fdinfo file names no PCI device (`NO_PDEV`).
    NoPdev,
    /// The content is not what the kernel or the library writes there (`MALFORMED`).
    Malformed,
    /// A value outside anything the hardware can report (`OUT_OF_RANGE`).
    OutOfRange,
    /// No handle for the device could be had (`NO_HANDLE`).
    NoHandle,
    /// Reading the device panicked (a bug; `PANIC`).
    Panic,
    /// An I/O error on a kernel file, by errno class (`NO_DEVICE`, `IO_ERROR`, `PERMISSION_DENIED`).
    Io(&'static str),
    /// A driver library's own error name: NVML's without `NVML_ERROR_` (`GPU_IS_LOST`), ROCm
    /// SMI's without `RSMI_STATUS_` (`PERMISSION`).
    Driver(&'static str),
    /// A library status with no name (`STATUS_<code>`).
    Status(u32),
}

impl ErrorLabel {
    /// The label value.
    pub fn label(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow::Borrowed;
        match self {
            ErrorLabel::Timeout => Borrowed("TIMEOUT"),
            ErrorLabel::NoThread => Borrowed("NO_THREAD"),
            ErrorLabel::DeviceGone => Borrowed("DEVICE_GONE"),
            ErrorLabel::UnknownDevice => Borrowed("UNKNOWN_DEVICE"),
            ErrorLabel::NoPdev => Borrowed("NO_PDEV"),
            ErrorLabel::Malformed => Borrowed("MALFORMED"),
            ErrorLabel::OutOfRange => Borrowed("OUT_OF_RANGE"),
            ErrorLabel::NoHandle => Borrowed("NO_HANDLE"),
            ErrorLabel::Panic => Borrowed("PANIC"),
            ErrorLabel::Io(name) | ErrorLabel::Driver(name) => Borrowed(name),
            ErrorLabel::Status(code) => format!("STATUS_{code}").into(),
        }
    }
}

impl std::fmt::Display for ErrorLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl PartialEq for ErrorLabel {
    fn eq(&self, other: &Self) -> bool {
        self.label() == other.label()
    }
}

impl Eq for ErrorLabel {}

impl PartialOrd for ErrorLabel {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ErrorLabel {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.label().cmp(&other.label())
    }
}

impl std::hash::Hash for ErrorLabel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.label().hash(state);
    }
}

/// What one backend reports after one collection cycle.
#[derive(Debug, Clone, Default)]
pub struct VendorReport {
    /// Whether the cycle worked: library loaded, every device answered in time.
    pub success: bool,
    /// Whether the cycle completed with the backend's source in hand: its library loaded and
    /// its device list read, whatever the devices then answered. What readiness waits for: a
    /// lost or failing device is `gpu_up 0`, never an unready agent.
    pub completed: bool,
    pub duration: Duration,
    pub devices: Vec<DeviceSample>,
    /// Failed calls of this cycle, one entry per failure.
    pub call_errors: Vec<CallError>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn error_labels_are_one_label_however_they_were_made() {
        assert_eq!(ErrorLabel::Timeout.to_string(), "TIMEOUT");
        assert_eq!(ErrorLabel::Status(77).to_string(), "STATUS_77");
        assert_eq!(ErrorLabel::Driver("TIMEOUT"), ErrorLabel::Timeout);
        assert_eq!(ErrorLabel::Io("MALFORMED"), ErrorLabel::Malformed);
        let mut counts = BTreeMap::new();
        for e in [
            ErrorLabel::Timeout,
            ErrorLabel::Driver("TIMEOUT"),
            ErrorLabel::NoThread,
        ] {
            *counts.entry(CallError::new("rsmi", e)).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[&CallError::new("rsmi", ErrorLabel::Timeout)], 2);
        // Ordered as the labels are, as /metrics lists them.
        let order: Vec<String> = counts.keys().map(|c| c.error.to_string()).collect();
        assert_eq!(order, ["NO_THREAD", "TIMEOUT"]);
    }

    #[test]
    fn a_second_source_fills_only_the_gauges_the_first_lacks() {
        let mut first = DeviceMetrics {
            utilization_ratio: Some(0.5),
            memory_used_bytes: None,
            ..DeviceMetrics::default()
        };
        first.fill_from(DeviceMetrics {
            utilization_ratio: Some(0.9),
            memory_used_bytes: Some(1.0),
            memory_reserved_bytes: Some(2.0),
            ..DeviceMetrics::default()
        });
        assert_eq!(first.utilization_ratio, Some(0.5), "the first source wins");
        assert_eq!(first.memory_used_bytes, Some(1.0));
        assert_eq!(first.memory_reserved_bytes, Some(2.0));
        assert_eq!(first.power_watts, None, "neither has it: absent");
    }
}
