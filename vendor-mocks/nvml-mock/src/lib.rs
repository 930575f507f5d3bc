//! A mock `libnvidia-ml.so`: NVML's C entry points, answered from a YAML scenario file.
//!
//! The exported functions live in [`api`]; each one is a thin `extern "C"` shell that runs its
//! body inside `ffi_guard`, so a bug in the mock can never unwind into the caller.
//! [`scenario`] owns the file format, [`state`] the loaded scenario, init refcount and reload,
//! [`handle`] the encoding of device handles, [`codes`] NVML's return codes, [`cost`] the
//! CPU and wall time a call is made to cost, [`watch`] the inotify watch that tells event
//! waits of a changed scenario file, and [`wake`] how the state and the watch wake those
//! waits.
//!
//! Every export follows the safety contract of the NVML C function it mocks: pointers are
//! checked for NULL and otherwise trusted to point at the caller's memory of the documented
//! type and size. That is why the `unsafe extern "C"` functions carry no `# Safety` section.
#![allow(clippy::missing_safety_doc)]
#![warn(unsafe_op_in_unsafe_fn)]

pub mod api;
pub mod codes;
pub mod cost;
pub mod handle;
pub mod scenario;
pub mod state;
pub mod wake;
pub mod watch;

use std::panic::{catch_unwind, AssertUnwindSafe};

use nvml_wrapper_sys::bindings::nvmlReturn_t;

use crate::codes::{NvmlResult, SUCCESS, UNKNOWN};

/// Runs the body of an exported function and turns its result into an NVML return code.
///
/// A panic is caught here and reported as `NVML_ERROR_UNKNOWN`: unwinding across the C ABI
/// would abort the caller (or worse).
pub(crate) fn ffi_guard(body: impl FnOnce() -> NvmlResult) -> nvmlReturn_t {
    cost::enter();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SUCCESS,
        Ok(Err(code)) => code,
        Err(_) => UNKNOWN,
    }
}
