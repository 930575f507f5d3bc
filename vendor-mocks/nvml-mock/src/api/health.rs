//! Health and long-tail device counters: energy, ECC, clock event (throttle) reasons, PCIe
//! throughput and replays, encoder and decoder utilization.
//!
//! Each answers from its optional scenario field, and `NOT_SUPPORTED` when the field is
//! absent or the handle is a MIG device. Values are NVML's units: energy in millijoules,
//! PCIe throughput in KiB/s, utilization in percent.

use std::ffi::{c_uint, c_ulonglong};

use nvml_wrapper_sys::bindings::*;

use super::{device_call, device_call_priced, out, Price};
use crate::codes::{NvmlResult, INVALID_ARGUMENT, NOT_SUPPORTED};
use crate::scenario::{CostKey, Device, Family, ThrottleReason};

/// The sampling period reported with encoder and decoder utilization, in microseconds:
/// one sixth of a second, the shortest period NVML uses for its utilization counters.
pub const CODEC_SAMPLING_PERIOD_US: c_uint = 166_667;

/// Total energy since the driver loaded, in millijoules (`energy_millijoules`).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: nvmlDevice_t,
    energy: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(device, Family::Energy, |d, _| {
        let value = d.energy_millijoules.ok_or(NOT_SUPPORTED)?;
        // SAFETY (all closures in this file): NVML's contract: out-pointers are NULL or
        // writable.
        unsafe { out(energy, value) }
    })
}

/// `ecc.corrected` or `ecc.uncorrected`, for both the volatile and the aggregate counter
/// (the scenario has one number of each; a driver that never reloaded reports the same).
/// Any other error or counter type is `INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: nvmlDevice_t,
    errorType: nvmlMemoryErrorType_t,
    counterType: nvmlEccCounterType_t,
    eccCounts: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(device, Family::Ecc, |d, _| {
        let ecc = d.ecc.ok_or(NOT_SUPPORTED)?;
        if !matches!(
            counterType,
            nvmlEccCounterType_enum_NVML_VOLATILE_ECC | nvmlEccCounterType_enum_NVML_AGGREGATE_ECC
        ) {
            return Err(INVALID_ARGUMENT);
        }
        let value = match errorType {
            nvmlMemoryErrorType_enum_NVML_MEMORY_ERROR_TYPE_CORRECTED => ecc.corrected,
            nvmlMemoryErrorType_enum_NVML_MEMORY_ERROR_TYPE_UNCORRECTED => ecc.uncorrected,
            _ => return Err(INVALID_ARGUMENT),
        };
        unsafe { out(eccCounts, value) }
    })
}

/// ECC is enabled (current and pending) when the device has `ecc`; otherwise the mode
/// cannot be read (`NOT_SUPPORTED`), as on boards without ECC memory.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetEccMode(
    device: nvmlDevice_t,
    current: *mut nvmlEnableState_t,
    pending: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    device_call(device, Family::Ecc, |d, _| {
        d.ecc.ok_or(NOT_SUPPORTED)?;
        if current.is_null() || pending.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        unsafe {
            out(current, nvmlEnableState_enum_NVML_FEATURE_ENABLED)?;
            out(pending, nvmlEnableState_enum_NVML_FEATURE_ENABLED)
        }
    })
}

/// NVML's bit for each reason (`nvmlClocksEventReason*` / `nvmlClocksThrottleReason*`; the
/// two spellings have the same values).
pub fn reason_bit(reason: ThrottleReason) -> u64 {
    let bit = match reason {
        ThrottleReason::GpuIdle => nvmlClocksThrottleReasonGpuIdle,
        ThrottleReason::ApplicationsClocksSetting => {
            nvmlClocksThrottleReasonApplicationsClocksSetting
        }
        ThrottleReason::SwPowerCap => nvmlClocksThrottleReasonSwPowerCap,
        ThrottleReason::HwSlowdown => nvmlClocksThrottleReasonHwSlowdown,
        ThrottleReason::SyncBoost => nvmlClocksThrottleReasonSyncBoost,
        ThrottleReason::SwThermalSlowdown => nvmlClocksThrottleReasonSwThermalSlowdown,
        ThrottleReason::HwThermalSlowdown => nvmlClocksThrottleReasonHwThermalSlowdown,
        ThrottleReason::HwPowerBrakeSlowdown => nvmlClocksThrottleReasonHwPowerBrakeSlowdown,
        ThrottleReason::DisplayClockSetting => nvmlClocksThrottleReasonDisplayClockSetting,
    };
    u64::from(bit)
}

/// Every reason the mock knows: what a device with `throttle_reasons` supports.
pub const SUPPORTED_REASONS: u64 = (nvmlClocksThrottleReasonGpuIdle
    | nvmlClocksThrottleReasonApplicationsClocksSetting
    | nvmlClocksThrottleReasonSwPowerCap
    | nvmlClocksThrottleReasonHwSlowdown
    | nvmlClocksThrottleReasonSyncBoost
    | nvmlClocksThrottleReasonSwThermalSlowdown
    | nvmlClocksThrottleReasonHwThermalSlowdown
    | nvmlClocksThrottleReasonHwPowerBrakeSlowdown
    | nvmlClocksThrottleReasonDisplayClockSetting) as u64;

