//! The snapshot: one immutable, complete view of the node that every scrape encodes, rebuilt
//! whenever a collector reports (and on a timer, so that a hung collector shows as down).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::attribute;
use crate::attribute::names::NodeNames;
use crate::attribute::podresources::KubeletView;
use crate::collect::{CollectorState, Hub};
use crate::paths::HostPaths;
use crate::pod::{Failure, PodSample, Unattributed};
use crate::sample::{CallError, DeviceDown, DeviceSample};
use crate::selfstats::{self, SelfStats};

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
    /// Every enabled collector has completed at least one cycle.
    pub ready: bool,
}

impl Snapshot {
    /// Builds a snapshot from the hub's view at `now`. A collector whose cycle has run longer
    /// than `interval` is hung: it is reported failed, and its devices down with their last values.
    pub fn build(
        view: &BTreeMap<&'static str, CollectorState>,
        now: Instant,
        interval: Duration,
        process: Option<SelfStats>,
    ) -> Snapshot {
        let mut snap = Snapshot {
            process,
            ready: view.values().all(|c| c.cycles > 0),
            ..Snapshot::default()
        };
        for (name, state) in view {
            let hung = state
                .running_since
                .is_some_and(|since| now.saturating_duration_since(since) > interval);
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

/// The latest kubelet view, however it is obtained (the pod-resources client, or a test).
pub type KubeletSource = Box<dyn Fn() -> Arc<KubeletView> + Send>;

/// The attribution stage: reruns the rules when a collector has reported or the kubelet's view
/// has changed, and keeps the failure counts.
struct Attributor {
    paths: HostPaths,
    kubelet: KubeletSource,
    /// (collector cycles, kubelet fetch time) of the last pass.
    last_inputs: Option<(u64, Option<std::time::SystemTime>)>,
    pods: Vec<PodSample>,
    unattributed: Vec<Unattributed>,
    failures: BTreeMap<Failure, u64>,
    /// The DRA claim devices that matched no device in the last pass (logged when new).
    unknown_claim_devices: BTreeSet<String>,
}

impl Attributor {
    fn new(paths: HostPaths, kubelet: KubeletSource) -> Self {
        Attributor {
            paths,
            kubelet,
            last_inputs: None,
            pods: Vec::new(),
            unattributed: Vec::new(),
            failures: Failure::ALL.iter().map(|f| (*f, 0)).collect(),
            unknown_claim_devices: BTreeSet::new(),
        }
    }

    fn apply(&mut self, snap: &mut Snapshot, cycles: u64) {
        let kubelet = (self.kubelet)();
        let inputs = (cycles, kubelet.fetched_at);
        // Before every collector has reported, allocations would find no devices to match.
        if snap.ready && self.last_inputs != Some(inputs) {
            let names = NodeNames::read(&self.paths.pod_logs, &self.paths.container_logs);
            let (kubelet, unknown_claim_devices) = self.with_claims(&snap.devices, kubelet);
            let result = attribute::attribute(&snap.devices, &self.paths.procfs, &names, &kubelet);
            for f in result.failures {
                *self.failures.entry(f).or_insert(0) += 1;
            }
            *self.failures.entry(Failure::DeviceUnknown).or_insert(0) += unknown_claim_devices;
            self.pods = result.pods;
            self.unattributed = result.unattributed;
            self.last_inputs = Some(inputs);
        }
        snap.pods.clone_from(&self.pods);
        snap.unattributed.clone_from(&self.unattributed);
        snap.attribution_failures.clone_from(&self.failures);
    }

    /// The kubelet's view with its DRA claims joined to the devices (`attribute::dra`) and added
    /// to its allocations, and how many GPU claim devices matched none. A device that has not
    /// answered yet has no UUID to match, so nothing is unknown until every device has one; an
    /// unknown device is logged once, when it first shows up.
    fn with_claims(
        &mut self,
        devices: &[DeviceSample],
        kubelet: Arc<KubeletView>,
    ) -> (Arc<KubeletView>, u64) {
        if kubelet.claims.is_empty() {
            self.unknown_claim_devices.clear();
            return (kubelet, 0);
        }
        let joined = attribute::dra::join(
            &kubelet.claims,
            devices,
            &self.paths.procfs,
            &self.paths.sysfs,
        );
        let mut unknown = 0;
        if devices.iter().all(|d| !d.identity.uuid.is_empty()) {
            let now: BTreeSet<String> = joined.unknown.iter().cloned().collect();
            for d in now.difference(&self.unknown_claim_devices) {
                tracing::warn!(device = %d, "a DRA claim names a GPU that matches no device on this node; counted as device_unknown");
            }
            self.unknown_claim_devices = now;
            unknown = joined.unknown.len() as u64;
        }
        if joined.allocations.is_empty() {
            return (kubelet, unknown);
        }
        let mut view = KubeletView::clone(&kubelet);
        view.allocations.extend(joined.allocations);
        (Arc::new(view), unknown)
    }
}

/// Rebuilds the snapshot whenever a collector reports, and every `interval / 4` while a
/// collector's cycle runs past `interval` (so that a hung collector is noticed within a quarter
/// interval), until the hub stops nudging. A tick that finds every collector on time changes
/// nothing and costs a lock, not a rebuild: on a quiet node the rebuilds were most of the
/// stage's CPU (docs/benchmarks.md).
pub fn spawn_publisher(
    hub: Arc<Hub>,
    nudges: Receiver<()>,
    store: Arc<SnapshotStore>,
    interval: Duration,
    paths: HostPaths,
    kubelet: KubeletSource,
) -> std::io::Result<thread::JoinHandle<()>> {
    let tick = (interval / 4).max(Duration::from_millis(50));
    let mut attributor = Attributor::new(paths, kubelet);
    thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || {
            let mut rebuild = true;
            loop {
                if rebuild {
                    let view = hub.view();
                    let cycles = view.values().map(|c| c.cycles).sum();
                    let mut snap =
                        Snapshot::build(&view, Instant::now(), interval, selfstats::read());
                    attributor.apply(&mut snap, cycles);
                    store.store(snap);
                }
                match nudges.recv_timeout(tick) {
                    Ok(()) => {
                        // Coalesce a burst of nudges into one rebuild.
                        while nudges.try_recv().is_ok() {}
                        rebuild = true;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        rebuild = hub.running_past(Instant::now(), interval);
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

    fn state_with(dev_up: bool, running_since: Option<Instant>) -> CollectorState {
        let dev = DeviceSample {
            down: (!dev_up).then_some(DeviceDown::Failed(ErrorLabel::Driver("GPU_IS_LOST"))),
            ..DeviceSample::default()
        };
        CollectorState {
            last: Some(VendorReport {
                success: true,
                devices: vec![dev],
                ..VendorReport::default()
            }),
            running_since,
            cycles: 1,
            ..CollectorState::default()
        }
    }

    #[test]
    fn a_cycle_running_past_the_interval_marks_the_collector_failed_and_devices_down() {
        let now = Instant::now();
        let interval = Duration::from_secs(1);
        let mut view = BTreeMap::new();
        view.insert(
            "nvidia",
            state_with(true, now.checked_sub(Duration::from_secs(2))),
        );
        let snap = Snapshot::build(&view, now, interval, None);
        assert!(!snap.collectors[0].success);
        assert_eq!(snap.devices[0].down, Some(DeviceDown::TimedOut));

        view.insert("nvidia", state_with(true, Some(now)));
        let snap = Snapshot::build(&view, now, interval, None);
        assert!(snap.collectors[0].success);
        assert!(snap.devices[0].up());
        assert!(snap.ready);
    }

    #[test]
    fn not_ready_until_every_collector_reported() {
        let mut view = BTreeMap::new();
        view.insert("nvidia", state_with(true, None));
        view.insert("amd", CollectorState::default());
        assert!(!Snapshot::build(&view, Instant::now(), Duration::from_secs(1), None).ready);
    }
}
