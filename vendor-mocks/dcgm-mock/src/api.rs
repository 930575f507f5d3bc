//! The exported DCGM calls that set things up: init and shutdown, connecting (to the host
//! engine or an embedded one), groups, field groups and watches, with the signatures of
//! `dcgm_agent.h`.
//!
//! Order of checks in a call on a connection: not initialized -> a handle the engine never
//! gave (`BADPARAM`) -> the host engine down or restarted since (`CONNECTION_NOT_VALID`) ->
//! (mock) the call's cost and delay, paid with the lock released -> (mock) the top-level
//! injected error -> the call's own checks and answer, with the connection checked again (the
//! engine may have gone down meanwhile).
// The exports keep DCGM's C names (`dcgmWatchFields`, `pDcgmHandle`).
#![allow(non_snake_case)]

use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_longlong, c_uint, CStr};
use std::time::{Duration, Instant};

use nvidia_ml_mock::cost;
use nvidia_ml_mock::scenario::{CostKey, Family, Scenario};

use crate::ffi::{self, ConnectV2Params, DcgmReturn, EntityPair, FieldGroupId, GroupId, Handle};
use crate::state::{self, Connection, Engine, Entity, FieldGroup, Watch, ST_NOT_CONFIGURED};
use crate::{ffi_guard, DcgmResult};

/// `DCGM_ST_DUPLICATE_KEY`, `DCGM_ST_VER_MISMATCH` (`dcgm_structs.h`).
const ST_DUPLICATE_KEY: DcgmReturn = -26;
pub const ST_VER_MISMATCH: DcgmReturn = -12;
/// `DCGM_GROUP_DEFAULT` (`dcgmGroupType_enum`): every GPU.
const GROUP_DEFAULT: c_int = 0;
/// `DCGM_MAX_FIELD_IDS_PER_FIELD_GROUP` (`dcgm_structs.h`).
const MAX_FIELD_IDS_PER_FIELD_GROUP: c_int = 128;
/// The profiling fields the mock answers: `DCGM_FI_PROF_*` 1001-1008 (`dcgm_fields.h`).
pub fn is_profiling_field(field: u16) -> bool {
    (ffi::FI_PROF_GR_ENGINE_ACTIVE..=ffi::FI_PROF_PIPE_FP16_ACTIVE).contains(&field)
}

/// Pays the call's cost and sleeps out its delay, outside the lock.
fn pay(scenario: &Scenario, family: Family, delay: Duration) {
    cost::pay(scenario.costs.of(CostKey::Family(family)), 1);
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
}

/// Runs a call on the connection `handle`: checks it, pays the `dcgm_values` cost and delay
/// (the entities `touches` names add their GPUs' delays) with the lock released, answers the
/// top-level injected error, then runs `body` with the engine locked and the connection
/// checked again.
pub(crate) fn on_connection(
    handle: Handle,
    touches: impl FnOnce(&Scenario, &Connection) -> Vec<EntityPair>,
    body: impl FnOnce(&Scenario, &mut Engine) -> DcgmResult,
) -> DcgmReturn {
    ffi_guard(|| {
        let (scenario, delay, error) = {
            let mut engine = state::lock();
            let scenario = engine.scenario()?;
            let conn = engine.connection(handle)?;
            let entities = touches(&scenario, conn);
            let (delay, error) = state::faults(&scenario, Family::DcgmValues, &entities);
            (scenario, delay, error)
        };
        pay(&scenario, Family::DcgmValues, delay);
        if let Some(status) = error {
            return Err(status);
        }
        let mut engine = state::lock();
        let scenario = engine.scenario()?;
        engine.connection(handle)?;
        body(&scenario, &mut engine)
    })
}

/// The live connection behind `handle` (checked by [`on_connection`] just before).
fn conn(engine: &mut Engine, handle: Handle) -> DcgmResult<&mut Connection> {
    engine.connection(handle)
}

#[no_mangle]
pub extern "C" fn dcgmInit() -> DcgmReturn {
    ffi_guard(|| state::lock().init())
}

