//! The NVIDIA backend: NVML (through nvml-wrapper) loaded from `--nvml.library`, one worker
//! thread per device for the fast tier and one health thread per device for the health tier,
//! initialization retried with backoff. The only module that knows NVML.

mod calls;
pub mod dcgm;
mod device;
mod events;
mod hangs;
mod health;
mod limits;
mod mps;
mod procutil;
mod roster;
mod tiers;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use nvml_wrapper::Nvml;

use self::calls::error_label;
use self::hangs::{HangLog, Tier};
use self::health::HealthRead;
use self::roster::Roster;
use self::tiers::HealthSchedule;
use super::worker::{Asked, CycleWorker, Waited};
use super::Backend;
use crate::backoff::Backoff;
use crate::sample::{
    CallError, DeviceDown, DeviceHealth, DeviceIdentity, DeviceSample, ErrorLabel, Vendor,
    VendorReport,
};
use crate::timing::Timing;

/// The library NVML is loaded from when `--nvml.library` is not given: the driver's own,
/// which (unlike `libnvidia-ml.so`) exists without the development package.
const SYSTEM_LIBRARY: &str = "libnvidia-ml.so.1";

/// One device, as the coordinator sees it: its two threads and what they last said.
struct Gpu {
    /// The fast tier, asked every cycle; its last answer is the device, then its MIG instances.
    fast: CycleWorker<(), Vec<DeviceSample>>,
    /// The health tier, asked when due and (but for the first read) never waited for.
    health: CycleWorker<(), HealthRead>,
    known: GpuFacts,
    /// A health read was asked this cycle and none has come yet: the cycle waits for this one.
    first_health_asked: bool,
    schedule: HealthSchedule,
}

/// What the coordinator keeps of a device's answers.
#[derive(Default)]
struct GpuFacts {
    /// The UUID the device had when it was enumerated.
    uuid: Option<String>,
    /// The device's last answer had it down.
    was_down: bool,
    /// The last health read: it stands until the next (no series is dropped between reads).
    health_last: Option<DeviceHealth>,
}

/// What an answer asks of the coordinator.
#[derive(Default)]
struct Noted {
    /// The device's UUID changed: enumerate again.
    reenumerate: bool,
    /// The device answers again after failing: register it for events again.
    rearm: bool,
}

impl GpuFacts {
    /// Files a fast answer of device `index`.
    fn accept(&mut self, index: usize, samples: &[DeviceSample]) -> Noted {
        let is_up = samples.first().is_some_and(DeviceSample::up);
        let mut noted = Noted {
            rearm: self.was_down && is_up,
            ..Noted::default()
        };
        self.was_down = !is_up;
        let uuid = samples.first().map_or("", |s| s.identity.uuid.as_str());
        if !uuid.is_empty() {
            match &self.uuid {
                None => self.uuid = Some(uuid.to_string()),
                Some(old) if old != uuid => {
                    tracing::info!(gpu = index, old = %old, new = %uuid, "device UUID changed; re-enumerating");
                    noted.reenumerate = true;
                }
                Some(_) => {}
            }
        }
        noted
    }

    /// Files a health read of device `index`; whether its UUID changed (enumerate again).
    fn accept_health(&mut self, index: usize, read: &HealthRead) -> bool {
        if let Some(h) = &read.health {
            self.health_last = Some(h.clone());
        }
        match (&read.uuid, &self.uuid) {
            (Some(new), Some(old)) if !new.is_empty() && old != new => {
                tracing::info!(gpu = index, old = %old, new = %new, "device UUID changed; re-enumerating");
                true
            }
            _ => false,
        }
    }
}

/// NVML, loaded, with a worker per device.
struct Loaded {
    nvml: &'static Nvml,
    timing: Timing,
    driver_version: String,
    gpus: Vec<Gpu>,
    reenumerate: bool,
    /// XID counts from the event thread, by device UUID.
    xids: Arc<events::XidCounts>,
    /// The physical GPUs seen since NVML was loaded: one that leaves the list stays, down.
    roster: Roster,
    /// Calls found running past their deadline: counted, and logged rate-limited.
    hangs: HangLog,
}

