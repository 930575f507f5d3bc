//! The scenario file: its serde types (the mock's README, "The scenario file", with the extensions
//! it marks) and parsing. `check` holds the checks that turn a typo into a clear error instead of a
//! silently different node; `pci` the PCI address format.

mod buffer;
mod check;
mod costs;
pub mod dcgm;
pub mod file;
mod pci;

pub use buffer::{Read as BufferRead, SampleBuffer};
pub use costs::{Cost, CostKey, Costs, Preset, H200, MAX_COST_US};
pub use pci::PciAddress;

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::codes::ErrorCode;

/// The driver version reported when a scenario does not name one.
pub const DEFAULT_DRIVER_VERSION: &str = "550.54.15";

/// A group of NVML calls that `errors` and `delays_ms` act on as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    // Node-wide: only in the scenario's top-level `errors` / `delays_ms`.
    Init,
    Count,
    /// Mock extension: `nvmlSystemGetDriverVersion` and `nvmlSystemGetNVMLVersion`.
    System,
    // Per device.
    Handle,
    Uuid,
    Name,
    Pci,
    Memory,
    Utilization,
    Power,
    Temperature,
    Clock,
    Processes,
    ProcessUtilization,
    Gpm,
    Energy,
    Ecc,
    Events,
    Throttle,
    Pcie,
    Nvlink,
    Encoder,
    Decoder,
    // dcgm-exporter's counters: memory clock and temperature, power limit, remapped rows,
    // violation (throttle) time.
    MemoryClock,
    MemoryTemperature,
    PowerLimit,
    RemappedRows,
    Violations,
    Mig,
    /// Mock extension: `nvmlDeviceGetMPSComputeRunningProcesses_v3`.
    Mps,
    /// The mock DCGM's `dcgmInit`, `dcgmConnect_v2`, `dcgmStartEmbedded`: node-wide only.
    DcgmConnect,
    /// Every other mock DCGM call. At the top level it acts on each call; under a device, on
    /// the calls about that device or its MIG instances (a watch on a group holding it, a read
    /// of its values: its values then carry the error as their status).
    DcgmValues,
}

impl Family {
    /// Every family, in declaration order.
    pub const ALL: &'static [Family] = &[
        Family::Init,
        Family::Count,
        Family::System,
        Family::Handle,
        Family::Uuid,
        Family::Name,
        Family::Pci,
        Family::Memory,
        Family::Utilization,
        Family::Power,
        Family::Temperature,
        Family::Clock,
        Family::Processes,
        Family::ProcessUtilization,
        Family::Gpm,
        Family::Energy,
        Family::Ecc,
        Family::Events,
        Family::Throttle,
        Family::Pcie,
        Family::Nvlink,
        Family::Encoder,
        Family::Decoder,
        Family::MemoryClock,
        Family::MemoryTemperature,
        Family::PowerLimit,
        Family::RemappedRows,
        Family::Violations,
        Family::Mig,
        Family::Mps,
        Family::DcgmConnect,
        Family::DcgmValues,
    ];

    /// Families whose calls take no device handle: only in the top-level `errors`/`delays_ms`.
    pub fn is_node_wide(self) -> bool {
        matches!(
            self,
            Family::Init | Family::Count | Family::System | Family::DcgmConnect
        )
    }

    /// Families that may also be set at the top level though they are per device.
    pub fn is_also_node_wide(self) -> bool {
        matches!(self, Family::DcgmValues)
    }

    /// The families of the mock DCGM: their errors are DCGM statuses ([`dcgm::status`]).
    pub fn is_dcgm(self) -> bool {
        matches!(self, Family::DcgmConnect | Family::DcgmValues)
    }

    /// The name a scenario uses for this family.
    pub fn name(self) -> &'static str {
        match self {
            Family::Init => "init",
            Family::Count => "count",
            Family::System => "system",
            Family::Handle => "handle",
            Family::Uuid => "uuid",
            Family::Name => "name",
            Family::Pci => "pci",
            Family::Memory => "memory",
            Family::Utilization => "utilization",
            Family::Power => "power",
            Family::Temperature => "temperature",
            Family::Clock => "clock",
            Family::Processes => "processes",
            Family::ProcessUtilization => "process_utilization",
            Family::Gpm => "gpm",
            Family::Energy => "energy",
            Family::Ecc => "ecc",
            Family::Events => "events",
            Family::Throttle => "throttle",
            Family::Pcie => "pcie",
            Family::Nvlink => "nvlink",
            Family::Encoder => "encoder",
            Family::Decoder => "decoder",
            Family::MemoryClock => "memory_clock",
            Family::MemoryTemperature => "memory_temperature",
            Family::PowerLimit => "power_limit",
            Family::RemappedRows => "remapped_rows",
            Family::Violations => "violations",
            Family::Mig => "mig",
            Family::Mps => "mps",
            Family::DcgmConnect => "dcgm_connect",
            Family::DcgmValues => "dcgm_values",
        }
    }
}

