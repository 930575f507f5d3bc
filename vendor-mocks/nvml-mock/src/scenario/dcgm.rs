//! The scenario's DCGM side, read by the mock DCGM (`vendor-mocks/dcgm-mock`): the top-level
//! `dcgm` block (whether the host engine is up), and the DCGM status that each NVML error name
//! stands for in the `dcgm_connect` and `dcgm_values` families. Each device's (and MIG
//! instance's) `dcgm_profiling` is a [`super::Gpm`] of the same keys.

use serde::Deserialize;

use crate::codes::ErrorCode;

/// The top-level `dcgm` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dcgm {
    #[serde(default)]
    pub hostengine: HostEngine,
}

/// Whether the node's nv-hostengine answers. Set to `down` while an agent runs, every open
/// connection is dead (`DCGM_ST_CONNECTION_NOT_VALID`), also after the engine is `up` again:
/// as with a restarted nv-hostengine, the client must connect anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostEngine {
    #[default]
    Up,
    Down,
}

/// The NVML error names a scenario may give the DCGM families, with the `dcgmReturn_t`
/// (`dcgm_structs.h`) each stands for and that status's name.
const STATUSES: &[(&str, i32, &str)] = &[
    ("INVALID_ARGUMENT", -1, "DCGM_ST_BADPARAM"),
    ("UNKNOWN", -3, "DCGM_ST_GENERIC_ERROR"),
    ("MEMORY", -4, "DCGM_ST_MEMORY"),
    ("NOT_SUPPORTED", -6, "DCGM_ST_NOT_SUPPORTED"),
    ("UNINITIALIZED", -10, "DCGM_ST_UNINITIALIZED"),
    ("TIMEOUT", -11, "DCGM_ST_TIMEOUT"),
    ("NO_DATA", -14, "DCGM_ST_NO_DATA"),
    ("NO_PERMISSION", -17, "DCGM_ST_NO_PERMISSION"),
    ("GPU_IS_LOST", -18, "DCGM_ST_GPU_IS_LOST"),
    ("RESET_REQUIRED", -19, "DCGM_ST_RESET_REQUIRED"),
    ("FUNCTION_NOT_FOUND", -20, "DCGM_ST_FUNCTION_NOT_FOUND"),
    ("LIBRARY_NOT_FOUND", -25, "DCGM_ST_LIBRARY_NOT_FOUND"),
    ("INSUFFICIENT_SIZE", -31, "DCGM_ST_INSUFFICIENT_SIZE"),
    // Another profiler (Nsight, a second DCGM) holds the counters.
    ("IN_USE", -34, "DCGM_ST_IN_USE"),
    (
        "INSUFFICIENT_RESOURCES",
        -49,
        "DCGM_ST_INSUFFICIENT_RESOURCES",
    ),
    ("ALREADY_INITIALIZED", -55, "DCGM_ST_ALREADY_INITIALIZED"),
    ("DRIVER_NOT_LOADED", -56, "DCGM_ST_NVML_NOT_LOADED"),
];

/// The DCGM status an NVML error name stands for in a DCGM family; `None` for a name without
/// a DCGM counterpart (the scenario is rejected).
pub fn status(code: ErrorCode) -> Option<i32> {
    let name = code.name()?;
    STATUSES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, status, _)| *status)
}

/// The NVML names the DCGM families take, for the message that rejects another.
pub fn names() -> Vec<&'static str> {
    STATUSES.iter().map(|(n, _, _)| *n).collect()
}

/// The `DCGM_ST_*` name of a status the mock answers, for `errorString` and messages.
pub fn status_name(status: i32) -> Option<&'static str> {
    STATUSES
        .iter()
        .find(|(_, s, _)| *s == status)
        .map(|(_, _, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_an_nvml_error_and_maps_to_one_status() {
        for (name, status_code, _) in STATUSES {
            let code = ErrorCode::from_name(name).unwrap();
            assert_eq!(status(code), Some(*status_code));
        }
        let lost = ErrorCode::from_name("IRQ_ISSUE").unwrap();
        assert_eq!(status(lost), None);
        assert_eq!(status_name(-34), Some("DCGM_ST_IN_USE"));
    }
}
