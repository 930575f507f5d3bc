//! One DCGM connection: connected to a host engine (or an engine embedded in the agent), the
//! targets' entities found, the profiling fields watched on them at the collection interval,
//! and all of them read with one call per cycle.
//!
//! Call labels: `dcgm_connect` (the library, `dcgmInit`, the connection), `dcgm_watch` (finding
//! the entities, the groups, the watch) and `dcgm_values` (the read, and each entity's status
//! in it). `DCGM_ST_CONNECTION_NOT_VALID` from any call means the host engine is gone: the
//! session reports itself lost and is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_int, c_longlong, c_uint, CString};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::discovery;
use super::ffi::{self, DcgmReturn, EntityPair, FieldValueV2};
use super::library::Api;
use super::status::{self, check, Lost};
use super::{Address, Target};
use crate::backoff::Backoff;
use crate::collect::worker::calling;
use crate::sample::{CallError, ErrorLabel, ProfilingValues};
use crate::timing::Timing;

/// The fields watched and read, in the order [`ProfilingValues`] is filled from them.
const FIELDS: [u16; 8] = [
    ffi::FI_PROF_GR_ENGINE_ACTIVE,
    ffi::FI_PROF_SM_ACTIVE,
    ffi::FI_PROF_SM_OCCUPANCY,
    ffi::FI_PROF_PIPE_TENSOR_ACTIVE,
    ffi::FI_PROF_DRAM_ACTIVE,
    ffi::FI_PROF_PIPE_FP64_ACTIVE,
    ffi::FI_PROF_PIPE_FP32_ACTIVE,
    ffi::FI_PROF_PIPE_FP16_ACTIVE,
];

/// The slot of field `FIELDS[i]` in a target's values.
fn slot(values: &mut ProfilingValues, i: usize) -> Option<&mut Option<f64>> {
    Some(match i {
        0 => &mut values.graphics_active,
        1 => &mut values.sm_active,
        2 => &mut values.sm_occupancy,
        3 => &mut values.tensor_active,
        4 => &mut values.dram_active,
        5 => &mut values.fp64_active,
        6 => &mut values.fp32_active,
        7 => &mut values.fp16_active,
        _ => return None,
    })
}

/// Statuses of a watch that say the entity has no profiling at all: not retried on this
/// connection (until the targets change).
fn never_profiled(status: DcgmReturn) -> bool {
    matches!(
        status,
        ffi::ST_PROFILING_NOT_SUPPORTED | ffi::ST_NOT_SUPPORTED | ffi::ST_GPU_NOT_SUPPORTED
    )
}

/// The key under which a target the host engine does not list is logged (no DCGM status is
/// positive).
const NOT_LISTED: DcgmReturn = 1;

/// A watched group and the targets in it.
type Watched = (ffi::GroupId, Vec<(Target, EntityPair)>);
/// Targets DCGM refused to watch, with its status for each.
type Refused = Vec<(Target, DcgmReturn)>;

/// The watch in force on a connection.
#[derive(Default)]
struct Watch {
    /// The targets it was made for (sorted).
    targets: Vec<Target>,
    interval: Duration,
    group: Option<ffi::GroupId>,
    /// The targets watched, with their entities.
    watched: Vec<(Target, EntityPair)>,
    /// When to try the refused targets again (none refused for a passing reason: never).
    retry_at: Option<Instant>,
    /// DCGM dropped a watch under the agent (`DCGM_ST_NOT_WATCHED`): make it again.
    stale: bool,
}

/// A connection and what the agent set up on it.
pub(super) struct Session {
    api: &'static Api,
    handle: ffi::Handle,
    embedded: bool,
    fields: Option<ffi::FieldGroupId>,
    watch: Watch,
    retry: Backoff,
    /// (target, status) pairs already logged on this connection: each is logged once.
    logged: BTreeSet<(Target, DcgmReturn)>,
    /// Names the groups this process creates (the host engine wants them unique).
    serial: u64,
}

