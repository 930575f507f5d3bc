//! One NVIDIA device: its worker thread and one sample of every series NVML gives for it.
//!
//! Each device samples on a thread of its own, so that a call that hangs on one GPU delays
//! neither the other GPUs nor the cycle: the coordinator stops waiting at its deadline.
//! The worker reads the fast tier (see `tiers.rs`); the health tier has a thread of its own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::{Device, GpmSample, Nvml};

use super::calls::SampleCalls;
use super::health;
use super::mps::MpsClients;
use super::procutil::ProcessUtilization;
use super::tiers;
use crate::collect::worker::{CycleWorker, Reply};
use crate::sample::{
    CallError, DeviceDown, DeviceHealth, DeviceIdentity, DeviceMetrics, DeviceSample, ErrorLabel,
    GpuProcess, MigIdentity, Profiling, ProfilingSource, ProfilingValues, Vendor,
};
use crate::timing::Timing;

/// Device `index`'s fast-tier worker: a thread with the device's state, which answers each
/// request with one sample (the device, then its MIG instances, devices of their own). A fresh
/// thread (the first, or after a panic) starts with fresh state: a new handle, identity and
/// per-process bookkeeping.
pub(super) fn fast_worker(
    nvml: &'static Nvml,
    index: u32,
    driver_version: String,
    timing: Timing,
) -> CycleWorker<(), Vec<DeviceSample>> {
    CycleWorker::new(format!("nvml-gpu{index}"), move || {
        let mut dev = DeviceState::new(index, driver_version.clone(), timing);
        move |()| {
            let (value, errors) = dev.sample(nvml);
            Reply { value, errors }
        }
    })
}

/// GPM metrics come from two samples; the previous one is kept (and freed when replaced).
struct Gpm {
    supported: Option<bool>,
    previous: Option<GpmSample<'static>>,
}

/// Where a metric's value goes in the profiling values.
type Slot = fn(&mut ProfilingValues) -> &mut Option<f64>;

/// The GPM metrics read, each with the profiling value it gives (nvml.h's
/// `NVML_GPM_METRIC_*`: graphics 1, SM 2, occupancy 3, any tensor 5, DRAM 10, FP64/FP32/FP16
/// 11-13).
const GPM_METRICS: [(GpmMetricId, Slot); 8] = [
    (GpmMetricId::GraphicsUtil, |v| &mut v.graphics_active),
    (GpmMetricId::SmUtil, |v| &mut v.sm_active),
    (GpmMetricId::SmOccupancy, |v| &mut v.sm_occupancy),
    (GpmMetricId::AnyTensorUtil, |v| &mut v.tensor_active),
    (GpmMetricId::DramBwUtil, |v| &mut v.dram_active),
    (GpmMetricId::Fp64Util, |v| &mut v.fp64_active),
    (GpmMetricId::Fp32Util, |v| &mut v.fp32_active),
    (GpmMetricId::Fp16Util, |v| &mut v.fp16_active),
];

/// Everything kept about one device between samples.
struct DeviceState {
    index: u32,
    driver_version: String,
    /// The collection interval: per-process utilization's window after a skipped cycle.
    interval: Duration,
    handle: Option<Device<'static>>,
    identity: DeviceIdentity,
    /// The identity (UUID, name, PCI bus id) is read: it is not asked again until the device
    /// fails or the devices are enumerated afresh (a new worker).
    identity_read: bool,
    /// Whether the MIG mode is worth asking: `NOT_SUPPORTED` once means never on this device
    /// (until a new enumeration).
    mig_supported: bool,
    procutil: ProcessUtilization,
    mps: MpsClients,
    gpm: Gpm,
    /// The previous GPM sample of each MIG GPU instance, by GPU instance id.
    mig_gpm: HashMap<u32, GpmSample<'static>>,
    /// Each MIG instance's UUID and name (profile), by instance slot.
    mig_names: HashMap<u32, MigName>,
    /// When the MIG names are read afresh (every health interval).
    mig_names_refresh: tiers::HealthSchedule,
}

/// A MIG instance's static identity, kept while its slot holds the same GPU and compute
/// instance ids, and read afresh every health interval: instances can be destroyed and created
/// without a new enumeration of their GPU.
#[derive(Debug, Clone)]
struct MigName {
    gpu_instance: u32,
    compute_instance: u32,
    uuid: String,
    name: String,
}

