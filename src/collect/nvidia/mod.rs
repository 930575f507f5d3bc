//! The NVIDIA backend: NVML (through nvml-wrapper) loaded from `--nvml.library`, one worker
//! thread per device for the fast tier and one health thread per device for the health tier,
//! initialization retried with backoff. The only module that knows NVML.

mod device;
mod events;
mod health;
mod mps;
mod procutil;
mod tiers;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

use self::device::{run_worker, WorkerResult};
use self::health::{HealthReader, HealthResult};
use self::tiers::HealthSchedule;
use super::worker::Worker as HealthThread;
use super::Backend;
use crate::sample::{
    CallError, DeviceDown, DeviceHealth, DeviceIdentity, DeviceSample, Vendor, VendorReport,
};

/// The library NVML is loaded from when `--nvml.library` is not given: the driver's own,
/// which (unlike `libnvidia-ml.so`) exists without the development package.
const SYSTEM_LIBRARY: &str = "libnvidia-ml.so.1";
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// NVML's error name without the `NVML_ERROR_` prefix, as the scenario files and the
/// `error` label spell it.
#[allow(deprecated)] // ALREADY_INITIALIZED is deprecated, but old drivers still return it.
pub(crate) fn error_name(e: &NvmlError) -> String {
    let name = match e {
        NvmlError::Uninitialized => "UNINITIALIZED",
        NvmlError::InvalidArg => "INVALID_ARGUMENT",
        NvmlError::NotSupported => "NOT_SUPPORTED",
        NvmlError::NoPermission => "NO_PERMISSION",
        NvmlError::AlreadyInitialized => "ALREADY_INITIALIZED",
        NvmlError::NotFound => "NOT_FOUND",
        NvmlError::InsufficientSize(_) => "INSUFFICIENT_SIZE",
        NvmlError::InsufficientPower => "INSUFFICIENT_POWER",
        NvmlError::DriverNotLoaded => "DRIVER_NOT_LOADED",
        NvmlError::Timeout => "TIMEOUT",
        NvmlError::IrqIssue => "IRQ_ISSUE",
        NvmlError::LibraryNotFound => "LIBRARY_NOT_FOUND",
        NvmlError::FunctionNotFound => "FUNCTION_NOT_FOUND",
        NvmlError::CorruptedInfoROM => "CORRUPTED_INFOROM",
        NvmlError::GpuLost => "GPU_IS_LOST",
        NvmlError::ResetRequired => "RESET_REQUIRED",
        NvmlError::OperatingSystem => "OPERATING_SYSTEM",
        NvmlError::LibRmVersionMismatch => "LIB_RM_VERSION_MISMATCH",
        NvmlError::InUse => "IN_USE",
        NvmlError::InsufficientMemory => "MEMORY",
        NvmlError::NoData => "NO_DATA",
        NvmlError::VgpuEccNotSupported => "VGPU_ECC_NOT_SUPPORTED",
        NvmlError::Unknown => "UNKNOWN",
        NvmlError::FailedToLoadSymbol(_) => "FUNCTION_NOT_FOUND",
        NvmlError::LibloadingError(_) => "LIBRARY_NOT_FOUND",
        _ => "UNEXPECTED",
    };
    name.to_string()
}

/// One device's worker, as the coordinator sees it.
struct Worker {
    requests: Sender<()>,
    /// A request is outstanding (the device has not answered yet).
    busy: bool,
    /// The UUID the device had when it was enumerated.
    uuid: Option<String>,
    /// The device's last answer: the device, then its MIG instances.
    last: Option<Vec<DeviceSample>>,
    /// The device's health thread (`None` if it could not be started).
    health: Option<HealthThread<(), HealthResult>>,
    /// The last health read: it stands until the next (no series is dropped between reads).
    health_last: Option<DeviceHealth>,
    /// A health read was asked this cycle and none has come yet: the cycle waits for this one.
    first_health_asked: bool,
    schedule: HealthSchedule,
}

/// NVML, loaded, with a worker per device.
struct Loaded {
    nvml: &'static Nvml,
    interval: Duration,
    health_interval: Duration,
    driver_version: String,
    generation: u64,
    workers: Vec<Worker>,
    results_tx: Sender<WorkerResult>,
    results: Receiver<WorkerResult>,
    reenumerate: bool,
    /// XID counts from the event thread, by device UUID.
    xids: Arc<events::XidCounts>,
}

/// When the next initialization attempt is due.
struct Retry {
    next_attempt: Instant,
    backoff: Duration,
    failures: u32,
}

