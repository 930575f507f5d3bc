//! DCGM's statuses as the collector counts them: the `error` label of each `dcgmReturn_t`
//! (its name in `dcgm_structs.h` without `DCGM_ST_`), the one table of DCGM error labels, and
//! the check every call's status goes through (a lost connection told apart).

use super::ffi::{self, DcgmReturn};
use crate::sample::{CallError, ErrorLabel};

/// `dcgmReturn_enum` (`dcgm_structs.h`), every error up to -55 in DCGM 3.3's header, and -56
/// to -58 from DCGM 4 (as NVIDIA's go-dcgm bindings list them).
const NAMES: &[(DcgmReturn, &str)] = &[
    (-1, "BADPARAM"),
    (-3, "GENERIC_ERROR"),
    (-4, "MEMORY"),
    (-5, "NOT_CONFIGURED"),
    (-6, "NOT_SUPPORTED"),
    (-7, "INIT_ERROR"),
    (-8, "NVML_ERROR"),
    (-9, "PENDING"),
    (-10, "UNINITIALIZED"),
    (-11, "TIMEOUT"),
    (-12, "VER_MISMATCH"),
    (-13, "UNKNOWN_FIELD"),
    (-14, "NO_DATA"),
    (-15, "STALE_DATA"),
    (-16, "NOT_WATCHED"),
    (-17, "NO_PERMISSION"),
    (-18, "GPU_IS_LOST"),
    (-19, "RESET_REQUIRED"),
    (-20, "FUNCTION_NOT_FOUND"),
    (-21, "CONNECTION_NOT_VALID"),
    (-22, "GPU_NOT_SUPPORTED"),
    (-23, "GROUP_INCOMPATIBLE"),
    (-24, "MAX_LIMIT"),
    (-25, "LIBRARY_NOT_FOUND"),
    (-26, "DUPLICATE_KEY"),
    (-27, "GPU_IN_SYNC_BOOST_GROUP"),
    (-28, "GPU_NOT_IN_SYNC_BOOST_GROUP"),
    (-29, "REQUIRES_ROOT"),
    (-30, "NVVS_ERROR"),
    (-31, "INSUFFICIENT_SIZE"),
    (-32, "FIELD_UNSUPPORTED_BY_API"),
    (-33, "MODULE_NOT_LOADED"),
    (-34, "IN_USE"),
    (-35, "GROUP_IS_EMPTY"),
    (-36, "PROFILING_NOT_SUPPORTED"),
    (-37, "PROFILING_LIBRARY_ERROR"),
    (-38, "PROFILING_MULTI_PASS"),
    (-39, "DIAG_ALREADY_RUNNING"),
    (-40, "DIAG_BAD_JSON"),
    (-41, "DIAG_BAD_LAUNCH"),
    (-42, "DIAG_UNUSED"),
    (-43, "DIAG_THRESHOLD_EXCEEDED"),
    (-44, "INSUFFICIENT_DRIVER_VERSION"),
    (-45, "INSTANCE_NOT_FOUND"),
    (-46, "COMPUTE_INSTANCE_NOT_FOUND"),
    (-47, "CHILD_NOT_KILLED"),
    (-48, "3RD_PARTY_LIBRARY_ERROR"),
    (-49, "INSUFFICIENT_RESOURCES"),
    (-50, "PLUGIN_EXCEPTION"),
    (-51, "NVVS_ISOLATE_ERROR"),
    (-52, "NVVS_BINARY_NOT_FOUND"),
    (-53, "NVVS_KILLED"),
    (-54, "PAUSED"),
    (-55, "ALREADY_INITIALIZED"),
    (-56, "NVML_NOT_LOADED"),
    (-57, "NVML_DRIVER_TIMEOUT"),
    (-58, "NVVS_NO_AVAILABLE_TEST"),
];

/// The `error` label of a DCGM status. A status the table does not know (a newer DCGM) is
/// `STATUS_<n>` for status `-n` (DCGM's errors are negative).
pub fn label(status: DcgmReturn) -> ErrorLabel {
    match NAMES.iter().find(|(code, _)| *code == status) {
        Some((_, name)) => ErrorLabel::Driver(name),
        None => ErrorLabel::Status(status.unsigned_abs()),
    }
}

/// The host engine is gone (`DCGM_ST_CONNECTION_NOT_VALID`): drop the session, connect again.
#[derive(Debug, PartialEq, Eq)]
pub struct Lost;

/// Checks a status: `Ok` for success, `Err(Lost)` for a dead connection, else counts it
/// under `call` and returns it.
pub fn check(
    status: DcgmReturn,
    call: &'static str,
    errors: &mut Vec<CallError>,
) -> Result<Result<(), DcgmReturn>, Lost> {
    match status {
        ffi::ST_OK => Ok(Ok(())),
        ffi::ST_CONNECTION_NOT_VALID => {
            errors.push(CallError::new(call, label(status)));
            Err(Lost)
        }
        other => {
            errors.push(CallError::new(call, label(other)));
            Ok(Err(other))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_one_name_and_unknown_ones_a_number() {
        assert_eq!(
            label(super::super::ffi::ST_CONNECTION_NOT_VALID).to_string(),
            "CONNECTION_NOT_VALID"
        );
        assert_eq!(label(-36).to_string(), "PROFILING_NOT_SUPPORTED");
        assert_eq!(label(-34).to_string(), "IN_USE");
        assert_eq!(label(-99).to_string(), "STATUS_99");
        let mut codes: Vec<_> = NAMES.iter().map(|(c, _)| *c).collect();
        codes.dedup();
        assert_eq!(codes.len(), NAMES.len());
        let mut names: Vec<_> = NAMES.iter().map(|(_, n)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), NAMES.len());
    }
}
