//! The AMD backend, in pure Rust: amdgpu devices from sysfs, their processes from DRM fdinfo
//! and, for ROCm compute, from KFD. Reads only under `--path.sysfs` and `--path.procfs`.
//!
//! Per cycle: list the amdgpu cards and read their gauges; then, only if there is a GPU, one
//! pass over every process's fdinfo and one over KFD's process folders. A node without amdgpu
//! devices costs one directory listing per cycle.

mod card_readers;
mod engines;
pub mod fdinfo;
mod files;
mod kfd;
pub mod procscan;
#[cfg(feature = "rocm-smi")]
pub mod rocm;
mod sysfs;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use self::card_readers::{CardReaders, Outcome};
use self::engines::{EngineTracker, Stamp};
use self::sysfs::{Card, Identity};
use super::worker::{Asked, CycleWorker, Reply, Waited};
use super::Backend;
use crate::paths::HostPaths;
use crate::pci::PciAddress;
use crate::sample::{
    CallError, DeviceDown, DeviceIdentity, DeviceSample, ErrorLabel, GpuProcess, Vendor,
    VendorReport,
};

/// A device seen at some point since the agent started.
#[derive(Debug, Clone)]
struct SeenDevice {
    /// Its card number when last seen; orders the devices (the `gpu` label).
    card: u32,
    pci_bus_id: String,
    identity: Identity,
}

/// The processes on each device.
type Processes = HashMap<PciAddress, Vec<GpuProcess>>;

/// The fdinfo and KFD pass over every process, and the engine counters it keeps.
struct ProcessScan {
    sysfs: PathBuf,
    procfs: PathBuf,
    own_pid: u32,
    engines: EngineTracker,
}

/// The AMD collector.
pub struct AmdBackend {
    sysfs: PathBuf,
    procfs: PathBuf,
    /// Every device seen, by PCI address. One that disappears stays, reported down.
    seen: HashMap<PciAddress, SeenDevice>,
    /// A sysfs reader thread per card.
    readers: CardReaders,
    /// The process pass, on a thread of its own (a read of a GPU in reset can block); its last
    /// answer stands while a pass runs late.
    scan: CycleWorker<Vec<PciAddress>, Processes>,
    logged_none: bool,
    /// ROCm SMI, where the binary has it and `--amd.rocm-smi` leaves it on.
    #[cfg(feature = "rocm-smi")]
    rocm: Option<rocm::RocmSource>,
}

impl AmdBackend {
    /// The collector; `rocm_smi` asks for ROCm SMI as a second source, which only a binary
    /// built with the `rocm-smi` feature has (elsewhere it is ignored, with a warning).
    pub fn new(paths: &HostPaths, rocm_smi: bool) -> Self {
        #[cfg(not(feature = "rocm-smi"))]
        if rocm_smi {
            tracing::warn!("--amd.rocm-smi is on, but this binary was built without the rocm-smi feature: the amd collector reads sysfs only");
        }
        let (sysfs, procfs) = (paths.sysfs.clone(), paths.procfs.clone());
        let scan = CycleWorker::new("amd-processes".into(), move || {
            // A fresh thread (the first, or after a panic) starts its engine counters anew.
            let mut scan = ProcessScan {
                sysfs: sysfs.clone(),
                procfs: procfs.clone(),
                own_pid: std::process::id(),
                engines: EngineTracker::default(),
            };
            move |present: Vec<PciAddress>| {
                let mut errors = Vec::new();
                let value = scan.processes(&present, &mut errors);
                Reply { value, errors }
            }
        });
        AmdBackend {
            sysfs: paths.sysfs.clone(),
            procfs: paths.procfs.clone(),
            seen: HashMap::new(),
            readers: CardReaders::default(),
            scan,
            logged_none: false,
            #[cfg(feature = "rocm-smi")]
            rocm: rocm_smi.then(rocm::RocmSource::new),
        }
    }

    /// The amdgpu cards now, and whether they could be listed.
    fn list_cards(&self, errors: &mut Vec<CallError>) -> (Vec<Card>, bool) {
        match sysfs::list_cards(&self.sysfs, errors) {
            Ok(c) => (c, true),
            Err(bad) => {
                errors.push(bad.to_call_error("sysfs"));
                (Vec::new(), false)
            }
        }
    }

