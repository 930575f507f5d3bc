//! Kubernetes' own reconcile-level HPA tests (`pkg/controller/podautoscaler/horizontal_test.go`,
//! the `testCase`/`horizontalScenario` tests that run `reconcileAutoscaler` once) as one
//! `Controller::sync` each: every case keeps its upstream test function and case name.
//!
//! Upstream recently folded many one-function tests into tables (`TestScaleUp` → `TestScaleUpCPU`
//! "scale up", `TestMinReplicas` → `TestReplicaLimits` "scale down clamped to min replicas", …);
//! cases carry the table name and, where one existed, the older function name as `old: …`.
//!
//! How upstream's fake clients map onto an `Observation` (`newFakeHorizontalClient`):
//! - pods: `len(reportedCPURequests)` pods if requests are given, else `statusReplicas`; pod `i`
//!   is ready unless `reportedPodReadiness[i]` is `False`, Running unless `reportedPodPhase[i]`
//!   says otherwise. Each pod requests its CPU split over two containers (`MilliValue()/2` each).
//! - `reportedLevels[i]` serves every metrics API at once: pod `i`'s CPU (`level/2` per container),
//!   pod `i`'s Pods metric `qps`, the Object metric `qps` (`reportedLevels[0]`) and the External
//!   metric `qps` (the sum of all levels). All are milli-values.
//! - `recommendations: []timestampedRecommendation{}` seeds an empty recommendation log; a nil one
//!   lets the controller record the current size first (`recordInitialRecommendation`), which
//!   holds a scale-down for the 5-minute window. `Controller::seed` and a fresh controller do the
//!   same.
//! - The controller runs with upstream's test flags: tolerance 0.1, downscale stabilization 5 min.
//!   Upstream's test binary also sets `scaleUpLimitFactor = 8` in `init()`; no case below reaches
//!   the no-behavior scale-up limit with either factor (each is capped by `maxReplicas` or runs
//!   with `behavior`), so the controller's factor 2 gives upstream's numbers.
//! - A failing metrics API (`PrependReactor(... "something went wrong")`) is a metric without a
//!   value; an invalid metric source type (`"CheddarCheese"`, which our spec cannot parse) is an
//!   External metric whose value never arrives: both make the metric invalid.
//!
//! Upstream cases NOT ported, and why:
//! - Start-time dependent CPU cases: `TestScaleUpCPU` "scale up with hot cpu pods results in less
//!   scale" (old: `TestScaleUpHotCpuLessScale`), `TestScaleUpUnreadyOrHotCpuNoScale` "hot CPU pods
//!   excluded from scaling" (old: `TestScaleUpHotCpuNoScale`), `TestScaleDownCPU` "scale down
//!   ignores hot cpu pods" (old: `TestScaleDownIgnoreHotCpuPods`), `TestAvoidUnnecessaryUpdates`.
//! - `ContainerResource` metrics: `TestScaleContainerResource` (old: `TestScaleUpContainer`,
//!   `TestScaleDownContainerResource`).
//! - Scale to/from zero (needs `minReplicas: 0`, the alpha HPAScaleToZero gate; our spec rejects
//!   it): `TestScaleUpCMObject` "scale up from zero …" (4 cases), `TestScaleDownCM` "scale down to
//!   zero …" (4 cases), `TestReplicaLimits` "scale down to zero when min replicas is zero" (old:
//!   `TestZeroMinReplicasDesiredZero`), `TestScaleUpFromZeroOneMetricInvalid`,
//!   `TestScaleUpFromZeroWithoutCondition`, the HPAScaleToZero=true half of
//!   `TestScaleUpFromZeroWhenMinReplicasIncreased`, `TestScaledToZeroConditionHandledOnNormalRescale`.
//! - Feature-gate-off behaviour: `TestConfigurableTolerance` "No scaling because the configurable
//!   tolerance is ignored as the feature gate is disabled" (we model Kubernetes 1.33+).
//! - Controller plumbing with no counterpart (selectors, scale subresource errors, status update
//!   conflicts, events, Prometheus self-metrics, work queues): `TestConditionInvalidSelector*`,
//!   `TestConditionNoAmbiguousSelector*`, `TestConditionAmbiguousSelector*`,
//!   `TestConditionFailedGetScale`, `TestConditionFailedUpdateScale`,
//!   `TestHPARescaleWithSuccessfulConflictRetry`, `TestReconciliationDurationIsRecorded*`,
//!   `TestReconciliationsTotalCountMultipleReconciliations`, `TestMultipleHPAs`, `TestBuildQuantity`,
//!   `TestEnqueue*`, `TestUpdateHPA*`.
//!
//! Adapted: `TestComputedToleranceAlgImplementation` uses `minReplicas: 0`, which never binds
//! there (10 → 9 and 10 → 10); it runs with `minReplicas: 1`. `TestMetricsEdgeCases` "superfluous
//! metrics reported" (old: `TestSuperfluousMetrics`) also returns CPU samples for two pods that do
//! not exist; upstream skips them (no request), so the case reduces to the four pods.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use hpa_sim::calc::{Phase, PodView};
use hpa_sim::controller::{Controller, ControllerConfig, Observation};
use hpa_sim::quantity::Milli;
use hpa_sim::spec::HpaSpec;

