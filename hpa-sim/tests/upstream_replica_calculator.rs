//! Kubernetes' own replica-calculator tables (`pkg/controller/podautoscaler/replica_calculator_test.go`)
//! run against `hpa_sim::calc`: every case keeps its upstream test function and case name.
//!
//! Sources: the tables as they stand in kubernetes/kubernetes master (mirrored in the
//! omerap12/kubernetes fork): `TestReplicaCalcResourceScale`, `TestReplicaCalcPodMetric`,
//! `TestReplicaCalcObjectMetric`, `TestReplicaCalcObjectPerPodMetric`, `TestReplicaCalcExternalMetric`,
//! `TestReplicaCalcExternalPerPodMetric`, `TestReplicaCalcResourceTolerance`,
//! `TestReplicaCalcResourceMissingMetrics`, `TestReplicaCalcComputedToleranceAlgImplementation`. Those
//! tables replaced one-function-per-case tests (`TestReplicaCalcScaleUpCM`, …); where a case had such a
//! name it is given too, as `old: …`.
//!
//! How the upstream fixtures map onto `PodView`: pod `i` is `test-pod-i`; the fake pod lister
//! returns `max(currentReplicas, len(podPhase))` pods, ready unless `podReadiness[i]` says `False`,
//! Running unless `podPhase[i]` says otherwise, being deleted where `podDeletionTimestamp[i]`. A
//! custom-metric level is already a milli-value (`NewMilliQuantity(level)`); a Pods metric exists for
//! pod `i < len(levels)` only. For CPU, `makePodMetricLevels(l)` gives each of the two containers `l`
//! and each container requests the pod's request, so a pod's usage and request are twice the
//! per-container numbers (which leaves every utilization unchanged).
//!
//! Upstream cases NOT ported, and why:
//! - CPU cases that set `podStartTime` (the hot-CPU / initialization-period logic, which looks at
//!   start times, readiness transition times and metric windows; our CPU model only reads
//!   `ready`): `TestReplicaCalcResourceScale` "scale up: hot-CPU container scales less", "scale up:
//!   hot-CPU pod scales less", "no scale: hot-CPU pods ignored", "scale down: ignore hot-CPU pods",
//!   "scale down: container metric ignores hot-CPU pods"; `TestReplicaCalcResourceMissingMetrics`
//!   "no change: hot-CPU pod metric missing", "scale up: hot-CPU pod metric missing".
//! - Container-scoped CPU cases (`container: "container1"/"container2"`; `ContainerResource`
//!   metrics are not modelled): `TestReplicaCalcResourceScale` "scale up: container metric",
//!   "scale up: failed pods ignored with missing container metric", "scale up: container metrics
//!   with failed pods ignored", "scale up: container metric with succeeded pods ignored", "scale up:
//!   container metrics with pods being deleted ignored", "scale down: container metric", "scale
//!   down: container metric excludes unready pods", "scale down: container metric excludes
//!   unscheduled pods", "scale down: container metric with failed pods ignored", "scale down:
//!   container metric with succeeded pods ignored", "scale down: still-running pods being deleted
//!   are ignored" (container2).
//! - `TestGroupPods` and `TestCalculateRequests`: they test private helpers (and the CPU
//!   start-time rules, pod-level resources, restartable init containers) with no counterpart in
//!   the public API; their effect on whole calculations is covered by the cases below.
//! - The raw-value (`expectedRawValue`) and timestamp assertions: `calc` returns the utilization
//!   percentage only, and has no metric timestamps.
//!
//! Adapted, not skipped:
//! - "disjoint pod and metric names" and "no metrics returned from metrics API": upstream fails
//!   with "no metrics returned matched known pods" / "no metrics returned from resource metrics API";
//!   here a metric belongs to a pod, so a metric under an unknown pod name is a pod without a metric,
//!   and the calculation fails with `NoMetrics`. Both assert an error.
//! - "superfluous metrics counted": upstream also returns samples for two pods that do not exist;
//!   they have no CPU request, so `GetResourceUtilizationRatio` skips them and the case reduces to
//!   the four pods that do.
//! - External "usage overflow caps at MaxInt64": the saturating sum over the series is done before
//!   `value_replicas` (which takes the summed value), so the case passes `i64::MAX`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use hpa_sim::calc::{
    per_pod_replicas, plain_metric_replicas, resource_utilization_replicas, value_replicas, Phase,
    PodView, Proposal, Tolerances,
};
use hpa_sim::quantity::Milli;