/// Call family -> the NVML error every call of that family returns.
pub type Errors = BTreeMap<Family, ErrorCode>;
/// Call family -> milliseconds every call of that family blocks before answering.
pub type Delays = BTreeMap<Family, u64>;

/// A whole node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default = "default_driver_version")]
    pub driver_version: String,
    /// `nvmlInit_v2` fails with this code.
    #[serde(default)]
    pub init_error: Option<ErrorCode>,
    /// Mock extension: errors for the node-wide families `init`, `count` and `system`.
    #[serde(default)]
    pub errors: Errors,
    /// Mock extension: delays for the node-wide families `init`, `count` and `system`.
    #[serde(default)]
    pub delays_ms: Delays,
    /// What every call costs the caller (the mock's README, "Costs"): absent or `none` free, `h200`
    /// the H200 table, a map per family on top (see [`costs`]).
    #[serde(default)]
    pub costs: Costs,
    /// Mock extension: the driver's buffer of per-process utilization samples (see
    /// [`buffer`]); absent, each call makes one sample stamped with its own time.
    #[serde(default)]
    pub process_utilization_buffer: Option<SampleBuffer>,
    /// The mock DCGM's host engine (see [`dcgm`]); absent: up.
    #[serde(default)]
    pub dcgm: dcgm::Dcgm,
    #[serde(default)]
    pub devices: Vec<Device>,
}

fn default_driver_version() -> String {
    DEFAULT_DRIVER_VERSION.to_owned()
}

