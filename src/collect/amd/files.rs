//! Reading small kernel files (sysfs attributes, procfs entries) and naming what went wrong, in
//! the `error` label's terms: a file that is absent or "not supported" is no error at all.

use std::io::{self, ErrorKind};
use std::path::Path;

use crate::sample::{CallError, ErrorLabel};

/// Why a file or a value could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// The read failed (`PERMISSION_DENIED`, `IO_ERROR`, `NO_DEVICE`, ...).
    Io(ErrorLabel),
    /// The content is not what the kernel writes there.
    Malformed,
    /// A number outside anything the hardware can report (a busy percent of 250).
    OutOfRange,
}

/// A read that failed because the device behind the file is gone (hot-unplugged, fallen off
/// the bus): `ENODEV`, `ENXIO`.
pub(crate) const NO_DEVICE: ErrorLabel = ErrorLabel::Io("NO_DEVICE");

impl Unreadable {
    /// The `error` label.
    pub(crate) fn label(&self) -> ErrorLabel {
        match self {
            Unreadable::Io(label) => label.clone(),
            Unreadable::Malformed => ErrorLabel::Malformed,
            Unreadable::OutOfRange => ErrorLabel::OutOfRange,
        }
    }

    /// The device behind the file is gone (hot-unplugged, fallen off the bus).
    pub(crate) fn device_gone(&self) -> bool {
        matches!(self, Unreadable::Io(label) if *label == NO_DEVICE)
    }

    pub(crate) fn to_call_error(&self, call: &'static str) -> CallError {
        CallError::new(call, self.label())
    }
}

/// The `error` label for an I/O error.
pub(crate) fn io_error_label(e: &io::Error) -> ErrorLabel {
    match e.raw_os_error() {
        Some(libc::ENODEV) | Some(libc::ENXIO) => return NO_DEVICE,
        Some(libc::EIO) => return ErrorLabel::Io("IO_ERROR"),
        Some(libc::EBUSY) => return ErrorLabel::Io("BUSY"),
        Some(libc::ETIMEDOUT) => return ErrorLabel::Timeout,
        Some(libc::EISDIR) => return ErrorLabel::Io("IS_A_DIRECTORY"),
        Some(libc::ESRCH) => return ErrorLabel::Io("NOT_FOUND"),
        _ => {}
    }
    match e.kind() {
        ErrorKind::NotFound => ErrorLabel::Io("NOT_FOUND"),
        ErrorKind::PermissionDenied => ErrorLabel::Io("PERMISSION_DENIED"),
        ErrorKind::InvalidData => ErrorLabel::Malformed,
        _ => ErrorLabel::Io("OS_ERROR"),
    }
}

/// Whether a failed read means "this attribute is not there": the file is absent, or the driver
/// answers "not supported". amdgpu returns `EOPNOTSUPP` or `ENODATA` for what the ASIC lacks
/// (`power1_average` on RDNA3, `gpu_busy_percent` on some partition modes), and older kernels
/// `EINVAL` (as does KFD's `cu_occupancy` on ASICs without the query). Such values are absent,
/// every cycle alike, not errors.
fn not_supported(e: &io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
        || matches!(
            e.raw_os_error(),
            Some(libc::EOPNOTSUPP) | Some(libc::ENODATA) | Some(libc::EINVAL) | Some(libc::ESRCH)
        )
}

/// Reads a small text file. `Ok(None)`: absent or not supported.
pub(crate) fn text(path: &Path) -> Result<Option<String>, Unreadable> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if not_supported(&e) => Ok(None),
        Err(e) => Err(Unreadable::Io(io_error_label(&e))),
    }
}

/// A non-negative integer attribute (`mem_info_vram_used`, `vram_<gpu_id>`), with an
/// optional `0x` prefix for hexadecimal ones (the PCI `device` id).
pub(crate) fn parse_u64(s: &str) -> Result<u64, Unreadable> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse::<u64>(),
    };
    match parsed {
        Ok(v) => Ok(v),
        // "-5": a number, but not one a counter or a size can be.
        Err(_) if s.starts_with('-') && s[1..].parse::<u64>().is_ok() => {
            Err(Unreadable::OutOfRange)
        }
        Err(_) => Err(Unreadable::Malformed),
    }
}

/// An integer attribute that may be negative (temperatures), within `lo..=hi`.
pub(crate) fn parse_i64_in(s: &str, lo: i64, hi: i64) -> Result<i64, Unreadable> {
    let v: i64 = s.trim().parse().map_err(|_| Unreadable::Malformed)?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(Unreadable::OutOfRange)
    }
}

/// Reads and parses one attribute, pushing a failure onto `errors` (under `call`) and
/// returning `None` for it; an absent or unsupported attribute is `None` without an error.
/// Sets `*gone` when the read says the device itself has gone away.
pub(crate) fn value<T>(
    path: &Path,
    call: &'static str,
    errors: &mut Vec<CallError>,
    gone: &mut bool,
    parse: impl Fn(&str) -> Result<T, Unreadable>,
) -> Option<T> {
    first_value(&[path], call, errors, gone, parse)
}

/// Like [`value`], from the first of `paths` that is present: a later file stands in only for
/// an absent one, never for one that failed.
pub(crate) fn first_value<T>(
    paths: &[&Path],
    call: &'static str,
    errors: &mut Vec<CallError>,
    gone: &mut bool,
    parse: impl Fn(&str) -> Result<T, Unreadable>,
) -> Option<T> {
    for path in paths {
        let result = match text(path) {
            Ok(None) => continue,
            Ok(Some(t)) => parse(&t),
            Err(bad) => Err(bad),
        };
        return match result {
            Ok(v) => Some(v),
            Err(bad) => {
                *gone |= bad.device_gone();
                tracing::debug!(path = %path.display(), error = %bad.label(), "unusable attribute");
                errors.push(bad.to_call_error(call));
                None
            }
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_their_failures() {
        assert_eq!(parse_u64("68702699520\n"), Ok(68702699520));
        assert_eq!(parse_u64("0x74a1\n"), Ok(0x74a1));
        assert_eq!(parse_u64("-5\n"), Err(Unreadable::OutOfRange));
        assert_eq!(parse_u64("lots\n"), Err(Unreadable::Malformed));
        assert_eq!(parse_u64(""), Err(Unreadable::Malformed));
        assert_eq!(parse_i64_in("-12000\n", -273_000, 200_000), Ok(-12000));
        assert_eq!(
            parse_i64_in("511000\n", -273_000, 200_000),
            Err(Unreadable::OutOfRange)
        );
    }

    #[test]
    fn a_later_file_stands_in_only_for_an_absent_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            dir.path().join("power1_average"),
            dir.path().join("power1_input"),
        );
        std::fs::write(&b, "300000000\n").unwrap();
        let (mut errors, mut gone) = (Vec::new(), false);
        let read = |errors: &mut Vec<CallError>, gone: &mut bool| {
            first_value(&[&a, &b], "sysfs", errors, gone, parse_u64)
        };
        assert_eq!(read(&mut errors, &mut gone), Some(300_000_000));
        std::fs::write(&a, "lots\n").unwrap();
        assert_eq!(read(&mut errors, &mut gone), None);
        assert_eq!(errors, [Unreadable::Malformed.to_call_error("sysfs")]);
        assert!(!gone);
    }

    #[test]
    fn absent_files_are_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(text(&dir.path().join("nope")), Ok(None));
        // A directory where a file should be: a read error, named.
        assert_eq!(
            text(dir.path()),
            Err(Unreadable::Io(ErrorLabel::Io("IS_A_DIRECTORY")))
        );
    }
}