/// `defaultTestingTolerance`.
const TOL: f64 = 0.1;
/// `numContainersPerPod`.
const CONTAINERS: i64 = 2;

fn tol() -> Tolerances {
    Tolerances::both(TOL)
}

/// `Tolerances{scaleDown, scaleUp}` (upstream's field order).
fn tols(scale_down: f64, scale_up: f64) -> Tolerances {
    Tolerances {
        scale_down,
        scale_up,
    }
}

/// Upstream's `calcScenario` pod fields.
#[derive(Default, Clone)]
struct Fixture {
    current: i32,
    readiness: Vec<bool>,
    phase: Vec<Phase>,
    deleting: Vec<bool>,
}

impl Fixture {
    fn new(current: i32) -> Fixture {
        Fixture {
            current,
            ..Fixture::default()
        }
    }
    fn ready(mut self, r: &[bool]) -> Fixture {
        self.readiness = r.to_vec();
        self
    }
    fn phase(mut self, p: &[Phase]) -> Fixture {
        self.phase = p.to_vec();
        self
    }
    fn deleting(mut self, d: &[bool]) -> Fixture {
        self.deleting = d.to_vec();
        self
    }

    /// `newFakePodClient`: `max(currentReplicas, len(podPhase))` pods.
    fn pods(&self) -> Vec<PodView> {
        let n = (self.current.max(0) as usize).max(self.phase.len());
        (0..n)
            .map(|i| PodView {
                name: format!("test-pod-{i}"),
                phase: self.phase.get(i).copied().unwrap_or(Phase::Running),
                ready: self.readiness.get(i).copied().unwrap_or(true),
                deleting: self.deleting.get(i).copied().unwrap_or(false),
                metrics: BTreeMap::new(),
                requests: BTreeMap::new(),
            })
            .collect()
    }

    /// Pods with a Pods metric `qps` = `levels[i]` (milli) for `i < len(levels)`.
    fn with_qps(&self, levels: &[i64]) -> Vec<PodView> {
        let mut pods = self.pods();
        for (p, l) in pods.iter_mut().zip(levels) {
            p.metrics.insert("qps".into(), Milli(*l));
        }
        pods
    }

    /// Pods with CPU: `levels[i]` per container (`makePodMetricLevels`) and `requests[i]` per
    /// container (`cpuRequests`), both summed over the pod's two containers.
    fn with_cpu(&self, levels: &[i64], requests: &[i64]) -> Vec<PodView> {
        let mut pods = self.pods();
        for (p, l) in pods.iter_mut().zip(levels) {
            p.metrics.insert("cpu".into(), Milli(l * CONTAINERS));
        }
        for (p, r) in pods.iter_mut().zip(requests) {
            p.requests.insert("cpu".into(), Milli(r * CONTAINERS));
        }
        pods
    }
}

/// `cpuRequests(n, "1.0")`.
fn req(n: usize, milli: i64) -> Vec<i64> {
    vec![milli; n]
}

const T: bool = true;
const F: bool = false;
use Phase::{Failed as PF, Pending as PP, Running as PR, Succeeded as PS};

/// Collects every mismatch of a table so that one run reports all of them.
#[derive(Default)]
struct Report(Vec<String>);

impl Report {
    fn check(
        &mut self,
        case: &str,
        got: Result<Proposal, impl std::fmt::Debug>,
        want: Option<(i32, i64)>,
    ) {
        match (got, want) {
            (Ok(p), Some((r, u))) if p.replicas == r && p.usage == u => {}
            (Ok(p), Some((r, u))) => self.0.push(format!(
                "{case}: got replicas {} usage {}, upstream expects replicas {r} usage {u}",
                p.replicas, p.usage
            )),
            (Err(_), None) => {}
            (Ok(p), None) => self
                .0
                .push(format!("{case}: got {p:?}, upstream expects an error")),
            (Err(e), Some((r, u))) => self.0.push(format!(
                "{case}: got error {e:?}, upstream expects replicas {r} usage {u}"
            )),
        }
    }
    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} case(s) differ from upstream:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