fn current_reasons(d: &Device) -> NvmlResult<u64> {
    let reasons = d.throttle_reasons.as_ref().ok_or(NOT_SUPPORTED)?;
    Ok(reasons.iter().fold(0, |mask, r| mask | reason_bit(*r)))
}

fn supported_reasons(d: &Device) -> NvmlResult<u64> {
    d.throttle_reasons.as_ref().ok_or(NOT_SUPPORTED)?;
    Ok(SUPPORTED_REASONS)
}

/// The bitmask of `throttle_reasons` (0 for an empty list: clocks run free).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksEventReasons(
    device: nvmlDevice_t,
    clocksEventReasons: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(device, Family::Throttle, |d, _| unsafe {
        out(clocksEventReasons, current_reasons(d)?)
    })
}

/// The older name of [`nvmlDeviceGetCurrentClocksEventReasons`], which nvml-wrapper 0.13's
/// `current_throttle_reasons` calls.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksThrottleReasons(
    device: nvmlDevice_t,
    clocksThrottleReasons: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(device, Family::Throttle, |d, _| unsafe {
        out(clocksThrottleReasons, current_reasons(d)?)
    })
}

/// All nine reasons the mock models ([`SUPPORTED_REASONS`]) when the device has
/// `throttle_reasons`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetSupportedClocksEventReasons(
    device: nvmlDevice_t,
    supportedClocksEventReasons: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(device, Family::Throttle, |d, _| unsafe {
        out(supportedClocksEventReasons, supported_reasons(d)?)
    })
}

/// The older name of [`nvmlDeviceGetSupportedClocksEventReasons`].
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetSupportedClocksThrottleReasons(
    device: nvmlDevice_t,
    supportedClocksThrottleReasons: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(device, Family::Throttle, |d, _| unsafe {
        out(supportedClocksThrottleReasons, supported_reasons(d)?)
    })
}

/// `pcie.tx_kib_per_second` / `pcie.rx_kib_per_second` for `NVML_PCIE_UTIL_TX_BYTES` /
/// `RX_BYTES`, in KiB/s as NVML reports them; other counters are `INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPcieThroughput(
    device: nvmlDevice_t,
    counter: nvmlPcieUtilCounter_t,
    value: *mut c_uint,
) -> nvmlReturn_t {
    device_call(device, Family::Pcie, |d, _| {
        let pcie = d.pcie.ok_or(NOT_SUPPORTED)?;
        let kib_per_second = match counter {
            nvmlPcieUtilCounter_enum_NVML_PCIE_UTIL_TX_BYTES => pcie.tx_kib_per_second,
            nvmlPcieUtilCounter_enum_NVML_PCIE_UTIL_RX_BYTES => pcie.rx_kib_per_second,
            _ => return Err(INVALID_ARGUMENT),
        };
        unsafe { out(value, kib_per_second) }
    })
}

/// `pcie.replay_errors`: PCIe replays since the driver loaded. The `pcie` family's delay and
/// error apply; its cost is its own (`pcie_replay`: on a real GPU it does not sample the link).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPcieReplayCounter(
    device: nvmlDevice_t,
    value: *mut c_uint,
) -> nvmlReturn_t {
    let price = Price {
        key: CostKey::PcieReplay,
        times: 1,
    };
    device_call_priced(device, Family::Pcie, price, |d, _| {
        let pcie = d.pcie.ok_or(NOT_SUPPORTED)?;
        unsafe { out(value, pcie.replay_errors) }
    })
}

/// Writes a codec's utilization and [`CODEC_SAMPLING_PERIOD_US`].
///
/// # Safety
/// Both pointers are NULL or writable.
unsafe fn codec(
    percent: Option<u32>,
    utilization: *mut c_uint,
    sampling_period_us: *mut c_uint,
) -> NvmlResult {
    let percent = percent.ok_or(NOT_SUPPORTED)?;
    if utilization.is_null() || sampling_period_us.is_null() {
        return Err(INVALID_ARGUMENT);
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        out(utilization, percent)?;
        out(sampling_period_us, CODEC_SAMPLING_PERIOD_US)
    }
}

/// `encoder_percent`, with a sampling period of [`CODEC_SAMPLING_PERIOD_US`].
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetEncoderUtilization(
    device: nvmlDevice_t,
    utilization: *mut c_uint,
    samplingPeriodUs: *mut c_uint,
) -> nvmlReturn_t {
    device_call(device, Family::Encoder, |d, _| unsafe {
        codec(d.encoder_percent, utilization, samplingPeriodUs)
    })
}

/// `decoder_percent`, with a sampling period of [`CODEC_SAMPLING_PERIOD_US`].
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetDecoderUtilization(
    device: nvmlDevice_t,
    utilization: *mut c_uint,
    samplingPeriodUs: *mut c_uint,
) -> nvmlReturn_t {
    device_call(device, Family::Decoder, |d, _| unsafe {
        codec(d.decoder_percent, utilization, samplingPeriodUs)
    })
}