impl Session {
    /// Connects to `address`; `dcgmInit` has been called. The error is the status to count
    /// under `dcgm_connect`.
    pub(super) fn connect(
        api: &'static Api,
        address: &Address,
        timeout: Duration,
    ) -> Result<Session, DcgmReturn> {
        let mut handle: ffi::Handle = 0;
        let status = match address {
            // SAFETY: `handle` is a valid out-pointer.
            Address::Embedded => unsafe {
                (api.start_embedded)(ffi::OPERATION_MODE_AUTO, &mut handle)
            },
            Address::HostEngine(_) | Address::UnixSocket(_) => {
                let text = address.to_string();
                let c = CString::new(text).map_err(|_| ffi::ST_BADPARAM)?;
                let mut params = ffi::ConnectV2Params {
                    version: ffi::CONNECT_V2_PARAMS_VERSION,
                    persist_after_disconnect: 0,
                    timeout_ms: c_uint::try_from(timeout.as_millis()).unwrap_or(c_uint::MAX),
                    address_is_unix_socket: c_uint::from(matches!(address, Address::UnixSocket(_))),
                };
                // SAFETY: a NUL-terminated address, a versioned params struct and an
                // out-pointer, as `dcgm_agent.h` declares.
                unsafe { (api.connect_v2)(c.as_ptr(), &mut params, &mut handle) }
            }
        };
        if status != ffi::ST_OK {
            return Err(status);
        }
        Ok(Session {
            api,
            handle,
            embedded: matches!(address, Address::Embedded),
            fields: None,
            watch: Watch::default(),
            retry: Backoff::new(),
            logged: BTreeSet::new(),
            serial: 0,
        })
    }

    /// One cycle: (re)makes the watch when the targets changed, a refused target is due a
    /// retry or DCGM dropped it, then reads every watched target at once.
    pub(super) fn cycle(
        &mut self,
        targets: &[Target],
        timing: Timing,
        errors: &mut Vec<CallError>,
    ) -> Result<Vec<(Target, ProfilingValues)>, Lost> {
        let interval = timing.interval();
        let due = self.watch.retry_at.is_some_and(|t| Instant::now() >= t);
        if self.watch.targets != targets
            || self.watch.interval != interval
            || due
            || self.watch.stale
        {
            calling("dcgm_watch");
            self.rewatch(targets, interval, errors)?;
        }
        calling("dcgm_values");
        self.read(timing.dcgm_stale(), errors)
    }

    /// Drops the watch in force, finds the targets' entities and watches them.
    fn rewatch(
        &mut self,
        targets: &[Target],
        interval: Duration,
        errors: &mut Vec<CallError>,
    ) -> Result<(), Lost> {
        self.unwatch(errors)?;
        self.watch = Watch {
            targets: targets.to_vec(),
            interval,
            ..Watch::default()
        };
        if targets.is_empty() {
            return Ok(());
        }
        let Some(listing) = discovery::entities(self.api, self.handle, targets, errors)? else {
            // The listing failed (counted): try again with the backoff.
            self.watch.retry_at = Some(Instant::now() + self.retry.failed());
            return Ok(());
        };
        let mut unknown = Vec::new();
        let mut wanted = Vec::new();
        let mut unlisted = false;
        for t in targets {
            match listing.entities.get(t) {
                Some(e) => wanted.push((t.clone(), *e)),
                // The hierarchy failed (counted): the instance may well exist; tried again.
                None if listing.partial && matches!(t, Target::Instance { .. }) => unlisted = true,
                None => unknown.push(t.clone()),
            }
        }
        if !unknown.is_empty() {
            // Not among the host engine's GPUs: not this node's engine, or a GPU DCGM does not
            // support. Counted at each watch, logged once per connection.
            for t in &unknown {
                errors.push(CallError::new("dcgm_watch", ErrorLabel::UnknownDevice));
                if self.logged.insert((t.clone(), NOT_LISTED)) {
                    tracing::warn!(device = %t, "the DCGM host engine does not list this device (is it this node's engine?); no DCGM profiling for it");
                }
            }
        }
        let fields = match self.fields {
            Some(f) => f,
            None => match self.field_group(errors)? {
                Ok(f) => *self.fields.insert(f),
                Err(_) => {
                    self.watch.retry_at = Some(Instant::now() + self.retry.failed());
                    return Ok(());
                }
            },
        };
        let (watched, refused) = self.watch_entities(fields, &wanted, interval, errors)?;
        let mut retry = unlisted;
        for (t, status) in &refused {
            retry |= !never_profiled(*status);
            if self.logged.insert((t.clone(), *status)) {
                tracing::warn!(device = %t, error = %status::label(*status), "DCGM cannot profile this device; its profiling series are absent");
            }
        }
        for (t, _) in watched.iter().flat_map(|(_, w)| w) {
            // Watched again after a refusal: a later refusal is worth a line again.
            self.logged.retain(|(lt, _)| lt != t);
        }
        self.watch.retry_at = if retry {
            Some(Instant::now() + self.retry.failed())
        } else {
            self.retry.succeeded();
            None
        };
        if let Some((group, watched)) = watched {
            self.watch.group = Some(group);
            self.watch.watched = watched;
        }
        Ok(())
    }