struct ResourceCase {
    name: &'static str,
    fixture: Fixture,
    levels: Vec<i64>,
    requests: Vec<i64>,
    target: i32,
    tolerances: Tolerances,
    /// `(expectedReplicas, expectedUtilization)`, or `None` for an expected error.
    want: Option<(i32, i64)>,
}

fn run_resource(table: &str, cases: Vec<ResourceCase>) {
    let mut report = Report::default();
    for c in cases {
        let pods = c.fixture.with_cpu(&c.levels, &c.requests);
        let got =
            resource_utilization_replicas(&pods, "cpu", c.fixture.current, c.target, c.tolerances);
        report.check(&format!("{table}/{}", c.name), got, c.want);
    }
    report.finish();
}

fn rc(
    name: &'static str,
    fixture: Fixture,
    levels: &[i64],
    requests: Vec<i64>,
    target: i32,
    want: (i32, i64),
) -> ResourceCase {
    ResourceCase {
        name,
        fixture,
        levels: levels.to_vec(),
        requests,
        target,
        tolerances: tol(),
        want: Some(want),
    }
}

#[test]
fn test_replica_calc_resource_scale() {
    // upstream: TestReplicaCalcResourceScale (CPU, utilization target)
    run_resource(
        "TestReplicaCalcResourceScale",
        vec![
            // old: TestReplicaCalcScaleUp
            rc(
                "scale up",
                Fixture::new(3),
                &[300, 500, 700],
                req(3, 1000),
                30,
                (5, 50),
            ),
            // old: TestReplicaCalcScaleUpUnreadyLessScale
            rc(
                "scale up: unready pod scales less",
                Fixture::new(3).ready(&[F, T, T]),
                &[300, 500, 700],
                req(3, 1000),
                30,
                (4, 60),
            ),
            // old: TestReplicaCalcScaleUpUnreadyNoScale
            rc(
                "no scale: unready pods ignored",
                Fixture::new(3).ready(&[T, F, F]),
                &[400, 500, 700],
                req(3, 1000),
                30,
                (3, 40),
            ),
            // old: TestReplicaCalcScaleUpIgnoresFailedPods
            rc(
                "scale up: failed pods ignored",
                Fixture::new(2)
                    .ready(&[T, T, F, F])
                    .phase(&[PR, PR, PF, PF]),
                &[500, 700],
                req(4, 1000),
                30,
                (4, 60),
            ),
            rc(
                "scale up: succeeded pods ignored",
                Fixture::new(2)
                    .ready(&[T, T, F, F])
                    .phase(&[PR, PR, PS, PS]),
                &[500, 700],
                req(4, 1000),
                30,
                (4, 60),
            ),
            // old: TestReplicaCalcScaleUpIgnoresDeletionPods
            rc(
                "scale up: pods being deleted are ignored",
                Fixture::new(2)
                    .ready(&[T, T, F, F])
                    .phase(&[PR, PR, PR, PR])
                    .deleting(&[F, F, T, T]),
                &[500, 700],
                req(4, 1000),
                30,
                (4, 60),
            ),
            // old: TestReplicaCalcScaleDown
            rc(
                "scale down",
                Fixture::new(5),
                &[100, 300, 500, 250, 250],
                req(5, 1000),
                50,
                (3, 28),
            ),
            // old: TestReplicaCalcScaleDownExcludeUnreadyPods
            rc(
                "scale down: exclude unready pods",
                Fixture::new(5).ready(&[T, T, T, F, F]),
                &[100, 300, 500, 250, 250],
                req(5, 1000),
                50,
                (2, 30),
            ),
            // old: TestReplicaCalcScaleDownExcludeUnscheduledPods
            rc(
                "scale down: exclude unscheduled pods",
                Fixture::new(5)
                    .ready(&[T, F, F, F, F])
                    .phase(&[PR, PP, PP, PP, PP]),
                &[100],
                req(5, 1000),
                50,
                (1, 10),
            ),
            // old: TestReplicaCalcScaleDownIgnoresFailedPods
            rc(
                "scale down: failed pods ignored",
                Fixture::new(5)
                    .ready(&[T, T, T, T, T, F, F])
                    .phase(&[PR, PR, PR, PR, PR, PF, PF]),
                &[100, 300, 500, 250, 250],
                req(7, 1000),
                50,
                (3, 28),
            ),
            rc(
                "scale down: succeeded pods ignored",
                Fixture::new(5)
                    .ready(&[T, T, T, T, T, F, F])
                    .phase(&[PR, PR, PR, PR, PR, PS, PS]),
                &[100, 300, 500, 250, 250],
                req(7, 1000),
                50,
                (3, 28),
            ),
            // old: TestReplicaCalcScaleDownIgnoresDeletionPods
            rc(
                "scale down: pods being deleted are ignored",
                Fixture::new(5)
                    .ready(&[T, T, T, T, T, F, F])
                    .phase(&[PR, PR, PR, PR, PR, PR, PR])
                    .deleting(&[F, F, F, F, F, T, T]),
                &[100, 300, 500, 250, 250],
                req(7, 1000),
                50,
                (3, 28),
            ),
        ],
    );
}