/// The NVIDIA collector.
pub struct NvidiaBackend {
    library: PathBuf,
    interval: Duration,
    health_interval: Duration,
    loaded: Option<Loaded>,
    retry: Retry,
}

impl NvidiaBackend {
    /// A backend that loads NVML from `library` (the system's when `None`) on its first cycle,
    /// sampling every `interval` and reading the health tier every `health_interval`.
    pub fn new(library: Option<PathBuf>, interval: Duration, health_interval: Duration) -> Self {
        NvidiaBackend {
            library: library.unwrap_or_else(|| PathBuf::from(SYSTEM_LIBRARY)),
            interval,
            health_interval,
            loaded: None,
            retry: Retry {
                next_attempt: Instant::now(),
                backoff: FIRST_RETRY,
                failures: 0,
            },
        }
    }

    /// Loads and initializes NVML when an attempt is due; logs the first failure once at
    /// warning level and later ones at debug, so a node without the driver does not flood logs.
    fn try_init(&mut self, errors: &mut Vec<CallError>) {
        let now = Instant::now();
        if now < self.retry.next_attempt {
            return;
        }
        let lib: &OsStr = self.library.as_os_str();
        match Nvml::builder().lib_path(lib).init() {
            Ok(nvml) => {
                // NVML lives as long as the agent: device handles and GPM samples borrow it
                // from worker threads that may outlive a cycle, so it is never dropped.
                let nvml: &'static Nvml = Box::leak(Box::new(nvml));
                let driver_version = match nvml.sys_driver_version() {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(CallError {
                            call: "driver_version",
                            error: error_name(&e),
                        });
                        String::new()
                    }
                };
                tracing::info!(
                    library = %self.library.display(),
                    driver_version,
                    after_failures = self.retry.failures,
                    "NVML initialized"
                );
                let (results_tx, results) = mpsc::channel();
                let xids = Arc::new(events::XidCounts::default());
                if let Err(e) = events::spawn(nvml, Arc::clone(&xids)) {
                    tracing::error!(error = %e, "cannot start the XID event thread");
                }
                self.loaded = Some(Loaded {
                    nvml,
                    interval: self.interval,
                    health_interval: self.health_interval,
                    driver_version,
                    generation: 0,
                    workers: Vec::new(),
                    results_tx,
                    results,
                    reenumerate: true,
                    xids,
                });
                self.retry.backoff = FIRST_RETRY;
                self.retry.failures = 0;
            }
            Err(e) => {
                let error = error_name(&e);
                if self.retry.failures == 0 {
                    tracing::warn!(
                        library = %self.library.display(),
                        error = %e,
                        "NVML is not available; the nvidia collector reports down and retries with backoff"
                    );
                } else {
                    tracing::debug!(error = %e, failures = self.retry.failures, "NVML init failed again");
                }
                errors.push(CallError {
                    call: "init",
                    error,
                });
                self.retry.failures += 1;
                self.retry.next_attempt = now + self.retry.backoff;
                self.retry.backoff = (self.retry.backoff * 2).min(MAX_RETRY);
            }
        }
    }
}

impl Loaded {
    /// Replaces every worker with a fresh one per device index.
    fn enumerate(&mut self, count: u32) -> std::io::Result<()> {
        self.generation += 1;
        // Dropping the old senders ends the old workers once their current call returns.
        self.workers.clear();
        for index in 0..count {
            let (tx, rx) = mpsc::channel();
            let (nvml, generation) = (self.nvml, self.generation);
            let intervals = tiers::Intervals {
                fast: self.interval,
                health: self.health_interval,
            };
            let driver_version = self.driver_version.clone();
            let results = self.results_tx.clone();
            thread::Builder::new()
                .name(format!("nvml-gpu{index}"))
                .spawn(move || {
                    run_worker(
                        nvml,
                        index,
                        generation,
                        driver_version,
                        intervals,
                        rx,
                        results,
                    );
                })?;
            self.workers.push(Worker {
                requests: tx,
                busy: false,
                uuid: None,
                last: None,
                health: spawn_health(nvml, index),
                health_last: None,
                first_health_asked: false,
                schedule: HealthSchedule::staggered(
                    self.interval,
                    self.health_interval,
                    index as usize,
                    count as usize,
                ),
            });
        }
        self.reenumerate = false;
        self.xids.rearm();
        tracing::debug!(
            interval = ?self.interval,
            fast = ?tiers::FAST_FAMILIES,
            health_interval = ?self.health_interval,
            health = ?tiers::HEALTH_FAMILIES,
            "sampling tiers"
        );
        tracing::info!(
            devices = count,
            generation = self.generation,
            "NVIDIA devices enumerated"
        );
        Ok(())
    }

