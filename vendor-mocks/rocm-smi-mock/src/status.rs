//! `rsmi_status_t`: the codes and names of ROCm SMI's statuses.

/// A status code, as `rsmi_status_t` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

pub const SUCCESS: Status = Status(0);
pub const INVALID_ARGS: Status = Status(1);
pub const NOT_SUPPORTED: Status = Status(2);
pub const INSUFFICIENT_SIZE: Status = Status(11);
pub const INIT_ERROR: Status = Status(8);

/// The statuses, by their names without `RSMI_STATUS_` (as `rocm_smi.h` 5.x and 6.x number them).
pub const NAMES: [(&str, u32); 21] = [
    ("SUCCESS", 0),
    ("INVALID_ARGS", 1),
    ("NOT_SUPPORTED", 2),
    ("FILE_ERROR", 3),
    ("PERMISSION", 4),
    ("OUT_OF_RESOURCES", 5),
    ("INTERNAL_EXCEPTION", 6),
    ("INPUT_OUT_OF_BOUNDS", 7),
    ("INIT_ERROR", 8),
    ("NOT_YET_IMPLEMENTED", 9),
    ("NOT_FOUND", 10),
    ("INSUFFICIENT_SIZE", 11),
    ("INTERRUPT", 12),
    ("UNEXPECTED_SIZE", 13),
    ("NO_DATA", 14),
    ("UNEXPECTED_DATA", 15),
    ("BUSY", 16),
    ("REFCOUNT_OVERFLOW", 17),
    ("SETTING_UNAVAILABLE", 18),
    ("AMDGPU_RESTART_ERR", 19),
    ("UNKNOWN_ERROR", 0xffff_ffff),
];

impl Status {
    pub fn from_name(name: &str) -> Option<Status> {
        let name = name.strip_prefix("RSMI_STATUS_").unwrap_or(name);
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| Status(*c))
    }

    /// What `rsmi_status_string` answers: `RSMI_STATUS_<NAME>: <meaning>` in the real library;
    /// here `RSMI_STATUS_<NAME>`, NUL-terminated, with a static lifetime.
    pub fn c_name(self) -> Option<&'static std::ffi::CStr> {
        const C_NAMES: [&std::ffi::CStr; 21] = [
            c"RSMI_STATUS_SUCCESS",
            c"RSMI_STATUS_INVALID_ARGS",
            c"RSMI_STATUS_NOT_SUPPORTED",
            c"RSMI_STATUS_FILE_ERROR",
            c"RSMI_STATUS_PERMISSION",
            c"RSMI_STATUS_OUT_OF_RESOURCES",
            c"RSMI_STATUS_INTERNAL_EXCEPTION",
            c"RSMI_STATUS_INPUT_OUT_OF_BOUNDS",
            c"RSMI_STATUS_INIT_ERROR",
            c"RSMI_STATUS_NOT_YET_IMPLEMENTED",
            c"RSMI_STATUS_NOT_FOUND",
            c"RSMI_STATUS_INSUFFICIENT_SIZE",
            c"RSMI_STATUS_INTERRUPT",
            c"RSMI_STATUS_UNEXPECTED_SIZE",
            c"RSMI_STATUS_NO_DATA",
            c"RSMI_STATUS_UNEXPECTED_DATA",
            c"RSMI_STATUS_BUSY",
            c"RSMI_STATUS_REFCOUNT_OVERFLOW",
            c"RSMI_STATUS_SETTING_UNAVAILABLE",
            c"RSMI_STATUS_AMDGPU_RESTART_ERR",
            c"RSMI_STATUS_UNKNOWN_ERROR",
        ];
        NAMES
            .iter()
            .position(|(_, c)| *c == self.0)
            .and_then(|i| C_NAMES.get(i).copied())
    }
}