/// The NVIDIA collector.
pub struct NvidiaBackend {
    library: PathBuf,
    timing: Timing,
    loaded: Option<Loaded>,
    /// When the next initialization attempt is due.
    next_attempt: Instant,
    backoff: Backoff,
    /// DCGM's profiling fields for the devices without GPM (`--dcgm.address`).
    dcgm: Option<dcgm::Dcgm>,
}

impl NvidiaBackend {
    /// A backend that loads NVML from `library` (the system's when `None`) on its first cycle,
    /// sampling every interval and reading the health tier every health interval; with
    /// `dcgm`, DCGM profiles the devices that have no GPM.
    pub fn new(library: Option<PathBuf>, timing: Timing, dcgm: Option<dcgm::DcgmConfig>) -> Self {
        NvidiaBackend {
            library: library.unwrap_or_else(|| PathBuf::from(SYSTEM_LIBRARY)),
            timing,
            loaded: None,
            next_attempt: Instant::now(),
            backoff: Backoff::new(),
            dcgm: dcgm.map(|c| dcgm::Dcgm::new(c, timing)),
        }
    }

    /// Loads and initializes NVML when an attempt is due; logs the first failure once at
    /// warning level and later ones at debug, so a node without the driver does not flood logs.
    fn try_init(&mut self, errors: &mut Vec<CallError>) {
        let now = Instant::now();
        if now < self.next_attempt {
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
                        errors.push(CallError::new("driver_version", error_label(&e)));
                        String::new()
                    }
                };
                tracing::info!(
                    library = %self.library.display(),
                    driver_version,
                    after_failures = self.backoff.failures(),
                    "NVML initialized"
                );
                let xids = Arc::new(events::XidCounts::default());
                if let Err(e) = events::spawn(nvml, Arc::clone(&xids)) {
                    tracing::error!(error = %e, "cannot start the XID event thread");
                }
                self.loaded = Some(Loaded {
                    nvml,
                    timing: self.timing,
                    driver_version,
                    gpus: Vec::new(),
                    reenumerate: true,
                    xids,
                    roster: Roster::default(),
                    hangs: HangLog::default(),
                });
                self.backoff.succeeded();
            }
            Err(e) => {
                if self.backoff.failures() == 0 {
                    tracing::warn!(
                        library = %self.library.display(),
                        error = %e,
                        "NVML is not available; the nvidia collector reports down and retries with backoff"
                    );
                } else {
                    tracing::debug!(error = %e, failures = self.backoff.failures(), "NVML init failed again");
                }
                errors.push(CallError::new("init", error_label(&e)));
                self.next_attempt = now + self.backoff.failed();
            }
        }
    }
}

impl Loaded {
    /// Replaces every device's workers with fresh ones (their threads start at the first ask).
    fn enumerate(&mut self, count: u32) {
        // Dropping the old workers ends their threads once their current call returns.
        self.gpus.clear();
        for index in 0..count {
            self.gpus.push(Gpu {
                fast: device::fast_worker(
                    self.nvml,
                    index,
                    self.driver_version.clone(),
                    self.timing,
                ),
                health: health::health_worker(self.nvml, index),
                known: GpuFacts::default(),
                first_health_asked: false,
                schedule: HealthSchedule::staggered(self.timing, index as usize, count as usize),
            });
        }
        self.reenumerate = false;
        self.hangs.forget_devices();
        self.xids.rearm();
        tracing::debug!(
            interval = ?self.timing.interval(),
            fast = ?tiers::FAST_FAMILIES,
            health_interval = ?self.timing.health_interval(),
            health = ?tiers::HEALTH_FAMILIES,
            "sampling tiers"
        );
        tracing::info!(devices = count, "NVIDIA devices enumerated");
    }