#[test]
fn test_replica_calc_resource_tolerance() {
    // upstream: TestReplicaCalcResourceTolerance (old: TestReplicaCalcTolerance,
    // TestReplicaCalcConfigurableTolerance)
    let mixed = vec![900, 1000, 1100];
    let with = |mut c: ResourceCase, t: Tolerances| {
        c.tolerances = t;
        c
    };
    run_resource(
        "TestReplicaCalcResourceTolerance",
        vec![
            rc(
                "within default tolerance",
                Fixture::new(3),
                &[1010, 1030, 1020],
                mixed.clone(),
                100,
                (3, 102),
            ),
            with(
                rc(
                    "outside 0% tolerance",
                    Fixture::new(3),
                    &[909, 1010, 1111],
                    mixed.clone(),
                    100,
                    (4, 101),
                ),
                tols(0.0, 0.0),
            ),
            with(
                rc(
                    "within 200% scale-up tolerance",
                    Fixture::new(3),
                    &[1890, 1910, 1900],
                    mixed.clone(),
                    100,
                    (3, 190),
                ),
                tols(TOL, 2.0),
            ),
            with(
                rc(
                    "outside 8% scale-up tolerance (superfluous scale-down tolerance)",
                    Fixture::new(3),
                    &[1100, 1080, 1090],
                    mixed.clone(),
                    100,
                    (4, 109),
                ),
                tols(2.0, 0.08),
            ),
            with(
                rc(
                    "within 36% scale-down tolerance",
                    Fixture::new(3),
                    &[660, 640, 650],
                    mixed.clone(),
                    100,
                    (3, 65),
                ),
                tols(0.36, TOL),
            ),
            with(
                rc(
                    "outside 34% scale-down tolerance",
                    Fixture::new(3),
                    &[660, 640, 650],
                    mixed.clone(),
                    100,
                    (2, 65),
                ),
                tols(0.34, TOL),
            ),
        ],
    );
}

