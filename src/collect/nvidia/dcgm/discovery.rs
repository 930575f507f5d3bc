//! Which DCGM entity each target is: the GPUs DCGM supports, matched by their UUID
//! (`DCGM_FI_DEV_UUID`, read live), and the MIG GPU instances of its hierarchy, matched by their
//! parent's UUID and NVML GPU instance id.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_uint};

use super::ffi::{self, EntityPair, FieldValueV2};
use super::library::Api;
use super::status::{check, Lost};
use super::Target;
use crate::sample::CallError;

/// What DCGM lists.
pub(super) struct Listing {
    /// The entity of each GPU and MIG GPU instance it knows.
    pub(super) entities: BTreeMap<Target, EntityPair>,
    /// The MIG instances could not be listed: an instance missing here may exist.
    pub(super) partial: bool,
}

/// The entity of every target DCGM knows: GPUs by their `DCGM_FI_DEV_UUID`, MIG GPU
/// instances from the instance hierarchy (their parent's UUID and NVML GPU instance id).
/// `Ok(None)`: listing the GPUs failed (counted), so what DCGM knows is not known. A failed
/// MIG hierarchy (counted) leaves the instances out and says so: [`Listing::partial`].
pub(super) fn entities(
    api: &Api,
    handle: ffi::Handle,
    targets: &[Target],
    errors: &mut Vec<CallError>,
) -> Result<Option<Listing>, Lost> {
    let mut out = BTreeMap::new();
    let mut ids = [0 as c_uint; ffi::MAX_NUM_DEVICES];
    let mut count: c_int = 0;
    // SAFETY: a list of DCGM_MAX_NUM_DEVICES entries and an out-pointer.
    let status = unsafe { (api.get_all_supported_devices)(handle, ids.as_mut_ptr(), &mut count) };
    if check(status, "dcgm_watch", errors)?.is_err() {
        return Ok(None);
    }
    let count = usize::try_from(count)
        .unwrap_or(0)
        .min(ffi::MAX_NUM_DEVICES);
    let mut gpus: Vec<EntityPair> = ids[..count]
        .iter()
        .map(|id| EntityPair {
            entity_group_id: ffi::FE_GPU,
            entity_id: *id,
        })
        .collect();
    let mut uuid_field = [ffi::FI_DEV_UUID];
    let mut values = vec![FieldValueV2::empty(); gpus.len()];
    if !gpus.is_empty() {
        // SAFETY: `values` holds entities x 1 records, as the call requires.
        let status = unsafe {
            (api.entities_get_latest_values)(
                handle,
                gpus.as_mut_ptr(),
                gpus.len() as c_uint,
                uuid_field.as_mut_ptr(),
                1,
                ffi::FV_FLAG_LIVE_DATA,
                values.as_mut_ptr(),
            )
        };
        if check(status, "dcgm_watch", errors)?.is_err() {
            return Ok(None);
        }
    }
    let mut uuid_of_gpu = BTreeMap::new();
    for v in values.iter().filter(|v| v.status == ffi::ST_OK) {
        if let Some(uuid) = v.string().filter(|u| u.starts_with("GPU-")) {
            uuid_of_gpu.insert(v.entity_id, uuid.clone());
            out.insert(
                Target::Gpu(uuid),
                EntityPair {
                    entity_group_id: ffi::FE_GPU,
                    entity_id: v.entity_id,
                },
            );
        }
    }
    let mut partial = false;
    if targets.iter().any(|t| matches!(t, Target::Instance { .. })) {
        let mut h = ffi::MigHierarchyV2::boxed();
        // SAFETY: a versioned, zeroed hierarchy of the header's size.
        let status = unsafe { (api.get_gpu_instance_hierarchy)(handle, &mut *h) };
        partial = check(status, "dcgm_watch", errors)?.is_err();
        if !partial {
            let n = (h.count as usize).min(ffi::MAX_HIERARCHY_INFO);
            for e in h.entity_list[..n]
                .iter()
                .filter(|e| e.entity.entity_group_id == ffi::FE_GPU_I)
            {
                let parent = uuid_of_gpu
                    .get(&e.parent.entity_id)
                    .cloned()
                    .unwrap_or_else(|| ffi::c_buffer_string(&e.info.gpu_uuid));
                out.insert(
                    Target::Instance {
                        parent,
                        gpu_instance: e.info.nvml_instance_id,
                    },
                    e.entity,
                );
            }
        }
    }
    Ok(Some(Listing {
        entities: out,
        partial,
    }))
}