    /// Files a health thread's answer; notes a changed UUID for re-enumeration.
    fn accept_health(&mut self, index: usize, r: HealthResult, errors: &mut Vec<CallError>) {
        errors.extend(r.errors);
        let Some(w) = self.workers.get_mut(index) else {
            return;
        };
        if let Some(h) = r.health {
            w.health_last = Some(h);
        }
        if let (Some(new), Some(old)) = (r.uuid, &w.uuid) {
            if !new.is_empty() && *old != new {
                tracing::info!(gpu = index, old = %old, new = %new, "device UUID changed; re-enumerating");
                self.reenumerate = true;
            }
        }
    }

    /// Takes the health answers that have come, and asks the devices whose health read is due.
    /// Never waits, but for a device's first read (see `collect`).
    fn health_tier(&mut self, errors: &mut Vec<CallError>) {
        let now = Instant::now();
        let mut answers = Vec::new();
        for (index, w) in self.workers.iter_mut().enumerate() {
            if w.health.as_ref().is_some_and(HealthThread::dead) {
                // Its read panicked (logged by the thread): a fresh one.
                w.health = spawn_health(self.nvml, index as u32);
            }
            let Some(h) = w.health.as_mut() else {
                continue;
            };
            if let Some(r) = h.late_answer() {
                answers.push((index, r));
            }
            w.first_health_asked = false;
            if w.schedule.due(now) && h.ask(()) {
                w.schedule.asked(now);
                w.first_health_asked = w.health_last.is_none();
            }
        }
        for (index, r) in answers {
            self.accept_health(index, r, errors);
        }
    }

    /// Waits, until `deadline`, for the health read just asked of devices that have none yet,
    /// so that the first samples (and `/readyz`) come with every series. A read still running
    /// from an earlier cycle (a hung call) is not waited for again.
    fn first_health_reads(&mut self, deadline: Instant, errors: &mut Vec<CallError>) {
        let mut answers = Vec::new();
        for (index, w) in self.workers.iter_mut().enumerate() {
            if !w.first_health_asked {
                continue;
            }
            if let Some(r) = w.health.as_mut().and_then(|h| h.wait(deadline)) {
                answers.push((index, r));
            }
        }
        for (index, r) in answers {
            self.accept_health(index, r, errors);
        }
    }

    /// Files a worker's answer; notes a changed UUID for re-enumeration.
    fn accept(&mut self, r: WorkerResult, errors: &mut Vec<CallError>) {
        if r.generation != self.generation {
            return;
        }
        let Some(w) = self.workers.get_mut(r.index as usize) else {
            return;
        };
        w.busy = false;
        errors.extend(r.errors);
        // A device that answers again after failing is registered for events again.
        let was_down = w
            .last
            .as_ref()
            .and_then(|l| l.first())
            .is_some_and(|s| !s.up());
        let is_up = r.samples.first().is_some_and(DeviceSample::up);
        if was_down && is_up {
            self.xids.rearm();
        }
        let uuid = r.samples.first().map_or("", |s| s.identity.uuid.as_str());
        if !uuid.is_empty() {
            match &w.uuid {
                None => w.uuid = Some(uuid.to_string()),
                Some(old) if old != uuid => {
                    tracing::info!(gpu = r.index, old = %old, new = %uuid, "device UUID changed; re-enumerating");
                    self.reenumerate = true;
                }
                Some(_) => {}
            }
        }
        w.last = Some(r.samples);
    }
}