#[test]
fn test_replica_calc_resource_missing_metrics() {
    // upstream: TestReplicaCalcResourceMissingMetrics
    let err = |name, fixture, levels: &[i64], requests, target| ResourceCase {
        name,
        fixture,
        levels: levels.to_vec(),
        requests,
        target,
        tolerances: tol(),
        want: None,
    };
    run_resource(
        "TestReplicaCalcResourceMissingMetrics",
        vec![
            // old: TestReplicaCalcSuperfluousMetrics (the two samples of unknown pods have no
            // request and are skipped upstream; see the file header)
            rc(
                "superfluous metrics counted",
                Fixture::new(4),
                &[4000, 9500, 3000, 7000],
                req(4, 1000),
                100,
                (24, 587),
            ),
            // old: TestReplicaCalcMissingMetrics
            rc(
                "some pods missing metrics scales down",
                Fixture::new(4),
                &[400, 95],
                req(4, 1000),
                100,
                (3, 24),
            ),
            // old: TestReplicaCalcMissingMetricsNoChangeEq
            rc(
                "no change: metric equal to target",
                Fixture::new(2),
                &[1000],
                req(2, 1000),
                100,
                (2, 100),
            ),
            // old: TestReplicaCalcMissingMetricsNoChangeGt
            rc(
                "no change: metric above target",
                Fixture::new(2),
                &[1900],
                req(2, 1000),
                100,
                (2, 190),
            ),
            // old: TestReplicaCalcMissingMetricsNoChangeLt
            rc(
                "no change: metric below target",
                Fixture::new(2),
                &[600],
                req(2, 1000),
                100,
                (2, 60),
            ),
            // old: TestReplicaCalcMissingMetricsUnreadyChange
            rc(
                "no change: unready pod metric missing",
                Fixture::new(3).ready(&[F, T, T]),
                &[100, 450],
                req(3, 1000),
                50,
                (3, 45),
            ),
            // old: TestReplicaCalcMissingMetricsUnreadyScaleUp
            rc(
                "scale up: unready pod metric missing",
                Fixture::new(3).ready(&[F, T, T]),
                &[100, 2000],
                req(3, 1000),
                50,
                (4, 200),
            ),
            // old: TestReplicaCalcMissingMetricsUnreadyScaleDown
            rc(
                "scale down: unready pod metric missing",
                Fixture::new(4).ready(&[F, T, T, T]),
                &[100, 100, 100],
                req(4, 1000),
                50,
                (3, 10),
            ),
            // old: TestReplicaCalcMissingMetricsScaleDownTargetOver100
            rc(
                "scale down: target over 100",
                Fixture::new(4).ready(&[F, T, T, T]),
                &[200, 100, 100],
                vec![1000, 1000, 2000, 2000],
                300,
                (2, 6),
            ),
            // old: TestReplicaCalcDuringRollingUpdateWithMaxSurge
            rc(
                "rolling update with maxSurge: extra pod missing metric",
                Fixture::new(2).phase(&[PR, PR, PR]),
                &[100, 100],
                req(3, 1000),
                50,
                (2, 10),
            ),
            // old: TestReplicaCalcDisjointResourcesMetrics (see the file header)
            err(
                "disjoint pod and metric names",
                Fixture::new(1),
                &[],
                req(1, 1000),
                100,
            ),
            // old: TestReplicaCalcEmptyMetrics
            err(
                "no metrics returned from metrics API",
                Fixture::new(4),
                &[],
                req(3, 1000),
                100,
            ),
            // old: TestReplicaCalcEmptyCPURequest
            err(
                "missing CPU request on container",
                Fixture::new(1),
                &[200],
                vec![],
                100,
            ),
        ],
    );
}