const NOW: i64 = 10_000_000;
const T: bool = true;
const F: bool = false;
use Phase::{Failed as PF, Running as PR};

/// Which metrics API fails in a case.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Api {
    Resource,
    Pods,
    Object,
    External,
}

/// Upstream's `testCase` / `horizontalScenario`, reduced to what one sync reads.
#[derive(Clone, Default)]
struct Hz {
    name: &'static str,
    min: i32,
    max: i32,
    spec: i32,
    status: i32,
    /// `CPUTarget` (0: no CPU metric).
    cpu: i32,
    /// `metricsTarget`, as YAML list items.
    metrics: Vec<String>,
    /// `scaleUpRules` / `scaleDownRules`, as YAML flow mappings.
    up: Option<String>,
    down: Option<String>,
    levels: Vec<u64>,
    /// `reportedCPURequests`, milli per pod.
    requests: Option<Vec<i64>>,
    readiness: Vec<bool>,
    phase: Vec<Phase>,
    deleting: Vec<bool>,
    /// `recommendations`: `None` is upstream's nil.
    recs: Option<Vec<(i32, i64)>>,
    failing: Vec<Api>,
    /// `expectedDesiredReplicas`.
    want: i32,
    /// The upstream condition reason the case asserts, where our reason carries it.
    reason: Option<&'static str>,
}

fn cpu_metric(target: i32) -> String {
    format!("- type: Resource\n  resource:\n    name: cpu\n    target: {{type: Utilization, averageUtilization: {target}}}\n")
}
fn pods_avg(v: &str) -> String {
    format!("- type: Pods\n  pods:\n    metric: {{name: qps}}\n    target: {{type: AverageValue, averageValue: '{v}'}}\n")
}
fn object(kind: &str, v: &str) -> String {
    let field = if kind == "Value" {
        "value"
    } else {
        "averageValue"
    };
    format!(
        "- type: Object\n  object:\n    describedObject: {{apiVersion: apps/v1, kind: Deployment, name: some-deployment}}\n    metric: {{name: qps}}\n    target: {{type: {kind}, {field}: '{v}'}}\n"
    )
}
fn external(kind: &str, v: &str) -> String {
    external_named("qps", kind, v)
}
fn external_named(name: &str, kind: &str, v: &str) -> String {
    let field = if kind == "Value" {
        "value"
    } else {
        "averageValue"
    };
    format!(
        "- type: External\n  external:\n    metric: {{name: {name}, selector: {{}}}}\n    target: {{type: {kind}, {field}: '{v}'}}\n"
    )
}
/// Stands in for upstream's `{Type: "CheddarCheese"}`: a metric that never yields a value.
fn cheddar() -> String {
    external_named("cheddar-cheese", "Value", "1")
}
/// `generateScalingRules(pods, podsPeriod, percent, percentPeriod, stabilizationWindow)`.
fn gen(pods: i32, pods_period: i32, percent: i32, percent_period: i32, window: i32) -> String {
    let mut p = Vec::new();
    if pods != 0 {
        p.push(format!(
            "{{type: Pods, value: {pods}, periodSeconds: {pods_period}}}"
        ));
    }
    if percent != 0 {
        p.push(format!(
            "{{type: Percent, value: {percent}, periodSeconds: {percent_period}}}"
        ));
    }
    format!(
        "{{stabilizationWindowSeconds: {window}, selectPolicy: Max, policies: [{}]}}",
        p.join(", ")
    )
}

