//! Per-device identity and gauges: handles, index, UUID, name, PCI, memory, utilization,
//! power, temperature and clocks. UUID, name and memory also answer for MIG devices, with
//! the instance's values.

use std::ffi::{c_char, c_uint, CStr};
use std::mem::size_of;

use nvml_wrapper_sys::bindings::*;

use super::{
    c_count, device_call, fill_c_array, in_out, inject, out, out_str, target_call, Price, Target,
};
use crate::codes::{ARGUMENT_VERSION_MISMATCH, INVALID_ARGUMENT, NOT_FOUND, NOT_SUPPORTED};
use crate::ffi_guard;
use crate::handle;
use crate::scenario::Family;
use crate::state;

/// `NVML_STRUCT_VERSION(Memory, 2)` from `nvml.h`.
const MEMORY_V2_VERSION: u32 = (size_of::<nvmlMemory_v2_t>() as u32) | (2 << 24);

/// An index past the device count is `INVALID_ARGUMENT`, as in NVML. The device's `handle`
/// delay and error apply.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    ffi_guard(|| {
        let scenario = state::snapshot()?;
        let index = index as usize;
        let dev = scenario.devices.get(index).ok_or(INVALID_ARGUMENT)?;
        let h = handle::encode(index).ok_or(INVALID_ARGUMENT)?;
        Price::of(Family::Handle).pay(&scenario);
        inject(&dev.delays_ms, &dev.errors, Family::Handle)?;
        // SAFETY: NVML's contract: `device` is NULL or writable.
        unsafe { out(device, h) }
    })
}

/// An unknown UUID is `NOT_FOUND`. The device's `handle` delay and error apply.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByUUID(
    uuid: *const c_char,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    ffi_guard(|| {
        let scenario = state::snapshot()?;
        if uuid.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        // SAFETY: NVML's contract: a NUL-terminated string.
        let wanted = unsafe { CStr::from_ptr(uuid) }.to_bytes();
        let (index, dev) = scenario
            .devices
            .iter()
            .enumerate()
            .find(|(_, d)| d.uuid.as_bytes() == wanted)
            .ok_or(NOT_FOUND)?;
        let h = handle::encode(index).ok_or(INVALID_ARGUMENT)?;
        Price::of(Family::Handle).pay(&scenario);
        inject(&dev.delays_ms, &dev.errors, Family::Handle)?;
        // SAFETY: NVML's contract: `device` is NULL or writable.
        unsafe { out(device, h) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetIndex(
    device: nvmlDevice_t,
    index: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY (all closures below): NVML's contract: out-pointers are NULL or writable, and
    // string buffers hold `length` bytes.
    device_call(device, Family::Handle, |_, i| unsafe {
        out(index, c_count(i))
    })
}

/// A MIG device's UUID is its instance's `uuid` (`MIG-…`).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: nvmlDevice_t,
    uuid: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    target_call(device, Family::Uuid, |t| {
        let value = match t {
            Target::Gpu(d, _) => &d.uuid,
            Target::Mig { instance, .. } => &instance.uuid,
        };
        unsafe { out_str(uuid, length, value) }
    })
}

/// A MIG device is named like NVML names it: `<parent name> MIG <profile>`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: nvmlDevice_t,
    name: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    target_call(device, Family::Name, |t| {
        let value = match t {
            Target::Gpu(d, _) => d.name.clone(),
            Target::Mig {
                parent, instance, ..
            } => instance.name(parent),
        };
        unsafe { out_str(name, length, &value) }
    })
}

/// `busId` and `busIdLegacy` in NVML's upper-case formats; device and subsystem IDs are 0.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(
    device: nvmlDevice_t,
    pci: *mut nvmlPciInfo_t,
) -> nvmlReturn_t {
    device_call(device, Family::Pci, |d, _| {
        let info = unsafe { in_out(pci) }?;
        fill_c_array(&mut info.busIdLegacy, &d.pci.bus_id_legacy());
        fill_c_array(&mut info.busId, &d.pci.bus_id());
        info.domain = d.pci.domain;
        info.bus = d.pci.bus;
        info.device = d.pci.device;
        info.pciDeviceId = 0;
        info.pciSubSystemId = 0;
        Ok(())
    })
}

