//! The snapshot: one immutable, complete view of the node that every scrape encodes, rebuilt
//! whenever a collector reports (and on a timer, so that a hung collector shows as down).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

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
    /// than `interval` is hung: it is reported failed, and its devices down with their last values.
    pub fn build(
        view: &BTreeMap<&'static str, CollectorState>,
        now: Instant,
        interval: Duration,
        process: Option<SelfStats>,
    ) -> Snapshot {
        let mut snap = Snapshot {
            process,
            ready: view.values().all(|c| c.ready),
            built_at: Some(now),
            interval,
            ..Snapshot::default()
        };
        for (name, state) in view {
            let hung = state.hung(now, interval);
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

/// The attribution stage: reruns the rules once per round of collector reports (or when the
/// kubelet's view has changed), and keeps the failure counts.
struct Attributor {
    paths: HostPaths,
    kubelet: KubeletSource,
    interval: Duration,
    /// Each collector's completed cycles at the last pass.
    last_cycles: BTreeMap<&'static str, u64>,
    /// The kubelet view's fetch time at the last pass.
    last_kubelet: Option<Option<SystemTime>>,
    /// When the last pass ran, and how long it took.
    last_pass: Option<(Instant, Duration)>,
    /// Passes run since start (for tests).
    passes: u64,
    pods: Vec<PodSample>,
    unattributed: Vec<Unattributed>,
    failures: BTreeMap<Failure, u64>,
    /// Says so in the log when a failure reason's count grows, at most once per reason per
    /// [`FAILURE_LOG_EVERY`].
    failure_log: FailureLog,
    /// The DRA claim devices that matched no device in the last pass (logged when new).
    unknown_claim_devices: BTreeSet<String>,
}

impl Attributor {
    fn new(paths: HostPaths, kubelet: KubeletSource, interval: Duration) -> Self {
        Attributor {
            paths,
            kubelet,
            interval,
            last_cycles: BTreeMap::new(),
            last_kubelet: None,
            last_pass: None,
            passes: 0,
            pods: Vec::new(),
            unattributed: Vec::new(),
            failures: Failure::ALL.iter().map(|f| (*f, 0)).collect(),
            failure_log: FailureLog::default(),
            unknown_claim_devices: BTreeSet::new(),
        }
    }

    /// Whether the inputs call for a new pass: the kubelet's view changed, or every collector
    /// has reported since the last pass, or some has and the others are late by half an
    /// interval (a hung collector must not hold back the others' pods). Collectors report
    /// once per interval each, so this is one pass per interval, not one per report.
    fn due(
        &self,
        cycles: &BTreeMap<&'static str, u64>,
        kubelet_at: Option<SystemTime>,
        now: Instant,
    ) -> bool {
        let Some((last, _)) = self.last_pass else {
            return true;
        };
        if self.last_kubelet != Some(kubelet_at) {
            return true;
        }
        let advanced = cycles
            .iter()
            .filter(|(name, n)| self.last_cycles.get(*name) != Some(*n))
            .count();
        advanced > 0
            && (advanced == cycles.len()
                || now.saturating_duration_since(last) >= self.interval + self.interval / 2)
    }

    fn apply(&mut self, snap: &mut Snapshot, cycles: BTreeMap<&'static str, u64>) {
        let kubelet = (self.kubelet)();
        let kubelet_up = kubelet.available;
        let now = Instant::now();
        // Before every collector has reported, allocations would find no devices to match. A
        // report, not a successful one: a failing collector must not hide the others' pods.
        let reported = cycles.values().all(|n| *n > 0);
        if reported && self.due(&cycles, kubelet.fetched_at, now) {
            self.last_kubelet = Some(kubelet.fetched_at);
            let names = NodeNames::read(&self.paths.pod_logs, &self.paths.container_logs);
            let (kubelet, unknown_claim_devices) = self.with_claims(&snap.devices, kubelet);
            let result = attribute::attribute(&snap.devices, &self.paths.procfs, &names, &kubelet);
            for f in result.failures {
                *self.failures.entry(f).or_insert(0) += 1;
            }
            *self.failures.entry(Failure::DeviceUnknown).or_insert(0) += unknown_claim_devices;
            self.failure_log.note(&self.failures, &self.paths, now);
            self.pods = result.pods;
            self.unattributed = result.unattributed;
            self.last_cycles = cycles;
            self.last_pass = Some((now, now.elapsed()));
            self.passes += 1;
        }
        snap.pods.clone_from(&self.pods);
        snap.unattributed.clone_from(&self.unattributed);
        snap.attribution_failures.clone_from(&self.failures);
        snap.attribution_seconds = self.last_pass.map(|(_, took)| took.as_secs_f64());
        snap.kubelet_up = Some(kubelet_up);
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

/// How often, at most, one attribution failure reason is logged.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(600);

/// Logs attribution failures as they start: the first failure of a reason at once, then at most
/// one line per reason per [`FAILURE_LOG_EVERY`], with how many happened since the last line.
/// The counter series carries every one; the log says what to look at.
#[derive(Debug, Default)]
struct FailureLog {
    /// Per reason: when it was last logged, and its count then.
    logged: BTreeMap<Failure, (Instant, u64)>,
}

impl FailureLog {
    fn note(&mut self, counts: &BTreeMap<Failure, u64>, paths: &HostPaths, now: Instant) {
        for (&reason, &total) in counts {
            let (at, then) = self.logged.get(&reason).copied().unwrap_or((now, 0));
            let quiet = self.logged.contains_key(&reason)
                && now.saturating_duration_since(at) < FAILURE_LOG_EVERY;
            if total == then || quiet {
                continue;
            }
            let hint = match reason {
                Failure::ProcessVanished => "processes exited before their cgroup could be read; usual under churn".to_string(),
                Failure::CgroupUnreadable => format!(
                    "cannot read {}/<pid>/cgroup: the agent needs the host's pids (hostPID) and read access to its procfs",
                    paths.procfs.display()
                ),
                Failure::CgroupMalformed => "a process's cgroup file could not be parsed".to_string(),
                Failure::PodUnknown => format!(
                    "a GPU process's pod has no folder in {}: is it mounted and readable?",
                    paths.pod_logs.display()
                ),
                Failure::ContainerUnknown => format!(
                    "a GPU process's container is named by no link in {}: is it mounted and readable?",
                    paths.container_logs.display()
                ),
                Failure::DeviceUnknown => "a kubelet allocation names a device ID that matches no device on this node".to_string(),
            };
            let new = total - then;
            if reason == Failure::ProcessVanished {
                tracing::info!(
                    reason = reason.label(),
                    new,
                    total,
                    "attribution failures: {hint}"
                );
            } else {
                tracing::warn!(
                    reason = reason.label(),
                    new,
                    total,
                    "attribution failures: {hint}"
                );
            }
            self.logged.insert(reason, (now, total));
        }
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
    let mut attributor = Attributor::new(paths, kubelet, interval);
    thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || {
            let mut rebuild = true;
            loop {
                if rebuild {
                    let view = hub.view();
                    let cycles = view.iter().map(|(name, c)| (*name, c.cycles)).collect();
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
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
        assert!(!Snapshot::build(&view, Instant::now(), Duration::from_secs(1), None).ready);
    }

    /// A dead GPU is `gpu_up 0` and a failed collector cycle, never an unready agent: a rollout
    /// must not stop on the node that most needs watching.
    #[test]
    fn ready_with_every_device_down() {
        let mut view = BTreeMap::new();
        view.insert("nvidia", state_with(false, None));
        let snap = Snapshot::build(&view, Instant::now(), Duration::from_secs(1), None);
        assert!(snap.ready);
        assert!(!snap.devices[0].up());
    }

    /// An attributor over an empty host tree (kept while the returned folder lives) and an
    /// empty kubelet view.
    fn attributor(interval: Duration) -> (tempfile::TempDir, Attributor) {
        let root = tempfile::tempdir().unwrap();
        let paths = HostPaths::new(root.path(), None, None, None);
        let view = Arc::new(KubeletView::default());
        let a = Attributor::new(paths, Box::new(move || Arc::clone(&view)), interval);
        (root, a)
    }

    /// A snapshot that every collector has sampled successfully.
    fn ready() -> Snapshot {
        Snapshot {
            ready: true,
            ..Snapshot::default()
        }
    }

    /// Two collectors reporting one after the other make one attribution pass, not two
    /// (issue 15 saw one per report, the AMD collector's empty one included).
    #[test]
    fn attribution_runs_once_per_round_of_reports() {
        let (_root, mut a) = attributor(Duration::from_secs(60));
        let round = |amd: u64, nvidia: u64| BTreeMap::from([("amd", amd), ("nvidia", nvidia)]);
        a.apply(&mut ready(), round(1, 1));
        assert_eq!(a.passes, 1);
        // AMD reports; NVIDIA has not yet: no pass.
        a.apply(&mut ready(), round(2, 1));
        assert_eq!(a.passes, 1);
        // The timer rebuild between reports: no pass.
        a.apply(&mut ready(), round(2, 1));
        assert_eq!(a.passes, 1);
        // NVIDIA reports too: one pass for the round.
        let mut snap = ready();
        a.apply(&mut snap, round(2, 2));
        assert_eq!(a.passes, 2);
        assert!(snap.attribution_seconds.is_some());
        // Nothing new: no pass.
        a.apply(&mut ready(), round(2, 2));
        assert_eq!(a.passes, 2);
    }

    #[test]
    fn a_collector_late_by_half_an_interval_does_not_hold_back_attribution() {
        let interval = Duration::from_millis(200);
        let (_root, mut a) = attributor(interval);
        a.apply(&mut ready(), BTreeMap::from([("amd", 1), ("nvidia", 1)]));
        std::thread::sleep(interval * 2);
        a.apply(&mut ready(), BTreeMap::from([("amd", 2), ("nvidia", 1)]));
        assert_eq!(a.passes, 2);
    }

    /// Readiness waits for a completed cycle; attribution only for a report, so a failing
    /// collector (NVML missing) does not hide the other collector's pods.
    #[test]
    fn attribution_does_not_wait_for_readiness() {
        let (_root, mut a) = attributor(Duration::from_secs(1));
        let mut unready = Snapshot::default();
        a.apply(&mut unready, BTreeMap::from([("amd", 1), ("nvidia", 0)]));
        assert_eq!(a.passes, 0, "a collector has not reported yet");
        a.apply(&mut unready, BTreeMap::from([("amd", 1), ("nvidia", 1)]));
        assert_eq!(a.passes, 1);
    }
}