    /// The field group of [`FIELDS`], made once per connection. `Ok(Err(_))`: DCGM refused it
    /// (counted); nothing can be watched this cycle.
    fn field_group(
        &mut self,
        errors: &mut Vec<CallError>,
    ) -> Result<Result<ffi::FieldGroupId, DcgmReturn>, Lost> {
        let name = self.name("fields");
        let mut ids = FIELDS;
        let mut id: ffi::FieldGroupId = 0;
        // SAFETY: eight field ids, a NUL-terminated name and an out-pointer.
        let status = unsafe {
            (self.api.field_group_create)(
                self.handle,
                FIELDS.len() as c_int,
                ids.as_mut_ptr(),
                name.as_ptr(),
                &mut id,
            )
        };
        Ok(check(status, "dcgm_watch", errors)?.map(|()| id))
    }

    /// A name no other group of this host engine has: several agents (or a restarted one) may
    /// use one engine.
    fn name(&mut self, what: &str) -> CString {
        self.serial += 1;
        let name = format!(
            "gpu-pod-exporter-{}-{what}-{}",
            std::process::id(),
            self.serial
        );
        CString::new(name).unwrap_or_default()
    }

    /// Makes a group of `entities` and watches the fields on it. Returns the group with the
    /// targets it watches (if any could be), and the targets refused with their status. When
    /// the group as a whole is refused (one GPU without profiling refuses the group), each
    /// entity is tried alone and the group made of those DCGM accepts.
    fn watch_entities(
        &mut self,
        fields: ffi::FieldGroupId,
        entities: &[(Target, EntityPair)],
        interval: Duration,
        errors: &mut Vec<CallError>,
    ) -> Result<(Option<Watched>, Refused), Lost> {
        if entities.is_empty() {
            return Ok((None, Vec::new()));
        }
        // The whole group's refusal is not counted: each entity's, below, is.
        let mut whole = Vec::new();
        match self.try_watch(fields, entities, interval, &mut whole)? {
            Ok(group) => return Ok((Some((group, entities.to_vec())), Vec::new())),
            Err(status) if entities.len() == 1 => {
                errors.extend(whole);
                return Ok((None, vec![(entities[0].0.clone(), status)]));
            }
            Err(_) => {}
        }
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for (t, e) in entities {
            match self.try_watch(fields, &[(t.clone(), *e)], interval, errors)? {
                Ok(g) => {
                    self.drop_watch(g, fields, errors)?;
                    accepted.push((t.clone(), *e));
                }
                Err(status) => refused.push((t.clone(), status)),
            }
        }
        if accepted.is_empty() {
            return Ok((None, refused));
        }
        match self.try_watch(fields, &accepted, interval, errors)? {
            Ok(g) => Ok((Some((g, accepted)), refused)),
            Err(status) => {
                // Accepted alone, refused together (a multi-pass combination): none this time.
                refused.extend(accepted.into_iter().map(|(t, _)| (t, status)));
                Ok((None, refused))
            }
        }
    }

