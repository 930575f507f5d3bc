//! A mock `libdcgm.so`: the DCGM C functions the agent calls, with DCGM's struct layouts and
//! return codes, answered from the mock NVML's scenario file (`MOCK_NVML_SCENARIO`): its
//! top-level `dcgm` block (the host engine up or down), each device's and MIG instance's
//! `dcgm_profiling`, and the `dcgm_connect`/`dcgm_values` families in `errors`, `delays_ms`
//! and `costs`. Devices are DCGM GPU ids in the scenario's order, matched by the agent by UUID.
//!
//! [`ffi`] is the agent's own declaration of DCGM's layouts (one file, compiled in both), so
//! the two cannot disagree; its sizes are checked against the header at compile time.
//! [`state`] holds the host engine's state (connections, groups, watches), [`api`] the
//! connection, group and watch calls, [`values`] the discovery and value reads.
//!
//! Every export follows the safety contract of the DCGM function it mocks: pointers are
//! checked for NULL and otherwise trusted to point at the caller's memory of the documented
//! type and size. That is why the `unsafe extern "C"` functions carry no `# Safety` section.
#![allow(clippy::missing_safety_doc)]
#![warn(unsafe_op_in_unsafe_fn)]

#[path = "../../../src/collect/nvidia/dcgm/ffi.rs"]
pub mod ffi;

pub mod api;
pub mod state;
pub mod values;

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi::{DcgmReturn, ST_OK};

/// `DCGM_ST_GENERIC_ERROR` (`dcgm_structs.h`): what a bug in the mock answers.
pub const ST_GENERIC_ERROR: DcgmReturn = -3;

/// What the body of an exported function returns: `Err` carries the DCGM status.
pub type DcgmResult<T = ()> = Result<T, DcgmReturn>;

/// Runs the body of an exported function and turns its result into a DCGM status. A panic is
/// caught here and reported as `DCGM_ST_GENERIC_ERROR`: unwinding across the C ABI would abort
/// the caller.
pub(crate) fn ffi_guard(body: impl FnOnce() -> DcgmResult) -> DcgmReturn {
    nvidia_ml_mock::cost::enter();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ST_OK,
        Ok(Err(code)) => code,
        Err(_) => ST_GENERIC_ERROR,
    }
}