impl Backend for NvidiaBackend {
    fn name(&self) -> &'static str {
        "nvidia"
    }

    fn collect(&mut self, deadline: Instant) -> VendorReport {
        let mut report = VendorReport::default();
        if self.loaded.is_none() {
            self.try_init(&mut report.call_errors);
        }
        let Some(loaded) = self.loaded.as_mut() else {
            return report;
        };
        let mut success = true;

        // Answers that arrived after the previous deadline are still the freshest data.
        while let Ok(r) = loaded.results.try_recv() {
            loaded.accept(r, &mut report.call_errors);
        }
        match loaded.nvml.device_count() {
            Ok(count) => {
                if loaded.reenumerate || count as usize != loaded.workers.len() {
                    if let Err(e) = loaded.enumerate(count) {
                        tracing::error!(error = %e, "cannot start device threads");
                        success = false;
                    }
                }
            }
            Err(e) => {
                success = false;
                report.call_errors.push(CallError {
                    call: "count",
                    error: error_name(&e),
                });
            }
        }

        let mut pending = 0;
        for w in loaded.workers.iter_mut().filter(|w| !w.busy) {
            if w.requests.send(()).is_ok() {
                w.busy = true;
                pending += 1;
            }
        }
        // The health tier runs beside the fast tier, on threads the cycle does not wait for.
        loaded.health_tier(&mut report.call_errors);
        while pending > 0 {
            let wait = deadline.saturating_duration_since(Instant::now());
            match loaded.results.recv_timeout(wait) {
                Ok(r) => {
                    if r.generation == loaded.generation {
                        pending -= 1;
                    }
                    loaded.accept(r, &mut report.call_errors);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        loaded.first_health_reads(deadline, &mut report.call_errors);

        for (index, w) in loaded.workers.iter().enumerate() {
            let samples = if w.busy {
                // Not answered in time: the last values, marked down.
                let mut last = w.last.clone().unwrap_or_else(|| {
                    vec![DeviceSample {
                        vendor: Some(Vendor::Nvidia),
                        identity: DeviceIdentity {
                            gpu: index.to_string(),
                            driver_version: loaded.driver_version.clone(),
                            ..DeviceIdentity::default()
                        },
                        ..DeviceSample::default()
                    }]
                });
                for s in &mut last {
                    s.down = Some(DeviceDown::TimedOut);
                }
                last
            } else {
                match &w.last {
                    Some(s) => s.clone(),
                    None => continue,
                }
            };
            success &= samples.iter().all(DeviceSample::up);
            let mut samples = samples;
            if let Some(first) = samples.first_mut() {
                merge_health(first, w.health_last.as_ref());
            }
            report.devices.extend(samples.into_iter().map(|mut s| {
                s.health.xid_errors = loaded.xids.of(&s.identity.uuid);
                s
            }));
        }
        report.success = success;
        report
    }
}

/// Starts device `index`'s health thread; `None` (logged) if the thread cannot start: the
/// device then reports no health series, and the next enumeration tries again.
fn spawn_health(nvml: &'static Nvml, index: u32) -> Option<HealthThread<(), HealthResult>> {
    let mut reader = HealthReader::new(index);
    match HealthThread::spawn(format!("nvml-health{index}"), move |()| reader.read(nvml)) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(gpu = index, error = %e, "cannot start a health thread");
            None
        }
    }
}

/// Puts the last health read into a device's sample (the worker's own clock event reasons
/// kept). A device that failed reports no values at all, as before the tiers; one that did not
/// answer in time keeps its last values, health included.
fn merge_health(sample: &mut DeviceSample, last: Option<&DeviceHealth>) {
    if matches!(sample.down, Some(DeviceDown::Failed(_))) {
        return;
    }
    if let Some(h) = last {
        let throttled = sample.health.throttled;
        sample.health = h.clone();
        sample.health.throttled = throttled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(energy: f64) -> DeviceHealth {
        DeviceHealth {
            energy_joules: Some(energy),
            pcie_replay_errors: Some(2.0),
            throttled: Some([true; 6]),
            ..DeviceHealth::default()
        }
    }

    #[test]
    fn a_sample_carries_the_last_health_read_and_its_own_clock_reasons() {
        let mut s = DeviceSample {
            health: DeviceHealth {
                throttled: Some([false; 6]),
                ..DeviceHealth::default()
            },
            ..DeviceSample::default()
        };
        merge_health(&mut s, Some(&health(5.0)));
        assert_eq!(s.health.energy_joules, Some(5.0));
        assert_eq!(s.health.pcie_replay_errors, Some(2.0));
        assert_eq!(s.health.throttled, Some([false; 6]));
        // No read yet: nothing but the clock reasons.
        let mut s = DeviceSample::default();
        merge_health(&mut s, None);
        assert_eq!(s.health.energy_joules, None);
    }

    #[test]
    fn a_failed_device_reports_no_health_and_a_late_one_its_last() {
        let mut failed = DeviceSample {
            down: Some(DeviceDown::Failed("GPU_IS_LOST".into())),
            ..DeviceSample::default()
        };
        merge_health(&mut failed, Some(&health(5.0)));
        assert_eq!(failed.health.energy_joules, None);
        let mut late = DeviceSample {
            down: Some(DeviceDown::TimedOut),
            ..DeviceSample::default()
        };
        merge_health(&mut late, Some(&health(5.0)));
        assert_eq!(late.health.energy_joules, Some(5.0));
    }
}