    /// Notes each card's number, reading the identity of a card not seen before.
    fn note_cards(&mut self, cards: &[Card], errors: &mut Vec<CallError>) {
        for card in cards {
            let seen = self.seen.entry(card.pci).or_insert_with(|| {
                let identity = sysfs::identity(card, errors);
                tracing::info!(card = card.number, pci = %card.pci_bus_id, uuid = %identity.uuid, model = %identity.model, "amdgpu device found");
                SeenDevice {
                    card: card.number,
                    pci_bus_id: card.pci_bus_id.clone(),
                    identity,
                }
            });
            seen.card = card.number;
        }
    }

    /// This cycle's processes, by `deadline`, and whether they are this cycle's: a pass that
    /// has not finished (a read blocked, counted `processes`/`TIMEOUT`) or could not start
    /// leaves the last pass's processes standing.
    fn processes(
        &mut self,
        cards: &[Card],
        deadline: Instant,
        errors: &mut Vec<CallError>,
    ) -> (Processes, bool) {
        let waited = self.scan.wait(deadline, errors);
        match waited {
            Waited::Fresh(p) => (p.clone(), true),
            _ if cards.is_empty() => (HashMap::new(), true),
            Waited::Late(last) => {
                errors.push(CallError::new("processes", ErrorLabel::Timeout));
                (last.cloned().unwrap_or_default(), false)
            }
            Waited::Panicked(last) | Waited::Idle(last) => {
                (last.cloned().unwrap_or_default(), false)
            }
        }
    }

    /// Asks ROCm SMI (on its thread) for this cycle's readings of `cards`.
    #[cfg(feature = "rocm-smi")]
    fn ask_rocm(&mut self, cards: &[Card], errors: &mut Vec<CallError>) {
        let Some(rocm) = self.rocm.as_mut() else {
            return;
        };
        let wanted = cards
            .iter()
            .map(|c| {
                let unnamed = self.seen.get(&c.pci).is_some_and(|k| k.identity.unnamed);
                (c.pci, unnamed)
            })
            .collect();
        rocm.ask(wanted, errors);
    }

    /// What ROCm SMI read this cycle, by device; nothing without it.
    #[cfg(feature = "rocm-smi")]
    fn rocm_answer(
        &mut self,
        deadline: Instant,
        errors: &mut Vec<CallError>,
    ) -> HashMap<PciAddress, Supplement> {
        match self.rocm.as_mut() {
            Some(rocm) => rocm.answer(deadline, errors),
            None => HashMap::new(),
        }
    }

    #[cfg(not(feature = "rocm-smi"))]
    fn ask_rocm(&mut self, _cards: &[Card], _errors: &mut [CallError]) {}

    #[cfg(not(feature = "rocm-smi"))]
    fn rocm_answer(
        &mut self,
        _deadline: Instant,
        _errors: &mut [CallError],
    ) -> HashMap<PciAddress, Supplement> {
        HashMap::new()
    }

    /// Names a device sysfs could not name from what ROCm SMI says.
    fn name_from(&mut self, supplements: &mut HashMap<PciAddress, Supplement>) {
        for (pci, s) in supplements {
            if let (Some(name), Some(seen)) = (s.name.take(), self.seen.get_mut(pci)) {
                if seen.identity.unnamed {
                    tracing::info!(pci = %seen.pci_bus_id, model = %name, "ROCm SMI names the device");
                    seen.identity.model = name;
                    seen.identity.unnamed = false;
                }
            }
        }
    }

    /// One sample per device seen, in card order, from this cycle's readings.
    fn samples(&self, mut cycle: Cycle, errors: &mut Vec<CallError>) -> Vec<DeviceSample> {
        let driver_version = sysfs::driver_version(&self.sysfs, &self.procfs);
        let mut order: Vec<(&PciAddress, &SeenDevice)> = self.seen.iter().collect();
        order.sort_by(|(_, a), (_, b)| (a.card, &a.pci_bus_id).cmp(&(b.card, &b.pci_bus_id)));
        let mut devices = Vec::with_capacity(order.len());
        for (index, (pci, seen)) in order.into_iter().enumerate() {
            let mut sample = DeviceSample {
                vendor: Some(Vendor::Amd),
                identity: DeviceIdentity {
                    gpu: index.to_string(),
                    uuid: seen.identity.uuid.clone(),
                    model: seen.identity.model.clone(),
                    pci_bus_id: seen.pci_bus_id.clone(),
                    driver_version: driver_version.clone(),
                    mig: None,
                },
                ..DeviceSample::default()
            };
            let processes = cycle.processes.remove(pci).unwrap_or_default();
            match cycle.readings.remove(pci) {
                Some(Outcome::Fresh(reading)) if !reading.gone => {
                    sample.metrics = reading.metrics;
                    if let Some(s) = cycle.supplements.remove(pci) {
                        sample.metrics.fill_from(s.metrics);
                        sample.health = s.health;
                    }
                    set_processes(&mut sample, processes);
                }
                Some(Outcome::Fresh(_)) => {
                    sample.down = Some(DeviceDown::Failed(files::NO_DEVICE));
                }
                Some(Outcome::Late(last)) => {
                    // Its reads did not return in time: the last values, marked down.
                    if let Some(last) = last {
                        sample.metrics = last.metrics;
                    }
                    set_processes(&mut sample, processes);
                    sample.down = Some(DeviceDown::TimedOut);
                }
                None => {
                    // Its card folder is gone: unplugged, unbound, or fallen off the bus.
                    errors.push(CallError::new("sysfs", ErrorLabel::DeviceGone));
                    sample.down = Some(DeviceDown::Failed(ErrorLabel::DeviceGone));
                }
            }
            devices.push(sample);
        }
        devices
    }
}