#[test]
fn test_replica_calc_computed_tolerance_alg_implementation() {
    // upstream: TestReplicaCalcComputedToleranceAlgImplementation (old:
    // TestComputedToleranceAlgImplementation). The Go test derives its numbers; written out:
    // 10 pods at 150m per container, requests 300m±jitter per container (50 % utilization);
    // target = 1/(2×0.9)+0.01 → 56 % → ceil(50/56 × 10) = 9; target 1/(2×0.9)+0.004 → 55 % →
    // ratio 0.909, within the 10 % tolerance → 10.
    let start_pods = 10i32;
    let total_used: i64 = i64::from(start_pods) * 150;
    let total_requested: i64 = 2 * total_used;
    let requested_to_used = (total_requested / total_used) as f64;
    let per_pod = total_requested / i64::from(start_pods);
    let levels = vec![total_used / 10; 10];
    let requests = vec![
        per_pod + 100,
        per_pod - 100,
        per_pod + 10,
        per_pod - 10,
        per_pod + 2,
        per_pod - 2,
        per_pod + 1,
        per_pod - 1,
        per_pod,
        per_pod,
    ];
    let target = (1.0 / (requested_to_used * (1.0 - TOL))).abs() + 0.01;
    let pct = (target * 100.0) as i32;
    let used_ratio = total_used as f64 / (total_requested as f64 * target);
    let final_pods = (used_ratio * f64::from(start_pods)).ceil() as i32;
    let util = total_used * 100 / total_requested;
    assert_eq!(
        (pct, final_pods, util),
        (56, 9, 50),
        "the derived numbers, as Go computes them"
    );
    let pods = Fixture::new(start_pods).with_cpu(&levels, &requests);
    let mut report = Report::default();
    report.check(
        "TestReplicaCalcComputedToleranceAlgImplementation/scale down",
        resource_utilization_replicas(&pods, "cpu", start_pods, pct, tol()),
        Some((final_pods, util)),
    );
    let target = (1.0 / (requested_to_used * (1.0 - TOL))).abs() + 0.004;
    let pct = (target * 100.0) as i32;
    assert_eq!(pct, 55);
    report.check(
        "TestReplicaCalcComputedToleranceAlgImplementation/no scale within tolerance",
        resource_utilization_replicas(&pods, "cpu", start_pods, pct, tol()),
        Some((start_pods, util)),
    );
    report.finish();
}

struct MetricCase {
    name: &'static str,
    fixture: Fixture,
    levels: Vec<i64>,
    target: i64,
    tolerances: Tolerances,
    want: (i32, i64),
}

fn mc(
    name: &'static str,
    fixture: Fixture,
    levels: &[i64],
    target: i64,
    want: (i32, i64),
) -> MetricCase {
    MetricCase {
        name,
        fixture,
        levels: levels.to_vec(),
        target,
        tolerances: tol(),
        want,
    }
}

fn mc_tol(mut c: MetricCase, t: Tolerances) -> MetricCase {
    c.tolerances = t;
    c
}

#[test]
fn test_replica_calc_pod_metric() {
    // upstream: TestReplicaCalcPodMetric (GetMetricReplicas → calcPlainMetricReplicas). A
    // Pods metric has no CPU readiness rules: a not-ready pod with a value counts.
    let cases = vec![
        // old: TestReplicaCalcScaleUpCM
        mc(
            "scale up",
            Fixture::new(3),
            &[20000, 10000, 30000],
            15000,
            (4, 20000),
        ),
        // old: TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale (start times only matter for CPU)
        mc(
            "scale up: unready hot-CPU pod scales less",
            Fixture::new(3).ready(&[T, T, F]),
            &[50000, 10000, 30000],
            15000,
            (6, 30000),
        ),
        // old: TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown
        mc(
            "scale up: unready hot-CPU pods avoid scale-down",
            Fixture::new(3).ready(&[F, T, F]),
            &[50000, 15000, 30000],
            15000,
            (7, 31666),
        ),
        // old: TestReplicaCalcScaleDownCM
        mc(
            "scale down",
            Fixture::new(5),
            &[12000, 12000, 12000, 12000, 12000],
            20000,
            (3, 12000),
        ),
        // old: TestReplicaCalcToleranceCM
        mc(
            "within default tolerance",
            Fixture::new(3),
            &[20000, 21000, 21000],
            20000,
            (3, 20666),
        ),
        // old: TestReplicaCalcConfigurableToleranceCM
        mc_tol(
            mc(
                "outside configurable 1% tolerance",
                Fixture::new(3),
                &[20000, 21000, 21000],
                20000,
                (4, 20666),
            ),
            tols(TOL, 0.01),
        ),
        // old: TestPlainMetricReplicaCalcMissingMetricsNoChangeEq
        mc(
            "no change: missing metrics",
            Fixture::new(5),
            &[20000, 19000, 21000],
            20000,
            (5, 20000),
        ),
        // old: TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM
        mc(
            "rolling update with maxSurge: extra pod missing metric",
            Fixture::new(2).phase(&[PR, PR, PR]),
            &[10000, 10000],
            17000,
            (2, 10000),
        ),
        // old: TestReplicaCalcScaleUpCMExternalNoLabels (despite its name, a Pods metric)
        mc(
            "TestReplicaCalcScaleUpCMExternalNoLabels",
            Fixture::new(1),
            &[8600],
            4400,
            (2, 8600),
        ),
    ];
    let mut report = Report::default();
    for c in cases {
        let pods = c.fixture.with_qps(&c.levels);
        let got = plain_metric_replicas(
            &pods,
            "qps",
            c.fixture.current,
            Milli(c.target),
            c.tolerances,
            false,
        );
        report.check(
            &format!("TestReplicaCalcPodMetric/{}", c.name),
            got,
            Some(c.want),
        );
    }
    report.finish();
}