/// One GPU, as NVML enumerates it; its position in `devices` is its NVML index.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub uuid: String,
    pub name: String,
    pub pci_bus_id: String,
    /// `pci_bus_id` parsed; filled in by [`Scenario::parse`].
    #[serde(skip)]
    pub pci: PciAddress,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub utilization_gpu_percent: u32,
    pub utilization_memory_percent: u32,
    pub power_milliwatts: u32,
    pub temperature_celsius: u32,
    pub sm_clock_mhz: u32,
    #[serde(default)]
    pub process_utilization: ProcessUtilization,
    /// The scenario's `process_utilization_buffer`; filled in by [`Scenario::parse`].
    #[serde(skip)]
    pub sample_buffer: Option<SampleBuffer>,
    #[serde(default)]
    pub gpm: Option<Gpm>,
    /// DCGM's profiling fields 1001-1008 for this GPU (the mock DCGM); absent: DCGM answers
    /// `DCGM_ST_PROFILING_NOT_SUPPORTED` for it.
    #[serde(default)]
    pub dcgm_profiling: Option<Gpm>,
    #[serde(default)]
    pub processes: Vec<Process>,
    #[serde(default)]
    pub errors: Errors,
    #[serde(default)]
    pub delays_ms: Delays,

    // Optional health fields: absent means the family's calls return NOT_SUPPORTED.
    #[serde(default)]
    pub energy_millijoules: Option<u64>,
    #[serde(default)]
    pub ecc: Option<Ecc>,
    #[serde(default)]
    pub xid_events: Option<Vec<XidEvent>>,
    #[serde(default)]
    pub throttle_reasons: Option<Vec<ThrottleReason>>,
    #[serde(default)]
    pub pcie: Option<Pcie>,
    #[serde(default)]
    pub nvlink: Option<Nvlink>,
    #[serde(default)]
    pub encoder_percent: Option<u32>,
    #[serde(default)]
    pub decoder_percent: Option<u32>,

    // dcgm-exporter's counters (optional: absent means the family answers NOT_SUPPORTED).
    /// `nvmlDeviceGetClockInfo(NVML_CLOCK_MEM)`, MHz.
    #[serde(default)]
    pub memory_clock_mhz: Option<u32>,
    /// Field value `NVML_FI_DEV_MEMORY_TEMP`, °C (HBM; boards with GDDR have none).
    #[serde(default)]
    pub memory_temperature_celsius: Option<u32>,
    /// `nvmlDeviceGetEnforcedPowerLimit`, milliwatts.
    #[serde(default)]
    pub power_limit_milliwatts: Option<u32>,
    /// `nvmlDeviceGetRemappedRows` (A100 and later).
    #[serde(default)]
    pub remapped_rows: Option<RemappedRows>,
    /// `nvmlDeviceGetViolationStatus`, by policy; a policy left out is NOT_SUPPORTED alone.
    #[serde(default)]
    pub violations_ns: Option<Violations>,
    /// Mock extension: framebuffer the driver and firmware reserve
    /// (`nvmlMemory_v2_t.reserved`), outside `memory_used_bytes`. Default 0.
    #[serde(default)]
    pub memory_reserved_bytes: u64,

    /// MIG mode enabled with these instances (an empty list: enabled, no instances yet).
    #[serde(default)]
    pub mig: Option<Vec<MigInstance>>,
    /// An MPS server runs on the device, and `processes` are its clients.
    #[serde(default)]
    pub mps_server: Option<MpsServer>,
}

/// The MPS server of a device (as measured on an H200: docs/measurements.md, "MPS"). It is
/// in the compute list beside its clients (`processes`), `nvmlDeviceGetMPSComputeRunningProcesses_v3`
/// lists the clients, and every process utilization sample goes to the server's pid, its SM and
/// memory utilization the clients' sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MpsServer {
    pub pid: u32,
    /// Absent or null (mock extension): NVML's "not available".
    #[serde(default)]
    pub used_memory_bytes: Option<u64>,
}

/// How the device answers the two per-process utilization calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessUtilization {
    /// `nvmlDeviceGetProcessUtilization` and `nvmlDeviceGetProcessesUtilizationInfo` answer.
    #[default]
    Supported,
    /// Both return NOT_SUPPORTED.
    NotSupported,
    /// Mock extension: only `nvmlDeviceGetProcessesUtilizationInfo` answers, as on drivers
    /// where the older call is gone.
    InfoOnly,
}

/// GPU Performance Monitoring ratios (0..1). NVML reports them as percent. A metric left
/// out (mock extension) answers NOT_SUPPORTED on its own. The same keys, with the same
/// meaning, make a device's (or MIG instance's) `dcgm_profiling`: DCGM's profiling fields
/// 1001-1008, which DCGM reports as ratios.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpm {
    #[serde(default)]
    pub sm_active: Option<f64>,
    #[serde(default)]
    pub sm_occupancy: Option<f64>,
    #[serde(default)]
    pub tensor_active: Option<f64>,
    #[serde(default)]
    pub dram_active: Option<f64>,
    /// The graphics engine (GPM's graphics utilization, DCGM's GR_ENGINE_ACTIVE).
    #[serde(default)]
    pub graphics_active: Option<f64>,
    #[serde(default)]
    pub fp64_active: Option<f64>,
    #[serde(default)]
    pub fp32_active: Option<f64>,
    #[serde(default)]
    pub fp16_active: Option<f64>,
}

