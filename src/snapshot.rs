//! The snapshot: one immutable, complete view of the node that every scrape encodes, rebuilt
//! whenever a collector reports (and on a timer, so that a hung collector shows as down).

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::attribute::stage::{Attributed, Attributor, KubeletSource};
use crate::collect::{CollectorState, Hub};
use crate::paths::HostPaths;
use crate::pod::{Failure, PodSample, Unattributed};
use crate::sample::{CallError, DeviceDown, DeviceSample};
use crate::selfstats::{self, SelfStats};
use crate::timing::Timing;

/// How one collector did in its last cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorSummary {
    pub name: &'static str,
    pub success: bool,
    pub duration_seconds: f64,
}

/// Everything a scrape shows. Built whole, swapped whole, never changed in place.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every device of every collector, in collector then device order.
    pub devices: Vec<DeviceSample>,
    pub collectors: Vec<CollectorSummary>,
    /// Failed driver calls since start: (collector, call and error, count).
    pub call_errors: Vec<(&'static str, CallError, u64)>,
    /// Per-pod series: one entry per (container, device).
    pub pods: Vec<PodSample>,
    /// Per device: the processes no pod series carries, and their memory.
    pub unattributed: Vec<Unattributed>,
    /// Attribution failures since start, every reason present (0 until it happens).
    pub attribution_failures: BTreeMap<Failure, u64>,
    /// The agent's own figures, when `/proc/self` could be read.
    pub process: Option<SelfStats>,
    /// Every enabled collector has loaded its library and completed a cycle (see
    /// `CollectorState::ready`), whatever its devices answered: what `/readyz` answers.
    pub ready: bool,
    /// When this snapshot was built (`None` for the empty one before the first build).
    pub built_at: Option<Instant>,
    /// `--collect.interval`: a snapshot is normally rebuilt at least this often.
    pub interval: Duration,
    /// How long the last attribution pass took (`None` before the first).
    pub attribution_seconds: Option<f64>,
    /// The kubelet's pod-resources API answered the agent's last poll (`None` before the
    /// first attribution pass).
    pub kubelet_up: Option<bool>,
}

impl Snapshot {
    /// Builds a snapshot from the hub's view at `now`. A collector whose cycle has run longer
    /// than [`Timing::hung_after`] is hung: it is reported failed, and its devices down with
    /// their last values.
    pub fn build(
        view: &BTreeMap<&'static str, CollectorState>,
        now: Instant,
        timing: Timing,
        process: Option<SelfStats>,
    ) -> Snapshot {
        let mut snap = Snapshot {
            process,
            ready: view.values().all(|c| c.ready),
            built_at: Some(now),
            interval: timing.interval(),
            ..Snapshot::default()
        };
        for (name, state) in view {
            let hung = state.hung(now, timing);
            if let Some(last) = &state.last {
                snap.collectors.push(CollectorSummary {
                    name,
                    success: last.success && !hung,
                    duration_seconds: last.duration.as_secs_f64(),
                });
                snap.devices
                    .extend(last.devices.iter().cloned().map(|mut d| {
                        if hung && d.down.is_none() {
                            d.down = Some(DeviceDown::TimedOut);
                        }
                        d
                    }));
            } else if hung {
                // Hung in its very first cycle (e.g. a driver that blocks in init).
                snap.collectors.push(CollectorSummary {
                    name,
                    success: false,
                    duration_seconds: state
                        .running_since
                        .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64()),
                });
            }
            snap.call_errors.extend(
                state
                    .call_errors
                    .iter()
                    .map(|(e, n)| (*name, e.clone(), *n)),
            );
        }
        snap
    }

    /// Takes the attribution stage's results.
    fn attributed(&mut self, a: Attributed) {
        self.pods = a.pods;
        self.unattributed = a.unattributed;
        self.attribution_failures = a.failures;
        self.attribution_seconds = a.seconds;
        self.kubelet_up = Some(a.kubelet_up);
    }
}

/// Holds the current snapshot. Readers take an `Arc` and never wait for a writer for longer
/// than a pointer swap.
#[derive(Debug, Default)]
pub struct SnapshotStore {
    current: RwLock<Arc<Snapshot>>,
}