    /// Makes a group of `entities` and watches the fields on it; on a refusal the group is
    /// destroyed again and the status returned (its count left in `errors`).
    fn try_watch(
        &mut self,
        fields: ffi::FieldGroupId,
        entities: &[(Target, EntityPair)],
        interval: Duration,
        errors: &mut Vec<CallError>,
    ) -> Result<Result<ffi::GroupId, DcgmReturn>, Lost> {
        let name = self.name("group");
        let mut group: ffi::GroupId = 0;
        // SAFETY: a NUL-terminated name and an out-pointer.
        let status = unsafe {
            (self.api.group_create)(self.handle, ffi::GROUP_EMPTY, name.as_ptr(), &mut group)
        };
        if let Err(status) = check(status, "dcgm_watch", errors)? {
            return Ok(Err(status));
        }
        for (_, e) in entities {
            // SAFETY: plain values.
            let status = unsafe {
                (self.api.group_add_entity)(self.handle, group, e.entity_group_id, e.entity_id)
            };
            if let Err(status) = check(status, "dcgm_watch", errors)? {
                self.drop_group(group, errors)?;
                return Ok(Err(status));
            }
        }
        let micros = c_longlong::try_from(interval.as_micros()).unwrap_or(c_longlong::MAX);
        // Keep a little more than two samples' worth: the agent reads only the latest.
        let keep_age = (interval.as_secs_f64() * 3.0).max(1.0);
        // SAFETY: ids this connection made.
        let status =
            unsafe { (self.api.watch_fields)(self.handle, group, fields, micros, keep_age, 2) };
        match check(status, "dcgm_watch", errors)? {
            Ok(()) => Ok(Ok(group)),
            Err(status) => {
                self.drop_group(group, errors)?;
                Ok(Err(status))
            }
        }
    }

    /// Stops the watch on `group` and destroys it: a destroyed group's watches would
    /// otherwise stay on its entities.
    fn drop_watch(
        &mut self,
        group: ffi::GroupId,
        fields: ffi::FieldGroupId,
        errors: &mut Vec<CallError>,
    ) -> Result<(), Lost> {
        // SAFETY: ids this connection made.
        let status = unsafe { (self.api.unwatch_fields)(self.handle, group, fields) };
        // Refused (counted) or not, the group goes.
        let _ = check(status, "dcgm_watch", errors)?;
        self.drop_group(group, errors)
    }

    fn drop_group(&mut self, group: ffi::GroupId, errors: &mut Vec<CallError>) -> Result<(), Lost> {
        // SAFETY: an id this connection made.
        let status = unsafe { (self.api.group_destroy)(self.handle, group) };
        check(status, "dcgm_watch", errors).map(|_| ())
    }

    /// Stops the watch in force and destroys its group: the host engine stops profiling
    /// devices that now have GPM, or are gone.
    fn unwatch(&mut self, errors: &mut Vec<CallError>) -> Result<(), Lost> {
        match (self.watch.group.take(), self.fields) {
            (Some(group), Some(fields)) => self.drop_watch(group, fields, errors),
            _ => Ok(()),
        }
    }

