//! The scenario's `costs` (the mock's README, "Costs"): what each NVML call costs the caller, per call
//! family. Absent or `none`: every call is free, so tests stay fast. `h200`: the figures
//! measured on a real H200 ([`H200`]). A map `{family: {cpu_us, wall_us}}` sets families on
//! top of free, or on top of a preset named by its `preset` key (mock extension).
//!
//! The burning itself is [`crate::cost`]'s; this file owns the format and the preset table.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::Family;

/// The most one call may be set to cost, in either figure: 10 s. A larger value is almost
/// certainly milliseconds or nanoseconds written as microseconds.
pub const MAX_COST_US: u64 = 10_000_000;

/// What one call costs: `cpu_us` of CPU burned in the calling thread, and at least `wall_us`
/// of wall time in all (the rest of the wall time is slept, as a driver waits in the kernel).
/// A `wall_us` below `cpu_us` means the call takes as long as burning its CPU does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    pub cpu_us: u64,
    pub wall_us: u64,
}

impl Cost {
    pub const FREE: Cost = Cost {
        cpu_us: 0,
        wall_us: 0,
    };

    const fn us(cpu_us: u64, wall_us: u64) -> Cost {
        Cost { cpu_us, wall_us }
    }

    pub fn is_free(self) -> bool {
        self == Cost::FREE
    }
}

/// What a cost is set for: a call family, or (mock extension) one call of a family whose
/// calls cost differently on a real GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CostKey {
    Family(Family),
    /// `nvmlDeviceGetPcieReplayCounter`; the `pcie` key is `nvmlDeviceGetPcieThroughput`.
    PcieReplay,
    /// `nvmlGpmMetricsGet`, arithmetic on two samples in the library; the `gpm` key is the
    /// calls that reach the driver (support query, samples).
    GpmMetrics,
}

impl CostKey {
    /// The key a scenario names, or `None`.
    pub fn from_name(name: &str) -> Option<CostKey> {
        match name {
            "pcie_replay" => Some(CostKey::PcieReplay),
            "gpm_metrics" => Some(CostKey::GpmMetrics),
            _ => Family::ALL
                .iter()
                .find(|f| f.name() == name)
                .map(|f| CostKey::Family(*f)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CostKey::Family(f) => f.name(),
            CostKey::PcieReplay => "pcie_replay",
            CostKey::GpmMetrics => "gpm_metrics",
        }
    }
}

/// A named set of costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Every call free (the default).
    None,
    /// The H200 table: [`H200`].
    H200,
}

impl Preset {
    fn from_name(name: &str) -> Option<Preset> {
        match name {
            "none" => Some(Preset::None),
            "h200" => Some(Preset::H200),
            _ => None,
        }
    }

    fn table(self) -> &'static [(CostKey, Cost)] {
        match self {
            Preset::None => &[],
            Preset::H200 => H200,
        }
    }
}

/// An assumed cost for calls the H200 measurement did not time: the cheapest driver query it
/// did time (`nvmlDeviceGetMemoryInfo_v2`, 14 µs of CPU, 10 µs of wall time).
const UNMEASURED: Cost = Cost::us(14, 10);

/// One NVML call of each family on one H200 (driver 580.159.04, Firecracker VM), measured
/// 2026-11-30: median wall and mean CPU of the calling process over 15 calls. The README's
/// "Costs" table lists the same figures with the calls they stand for, and says which are
/// measured and which are given by analogy.
pub const H200: &[(CostKey, Cost)] = &[
    (CostKey::Family(Family::Init), Cost::us(13_000, 13_000)),
    (CostKey::Family(Family::Count), UNMEASURED),
    (CostKey::Family(Family::System), UNMEASURED),
    (CostKey::Family(Family::Handle), UNMEASURED),
    (CostKey::Family(Family::Uuid), UNMEASURED),
    (CostKey::Family(Family::Name), UNMEASURED),
    (CostKey::Family(Family::Pci), UNMEASURED),
    (CostKey::Family(Family::Memory), Cost::us(14, 10)),
    (CostKey::Family(Family::Utilization), Cost::us(270, 4)),
    (CostKey::Family(Family::Power), Cost::us(130, 2)),
    (CostKey::Family(Family::Temperature), Cost::us(30, 3)),
    (CostKey::Family(Family::Clock), Cost::us(30, 3)),
    (CostKey::Family(Family::Processes), Cost::us(14, 9)),
    // Not measured; the same kind of list as the compute processes'.
    (CostKey::Family(Family::Mps), Cost::us(14, 9)),
    // Also when the answer is NOT_FOUND (no samples).
    (
        CostKey::Family(Family::ProcessUtilization),
        Cost::us(2_900, 2_900),
    ),
    (CostKey::Family(Family::Gpm), Cost::us(100, 53)),
    (CostKey::GpmMetrics, UNMEASURED),
    (CostKey::Family(Family::Energy), Cost::us(3_400, 3_100)),
    // One error type per call.
    (CostKey::Family(Family::Ecc), Cost::us(180, 5)),
    (CostKey::Family(Family::Events), UNMEASURED),
    (CostKey::Family(Family::Throttle), Cost::us(35, 3)),
    // One direction per call; the driver samples the link for 20 ms.
    (CostKey::Family(Family::Pcie), Cost::us(930, 21_000)),
    (CostKey::PcieReplay, Cost::us(420, 260)),
    // Per requested field.
    (CostKey::Family(Family::Nvlink), Cost::us(25, 15)),
    (CostKey::Family(Family::Encoder), Cost::us(4, 3)),
    (CostKey::Family(Family::Decoder), Cost::us(4, 3)),
    // Not measured: each is given the figures of the most similar measured call (README,
    // "Costs"), an analogy and not a measurement.
    // `nvmlDeviceGetClockInfo(MEM)`: the same call as the SM clock's.
    (CostKey::Family(Family::MemoryClock), Cost::us(30, 3)),
    // `nvmlDeviceGetFieldValues(MEMORY_TEMP)`, per field: as one NVLink field value.
    (CostKey::Family(Family::MemoryTemperature), Cost::us(25, 15)),
    // `nvmlDeviceGetEnforcedPowerLimit`: as `nvmlDeviceGetPowerUsage`, the same power
    // management interface.
    (CostKey::Family(Family::PowerLimit), Cost::us(130, 2)),
    // `nvmlDeviceGetRemappedRows`: as one `nvmlDeviceGetTotalEccErrors`, the other memory
    // error bookkeeping read.
    (CostKey::Family(Family::RemappedRows), Cost::us(180, 5)),
    // `nvmlDeviceGetViolationStatus`, one policy per call: as
    // `nvmlDeviceGetCurrentClocksThrottleReasons`, the other clock-limit state read.
    (CostKey::Family(Family::Violations), Cost::us(35, 3)),
    (CostKey::Family(Family::Mig), UNMEASURED),
    // DCGM was not measured (no machine with DCGM was lent). Assumed from the shape of the
    // calls: a connection is a socket handshake with the host engine, taken as a millisecond
    // of CPU and five of wall time; every other call is one request answered from the host
    // engine's cache without a driver call, taken as twice the cheapest NVML query's CPU
    // (`nvmlDeviceGetMemoryInfo_v2`, 14 µs) per request plus a local socket round trip. The
    // README's "Costs" table says the same; scripts/gpu-dcgm-check.sh measures them.
    (CostKey::Family(Family::DcgmConnect), Cost::us(1_000, 5_000)),
    (CostKey::Family(Family::DcgmValues), Cost::us(30, 100)),
];