#[no_mangle]
pub extern "C" fn dcgmShutdown() -> DcgmReturn {
    ffi_guard(|| state::lock().shutdown())
}

/// Connects: the `dcgm_connect` cost, delay and error; a delay past `timeoutMs` is
/// `CONNECTION_NOT_VALID` after `timeoutMs`, as DCGM gives up then.
#[no_mangle]
pub unsafe extern "C" fn dcgmConnect_v2(
    ipAddress: *const c_char,
    connectParams: *mut ConnectV2Params,
    pDcgmHandle: *mut Handle,
) -> DcgmReturn {
    ffi_guard(|| {
        if ipAddress.is_null() || connectParams.is_null() || pDcgmHandle.is_null() {
            return Err(ffi::ST_BADPARAM);
        }
        // SAFETY: non-NULL; DCGM's contract makes them readable.
        let (address, params) = unsafe { (CStr::from_ptr(ipAddress), &*connectParams) };
        if params.version != ffi::CONNECT_V2_PARAMS_VERSION {
            return Err(ST_VER_MISMATCH);
        }
        let address = address.to_str().map_err(|_| ffi::ST_BADPARAM)?;
        let unix = params.address_is_unix_socket != 0;
        if address.is_empty() || (unix && !address.starts_with('/')) {
            return Err(ffi::ST_BADPARAM);
        }
        let scenario = state::lock().scenario()?;
        let (delay, error) = state::faults(&scenario, Family::DcgmConnect, &[]);
        let timeout = Duration::from_millis(u64::from(params.timeout_ms));
        let gives_up = params.timeout_ms > 0 && delay > timeout;
        pay(
            &scenario,
            Family::DcgmConnect,
            if gives_up { timeout } else { delay },
        );
        if gives_up {
            return Err(ffi::ST_CONNECTION_NOT_VALID);
        }
        if let Some(status) = error {
            return Err(status);
        }
        let mut engine = state::lock();
        engine.scenario()?;
        if !engine.engine_up() {
            return Err(ffi::ST_CONNECTION_NOT_VALID);
        }
        let handle = engine.connect(false);
        // SAFETY: checked non-NULL above.
        unsafe { pDcgmHandle.write(handle) };
        Ok(())
    })
}

/// An engine inside the caller: up whatever the host engine's state (`dcgm_connect` faults
/// apply).
#[no_mangle]
pub unsafe extern "C" fn dcgmStartEmbedded(opMode: c_int, pDcgmHandle: *mut Handle) -> DcgmReturn {
    ffi_guard(|| {
        if pDcgmHandle.is_null() || !matches!(opMode, 1 | 2) {
            return Err(ffi::ST_BADPARAM);
        }
        let scenario = state::lock().scenario()?;
        let (delay, error) = state::faults(&scenario, Family::DcgmConnect, &[]);
        pay(&scenario, Family::DcgmConnect, delay);
        if let Some(status) = error {
            return Err(status);
        }
        let handle = state::lock().connect(true);
        // SAFETY: checked non-NULL above.
        unsafe { pDcgmHandle.write(handle) };
        Ok(())
    })
}

/// Ends a connection (or an embedded engine); its groups and watches go with it.
fn end(handle: Handle, embedded: bool) -> DcgmReturn {
    ffi_guard(|| {
        let mut engine = state::lock();
        engine.scenario()?;
        match engine.connections.get(&handle) {
            Some(c) if c.embedded == embedded => {
                engine.connections.remove(&handle);
                Ok(())
            }
            _ => Err(ffi::ST_BADPARAM),
        }
    })
}

#[no_mangle]
pub extern "C" fn dcgmDisconnect(pDcgmHandle: Handle) -> DcgmReturn {
    end(pDcgmHandle, false)
}

#[no_mangle]
pub extern "C" fn dcgmStopEmbedded(pDcgmHandle: Handle) -> DcgmReturn {
    end(pDcgmHandle, true)
}