impl Hz {
    fn spec_yaml(&self) -> String {
        let mut y = format!(
            "minReplicas: {}\nmaxReplicas: {}\nmetrics:\n",
            self.min, self.max
        );
        if self.cpu > 0 {
            y.push_str(&cpu_metric(self.cpu));
        }
        for m in &self.metrics {
            y.push_str(m);
        }
        if self.up.is_some() || self.down.is_some() {
            y.push_str("behavior:\n");
            if let Some(u) = &self.up {
                y.push_str(&format!("  scaleUp: {u}\n"));
            }
            if let Some(d) = &self.down {
                y.push_str(&format!("  scaleDown: {d}\n"));
            }
        }
        y
    }

    fn observation(&self) -> Observation {
        let n = self
            .requests
            .as_ref()
            .map_or(self.status.max(0) as usize, Vec::len);
        let ok = |api| !self.failing.contains(&api);
        let pods = (0..n)
            .map(|i| {
                let request = self.requests.as_ref().map_or(1000, |r| r[i]);
                let mut metrics = BTreeMap::new();
                if let Some(level) = self.levels.get(i) {
                    let level = *level as i64;
                    if ok(Api::Resource) {
                        metrics.insert("cpu".to_string(), Milli(level / 2 * 2));
                    }
                    if ok(Api::Pods) {
                        metrics.insert("qps".to_string(), Milli(level));
                    }
                }
                PodView {
                    name: format!("test-pod-{i}"),
                    phase: self.phase.get(i).copied().unwrap_or(PR),
                    ready: self.readiness.get(i).copied().unwrap_or(true),
                    deleting: self.deleting.get(i).copied().unwrap_or(false),
                    metrics,
                    requests: BTreeMap::from([("cpu".to_string(), Milli(request / 2 * 2))]),
                }
            })
            .collect();
        let mut obs = Observation {
            pods,
            ..Observation::default()
        };
        if let (Some(first), true) = (self.levels.first(), ok(Api::Object)) {
            obs.object.insert("qps".into(), Milli(*first as i64));
        }
        if !self.levels.is_empty() && ok(Api::External) {
            obs.external.insert(
                "qps".into(),
                Milli(self.levels.iter().map(|l| *l as i64).sum()),
            );
        }
        obs
    }

    /// One `reconcileAutoscaler`: the replicas written to the scale and our reason.
    fn run(&self) -> (i32, String) {
        let yaml = self.spec_yaml();
        let spec: HpaSpec =
            serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{}: {e}\n{yaml}", self.name));
        let mut ctl = Controller::new(spec, ControllerConfig::default())
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        if let Some(recs) = &self.recs {
            ctl.seed(NOW, recs, &[], &[]);
        }
        let out = ctl.sync(NOW, self.spec, &self.observation());
        (out.desired, out.reason)
    }
}