/// The resolved cost of every call: a preset with the scenario's overrides on top. Keys not
/// in the map are free.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Costs {
    by_key: BTreeMap<CostKey, Cost>,
}

impl Costs {
    /// The cost of one call under `key`.
    pub fn of(&self, key: CostKey) -> Cost {
        self.by_key.get(&key).copied().unwrap_or(Cost::FREE)
    }

    pub fn is_free(&self) -> bool {
        self.by_key.values().all(|c| c.is_free())
    }

    fn preset(preset: Preset) -> Costs {
        Costs {
            by_key: preset.table().iter().copied().collect(),
        }
    }

    /// Rejects values past [`MAX_COST_US`].
    pub(super) fn validate(&self) -> Result<(), String> {
        for (key, cost) in &self.by_key {
            for (what, v) in [("cpu_us", cost.cpu_us), ("wall_us", cost.wall_us)] {
                if v > MAX_COST_US {
                    return Err(format!(
                        "costs.{}.{what} is {v}: over {MAX_COST_US} µs (10 s) for one call; costs are in microseconds",
                        key.name()
                    ));
                }
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Costs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CostsVisitor)
    }
}

struct CostsVisitor;

const EXPECTED: &str =
    "`none`, `h200`, or a map {family: {cpu_us, wall_us}} (optionally with `preset: h200`)";

impl<'de> Visitor<'de> for CostsVisitor {
    type Value = Costs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Costs, E> {
        Ok(Costs::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<Costs, E> {
        Ok(Costs::default())
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Costs, E> {
        Preset::from_name(name).map(Costs::preset).ok_or_else(|| {
            E::custom(format!(
                "unknown costs preset `{name}`: expected {EXPECTED}"
            ))
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Costs, A::Error> {
        let mut preset = None;
        let mut overrides = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            if name == "preset" {
                let p: String = map.next_value()?;
                let p = Preset::from_name(&p).ok_or_else(|| {
                    de::Error::custom(format!("unknown costs preset `{p}`: expected none or h200"))
                })?;
                if preset.replace(p).is_some() {
                    return Err(de::Error::custom("costs: `preset` is set twice"));
                }
                continue;
            }
            let key = CostKey::from_name(&name).ok_or_else(|| {
                de::Error::custom(format!(
                    "costs: unknown call family `{name}` (a call family, pcie_replay, gpm_metrics or preset)"
                ))
            })?;
            let cost: Cost = map.next_value()?;
            if overrides.insert(key, cost).is_some() {
                return Err(de::Error::custom(format!("costs: `{name}` is set twice")));
            }
        }
        let mut costs = Costs::preset(preset.unwrap_or(Preset::None));
        costs.by_key.extend(overrides);
        Ok(costs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_an_h200_cost() {
        let costs = Costs::preset(Preset::H200);
        for f in Family::ALL {
            assert!(
                !costs.of(CostKey::Family(*f)).is_free(),
                "{} has no H200 cost",
                f.name()
            );
        }
        assert!(!costs.of(CostKey::PcieReplay).is_free());
        assert!(!costs.of(CostKey::GpmMetrics).is_free());
        assert_eq!(H200.len(), Family::ALL.len() + 2, "a key listed twice");
    }

    #[test]
    fn names_round_trip() {
        for f in Family::ALL {
            let key = CostKey::Family(*f);
            assert_eq!(CostKey::from_name(key.name()), Some(key));
        }
        assert_eq!(CostKey::from_name("pcie_replay"), Some(CostKey::PcieReplay));
        assert_eq!(CostKey::from_name("pcie_throughput"), None);
    }
}
