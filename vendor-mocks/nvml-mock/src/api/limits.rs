//! What holds a GPU back and how its memory is repaired: the enforced power limit, the
//! violation counters (time the clocks were held down, per performance policy) and row
//! remapping.
//!
//! Each answers from its optional scenario field, `NOT_SUPPORTED` when the field is absent or
//! the handle is a MIG device. Values are NVML's units: milliwatts, nanoseconds.

use std::ffi::c_uint;
use std::time::{SystemTime, UNIX_EPOCH};

use nvml_wrapper_sys::bindings::*;

use super::{device_call, out};
use crate::codes::{NvmlResult, INVALID_ARGUMENT, NOT_SUPPORTED};
use crate::scenario::{Family, Violations};

/// `power_limit_milliwatts`: the power limit the driver enforces now, in milliwatts.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    device: nvmlDevice_t,
    limit: *mut c_uint,
) -> nvmlReturn_t {
    device_call(device, Family::PowerLimit, |d, _| {
        let mw = d.power_limit_milliwatts.ok_or(NOT_SUPPORTED)?;
        // SAFETY (all closures in this file): NVML's contract: out-pointers are NULL or
        // writable.
        unsafe { out(limit, mw) }
    })
}

/// `remapped_rows`: rows remapped for correctable and for uncorrectable errors, whether a
/// remap waits for the next GPU reset (`isPending`), and whether one failed
/// (`failureOccurred`), each pending and failure as 0 or 1. Every pointer must be non-NULL.
/// `NOT_SUPPORTED` on a GPU in MIG mode with instances, as the NVML reference says ("On
/// MIG-enabled GPUs with active instances, querying the number of remapped rows is not
/// supported").
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetRemappedRows(
    device: nvmlDevice_t,
    corrRows: *mut c_uint,
    uncRows: *mut c_uint,
    isPending: *mut c_uint,
    failureOccurred: *mut c_uint,
) -> nvmlReturn_t {
    device_call(device, Family::RemappedRows, |d, _| {
        let rows = d.remapped_rows.ok_or(NOT_SUPPORTED)?;
        if d.mig.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(NOT_SUPPORTED);
        }
        if [corrRows, uncRows, isPending, failureOccurred]
            .iter()
            .any(|p| p.is_null())
        {
            return Err(INVALID_ARGUMENT);
        }
        unsafe {
            out(corrRows, rows.correctable)?;
            out(uncRows, rows.uncorrectable)?;
            out(isPending, c_uint::from(rows.pending))?;
            out(failureOccurred, c_uint::from(rows.failure))
        }
    })
}

/// The scenario's counter for one of NVML's performance policies. The six policies are the
/// contract's; `TOTAL_APP_CLOCKS` and `TOTAL_BASE_CLOCKS` (real NVML policies the mock does
/// not model) are `NOT_SUPPORTED`, anything else `INVALID_ARGUMENT`.
fn violation(v: &Violations, policy: nvmlPerfPolicyType_t) -> NvmlResult<u64> {
    let value = match policy {
        nvmlPerfPolicyType_enum_NVML_PERF_POLICY_POWER => v.power,
        nvmlPerfPolicyType_enum_NVML_PERF_POLICY_THERMAL => v.thermal,
        nvmlPerfPolicyType_enum_NVML_PERF_POLICY_SYNC_BOOST => v.sync_boost,
        nvmlPerfPolicyType_enum_NVML_PERF_POLICY_BOARD_LIMIT => v.board_limit,
        nvmlPerfPolicyType_enum_NVML_PERF_POLICY_LOW_UTILIZATION => v.low_utilization,
        nvmlPerfPolicyType_enum_NVML_PERF_POLICY_RELIABILITY => v.reliability,
        nvmlPerfPolicyType_enum_NVML_PERF_POLICY_TOTAL_APP_CLOCKS
        | nvmlPerfPolicyType_enum_NVML_PERF_POLICY_TOTAL_BASE_CLOCKS => None,
        _ => return Err(INVALID_ARGUMENT),
    };
    value.ok_or(NOT_SUPPORTED)
}

/// `violations_ns.<policy>`: nanoseconds the clocks were held below their target by that
/// policy since the driver loaded (`violationTime`), stamped with the CPU time in
/// microseconds since the Unix epoch (`referenceTime`). A device without `violations_ns`,
/// or without that policy in it, answers `NOT_SUPPORTED`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetViolationStatus(
    device: nvmlDevice_t,
    perfPolicyType: nvmlPerfPolicyType_t,
    violTime: *mut nvmlViolationTime_t,
) -> nvmlReturn_t {
    device_call(device, Family::Violations, |d, _| {
        let v = d.violations_ns.ok_or(NOT_SUPPORTED)?;
        let ns = violation(&v, perfPolicyType)?;
        let value = nvmlViolationTime_t {
            referenceTime: now_us(),
            violationTime: ns,
        };
        unsafe { out(violTime, value) }
    })
}

/// Microseconds since the Unix epoch.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_reads_its_own_counter() {
        let v = Violations {
            power: Some(1),
            thermal: Some(2),
            sync_boost: Some(3),
            board_limit: Some(4),
            low_utilization: Some(5),
            reliability: None,
        };
        let got: Vec<_> = (0..=5).map(|p| violation(&v, p)).collect();
        assert_eq!(got, [Ok(1), Ok(2), Ok(3), Ok(4), Ok(5), Err(NOT_SUPPORTED)]);
        assert_eq!(violation(&v, 10), Err(NOT_SUPPORTED));
        assert_eq!(violation(&v, 11), Err(NOT_SUPPORTED));
        assert_eq!(violation(&v, 6), Err(INVALID_ARGUMENT));
        assert_eq!(violation(&v, 12), Err(INVALID_ARGUMENT));
    }
}