impl SnapshotStore {
    pub fn load(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .map(|g| Arc::clone(&g))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    pub fn store(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        match self.current.write() {
            Ok(mut g) => *g = snap,
            Err(p) => *p.into_inner() = snap,
        }
    }
}

/// Rebuilds the snapshot whenever a collector reports, and every [`Timing::publisher_tick`]
/// (¼ interval) while a collector's cycle runs past [`Timing::hung_after`] (so that a hung
/// collector is noticed within a quarter interval), until the hub stops nudging. A tick that
/// finds every collector on time changes nothing and costs a lock, not a rebuild: on a quiet
/// node the rebuilds were most of the stage's CPU (docs/benchmarks.md).
pub fn spawn_publisher(
    hub: Arc<Hub>,
    nudges: Receiver<()>,
    store: Arc<SnapshotStore>,
    timing: Timing,
    paths: HostPaths,
    kubelet: KubeletSource,
) -> std::io::Result<thread::JoinHandle<()>> {
    let tick = timing.publisher_tick();
    let mut attributor = Attributor::new(paths, kubelet, timing);
    thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || {
            let mut rebuild = true;
            loop {
                if rebuild {
                    let view = hub.view();
                    let cycles = view.iter().map(|(name, c)| (*name, c.cycles)).collect();
                    let mut snap =
                        Snapshot::build(&view, Instant::now(), timing, selfstats::read());
                    let attributed = attributor.apply(&snap.devices, cycles);
                    snap.attributed(attributed);
                    store.store(snap);
                }
                match nudges.recv_timeout(tick) {
                    Ok(()) => {
                        // Coalesce a burst of nudges into one rebuild.
                        while nudges.try_recv().is_ok() {}
                        rebuild = true;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        rebuild = hub.running_past(Instant::now(), timing);
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{ErrorLabel, VendorReport};

    fn one_second() -> Timing {
        Timing::new(Duration::from_secs(1), Duration::from_secs(1))
    }

    fn state_with(dev_up: bool, running_since: Option<Instant>) -> CollectorState {
        let dev = DeviceSample {
            down: (!dev_up).then_some(DeviceDown::Failed(ErrorLabel::Driver("GPU_IS_LOST"))),
            ..DeviceSample::default()
        };
        CollectorState {
            last: Some(VendorReport {
                success: dev_up,
                completed: true,
                devices: vec![dev],
                ..VendorReport::default()
            }),
            running_since,
            cycles: 1,
            ready: true,
            ..CollectorState::default()
        }
    }

    #[test]
    fn a_cycle_running_past_the_interval_marks_the_collector_failed_and_devices_down() {
        let now = Instant::now();
        let timing = one_second();
        let mut view = BTreeMap::new();
        view.insert(
            "nvidia",
            state_with(true, now.checked_sub(Duration::from_secs(2))),
        );
        let snap = Snapshot::build(&view, now, timing, None);
        assert!(!snap.collectors[0].success);
        assert_eq!(snap.devices[0].down, Some(DeviceDown::TimedOut));

        view.insert("nvidia", state_with(true, Some(now)));
        let snap = Snapshot::build(&view, now, timing, None);
        assert!(snap.collectors[0].success);
        assert!(snap.devices[0].up());
        assert!(snap.ready);
    }

    #[test]
    fn not_ready_until_every_collector_reported() {
        let mut view = BTreeMap::new();
        view.insert("nvidia", state_with(true, None));
        view.insert("amd", CollectorState::default());
        assert!(!Snapshot::build(&view, Instant::now(), one_second(), None).ready);
    }

    /// A cycle without the library (NVML missing, `nvmlInit` failing) completes nothing.
    #[test]
    fn not_ready_while_a_collector_has_never_loaded_its_library() {
        let mut view = BTreeMap::new();
        view.insert("amd", state_with(true, None));
        let failing = CollectorState {
            last: Some(VendorReport::default()),
            cycles: 5,
            ready: false,
            ..CollectorState::default()
        };
        view.insert("nvidia", failing);
        assert!(!Snapshot::build(&view, Instant::now(), one_second(), None).ready);
    }

    /// A dead GPU is `gpu_up 0` and a failed collector cycle, never an unready agent: a rollout
    /// must not stop on the node that most needs watching.
    #[test]
    fn ready_with_every_device_down() {
        let mut view = BTreeMap::new();
        view.insert("nvidia", state_with(false, None));
        let snap = Snapshot::build(&view, Instant::now(), one_second(), None);
        assert!(snap.ready);
        assert!(!snap.devices[0].up());
    }
}
