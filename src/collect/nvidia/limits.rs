//! What holds an NVIDIA device back and how its memory fares: memory clock and memory
//! temperature, the enforced power limit, row remapping and the violation counters.
//! dcgm-exporter's default counters, read through NVML on the health tier. Absent where not
//! supported, never zero.
//!
//! Why the health tier (docs/metrics.md, "Sampling tiers"): the power limit changes only when an
//! administrator sets it, and the remapped rows and violation counters are state and counters
//! that a 30 s read loses nothing of. The memory clock and temperature are gauges, but slow
//! ones (HBM's clock is fixed under load, its temperature follows the load over tens of
//! seconds), and dcgm-exporter itself reads them every 30 s by default. On the fast tier they
//! would cost ~0.055 ms of CPU per GPU and cycle (the SM clock's and one NVLink field value's
//! figures on an H200, by analogy): 0.007 % of a core on an 8-GPU node at 5 s, where the
//! agent's target leaves no margin (docs/benchmarks.md).

use std::mem;

use nvml_wrapper::enum_wrappers::device::{Clock, PerformancePolicy};
use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_MEMORY_TEMP;
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::{
    nvmlFieldValue_t, nvmlValueType_enum_NVML_VALUE_TYPE_DOUBLE,
    nvmlValueType_enum_NVML_VALUE_TYPE_SIGNED_INT,
    nvmlValueType_enum_NVML_VALUE_TYPE_SIGNED_LONG_LONG,
    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT,
    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG,
    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG,
    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_SHORT,
};

use super::calls::SampleCalls;
use crate::sample::{DeviceHealth, RemappedRows};

/// NVML's performance policies, in `VIOLATION_REASONS`' order.
const POLICIES: [PerformancePolicy; 6] = [
    PerformancePolicy::Power,
    PerformancePolicy::Thermal,
    PerformancePolicy::SyncBoost,
    PerformancePolicy::BoardLimit,
    PerformancePolicy::LowUtilization,
    PerformancePolicy::Reliability,
];

/// Memory clock and temperature, power limit, remapped rows, violation time, into `h`.
pub(super) fn read_health(
    calls: &mut SampleCalls,
    nvml: &Nvml,
    dev: &Device<'_>,
    h: &mut DeviceHealth,
) {
    h.memory_clock_hertz = calls
        .take("memory_clock", || dev.clock_info(Clock::Memory))
        .map(|mhz| f64::from(mhz) * 1e6);
    h.memory_temperature_celsius =
        calls.take("memory_temperature", || memory_temperature(nvml, dev));
    h.power_limit_watts = calls
        .take("power_limit", || dev.enforced_power_limit())
        .map(|mw| f64::from(mw) / 1000.0);
    h.remapped_rows = calls.take("remapped_rows", || remapped_rows(nvml, dev));
    for (slot, policy) in h.throttle_seconds.iter_mut().zip(POLICIES) {
        // Nanoseconds since the driver loaded.
        *slot = calls
            .take("violations", || dev.violation_status(policy))
            .map(|v| v.violation_time as f64 / 1e9);
    }
}

/// `nvmlDeviceGetRemappedRows`, which nvml-wrapper 0.13 does not wrap.
fn remapped_rows(nvml: &Nvml, dev: &Device<'_>) -> Result<RemappedRows, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlDeviceGetRemappedRows.as_ref())?;
    let (mut corr, mut unc, mut pending, mut failure) = (0u32, 0u32, 0u32, 0u32);
    // SAFETY: the handle belongs to this NVML instance; NVML writes one uint through each
    // pointer.
    unsafe {
        nvml_try(sym(
            dev.handle(),
            &mut corr,
            &mut unc,
            &mut pending,
            &mut failure,
        ))?;
    }
    Ok(RemappedRows {
        correctable: f64::from(corr),
        uncorrectable: f64::from(unc),
        pending: pending != 0,
        failed: failure != 0,
    })
}

/// The memory temperature field value, in °C. The call's error, or the field's own (a board
/// without HBM answers `NOT_SUPPORTED` in the field), is the error.
fn memory_temperature(nvml: &Nvml, dev: &Device<'_>) -> Result<f64, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlDeviceGetFieldValues.as_ref())?;
    // SAFETY: a zeroed nvmlFieldValue_t is valid; NVML fills the one entry we pass, and the
    // handle belongs to this NVML instance.
    let value = unsafe {
        let mut v: nvmlFieldValue_t = mem::zeroed();
        v.fieldId = NVML_FI_DEV_MEMORY_TEMP;
        nvml_try(sym(dev.handle(), 1, &mut v))?;
        nvml_try(v.nvmlReturn)?;
        field_value(&v)
    };
    value.ok_or(NvmlError::Unknown)
}

/// A field value as a number, whatever type NVML gave it; `None` for a type it does not
/// define.
#[allow(non_upper_case_globals)] // bindgen's constant names, in patterns.
fn field_value(v: &nvmlFieldValue_t) -> Option<f64> {
    // SAFETY: `valueType` says which member of the union NVML wrote.
    unsafe {
        Some(match v.valueType {
            nvmlValueType_enum_NVML_VALUE_TYPE_DOUBLE => v.value.dVal,
            nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT => f64::from(v.value.uiVal),
            nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG => v.value.ulVal as f64,
            nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG => v.value.ullVal as f64,
            nvmlValueType_enum_NVML_VALUE_TYPE_SIGNED_LONG_LONG => v.value.sllVal as f64,
            nvmlValueType_enum_NVML_VALUE_TYPE_SIGNED_INT => f64::from(v.value.siVal),
            nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_SHORT => f64::from(v.value.usVal),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvml_wrapper_sys::bindings::nvmlValue_t;

    fn with(value_type: u32, value: nvmlValue_t) -> nvmlFieldValue_t {
        // SAFETY: a zeroed nvmlFieldValue_t is valid.
        let mut v: nvmlFieldValue_t = unsafe { mem::zeroed() };
        v.valueType = value_type;
        v.value = value;
        v
    }

    #[test]
    fn a_field_value_is_read_by_its_type() {
        let cases = [
            (
                with(
                    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT,
                    nvmlValue_t { uiVal: 55 },
                ),
                Some(55.0),
            ),
            (
                with(
                    nvmlValueType_enum_NVML_VALUE_TYPE_SIGNED_INT,
                    nvmlValue_t { siVal: -3 },
                ),
                Some(-3.0),
            ),
            (
                with(
                    nvmlValueType_enum_NVML_VALUE_TYPE_DOUBLE,
                    nvmlValue_t { dVal: 54.5 },
                ),
                Some(54.5),
            ),
            (
                with(
                    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG,
                    nvmlValue_t { ullVal: 61 },
                ),
                Some(61.0),
            ),
            (
                with(
                    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_SHORT,
                    nvmlValue_t { usVal: 40 },
                ),
                Some(40.0),
            ),
            (with(99, nvmlValue_t { ullVal: 1 }), None),
        ];
        for (v, want) in cases {
            assert_eq!(field_value(&v), want);
        }
    }
}