fn run_all(cases: Vec<Hz>) {
    let mut bad = Vec::new();
    for c in &cases {
        let (got, reason) = c.run();
        if got != c.want {
            bad.push(format!(
                "{}: desired {got}, upstream expects {} (reason: {reason})",
                c.name, c.want
            ));
        }
        if let Some(r) = c.reason {
            if !reason.contains(r) {
                bad.push(format!(
                    "{}: reason {reason:?} lacks upstream's condition {r:?}",
                    c.name
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} case(s) differ from upstream:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

fn reqs(n: usize, milli: i64) -> Option<Vec<i64>> {
    Some(vec![milli; n])
}
fn mixed() -> Option<Vec<i64>> {
    Some(vec![900, 1000, 1100])
}

#[test]
fn cpu_scale_up_and_down() {
    let up = Hz {
        min: 2,
        max: 6,
        spec: 3,
        status: 3,
        cpu: 30,
        levels: vec![300, 500, 700],
        requests: reqs(3, 1000),
        ..Hz::default()
    };
    let down = Hz {
        min: 2,
        max: 6,
        spec: 5,
        status: 5,
        cpu: 50,
        levels: vec![100, 300, 500, 250, 250],
        requests: reqs(5, 1000),
        recs: Some(vec![]),
        ..Hz::default()
    };
    run_all(vec![
        Hz { name: "TestScaleUpCPU/scale up (old: TestScaleUp)", want: 5, ..up.clone() },
        Hz { name: "TestScaleUpCPU/scale up deployment (old: TestScaleUpDeployment)", want: 5, ..up.clone() },
        Hz { name: "TestScaleUpCPU/scale up replicaset (old: TestScaleUpReplicaSet)", want: 5, ..up.clone() },
        Hz {
            name: "TestScaleUpCPU/scale up with unready pods results in less scale (old: TestScaleUpUnreadyLessScale)",
            readiness: vec![F, T, T],
            want: 4,
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpCPU/no scale up when all unready pods bring utilization within target (old: TestScaleUpUnreadyNoScale)",
            levels: vec![400, 500, 700],
            readiness: vec![T, F, F],
            want: 3,
            reason: Some("ReadyForNewScale"),
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpUnreadyOrHotCpuNoScale/unready pods excluded from scaling",
            levels: vec![400, 500, 700],
            readiness: vec![T, F, F],
            want: 3,
            reason: Some("ReadyForNewScale"),
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpCPU/scale up ignores failed pods (old: TestScaleUpIgnoresFailedPods)",
            spec: 2,
            status: 2,
            levels: vec![500, 700],
            requests: reqs(4, 1000),
            readiness: vec![T, T, F, F],
            phase: vec![PR, PR, PF, PF],
            want: 4,
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpCPU/scale up ignores deletion pods (old: TestScaleUpIgnoresDeletionPods)",
            spec: 2,
            status: 2,
            levels: vec![500, 700],
            requests: reqs(4, 1000),
            readiness: vec![T, T, F, F],
            deleting: vec![F, F, T, T],
            want: 4,
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpOneMetricInvalid",
            levels: vec![300, 400, 500],
            metrics: vec![cheddar()],
            want: 4,
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpOneMetricEmpty",
            levels: vec![300, 400, 500],
            metrics: vec![external("Value", "100m")],
            failing: vec![Api::External],
            want: 4,
            ..up.clone()
        },
        Hz { name: "TestScaleDownCPU/scale down (old: TestScaleDown)", want: 3, ..down.clone() },
        Hz {
            name: "TestScaleDownCPU/scale down includes unready pods (old: TestScaleDownIncludeUnreadyPods)",
            readiness: vec![T, T, T, F, F],
            want: 2,
            ..down.clone()
        },
        Hz {
            name: "TestScaleDownCPU/scale down ignores failed pods (old: TestScaleDownIgnoresFailedPods)",
            requests: reqs(7, 1000),
            readiness: vec![T, T, T, T, T, F, F],
            phase: vec![PR, PR, PR, PR, PR, PF, PF],
            want: 3,
            ..down.clone()
        },
        Hz {
            name: "TestScaleDownCPU/scale down ignores deletion pods (old: TestScaleDownIgnoresDeletionPods)",
            requests: reqs(7, 1000),
            readiness: vec![T, T, T, T, T, F, F],
            deleting: vec![F, F, F, F, F, T, T],
            want: 3,
            ..down.clone()
        },
        Hz {
            name: "TestScaleDownStabilizeInitialSize",
            recs: None,
            want: 5,
            reason: Some("ScaleDownStabilized"),
            ..down.clone()
        },
        Hz {
            name: "TestScaleDownWithScalingRules",
            up: Some(gen(0, 0, 100, 15, 30)),
            want: 3,
            ..down.clone()
        },
        Hz {
            name: "TestNoScaleDownOneMetricEmpty",
            metrics: vec![external("Value", "1")],
            failing: vec![Api::External],
            want: 5,
            reason: Some("FailedComputeMetricsReplicas"),
            ..down.clone()
        },
        Hz {
            name: "TestInvalidMetricSourceType/no scale down when one metric has invalid source type",
            metrics: vec![cheddar()],
            want: 5,
            reason: Some("FailedComputeMetricsReplicas"),
            ..down.clone()
        },
        Hz {
            name: "TestInvalidMetricSourceType/only invalid metric source type (old: TestScaleUpBothMetricsEmpty)",
            min: 2,
            max: 6,
            spec: 3,
            status: 3,
            cpu: 0,
            metrics: vec![cheddar()],
            levels: vec![20000],
            requests: None,
            recs: None,
            want: 3,
            reason: Some("FailedComputeMetricsReplicas"),
            ..down.clone()
        },
    ]);
}

#[test]
fn custom_metrics() {
    let up = Hz {
        min: 2,
        max: 6,
        spec: 3,
        status: 3,
        ..Hz::default()
    };
    let down = Hz {
        min: 2,
        max: 6,
        spec: 5,
        status: 5,
        recs: Some(vec![]),
        ..Hz::default()
    };
    run_all(vec![
        Hz {
            name: "TestScaleUpCM/scale up custom metric (old: TestScaleUpCM)",
            metrics: vec![pods_avg("15")],
            levels: vec![20000, 10000, 30000],
            requests: reqs(3, 1000),
            want: 4,
            ..up.clone()
        },
        // A Pods metric has no readiness rule: the not-ready pod's 30 counts (start times only
        // matter for CPU).
        Hz {
            name: "TestScaleUpCM/unready and hot cpu pods do not reduce scale for custom metric (old: TestScaleUpCMUnreadyAndHotCpuNoLessScale)",
            metrics: vec![pods_avg("15")],
            levels: vec![50000, 10000, 30000],
            readiness: vec![T, T, F],
            requests: reqs(3, 1000),
            want: 6,
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpCM/unready and hot cpu pods scale to max with scaling limited condition (old: TestScaleUpCMUnreadyandCpuHot)",
            metrics: vec![pods_avg("15")],
            levels: vec![50000, 15000, 30000],
            readiness: vec![F, T, F],
            requests: reqs(3, 1000),
            want: 6,
            reason: Some("TooManyReplicas"),
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpHotCpuNoScaleWouldScaleDown",
            metrics: vec![pods_avg("15")],
            levels: vec![50000, 15000, 30000],
            requests: reqs(3, 1000),
            want: 6,
            reason: Some("TooManyReplicas"),
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpCMObject/scale up object metric with value target (old: TestScaleUpCMObject)",
            metrics: vec![object("Value", "15")],
            levels: vec![20000],
            want: 4,
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpCMObject/scale up per-pod object metric with average value target (old: TestScaleUpPerPodCMObject)",
            metrics: vec![object("AverageValue", "10")],
            levels: vec![40000],
            want: 4,
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpCMExternal/scale up external metric with value target (old: TestScaleUpCMExternal)",
            metrics: vec![external("Value", "6666m")],
            levels: vec![8600],
            want: 4,
            ..up.clone()
        },
        Hz {
            name: "TestScaleUpCMExternal/scale up external metric with per-pod average value target (old: TestScaleUpPerPodCMExternal)",
            metrics: vec![external("AverageValue", "2222m")],
            levels: vec![8600],
            want: 4,
            ..up.clone()
        },
        Hz {
            name: "TestScaleDownCM/scale down pods metric (old: TestScaleDownCM)",
            metrics: vec![pods_avg("20")],
            levels: vec![12000; 5],
            requests: reqs(5, 1000),
            want: 3,
            ..down.clone()
        },
        Hz {
            name: "TestScaleDownCM/scale down object metric with value target (old: TestScaleDownCMObject)",
            metrics: vec![object("Value", "20")],
            levels: vec![12000],
            requests: reqs(5, 1000),
            want: 3,
            ..down.clone()
        },
        Hz {
            name: "TestScaleDownCM/scale down per-pod object metric with average value target (old: TestScaleDownPerPodCMObject)",
            metrics: vec![object("AverageValue", "20")],
            levels: vec![60000],
            requests: reqs(5, 1000),
            want: 3,
            ..down.clone()
        },
        Hz {
            name: "TestScaleDownCM/scale down external metric with value target (old: TestScaleDownCMExternal)",
            metrics: vec![external("Value", "14400m")],
            levels: vec![8600],
            want: 3,
            ..down.clone()
        },
        Hz {
            name: "TestScaleDownCM/scale down per-pod external metric with average value target (old: TestScaleDownPerPodCMExternal)",
            metrics: vec![external("AverageValue", "3000m")],
            levels: vec![8600],
            want: 3,
            ..down.clone()
        },
    ]);
}

#[test]
fn test_condition_failed_get_metrics() {
    // upstream: TestConditionFailedGetMetrics — each metrics API fails in turn; the HPA keeps 3.
    let base = Hz {
        min: 1,
        max: 100,
        spec: 3,
        status: 3,
        levels: vec![100, 200, 300],
        requests: reqs(3, 100),
        want: 3,
        reason: Some("FailedComputeMetricsReplicas"),
        ..Hz::default()
    };
    run_all(vec![
        Hz {
            name: "TestConditionFailedGetMetrics/FailedGetResourceMetric",
            cpu: 10,
            failing: vec![Api::Resource],
            ..base.clone()
        },
        Hz {
            name: "TestConditionFailedGetMetrics/FailedGetPodsMetric",
            metrics: vec![pods_avg("15")],
            failing: vec![Api::Pods],
            ..base.clone()
        },
        Hz {
            name: "TestConditionFailedGetMetrics/FailedGetObjectMetric",
            metrics: vec![object("Value", "15")],
            failing: vec![Api::Object],
            ..base.clone()
        },
        Hz {
            name: "TestConditionFailedGetMetrics/FailedGetExternalMetric",
            metrics: vec![external("Value", "300m")],
            failing: vec![Api::External],
            ..base.clone()
        },
    ]);
}

#[test]
fn test_tolerance() {
    // upstream: TestTolerance — every metric kind within the default 10 %: no change.
    let base = Hz {
        min: 1,
        max: 5,
        spec: 3,
        status: 3,
        want: 3,
        reason: Some("ReadyForNewScale"),
        ..Hz::default()
    };
    let four = Hz {
        min: 2,
        max: 6,
        spec: 4,
        status: 4,
        want: 4,
        reason: Some("ReadyForNewScale"),
        ..Hz::default()
    };
    run_all(vec![
        Hz {
            name: "TestTolerance/CPU resource metric within tolerance",
            cpu: 100,
            levels: vec![1010, 1030, 1020],
            requests: mixed(),
            ..base.clone()
        },
        Hz {
            name: "TestTolerance/pods metric within tolerance",
            metrics: vec![pods_avg("20")],
            levels: vec![20000, 20001, 21000],
            requests: mixed(),
            ..base.clone()
        },
        Hz {
            name: "TestTolerance/object metric with value target within tolerance",
            metrics: vec![object("Value", "20")],
            levels: vec![20050],
            requests: mixed(),
            ..base.clone()
        },
        Hz {
            name: "TestTolerance/external metric with value target within tolerance",
            metrics: vec![external("Value", "8666m")],
            levels: vec![8600],
            ..four.clone()
        },
        Hz {
            name: "TestTolerance/per-pod object metric with average value target within tolerance",
            metrics: vec![object("AverageValue", "2200m")],
            levels: vec![8600],
            ..four.clone()
        },
        Hz {
            name:
                "TestTolerance/per-pod external metric with average value target within tolerance",
            metrics: vec![external("AverageValue", "2200m")],
            levels: vec![8600],
            ..four.clone()
        },
    ]);
}

#[test]
fn test_configurable_tolerance() {
    // upstream: TestConfigurableTolerance (HPAConfigurableTolerance enabled)
    let base = Hz {
        min: 1,
        max: 5,
        spec: 3,
        status: 3,
        cpu: 100,
        recs: None,
        ..Hz::default()
    };
    run_all(vec![
        Hz {
            name: "TestConfigurableTolerance/Scaling up because of a 1% configurable tolerance",
            up: Some("{tolerance: '0.01'}".into()),
            levels: vec![1010, 1030, 1020],
            requests: mixed(),
            want: 4,
            ..base.clone()
        },
        Hz {
            name: "TestConfigurableTolerance/No scale-down because of a 90% configurable tolerance",
            down: Some("{tolerance: '0.9'}".into()),
            levels: vec![300, 300, 300],
            requests: reqs(3, 1000),
            want: 3,
            reason: Some("ReadyForNewScale"),
            ..base.clone()
        },
        Hz {
            name: "TestConfigurableTolerance/No scaling because of the large default tolerance",
            levels: vec![1010, 1030, 1020],
            requests: mixed(),
            want: 3,
            reason: Some("ReadyForNewScale"),
            ..base.clone()
        },
    ]);
}

#[test]
fn replica_limits_and_caps() {
    run_all(vec![
        Hz {
            name: "TestReplicaLimits/scale down clamped to min replicas (old: TestMinReplicas)",
            min: 2,
            max: 5,
            spec: 3,
            status: 3,
            cpu: 90,
            levels: vec![10, 95, 10],
            requests: mixed(),
            recs: Some(vec![]),
            want: 2,
            reason: Some("TooFewReplicas"),
            ..Hz::default()
        },
        Hz {
            name: "TestReplicaLimits/scale down clamped to min when desired is zero (old: TestMinReplicasDesiredZero)",
            min: 2,
            max: 5,
            spec: 3,
            status: 3,
            cpu: 90,
            levels: vec![0, 0, 0],
            requests: mixed(),
            recs: Some(vec![]),
            want: 2,
            reason: Some("TooFewReplicas"),
            ..Hz::default()
        },
        Hz {
            name: "TestReplicaLimits/no scaling when spec replicas is zero (old: TestZeroReplicas)",
            min: 3,
            max: 5,
            spec: 0,
            status: 0,
            cpu: 90,
            requests: Some(vec![]),
            want: 0,
            reason: Some("ScalingDisabled"),
            ..Hz::default()
        },
        Hz {
            name: "TestManualScaleToZeroDisablesHPA",
            min: 1,
            max: 6,
            spec: 0,
            status: 0,
            cpu: 50,
            requests: Some(vec![]),
            want: 0,
            reason: Some("ScalingDisabled"),
            ..Hz::default()
        },
        Hz {
            name: "TestScaleUpFromZeroWhenMinReplicasIncreased/HPAScaleToZero=false",
            min: 2,
            max: 6,
            spec: 0,
            status: 0,
            metrics: vec![object("Value", "15000m")],
            levels: vec![10000],
            want: 0,
            reason: Some("ScalingDisabled"),
            ..Hz::default()
        },
        Hz {
            name: "TestReplicaLimits/scale up to min when below min replicas (old: TestTooFewReplicas)",
            min: 3,
            max: 5,
            spec: 2,
            status: 2,
            cpu: 90,
            requests: Some(vec![]),
            want: 3,
            ..Hz::default()
        },
        Hz {
            name: "TestReplicaLimits/scale down to max when above max replicas (old: TestTooManyReplicas)",
            min: 3,
            max: 5,
            spec: 10,
            status: 10,
            cpu: 90,
            requests: Some(vec![]),
            want: 5,
            ..Hz::default()
        },
        Hz {
            name: "TestReplicaLimits/scale up clamped to max replicas (old: TestMaxReplicas)",
            min: 2,
            max: 5,
            spec: 3,
            status: 3,
            cpu: 90,
            levels: vec![8000, 9500, 1000],
            requests: mixed(),
            want: 5,
            reason: Some("TooManyReplicas"),
            ..Hz::default()
        },
        Hz {
            name: "TestScaleRCImmediately/scale up to min when below min replicas (old: TestScaleUpRCImmediately)",
            min: 2,
            max: 6,
            spec: 1,
            status: 1,
            levels: vec![0, 0, 0, 0],
            requests: reqs(4, 1000),
            // Upstream leaves the CPU target unset (the API default, 80 %); below
            // minReplicas the metric is never read.
            cpu: 80,
            want: 2,
            ..Hz::default()
        },
        Hz {
            name: "TestScaleRCImmediately/scale down to max when above max replicas (old: TestScaleDownRCImmediately)",
            min: 2,
            max: 5,
            spec: 6,
            status: 6,
            cpu: 50,
            levels: vec![8000, 9500, 1000],
            requests: mixed(),
            want: 5,
            ..Hz::default()
        },
        Hz {
            name: "TestUpscaleCap/capped by scale up rules (old: TestUpscaleCap)",
            min: 1,
            max: 100,
            spec: 3,
            status: 3,
            up: Some(gen(0, 0, 700, 60, 0)),
            cpu: 10,
            levels: vec![100, 200, 300],
            requests: reqs(3, 100),
            want: 24,
            reason: Some("ScaleUpLimit"),
            ..Hz::default()
        },
        Hz {
            name: "TestUpscaleCap/capped by max replicas when scale up limit exceeds max (old: TestUpscaleCapGreaterThanMaxReplicas)",
            min: 1,
            max: 20,
            spec: 3,
            status: 3,
            up: Some(gen(0, 0, 700, 60, 0)),
            cpu: 10,
            levels: vec![100, 200, 300],
            requests: reqs(3, 100),
            want: 20,
            reason: Some("TooManyReplicas"),
            ..Hz::default()
        },
    ]);
}

#[test]
fn metrics_edge_cases() {
    run_all(vec![
        Hz {
            name: "TestMetricsEdgeCases/superfluous metrics reported (old: TestSuperfluousMetrics)",
            min: 2,
            max: 6,
            spec: 4,
            status: 4,
            cpu: 100,
            levels: vec![4000, 9500, 3000, 7000],
            requests: reqs(4, 1000),
            want: 6,
            reason: Some("TooManyReplicas"),
            ..Hz::default()
        },
        Hz {
            name: "TestMetricsEdgeCases/missing metrics from some pods (old: TestMissingMetrics)",
            min: 2,
            max: 6,
            spec: 4,
            status: 4,
            cpu: 100,
            levels: vec![400, 95],
            requests: reqs(4, 1000),
            recs: Some(vec![]),
            want: 3,
            ..Hz::default()
        },
        Hz {
            name: "TestMetricsEdgeCases/empty metrics from all pods (old: TestEmptyMetrics)",
            min: 2,
            max: 6,
            spec: 4,
            status: 4,
            cpu: 100,
            requests: reqs(4, 1000),
            want: 4,
            reason: Some("FailedComputeMetricsReplicas"),
            ..Hz::default()
        },
        Hz {
            name: "TestMetricsEdgeCases/empty CPU requests (old: TestEmptyCPURequest)",
            min: 1,
            max: 5,
            spec: 1,
            status: 1,
            cpu: 100,
            levels: vec![200],
            requests: Some(vec![]),
            want: 1,
            reason: Some("FailedComputeMetricsReplicas"),
            ..Hz::default()
        },
        Hz {
            name: "TestEventCreated",
            min: 1,
            max: 5,
            spec: 1,
            status: 1,
            cpu: 50,
            levels: vec![200],
            requests: reqs(1, 200),
            want: 2,
            ..Hz::default()
        },
        Hz {
            name: "TestEventNotCreated",
            min: 1,
            max: 5,
            spec: 2,
            status: 2,
            cpu: 50,
            levels: vec![200, 200],
            requests: reqs(2, 400),
            want: 2,
            reason: Some("ReadyForNewScale"),
            ..Hz::default()
        },
        Hz {
            name: "TestCPUScalingEdgeCases/missing reports from some pods (old: TestMissingReports)",
            min: 1,
            max: 5,
            spec: 4,
            status: 4,
            cpu: 50,
            levels: vec![200],
            requests: reqs(1, 200),
            recs: Some(vec![]),
            want: 2,
            ..Hz::default()
        },
        Hz {
            name: "TestCPUScalingEdgeCases/more replicas than spec no scale (old: TestMoreReplicasThanSpecNoScale)",
            min: 1,
            max: 8,
            spec: 4,
            status: 5,
            cpu: 50,
            levels: vec![500; 5],
            requests: reqs(5, 1000),
            want: 4,
            reason: Some("ReadyForNewScale"),
            ..Hz::default()
        },
    ]);
}

#[test]
fn test_scale_timing_behavior() {
    let base = Hz {
        min: 1,
        max: 5,
        spec: 3,
        status: 3,
        ..Hz::default()
    };
    run_all(vec![
        Hz {
            name: "TestScaleTimingBehavior/no backoff upscale custom metric only (old: TestNoBackoffUpscaleCM)",
            metrics: vec![pods_avg("15")],
            levels: vec![20000, 10000, 30000],
            requests: reqs(3, 1000),
            want: 4,
            ..base.clone()
        },
        Hz {
            name: "TestScaleTimingBehavior/no backoff upscale custom metric and CPU (old: TestNoBackoffUpscaleCMNoBackoffCpu)",
            cpu: 10,
            metrics: vec![pods_avg("15")],
            levels: vec![20000, 10000, 30000],
            requests: reqs(3, 1000),
            want: 5,
            reason: Some("TooManyReplicas"),
            ..base.clone()
        },
        Hz {
            name: "TestScaleTimingBehavior/stabilize downscale (old: TestStabilizeDownscale)",
            spec: 4,
            status: 4,
            cpu: 100,
            levels: vec![50, 50, 50],
            requests: reqs(3, 100),
            recs: Some(vec![(10, 600), (4, 60)]),
            want: 4,
            reason: Some("ScaleDownStabilized"),
            ..base.clone()
        },
    ]);
}

#[test]
fn test_computed_tolerance_alg_implementation() {
    // upstream: TestComputedToleranceAlgImplementation, its derived numbers written out (see
    // upstream_replica_calculator.rs): 10 pods at 150m, requests 300m ± jitter per pod;
    // target 56 % → 9 replicas, target 55 % → within tolerance, 10.
    let per_pod = 300;
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
    let base = Hz {
        min: 1,
        max: 1000,
        spec: 10,
        status: 10,
        levels: vec![150; 10],
        requests: Some(requests),
        recs: Some(vec![]),
        ..Hz::default()
    };
    run_all(vec![
        Hz {
            name: "TestComputedToleranceAlgImplementation/tc1",
            cpu: 56,
            want: 9,
            ..base.clone()
        },
        Hz {
            name: "TestComputedToleranceAlgImplementation/tc2",
            cpu: 55,
            want: 10,
            reason: Some("ReadyForNewScale"),
            ..base.clone()
        },
    ]);
}