    /// Takes the health answers that have come, and asks the devices whose health read is due.
    /// Never waits, but for a device's first read (see `collect`).
    fn health_tier(&mut self, errors: &mut Vec<CallError>) {
        let now = Instant::now();
        for (index, gpu) in self.gpus.iter_mut().enumerate() {
            if let Some(read) = gpu.health.take_late(errors) {
                self.reenumerate |= gpu.known.accept_health(index, read);
                self.hangs.answered(index, Tier::Health);
            }
            gpu.first_health_asked = false;
            if !gpu.schedule.due(now) {
                continue;
            }
            match gpu.health.ask((), errors) {
                Asked::Sent => {
                    gpu.schedule.asked(now);
                    gpu.first_health_asked = gpu.known.health_last.is_none();
                }
                // The last read still runs when the next is due: a whole health interval late.
                Asked::Busy => {
                    let call = gpu.health.in_call();
                    self.hangs.hung(index, Tier::Health, call, now, errors);
                }
                Asked::NoThread => {}
            }
        }
    }

    /// Waits, until `deadline`, for the health read just asked of devices that have none yet,
    /// so that the first samples (and `/readyz`) come with every series. A read still running
    /// from an earlier cycle (a hung call) is not waited for again.
    fn first_health_reads(&mut self, deadline: Instant, errors: &mut Vec<CallError>) {
        for (index, gpu) in self.gpus.iter_mut().enumerate() {
            if !gpu.first_health_asked {
                continue;
            }
            if let Waited::Fresh(read) = gpu.health.wait(deadline, errors) {
                self.reenumerate |= gpu.known.accept_health(index, read);
                self.hangs.answered(index, Tier::Health);
            }
        }
    }

    /// Files the fast answers that came after the last deadline: still the freshest data.
    fn late_answers(&mut self, errors: &mut Vec<CallError>) {
        for (index, gpu) in self.gpus.iter_mut().enumerate() {
            if let Some(samples) = gpu.fast.take_late(errors) {
                let noted = gpu.known.accept(index, samples);
                self.reenumerate |= noted.reenumerate;
                if noted.rearm {
                    self.xids.rearm();
                }
            }
        }
    }

