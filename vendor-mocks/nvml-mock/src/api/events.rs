//! Event sets: XID events from the scenario's `xid_events`, delivered through
//! `nvmlEventSetWait_v2` (the `events` family).
//!
//! Timing: a device's event `{xid, after_ms}` becomes due `after_ms` milliseconds after that
//! device was registered on the set (each set has its own clock per device; registering the
//! device again on the same set adds event types but keeps its first registration time).
//! Each event is delivered once per registration. An event is known by its device's UUID, its
//! `xid` and `after_ms`, and how many identical entries precede it in the list; so a reload
//! that appends (or inserts) an entry delivers the new one when due, while one that removes
//! or reorders entries delivers nothing twice. A new set sees a device's whole list afresh.
//!
//! A wait holds no global lock: it takes the scenario snapshot like any call, then sleeps on
//! the set's own condition variable until the earliest undelivered event is due, the timeout
//! passes, a device is registered on the set, the set is freed, or the scenario changes or
//! NVML shuts down. An idle wait costs nothing, as a real driver's wait sleeps in the kernel:
//! it does not poll. A changed scenario file is seen at once when any other call re-reads it
//! (every call does: [`state`] then wakes the waits, through [`wake`]), or when the folder
//! watch ([`crate::watch`], inotify) sees it; without a watch, by the wait itself when it wakes, at
//! the latest [`RELOAD_CHECK`] after it began sleeping (with one, [`RELOAD_CHECK_WATCHED`]):
//! a test that changes the file while only a wait runs still sees the change.
//!
//! Set handles are opaque numbers checked against a registry, never dereferenced, so a stale,
//! foreign or double-freed set is `INVALID_ARGUMENT`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_uint, c_ulonglong};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nvml_wrapper_sys::bindings::*;

use super::{device_call, out};
use crate::codes::{NvmlResult, INVALID_ARGUMENT, NOT_SUPPORTED, TIMEOUT};
use crate::ffi_guard;
use crate::handle;
use crate::scenario::{Family, Scenario};
use crate::state;
use crate::wake;

/// The only event type the mock delivers, and so the only one a device supports.
pub const XID_EVENT: u64 = nvmlEventTypeXidCriticalError as u64;

/// The longest a waiting `nvmlEventSetWait_v2` sleeps before it looks at the scenario file
/// itself, when no other call re-read it meanwhile and the folder is not watched
/// ([`crate::watch`]).
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);
/// The same while the folder is watched: a change wakes the waits at once, so the wait looks
/// for itself only as a safety net.
pub const RELOAD_CHECK_WATCHED: Duration = Duration::from_secs(60);

/// Set handles are `SET_BASE + id * SET_STRIDE`, never dereferenced.
const SET_BASE: usize = 0x5e7_0000_0000;
const SET_STRIDE: usize = 0x10;

/// `gpuInstanceId` / `computeInstanceId` of an event outside MIG.
const NOT_AVAILABLE: u32 = NVML_VALUE_NOT_AVAILABLE as u32;

/// One event set.
#[derive(Default)]
struct EventSet {
    state: Mutex<SetState>,
    /// Notified when a device is registered or the set is freed.
    wake: Condvar,
}

#[derive(Default)]
struct SetState {
    freed: bool,
    /// In registration order, one per device.
    registrations: Vec<Registration>,
}

struct Registration {
    /// NVML index of the device (what its handle encodes).
    device: usize,
    types: u64,
    /// When the device was first registered on this set: `after_ms` counts from here.
    since: Instant,
    delivered: BTreeSet<EventKey>,
}

/// What identifies one scenario event across reloads (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EventKey {
    uuid: String,
    xid: u64,
    after_ms: u64,
    ordinal: usize,
}

/// Live sets by handle address.
static SETS: Mutex<BTreeMap<usize, Arc<EventSet>>> = Mutex::new(BTreeMap::new());
static NEXT_SET: AtomicUsize = AtomicUsize::new(1);

fn sets() -> MutexGuard<'static, BTreeMap<usize, Arc<EventSet>>> {
    SETS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lookup(set: nvmlEventSet_t) -> NvmlResult<Arc<EventSet>> {
    sets().get(&set.addr()).cloned().ok_or(INVALID_ARGUMENT)
}

