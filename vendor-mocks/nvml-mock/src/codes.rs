//! NVML return codes: the name table that scenarios use (`GPU_IS_LOST`) and the messages
//! that `nvmlErrorString` hands out.

use std::ffi::CStr;

use nvml_wrapper_sys::bindings::*;
use serde::de::{Deserialize, Deserializer, Error as _};

/// What the body of an exported function returns: `Err` carries the NVML error code.
pub type NvmlResult<T = ()> = Result<T, nvmlReturn_t>;

pub const SUCCESS: nvmlReturn_t = nvmlReturn_enum_NVML_SUCCESS;
pub const UNINITIALIZED: nvmlReturn_t = nvmlReturn_enum_NVML_ERROR_UNINITIALIZED;
pub const INVALID_ARGUMENT: nvmlReturn_t = nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT;
pub const NOT_SUPPORTED: nvmlReturn_t = nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED;
pub const NOT_FOUND: nvmlReturn_t = nvmlReturn_enum_NVML_ERROR_NOT_FOUND;
pub const INSUFFICIENT_SIZE: nvmlReturn_t = nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE;
pub const DRIVER_NOT_LOADED: nvmlReturn_t = nvmlReturn_enum_NVML_ERROR_DRIVER_NOT_LOADED;
pub const GPU_IS_LOST: nvmlReturn_t = nvmlReturn_enum_NVML_ERROR_GPU_IS_LOST;
pub const TIMEOUT: nvmlReturn_t = nvmlReturn_enum_NVML_ERROR_TIMEOUT;
pub const ARGUMENT_VERSION_MISMATCH: nvmlReturn_t =
    nvmlReturn_enum_NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
pub const UNKNOWN: nvmlReturn_t = nvmlReturn_enum_NVML_ERROR_UNKNOWN;

/// One NVML error: the name a scenario uses (NVML's `NVML_ERROR_*` without the prefix), its
/// numeric code and the text `nvmlErrorString` returns for it.
struct Entry {
    name: &'static str,
    code: nvmlReturn_t,
    message: &'static CStr,
}

const fn entry(name: &'static str, code: nvmlReturn_t, message: &'static CStr) -> Entry {
    Entry {
        name,
        code,
        message,
    }
}