/// What one cycle read, by device, before it becomes samples.
struct Cycle {
    readings: HashMap<PciAddress, Outcome>,
    supplements: HashMap<PciAddress, Supplement>,
    processes: Processes,
}

impl ProcessScan {
    /// The clock the fdinfo counters are read against.
    fn stamp(&self, errors: &mut Vec<CallError>) -> Stamp {
        let mono = Instant::now();
        let uptime = match files::text(&self.procfs.join("uptime")) {
            Ok(Some(t)) => {
                let v = t
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok());
                let v = v.filter(|v| v.is_finite() && *v >= 0.0);
                if v.is_none() {
                    errors.push(files::Unreadable::Malformed.to_call_error("procfs"));
                }
                v
            }
            Ok(None) => None,
            Err(bad) => {
                errors.push(bad.to_call_error("procfs"));
                None
            }
        };
        Stamp { mono, uptime }
    }

    /// The processes on each present device, from this cycle's fdinfo and KFD reads.
    fn processes(&mut self, present: &[PciAddress], errors: &mut Vec<CallError>) -> Processes {
        let now = self.stamp(errors);
        let scan = procscan::scan(&self.procfs, self.own_pid, errors);
        let ratios = self.engines.update(now, &scan.processes);
        let nodes = kfd::topology(&self.sysfs, errors);
        let kfd = kfd::processes(&self.sysfs, &nodes, self.own_pid, errors);

        // (device, pid) -> what fdinfo and KFD say.
        let mut uses: HashMap<(PciAddress, u32), ProcessUse> = HashMap::new();
        for p in &scan.processes {
            for c in &p.clients {
                let Some(dev) = device_of(c.pdev, present) else {
                    // A client of an amdgpu device that is not (or no longer) on this node.
                    errors.push(CallError::new("fdinfo", ErrorLabel::UnknownDevice));
                    continue;
                };
                let u = uses.entry((dev, p.pid)).or_default();
                if let Some(b) = c.info.vram.bytes() {
                    u.fdinfo_vram = Some(u.fdinfo_vram.unwrap_or(0).saturating_add(b));
                }
            }
        }
        for ((pid, pdev), rs) in &ratios {
            if let Some(dev) = device_of(*pdev, present) {
                let u = uses.entry((dev, *pid)).or_default();
                u.fdinfo_ratio = Some(rs.iter().sum::<f64>().clamp(0.0, 1.0));
            }
        }
        for ((pid, slot), k) in &kfd {
            if let Some(dev) = device_of(*slot, present) {
                let u = uses.entry((dev, *pid)).or_default();
                u.kfd_vram = Some(k.vram_bytes);
                u.kfd_ratio = k.ratio();
            }
        }
        let mut out: Processes = HashMap::new();
        for ((dev, pid), u) in uses {
            out.entry(dev).or_default().push(GpuProcess {
                pid,
                used_memory_bytes: max_of(u.fdinfo_vram, u.kfd_vram),
                sm_utilization_ratio: max_of(u.fdinfo_ratio, u.kfd_ratio),
                ..GpuProcess::default()
            });
        }
        for procs in out.values_mut() {
            procs.sort_by_key(|p| p.pid);
        }
        out
    }
}

#[cfg(feature = "rocm-smi")]
use self::rocm::Supplement;