impl Gpm {
    /// Every ratio with its scenario key, in DCGM's field order (1001-1008).
    pub fn ratios(&self) -> [(&'static str, Option<f64>); 8] {
        [
            ("graphics_active", self.graphics_active),
            ("sm_active", self.sm_active),
            ("sm_occupancy", self.sm_occupancy),
            ("tensor_active", self.tensor_active),
            ("dram_active", self.dram_active),
            ("fp64_active", self.fp64_active),
            ("fp32_active", self.fp32_active),
            ("fp16_active", self.fp16_active),
        ]
    }
}

/// A process with a compute context on the device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub pid: u32,
    /// Absent or null (mock extension): NVML's "not available" (`NVML_VALUE_NOT_AVAILABLE`).
    #[serde(default)]
    pub used_memory_bytes: Option<u64>,
    #[serde(default)]
    pub sm_util_percent: u32,
    #[serde(default)]
    pub mem_util_percent: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ecc {
    pub corrected: u64,
    pub uncorrected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XidEvent {
    pub xid: u64,
    #[serde(default)]
    pub after_ms: u64,
}

/// NVML clock event (throttle) reasons. The first six are the contract's; the last three
/// (mock extension) are real NVML reasons the agent does not export, for testing that it
/// ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleReason {
    SwPowerCap,
    HwSlowdown,
    HwThermalSlowdown,
    HwPowerBrakeSlowdown,
    SwThermalSlowdown,
    SyncBoost,
    GpuIdle,
    ApplicationsClocksSetting,
    DisplayClockSetting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pcie {
    pub tx_kib_per_second: u32,
    pub rx_kib_per_second: u32,
    pub replay_errors: u32,
}

/// NVLink traffic since the driver loaded, all links summed. NVML reports it in KiB per link
/// (or summed, for scope `UINT_MAX`); see `api::fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nvlink {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Mock extension: how many links the device has (1..=18), over which the totals are
    /// spread. Default 18, an H100 SXM's count.
    #[serde(default = "default_nvlink_links")]
    pub links: u32,
}

/// Row remapping state (`nvmlDeviceGetRemappedRows`): rows remapped for correctable and
/// uncorrectable errors, a remap waiting for the next GPU reset, and a remap that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemappedRows {
    pub correctable: u32,
    pub uncorrectable: u32,
    #[serde(default)]
    pub pending: bool,
    #[serde(default)]
    pub failure: bool,
}

/// NVML's violation counters: nanoseconds the clocks were held down by each performance
/// policy since the driver loaded. A policy left out answers NOT_SUPPORTED on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Violations {
    #[serde(default)]
    pub power: Option<u64>,
    #[serde(default)]
    pub thermal: Option<u64>,
    #[serde(default)]
    pub sync_boost: Option<u64>,
    #[serde(default)]
    pub board_limit: Option<u64>,
    #[serde(default)]
    pub low_utilization: Option<u64>,
    #[serde(default)]
    pub reliability: Option<u64>,
}

/// NVLinks of a device when the scenario does not say: an H100 SXM has 18.
pub const DEFAULT_NVLINK_LINKS: u32 = 18;

fn default_nvlink_links() -> u32 {
    DEFAULT_NVLINK_LINKS
}

/// One MIG instance (a GPU instance with one compute instance): one MIG device in NVML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigInstance {
    pub uuid: String,
    pub gpu_instance_id: u32,
    pub compute_instance_id: u32,
    pub profile: String,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    #[serde(default)]
    pub gpm: Option<Gpm>,
    /// DCGM's profiling fields for this GPU instance; absent: not supported.
    #[serde(default)]
    pub dcgm_profiling: Option<Gpm>,
    #[serde(default)]
    pub processes: Vec<Process>,
}