impl EventSet {
    fn lock(&self) -> MutexGuard<'_, SetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlEventSetCreate(set: *mut nvmlEventSet_t) -> nvmlReturn_t {
    ffi_guard(|| {
        state::snapshot()?;
        if set.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        wake::listen(wake_waiters);
        let id = NEXT_SET.fetch_add(1, Ordering::Relaxed);
        let addr = SET_BASE.wrapping_add(id.wrapping_mul(SET_STRIDE));
        sets().insert(addr, Arc::default());
        // SAFETY: checked non-NULL; NVML's contract makes it writable.
        unsafe { set.write(ptr::without_provenance_mut::<nvmlEventSet_st>(addr)) };
        Ok(())
    })
}

/// Frees a set; a wait on it in another thread returns `INVALID_ARGUMENT`. Works after
/// `nvmlShutdown` too, so nothing leaks; an unknown or already freed set is
/// `INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn nvmlEventSetFree(set: nvmlEventSet_t) -> nvmlReturn_t {
    ffi_guard(|| {
        let removed = sets().remove(&set.addr()).ok_or(INVALID_ARGUMENT)?;
        removed.lock().freed = true;
        removed.wake.notify_all();
        Ok(())
    })
}

/// `nvmlEventTypeXidCriticalError` for a device with `xid_events` (even `[]`), else
/// `NOT_SUPPORTED`.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetSupportedEventTypes(
    device: nvmlDevice_t,
    eventTypes: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(device, Family::Events, |d, _| {
        d.xid_events.as_ref().ok_or(NOT_SUPPORTED)?;
        // SAFETY: NVML's contract: NULL or writable.
        unsafe { out(eventTypes, XID_EVENT) }
    })
}

/// Registers the device on the set. `NOT_SUPPORTED` without `xid_events` or when asked for
/// any type besides `nvmlEventTypeXidCriticalError` (as NVML does for unsupported types);
/// the `events` family's delay and error apply, so `errors: {events: GPU_IS_LOST}` makes
/// registering fail with `GPU_IS_LOST`. Registering again adds types and keeps the clock.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceRegisterEvents(
    device: nvmlDevice_t,
    eventTypes: c_ulonglong,
    set: nvmlEventSet_t,
) -> nvmlReturn_t {
    device_call(device, Family::Events, |d, index| {
        d.xid_events.as_ref().ok_or(NOT_SUPPORTED)?;
        if eventTypes & !XID_EVENT != 0 {
            return Err(NOT_SUPPORTED);
        }
        let set = lookup(set)?;
        let mut state = set.lock();
        match state.registrations.iter_mut().find(|r| r.device == index) {
            Some(r) => r.types |= eventTypes,
            None => state.registrations.push(Registration {
                device: index,
                types: eventTypes,
                since: Instant::now(),
                delivered: BTreeSet::new(),
            }),
        }
        drop(state);
        set.wake.notify_all();
        Ok(())
    })
}

