//! NVML calls as the collector counts them: the `error` label of each NVML error, which errors
//! take a device down, and the failures of one sample's calls. Shared by the device worker
//! (`device.rs`) and the health thread (`health.rs`), which import this and not each other.

use nvml_wrapper::error::NvmlError;

use crate::sample::{CallError, ErrorLabel};

/// NVML's error name without the `NVML_ERROR_` prefix, as the scenario files and the
/// `error` label spell it.
#[allow(deprecated)] // ALREADY_INITIALIZED is deprecated, but old drivers still return it.
pub(super) fn error_label(e: &NvmlError) -> ErrorLabel {
    let name = match e {
        NvmlError::Uninitialized => "UNINITIALIZED",
        NvmlError::InvalidArg => "INVALID_ARGUMENT",
        NvmlError::NotSupported => "NOT_SUPPORTED",
        NvmlError::NoPermission => "NO_PERMISSION",
        NvmlError::AlreadyInitialized => "ALREADY_INITIALIZED",
        NvmlError::NotFound => "NOT_FOUND",
        NvmlError::InsufficientSize(_) => "INSUFFICIENT_SIZE",
        NvmlError::InsufficientPower => "INSUFFICIENT_POWER",
        NvmlError::DriverNotLoaded => "DRIVER_NOT_LOADED",
        NvmlError::Timeout => "TIMEOUT",
        NvmlError::IrqIssue => "IRQ_ISSUE",
        NvmlError::LibraryNotFound => "LIBRARY_NOT_FOUND",
        NvmlError::FunctionNotFound => "FUNCTION_NOT_FOUND",
        NvmlError::CorruptedInfoROM => "CORRUPTED_INFOROM",
        NvmlError::GpuLost => "GPU_IS_LOST",
        NvmlError::ResetRequired => "RESET_REQUIRED",
        NvmlError::OperatingSystem => "OPERATING_SYSTEM",
        NvmlError::LibRmVersionMismatch => "LIB_RM_VERSION_MISMATCH",
        NvmlError::InUse => "IN_USE",
        NvmlError::InsufficientMemory => "MEMORY",
        NvmlError::NoData => "NO_DATA",
        NvmlError::VgpuEccNotSupported => "VGPU_ECC_NOT_SUPPORTED",
        NvmlError::Unknown => "UNKNOWN",
        NvmlError::FailedToLoadSymbol(_) => "FUNCTION_NOT_FOUND",
        NvmlError::LibloadingError(_) => "LIBRARY_NOT_FOUND",
        _ => "UNEXPECTED",
    };
    ErrorLabel::Driver(name)
}

/// NVML errors after which the device is taken for gone, not just one series missing.
pub(super) fn is_fatal(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::GpuLost
            | NvmlError::Uninitialized
            | NvmlError::DriverNotLoaded
            | NvmlError::ResetRequired
            | NvmlError::LibRmVersionMismatch
            | NvmlError::InvalidArg
    )
}

/// The outcome of the calls of one sample: failures counted, the first fatal one kept.
#[derive(Default)]
pub(super) struct SampleCalls {
    pub(super) errors: Vec<CallError>,
    pub(super) fatal: Option<ErrorLabel>,
}

impl SampleCalls {
    /// The failures counted, and the first fatal one.
    pub(super) fn into_parts(self) -> (Vec<CallError>, Option<ErrorLabel>) {
        (self.errors, self.fatal)
    }

    /// The value of a call; `None` when it failed or is not supported (then the series is
    /// simply absent). Once a call was fatal, later ones are not made.
    pub(super) fn take<T>(
        &mut self,
        call: &'static str,
        f: impl FnOnce() -> Result<T, NvmlError>,
    ) -> Option<T> {
        if self.fatal.is_some() {
            return None;
        }
        crate::collect::worker::calling(call);
        match f() {
            Ok(v) => Some(v),
            Err(NvmlError::NotSupported) => None,
            Err(e) => {
                let error = error_label(&e);
                if is_fatal(&e) {
                    self.fatal = Some(error.clone());
                }
                self.errors.push(CallError::new(call, error));
                None
            }
        }
    }
}
