//! The attribution stage: when a pass is due, the kubelet view it reads (and how long a silent
//! kubelet's last answer stands), the DRA join and its log-once, the failure counts and their
//! hints. It runs in the snapshot's publisher thread; the rules it applies are `attribute`'s
//! (docs/attribution.md), and what it computes goes back to the snapshot as an [`Attributed`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::names::NodeNames;
use super::podresources::KubeletView;
use crate::paths::HostPaths;
use crate::pod::{Failure, PodSample, Unattributed};
use crate::sample::DeviceSample;
use crate::timing::Timing;

/// The kubelet's latest view, however it is obtained (the pod-resources client, or a test).
/// The stage ages it ([`aged`]): a source hands over whatever it last heard.
pub type KubeletSource = Box<dyn Fn() -> Arc<KubeletView> + Send>;

/// What the stage computed for one snapshot: the last pass's results and the counts since
/// start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributed {
    /// Per-pod series: one entry per (container, device).
    pub pods: Vec<PodSample>,
    /// Per device: the processes no pod series carries, and their memory.
    pub unattributed: Vec<Unattributed>,
    /// Attribution failures since start, every reason present (0 until it happens).
    pub failures: BTreeMap<Failure, u64>,
    /// How long the last pass took (`None` before the first).
    pub seconds: Option<f64>,
    /// The kubelet's pod-resources API answered the last poll.
    pub kubelet_up: bool,
}

/// The attribution stage: reruns the rules once per round of collector reports (or when the
/// kubelet's view has changed), and keeps the failure counts.
pub struct Attributor {
    paths: HostPaths,
    kubelet: KubeletSource,
    timing: Timing,
    /// What a kubelet view too old to use is replaced with.
    empty: Arc<KubeletView>,
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
    pub fn new(paths: HostPaths, kubelet: KubeletSource, timing: Timing) -> Self {
        Attributor {
            paths,
            kubelet,
            timing,
            empty: Arc::new(KubeletView::default()),
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
    /// has reported since the last pass, or some has and the others are late
    /// ([`Timing::attribution_late`]: by half an interval; a hung collector must not hold back the others' pods). Collectors report
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
                || now.saturating_duration_since(last) >= self.timing.attribution_late())
    }

