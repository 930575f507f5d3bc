//! The NVIDIA backend: NVML (through nvml-wrapper) loaded from `--nvml.library`, one worker
//! thread per device, initialization retried with backoff. The only module that knows NVML.

mod device;
mod events;
mod health;
mod mps;
mod procutil;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

use self::device::{run_worker, WorkerResult};
use super::Backend;
use crate::sample::{CallError, DeviceDown, DeviceIdentity, DeviceSample, Vendor, VendorReport};

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
}

/// NVML, loaded, with a worker per device.
struct Loaded {
    nvml: &'static Nvml,
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
    loaded: Option<Loaded>,
    retry: Retry,
}

impl NvidiaBackend {
    /// A backend that loads NVML from `library` (the system's when `None`) on its first cycle.
    pub fn new(library: Option<PathBuf>) -> Self {
        NvidiaBackend {
            library: library.unwrap_or_else(|| PathBuf::from(SYSTEM_LIBRARY)),
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
            let driver_version = self.driver_version.clone();
            let results = self.results_tx.clone();
            thread::Builder::new()
                .name(format!("nvml-gpu{index}"))
                .spawn(move || run_worker(nvml, index, generation, driver_version, rx, results))?;
            self.workers.push(Worker {
                requests: tx,
                busy: false,
                uuid: None,
                last: None,
            });
        }
        self.reenumerate = false;
        self.xids.rearm();
        tracing::info!(
            devices = count,
            generation = self.generation,
            "NVIDIA devices enumerated"
        );
        Ok(())
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
            report.devices.extend(samples.into_iter().map(|mut s| {
                s.health.xid_errors = loaded.xids.of(&s.identity.uuid);
                s
            }));
        }
        report.success = success;
        report
    }
}
