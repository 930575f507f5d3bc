//! `nvmlDeviceGetFieldValues`: NVML's batch query of numbered fields, of which the mock
//! models the NVLink ones (the `nvlink` family) and the memory temperature (the
//! `memory_temperature` family).
//!
//! The call as a whole belongs to the family of its first requested field: `memory_temperature`
//! when that is `NVML_FI_DEV_MEMORY_TEMP`, `nvlink` otherwise. That family's delay and error
//! apply to the call, and each requested field costs one call of it; a MIG device handle is
//! `NOT_SUPPORTED`. Each requested field then gets its own `nvmlReturn`:
//!
//! | field | value |
//! |---|---|
//! | `NVML_FI_DEV_MEMORY_TEMP` (82) | `memory_temperature_celsius`, `unsigned int` (`scopeId` ignored); `NOT_SUPPORTED` without it |
//! | `NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX` (138), `_RX` (139) | KiB of data sent / received since the driver loaded, `unsigned long long`. `scopeId` = a link (0 .. links-1): that link's share; `UINT_MAX`: all links summed |
//! | `NVML_FI_DEV_NVLINK_LINK_COUNT` (91) | the device's link count, `unsigned int` (`scopeId` ignored) |
//! | anything else | `NOT_SUPPORTED` |
//!
//! The scenario's `nvlink.tx_bytes` / `rx_bytes` are the all-links totals in bytes; NVML
//! counts KiB, so the totals are `bytes / 1024` rounded down (choose multiples of 1024 for an
//! exact round trip). A total is spread over the links so that the per-link values add up to
//! it exactly: each link gets `total / links`, and the first `total % links` links one more.
//! A link number at or past the link count is `INVALID_ARGUMENT` in that field. A device
//! without `nvlink` answers `NOT_SUPPORTED` in every NVLink field (the call succeeds).

use std::ffi::c_int;
use std::time::{SystemTime, UNIX_EPOCH};

use nvml_wrapper_sys::bindings::field_id::{
    NVML_FI_DEV_MEMORY_TEMP, NVML_FI_DEV_NVLINK_LINK_COUNT, NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX,
    NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX,
};
use nvml_wrapper_sys::bindings::*;

use super::{device_call_priced, Price};
use crate::codes::{NvmlResult, INVALID_ARGUMENT, NOT_SUPPORTED, SUCCESS};
use crate::scenario::{Device, Family, Nvlink};

/// `scopeId` asking for all links summed.
pub const ALL_LINKS: u32 = u32::MAX;

/// One field's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    UnsignedInt(u32),
    UnsignedLongLong(u64),
}

/// Fills each of the `valuesCount` entries whose `fieldId` (and `scopeId`) the caller set.
/// A count below 1 or a NULL array is `INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    device: nvmlDevice_t,
    valuesCount: c_int,
    values: *mut nvmlFieldValue_t,
) -> nvmlReturn_t {
    let first = if valuesCount >= 1 {
        // SAFETY: NVML's contract: `values` is NULL or holds `valuesCount` entries.
        unsafe { values.as_ref() }.map(|v| v.fieldId)
    } else {
        None
    };
    let family = call_family(first);
    // The H200 figure is for one field; a batch costs each of its fields.
    let price = Price {
        times: u32::try_from(valuesCount).unwrap_or(0),
        ..Price::of(family)
    };
    device_call_priced(device, family, price, |d, _| {
        let count = usize::try_from(valuesCount).map_err(|_| INVALID_ARGUMENT)?;
        if values.is_null() || count == 0 {
            return Err(INVALID_ARGUMENT);
        }
        // SAFETY: NVML's contract: `values` holds `valuesCount` entries, ours for the call.
        let values = unsafe { std::slice::from_raw_parts_mut(values, count) };
        let stamp = now_us();
        for v in values {
            fill(v, d, stamp);
        }
        Ok(())
    })
}

/// The family a call belongs to, by its first requested field.
fn call_family(first_field: Option<u32>) -> Family {
    match first_field {
        Some(NVML_FI_DEV_MEMORY_TEMP) => Family::MemoryTemperature,
        _ => Family::Nvlink,
    }
}

fn fill(v: &mut nvmlFieldValue_t, d: &Device, stamp: i64) {
    v.timestamp = stamp;
    v.latencyUsec = 0;
    v.value = nvmlValue_t { ullVal: 0 };
    match answer(d, v.fieldId, v.scopeId) {
        Ok(Value::UnsignedInt(x)) => {
            v.nvmlReturn = SUCCESS;
            v.valueType = nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT;
            v.value.uiVal = x;
        }
        Ok(Value::UnsignedLongLong(x)) => {
            v.nvmlReturn = SUCCESS;
            v.valueType = nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
            v.value.ullVal = x;
        }
        Err(code) => v.nvmlReturn = code,
    }
}

fn answer(d: &Device, field: u32, scope: u32) -> NvmlResult<Value> {
    match field {
        NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX => {
            let n = nvlink(d)?;
            Ok(Value::UnsignedLongLong(share(
                n.tx_bytes / 1024,
                n.links,
                scope,
            )?))
        }
        NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX => {
            let n = nvlink(d)?;
            Ok(Value::UnsignedLongLong(share(
                n.rx_bytes / 1024,
                n.links,
                scope,
            )?))
        }
        NVML_FI_DEV_NVLINK_LINK_COUNT => Ok(Value::UnsignedInt(nvlink(d)?.links)),
        NVML_FI_DEV_MEMORY_TEMP => d
            .memory_temperature_celsius
            .map(Value::UnsignedInt)
            .ok_or(NOT_SUPPORTED),
        _ => Err(NOT_SUPPORTED),
    }
}

fn nvlink(d: &Device) -> NvmlResult<Nvlink> {
    d.nvlink.ok_or(NOT_SUPPORTED)
}

/// The part of `total` that link `scope` carries, or all of it for [`ALL_LINKS`]. The
/// per-link parts add up to `total` exactly.
fn share(total: u64, links: u32, scope: u32) -> NvmlResult<u64> {
    if scope == ALL_LINKS {
        return Ok(total);
    }
    if scope >= links || links == 0 {
        return Err(INVALID_ARGUMENT);
    }
    let links = u64::from(links);
    let extra = u64::from(u64::from(scope) < total % links);
    Ok(total / links + extra)
}

/// Microseconds since the Unix epoch, as NVML stamps field values.
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_the_family_of_its_first_field() {
        assert_eq!(
            call_family(Some(NVML_FI_DEV_MEMORY_TEMP)),
            Family::MemoryTemperature
        );
        assert_eq!(
            call_family(Some(NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX)),
            Family::Nvlink
        );
        assert_eq!(call_family(Some(12_345)), Family::Nvlink);
        assert_eq!(call_family(None), Family::Nvlink);
    }

    #[test]
    fn shares_add_up_to_the_total() {
        for (total, links) in [(0, 1), (17, 18), (4_882_812, 18), (1_000_003, 7), (5, 5)] {
            let sum: u64 = (0..links)
                .map(|l| share(total, links, l).unwrap_or(0))
                .sum();
            assert_eq!(sum, total, "{total} over {links}");
            assert_eq!(share(total, links, ALL_LINKS), Ok(total));
            assert_eq!(share(total, links, links), Err(INVALID_ARGUMENT));
        }
    }
}