    /// The samples device `index` reports this cycle, from what its fast worker said by the
    /// deadline; `None` for a device that has never answered and is not waited for.
    fn device_samples(
        &mut self,
        index: usize,
        deadline: Instant,
        errors: &mut Vec<CallError>,
    ) -> Option<Vec<DeviceSample>> {
        let gpu = self.gpus.get_mut(index)?;
        let placeholder = || {
            vec![DeviceSample {
                vendor: Some(Vendor::Nvidia),
                identity: DeviceIdentity {
                    gpu: index.to_string(),
                    driver_version: self.driver_version.clone(),
                    ..DeviceIdentity::default()
                },
                ..DeviceSample::default()
            }]
        };
        let mut late = false;
        let samples = match gpu.fast.wait(deadline, errors) {
            Waited::Fresh(samples) => {
                let noted = gpu.known.accept(index, samples);
                self.reenumerate |= noted.reenumerate;
                if noted.rearm {
                    self.xids.rearm();
                }
                self.hangs.answered(index, Tier::Fast);
                samples.clone()
            }
            // Not answered in time: the last values, marked down.
            Waited::Late(last) => {
                late = true;
                timed_out(last.cloned().unwrap_or_else(placeholder))
            }
            // No thread could be started (logged): likewise, once the device has answered.
            Waited::Idle(last) => timed_out(last?.clone()),
            Waited::Panicked(last) => {
                // Logged by the worker; a fresh thread (fresh state) answers from the next cycle.
                let mut down = last.cloned().unwrap_or_else(placeholder);
                down.truncate(1);
                for s in &mut down {
                    *s = DeviceSample {
                        vendor: Some(Vendor::Nvidia),
                        identity: std::mem::take(&mut s.identity),
                        down: Some(DeviceDown::Failed(ErrorLabel::Panic)),
                        ..DeviceSample::default()
                    };
                }
                gpu.known.was_down = true;
                down
            }
        };
        if late {
            let call = gpu.fast.in_call();
            self.hangs
                .hung(index, Tier::Fast, call, Instant::now(), errors);
        }
        Some(samples)
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
        let errors = &mut report.call_errors;
        // DCGM reads beside the devices, on its own thread (the last cycle's targets).
        if let Some(d) = self.dcgm.as_mut() {
            d.ask(errors);
        }

        // Answers that arrived after the previous deadline are still the freshest data.
        loaded.late_answers(errors);
        match loaded.nvml.device_count() {
            Ok(count) => {
                if loaded.reenumerate || count as usize != loaded.gpus.len() {
                    loaded.enumerate(count);
                }
                // NVML answers and the devices are listed: whatever they answer next, this
                // cycle completes (a lost GPU is `gpu_up 0`, not an unready agent).
                report.completed = true;
            }
            Err(e) => {
                success = false;
                errors.push(CallError::new("count", error_label(&e)));
            }
        }
        for gpu in &mut loaded.gpus {
            if let Asked::NoThread = gpu.fast.ask((), errors) {
                success = false;
            }
        }
        // The health tier runs beside the fast tier, on threads the cycle does not wait for.
        loaded.health_tier(errors);
        // Every worker has the same deadline, so waiting for them in turn waits no longer.
        let mut devices = Vec::with_capacity(loaded.gpus.len());
        for index in 0..loaded.gpus.len() {
            if let Some(samples) = loaded.device_samples(index, deadline, errors) {
                devices.push((index, samples));
            }
        }
        loaded.first_health_reads(deadline, errors);

        for (index, mut samples) in devices {
            success &= samples.iter().all(DeviceSample::up);
            if let (Some(first), Some(gpu)) = (samples.first_mut(), loaded.gpus.get(index)) {
                merge_health(first, gpu.known.health_last.as_ref());
            }
            report.devices.extend(samples.into_iter().map(|mut s| {
                s.health.xid_errors = loaded.xids.of(&s.identity.uuid);
                s
            }));
        }
        // Only on a cycle that read the device list: a failed count says nothing of who left.
        if report.completed {
            success &= loaded
                .roster
                .complete(&mut report.devices, &mut report.call_errors);
        }
        // DCGM's values on the devices without GPM; never a reason for `success` to fail.
        if let Some(d) = self.dcgm.as_mut() {
            d.merge(&mut report.devices, deadline, &mut report.call_errors);
        }
        report.success = success;
        report
    }
}

/// A device's samples, marked down for not answering in time.
fn timed_out(mut samples: Vec<DeviceSample>) -> Vec<DeviceSample> {
    for s in &mut samples {
        s.down = Some(DeviceDown::TimedOut);
    }
    samples
}

/// Puts the last health read into a device's sample (the worker's own clock event reasons
/// kept). A device that failed reports no values at all; one that did not answer in time keeps
/// its last values, health included.
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
            down: Some(DeviceDown::Failed(ErrorLabel::Driver("GPU_IS_LOST"))),
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

    fn answer(uuid: &str, down: Option<DeviceDown>) -> Vec<DeviceSample> {
        vec![DeviceSample {
            identity: DeviceIdentity {
                uuid: uuid.into(),
                ..DeviceIdentity::default()
            },
            down,
            ..DeviceSample::default()
        }]
    }

    #[test]
    fn answers_note_a_changed_uuid_and_a_device_that_came_back() {
        let mut facts = GpuFacts::default();
        let noted = facts.accept(0, &answer("GPU-a", None));
        assert!(!noted.reenumerate && !noted.rearm);
        let lost = Some(DeviceDown::Failed(ErrorLabel::Driver("GPU_IS_LOST")));
        let noted = facts.accept(0, &answer("", lost));
        assert!(!noted.reenumerate && !noted.rearm);
        let noted = facts.accept(0, &answer("GPU-a", None));
        assert!(
            noted.rearm,
            "back after failing: registered for events again"
        );
        assert!(facts.accept(0, &answer("GPU-b", None)).reenumerate);
        let read = HealthRead {
            health: None,
            uuid: Some("GPU-c".into()),
        };
        assert!(
            facts.accept_health(0, &read),
            "a swap seen on the health tier"
        );
        assert_eq!(
            facts.health_last, None,
            "a failed read leaves the last one standing"
        );
    }
}
