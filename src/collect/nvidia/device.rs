//! One NVIDIA device: its worker thread and one sample of every series NVML gives for it.
//!
//! Each device samples on a thread of its own, so that a call that hangs on one GPU delays
//! neither the other GPUs nor the cycle: the coordinator stops waiting at its deadline.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, Sender};

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper::{Device, GpmSample, Nvml};

use super::error_name;
use super::procutil::ProcessUtilization;
use crate::sample::{
    CallError, DeviceDown, DeviceIdentity, DeviceMetrics, DeviceSample, GpuProcess, Vendor,
};

/// What a worker sends back after one sample.
#[derive(Debug)]
pub(super) struct WorkerResult {
    pub generation: u64,
    pub index: u32,
    pub sample: DeviceSample,
    pub errors: Vec<CallError>,
}

/// Serves sample requests for device `index` until the request channel closes.
pub(super) fn run_worker(
    nvml: &'static Nvml,
    index: u32,
    generation: u64,
    driver_version: String,
    requests: Receiver<()>,
    results: Sender<WorkerResult>,
) {
    let mut dev = DeviceState::new(index, driver_version);
    while requests.recv().is_ok() {
        let (sample, errors) = match catch_unwind(AssertUnwindSafe(|| dev.sample(nvml))) {
            Ok(r) => r,
            Err(_) => {
                tracing::error!(
                    gpu = index,
                    "NVML sampling panicked; reporting the device down"
                );
                dev.reset();
                (
                    dev.down_sample(DeviceDown::Failed("PANIC".into())),
                    Vec::new(),
                )
            }
        };
        let res = WorkerResult {
            generation,
            index,
            sample,
            errors,
        };
        if results.send(res).is_err() {
            break;
        }
    }
}

/// NVML errors after which the device is taken for gone, not just one series missing.
fn is_fatal(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::GpuLost
            | NvmlError::Uninitialized
            | NvmlError::DriverNotLoaded
            | NvmlError::ResetRequired
            | NvmlError::LibRmVersionMismatch
            | NvmlError::InvalidArg
    )
}

/// The outcome of the calls of one sample: failures counted, the first fatal one kept.
#[derive(Default)]
struct Calls {
    errors: Vec<CallError>,
    fatal: Option<String>,
}

impl Calls {
    /// The value of a call; `None` when it failed or is not supported (then the series is
    /// simply absent). Once a call was fatal, later ones are not made.
    fn take<T>(
        &mut self,
        call: &'static str,
        f: impl FnOnce() -> Result<T, NvmlError>,
    ) -> Option<T> {
        if self.fatal.is_some() {
            return None;
        }
        match f() {
            Ok(v) => Some(v),
            Err(NvmlError::NotSupported) => None,
            Err(e) => {
                let error = error_name(&e);
                if is_fatal(&e) {
                    self.fatal = Some(error.clone());
                }
                self.errors.push(CallError { call, error });
                None
            }
        }
    }
}

/// GPM metrics come from two samples; the previous one is kept (and freed when replaced).
struct Gpm {
    supported: Option<bool>,
    previous: Option<GpmSample<'static>>,
}

const GPM_METRICS: [GpmMetricId; 4] = [
    GpmMetricId::SmUtil,
    GpmMetricId::SmOccupancy,
    GpmMetricId::AnyTensorUtil,
    GpmMetricId::DramBwUtil,
];

/// Everything kept about one device between samples.
struct DeviceState {
    index: u32,
    driver_version: String,
    handle: Option<Device<'static>>,
    identity: DeviceIdentity,
    procutil: ProcessUtilization,
    gpm: Gpm,
}

impl DeviceState {
    fn new(index: u32, driver_version: String) -> Self {
        DeviceState {
            index,
            identity: DeviceIdentity {
                gpu: index.to_string(),
                driver_version: driver_version.clone(),
                ..DeviceIdentity::default()
            },
            driver_version,
            handle: None,
            procutil: ProcessUtilization::new(),
            gpm: Gpm {
                supported: None,
                previous: None,
            },
        }
    }

    /// Forgets the handle and per-call state, to start afresh after a failure.
    fn reset(&mut self) {
        self.handle = None;
        self.procutil = ProcessUtilization::new();
        self.gpm = Gpm {
            supported: None,
            previous: None,
        };
    }

    fn down_sample(&self, why: DeviceDown) -> DeviceSample {
        DeviceSample {
            vendor: Some(Vendor::Nvidia),
            identity: self.identity.clone(),
            down: Some(why),
            ..DeviceSample::default()
        }
    }

