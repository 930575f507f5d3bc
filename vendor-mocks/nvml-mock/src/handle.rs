//! Device handles: `nvmlDevice_t` values that encode the device's NVML index instead of
//! pointing at memory, so a handle stays valid across scenario reloads.
//!
//! Handles are `0x1000 + index`, inside the first pages of the address space that Linux never
//! maps (`vm.mmap_min_addr`), so no real pointer can be mistaken for one. The range above the
//! devices is left for MIG instance handles.

use std::ptr;

use nvml_wrapper_sys::bindings::{nvmlDevice_st, nvmlDevice_t};

const DEVICE_BASE: usize = 0x1000;
/// More GPUs than any node has; indexes at or above this get no handle.
pub const MAX_DEVICES: usize = 0x400;

/// The handle of the device at `index`, or `None` past [`MAX_DEVICES`].
pub fn encode(index: usize) -> Option<nvmlDevice_t> {
    (index < MAX_DEVICES).then(|| ptr::without_provenance_mut::<nvmlDevice_st>(DEVICE_BASE + index))
}

/// The device index a handle stands for, or `None` for NULL or anything the mock did not
/// hand out.
pub fn decode(handle: nvmlDevice_t) -> Option<usize> {
    handle
        .addr()
        .checked_sub(DEVICE_BASE)
        .filter(|index| *index < MAX_DEVICES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for index in [0, 1, 7, MAX_DEVICES - 1] {
            assert_eq!(encode(index).and_then(decode), Some(index));
        }
        assert_eq!(encode(MAX_DEVICES), None);
        assert_eq!(decode(ptr::null_mut()), None);
        assert_eq!(decode(ptr::without_provenance_mut(DEVICE_BASE - 1)), None);
        assert_eq!(decode(ptr::without_provenance_mut(0x7fff_0000_1000)), None);
    }
}