/// Delivers the earliest due, undelivered XID event of the set's devices, waiting up to
/// `timeoutms` for one; `TIMEOUT` if none is due by then.
///
/// First the largest `delays_ms.events` of the registered devices is slept (a hung driver;
/// it does not count against the timeout). While waiting, the first registered device (in
/// registration order) whose `errors.events` is set makes the wait fail with that error.
/// Devices no longer in the scenario are skipped.
#[no_mangle]
pub unsafe extern "C" fn nvmlEventSetWait_v2(
    set: nvmlEventSet_t,
    data: *mut nvmlEventData_t,
    timeoutms: c_uint,
) -> nvmlReturn_t {
    ffi_guard(|| {
        let scenario = state::snapshot()?;
        let set = lookup(set)?;
        if data.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        let delay = set
            .lock()
            .registrations
            .iter()
            .filter_map(|r| {
                scenario
                    .devices
                    .get(r.device)?
                    .delays_ms
                    .get(&Family::Events)
            })
            .max()
            .copied();
        drop(scenario);
        if let Some(ms) = delay {
            std::thread::sleep(Duration::from_millis(ms));
        }

        let deadline = Instant::now() + Duration::from_millis(u64::from(timeoutms));
        loop {
            // Wake-ups counted before the snapshot: one that comes between the snapshot and
            // the sleep (the file replaced just after it was looked at) is seen below.
            let wakes = wake::count();
            // The snapshot (global lock, briefly) is taken before the set's own lock.
            let (scenario, generation) = state::snapshot_with_generation()?;
            let mut state = set.lock();
            if state.freed {
                return Err(INVALID_ARGUMENT);
            }
            if let Some(code) = first_error(&state, &scenario) {
                return Err(code);
            }
            let now = Instant::now();
            let next = earliest(&state, &scenario);
            if let Some(next) = next.as_ref().filter(|n| n.due <= now) {
                let event = nvmlEventData_t {
                    device: handle::encode(next.device).ok_or(INVALID_ARGUMENT)?,
                    eventType: XID_EVENT,
                    eventData: next.key.xid,
                    gpuInstanceId: NOT_AVAILABLE,
                    computeInstanceId: NOT_AVAILABLE,
                };
                if let Some(r) = state.registrations.get_mut(next.registration) {
                    r.delivered.insert(next.key.clone());
                }
                // SAFETY: checked non-NULL; NVML's contract makes it writable.
                unsafe { data.write(event) };
                return Ok(());
            }
            if now >= deadline {
                return Err(TIMEOUT);
            }
            // A reload or shutdown since the snapshot: its wake-up may have come before this
            // lock was taken, so look again rather than sleep through it.
            if state::generation() != generation || wake::count() != wakes {
                continue;
            }
            let check = if crate::watch::active() {
                RELOAD_CHECK_WATCHED
            } else {
                RELOAD_CHECK
            };
            let mut wake_at = deadline.min(now + check);
            if let Some(next) = next {
                wake_at = wake_at.min(next.due);
            }
            let (state, _) = set
                .wake
                .wait_timeout(state, wake_at.saturating_duration_since(now))
                .unwrap_or_else(PoisonError::into_inner);
            drop(state);
        }
    })
}

/// Wakes every wait, to look at a changed scenario (or notice `nvmlShutdown`): what
/// [`wake::changed`] calls, once a set exists. Each set's lock is taken before it is notified,
/// so a waiter between its generation check and its sleep cannot miss the wake-up.
fn wake_waiters() {
    let live: Vec<Arc<EventSet>> = sets().values().cloned().collect();
    for set in live {
        drop(set.lock());
        set.wake.notify_all();
    }
}

/// The error a wait fails with: the first registered device's `errors.events`.
fn first_error(state: &SetState, scenario: &Scenario) -> Option<nvmlReturn_t> {
    state.registrations.iter().find_map(|r| {
        let d = scenario.devices.get(r.device)?;
        d.errors.get(&Family::Events).map(|code| code.0)
    })
}

/// The undelivered event due first (ties: registration order, then list order).
struct Next {
    registration: usize,
    device: usize,
    key: EventKey,
    due: Instant,
}

fn earliest(state: &SetState, scenario: &Scenario) -> Option<Next> {
    let mut best: Option<Next> = None;
    for (ri, r) in state.registrations.iter().enumerate() {
        if r.types & XID_EVENT == 0 {
            continue;
        }
        let Some(d) = scenario.devices.get(r.device) else {
            continue;
        };
        let mut seen: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        for e in d.xid_events.iter().flatten() {
            let ordinal = seen.entry((e.xid, e.after_ms)).or_insert(0);
            let key = EventKey {
                uuid: d.uuid.clone(),
                xid: e.xid,
                after_ms: e.after_ms,
                ordinal: *ordinal,
            };
            *ordinal += 1;
            if r.delivered.contains(&key) {
                continue;
            }
            // An `after_ms` too large for the clock is never due.
            let Some(due) = r.since.checked_add(Duration::from_millis(e.after_ms)) else {
                continue;
            };
            if best.as_ref().is_none_or(|b| due < b.due) {
                best = Some(Next {
                    registration: ri,
                    device: r.device,
                    key,
                    due,
                });
            }
        }
    }
    best
}