/// Object and External `Value` targets: one value against the target, times the ready pods.
fn run_value(table: &str, cases: Vec<MetricCase>) {
    let mut report = Report::default();
    for c in cases {
        let pods = c.fixture.pods();
        let got = value_replicas(
            &pods,
            Milli(c.levels[0]),
            c.fixture.current,
            Milli(c.target),
            c.tolerances,
        );
        report.check(&format!("{table}/{}", c.name), got, Some(c.want));
    }
    report.finish();
}

#[test]
fn test_replica_calc_object_metric() {
    // upstream: TestReplicaCalcObjectMetric (GetObjectMetricReplicas)
    run_value(
        "TestReplicaCalcObjectMetric",
        vec![
            // old: TestReplicaCalcScaleUpCMObject
            mc("scale up", Fixture::new(3), &[20000], 15000, (4, 20000)),
            // old: TestReplicaCalcScaleUpOverflow
            mc(
                "scale up: very large metric saturates replicas to MaxInt32",
                Fixture::new(3),
                &[i64::MAX],
                1,
                (i32::MAX, i64::MAX),
            ),
            // old: TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods
            mc(
                "scale up: ignores unready pods",
                Fixture::new(3).ready(&[F, T, F]),
                &[50000],
                10000,
                (5, 50000),
            ),
            // old: TestReplicaCalcScaleDownCMObject
            mc("scale down", Fixture::new(5), &[12000], 20000, (3, 12000)),
            // old: TestReplicaCalcToleranceCMObject
            mc(
                "within default tolerance",
                Fixture::new(3),
                &[20666],
                20000,
                (3, 20666),
            ),
            // old: TestReplicaCalcConfigurableToleranceCMObject
            mc_tol(
                mc(
                    "outside configurable 1% tolerance",
                    Fixture::new(3),
                    &[20666],
                    20000,
                    (4, 20666),
                ),
                tols(TOL, 0.01),
            ),
        ],
    );
}

#[test]
fn test_replica_calc_external_metric() {
    // upstream: TestReplicaCalcExternalMetric (GetExternalMetricReplicas)
    run_value(
        "TestReplicaCalcExternalMetric",
        vec![
            // old: TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods
            mc(
                "scale down: ignores unready pods (would otherwise scale up)",
                Fixture::new(3).ready(&[F, T, F]),
                &[8600],
                4400,
                (2, 8600),
            ),
            // old: TestReplicaCalcScaleDownCMExternal
            mc("scale down", Fixture::new(5), &[8600], 14334, (3, 8600)),
            // old: TestReplicaCalcToleranceCMExternal
            mc(
                "within default tolerance",
                Fixture::new(3),
                &[8600],
                8888,
                (3, 8600),
            ),
            // old: TestReplicaCalcConfigurableToleranceCMExternal
            mc_tol(
                mc(
                    "outside configurable 1% tolerance",
                    Fixture::new(3),
                    &[8900],
                    8800,
                    (4, 8900),
                ),
                tols(TOL, 0.01),
            ),
            // The sum of MaxInt64/2+1 twice, capped at MaxInt64 (see the file header).
            mc(
                "usage overflow caps at MaxInt64",
                Fixture::new(3),
                &[i64::MAX],
                i64::MAX,
                (3, i64::MAX),
            ),
        ],
    );
}

