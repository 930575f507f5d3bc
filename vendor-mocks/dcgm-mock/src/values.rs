//! The exported DCGM calls that read: the GPU list, the MIG hierarchy, and the latest values
//! of fields on entities (`DCGM_FI_DEV_UUID`, and the profiling fields from each entity's
//! `dcgm_profiling`), with DCGM's statuses per value.
// The exports keep DCGM's C names (`dcgmEntitiesGetLatestValues`, `pDcgmHandle`).
#![allow(non_snake_case)]

use std::ffi::{c_char, c_int, c_uint};
use std::time::Instant;

use nvidia_ml_mock::scenario::{Gpm, Scenario};

use crate::api::{is_profiling_field, on_connection, watched, ST_VER_MISMATCH};
use crate::ffi::{self, EntityPair, FieldValueV2, Handle, MigHierarchyV2};
use crate::state::{self, Connection, Entity, MAX_INSTANCES_PER_GPU};
use crate::DcgmResult;

/// `DCGM_FP64_NOT_SUPPORTED` (`dcgm_structs.h`): the blank a field the entity lacks reads as.
const FP64_NOT_SUPPORTED: f64 = ffi::FP64_BLANK + 2.0;

#[no_mangle]
pub unsafe extern "C" fn dcgmGetAllSupportedDevices(
    pDcgmHandle: Handle,
    gpuIdList: *mut c_uint,
    count: *mut c_int,
) -> ffi::DcgmReturn {
    on_connection(
        pDcgmHandle,
        |_, _| Vec::new(),
        |scenario, _| {
            if gpuIdList.is_null() || count.is_null() {
                return Err(ffi::ST_BADPARAM);
            }
            let n = scenario.devices.len().min(ffi::MAX_NUM_DEVICES);
            for i in 0..n {
                // SAFETY: the list holds DCGM_MAX_NUM_DEVICES entries (DCGM's contract).
                unsafe { gpuIdList.add(i).write(i as c_uint) };
            }
            // SAFETY: checked non-NULL above.
            unsafe { count.write(n as c_int) };
            Ok(())
        },
    )
}

/// Every MIG GPU instance (entity `gpu x 8 + slot`, its parent the GPU) and its compute
/// instance (the same numbering, its parent the GPU instance).
#[no_mangle]
pub unsafe extern "C" fn dcgmGetGpuInstanceHierarchy(
    dcgmHandle: Handle,
    hierarchy: *mut MigHierarchyV2,
) -> ffi::DcgmReturn {
    on_connection(
        dcgmHandle,
        |_, _| Vec::new(),
        |scenario, _| {
            if hierarchy.is_null() {
                return Err(ffi::ST_BADPARAM);
            }
            // SAFETY: non-NULL; DCGM's contract: a whole dcgmMigHierarchy_v2.
            let h = unsafe { &mut *hierarchy };
            if h.version != ffi::MIG_HIERARCHY_V2_VERSION {
                return Err(ST_VER_MISMATCH);
            }
            let mut n = 0;
            for (index, device) in scenario
                .devices
                .iter()
                .enumerate()
                .take(ffi::MAX_NUM_DEVICES)
            {
                for (slot, m) in device.mig.iter().flatten().enumerate() {
                    let id = index as c_uint * MAX_INSTANCES_PER_GPU + slot as c_uint;
                    let gpu = EntityPair {
                        entity_group_id: ffi::FE_GPU,
                        entity_id: index as c_uint,
                    };
                    let gi = EntityPair {
                        entity_group_id: ffi::FE_GPU_I,
                        entity_id: id,
                    };
                    let ci = EntityPair {
                        entity_group_id: FE_GPU_CI,
                        entity_id: id,
                    };
                    let slices = m
                        .profile
                        .split_once('g')
                        .and_then(|(s, _)| s.parse().ok())
                        .unwrap_or(0);
                    for (entity, parent, ci_id) in
                        [(gi, gpu, c_uint::MAX), (ci, gi, m.compute_instance_id)]
                    {
                        let Some(slot) = h.entity_list.get_mut(n) else {
                            return Err(ST_INSUFFICIENT_SIZE);
                        };
                        slot.entity = entity;
                        slot.parent = parent;
                        write_c(&mut slot.info.gpu_uuid, &device.uuid);
                        slot.info.nvml_gpu_index = index as c_uint;
                        slot.info.nvml_instance_id = m.gpu_instance_id;
                        slot.info.nvml_compute_instance_id = ci_id;
                        slot.info.nvml_mig_profile_id = 0;
                        slot.info.nvml_profile_slices = slices;
                        n += 1;
                    }
                }
            }
            h.count = n as c_uint;
            Ok(())
        },
    )
}

/// `DCGM_ST_INSUFFICIENT_SIZE` (`dcgm_structs.h`).
const ST_INSUFFICIENT_SIZE: i32 = -31;

/// `DCGM_FE_GPU_CI` (`dcgm_fields.h`).
const FE_GPU_CI: c_uint = 5;

/// Writes `text` into a C buffer, NUL-terminated (cut to fit).
fn write_c(buffer: &mut [c_char], text: &str) {
    let n = text.len().min(buffer.len().saturating_sub(1));
    for (dst, src) in buffer.iter_mut().zip(text.bytes().take(n)) {
        *dst = src as c_char;
    }
    if let Some(end) = buffer.get_mut(n) {
        *end = 0;
    }
}