#[no_mangle]
pub unsafe extern "C" fn dcgmGroupCreate(
    pDcgmHandle: Handle,
    groupType: c_int,
    groupName: *const c_char,
    pDcgmGrpId: *mut GroupId,
) -> DcgmReturn {
    on_connection(
        pDcgmHandle,
        |_, _| Vec::new(),
        |scenario, engine| {
            if groupName.is_null() || pDcgmGrpId.is_null() {
                return Err(ffi::ST_BADPARAM);
            }
            let members: Vec<EntityPair> = match groupType {
                ffi::GROUP_EMPTY => Vec::new(),
                GROUP_DEFAULT => (0..scenario.devices.len().min(ffi::MAX_NUM_DEVICES))
                    .map(|i| EntityPair {
                        entity_group_id: ffi::FE_GPU,
                        entity_id: i as c_uint,
                    })
                    .collect(),
                _ => return Err(ffi::ST_BADPARAM),
            };
            let id = engine.new_id();
            conn(engine, pDcgmHandle)?.groups.insert(id, members);
            // SAFETY: checked non-NULL above.
            unsafe { pDcgmGrpId.write(id) };
            Ok(())
        },
    )
}

/// Destroys a group. Its watches stay on the entities, as DCGM's do ("the properties applied
/// on the group stay intact for the individual entities even after the group is destroyed").
#[no_mangle]
pub extern "C" fn dcgmGroupDestroy(pDcgmHandle: Handle, groupId: GroupId) -> DcgmReturn {
    on_connection(
        pDcgmHandle,
        |_, _| Vec::new(),
        |_, engine| {
            let c = conn(engine, pDcgmHandle)?;
            c.groups
                .remove(&groupId)
                .map(|_| ())
                .ok_or(ST_NOT_CONFIGURED)
        },
    )
}

#[no_mangle]
pub extern "C" fn dcgmGroupAddEntity(
    pDcgmHandle: Handle,
    groupId: GroupId,
    entityGroupId: c_uint,
    entityId: c_uint,
) -> DcgmReturn {
    on_connection(
        pDcgmHandle,
        |_, _| Vec::new(),
        |scenario, engine| {
            let pair = EntityPair {
                entity_group_id: entityGroupId,
                entity_id: entityId,
            };
            if Entity::resolve(scenario, pair).is_none() {
                return Err(ffi::ST_BADPARAM);
            }
            let group = conn(engine, pDcgmHandle)?
                .groups
                .get_mut(&groupId)
                .ok_or(ST_NOT_CONFIGURED)?;
            if group.contains(&pair) {
                return Err(ffi::ST_BADPARAM);
            }
            group.push(pair);
            Ok(())
        },
    )
}

/// A field group; its name must be unique on the engine (`DUPLICATE_KEY`).
#[no_mangle]
pub unsafe extern "C" fn dcgmFieldGroupCreate(
    dcgmHandle: Handle,
    numFieldIds: c_int,
    fieldIds: *mut u16,
    fieldGroupName: *const c_char,
    dcgmFieldGroupId: *mut FieldGroupId,
) -> DcgmReturn {
    on_connection(
        dcgmHandle,
        |_, _| Vec::new(),
        |_, engine| {
            if fieldIds.is_null()
                || fieldGroupName.is_null()
                || dcgmFieldGroupId.is_null()
                || !(1..=MAX_FIELD_IDS_PER_FIELD_GROUP).contains(&numFieldIds)
            {
                return Err(ffi::ST_BADPARAM);
            }
            // SAFETY: non-NULL; DCGM's contract: `numFieldIds` ids and a NUL-terminated name.
            let (fields, name) = unsafe {
                (
                    std::slice::from_raw_parts(fieldIds, numFieldIds as usize).to_vec(),
                    CStr::from_ptr(fieldGroupName)
                        .to_string_lossy()
                        .into_owned(),
                )
            };
            let taken = engine
                .connections
                .values()
                .flat_map(|c| c.field_groups.values())
                .any(|g| g.name == name);
            if taken {
                return Err(ST_DUPLICATE_KEY);
            }
            let id = engine.new_id();
            conn(engine, dcgmHandle)?
                .field_groups
                .insert(id, FieldGroup { name, fields });
            // SAFETY: checked non-NULL above.
            unsafe { dcgmFieldGroupId.write(id) };
            Ok(())
        },
    )
}