/// Object and External `AverageValue` targets: against the scale's status replicas.
fn run_per_pod(table: &str, cases: Vec<MetricCase>) {
    let mut report = Report::default();
    for c in cases {
        let got = per_pod_replicas(
            Milli(c.levels[0]),
            c.fixture.current,
            Milli(c.target),
            c.tolerances,
        );
        report.check(
            &format!("{table}/{}", c.name),
            Ok::<_, ()>(got),
            Some(c.want),
        );
    }
    report.finish();
}

#[test]
fn test_replica_calc_object_per_pod_metric() {
    // upstream: TestReplicaCalcObjectPerPodMetric (GetObjectPerPodMetricReplicas)
    run_per_pod(
        "TestReplicaCalcObjectPerPodMetric",
        vec![
            mc(
                "usage overflow with huge target leaves replicas unchanged",
                Fixture::new(1),
                &[i64::MAX],
                i64::MAX,
                (1, i64::MAX),
            ),
            // old: TestReplicaCalcScaleUpCMPerPodObject
            mc("scale up", Fixture::new(3), &[20000], 5000, (4, 6667)),
            // old: TestReplicaCalcScaleDownPerPodCMObject
            mc("scale down", Fixture::new(5), &[6000], 2000, (3, 1200)),
            // old: TestReplicaCalcTolerancePerPodCMObject
            mc(
                "within default tolerance",
                Fixture::new(4),
                &[20166],
                5000,
                (4, 5042),
            ),
            // old: TestReplicaCalcConfigurableTolerancePerPodCMObject
            mc_tol(
                mc(
                    "outside configurable 1% tolerance",
                    Fixture::new(4),
                    &[20208],
                    5000,
                    (5, 5052),
                ),
                tols(TOL, 0.01),
            ),
            mc(
                "statusReplicas zero does not overflow usage",
                Fixture::new(0),
                &[20000],
                5000,
                (4, 0),
            ),
            mc(
                "statusReplicas zero and metric zero does not underflow",
                Fixture::new(0),
                &[0],
                5000,
                (0, 0),
            ),
        ],
    );
}

#[test]
fn test_replica_calc_external_per_pod_metric() {
    // upstream: TestReplicaCalcExternalPerPodMetric (GetExternalPerPodMetricReplicas)
    run_per_pod(
        "TestReplicaCalcExternalPerPodMetric",
        vec![
            // old: TestExternalPerPodMetricReplicaOverflow
            mc(
                "replica count overflow saturates to MaxInt32",
                Fixture::new(1),
                &[i64::MAX],
                1,
                (i32::MAX, i64::MAX),
            ),
            // old: TestExternalPerPodMetricUsageOverflow
            mc(
                "usage overflow with huge target leaves replicas unchanged",
                Fixture::new(1),
                &[i64::MAX],
                i64::MAX,
                (1, i64::MAX),
            ),
            mc(
                "statusReplicas zero does not overflow usage",
                Fixture::new(0),
                &[20000],
                5000,
                (4, 0),
            ),
            mc(
                "statusReplicas zero and metric zero does not underflow",
                Fixture::new(0),
                &[0],
                5000,
                (0, 0),
            ),
            // old: TestReplicaCalcScaleUpPerPodCMExternal
            mc("scale up", Fixture::new(3), &[8600], 2150, (4, 2867)),
            // old: TestReplicaCalcScaleDownPerPodCMExternal
            mc("scale down", Fixture::new(5), &[8600], 2867, (3, 1720)),
            // old: TestReplicaCalcTolerancePerPodCMExternal
            mc(
                "within default tolerance",
                Fixture::new(3),
                &[8600],
                2900,
                (3, 2867),
            ),
            // old: TestReplicaCalcConfigurableTolerancePerPodCMExternal
            mc_tol(
                mc(
                    "outside configurable 1% tolerance",
                    Fixture::new(3),
                    &[8600],
                    2800,
                    (4, 2867),
                ),
                tols(TOL, 0.01),
            ),
        ],
    );
}
