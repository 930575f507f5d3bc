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
    pub sm_active_ratio: Option<f64>,
    pub sm_occupancy_ratio: Option<f64>,
    pub tensor_active_ratio: Option<f64>,
    pub dram_active_ratio: Option<f64>,
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
    /// The driver said the device is gone or unusable (e.g. NVML `GPU_IS_LOST`).
    Failed(String),
}

/// Everything one device reported in one sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceSample {
    pub vendor: Option<Vendor>,
    pub identity: DeviceIdentity,
    /// `None` when the device answered; otherwise why not.
    pub down: Option<DeviceDown>,
    pub metrics: DeviceMetrics,
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
    /// The driver's error name (`UNKNOWN`, `NO_PERMISSION`, ...).
    pub error: String,
}

/// What one backend reports after one collection cycle.
#[derive(Debug, Clone, Default)]
pub struct VendorReport {
    /// Whether the cycle worked: library loaded, every device answered in time.
    pub success: bool,
    pub duration: Duration,
    pub devices: Vec<DeviceSample>,
    /// Failed calls of this cycle, one entry per failure.
    pub call_errors: Vec<CallError>,
}
