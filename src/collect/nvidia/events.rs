//! XID errors from an NVML event set, waited on by a thread of its own so that a wait never
//! delays sampling. Counts are kept by device UUID and XID code for the sampling side to read.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::{EventSet, Nvml};

/// How long one wait may block before the thread looks at its re-arm requests: devices of a
/// new enumeration are watched within this long. An event ends a wait at once; a shorter
/// timeout only wakes an idle thread more often (at 500 ms, a fifth of the agent's own CPU on
/// a quiet node, docs/benchmarks.md).
const WAIT_MS: u32 = 5_000;
/// Devices that could not be registered are tried again this often.
const RETRY_REGISTRATION: Duration = Duration::from_secs(60);

/// The XID counts, shared between the event thread and the sampling side.
#[derive(Debug, Default)]
pub(super) struct XidCounts {
    counts: Mutex<HashMap<String, BTreeMap<u64, u64>>>,
    /// Bumped to make the event thread build a fresh set and register every device again
    /// (after re-enumeration, or a device that came back).
    rearm: AtomicU64,
}

impl XidCounts {
    /// (XID, count) of one device, by UUID.
    pub fn of(&self, uuid: &str) -> Vec<(u64, u64)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .get(uuid)
            .map(|m| m.iter().map(|(x, n)| (*x, *n)).collect())
            .unwrap_or_default()
    }

    pub fn rearm(&self) {
        self.rearm.fetch_add(1, Ordering::Relaxed);
    }

    fn record(&self, uuid: String, xid: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(uuid).or_default().entry(xid).or_insert(0) += 1;
    }
}

/// Starts the event thread; it runs for the life of the process.
pub(super) fn spawn(nvml: &'static Nvml, counts: Arc<XidCounts>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("nvml-events".into())
        .spawn(move || run(nvml, &counts))
        .map(|_| ())
}

fn run(nvml: &'static Nvml, counts: &XidCounts) {
    loop {
        let armed_at = counts.rearm.load(Ordering::Relaxed);
        let (set, registered, total) = match arm(nvml) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "cannot create an NVML event set; retrying");
                thread::sleep(Duration::from_secs(5));
                continue;
            }
        };
        tracing::debug!(registered, total, "watching XID events");
        let since = Instant::now();
        loop {
            if counts.rearm.load(Ordering::Relaxed) != armed_at
                || (registered < total && since.elapsed() > RETRY_REGISTRATION)
            {
                break;
            }
            match set.wait(WAIT_MS) {
                Ok(event) => {
                    let xid = match event.event_data {
                        Some(XidError::Value(v)) => v,
                        _ => 0,
                    };
                    match event.device.uuid() {
                        Ok(uuid) => {
                            tracing::warn!(xid, uuid, "XID error");
                            counts.record(uuid, xid);
                        }
                        Err(e) => {
                            tracing::debug!(xid, error = %e, "XID event from an unnamed device")
                        }
                    }
                }
                Err(NvmlError::Timeout) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "waiting for NVML events failed; re-arming");
                    thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
        // Dropping the set frees it (nvmlEventSetFree).
        drop(set);
    }
}

/// A fresh event set with every device that supports XID events registered on it.
/// Registration goes through the raw call: nvml-wrapper frees the whole set when one device
/// refuses, and devices without XID support are normal.
fn arm(nvml: &'static Nvml) -> Result<(EventSet<'static>, u32, u32), NvmlError> {
    let set = nvml.create_event_set()?;
    let register = nvml_sym(nvml.lib().nvmlDeviceRegisterEvents.as_ref())?;
    let count = nvml.device_count()?;
    let mut registered = 0;
    for i in 0..count {
        let Ok(dev) = nvml.device_by_index(i) else {
            continue;
        };
        // SAFETY: the device and set handles belong to this NVML instance and are alive.
        let rc = unsafe {
            register(
                dev.handle(),
                EventTypes::CRITICAL_XID_ERROR.bits(),
                set.handle(),
            )
        };
        match nvml_try(rc) {
            Ok(()) => registered += 1,
            Err(e) => tracing::debug!(gpu = i, error = %e, "XID events not available"),
        }
    }
    Ok((set, registered, count))
}