/// What a second source adds to a device: nothing in a build without ROCm SMI.
#[cfg(not(feature = "rocm-smi"))]
#[derive(Debug, Default)]
struct Supplement {
    metrics: crate::sample::DeviceMetrics,
    health: crate::sample::DeviceHealth,
    name: Option<String>,
}

/// A device's processes this cycle; per-process utilization is meaningful on it when some
/// process has a ratio (attribution rule 3).
fn set_processes(sample: &mut DeviceSample, processes: Vec<GpuProcess>) {
    sample.per_process_utilization = processes.iter().any(|p| p.sm_utilization_ratio.is_some());
    sample.processes = processes;
}

/// One process's use of one device, from both sources.
#[derive(Debug, Default)]
struct ProcessUse {
    fdinfo_vram: Option<u64>,
    fdinfo_ratio: Option<f64>,
    kfd_vram: Option<u64>,
    kfd_ratio: Option<f64>,
}

/// fdinfo and KFD can both see the same work (KFD buffers live in the render node's VM, so
/// newer kernels count them in fdinfo too): the larger of the two, never their sum.
fn max_of<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b > a { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The present device at `addr`, matching the function too where KFD did not leave it out.
fn device_of(addr: PciAddress, present: &[PciAddress]) -> Option<PciAddress> {
    let slot = |p: &PciAddress| (p.domain, p.bus, p.device);
    present
        .iter()
        .find(|p| **p == addr)
        .or_else(|| {
            (addr.function == 0)
                .then(|| present.iter().find(|p| slot(p) == slot(&addr)))
                .flatten()
        })
        .copied()
}

impl Backend for AmdBackend {
    fn name(&self) -> &'static str {
        "amd"
    }

    fn collect(&mut self, deadline: Instant) -> VendorReport {
        let mut errors = Vec::new();
        let (cards, listed) = self.list_cards(&mut errors);
        if cards.is_empty() && self.seen.is_empty() {
            if !self.logged_none {
                tracing::info!(sysfs = %self.sysfs.display(), "no amdgpu devices; the amd collector reports none");
                self.logged_none = true;
            }
            return VendorReport {
                success: listed,
                completed: listed,
                call_errors: errors,
                ..VendorReport::default()
            };
        }
        self.note_cards(&cards, &mut errors);

        // The process pass, ROCm SMI and each card's sysfs reads on threads of their own: one
        // whose reads block is reported late, not the cycle.
        let present: Vec<PciAddress> = cards.iter().map(|c| c.pci).collect();
        if !present.is_empty() {
            if let Asked::NoThread = self.scan.ask(present, &mut errors) {
                errors.push(CallError::new("processes", ErrorLabel::NoThread));
            }
        }
        self.ask_rocm(&cards, &mut errors);
        let readings = self.readers.read(&cards, deadline, &mut errors);
        let mut supplements = self.rocm_answer(deadline, &mut errors);
        self.name_from(&mut supplements);
        let (processes, processes_fresh) = self.processes(&cards, deadline, &mut errors);

        let cycle = Cycle {
            readings,
            supplements,
            processes,
        };
        let devices = self.samples(cycle, &mut errors);
        VendorReport {
            success: listed && processes_fresh && devices.iter().all(DeviceSample::up),
            completed: listed,
            duration: Default::default(),
            devices,
            call_errors: errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kfd_addresses_match_devices_whatever_the_function() {
        let a = PciAddress::parse("0000:19:00.0").unwrap();
        let b = PciAddress::parse("0000:1a:00.0").unwrap();
        let present = [a, b];
        assert_eq!(device_of(a, &present), Some(a));
        assert_eq!(
            device_of(PciAddress::parse("0000:9c:00.0").unwrap(), &present),
            None
        );
        // fdinfo names the device's own function; a `.1` is the board's audio, not the GPU.
        assert_eq!(
            device_of(PciAddress::parse("0000:19:00.1").unwrap(), &present),
            None
        );
    }

    #[test]
    fn the_larger_of_two_sources() {
        assert_eq!(max_of(Some(3u64), Some(5)), Some(5));
        assert_eq!(max_of(None, Some(5u64)), Some(5));
        assert_eq!(max_of::<u64>(None, None), None);
    }

    #[test]
    fn a_node_without_amdgpu_reports_no_devices_and_success() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::new(dir.path(), None, None, None);
        let mut b = AmdBackend::new(&paths, false);
        let r = b.collect(Instant::now());
        assert!(r.success);
        assert!(r.devices.is_empty());
        assert!(r.call_errors.is_empty());
    }
}