/// The latest value of each field on each entity, into `values` (entities x fields records,
/// entity-major). Per value: its entity's `dcgm_values` error as its status; `NOT_WATCHED` for
/// a profiling field this connection does not watch on it (the UUID is answered live);
/// `NO_DATA` before the watch's first sample; a key its `dcgm_profiling` leaves out reads
/// `DCGM_FP64_NOT_SUPPORTED` with status OK, as DCGM's blanks do.
#[no_mangle]
pub unsafe extern "C" fn dcgmEntitiesGetLatestValues(
    pDcgmHandle: Handle,
    entities: *mut EntityPair,
    entityCount: c_uint,
    fields: *mut u16,
    fieldCount: c_uint,
    flags: c_uint,
    values: *mut FieldValueV2,
) -> ffi::DcgmReturn {
    let list = |p: *mut EntityPair, n: c_uint| -> Vec<EntityPair> {
        if p.is_null() {
            return Vec::new();
        }
        // SAFETY: DCGM's contract: `entityCount` entities.
        unsafe { std::slice::from_raw_parts(p, n as usize) }.to_vec()
    };
    on_connection(
        pDcgmHandle,
        |_, _| list(entities, entityCount),
        |scenario, engine| {
            if entities.is_null() || fields.is_null() || values.is_null() {
                return Err(ffi::ST_BADPARAM);
            }
            let entity_list = list(entities, entityCount);
            // SAFETY: DCGM's contract: `fieldCount` fields and entities x fields records.
            let (field_list, out) = unsafe {
                (
                    std::slice::from_raw_parts(fields, fieldCount as usize),
                    std::slice::from_raw_parts_mut(values, entity_list.len() * fieldCount as usize),
                )
            };
            if out.iter().any(|v| v.version != ffi::FIELD_VALUE_V2_VERSION) {
                return Err(ST_VER_MISMATCH);
            }
            let c = engine.connection(pDcgmHandle)?;
            let live = flags & ffi::FV_FLAG_LIVE_DATA != 0;
            let mut i = 0;
            for pair in &entity_list {
                for field in field_list {
                    if let Some(v) = out.get_mut(i) {
                        fill(v, scenario, c, *pair, *field, live);
                    }
                    i += 1;
                }
            }
            Ok(())
        },
    )
}

/// One value record.
fn fill(
    v: &mut FieldValueV2,
    scenario: &Scenario,
    c: &Connection,
    pair: EntityPair,
    field: u16,
    live: bool,
) {
    v.entity_group_id = pair.entity_group_id;
    v.entity_id = pair.entity_id;
    v.field_id = field;
    v.field_type = ffi::FT_DOUBLE;
    v.ts = 0;
    v.value.dbl = ffi::FP64_BLANK;
    let answer = || -> DcgmResult<(f64, i64)> {
        let e = Entity::resolve(scenario, pair).ok_or(ffi::ST_BADPARAM)?;
        if field == ffi::FI_DEV_UUID {
            return Err(UUID);
        }
        if !is_profiling_field(field) {
            return Err(ST_UNKNOWN_FIELD);
        }
        if let Some(status) = e.error() {
            return Err(status);
        }
        let (_, _, w) = watched(c)
            .into_iter()
            .find(|(p, f, _)| *p == pair && *f == field)
            .ok_or(ffi::ST_NOT_WATCHED)?;
        let elapsed = Instant::now().saturating_duration_since(w.since);
        let periods = elapsed.as_micros() / w.every.as_micros().max(1);
        if periods == 0 {
            return Err(ffi::ST_NO_DATA);
        }
        let ts = w.since_us + i64::try_from(periods * w.every.as_micros()).unwrap_or(i64::MAX / 2);
        let value = e
            .profiling()
            .and_then(|g| ratio(g, field))
            .unwrap_or(FP64_NOT_SUPPORTED);
        Ok((value, ts))
    };
    match answer() {
        Ok((value, ts)) => {
            v.status = ffi::ST_OK;
            v.ts = ts;
            v.value.dbl = value;
        }
        Err(UUID) => {
            let uuid = Entity::resolve(scenario, pair).map_or("", |e| e.uuid());
            v.field_type = ffi::FT_STRING;
            v.value = ffi::FieldValueUnion {
                blob: [0; ffi::MAX_BLOB_LENGTH],
            };
            // SAFETY: writing the zeroed union's string member.
            write_c(unsafe { &mut v.value.str }, uuid);
            v.status = if live || is_watched(c, pair, field) {
                ffi::ST_OK
            } else {
                ffi::ST_NOT_WATCHED
            };
            v.ts = state::now_us();
        }
        Err(status) => v.status = status,
    }
}

/// A marker for "answer the UUID" inside [`fill`] (no DCGM status is positive).
const UUID: i32 = 1;
/// `DCGM_ST_UNKNOWN_FIELD` (`dcgm_structs.h`).
const ST_UNKNOWN_FIELD: i32 = -13;

fn is_watched(c: &Connection, pair: EntityPair, field: u16) -> bool {
    watched(c).iter().any(|(p, f, _)| *p == pair && *f == field)
}

/// The scenario ratio of a profiling field (`DCGM_FI_PROF_*` 1001-1008, `Gpm::ratios`' order).
fn ratio(g: &Gpm, field: u16) -> Option<f64> {
    let at = usize::from(field.checked_sub(ffi::FI_PROF_GR_ENGINE_ACTIVE)?);
    g.ratios().get(at)?.1
}
