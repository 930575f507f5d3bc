//! The exported NVML functions, one file per call group, and the helpers they share: looking
//! up the device behind a handle, applying a scenario's injected delays and errors, and
//! writing results through the caller's pointers.
//!
//! Order of checks in every device call, as NVML does it: not initialized -> bad handle ->
//! (mock) the call's cost (scenario `costs`) -> (mock) delay -> (mock) injected error -> bad
//! arguments -> the answer. So a call pays its cost whatever it answers (a real driver's
//! per-process utilization costs the same when it answers `NOT_FOUND`), but not when the
//! library itself turns it away (not initialized, a handle it never handed out).
//!
//! A MIG device handle is subject to its parent GPU's delays and errors. Calls made with
//! [`device_call`] answer `NOT_SUPPORTED` for one; the calls that work on MIG devices use
//! [`target_call`] and get the instance.
// The exports keep NVML's C names (`nvmlDeviceGetUUID`, `infoCount`), and bindgen's
// constants (`nvmlClockType_enum_NVML_CLOCK_SM`) appear in match patterns.
#![allow(non_snake_case, non_upper_case_globals)]

pub mod device;
pub mod events;
pub mod fields;
pub mod gpm;
pub mod health;
pub mod limits;
pub mod mig;
pub mod processes;
pub mod system;

use std::ffi::c_char;
use std::time::Duration;

use nvml_wrapper_sys::bindings::{nvmlDevice_t, nvmlReturn_t};

use crate::codes::{NvmlResult, GPU_IS_LOST, INSUFFICIENT_SIZE, INVALID_ARGUMENT, NOT_SUPPORTED};
use crate::cost;
use crate::ffi_guard;
use crate::handle::{self, Handle};
use crate::scenario::{CostKey, Delays, Device, Errors, Family, MigInstance, Scenario};
use crate::state;

/// What a device handle resolved to in the current scenario.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// A GPU and its NVML index.
    Gpu(&'a Device, usize),
    /// A MIG device: its parent GPU, the parent's index, and the instance.
    Mig {
        parent: &'a Device,
        index: usize,
        instance: &'a MigInstance,
    },
}

/// Runs a call that takes a device handle: resolves the handle in the current scenario,
/// applies the device's delay and error for `family`, then runs `body` with the device and
/// its index. A MIG device handle is `NOT_SUPPORTED` (after its parent's delay and error).
///
/// A handle the mock never handed out is `INVALID_ARGUMENT`. A handle whose index is past the
/// end of the (reloaded) device list is `GPU_IS_LOST`: the device fell off the bus.
pub(crate) fn device_call(
    device: nvmlDevice_t,
    family: Family,
    body: impl FnOnce(&Device, usize) -> NvmlResult,
) -> nvmlReturn_t {
    device_call_priced(device, family, Price::of(family), body)
}

/// What a call pays (scenario `costs`): `times` x the cost set for `key`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Price {
    pub key: CostKey,
    pub times: u32,
}

impl Price {
    /// One call of the family's cost.
    pub fn of(family: Family) -> Price {
        Price {
            key: CostKey::Family(family),
            times: 1,
        }
    }

    /// Pays it, from the scenario in force.
    pub fn pay(self, scenario: &Scenario) {
        cost::pay(scenario.costs.of(self.key), self.times);
    }
}

/// [`device_call`] for a call that costs something else than one call of its family (its own
/// cost key, or one cost per requested item).
pub(crate) fn device_call_priced(
    device: nvmlDevice_t,
    family: Family,
    price: Price,
    body: impl FnOnce(&Device, usize) -> NvmlResult,
) -> nvmlReturn_t {
    target_call_priced(device, family, price, |target| match target {
        Target::Gpu(dev, index) => body(dev, index),
        Target::Mig { .. } => Err(NOT_SUPPORTED),
    })
}