/// Every error code in `nvmlReturn_enum` (nvml-wrapper-sys 0.10's `nvml.h`), with messages
/// in the words of NVML's `nvmlErrorString`.
#[rustfmt::skip]
const TABLE: &[Entry] = &[
    entry("UNINITIALIZED", nvmlReturn_enum_NVML_ERROR_UNINITIALIZED, c"Uninitialized"),
    entry("INVALID_ARGUMENT", nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT, c"Invalid Argument"),
    entry("NOT_SUPPORTED", nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED, c"Not Supported"),
    entry("NO_PERMISSION", nvmlReturn_enum_NVML_ERROR_NO_PERMISSION, c"Insufficient Permissions"),
    entry("ALREADY_INITIALIZED", nvmlReturn_enum_NVML_ERROR_ALREADY_INITIALIZED, c"Already Initialized"),
    entry("NOT_FOUND", nvmlReturn_enum_NVML_ERROR_NOT_FOUND, c"Not Found"),
    entry("INSUFFICIENT_SIZE", nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE, c"Insufficient Size"),
    entry("INSUFFICIENT_POWER", nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_POWER, c"Insufficient External Power"),
    entry("DRIVER_NOT_LOADED", nvmlReturn_enum_NVML_ERROR_DRIVER_NOT_LOADED, c"Driver Not Loaded"),
    entry("TIMEOUT", nvmlReturn_enum_NVML_ERROR_TIMEOUT, c"Timeout"),
    entry("IRQ_ISSUE", nvmlReturn_enum_NVML_ERROR_IRQ_ISSUE, c"Interrupt Request Issue"),
    entry("LIBRARY_NOT_FOUND", nvmlReturn_enum_NVML_ERROR_LIBRARY_NOT_FOUND, c"NVML Shared Library Not Found"),
    entry("FUNCTION_NOT_FOUND", nvmlReturn_enum_NVML_ERROR_FUNCTION_NOT_FOUND, c"Function Not Found"),
    entry("CORRUPTED_INFOROM", nvmlReturn_enum_NVML_ERROR_CORRUPTED_INFOROM, c"Corrupted infoROM"),
    entry("GPU_IS_LOST", nvmlReturn_enum_NVML_ERROR_GPU_IS_LOST, c"GPU is lost"),
    entry("RESET_REQUIRED", nvmlReturn_enum_NVML_ERROR_RESET_REQUIRED, c"GPU requires restart"),
    entry("OPERATING_SYSTEM", nvmlReturn_enum_NVML_ERROR_OPERATING_SYSTEM, c"The operating system has blocked the request."),
    entry("LIB_RM_VERSION_MISMATCH", nvmlReturn_enum_NVML_ERROR_LIB_RM_VERSION_MISMATCH, c"RM has detected an NVML/RM version mismatch."),
    entry("IN_USE", nvmlReturn_enum_NVML_ERROR_IN_USE, c"In use by another client"),
    entry("MEMORY", nvmlReturn_enum_NVML_ERROR_MEMORY, c"Insufficient Memory"),
    entry("NO_DATA", nvmlReturn_enum_NVML_ERROR_NO_DATA, c"No data"),
    entry("VGPU_ECC_NOT_SUPPORTED", nvmlReturn_enum_NVML_ERROR_VGPU_ECC_NOT_SUPPORTED, c"The requested vgpu operation is not available on target device, because ECC is enabled"),
    entry("INSUFFICIENT_RESOURCES", nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_RESOURCES, c"Ran out of critical resources, other than memory"),
    entry("FREQ_NOT_SUPPORTED", nvmlReturn_enum_NVML_ERROR_FREQ_NOT_SUPPORTED, c"The requested frequency is not supported"),
    entry("ARGUMENT_VERSION_MISMATCH", nvmlReturn_enum_NVML_ERROR_ARGUMENT_VERSION_MISMATCH, c"Struct version mismatch"),
    entry("DEPRECATED", nvmlReturn_enum_NVML_ERROR_DEPRECATED, c"The requested functionality has been deprecated"),
    entry("NOT_READY", nvmlReturn_enum_NVML_ERROR_NOT_READY, c"The system is not ready for the request"),
    entry("GPU_NOT_FOUND", nvmlReturn_enum_NVML_ERROR_GPU_NOT_FOUND, c"The GPU was not found"),
    entry("INVALID_STATE", nvmlReturn_enum_NVML_ERROR_INVALID_STATE, c"Invalid state"),
    entry("RESET_TYPE_NOT_SUPPORTED", nvmlReturn_enum_NVML_ERROR_RESET_TYPE_NOT_SUPPORTED, c"Reset type not supported"),
    entry("UNKNOWN", nvmlReturn_enum_NVML_ERROR_UNKNOWN, c"Unknown Error"),
];

/// The text for `code`, as `nvmlErrorString` returns it.
pub fn message(code: nvmlReturn_t) -> &'static CStr {
    if code == SUCCESS {
        return c"Success";
    }
    TABLE
        .iter()
        .find(|e| e.code == code)
        .map_or(c"Unknown Error", |e| e.message)
}

/// An NVML error code named in a scenario (`errors`, `init_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub nvmlReturn_t);

impl ErrorCode {
    /// Looks up a scenario name such as `GPU_IS_LOST`. `SUCCESS` is not an error, so it is
    /// not a name.
    pub fn from_name(name: &str) -> Option<Self> {
        TABLE
            .iter()
            .find(|e| e.name == name)
            .map(|e| ErrorCode(e.code))
    }

    /// The scenario name of this code, or `None` for a code the table does not know.
    pub fn name(self) -> Option<&'static str> {
        TABLE.iter().find(|e| e.code == self.0).map(|e| e.name)
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        ErrorCode::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = TABLE.iter().map(|e| e.name).collect();
            D::Error::custom(format!(
                "unknown NVML error name `{name}` (NVML_ERROR_* without the prefix; one of {})",
                known.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in TABLE {
            assert_eq!(ErrorCode::from_name(e.name), Some(ErrorCode(e.code)));
            assert_eq!(ErrorCode(e.code).name(), Some(e.name));
        }
        assert_eq!(ErrorCode::from_name("SUCCESS"), None);
        assert_eq!(ErrorCode::from_name("gpu_is_lost"), None);
    }

    #[test]
    fn messages() {
        assert_eq!(message(SUCCESS), c"Success");
        assert_eq!(message(GPU_IS_LOST), c"GPU is lost");
        assert_eq!(message(12345), c"Unknown Error");
    }
}
