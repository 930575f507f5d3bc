//! The exported NVML functions, one file per call group, and the helpers they share: looking
//! up the device behind a handle, applying a scenario's injected delays and errors, and
//! writing results through the caller's pointers.
//!
//! Order of checks in every device call, as NVML does it: not initialized -> bad handle ->
//! (mock) delay -> (mock) injected error -> bad arguments -> the answer.
// The exports keep NVML's C names (`nvmlDeviceGetUUID`, `infoCount`), and bindgen's
// constants (`nvmlClockType_enum_NVML_CLOCK_SM`) appear in match patterns.
#![allow(non_snake_case, non_upper_case_globals)]

pub mod device;
pub mod gpm;
pub mod processes;
pub mod system;

use std::ffi::c_char;
use std::time::Duration;

use nvml_wrapper_sys::bindings::{nvmlDevice_t, nvmlReturn_t};

use crate::codes::{NvmlResult, GPU_IS_LOST, INSUFFICIENT_SIZE, INVALID_ARGUMENT};
use crate::ffi_guard;
use crate::handle;
use crate::scenario::{Delays, Device, Errors, Family, Scenario};
use crate::state;

/// Runs a call that takes a device handle: resolves the handle in the current scenario,
/// applies the device's delay and error for `family`, then runs `body` with the device and
/// its index.
///
/// A handle the mock never handed out is `INVALID_ARGUMENT`. A handle whose index is past the
/// end of the (reloaded) device list is `GPU_IS_LOST`: the device fell off the bus.
pub(crate) fn device_call(
    device: nvmlDevice_t,
    family: Family,
    body: impl FnOnce(&Device, usize) -> NvmlResult,
) -> nvmlReturn_t {
    ffi_guard(|| {
        let scenario = state::snapshot()?;
        let index = handle::decode(device).ok_or(INVALID_ARGUMENT)?;
        let dev = scenario.devices.get(index).ok_or(GPU_IS_LOST)?;
        inject(&dev.delays_ms, &dev.errors, family)?;
        body(dev, index)
    })
}

/// Runs a node-wide call (no device handle) after the scenario's top-level delay and error
/// for `family`.
pub(crate) fn node_call(
    family: Family,
    body: impl FnOnce(&Scenario) -> NvmlResult,
) -> nvmlReturn_t {
    ffi_guard(|| {
        let scenario = state::snapshot()?;
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
