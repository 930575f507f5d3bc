//! Device handles: `nvmlDevice_t` values that encode what they stand for (a GPU's NVML index,
//! or a MIG instance's parent index and GPU instance ID) instead of pointing at memory, so a
//! handle stays valid across scenario reloads.
//!
//! GPU handles are `0x1000 + index`; MIG device handles are
//! `0x8000 + parent index * 0x20 + gpu_instance_id`. Both ranges lie below 64 KiB, in the first
//! pages of the address space that Linux never maps (`vm.mmap_min_addr`), so no real pointer
//! can be mistaken for one, and the two ranges cannot overlap.

use std::ptr;

use nvml_wrapper_sys::bindings::{nvmlDevice_st, nvmlDevice_t};

const DEVICE_BASE: usize = 0x1000;
/// More GPUs than any node has; indexes at or above this get no handle.
pub const MAX_DEVICES: usize = 0x400;

const MIG_BASE: usize = 0x8000;
/// GPU instance IDs must be below this to fit in a MIG handle. NVML's are small (an H100's
/// are at most 14), and scenario validation enforces the bound.
pub const MAX_GPU_INSTANCE_ID: u32 = 0x20;

/// What a handle the mock handed out stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handle {
    /// The GPU at this NVML index.
    Device(usize),
    /// The MIG instance with this GPU instance ID on the GPU at `parent`.
    Mig { parent: usize, gpu_instance_id: u32 },
}

/// The handle of the device at `index`, or `None` past [`MAX_DEVICES`].
pub fn encode(index: usize) -> Option<nvmlDevice_t> {
    (index < MAX_DEVICES).then(|| ptr::without_provenance_mut::<nvmlDevice_st>(DEVICE_BASE + index))
}

/// The handle of MIG instance `gpu_instance_id` on the device at `parent`.
pub fn encode_mig(parent: usize, gpu_instance_id: u32) -> Option<nvmlDevice_t> {
    (parent < MAX_DEVICES && gpu_instance_id < MAX_GPU_INSTANCE_ID).then(|| {
        let offset = parent * MAX_GPU_INSTANCE_ID as usize + gpu_instance_id as usize;
        ptr::without_provenance_mut::<nvmlDevice_st>(MIG_BASE + offset)
    })
}

/// The device index a GPU handle stands for, or `None` for NULL, a MIG handle, or anything
/// the mock did not hand out.
pub fn decode(handle: nvmlDevice_t) -> Option<usize> {
    match resolve(handle)? {
        Handle::Device(index) => Some(index),
        Handle::Mig { .. } => None,
    }
}

/// What any handle stands for, or `None` for NULL or anything the mock did not hand out.
pub fn resolve(handle: nvmlDevice_t) -> Option<Handle> {
    let addr = handle.addr();
    if let Some(index) = addr
        .checked_sub(DEVICE_BASE)
        .filter(|index| *index < MAX_DEVICES)
    {
        return Some(Handle::Device(index));
    }
    let offset = addr
        .checked_sub(MIG_BASE)
        .filter(|o| *o < MAX_DEVICES * MAX_GPU_INSTANCE_ID as usize)?;
    Some(Handle::Mig {
        parent: offset / MAX_GPU_INSTANCE_ID as usize,
        gpu_instance_id: (offset % MAX_GPU_INSTANCE_ID as usize) as u32,
    })
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

    #[test]
    fn mig_round_trip() {
        for (parent, gi) in [
            (0, 0),
            (0, 1),
            (3, 14),
            (MAX_DEVICES - 1, MAX_GPU_INSTANCE_ID - 1),
        ] {
            let h = encode_mig(parent, gi);
            assert_eq!(
                h.and_then(resolve),
                Some(Handle::Mig {
                    parent,
                    gpu_instance_id: gi
                })
            );
            // A MIG handle is never a GPU handle.
            assert_eq!(h.and_then(decode), None);
            assert!(h.is_some_and(|h| h.addr() < 0x10000));
        }
        assert_eq!(encode_mig(0, MAX_GPU_INSTANCE_ID), None);
        assert_eq!(encode_mig(MAX_DEVICES, 0), None);
        assert_eq!(resolve(ptr::without_provenance_mut(0x10000)), None);
    }
}
