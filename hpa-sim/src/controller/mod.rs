//! The HPA controller's sync: one decision per sync period, as upstream's `horizontal.go` makes
//! it (`reconcileAutoscaler`, `computeReplicasForMetrics`, the stabilization windows and the
//! scaling policies), with the same state it keeps between syncs.
//!
//! Time is the simulation's, in milliseconds. Upstream compares `time.Now()` readings with
//! strict `After`/`Before`; here every reading within a sync is the same instant, so an entry
//! exactly one window old is outside the window (upstream's is, by the microseconds a sync
//! takes).
//!
//! The stabilization windows and the scaling limits (`normalizeDesiredReplicas`, with and
//! without `behavior`) are in `behavior`; test access to the controller's memory, as upstream's
//! table tests set it, in `testing`.

mod behavior;
#[doc(hidden)]
pub mod testing;

use std::collections::BTreeMap;

use crate::calc::{self, MetricError, PodView, Tolerances};
use crate::quantity::Milli;
use crate::spec::{HpaSpec, Invalid, ResolvedBehavior, SourceType, TargetType};

use behavior::{Recommendation, ScaleEvent};

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

/// A `controller:` setting out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("controller.syncPeriodSeconds: {0} must be a positive number")]
    SyncPeriod(f64),
    #[error("controller.tolerance: {0} must be 0 or more")]
    Tolerance(f64),
    #[error("controller.downscaleStabilizationSeconds must be 0 or more")]
    DownscaleStabilization,
}

impl ControllerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.sync_period_seconds > 0.0 && self.sync_period_seconds.is_finite()) {
            return Err(ConfigError::SyncPeriod(self.sync_period_seconds));
        }
        if !(self.tolerance >= 0.0 && self.tolerance.is_finite()) {
            return Err(ConfigError::Tolerance(self.tolerance));
        }
        if self.downscale_stabilization_seconds < 0 {
            return Err(ConfigError::DownscaleStabilization);
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

impl Controller {
    pub fn new(spec: HpaSpec, cfg: ControllerConfig) -> Result<Controller, Invalid> {
        spec.validate()?;
        cfg.validate().map_err(|e| Invalid(vec![e.to_string()]))?;
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
}