/// Why a scenario file was rejected.
#[derive(Debug)]
pub enum ScenarioError {
    /// Not YAML, or not the shape of a scenario (unknown field, wrong type, bad error name).
    Syntax(serde_saphyr::Error),
    /// Well-formed but impossible (used memory above total, a percent above 100, ...).
    Invalid(String),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Syntax(e) => write!(f, "{e}"),
            ScenarioError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ScenarioError {}

impl Device {
    /// The MIG instance with this GPU instance ID, if MIG is enabled and it exists.
    pub fn mig_instance(&self, gpu_instance_id: u32) -> Option<&MigInstance> {
        self.mig
            .as_ref()?
            .iter()
            .find(|m| m.gpu_instance_id == gpu_instance_id)
    }

    /// Whether MIG mode is enabled (the device has a `mig` list, even an empty one).
    pub fn mig_enabled(&self) -> bool {
        self.mig.is_some()
    }
}

impl MigInstance {
    /// The name NVML gives a MIG device: the parent's, then `MIG` and the profile, e.g.
    /// `NVIDIA H100 80GB HBM3 MIG 1g.10gb`.
    pub fn name(&self, parent: &Device) -> String {
        format!("{} MIG {}", parent.name, self.profile)
    }
}

impl Scenario {
    /// Parses and checks a scenario file's text.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let mut scenario: Scenario = serde_saphyr::from_str(text).map_err(ScenarioError::Syntax)?;
        scenario.validate().map_err(ScenarioError::Invalid)?;
        Ok(scenario)
    }

