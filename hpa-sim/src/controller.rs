//! The HPA controller's sync: one decision per sync period, as upstream's `horizontal.go` makes
//! it (`reconcileAutoscaler`, `computeReplicasForMetrics`, the stabilization windows and the
//! scaling policies), with the same state it keeps between syncs.
//!
//! Time is the simulation's, in milliseconds. Upstream compares `time.Now()` readings with
//! strict `After`/`Before`; here every reading within a sync is the same instant, so an entry
//! exactly one window old is outside the window (upstream's is, by the microseconds a sync
//! takes).

use std::collections::BTreeMap;

use crate::calc::{self, MetricError, PodView, Tolerances};
use crate::quantity::Milli;
use crate::spec::{
    HpaSpec, Invalid, PolicyType, ResolvedBehavior, Rules, SelectPolicy, SourceType, TargetType,
};

/// `kube-controller-manager` flags that shape the HPA.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ControllerConfig {
    /// `--horizontal-pod-autoscaler-sync-period`.
    pub sync_period_seconds: f64,
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`.
    pub downscale_stabilization_seconds: i32,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            sync_period_seconds: 15.0,
            tolerance: 0.1,
            downscale_stabilization_seconds: 300,
        }
    }
}

impl ControllerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.sync_period_seconds > 0.0 && self.sync_period_seconds.is_finite()) {
            return Err(format!(
                "controller.syncPeriodSeconds: {} must be a positive number",
                self.sync_period_seconds
            ));
        }
        if !(self.tolerance >= 0.0 && self.tolerance.is_finite()) {
            return Err(format!(
                "controller.tolerance: {} must be 0 or more",
                self.tolerance
            ));
        }
        if self.downscale_stabilization_seconds < 0 {
            return Err("controller.downscaleStabilizationSeconds must be 0 or more".into());
        }
        Ok(())
    }
}

/// What the HPA reads at one sync.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The pods the scale's selector finds.
    pub pods: Vec<PodView>,
    /// Object metric values by metric name.
    pub object: BTreeMap<String, Milli>,
    /// External metric values by metric name (summed over the series the query returns).
    pub external: BTreeMap<String, Milli>,
}

impl Observation {
    /// The scale's `status.replicas`: the pods that exist and are not on their way out.
    pub fn status_replicas(&self) -> i32 {
        self.pods
            .iter()
            .filter(|p| {
                !p.deleting && !matches!(p.phase, calc::Phase::Failed | calc::Phase::Succeeded)
            })
            .count() as i32
    }
}

/// One sync's result.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncOutcome {
    /// The scale's replicas before the sync.
    pub current: i32,
    /// Each metric's proposal, by metric name; a metric without one is absent.
    pub proposals: BTreeMap<String, i32>,
    /// Each metric's current value as the HPA status reports it (milli-units).
    pub usage: BTreeMap<String, i64>,
    /// Why a metric had no proposal.
    pub errors: BTreeMap<String, String>,
    /// What the controller writes to the scale.
    pub desired: i32,
    pub reason: String,
}

#[derive(Debug, Clone, Copy)]
struct Recommendation {
    replicas: i32,
    at: i64,
}

#[derive(Debug, Clone, Copy)]
struct ScaleEvent {
    change: i32,
    at: i64,
    outdated: bool,
}

/// One HPA and the controller's memory of it.
#[derive(Debug, Clone)]
pub struct Controller {
    spec: HpaSpec,
    behavior: Option<ResolvedBehavior>,
    cfg: ControllerConfig,
    recommendations: Option<Vec<Recommendation>>,
    up_events: Vec<ScaleEvent>,
    down_events: Vec<ScaleEvent>,
}

const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

fn secs(s: i32) -> i64 {
    i64::from(s) * 1000
}

impl Controller {
    pub fn new(spec: HpaSpec, cfg: ControllerConfig) -> Result<Controller, Invalid> {
        spec.validate()?;
        cfg.validate().map_err(|e| Invalid(vec![e]))?;
        // maybeInitScaleDownStabilizationWindow: a present behavior without a scale-down
        // window takes the controller's flag.
        let behavior = spec.behavior.as_ref().map(|b| {
            let mut r = b.resolve();
            if r.scale_down.stabilization_window_seconds.is_none() {
                r.scale_down.stabilization_window_seconds =
                    Some(cfg.downscale_stabilization_seconds);
            }
            r
        });
        Ok(Controller {
            spec,
            behavior,
            cfg,
            recommendations: None,
            up_events: Vec::new(),
            down_events: Vec::new(),
        })
    }

    pub fn spec(&self) -> &HpaSpec {
        &self.spec
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.cfg
    }

    fn tolerances(&self) -> Tolerances {
        let mut t = Tolerances::both(self.cfg.tolerance);
        if let Some(b) = &self.behavior {
            if let Some(d) = b.scale_down.tolerance {
                t.scale_down = d;
            }
            if let Some(u) = b.scale_up.tolerance {
                t.scale_up = u;
            }
        }
        t
    }

    /// `reconcileAutoscaler`: one sync at `now` (ms) with the scale at `current` replicas.
    pub fn sync(&mut self, now: i64, current: i32, obs: &Observation) -> SyncOutcome {
        // recordInitialRecommendation
        if self.recommendations.is_none() {
            self.recommendations = Some(vec![Recommendation {
                replicas: current,
                at: now,
            }]);
        }
        let min = self.spec.min_replicas();
        let max = self.spec.max_replicas;
        let mut out = SyncOutcome {
            current,
            proposals: BTreeMap::new(),
            usage: BTreeMap::new(),
            errors: BTreeMap::new(),
            desired: current,
            reason: String::new(),
        };
        let mut desired;
        let mut condition = String::new();
        if current == 0 {
            out.reason = "ScalingDisabled: scaling is disabled since the replica count of the target is zero".into();
            return out;
        } else if current > max {
            out.reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = max;
        } else if current < min {
            out.reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = min;
        } else {
            let (metric_desired, metric_name, failed) =
                self.compute_replicas_for_metrics(current, obs, &mut out);
            if metric_desired == -1 {
                out.reason = format!(
                    "FailedComputeMetricsReplicas: {}",
                    failed.unwrap_or_default()
                );
                return out;
            }
            desired = metric_desired.max(0);
            let mut reason = String::new();
            if desired > current {
                reason = format!("{metric_name} above target");
            }
            if desired < current {
                reason = "All metrics below target".into();
            }
            let (normalized, cond) = match self.behavior.clone() {
                None => self.normalize_desired_replicas(now, current, desired, min),
                Some(b) => self.normalize_with_behaviors(now, &b, current, desired, min),
            };
            desired = normalized;
            condition = cond;
            out.reason = reason;
            if let Some(f) = failed {
                // Some metrics failed but the valid ones scale up or hold.
                condition = if condition.is_empty() {
                    f
                } else {
                    format!("{condition}; {f}")
                };
            }
        }
        if desired != current {
            self.store_scale_event(now, current, desired);
            out.desired = desired;
            if !condition.is_empty() {
                out.reason = format!("{} ({condition})", out.reason);
            }
        } else {
            out.desired = current;
            out.reason = if condition.is_empty() {
                "ReadyForNewScale: recommended size matches current size".into()
            } else {
                condition
            };
        }
        out
    }

    /// `computeReplicasForMetrics`: the largest proposal; `-1` when every metric failed or
    /// when one failed and the others would scale in (a broken metric never shrinks).
    fn compute_replicas_for_metrics(
        &self,
        current: i32,
        obs: &Observation,
        out: &mut SyncOutcome,
    ) -> (i32, String, Option<String>) {
        let tol = self.tolerances();
        let status_replicas = obs.status_replicas();
        let mut replicas = 0;
        let mut metric = String::new();
        let mut invalid = 0;
        let mut first_error = None;
        for spec in &self.spec.metrics {
            let name = spec.name().to_string();
            let target = spec.target_milli().unwrap_or(Milli(1));
            let kind = spec.target().map(|t| t.kind);
            let result: Result<calc::Proposal, MetricError> = match (spec.kind, kind) {
                (SourceType::Pods, _) => {
                    calc::plain_metric_replicas(&obs.pods, &name, current, target, tol, false)
                }
                (SourceType::Resource, Some(TargetType::Utilization)) => {
                    calc::resource_utilization_replicas(
                        &obs.pods,
                        &name,
                        current,
                        (target.0 / 1000) as i32,
                        tol,
                    )
                }
                (SourceType::Resource, _) => calc::plain_metric_replicas(
                    &obs.pods,
                    &name,
                    current,
                    target,
                    tol,
                    name == "cpu",
                ),
                (SourceType::Object, Some(TargetType::AverageValue)) => obs
                    .object
                    .get(&name)
                    .map(|v| calc::per_pod_replicas(*v, status_replicas, target, tol))
                    .ok_or_else(|| MetricError::NoValue(name.clone())),
                (SourceType::Object, _) => match obs.object.get(&name) {
                    Some(v) => calc::value_replicas(&obs.pods, *v, current, target, tol),
                    None => Err(MetricError::NoValue(name.clone())),
                },
                (SourceType::External, Some(TargetType::AverageValue)) => obs
                    .external
                    .get(&name)
                    .map(|v| calc::per_pod_replicas(*v, status_replicas, target, tol))
                    .ok_or_else(|| MetricError::NoValue(name.clone())),
                (SourceType::External, _) => match obs.external.get(&name) {
                    Some(v) => calc::value_replicas(&obs.pods, *v, current, target, tol),
                    None => Err(MetricError::NoValue(name.clone())),
                },
            };
            match result {
                Ok(p) => {
                    out.proposals.insert(name.clone(), p.replicas);
                    out.usage.insert(name.clone(), p.usage);
                    if replicas == 0 || p.replicas > replicas {
                        replicas = p.replicas;
                        metric = match spec.kind {
                            SourceType::Pods => format!("pods metric {name}"),
                            SourceType::Object => format!("object metric {name}"),
                            SourceType::External => format!("external metric {name}"),
                            SourceType::Resource => format!("{name} resource"),
                        };
                    }
                }
                Err(e) => {
                    if invalid == 0 {
                        first_error = Some(format!("{name}: {e}"));
                    }
                    invalid += 1;
                    out.errors.insert(name, e.to_string());
                }
            }
        }
        let failed = first_error.map(|e| {
            format!(
                "invalid metrics ({invalid} invalid out of {}), first error is: {e}",
                self.spec.metrics.len()
            )
        });
        if invalid >= self.spec.metrics.len() || (invalid > 0 && replicas < current) {
            return (-1, String::new(), failed);
        }
        (replicas, metric, failed)
    }

    fn recs(&mut self) -> &mut Vec<Recommendation> {
        self.recommendations.get_or_insert_with(Vec::new)
    }

    /// `normalizeDesiredReplicas`: the path of an HPA without `behavior`.
    fn normalize_desired_replicas(
        &mut self,
        now: i64,
        current: i32,
        desired: i32,
        min: i32,
    ) -> (i32, String) {
        let stabilized = self.stabilize_recommendation(now, desired);
        let mut cond = String::new();
        if stabilized != desired {
            cond = "ScaleDownStabilized: recent recommendations were higher than current one, applying the highest recent recommendation".into();
        }
        let (d, limit) =
            convert_desired_replicas_with_rules(current, stabilized, min, self.spec.max_replicas);
        if d != stabilized {
            cond = limit;
        }
        (d, cond)
    }

    /// `stabilizeRecommendation`: the highest recommendation within the controller's
    /// downscale window.
    fn stabilize_recommendation(&mut self, now: i64, desired: i32) -> i32 {
        let cutoff = now - secs(self.cfg.downscale_stabilization_seconds);
        let recs = self.recs();
        let mut max = desired;
        let mut old = None;
        for (i, r) in recs.iter().enumerate() {
            // Upstream's `rec.timestamp.Before(cutoff)`. Real syncs are one resync period plus
            // the sync's own duration apart (the key is re-queued after it is processed), so the
            // entry from exactly one window's worth of syncs ago is already outside the window;
            // with all readings of a simulated sync at one instant, that is `<=` (module doc).
            if r.at <= cutoff {
                old = Some(i);
            } else if r.replicas > max {
                max = r.replicas;
            }
        }
        let rec = Recommendation {
            replicas: desired,
            at: now,
        };
        match old {
            Some(i) => recs[i] = rec,
            None => recs.push(rec),
        }
        max
    }

    /// `normalizeDesiredReplicasWithBehaviors`.
    fn normalize_with_behaviors(
        &mut self,
        now: i64,
        b: &ResolvedBehavior,
        current: i32,
        desired: i32,
        min: i32,
    ) -> (i32, String) {
        let (stabilized, stab_reason) = self.stabilize_with_behaviors(now, b, current, desired);
        let mut cond = String::new();
        if stabilized != desired {
            cond = stab_reason;
        }
        let (d, limit) = self.convert_with_behavior_rate(now, b, current, stabilized, min);
        if d != stabilized {
            cond = limit;
        }
        (d, cond)
    }

    /// `stabilizeRecommendationWithBehaviors`: for scale-up the lowest recommendation of the
    /// up window, for scale-down the highest of the down window.
    fn stabilize_with_behaviors(
        &mut self,
        now: i64,
        b: &ResolvedBehavior,
        current: i32,
        desired: i32,
    ) -> (i32, String) {
        let up_cutoff = now - secs(b.scale_up.stabilization_window_seconds.unwrap_or(0));
        let down_cutoff = now - secs(b.scale_down.stabilization_window_seconds.unwrap_or(0));
        let recs = self.recs();
        let mut up = desired;
        let mut down = desired;
        let mut old = None;
        for (i, r) in recs.iter().enumerate() {
            if r.at > up_cutoff {
                up = up.min(r.replicas);
            }
            if r.at > down_cutoff {
                down = down.max(r.replicas);
            }
            if r.at < up_cutoff && r.at < down_cutoff {
                old = Some(i);
            }
        }
        let mut recommendation = current;
        if recommendation < up {
            recommendation = up;
        }
        if recommendation > down {
            recommendation = down;
        }
        let rec = Recommendation {
            replicas: desired,
            at: now,
        };
        match old {
            Some(i) => recs[i] = rec,
            None => recs.push(rec),
        }
        let reason = if desired >= current {
            "ScaleUpStabilized: recent recommendations were lower than current one, applying the lowest recent recommendation"
        } else {
            "ScaleDownStabilized: recent recommendations were higher than current one, applying the highest recent recommendation"
        };
        (recommendation, reason.into())
    }

    /// `convertDesiredReplicasWithBehaviorRate`.
    fn convert_with_behavior_rate(
        &self,
        now: i64,
        b: &ResolvedBehavior,
        current: i32,
        desired: i32,
        min: i32,
    ) -> (i32, String) {
        let max = self.spec.max_replicas;
        if desired > current {
            let mut limit = scale_up_limit(
                now,
                current,
                &self.up_events,
                &self.down_events,
                &b.scale_up,
            );
            if limit < current {
                limit = current;
            }
            let (allowed, reason) = if max > limit {
                (limit, "ScaleUpLimit: the desired replica count is increasing faster than the maximum scale rate")
            } else {
                (max, "TooManyReplicas: the desired replica count is more than the maximum replica count")
            };
            if desired > allowed {
                return (allowed, reason.into());
            }
        } else if desired < current {
            let mut limit = scale_down_limit(
                now,
                current,
                &self.up_events,
                &self.down_events,
                &b.scale_down,
            );
            if limit > current {
                limit = current;
            }
            let (allowed, reason) = if min < limit {
                (limit, "ScaleDownLimit: the desired replica count is decreasing faster than the maximum scale rate")
            } else {
                (min, "TooFewReplicas: the desired replica count is less than the minimum replica count")
            };
            if desired < allowed {
                return (allowed, reason.into());
            }
        }
        (desired, String::new())
    }

    /// `storeScaleEvent`: kept only for an HPA with `behavior`; an event older than the
    /// direction's longest policy period is reused for the new one.
    fn store_scale_event(&mut self, now: i64, prev: i32, new: i32) {
        let Some(b) = &self.behavior else { return };
        let (events, rules, change) = if new > prev {
            (&mut self.up_events, &b.scale_up, new - prev)
        } else {
            (&mut self.down_events, &b.scale_down, prev - new)
        };
        let longest = rules
            .policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0);
        let cutoff = now - secs(longest);
        let mut old = None;
        for (i, e) in events.iter_mut().enumerate() {
            if e.at < cutoff {
                e.outdated = true;
            }
            if e.outdated {
                old = Some(i);
            }
        }
        let ev = ScaleEvent {
            change,
            at: now,
            outdated: false,
        };
        match old {
            Some(i) => events[i] = ev,
            None => events.push(ev),
        }
    }
}

/// `convertDesiredReplicasWithRules`: min/max and the fixed scale-up limit
/// `max(2 × current, 4)` of an HPA without `behavior`.
fn convert_desired_replicas_with_rules(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> (i32, String) {
    let scale_up_limit =
        (SCALE_UP_LIMIT_FACTOR * f64::from(current)).max(SCALE_UP_LIMIT_MINIMUM) as i32;
    let (maximum, reason) = if max > scale_up_limit {
        (scale_up_limit, "ScaleUpLimit: the desired replica count is increasing faster than the maximum scale rate")
    } else {
        (
            max,
            "TooManyReplicas: the desired replica count is more than the maximum replica count",
        )
    };
    if desired < min {
        return (
            min,
            "TooFewReplicas: the desired replica count is less than the minimum replica count"
                .into(),
        );
    }
    if desired > maximum {
        return (maximum, reason.into());
    }
    (desired, String::new())
}

/// `getReplicasChangePerPeriod`.
fn change_in_period(now: i64, period_seconds: i32, events: &[ScaleEvent]) -> i32 {
    let cutoff = now - secs(period_seconds);
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.change)
        .sum()
}

/// `calculateScaleUpLimitWithScalingRules`: each policy counted from the replicas at the
/// start of its period.
fn scale_up_limit(
    now: i64,
    current: i32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    rules: &Rules,
) -> i32 {
    policy_limit(now, current, up, down, rules, true)
}

/// `calculateScaleDownLimitWithBehaviors`.
fn scale_down_limit(
    now: i64,
    current: i32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    rules: &Rules,
) -> i32 {
    policy_limit(now, current, up, down, rules, false)
}

/// Upstream's two limit functions, which differ only in direction: each policy proposes from
/// the replicas at the start of its period; `selectPolicy: Max` takes the largest change (the
/// highest proposal going up, the lowest going down), `Min` the smallest.
fn policy_limit(
    now: i64,
    current: i32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    rules: &Rules,
    scale_up: bool,
) -> i32 {
    let highest = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Max => scale_up,
        SelectPolicy::Min => !scale_up,
    };
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = if highest {
        (i32::MIN, std::cmp::max)
    } else {
        (i32::MAX, std::cmp::min)
    };
    for p in &rules.policies {
        let start = current - change_in_period(now, p.period_seconds, up)
            + change_in_period(now, p.period_seconds, down);
        let proposed = match (p.kind, scale_up) {
            (PolicyType::Pods, true) => start + p.value,
            (PolicyType::Pods, false) => start - p.value,
            // Rounded up going up, so that a small percentage still adds a pod.
            (PolicyType::Percent, true) => {
                (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
            }
            (PolicyType::Percent, false) => {
                (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// Test access to the policy arithmetic with explicit past events, as upstream's table tests
/// drive it: `(replica change, seconds ago)`.
#[doc(hidden)]
pub mod testing {
    use super::*;

    fn events(list: &[(i32, i64)], now: i64) -> Vec<ScaleEvent> {
        list.iter()
            .map(|(c, ago)| ScaleEvent {
                change: *c,
                at: now - ago * 1000,
                outdated: false,
            })
            .collect()
    }

    pub fn scale_up_limit(
        current: i32,
        up: &[(i32, i64)],
        down: &[(i32, i64)],
        rules: &Rules,
    ) -> i32 {
        let now = 10_000_000;
        super::scale_up_limit(now, current, &events(up, now), &events(down, now), rules)
    }

    pub fn scale_down_limit(
        current: i32,
        up: &[(i32, i64)],
        down: &[(i32, i64)],
        rules: &Rules,
    ) -> i32 {
        let now = 10_000_000;
        super::scale_down_limit(now, current, &events(up, now), &events(down, now), rules)
    }

    pub fn convert_desired_replicas_with_rules(
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
    ) -> (i32, String) {
        super::convert_desired_replicas_with_rules(current, desired, min, max)
    }

    /// `getReplicasChangePerPeriod` over events given as `(change, seconds ago)`.
    pub fn change_in_period(period_seconds: i32, list: &[(i32, i64)]) -> i32 {
        let now = 10_000_000;
        super::change_in_period(now, period_seconds, &events(list, now))
    }

    impl Controller {
        /// The stored recommendations' values, in stored order (upstream's tests compare
        /// `hc.recommendations[key]` after a call).
        pub fn recommendation_values(&self) -> Vec<i32> {
            self.recommendations
                .iter()
                .flatten()
                .map(|r| r.replicas)
                .collect()
        }

        /// The stored scale-up and scale-down events, each as `(change, outdated)`.
        pub fn scale_events(&self) -> [Vec<(i32, bool)>; 2] {
            let f = |v: &[ScaleEvent]| v.iter().map(|e| (e.change, e.outdated)).collect();
            [f(&self.up_events), f(&self.down_events)]
        }

        /// `storeScaleEvent` alone, at `now`.
        pub fn store_event(&mut self, now: i64, prev: i32, new: i32) {
            self.store_scale_event(now, prev, new);
        }

        /// Seeds the controller's memory: recommendations and scale events, each
        /// `(replicas or change, seconds before now)`, as upstream's tests set
        /// `hc.recommendations` and `hc.scaleUpEvents` before a call.
        pub fn seed(
            &mut self,
            now: i64,
            recs: &[(i32, i64)],
            up: &[(i32, i64)],
            down: &[(i32, i64)],
        ) {
            self.recommendations = Some(
                recs.iter()
                    .map(|(r, ago)| Recommendation {
                        replicas: *r,
                        at: now - ago * 1000,
                    })
                    .collect(),
            );
            self.up_events = events(up, now);
            self.down_events = events(down, now);
        }

        /// `normalizeDesiredReplicasWithBehaviors` (or the no-behavior path) alone, with the
        /// limiting condition's reason.
        pub fn normalize(&mut self, now: i64, current: i32, desired: i32) -> (i32, String) {
            let min = self.spec.min_replicas();
            match self.behavior.clone() {
                None => self.normalize_desired_replicas(now, current, desired, min),
                Some(b) => self.normalize_with_behaviors(now, &b, current, desired, min),
            }
        }
    }
}
