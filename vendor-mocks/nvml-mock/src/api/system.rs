//! Library-wide calls: init and shutdown, error strings, versions and the device count.

use std::ffi::{c_char, c_uint};

use nvml_wrapper_sys::bindings::nvmlReturn_t;

use super::{apply_node_fault, c_count, node_call, out, out_str, Price};
use crate::codes;
use crate::ffi_guard;
use crate::scenario::Family;
use crate::state;

/// Loads the scenario (see [`state::load_for_init`]), pays the `init` cost, applies the
/// `init` delay and error (`init_error` or top-level `errors.init`), then counts one more
/// reference.
fn init() -> nvmlReturn_t {
    ffi_guard(|| {
        let scenario = state::load_for_init()?;
        Price::of(Family::Init).pay(&scenario);
        apply_node_fault(&scenario, Family::Init)?;
        state::commit_init();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    init()
}

/// Flags (`NVML_INIT_FLAG_NO_GPUS`, `NO_ATTACH`) change nothing in the mock.
#[no_mangle]
pub unsafe extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> nvmlReturn_t {
    init()
}

#[no_mangle]
pub unsafe extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    ffi_guard(state::shutdown)
}

/// A static, NUL-terminated description of `result`; works without init, like NVML's.
#[no_mangle]
pub unsafe extern "C" fn nvmlErrorString(result: nvmlReturn_t) -> *const c_char {
    codes::message(result).as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    // SAFETY: NVML's contract: `version` holds `length` bytes.
    node_call(Family::System, |s| unsafe {
        out_str(version, length, &s.driver_version)
    })
}

/// NVML's own version string: the CUDA major the driver belongs to, then the driver version
/// (`12.550.54.15`; drivers from 580 on ship NVML 13).
#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    node_call(Family::System, |s| {
        let driver_major: u32 = s
            .driver_version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let nvml_major = if driver_major >= 580 { 13 } else { 12 };
        let text = format!("{nvml_major}.{}", s.driver_version);
        // SAFETY: NVML's contract: `version` holds `length` bytes.
        unsafe { out_str(version, length, &text) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(deviceCount: *mut c_uint) -> nvmlReturn_t {
    // SAFETY: NVML's contract: `deviceCount` is NULL or writable.
    node_call(Family::Count, |s| unsafe {
        out(deviceCount, c_count(s.devices.len()))
    })
}