impl DeviceState {
    fn new(index: u32, driver_version: String, timing: Timing) -> Self {
        DeviceState {
            index,
            interval: timing.interval(),
            identity_read: false,
            mig_supported: true,
            identity: DeviceIdentity {
                gpu: index.to_string(),
                driver_version: driver_version.clone(),
                ..DeviceIdentity::default()
            },
            driver_version,
            handle: None,
            procutil: ProcessUtilization::new(),
            mps: MpsClients::new(),
            gpm: Gpm {
                supported: None,
                previous: None,
            },
            mig_gpm: HashMap::new(),
            mig_names: HashMap::new(),
            mig_names_refresh: tiers::HealthSchedule::new(timing),
        }
    }

    /// A sample that reports this device down for `why`: its identity, no values.
    fn down_sample(&self, why: DeviceDown) -> DeviceSample {
        DeviceSample {
            vendor: Some(Vendor::Nvidia),
            identity: self.identity.clone(),
            down: Some(why),
            ..DeviceSample::default()
        }
    }

    fn sample(&mut self, nvml: &'static Nvml) -> (Vec<DeviceSample>, Vec<CallError>) {
        let mut calls = SampleCalls::default();
        if self.handle.is_none() {
            self.handle = calls.take("handle", || nvml.device_by_index(self.index));
        }
        let Some(dev) = self.handle.as_ref() else {
            let why = DeviceDown::Failed(calls.fatal.clone().unwrap_or(ErrorLabel::NoHandle));
            return (vec![self.down_sample(why)], calls.errors);
        };

        if !self.identity_read {
            self.identity_read =
                read_identity(&mut self.identity, &self.driver_version, &mut calls, dev);
        }

        let mut m = DeviceMetrics::default();
        if let Some(u) = calls.take("utilization", || dev.utilization_rates()) {
            m.utilization_ratio = Some(percent(u.gpu));
            m.memory_bandwidth_utilization_ratio = Some(percent(u.memory));
        }
        if let Some(mem) = calls.take("memory", || dev.memory_info()) {
            m.memory_used_bytes = Some(mem.used as f64);
            m.memory_total_bytes = Some(mem.total as f64);
            m.memory_reserved_bytes = Some(mem.reserved as f64);
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
        let in_mig_mode = mig_mode(&mut self.mig_supported, &mut calls, dev);
        let pids = running.as_ref().map(|r| distinct_pids(r));
        let supported = self.procutil.supported();
        let utils = if tiers::wants_process_utilization(
            in_mig_mode,
            pids.as_ref().map(Vec::len),
            supported,
        ) {
            let held = pids.as_deref().and_then(|p| self.procutil.held(p));
            match held {
                Some(answer) => Some(answer),
                None => {
                    let interval = self.interval;
                    calls
                        .take("process_utilization", || {
                            self.procutil.poll(nvml, dev, interval, pids.as_deref())
                        })
                        .flatten()
                }
            }
        } else {
            self.procutil.skipped();
            // One process: the device's utilization is its own (not asked, not guessed).
            match pids.as_deref() {
                Some([pid]) if !in_mig_mode => {
                    tiers::sole_process_share(*pid, m.utilization_ratio, supported)
                        .map(|(pid, u)| HashMap::from([(pid, u)]))
                }
                _ => None,
            }
        };
        let gpm = &mut self.gpm;
        let gpm_values = calls.take("gpm", || poll_gpm(gpm, nvml, dev)).flatten();
        let profiling = gpm_profiling(self.gpm.supported, gpm_values);

        // The health tier is the health thread's; only clock event reasons are read here.
        let health = DeviceHealth {
            throttled: health::throttled(&mut calls, dev),
            ..DeviceHealth::default()
        };
        // MPS clients (rule 7): asked where two or more processes run. Under MPS the compute list
        // holds the server and every client (docs/measurements.md, "MPS"), so a device with one
        // process has no MPS client to find (the list is two calls, count then entries). In MIG
        // mode the parent's processes are its instances', attributed there.
        let mps_clients = if !in_mig_mode && pids.as_ref().is_some_and(|p| p.len() >= 2) {
            calls.take("mps", || self.mps.poll(nvml, dev)).flatten()
        } else {
            None
        };
        let instances = if in_mig_mode {
            let now = Instant::now();
            if self.mig_names_refresh.due(now) {
                self.mig_names_refresh.asked(now);
                self.mig_names.clear();
            }
            mig_instances(
                &mut calls,
                nvml,
                dev,
                &self.identity,
                &self.gpm,
                &mut self.mig_gpm,
                &mut self.mig_names,
            )
        } else {
            self.mig_gpm.clear();
            self.mig_names.clear();
            Vec::new()
        };

        if let Some(fatal) = calls.fatal.take() {
            // The device may come back as another (a reset, a swap): its identity is read again.
            self.identity_read = false;
            // Whatever was read before the device failed is not reported: a lost GPU shows
            // `gpu_up 0` and its identity, not a mix of fresh and missing values.
            return (
                vec![self.down_sample(DeviceDown::Failed(fatal))],
                calls.errors,
            );
        }
        // In MIG mode the parent lists its instances' processes; they are attributed on the
        // instances, so the parent keeps only its device-wide series.
        let (processes, per_process_utilization) = if in_mig_mode {
            (Vec::new(), false)
        } else {
            (
                merge_processes(running.unwrap_or_default(), utils.clone(), mps_clients),
                utils.is_some(),
            )
        };
        let mut samples = vec![DeviceSample {
            vendor: Some(Vendor::Nvidia),
            identity: self.identity.clone(),
            down: None,
            metrics: m,
            profiling,
            health,
            processes,
            per_process_utilization,
        }];
        samples.extend(instances);
        (samples, calls.errors)
    }
}

/// Reads a device's static identity: once per enumeration, not every cycle (the memory total
/// comes with the used memory, in the same call, and the driver version once per NVML
/// initialization). Whether all of it was read (else it is asked again next cycle).
fn read_identity(
    identity: &mut DeviceIdentity,
    driver_version: &str,
    calls: &mut SampleCalls,
    dev: &Device<'static>,
) -> bool {
    if let Some(uuid) = calls.take("uuid", || dev.uuid()) {
        identity.uuid = uuid;
    }
    if identity.model.is_empty() {
        if let Some(name) = calls.take("name", || dev.name()) {
            identity.model = name;
        }
    }
    if identity.pci_bus_id.is_empty() {
        if let Some(pci) = calls.take("pci", || dev.pci_info()) {
            identity.pci_bus_id = pci.bus_id;
        }
    }
    driver_version.clone_into(&mut identity.driver_version);
    !identity.uuid.is_empty() && !identity.model.is_empty() && !identity.pci_bus_id.is_empty()
}

/// Whether the device is in MIG mode. A device that answers `NOT_SUPPORTED` (every GPU before
/// Ampere's A100/A30, and consumer boards) is not asked again until a new enumeration
/// (`supported` turns false); MIG mode itself only changes with a GPU reset.
fn mig_mode(supported: &mut bool, calls: &mut SampleCalls, dev: &Device<'static>) -> bool {
    if !*supported {
        return false;
    }
    match dev.mig_mode() {
        Ok(m) => m.current == 1,
        Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => {
            *supported = false;
            false
        }
        Err(e) => {
            calls.take("mig", || Err::<(), _>(e));
            false
        }
    }
}

/// The distinct pids of a compute list (a process may hold several contexts).
fn distinct_pids(running: &[ProcessInfo]) -> Vec<u32> {
    let mut pids: Vec<u32> = running.iter().map(|p| p.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn percent(p: u32) -> f64 {
    f64::from(p.min(100)) / 100.0
}

/// Every MIG instance of a GPU in MIG mode, as a device of its own: `gpu` = `<parent>:<gpu
/// instance>`, its `MIG-` UUID, its memory, its processes, and GPM per GPU instance.
fn mig_instances(
    calls: &mut SampleCalls,
    nvml: &'static Nvml,
    parent: &Device<'static>,
    parent_id: &DeviceIdentity,
    gpm: &Gpm,
    mig_gpm: &mut HashMap<u32, GpmSample<'static>>,
    mig_names: &mut HashMap<u32, MigName>,
) -> Vec<DeviceSample> {
    let max = calls.take("mig", || parent.mig_device_count()).unwrap_or(0);
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let mut seen_slots = Vec::new();
    for i in 0..max {
        let mig = match parent.mig_device_by_index(i) {
            Ok(d) => d,
            // Fewer instances than the maximum: NVML says NOT_FOUND for the empty slots.
            Err(NvmlError::NotFound | NvmlError::NotSupported) => continue,
            Err(e) => {
                calls.take("mig", || Err::<(), _>(e));
                continue;
            }
        };
        let Some((gi, ci)) = calls.take("mig", || instance_ids(nvml, &mig)) else {
            continue;
        };
        let known = mig_names
            .get(&i)
            .filter(|n| n.gpu_instance == gi && n.compute_instance == ci)
            .cloned();
        let (uuid, name) = match known {
            Some(n) => (n.uuid, n.name),
            None => {
                let Some(uuid) = calls.take("uuid", || mig.uuid()) else {
                    continue;
                };
                let name = calls.take("name", || mig.name()).unwrap_or_default();
                if !name.is_empty() {
                    mig_names.insert(
                        i,
                        MigName {
                            gpu_instance: gi,
                            compute_instance: ci,
                            uuid: uuid.clone(),
                            name: name.clone(),
                        },
                    );
                }
                (uuid, name)
            }
        };
        seen.push(gi);
        seen_slots.push(i);
        // NVML names an instance `<GPU name> MIG <profile>`.
        let profile = name
            .rsplit_once(" MIG ")
            .map_or_else(String::new, |(_, p)| p.to_string());
        let mut m = DeviceMetrics::default();
        if let Some(mem) = calls.take("memory", || mig.memory_info()) {
            m.memory_used_bytes = Some(mem.used as f64);
            m.memory_total_bytes = Some(mem.total as f64);
            m.memory_reserved_bytes = Some(mem.reserved as f64);
        }
        let gpm_values = if gpm.supported == Some(true) {
            calls
                .take("gpm", || {
                    gpm_step(nvml, mig_gpm.remove(&gi), parent.gpm_mig_sample(gi)?, |s| {
                        mig_gpm.insert(gi, s);
                    })
                })
                .flatten()
        } else {
            None
        };
        let profiling = gpm_profiling(gpm.supported, gpm_values);
        let running = calls.take("processes", || mig.running_compute_processes());
        out.push(DeviceSample {
            vendor: Some(Vendor::Nvidia),
            identity: DeviceIdentity {
                gpu: format!("{}:{gi}", parent_id.gpu),
                uuid,
                model: name,
                pci_bus_id: parent_id.pci_bus_id.clone(),
                driver_version: parent_id.driver_version.clone(),
                mig: Some(MigIdentity {
                    parent_uuid: parent_id.uuid.clone(),
                    profile,
                    gpu_instance_id: gi,
                    compute_instance_id: ci,
                }),
            },
            down: None,
            metrics: m,
            profiling,
            health: DeviceHealth::default(),
            processes: merge_processes(running.unwrap_or_default(), None, None),
            per_process_utilization: false,
        });
    }
    // Instances that are gone take their GPM samples and names with them.
    mig_gpm.retain(|gi, _| seen.contains(gi));
    mig_names.retain(|slot, _| seen_slots.contains(slot));
    out
}

/// A MIG device's GPU and compute instance ids (not wrapped by nvml-wrapper).
fn instance_ids(nvml: &Nvml, mig: &Device<'_>) -> Result<(u32, u32), NvmlError> {
    let gi_sym = nvml_sym(nvml.lib().nvmlDeviceGetGpuInstanceId.as_ref())?;
    let ci_sym = nvml_sym(nvml.lib().nvmlDeviceGetComputeInstanceId.as_ref())?;
    let (mut gi, mut ci) = (0u32, 0u32);
    // SAFETY: the handle belongs to this NVML instance; NVML writes one uint each.
    unsafe {
        nvml_try(gi_sym(mig.handle(), &mut gi))?;
        nvml_try(ci_sym(mig.handle(), &mut ci))?;
    }
    Ok((gi, ci))
}

/// The profiling of a device (or MIG instance) from GPM: GPM is its source wherever the device
/// supports it, even before the second sample gives values (so DCGM never stands in for it);
/// `None` where it does not (or it is not known yet), for DCGM to serve.
fn gpm_profiling(supported: Option<bool>, values: Option<ProfilingValues>) -> Option<Profiling> {
    (supported == Some(true)).then(|| Profiling {
        source: ProfilingSource::Gpm,
        values: values.unwrap_or_default(),
    })
}

/// GPM metrics between `previous` and `current` (as 0..1); `current` is handed to `keep` to be
/// the next previous sample. `Ok(None)` on the first sample.
fn gpm_step(
    nvml: &'static Nvml,
    previous: Option<GpmSample<'static>>,
    current: GpmSample<'static>,
    keep: impl FnOnce(GpmSample<'static>),
) -> Result<Option<ProfilingValues>, NvmlError> {
    let ids = GPM_METRICS.map(|(id, _)| id);
    let result = match &previous {
        None => Ok(None),
        Some(prev) => gpm_metrics_get(nvml, prev, &current, &ids).map(|results| {
            let mut out = ProfilingValues::default();
            for ((_, slot), r) in GPM_METRICS.iter().zip(results) {
                if let Ok(v) = r {
                    if v.value.is_finite() {
                        *slot(&mut out) = Some((v.value / 100.0).clamp(0.0, 1.0));
                    }
                }
            }
            Some(out)
        }),
    };
    keep(current);
    result
}

/// Takes a GPM sample and, when a previous one exists, the metrics between the two (as 0..1).
/// `Ok(None)`: GPM not supported, or the first sample.
fn poll_gpm(
    gpm: &mut Gpm,
    nvml: &'static Nvml,
    dev: &Device<'static>,
) -> Result<Option<ProfilingValues>, NvmlError> {
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
    let current = match dev.gpm_sample() {
        Ok(c) => c,
        // Profiling counters restricted to admins (NVreg_RestrictProfilingToAdminUsers): the
        // same as not supported for this agent, said once rather than counted every cycle.
        Err(NvmlError::NoPermission) => {
            tracing::info!("GPM needs profiling permission on this node; GPM series are off");
            gpm.supported = Some(false);
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let previous = gpm.previous.take();
    gpm_step(nvml, previous, current, |s| gpm.previous = Some(s))
}

/// Joins the running-process list (memory, MIG ids) with per-process utilization and the MPS
/// client list. A process with utilization samples but no compute context (a graphics client)
/// is kept too, and so is an MPS client missing from the compute list.
fn merge_processes(
    running: Vec<ProcessInfo>,
    utils: Option<HashMap<u32, f64>>,
    mps_clients: Option<Vec<ProcessInfo>>,
) -> Vec<GpuProcess> {
    let from_info = |p: ProcessInfo| GpuProcess {
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
        mps_client: false,
    };
    let mut out: Vec<GpuProcess> = running.into_iter().map(from_info).collect();
    for client in mps_clients.into_iter().flatten() {
        match out.iter_mut().find(|p| p.pid == client.pid) {
            Some(p) => p.mps_client = true,
            None => out.push(GpuProcess {
                mps_client: true,
                ..from_info(client)
            }),
        }
    }
    if let Some(utils) = &utils {
        for (pid, ratio) in utils {
            if !out.iter().any(|p| p.pid == *pid) {
                out.push(GpuProcess {
                    pid: *pid,
                    sm_utilization_ratio: Some(*ratio),
                    ..GpuProcess::default()
                });
            }
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32, memory: u64) -> ProcessInfo {
        ProcessInfo {
            pid,
            used_gpu_memory: UsedGpuMemory::Used(memory),
            gpu_instance_id: None,
            compute_instance_id: None,
        }
    }

    /// What NVML answered on an H200 under MPS (docs/measurements.md, "MPS"): the server (66 MiB)
    /// and both clients in the compute list, the clients in the MPS list, every utilization sample
    /// on the server's pid.
    #[test]
    fn mps_clients_are_marked_and_keep_their_memory() {
        let server = 66 << 20;
        let running = vec![info(4100, server), info(4200, 5 << 30), info(4300, 7 << 30)];
        let utils = HashMap::from([(4100, 0.87)]);
        let clients = vec![info(4200, 5 << 30), info(4300, 7 << 30)];
        let got = merge_processes(running, Some(utils), Some(clients));
        let view: Vec<(u32, Option<u64>, Option<f64>, bool)> = got
            .iter()
            .map(|p| {
                (
                    p.pid,
                    p.used_memory_bytes,
                    p.sm_utilization_ratio,
                    p.mps_client,
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                (4100, Some(server), Some(0.87), false),
                (4200, Some(5 << 30), Some(0.0), true),
                (4300, Some(7 << 30), Some(0.0), true),
            ]
        );
    }

    #[test]
    fn a_process_with_two_contexts_is_one_process() {
        let running = vec![info(7, 1), info(7, 2), info(3, 1)];
        assert_eq!(distinct_pids(&running), [3, 7]);
        assert_eq!(distinct_pids(&running[..2]), [7]);
    }

    #[test]
    fn an_mps_client_missing_from_the_compute_list_is_kept() {
        let got = merge_processes(vec![info(4100, 1)], None, Some(vec![info(4200, 2)]));
        assert_eq!(got.len(), 2);
        assert!(got[1].mps_client && got[1].used_memory_bytes == Some(2));
        assert!(!got[0].mps_client);
    }
}
