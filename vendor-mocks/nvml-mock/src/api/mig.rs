//! Multi-Instance GPU: the MIG mode of a GPU, enumerating its MIG devices, and the queries
//! that tell a MIG device handle from a GPU handle. All of them are the `mig` family; on a
//! MIG device handle the parent GPU's `mig` delay and error apply.
//!
//! A GPU is in MIG mode when its scenario entry has `mig` (even `mig: []`). Its MIG devices
//! are the entries of that list, at MIG device indexes 0, 1, ... in list order. Like NVML,
//! [`nvmlDeviceGetMaxMigDeviceCount`] answers the most a GPU could hold, not how many exist,
//! so callers walk every index and skip `NOT_FOUND`.

use std::ffi::c_uint;

use nvml_wrapper_sys::bindings::*;

use super::{c_count, device_call, out, target_call, Target};
use crate::codes::{INVALID_ARGUMENT, NOT_FOUND, NOT_SUPPORTED};
use crate::handle;
use crate::scenario::Family;

/// The most MIG devices an A100 or H100 can be split into (seven `1g` instances).
pub const MAX_MIG_DEVICES: usize = 7;

/// `NOT_SUPPORTED` unless the device has a `mig` list; then current and pending modes are
/// both `NVML_DEVICE_MIG_ENABLE`. `NOT_SUPPORTED` on a MIG device.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: nvmlDevice_t,
    currentMode: *mut c_uint,
    pendingMode: *mut c_uint,
) -> nvmlReturn_t {
    device_call(device, Family::Mig, |d, _| {
        if !d.mig_enabled() {
            return Err(NOT_SUPPORTED);
        }
        if currentMode.is_null() || pendingMode.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        // SAFETY (all closures in this file): NVML's contract: out-pointers are NULL or
        // writable.
        unsafe {
            out(currentMode, NVML_DEVICE_MIG_ENABLE)?;
            out(pendingMode, NVML_DEVICE_MIG_ENABLE)
        }
    })
}

/// The most MIG devices the GPU can hold: [`MAX_MIG_DEVICES`], or the scenario's instance
/// count if that is more. `NOT_SUPPORTED` without `mig` (the contract's rule for an absent
/// field) and on a MIG device.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMaxMigDeviceCount(
    device: nvmlDevice_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    device_call(device, Family::Mig, |d, _| {
        let instances = d.mig.as_ref().ok_or(NOT_SUPPORTED)?;
        unsafe { out(count, c_count(instances.len().max(MAX_MIG_DEVICES))) }
    })
}

/// The handle of the `index`-th MIG device (the scenario's `mig[index]`). An index at or
/// past the instance count but below the maximum is `NOT_FOUND` (no MIG device there); one
/// at or past the maximum is `INVALID_ARGUMENT`. `NOT_SUPPORTED` without `mig` and when
/// `device` is itself a MIG device.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMigDeviceHandleByIndex(
    device: nvmlDevice_t,
    index: c_uint,
    migDevice: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    device_call(device, Family::Mig, |d, parent| {
        let instances = d.mig.as_ref().ok_or(NOT_SUPPORTED)?;
        let index = index as usize;
        if index >= instances.len().max(MAX_MIG_DEVICES) {
            return Err(INVALID_ARGUMENT);
        }
        let instance = instances.get(index).ok_or(NOT_FOUND)?;
        let h = handle::encode_mig(parent, instance.gpu_instance_id).ok_or(INVALID_ARGUMENT)?;
        unsafe { out(migDevice, h) }
    })
}

/// 1 for a MIG device handle, 0 for a GPU handle (MIG mode or not).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceIsMigDeviceHandle(
    device: nvmlDevice_t,
    isMigDevice: *mut c_uint,
) -> nvmlReturn_t {
    target_call(device, Family::Mig, |t| {
        let is_mig = matches!(t, Target::Mig { .. });
        unsafe { out(isMigDevice, c_uint::from(is_mig)) }
    })
}

/// The parent GPU's handle. `NOT_SUPPORTED` for a GPU handle.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetDeviceHandleFromMigDeviceHandle(
    migDevice: nvmlDevice_t,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    target_call(migDevice, Family::Mig, |t| match t {
        Target::Mig { index, .. } => {
            let h = handle::encode(index).ok_or(INVALID_ARGUMENT)?;
            unsafe { out(device, h) }
        }
        Target::Gpu(..) => Err(NOT_SUPPORTED),
    })
}

/// The MIG device's `gpu_instance_id`. `NOT_SUPPORTED` for a GPU handle.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceId(
    device: nvmlDevice_t,
    id: *mut c_uint,
) -> nvmlReturn_t {
    target_call(device, Family::Mig, |t| match t {
        Target::Mig { instance, .. } => unsafe { out(id, instance.gpu_instance_id) },
        Target::Gpu(..) => Err(NOT_SUPPORTED),
    })
}

/// The MIG device's `compute_instance_id`. `NOT_SUPPORTED` for a GPU handle.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetComputeInstanceId(
    device: nvmlDevice_t,
    id: *mut c_uint,
) -> nvmlReturn_t {
    target_call(device, Family::Mig, |t| match t {
        Target::Mig { instance, .. } => unsafe { out(id, instance.compute_instance_id) },
        Target::Gpu(..) => Err(NOT_SUPPORTED),
    })
}
