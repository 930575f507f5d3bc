//! Collection: the vendor backend trait, one sampling thread per backend, and the hub that
//! holds each backend's latest report for the snapshot stage.
//!
//! Backends block (NVML calls can hang), so each runs on its own OS thread and hands whole
//! reports to the [`Hub`]; nothing downstream ever waits for a backend.

pub mod amd;
pub mod nvidia;
pub mod worker;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use crate::sample::{CallError, VendorReport};
use crate::timing::Timing;

/// A vendor backend: samples its devices and their processes into vendor-neutral values.
pub trait Backend: Send + 'static {
    /// The `collector` label: `nvidia`, `amd`.
    fn name(&self) -> &'static str;

    /// Runs one collection cycle. Waits for slow devices no later than `deadline`; devices that
    /// have not answered by then are reported down, with their last values.
    fn collect(&mut self, deadline: Instant) -> VendorReport;
}

/// What the hub knows of one collector.
#[derive(Debug, Clone, Default)]
pub struct CollectorState {
    /// The last completed cycle's report.
    pub last: Option<VendorReport>,
    /// When the cycle in progress started; `None` between cycles.
    pub running_since: Option<Instant>,
    /// Failed driver calls since start, by call and error.
    pub call_errors: BTreeMap<CallError, u64>,
    /// Completed cycles since start.
    pub cycles: u64,
    /// Some cycle since start completed with the library loaded and the device list read
    /// ([`VendorReport::completed`]), whatever the devices answered: the readiness of this
    /// collector. It stays true once set; later failures show in its success series and
    /// `gpu_up`, not in readiness.
    pub ready: bool,
}

impl CollectorState {
    /// Whether the cycle in progress has run longer than [`Timing::hung_after`] at `now`: the
    /// collector is hung, and the snapshot reports it failed and its devices down.
    pub fn hung(&self, now: Instant, timing: Timing) -> bool {
        self.running_since
            .is_some_and(|since| now.saturating_duration_since(since) > timing.hung_after())
    }
}

/// The latest report of every collector, shared between the sampling threads and the
/// snapshot stage. Each update also nudges the snapshot stage through a channel.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<BTreeMap<&'static str, CollectorState>>,
    notify: Mutex<Option<Sender<()>>>,
}

impl Hub {
    /// A hub for the named collectors, with a channel that wakes the snapshot stage.
    pub fn new(collectors: &[&'static str]) -> (Arc<Hub>, Receiver<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let state = collectors
            .iter()
            .map(|c| (*c, CollectorState::default()))
            .collect();
        let hub = Hub {
            state: Mutex::new(state),
            notify: Mutex::new(Some(tx)),
        };
        (Arc::new(hub), rx)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, CollectorState>> {
        // A panic while holding this lock cannot leave the map half-written (each update is a
        // single insert), so a poisoned lock is still good to use.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn nudge(&self) {
        if let Some(tx) = self
            .notify
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = tx.send(());
        }
    }

    fn begin(&self, name: &'static str, at: Instant) {
        self.lock().entry(name).or_default().running_since = Some(at);
    }

    fn publish(&self, name: &'static str, report: VendorReport) {
        {
            let mut state = self.lock();
            let entry = state.entry(name).or_default();
            for e in &report.call_errors {
                *entry.call_errors.entry(e.clone()).or_insert(0) += 1;
            }
            entry.running_since = None;
            entry.cycles += 1;
            entry.ready |= report.completed;
            entry.last = Some(report);
        }
        self.nudge();
    }

    /// Whether a collector is hung at `now` ([`CollectorState::hung`]): a cheap look, without
    /// copying the reports.
    pub fn running_past(&self, now: Instant, timing: Timing) -> bool {
        self.lock().values().any(|c| c.hung(now, timing))
    }

    /// A copy of every collector's state, by name.
    pub fn view(&self) -> BTreeMap<&'static str, CollectorState> {
        self.lock().clone()
    }

    /// Stops waking the snapshot stage (used at shutdown).
    pub fn close(&self) {
        self.notify.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Runs `backend` every interval on a thread of its own, each cycle waiting for its devices
/// for [`Timing::cycle_budget`], publishing to `hub`, until `stop` is dropped or sent to.
pub fn spawn(
    mut backend: Box<dyn Backend>,
    timing: Timing,
    hub: Arc<Hub>,
    stop: Receiver<()>,
) -> std::io::Result<thread::JoinHandle<()>> {
    let name = backend.name();
    thread::Builder::new()
        .name(format!("collect-{name}"))
        .spawn(move || loop {
            let start = Instant::now();
            hub.begin(name, start);
            let deadline = start + timing.cycle_budget();
            let report = match catch_unwind(AssertUnwindSafe(|| backend.collect(deadline))) {
                Ok(mut r) => {
                    r.duration = start.elapsed();
                    r
                }
                Err(_) => {
                    tracing::error!(collector = name, "collector panicked; reporting it failed");
                    VendorReport {
                        success: false,
                        duration: start.elapsed(),
                        ..VendorReport::default()
                    }
                }
            };
            hub.publish(name, report);
            let next = start + timing.interval();
            match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        })
}
