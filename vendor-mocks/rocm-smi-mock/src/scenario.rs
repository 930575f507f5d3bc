//! The scenario file: the devices the mock reports, their values, and the faults it injects.
//!
//! ```yaml
//! init: INIT_ERROR            # optional: rsmi_init fails with this status
//! devices:
//!   - pci_bus_id: "0000:19:00.0"
//!     name: Aldebaran/MI200 [Instinct MI210]
//!     busy_percent: 87
//!     power_microwatts: 300000000
//!     temperature_millicelsius: { edge: 51000, junction: 60000 }
//!     energy: { counter: 1000000, resolution_microjoules: 15.3 }
//!     ecc: { umc: { correctable: 3, uncorrectable: 1 } }
//!     errors: { rsmi_dev_busy_percent_get: PERMISSION }
//!     delays_ms: { rsmi_dev_energy_count_get: 3000 }
//! ```
//! A value left out is `NOT_SUPPORTED`, as on an ASIC that lacks it.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::status::Status;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A status for `rsmi_init` to fail with.
    #[serde(default)]
    pub init: Option<String>,
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(skip)]
    pub init_status: Option<Status>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// `dddd:bb:dd.f`, as sysfs spells it.
    pub pci_bus_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub busy_percent: Option<u32>,
    #[serde(default)]
    pub memory_busy_percent: Option<u32>,
    #[serde(default)]
    pub vram_used_bytes: Option<u64>,
    #[serde(default)]
    pub vram_total_bytes: Option<u64>,
    #[serde(default)]
    pub power_microwatts: Option<u64>,
    #[serde(default)]
    pub temperature_millicelsius: Temperatures,
    #[serde(default)]
    pub energy: Option<Energy>,
    #[serde(default)]
    pub pcie_replays: Option<u64>,
    /// By RAS block, lower case (`umc`, `sdma`, `gfx`, ...): the blocks with ECC enabled.
    #[serde(default)]
    pub ecc: BTreeMap<String, EccCount>,
    /// By function name (`rsmi_dev_power_ave_get`): the status that call fails with.
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
    /// By function name: how long that call blocks before answering (a GPU in reset).
    #[serde(default)]
    pub delays_ms: BTreeMap<String, u64>,

    #[serde(skip)]
    pub bdfid: u64,
    #[serde(skip)]
    pub ecc_mask: u64,
    #[serde(skip)]
    pub ecc_by_bit: BTreeMap<u64, EccCount>,
    #[serde(skip)]
    pub error_status: BTreeMap<String, Status>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Temperatures {
    #[serde(default)]
    pub edge: Option<i64>,
    #[serde(default)]
    pub junction: Option<i64>,
    #[serde(default)]
    pub memory: Option<i64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Energy {
    pub counter: u64,
    pub resolution_microjoules: f32,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EccCount {
    pub correctable: u64,
    pub uncorrectable: u64,
}

/// The RAS blocks of `rsmi_gpu_block_t`, by their bit.
pub const BLOCKS: [(&str, u64); 14] = [
    ("umc", 0x1),
    ("sdma", 0x2),
    ("gfx", 0x4),
    ("mmhub", 0x8),
    ("athub", 0x10),
    ("pcie_bif", 0x20),
    ("hdp", 0x40),
    ("xgmi_wafl", 0x80),
    ("df", 0x100),
    ("smn", 0x200),
    ("sem", 0x400),
    ("mp0", 0x800),
    ("mp1", 0x1000),
    ("fuse", 0x2000),
];

/// The functions the mock exports, for checking `errors` keys.
pub const CALLS: [&str; 14] = [
    "rsmi_num_monitor_devices",
    "rsmi_dev_pci_id_get",
    "rsmi_dev_name_get",
    "rsmi_dev_busy_percent_get",
    "rsmi_dev_memory_busy_percent_get",
    "rsmi_dev_memory_usage_get",
    "rsmi_dev_memory_total_get",
    "rsmi_dev_power_ave_get",
    "rsmi_dev_temp_metric_get",
    "rsmi_dev_energy_count_get",
    "rsmi_dev_pci_replay_counter_get",
    "rsmi_dev_ecc_enabled_get",
    "rsmi_dev_ecc_count_get",
    "rsmi_shut_down",
];

/// ROCm SMI's encoding of a PCI address: domain above bit 32, then bus, device, function.
pub fn parse_bdfid(s: &str) -> Option<u64> {
    let (domain, rest) = s.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let domain = u64::from_str_radix(domain, 16)
        .ok()
        .filter(|d| *d <= 0xffff_ffff)?;
    let bus = u64::from_str_radix(bus, 16).ok().filter(|b| *b <= 0xff)?;
    let device = u64::from_str_radix(device, 16)
        .ok()
        .filter(|d| *d <= 0x1f)?;
    let function = u64::from_str_radix(function, 16).ok().filter(|f| *f <= 7)?;
    Some((domain << 32) | (bus << 8) | (device << 3) | function)
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut s: Scenario = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if let Some(name) = &s.init {
            s.init_status = Some(
                Status::from_name(name).ok_or_else(|| format!("init: unknown status {name:?}"))?,
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, d) in s.devices.iter_mut().enumerate() {
            let at = |what: String| format!("devices[{i}]: {what}");
            d.bdfid = parse_bdfid(&d.pci_bus_id)
                .ok_or_else(|| at(format!("pci_bus_id {:?} is not dddd:bb:dd.f", d.pci_bus_id)))?;
            if !seen.insert(d.bdfid) {
                return Err(at(format!("pci_bus_id {} appears twice", d.pci_bus_id)));
            }
            for (block, count) in &d.ecc {
                let bit = BLOCKS
                    .iter()
                    .find(|(n, _)| n == block)
                    .map(|(_, b)| *b)
                    .ok_or_else(|| at(format!("ecc: unknown block {block:?}")))?;
                d.ecc_mask |= bit;
                d.ecc_by_bit.insert(bit, *count);
            }
            for (call, status) in &d.errors {
                if !CALLS.contains(&call.as_str()) {
                    return Err(at(format!(
                        "errors: {call:?} is not a function the mock exports"
                    )));
                }
                let st = Status::from_name(status)
                    .ok_or_else(|| at(format!("errors.{call}: unknown status {status:?}")))?;
                d.error_status.insert(call.clone(), st);
            }
            for call in d.delays_ms.keys() {
                if !CALLS.contains(&call.as_str()) {
                    return Err(at(format!(
                        "delays_ms: {call:?} is not a function the mock exports"
                    )));
                }
            }
            if let Some(e) = d.energy {
                if !(e.resolution_microjoules.is_finite() && e.resolution_microjoules > 0.0) {
                    return Err(at(
                        "energy.resolution_microjoules must be a positive number".into(),
                    ));
                }
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_encode_as_rocm_smi_does() {
        assert_eq!(parse_bdfid("0000:19:00.0"), Some(0x1900));
        assert_eq!(parse_bdfid("0001:c1:1f.7"), Some((1 << 32) | 0xc1ff));
        assert_eq!(parse_bdfid("0000:19:20.0"), None);
        assert_eq!(parse_bdfid("19:00.0"), None);
    }

    #[test]
    fn bad_scenarios_name_what_is_wrong() {
        for (text, says) in [
            ("devices: [{pci_bus_id: nope}]", "pci_bus_id"),
            ("devices: [{pci_bus_id: '0000:01:00.0', ecc: {brain: {correctable: 1, uncorrectable: 0}}}]", "brain"),
            ("devices: [{pci_bus_id: '0000:01:00.0', errors: {rsmi_frob: PERMISSION}}]", "rsmi_frob"),
            ("devices: [{pci_bus_id: '0000:01:00.0', errors: {rsmi_dev_busy_percent_get: SAD}}]", "SAD"),
            ("init: NOPE", "NOPE"),
            ("devices: [{pci_bus_id: '0000:01:00.0', colour: red}]", "colour"),
            ("devices: [{pci_bus_id: '0000:01:00.0'}, {pci_bus_id: '0000:01:00.0'}]", "twice"),
        ] {
            let e = Scenario::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