#[no_mangle]
pub extern "C" fn dcgmFieldGroupDestroy(
    dcgmHandle: Handle,
    dcgmFieldGroupId: FieldGroupId,
) -> DcgmReturn {
    on_connection(
        dcgmHandle,
        |_, _| Vec::new(),
        |_, engine| {
            let c = conn(engine, dcgmHandle)?;
            c.watches.retain(|w| w.field_group != dcgmFieldGroupId);
            c.field_groups
                .remove(&dcgmFieldGroupId)
                .map(|_| ())
                .ok_or(ffi::ST_BADPARAM)
        },
    )
}

/// Watches the fields on the group's entities, sampled every `updateFreq` µs; the first
/// sample is there one period after the watch. Profiling fields on an entity without
/// `dcgm_profiling` refuse the whole call (`PROFILING_NOT_SUPPORTED`), and so does an entity
/// whose GPU sets a `dcgm_values` error (that error).
#[no_mangle]
pub extern "C" fn dcgmWatchFields(
    pDcgmHandle: Handle,
    groupId: GroupId,
    fieldGroupId: FieldGroupId,
    updateFreq: c_longlong,
    maxKeepAge: f64,
    maxKeepSamples: c_int,
) -> DcgmReturn {
    on_connection(
        pDcgmHandle,
        |_, c| c.groups.get(&groupId).cloned().unwrap_or_default(),
        |scenario, engine| {
            if updateFreq <= 0 || maxKeepAge < 0.0 || maxKeepSamples < 0 {
                return Err(ffi::ST_BADPARAM);
            }
            let c = conn(engine, pDcgmHandle)?;
            let entities = c.groups.get(&groupId).ok_or(ST_NOT_CONFIGURED)?.clone();
            let fields = c
                .field_groups
                .get(&fieldGroupId)
                .ok_or(ffi::ST_BADPARAM)?
                .fields
                .clone();
            if fields.iter().copied().any(is_profiling_field) {
                for pair in &entities {
                    let e = Entity::resolve(scenario, *pair).ok_or(ffi::ST_BADPARAM)?;
                    if let Some(status) = e.error() {
                        return Err(status);
                    }
                    if e.profiling().is_none() {
                        return Err(ffi::ST_PROFILING_NOT_SUPPORTED);
                    }
                }
            }
            let every = Duration::from_micros(updateFreq.unsigned_abs());
            c.watches
                .retain(|w| !(w.group == groupId && w.field_group == fieldGroupId));
            c.watches.push(Watch {
                group: groupId,
                field_group: fieldGroupId,
                entities,
                fields,
                since: Instant::now(),
                since_us: state::now_us(),
                every,
            });
            Ok(())
        },
    )
}

#[no_mangle]
pub extern "C" fn dcgmUnwatchFields(
    pDcgmHandle: Handle,
    groupId: GroupId,
    fieldGroupId: FieldGroupId,
) -> DcgmReturn {
    on_connection(
        pDcgmHandle,
        |_, _| Vec::new(),
        |_, engine| {
            let c = conn(engine, pDcgmHandle)?;
            let before = c.watches.len();
            c.watches
                .retain(|w| !(w.group == groupId && w.field_group == fieldGroupId));
            if c.watches.len() == before {
                return Err(ST_NOT_CONFIGURED);
            }
            Ok(())
        },
    )
}

/// The watched (entity, field) pairs of a connection, each with its earliest watch.
pub(crate) fn watched(c: &Connection) -> Vec<(EntityPair, u16, &Watch)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut watches: Vec<&Watch> = c.watches.iter().collect();
    watches.sort_by_key(|w| w.since);
    for w in watches {
        for e in &w.entities {
            for f in &w.fields {
                if seen.insert((*e, *f)) {
                    out.push((*e, *f, w));
                }
            }
        }
    }
    out
}