/// (total, used, reserved) of a GPU, or of a MIG instance's slice of it (nothing reserved).
fn memory_of(t: Target<'_>) -> (u64, u64, u64) {
    match t {
        Target::Gpu(d, _) => (
            d.memory_total_bytes,
            d.memory_used_bytes,
            d.memory_reserved_bytes,
        ),
        Target::Mig { instance, .. } => {
            (instance.memory_total_bytes, instance.memory_used_bytes, 0)
        }
    }
}

/// For a MIG device, the instance's memory.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(
    device: nvmlDevice_t,
    memory: *mut nvmlMemory_t,
) -> nvmlReturn_t {
    target_call(device, Family::Memory, |t| {
        let (total, used, reserved) = memory_of(t);
        // v1 counts the reserved memory as used (nvml.h: "Sum of Reserved and Allocated").
        let value = nvmlMemory_t {
            total,
            free: total - used - reserved,
            used: used + reserved,
        };
        unsafe { out(memory, value) }
    })
}

/// The caller sets `version` to `NVML_STRUCT_VERSION(Memory, 2)`; anything else is
/// `ARGUMENT_VERSION_MISMATCH`. `reserved` is `memory_reserved_bytes` (0 for a MIG device), and
/// `free = total - used - reserved`. For a MIG device, the instance's memory.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: nvmlDevice_t,
    memory: *mut nvmlMemory_v2_t,
) -> nvmlReturn_t {
    target_call(device, Family::Memory, |t| {
        let info = unsafe { in_out(memory) }?;
        if info.version != MEMORY_V2_VERSION {
            return Err(ARGUMENT_VERSION_MISMATCH);
        }
        let (total, used, reserved) = memory_of(t);
        info.total = total;
        info.reserved = reserved;
        info.used = used;
        info.free = total - used - reserved;
        Ok(())
    })
}

/// `NOT_SUPPORTED` on a MIG device and on a GPU in MIG mode, as in NVML.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: nvmlDevice_t,
    utilization: *mut nvmlUtilization_t,
) -> nvmlReturn_t {
    device_call(device, Family::Utilization, |d, _| {
        if d.mig_enabled() {
            return Err(NOT_SUPPORTED);
        }
        let value = nvmlUtilization_t {
            gpu: d.utilization_gpu_percent,
            memory: d.utilization_memory_percent,
        };
        unsafe { out(utilization, value) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(
    device: nvmlDevice_t,
    power: *mut c_uint,
) -> nvmlReturn_t {
    device_call(device, Family::Power, |d, _| unsafe {
        out(power, d.power_milliwatts)
    })
}

/// Only `NVML_TEMPERATURE_GPU` exists; any other sensor is `INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: nvmlDevice_t,
    sensorType: nvmlTemperatureSensors_t,
    temp: *mut c_uint,
) -> nvmlReturn_t {
    device_call(device, Family::Temperature, |d, _| {
        if sensorType != nvmlTemperatureSensors_enum_NVML_TEMPERATURE_GPU {
            return Err(INVALID_ARGUMENT);
        }
        unsafe { out(temp, d.temperature_celsius) }
    })
}

/// Graphics and SM clocks are `sm_clock_mhz` (the `clock` family); the memory clock is
/// `memory_clock_mhz` (the `memory_clock` family: its own delay, error and cost), `NOT_SUPPORTED`
/// without it; the video clock is `NOT_SUPPORTED`; other values are `INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: nvmlDevice_t,
    type_: nvmlClockType_t,
    clock: *mut c_uint,
) -> nvmlReturn_t {
    let family = if type_ == nvmlClockType_enum_NVML_CLOCK_MEM {
        Family::MemoryClock
    } else {
        Family::Clock
    };
    device_call(device, family, |d, _| match type_ {
        nvmlClockType_enum_NVML_CLOCK_GRAPHICS | nvmlClockType_enum_NVML_CLOCK_SM => unsafe {
            out(clock, d.sm_clock_mhz)
        },
        nvmlClockType_enum_NVML_CLOCK_MEM => {
            let mhz = d.memory_clock_mhz.ok_or(NOT_SUPPORTED)?;
            unsafe { out(clock, mhz) }
        }
        nvmlClockType_enum_NVML_CLOCK_VIDEO => Err(NOT_SUPPORTED),
        _ => Err(INVALID_ARGUMENT),
    })
}