    /// The errors and delays in effect for a node-wide family.
    pub fn node_fault(&self, family: Family) -> (Option<u64>, Option<ErrorCode>) {
        let error = match family {
            Family::Init => self.init_error.or(self.errors.get(&family).copied()),
            _ => self.errors.get(&family).copied(),
        };
        (self.delays_ms.get(&family).copied(), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: &str = r#"
    uuid: GPU-1
    name: NVIDIA H100 80GB HBM3
    pci_bus_id: "00000000:18:00.0"
    memory_total_bytes: 100
    memory_used_bytes: 40
    utilization_gpu_percent: 87
    utilization_memory_percent: 45
    power_milliwatts: 350000
    temperature_celsius: 61
    sm_clock_mhz: 1980
"#;

    fn with_device(extra: &str) -> String {
        format!("devices:\n  - {}{extra}", DEVICE.trim_start())
    }

    #[test]
    fn minimal_device_gets_defaults() {
        let s = Scenario::parse(&with_device("")).unwrap();
        assert_eq!(s.driver_version, DEFAULT_DRIVER_VERSION);
        let d = &s.devices[0];
        assert_eq!(d.process_utilization, ProcessUtilization::Supported);
        assert!(d.gpm.is_none() && d.processes.is_empty() && d.mig.is_none());
        assert_eq!(d.pci.bus, 0x18);
    }

    #[test]
    fn contract_example_with_every_optional_field_parses() {
        let extra = r#"
    process_utilization: info_only
    gpm: {sm_active: 0.6, sm_occupancy: 0.4, tensor_active: 0.3, dram_active: 0.5}
    processes:
      - {pid: 4242, used_memory_bytes: 30, sm_util_percent: 80, mem_util_percent: 40}
      - {pid: 4243}
    errors: {utilization: GPU_IS_LOST, mig: NOT_SUPPORTED}
    delays_ms: {power: 100}
    energy_millijoules: 123456789
    ecc: {corrected: 12, uncorrected: 0}
    xid_events: [{xid: 79, after_ms: 3000}]
    throttle_reasons: [sw_power_cap, hw_slowdown, hw_thermal_slowdown, hw_power_brake_slowdown, sw_thermal_slowdown, sync_boost]
    pcie: {tx_kib_per_second: 1200000, rx_kib_per_second: 800000, replay_errors: 3}
    nvlink: {tx_bytes: 5000000000, rx_bytes: 4000000000}
    encoder_percent: 0
    decoder_percent: 12
    mig:
      - {uuid: MIG-1, gpu_instance_id: 1, compute_instance_id: 0, profile: 1g.10gb,
         memory_total_bytes: 10, memory_used_bytes: 2, gpm: {sm_active: 0.1}, processes: [{pid: 1}]}
"#;
        let mps = r#"
    mps_server: {pid: 4100, used_memory_bytes: 69206016}
    processes: [{pid: 4242}]
"#;
        let s = Scenario::parse(&with_device(mps)).unwrap();
        assert_eq!(
            s.devices[0].mps_server,
            Some(MpsServer {
                pid: 4100,
                used_memory_bytes: Some(69206016)
            })
        );
        let text = format!(
            "driver_version: \"550.54.15\"\ninit_error: null\nerrors: {{count: TIMEOUT}}\ndelays_ms: {{init: 5}}\n{}",
            with_device(extra)
        );
        let s = Scenario::parse(&text).unwrap();
        let d = &s.devices[0];
        assert_eq!(d.process_utilization, ProcessUtilization::InfoOnly);
        assert_eq!(d.gpm.unwrap().dram_active, Some(0.5));
        assert_eq!(d.processes[1].used_memory_bytes, None);
        assert_eq!(
            d.errors[&Family::Utilization],
            ErrorCode::from_name("GPU_IS_LOST").unwrap()
        );
        assert_eq!(d.throttle_reasons.as_ref().unwrap().len(), 6);
        assert_eq!(d.mig.as_ref().unwrap()[0].profile, "1g.10gb");
        assert_eq!(
            d.mig.as_ref().unwrap()[0].name(d),
            "NVIDIA H100 80GB HBM3 MIG 1g.10gb"
        );
        assert_eq!(d.nvlink.unwrap().links, DEFAULT_NVLINK_LINKS);
        assert_eq!(s.node_fault(Family::Init), (Some(5), None));
    }

    #[test]
    fn the_dcgm_side_parses_and_bad_ones_say_why() {
        let s = Scenario::parse(&with_device("")).unwrap();
        assert_eq!(s.dcgm.hostengine, dcgm::HostEngine::Up);
        assert!(s.devices[0].dcgm_profiling.is_none());
        let extra = r#"
    gpm: null
    dcgm_profiling: {sm_active: 0.6, sm_occupancy: 0.3, tensor_active: 0.25, dram_active: 0.4,
                     graphics_active: 0.9, fp64_active: 0.0, fp32_active: 0.1, fp16_active: 0.05}
    errors: {dcgm_values: IN_USE}
    delays_ms: {dcgm_values: 10}
    mig:
      - {uuid: MIG-1, gpu_instance_id: 1, compute_instance_id: 0, profile: 1g.10gb,
         memory_total_bytes: 10, memory_used_bytes: 2, dcgm_profiling: {sm_active: 0.1}}
"#;
        let text = format!(
            "dcgm: {{hostengine: down}}\nerrors: {{dcgm_connect: TIMEOUT, dcgm_values: GPU_IS_LOST}}\ndelays_ms: {{dcgm_values: 5}}\n{}",
            with_device(extra)
        );
        let s = Scenario::parse(&text).unwrap();
        assert_eq!(s.dcgm.hostengine, dcgm::HostEngine::Down);
        let d = &s.devices[0];
        assert_eq!(d.dcgm_profiling.unwrap().graphics_active, Some(0.9));
        assert_eq!(
            d.mig.as_ref().unwrap()[0].dcgm_profiling.unwrap().sm_active,
            Some(0.1)
        );
        assert_eq!(s.node_fault(Family::DcgmValues).0, Some(5));

        assert!(rejected("dcgm: {hostengine: sideways}").contains("sideways"));
        assert!(rejected("dcgm: {host_engine: up}").contains("host_engine"));
        assert!(
            rejected(&with_device("    errors: {dcgm_connect: TIMEOUT}\n")).contains("node-wide")
        );
        assert!(rejected("errors: {dcgm_values: IRQ_ISSUE}").contains("no DCGM status"));
        assert!(rejected(&with_device("    dcgm_profiling: {sm_active: 2}\n")).contains("ratios"));
    }

    #[test]
    fn json_is_accepted() {
        let text = r#"{"driver_version": "535.1", "devices": []}"#;
        assert_eq!(Scenario::parse(text).unwrap().driver_version, "535.1");
    }

    fn rejected(text: &str) -> String {
        match Scenario::parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn typos_are_rejected() {
        // Unknown fields at every level.
        assert!(rejected("driver_verison: x").contains("driver_verison"));
        assert!(rejected(&with_device("    utilisation_gpu_percent: 3\n"))
            .contains("utilisation_gpu_percent"));
        assert!(rejected(&with_device("    gpm: {sm_activ: 0.5}\n")).contains("sm_activ"));
        assert!(
            rejected(&with_device("    processes: [{pid: 1, used_memory: 3}]\n"))
                .contains("used_memory")
        );
        // Unknown names.
        assert!(
            rejected(&with_device("    errors: {utilization: GPU_LOST}\n")).contains("GPU_LOST")
        );
        assert!(
            rejected(&with_device("    errors: {utilisation: GPU_IS_LOST}\n"))
                .contains("utilisation")
        );
        assert!(rejected(&with_device("    process_utilization: maybe\n")).contains("maybe"));
        assert!(rejected("init_error: DRIVER_NOT_LOADE").contains("DRIVER_NOT_LOADE"));
        // A missing required field.
        assert!(rejected("devices: [{uuid: GPU-1}]").contains("name"));
    }

    #[test]
    fn the_sample_buffer_reaches_every_device_and_bad_ones_say_why() {
        let text = format!(
            "process_utilization_buffer: {{period_ms: 167, samples: 100}}\n{}",
            with_device("")
        );
        let s = Scenario::parse(&text).unwrap();
        let buffer = SampleBuffer {
            period_ms: 167,
            samples: 100,
        };
        assert_eq!(s.process_utilization_buffer, Some(buffer));
        assert_eq!(s.devices[0].sample_buffer, Some(buffer));
        assert_eq!(
            Scenario::parse("devices: []")
                .unwrap()
                .process_utilization_buffer,
            None
        );
        assert!(
            rejected("process_utilization_buffer: {period_ms: 0, samples: 1}")
                .contains("period_ms")
        );
        assert!(rejected("process_utilization_buffer: {period_ms: 10}").contains("samples"));
        assert!(
            rejected("process_utilization_buffer: {period_ms: 10, samples: 5, depth: 1}")
                .contains("depth")
        );
    }

    #[test]
    fn costs_parse_and_bad_ones_say_why() {
        let free = Scenario::parse("devices: []").unwrap();
        assert!(free.costs.is_free());
        assert!(Scenario::parse("costs: none").unwrap().costs.is_free());
        let h200 = Scenario::parse("costs: h200").unwrap().costs;
        assert_eq!(
            h200.of(CostKey::Family(Family::Energy)),
            Cost {
                cpu_us: 3_400,
                wall_us: 3_100
            }
        );
        let on_preset =
            Scenario::parse("costs: {preset: h200, energy: {cpu_us: 1, wall_us: 2}}").unwrap();
        assert_eq!(
            on_preset.costs.of(CostKey::Family(Family::Energy)),
            Cost {
                cpu_us: 1,
                wall_us: 2
            }
        );
        assert_eq!(
            on_preset.costs.of(CostKey::PcieReplay),
            h200.of(CostKey::PcieReplay)
        );
        let on_free = Scenario::parse("costs: {pcie_replay: {cpu_us: 1, wall_us: 2}}").unwrap();
        assert!(on_free.costs.of(CostKey::Family(Family::Energy)).is_free());

        assert!(rejected("costs: h100").contains("h100"));
        assert!(rejected("costs: {enrgy: {cpu_us: 1, wall_us: 1}}").contains("enrgy"));
        assert!(rejected("costs: {energy: {cpu: 1, wall_us: 1}}").contains("cpu"));
        assert!(rejected("costs: {energy: {cpu_us: 1}}").contains("wall_us"));
        assert!(
            rejected("costs: {energy: {cpu_us: 20000000, wall_us: 1}}").contains("microseconds")
        );
        assert!(rejected("costs: {preset: fast}").contains("fast"));
        assert!(rejected("costs: [h200]").contains("costs"));
    }

    #[test]
    fn impossible_values_are_rejected() {
        let bad = [
            ("    memory_used_bytes: 101\n", "exceeds"),
            ("    utilization_gpu_percent: 101\n", "above 100"),
            ("    gpm: {sm_active: 60}\n", "ratios"),
            ("    processes: [{pid: 1}, {pid: 1}]\n", "twice"),
            ("    errors: {init: TIMEOUT}\n", "node-wide"),
            (
                "    mps_server: {pid: 1}\n    processes: [{pid: 1}]\n",
                "MPS server",
            ),
            ("    mps_server: {pid: 0}\n", "pid 0"),
            ("    mps_server: {pid: 2}\n    mig: []\n", "MIG"),
            ("    pci_bus_id: 18:00.0\n", "pci_bus_id"),
            ("    nvlink: {tx_bytes: 1, rx_bytes: 1, links: 19}\n", "links"),
            ("    nvlink: {tx_bytes: 1, rx_bytes: 1, links: 0}\n", "links"),
            (
                "    mig: [{uuid: MIG-1, gpu_instance_id: 32, compute_instance_id: 0, profile: 1g.10gb, memory_total_bytes: 1, memory_used_bytes: 0}]\n",
                "below 32",
            ),
            (
                "    mig: [{uuid: MIG-1, gpu_instance_id: 1, compute_instance_id: 4294967295, profile: 1g.10gb, memory_total_bytes: 1, memory_used_bytes: 0}]\n",
                "0xFFFFFFFF",
            ),
            (
                "    mig: [{uuid: MIG-1, gpu_instance_id: 1, compute_instance_id: 0, profile: \"\", memory_total_bytes: 1, memory_used_bytes: 0}]\n",
                "profile",
            ),
            (
                "    mig: [{uuid: MIG-1, gpu_instance_id: 1, compute_instance_id: 0, profile: 1g.10gb, memory_total_bytes: 1, memory_used_bytes: 0}, {uuid: MIG-2, gpu_instance_id: 1, compute_instance_id: 1, profile: 1g.10gb, memory_total_bytes: 1, memory_used_bytes: 0}]\n",
                "appears twice",
            ),
        ];
        for (extra, expected) in bad {
            // Later keys override: append the bad value after the defaults by replacing it.
            let key = extra.trim().split(':').next().unwrap();
            let base: String = DEVICE
                .lines()
                .filter(|l| !l.trim_start().starts_with(&format!("{key}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            let text = format!("devices:\n  - {}{extra}", base.trim_start());
            let msg = rejected(&text);
            assert!(msg.contains(expected), "{extra}: {msg}");
        }
        assert!(rejected("errors: {power: TIMEOUT}").contains("per-device"));
        assert!(rejected("init_error: TIMEOUT\nerrors: {init: TIMEOUT}").contains("use one"));
        let dup = format!("{}\n  - {}", with_device(""), DEVICE.trim_start());
        assert!(rejected(&dup).contains("twice"));
    }
}