    /// The latest value of every field on every watched target, in one call; a value older
    /// than `stale` is left out.
    fn read(
        &mut self,
        stale: Duration,
        errors: &mut Vec<CallError>,
    ) -> Result<Vec<(Target, ProfilingValues)>, Lost> {
        let mut entities: Vec<EntityPair> = self.watch.watched.iter().map(|(_, e)| *e).collect();
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        let n = entities.len() * FIELDS.len();
        let Some(mut records) = Records::new(n) else {
            errors.push(CallError::new("dcgm_values", status::label(ST_MEMORY)));
            return Ok(Vec::new());
        };
        let buffer = records.as_mut_slice();
        let mut fields = FIELDS;
        // SAFETY: `buffer` holds entities x fields versioned records, as the call requires.
        let status = unsafe {
            (self.api.entities_get_latest_values)(
                self.handle,
                entities.as_mut_ptr(),
                entities.len() as c_uint,
                fields.as_mut_ptr(),
                FIELDS.len() as c_uint,
                0,
                buffer.as_mut_ptr(),
            )
        };
        if check(status, "dcgm_values", errors)?.is_err() {
            return Ok(Vec::new());
        }
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        // An older value is no current figure.
        let stale_us = i64::try_from(stale.as_micros()).unwrap_or(i64::MAX);
        let mut out: Vec<(Target, ProfilingValues)> = self
            .watch
            .watched
            .iter()
            .map(|(t, _)| (t.clone(), ProfilingValues::default()))
            .collect();
        let mut failed: BTreeMap<usize, DcgmReturn> = BTreeMap::new();
        for v in buffer.iter() {
            let key = EntityPair {
                entity_group_id: v.entity_group_id,
                entity_id: v.entity_id,
            };
            let Some(at) = self.watch.watched.iter().position(|(_, e)| *e == key) else {
                continue;
            };
            let Some(field) = FIELDS.iter().position(|f| *f == v.field_id) else {
                continue;
            };
            match v.status {
                ffi::ST_OK => {}
                // Watched, no sample yet: absent, not 0.
                ffi::ST_NO_DATA => continue,
                ffi::ST_NOT_WATCHED => {
                    self.watch.stale = true;
                    continue;
                }
                other => {
                    failed.entry(at).or_insert(other);
                    continue;
                }
            }
            let fresh = now_us.saturating_sub(v.ts) <= stale_us;
            let value = v
                .double()
                .filter(|x| x.is_finite() && *x >= 0.0 && *x < ffi::FP64_BLANK && fresh);
            if let (Some(x), Some((_, values))) = (value, out.get_mut(at)) {
                if let Some(s) = slot(values, field) {
                    *s = Some(x.min(1.0));
                }
            }
        }
        for (at, status) in failed {
            errors.push(CallError::new("dcgm_values", status::label(status)));
            if let Some((t, _)) = self.watch.watched.get(at) {
                if self.logged.insert((t.clone(), status)) {
                    tracing::warn!(device = %t, error = %status::label(status), "DCGM answers no profiling values for this device");
                }
            }
        }
        Ok(out)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The host engine drops this connection's groups and watches itself (the connection
        // does not persist them); an embedded engine stops with its handle.
        // SAFETY: the handle this session connected.
        unsafe {
            if self.embedded {
                (self.api.stop_embedded)(self.handle);
            } else {
                (self.api.disconnect)(self.handle);
            }
        }
    }
}

/// `DCGM_ST_MEMORY` (`dcgm_structs.h`): what a read that cannot get its records counts.
const ST_MEMORY: DcgmReturn = -4;

/// The records of one read in anonymous pages of their own, given back to the kernel when
/// dropped. Each record is 4,128 bytes, almost all of it a string/blob union these fields never
/// use, and every record touches a page of its own: a buffer kept between cycles would hold
/// 264 KiB resident on an 8-GPU node (entities x 8 fields) for a few microseconds of use.
struct Records {
    ptr: std::ptr::NonNull<FieldValueV2>,
    len: usize,
}

impl Records {
    /// `len` zeroed records with their version set; `None` when the pages cannot be had.
    fn new(len: usize) -> Option<Records> {
        let bytes = len.checked_mul(size_of::<FieldValueV2>())?.max(1);
        // SAFETY: an anonymous private mapping of `bytes`, owned by the returned value alone.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        let mut records = Records {
            ptr: std::ptr::NonNull::new(ptr.cast())?,
            len,
        };
        for r in records.as_mut_slice() {
            r.version = ffi::FIELD_VALUE_V2_VERSION;
        }
        Some(records)
    }

    fn as_mut_slice(&mut self) -> &mut [FieldValueV2] {
        // SAFETY: the mapping holds `len` records, zeroed by the kernel, and all-zero bytes are
        // a valid `FieldValueV2` (integers, a double, byte arrays); it lives as long as `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Records {
    fn drop(&mut self) {
        let bytes = (self.len * size_of::<FieldValueV2>()).max(1);
        // SAFETY: the mapping `new` made, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), bytes) };
    }
}
