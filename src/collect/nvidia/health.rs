//! NVIDIA health and long-tail values: energy, ECC, clock event reasons, PCIe, NVLink (field
//! values summed over all links), encoder and decoder, and `limits.rs`' health-tier share.
//! Absent where not supported, never zero.
//!
//! Clock event reasons are read on every interval by the device worker ([`throttled`]); the
//! rest on the health tier by the device's health thread ([`read_slow`]), which the cycle
//! never waits for (but the first time, see `mod.rs`).

use std::mem;

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, PcieUtilCounter};
use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::sys_exports::field_id::{
    NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX,
};
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::{nvmlFieldValue_t, nvmlReturn_enum_NVML_SUCCESS};

use super::calls::SampleCalls;
use super::limits;
use crate::collect::worker::{CycleWorker, Reply};
use crate::sample::DeviceHealth;

/// NVML's `scopeId` for "all links" in NVLink field values.
const ALL_LINKS: u32 = u32::MAX;

/// Reads the health tier's values the device supports (all but clock event reasons).
pub(super) fn read_slow(calls: &mut SampleCalls, nvml: &Nvml, dev: &Device<'_>) -> DeviceHealth {
    let mut h = DeviceHealth {
        energy_joules: calls
            .take("energy", || dev.total_energy_consumption())
            .map(|mj| mj as f64 / 1000.0),
        ..DeviceHealth::default()
    };
    h.ecc_corrected = calls
        .take("ecc", || {
            dev.total_ecc_errors(MemoryError::Corrected, EccCounter::Aggregate)
        })
        .map(|n| n as f64);
    if h.ecc_corrected.is_some() {
        h.ecc_uncorrected = calls
            .take("ecc", || {
                dev.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate)
            })
            .map(|n| n as f64);
    }
    // NVML reports PCIe throughput in KiB/s.
    h.pcie_transmit_bytes_per_second = calls
        .take("pcie", || dev.pcie_throughput(PcieUtilCounter::Send))
        .map(|k| f64::from(k) * 1024.0);
    if h.pcie_transmit_bytes_per_second.is_some() {
        h.pcie_receive_bytes_per_second = calls
            .take("pcie", || dev.pcie_throughput(PcieUtilCounter::Receive))
            .map(|k| f64::from(k) * 1024.0);
    }
    h.pcie_replay_errors = calls
        .take("pcie", || dev.pcie_replay_counter())
        .map(f64::from);
    if let Some((tx, rx)) = calls.take("nvlink", || nvlink_totals(nvml, dev)).flatten() {
        h.nvlink_transmit_bytes = Some(tx);
        h.nvlink_receive_bytes = Some(rx);
    }
    h.encoder_utilization_ratio = calls
        .take("encoder", || dev.encoder_utilization())
        .map(|u| f64::from(u.utilization.min(100)) / 100.0);
    h.decoder_utilization_ratio = calls
        .take("decoder", || dev.decoder_utilization())
        .map(|u| f64::from(u.utilization.min(100)) / 100.0);
    limits::read_health(calls, nvml, dev, &mut h);
    h
}

/// Which clock event reasons are active, in `THROTTLE_REASONS`' order (every interval).
pub(super) fn throttled(calls: &mut SampleCalls, dev: &Device<'_>) -> Option<[bool; 6]> {
    calls
        .take("throttle", || dev.current_throttle_reasons())
        .map(|r| {
            [
                r.contains(ThrottleReasons::SW_POWER_CAP),
                r.contains(ThrottleReasons::HW_SLOWDOWN),
                r.contains(ThrottleReasons::HW_THERMAL_SLOWDOWN),
                r.contains(ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN),
                r.contains(ThrottleReasons::SW_THERMAL_SLOWDOWN),
                r.contains(ThrottleReasons::SYNC_BOOST),
            ]
        })
}

/// NVLink data throughput counters over all links, in bytes (NVML reports KiB). nvml-wrapper's
/// `field_values_for` always asks for link 0, so the all-links scope is asked for directly.
/// `Ok(None)`: the device has no NVLink.
fn nvlink_totals(nvml: &Nvml, dev: &Device<'_>) -> Result<Option<(f64, f64)>, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlDeviceGetFieldValues.as_ref())?;
    // SAFETY: a zeroed nvmlFieldValue_t is valid; NVML fills the two entries we pass, and the
    // handle belongs to this NVML instance.
    unsafe {
        let mut values: [nvmlFieldValue_t; 2] = mem::zeroed();
        values[0].fieldId = NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX;
        values[1].fieldId = NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX;
        for v in &mut values {
            v.scopeId = ALL_LINKS;
        }
        nvml_try(sym(dev.handle(), 2, values.as_mut_ptr()))?;
        if values
            .iter()
            .any(|v| v.nvmlReturn != nvmlReturn_enum_NVML_SUCCESS)
        {
            return Ok(None);
        }
        let kib = |v: &nvmlFieldValue_t| v.value.ullVal as f64 * 1024.0;
        Ok(Some((kib(&values[0]), kib(&values[1]))))
    }
}

/// What a device's health thread answers for one health read.
#[derive(Debug, Clone)]
pub(super) struct HealthRead {
    /// `None` when the device failed (no handle, or a fatal error): the last read stands, and
    /// the device worker reports whether the device is down.
    pub health: Option<DeviceHealth>,
    /// The device's UUID now: a device swapped at the same index is noticed here, on the
    /// health tier, since the device worker reads its identity once.
    pub uuid: Option<String>,
}

/// Device `index`'s health thread, with a device handle of its own (a fresh one after a panic).
pub(super) fn health_worker(nvml: &'static Nvml, index: u32) -> CycleWorker<(), HealthRead> {
    CycleWorker::new(format!("nvml-health{index}"), move || {
        let mut handle = None;
        move |()| read(nvml, index, &mut handle)
    })
}

/// One health read of device `index`, getting a handle first where there is none.
fn read(
    nvml: &'static Nvml,
    index: u32,
    handle: &mut Option<Device<'static>>,
) -> Reply<HealthRead> {
    let mut calls = SampleCalls::default();
    if handle.is_none() {
        *handle = calls.take("handle", || nvml.device_by_index(index));
    }
    let failed = |errors| Reply {
        value: HealthRead {
            health: None,
            uuid: None,
        },
        errors,
    };
    let Some(dev) = handle.as_ref() else {
        return failed(calls.into_parts().0);
    };
    let uuid = calls.take("uuid", || dev.uuid());
    let health = read_slow(&mut calls, nvml, dev);
    let (errors, fatal) = calls.into_parts();
    if fatal.is_some() {
        // A new handle next time: the device may come back after a reset.
        *handle = None;
        return failed(errors);
    }
    Reply {
        value: HealthRead {
            health: Some(health),
            uuid,
        },
        errors,
    }
}