    /// Runs a pass when one is due (every collector has reported at least once, and
    /// [`due`](Self::due) says so) over `devices`, the snapshot's, and returns what the last pass
    /// found. `cycles` is each collector's completed cycles.
    pub fn apply(
        &mut self,
        devices: &[DeviceSample],
        cycles: BTreeMap<&'static str, u64>,
    ) -> Attributed {
        let kubelet = aged(
            (self.kubelet)(),
            &self.empty,
            self.timing.kubelet_keep(),
            SystemTime::now(),
        );
        let kubelet_up = kubelet.available;
        let now = Instant::now();
        // Before every collector has reported, allocations would find no devices to match. A
        // report, not a successful one: a failing collector must not hide the others' pods.
        let reported = cycles.values().all(|n| *n > 0);
        if reported && self.due(&cycles, kubelet.fetched_at, now) {
            self.last_kubelet = Some(kubelet.fetched_at);
            let names = NodeNames::read(&self.paths.pod_logs, &self.paths.container_logs);
            let (kubelet, unknown_claim_devices) = self.with_claims(devices, kubelet);
            let result = super::attribute(devices, &self.paths.procfs, &names, &kubelet);
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
        Attributed {
            pods: self.pods.clone(),
            unattributed: self.unattributed.clone(),
            failures: self.failures.clone(),
            seconds: self.last_pass.map(|(_, took)| took.as_secs_f64()),
            kubelet_up,
        }
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
        let joined = super::dra::join(
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
    /// Logs the reasons whose counts grew and are not quiet at `now`; returns them.
    fn note(
        &mut self,
        counts: &BTreeMap<Failure, u64>,
        paths: &HostPaths,
        now: Instant,
    ) -> Vec<Failure> {
        let mut logged = Vec::new();
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
            logged.push(reason);
        }
        logged
    }
}

/// The kubelet's view as a pass takes it at `now`: while the kubelet answers, its latest; while
/// it does not, its last answer for `keep` ([`Timing::kubelet_keep`]) after it was fetched, then
/// `empty`, so that deleted pods do not linger. A view never fetched, or fetched "after" `now`
/// (the wall clock went back), is too old.
fn aged(
    view: Arc<KubeletView>,
    empty: &Arc<KubeletView>,
    keep: Duration,
    now: SystemTime,
) -> Arc<KubeletView> {
    let stale = !view.available
        && view
            .fetched_at
            .and_then(|t| now.duration_since(t).ok())
            .is_none_or(|age| age > keep);
    if stale {
        Arc::clone(empty)
    } else {
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::podresources::{ClaimDevice, ContainerClaim, ContainerDevices};
    use crate::sample::DeviceIdentity;

    /// An attributor over an empty host tree (kept while the returned folder lives) and the
    /// kubelet view `view`.
    fn attributor_with(interval: Duration, view: KubeletView) -> (tempfile::TempDir, Attributor) {
        let root = tempfile::tempdir().unwrap();
        let paths = HostPaths::new(root.path(), None, None, None);
        let view = Arc::new(view);
        let timing = Timing::new(interval, interval);
        let a = Attributor::new(paths, Box::new(move || Arc::clone(&view)), timing);
        (root, a)
    }

    fn attributor(interval: Duration) -> (tempfile::TempDir, Attributor) {
        attributor_with(interval, KubeletView::default())
    }

    /// Two collectors reporting one after the other make one attribution pass, not two (not one
    /// per report, the AMD collector's empty one included).
    #[test]
    fn attribution_runs_once_per_round_of_reports() {
        let (_root, mut a) = attributor(Duration::from_secs(60));
        let round = |amd: u64, nvidia: u64| BTreeMap::from([("amd", amd), ("nvidia", nvidia)]);
        a.apply(&[], round(1, 1));
        assert_eq!(a.passes, 1);
        // AMD reports; NVIDIA has not yet: no pass.
        a.apply(&[], round(2, 1));
        assert_eq!(a.passes, 1);
        // The timer rebuild between reports: no pass.
        a.apply(&[], round(2, 1));
        assert_eq!(a.passes, 1);
        // NVIDIA reports too: one pass for the round.
        let out = a.apply(&[], round(2, 2));
        assert_eq!(a.passes, 2);
        assert!(out.seconds.is_some());
        // Nothing new: no pass.
        a.apply(&[], round(2, 2));
        assert_eq!(a.passes, 2);
    }

    #[test]
    fn a_collector_late_by_half_an_interval_does_not_hold_back_attribution() {
        let interval = Duration::from_millis(200);
        let (_root, mut a) = attributor(interval);
        a.apply(&[], BTreeMap::from([("amd", 1), ("nvidia", 1)]));
        std::thread::sleep(interval * 2);
        a.apply(&[], BTreeMap::from([("amd", 2), ("nvidia", 1)]));
        assert_eq!(a.passes, 2);
    }

    /// Readiness waits for a completed cycle; attribution only for a report, so a failing
    /// collector (NVML missing) does not hide the other collector's pods.
    #[test]
    fn attribution_does_not_wait_for_readiness() {
        let (_root, mut a) = attributor(Duration::from_secs(1));
        let out = a.apply(&[], BTreeMap::from([("amd", 1), ("nvidia", 0)]));
        assert_eq!(a.passes, 0, "a collector has not reported yet");
        assert_eq!(out.seconds, None);
        a.apply(&[], BTreeMap::from([("amd", 1), ("nvidia", 1)]));
        assert_eq!(a.passes, 1);
    }

    const S: Duration = Duration::from_secs(1);

    fn view(available: bool, fetched_at: Option<SystemTime>) -> Arc<KubeletView> {
        Arc::new(KubeletView {
            available,
            fetched_at,
            ..KubeletView::default()
        })
    }

    /// A silent kubelet's last answer stands for `keep` after it was fetched, then goes; a
    /// kubelet that answers is used whatever its answer's age.
    #[test]
    fn a_silent_kubelets_view_stands_for_its_keep_then_goes() {
        let empty = Arc::new(KubeletView::default());
        let now = SystemTime::now();
        let keep = 30 * S;
        let at = |age: Duration| Some(now - age);
        let is_empty = |v: &Arc<KubeletView>| Arc::ptr_eq(v, &empty);
        assert!(!is_empty(&aged(view(true, at(600 * S)), &empty, keep, now)));
        assert!(!is_empty(&aged(view(false, at(29 * S)), &empty, keep, now)));
        assert!(!is_empty(&aged(view(false, at(30 * S)), &empty, keep, now)));
        assert!(is_empty(&aged(view(false, at(31 * S)), &empty, keep, now)));
        assert!(is_empty(&aged(view(false, None), &empty, keep, now)));
        assert!(
            is_empty(&aged(view(false, Some(now + S)), &empty, keep, now)),
            "fetched in the future: the clock went back, the age is unknown"
        );
    }

    /// The stage ages the view with the interval's keep: at 1 s, 30 s; at 10 s, 60 s.
    #[test]
    fn the_stage_keeps_a_silent_kubelets_view_for_six_intervals_or_30_s() {
        let stale = |interval: Duration, age: Duration| {
            let v = KubeletView {
                available: false,
                fetched_at: Some(SystemTime::now() - age),
                allocations: vec![ContainerDevices {
                    namespace: "ns".into(),
                    pod: "p".into(),
                    container: "c".into(),
                    resource_name: "nvidia.com/gpu".into(),
                    device_ids: vec!["GPU-0000beef".into()],
                }],
                ..KubeletView::default()
            };
            let (_root, a) = attributor_with(interval, v);
            let seen = aged(
                (a.kubelet)(),
                &a.empty,
                a.timing.kubelet_keep(),
                SystemTime::now(),
            );
            seen.allocations.is_empty()
        };
        assert!(!stale(S, 25 * S));
        assert!(stale(S, 35 * S));
        assert!(!stale(10 * S, 55 * S));
        assert!(stale(10 * S, 65 * S));
    }

    #[test]
    fn kubelet_up_is_what_the_kubelet_last_said() {
        let (_root, mut a) = attributor_with(S, (*view(true, Some(SystemTime::now()))).clone());
        assert!(a.apply(&[], BTreeMap::from([("nvidia", 1)])).kubelet_up);
        let (_root, mut a) = attributor(S);
        assert!(!a.apply(&[], BTreeMap::from([("nvidia", 1)])).kubelet_up);
    }

    /// Every reason is counted from 0; a reason is logged at its first failure, then at most
    /// once per `FAILURE_LOG_EVERY`, and not while its count stands still.
    #[test]
    fn a_failure_reason_is_logged_at_once_then_at_most_every_ten_minutes() {
        let root = tempfile::tempdir().unwrap();
        let paths = HostPaths::new(root.path(), None, None, None);
        let mut log = FailureLog::default();
        let mut counts: BTreeMap<Failure, u64> = Failure::ALL.iter().map(|f| (*f, 0)).collect();
        let t0 = Instant::now();
        assert!(log.note(&counts, &paths, t0).is_empty(), "nothing failed");
        counts.insert(Failure::PodUnknown, 2);
        assert_eq!(log.note(&counts, &paths, t0), [Failure::PodUnknown]);
        counts.insert(Failure::PodUnknown, 5);
        counts.insert(Failure::ProcessVanished, 1);
        assert_eq!(
            log.note(&counts, &paths, t0 + S),
            [Failure::ProcessVanished],
            "pod_unknown is quiet for ten minutes"
        );
        assert_eq!(
            log.note(&counts, &paths, t0 + FAILURE_LOG_EVERY),
            [Failure::PodUnknown]
        );
        assert!(
            log.note(&counts, &paths, t0 + 3 * FAILURE_LOG_EVERY)
                .is_empty(),
            "no new failures: nothing to say"
        );
    }

    /// A DRA claim naming a GPU that is not on this node counts `device_unknown` at every pass
    /// (the log says so once), but only once every device has a UUID to match.
    #[test]
    fn a_claim_device_matching_no_gpu_counts_device_unknown() {
        let claim = ContainerClaim {
            namespace: "ns".into(),
            pod: "p".into(),
            container: "c".into(),
            claim_namespace: "ns".into(),
            claim_name: "gpu".into(),
            devices: vec![ClaimDevice {
                driver: "gpu.nvidia.com".into(),
                cdi_devices: vec!["k8s.gpu.nvidia.com/device=GPU-0000dead".into()],
                ..ClaimDevice::default()
            }],
        };
        let (_root, mut a) = attributor_with(
            S,
            KubeletView {
                claims: vec![claim],
                available: true,
                fetched_at: Some(SystemTime::now()),
                ..KubeletView::default()
            },
        );
        let gpu = |uuid: &str| DeviceSample {
            identity: DeviceIdentity {
                uuid: uuid.into(),
                ..DeviceIdentity::default()
            },
            ..DeviceSample::default()
        };
        let unknown = |a: &Attributed| a.failures[&Failure::DeviceUnknown];
        let out = a.apply(&[gpu("")], BTreeMap::from([("nvidia", 1)]));
        assert_eq!(unknown(&out), 0, "a device without its UUID yet");
        let out = a.apply(&[gpu("GPU-0000beef")], BTreeMap::from([("nvidia", 2)]));
        assert_eq!(unknown(&out), 1);
        assert_eq!(a.unknown_claim_devices.len(), 1);
        let out = a.apply(&[gpu("GPU-0000beef")], BTreeMap::from([("nvidia", 3)]));
        assert_eq!(unknown(&out), 2, "counted at every pass");
    }
}