/// Like [`device_call`], for the calls that also answer for MIG device handles.
///
/// A MIG handle whose parent is past the end of the device list is `GPU_IS_LOST`; one whose
/// parent no longer has that GPU instance (MIG disabled, or the instance destroyed by a
/// reload) is `INVALID_ARGUMENT`, as NVML says a handle of a destroyed instance is invalid.
/// The parent's delay and error for `family` apply.
pub(crate) fn target_call(
    device: nvmlDevice_t,
    family: Family,
    body: impl FnOnce(Target<'_>) -> NvmlResult,
) -> nvmlReturn_t {
    target_call_priced(device, family, Price::of(family), body)
}

fn target_call_priced(
    device: nvmlDevice_t,
    family: Family,
    price: Price,
    body: impl FnOnce(Target<'_>) -> NvmlResult,
) -> nvmlReturn_t {
    ffi_guard(|| {
        let scenario = state::snapshot()?;
        match handle::resolve(device).ok_or(INVALID_ARGUMENT)? {
            Handle::Device(index) => {
                let dev = scenario.devices.get(index).ok_or(GPU_IS_LOST)?;
                price.pay(&scenario);
                inject(&dev.delays_ms, &dev.errors, family)?;
                body(Target::Gpu(dev, index))
            }
            Handle::Mig {
                parent: index,
                gpu_instance_id,
            } => {
                let parent = scenario.devices.get(index).ok_or(GPU_IS_LOST)?;
                let instance = parent
                    .mig_instance(gpu_instance_id)
                    .ok_or(INVALID_ARGUMENT)?;
                price.pay(&scenario);
                inject(&parent.delays_ms, &parent.errors, family)?;
                body(Target::Mig {
                    parent,
                    index,
                    instance,
                })
            }
        }
    })
}

/// Runs a node-wide call (no device handle) after its cost and the scenario's top-level
/// delay and error for `family`.
pub(crate) fn node_call(
    family: Family,
    body: impl FnOnce(&Scenario) -> NvmlResult,
) -> nvmlReturn_t {
    ffi_guard(|| {
        let scenario = state::snapshot()?;
        Price::of(family).pay(&scenario);
        apply_node_fault(&scenario, family)?;
        body(&scenario)
    })
}

/// Sleeps for the family's delay, then fails with its error, if the scenario sets them.
/// Called with no lock held, so other devices' calls go on meanwhile.
pub(crate) fn inject(delays: &Delays, errors: &Errors, family: Family) -> NvmlResult {
    if let Some(ms) = delays.get(&family) {
        std::thread::sleep(Duration::from_millis(*ms));
    }
    match errors.get(&family) {
        Some(code) => Err(code.0),
        None => Ok(()),
    }
}

/// [`inject`] for a node-wide family.
pub(crate) fn apply_node_fault(scenario: &Scenario, family: Family) -> NvmlResult {
    let (delay, error) = scenario.node_fault(family);
    if let Some(ms) = delay {
        std::thread::sleep(Duration::from_millis(ms));
    }
    match error {
        Some(code) => Err(code.0),
        None => Ok(()),
    }
}

/// Writes `value` through an out-pointer; NULL is `INVALID_ARGUMENT`.
///
/// # Safety
/// `ptr` is NULL or valid for writing a `T`.
pub(crate) unsafe fn out<T>(ptr: *mut T, value: T) -> NvmlResult {
    if ptr.is_null() {
        return Err(INVALID_ARGUMENT);
    }
    // SAFETY: non-NULL, and the caller promises it is writable.
    unsafe { ptr.write(value) };
    Ok(())
}

/// Borrows an in/out struct the caller passed by pointer; NULL is `INVALID_ARGUMENT`.
///
/// # Safety
/// `ptr` is NULL or valid for reads and writes of a `T` for the duration of the call.
pub(crate) unsafe fn in_out<'a, T>(ptr: *mut T) -> NvmlResult<&'a mut T> {
    // SAFETY: the caller promises a valid, exclusive `T` if non-NULL.
    unsafe { ptr.as_mut() }.ok_or(INVALID_ARGUMENT)
}

/// Copies `value` and a NUL into the caller's buffer of `length` bytes, NVML style:
/// NULL is `INVALID_ARGUMENT`, too small is `INSUFFICIENT_SIZE`.
///
/// # Safety
/// `buf` is NULL or valid for writing `length` bytes.
pub(crate) unsafe fn out_str(buf: *mut c_char, length: u32, value: &str) -> NvmlResult {
    if buf.is_null() {
        return Err(INVALID_ARGUMENT);
    }
    let bytes = value.as_bytes();
    if bytes.len() >= length as usize {
        return Err(INSUFFICIENT_SIZE);
    }
    // SAFETY: `buf` has `length` > `bytes.len()` writable bytes.
    unsafe {
        ptr_copy(bytes, buf);
        buf.add(bytes.len()).write(0);
    }
    Ok(())
}

/// Fills a fixed-size C string field (e.g. `busId`), truncating and always NUL-terminating.
pub(crate) fn fill_c_array(dst: &mut [c_char], value: &str) {
    dst.fill(0);
    let n = value.len().min(dst.len().saturating_sub(1));
    for (d, s) in dst.iter_mut().zip(&value.as_bytes()[..n]) {
        *d = *s as c_char;
    }
}

/// # Safety
/// `dst` is valid for writing `src.len()` bytes.
unsafe fn ptr_copy(src: &[u8], dst: *mut c_char) {
    // SAFETY: forwarded from the caller; the regions cannot overlap (one is ours).
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr().cast::<c_char>(), dst, src.len()) };
}

/// A count as NVML's `unsigned int`.
pub(crate) fn c_count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