    fn sample(&mut self, nvml: &'static Nvml) -> (DeviceSample, Vec<CallError>) {
        let mut calls = Calls::default();
        if self.handle.is_none() {
            self.handle = calls.take("handle", || nvml.device_by_index(self.index));
        }
        let Some(dev) = self.handle.as_ref() else {
            let why = DeviceDown::Failed(calls.fatal.clone().unwrap_or_else(|| "NO_HANDLE".into()));
            return (self.down_sample(why), calls.errors);
        };

        if let Some(uuid) = calls.take("uuid", || dev.uuid()) {
            self.identity.uuid = uuid;
        }
        if self.identity.model.is_empty() {
            if let Some(name) = calls.take("name", || dev.name()) {
                self.identity.model = name;
            }
        }
        if self.identity.pci_bus_id.is_empty() {
            if let Some(pci) = calls.take("pci", || dev.pci_info()) {
                self.identity.pci_bus_id = pci.bus_id;
            }
        }
        self.identity
            .driver_version
            .clone_from(&self.driver_version);

        let mut m = DeviceMetrics::default();
        if let Some(u) = calls.take("utilization", || dev.utilization_rates()) {
            m.utilization_ratio = Some(percent(u.gpu));
            m.memory_bandwidth_utilization_ratio = Some(percent(u.memory));
        }
        if let Some(mem) = calls.take("memory", || dev.memory_info()) {
            m.memory_used_bytes = Some(mem.used as f64);
            m.memory_total_bytes = Some(mem.total as f64);
        }
        m.power_watts = calls
            .take("power", || dev.power_usage())
            .map(|mw| f64::from(mw) / 1000.0);
        m.temperature_celsius = calls
            .take("temperature", || dev.temperature(TemperatureSensor::Gpu))
            .map(f64::from);
        m.sm_clock_hertz = calls
            .take("clock", || dev.clock_info(Clock::SM))
            .map(|mhz| f64::from(mhz) * 1e6);

        let running = calls.take("processes", || dev.running_compute_processes());
        let utils = calls
            .take("process_utilization", || self.procutil.poll(nvml, dev))
            .flatten();
        let gpm = &mut self.gpm;
        if let Some(values) = calls.take("gpm", || poll_gpm(gpm, nvml, dev)).flatten() {
            m.sm_active_ratio = values.get(&GpmMetricId::SmUtil).copied();
            m.sm_occupancy_ratio = values.get(&GpmMetricId::SmOccupancy).copied();
            m.tensor_active_ratio = values.get(&GpmMetricId::AnyTensorUtil).copied();
            m.dram_active_ratio = values.get(&GpmMetricId::DramBwUtil).copied();
        }

        if let Some(fatal) = calls.fatal.take() {
            // Whatever was read before the device failed is not reported: a lost GPU shows
            // `gpu_up 0` and its identity, not a mix of fresh and missing values.
            return (self.down_sample(DeviceDown::Failed(fatal)), calls.errors);
        }
        let per_process_utilization = utils.is_some();
        let processes = merge_processes(running.unwrap_or_default(), utils);
        let sample = DeviceSample {
            vendor: Some(Vendor::Nvidia),
            identity: self.identity.clone(),
            down: None,
            metrics: m,
            processes,
            per_process_utilization,
        };
        (sample, calls.errors)
    }
}

fn percent(p: u32) -> f64 {
    f64::from(p.min(100)) / 100.0
}

/// Takes a GPM sample and, when a previous one exists, the metrics between the two (as 0..1).
/// `Ok(None)`: GPM not supported, or the first sample.
fn poll_gpm(
    gpm: &mut Gpm,
    nvml: &'static Nvml,
    dev: &Device<'static>,
) -> Result<Option<HashMap<GpmMetricId, f64>>, NvmlError> {
    if gpm.supported.is_none() {
        gpm.supported = Some(match dev.gpm_support() {
            Ok(s) => s,
            Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => false,
            Err(e) => return Err(e),
        });
    }
    if gpm.supported != Some(true) {
        return Ok(None);
    }
    let current = dev.gpm_sample()?;
    let Some(previous) = gpm.previous.replace(current) else {
        return Ok(None);
    };
    let Some(current) = gpm.previous.as_ref() else {
        return Ok(None);
    };
    let results = gpm_metrics_get(nvml, &previous, current, &GPM_METRICS)?;
    let mut out = HashMap::new();
    for (id, r) in GPM_METRICS.iter().zip(results) {
        if let Ok(v) = r {
            if v.value.is_finite() {
                out.insert(*id, (v.value / 100.0).clamp(0.0, 1.0));
            }
        }
    }
    Ok(Some(out))
}

/// Joins the running-process list (memory, MIG ids) with per-process utilization. A process
/// with utilization samples but no compute context (a graphics client) is kept too.
fn merge_processes(
    running: Vec<nvml_wrapper::struct_wrappers::device::ProcessInfo>,
    utils: Option<HashMap<u32, f64>>,
) -> Vec<GpuProcess> {
    let mut out: Vec<GpuProcess> = running
        .into_iter()
        .map(|p| GpuProcess {
            pid: p.pid,
            used_memory_bytes: match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(b),
                UsedGpuMemory::Unavailable => None,
            },
            sm_utilization_ratio: utils
                .as_ref()
                .map(|u| u.get(&p.pid).copied().unwrap_or(0.0)),
            gpu_instance_id: p.gpu_instance_id,
            compute_instance_id: p.compute_instance_id,
        })
        .collect();
    if let Some(utils) = utils {
        for (pid, ratio) in utils {
            if !out.iter().any(|p| p.pid == pid) {
                out.push(GpuProcess {
                    pid,
                    sm_utilization_ratio: Some(ratio),
                    ..GpuProcess::default()
                });
            }
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}
