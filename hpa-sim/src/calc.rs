//! The replica calculator: one metric's proposal, as upstream's `replica_calculator.go` computes it.
//!
//! Every value is an integer number of milli-units, as the controller reads quantities; the
//! average of a Pods metric is an integer division (`GetMetricUsageRatio`), the ratio a float,
//! the proposal `ceil(ratio × pods)`. Function names follow upstream's so that a reader can
//! hold the two side by side.

use std::collections::{BTreeMap, BTreeSet};

use crate::quantity::Milli;

/// A pod as the HPA's pod lister sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    pub name: String,
    pub phase: Phase,
    pub ready: bool,
    pub deleting: bool,
    /// Pods and Resource metric values, by metric name; a missing name is a missing metric.
    pub metrics: BTreeMap<String, Milli>,
    /// Resource requests by resource name (for `Utilization` targets).
    pub requests: BTreeMap<String, Milli>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
pub enum Phase {
    #[default]
    Running,
    Pending,
    Failed,
    Succeeded,
}

/// `Tolerances` (Kubernetes 1.33+): a ratio within `[1 - down, 1 + up]` proposes no change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    pub scale_down: f64,
    pub scale_up: f64,
}

impl Tolerances {
    pub fn both(t: f64) -> Tolerances {
        Tolerances {
            scale_down: t,
            scale_up: t,
        }
    }

    pub fn is_within(self, usage_ratio: f64) -> bool {
        (1.0 - self.scale_down) <= usage_ratio && usage_ratio <= (1.0 + self.scale_up)
    }
}

/// Why a metric has no proposal this sync (upstream returns an error and the HPA marks the
/// metric invalid).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetrics,
    #[error("unable to get metric {0}: no value")]
    NoValue(String),
    #[error("missing request for {0}")]
    MissingRequest(String),
    #[error("unable to calculate ready pods: no pods returned by selector while calculating replica count")]
    NoReadyPods,
}

/// A proposal and the usage the HPA would put in its status (milli-units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    pub replicas: i32,
    pub usage: i64,
}

fn ceil_i32(v: f64) -> i32 {
    let c = v.ceil();
    if c >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        c as i32
    }
}

/// `groupPods`: ready count, and the unready, missing and ignored pods. Unready pods are
/// only a CPU notion: for every other metric a not-ready pod with a value counts.
fn group_pods(
    pods: &[PodView],
    metrics: &BTreeMap<String, i64>,
    cpu: bool,
) -> (i32, BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let mut ready = 0;
    let (mut unready, mut missing, mut ignored) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for pod in pods {
        if pod.deleting || matches!(pod.phase, Phase::Failed | Phase::Succeeded) {
            ignored.insert(pod.name.clone());
            continue;
        }
        if pod.phase == Phase::Pending {
            unready.insert(pod.name.clone());
            continue;
        }
        if !metrics.contains_key(&pod.name) {
            missing.insert(pod.name.clone());
            continue;
        }
        // Upstream's CPU test also looks at the start time, the readiness transition and
        // the metric window; a replay case states readiness directly.
        if cpu && !pod.ready {
            unready.insert(pod.name.clone());
            continue;
        }
        ready += 1;
    }
    (ready, unready, missing, ignored)
}

/// `GetMetricUsageRatio`: the average is an integer division of the milli-values.
fn usage_ratio(metrics: &BTreeMap<String, i64>, target: i64) -> (f64, i64) {
    let total: i64 = metrics.values().fold(0i64, |a, v| a.saturating_add(*v));
    let usage = total / metrics.len().max(1) as i64;
    (usage as f64 / target as f64, usage)
}

/// `calcPlainMetricReplicas`: a Pods metric (or a Resource metric's `AverageValue`), with
/// `current` the scale's spec replicas.
pub fn plain_metric_replicas(
    pods: &[PodView],
    metric: &str,
    current: i32,
    target: Milli,
    tol: Tolerances,
    cpu: bool,
) -> Result<Proposal, MetricError> {
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    let mut metrics: BTreeMap<String, i64> = pods
        .iter()
        .filter_map(|p| p.metrics.get(metric).map(|v| (p.name.clone(), v.0)))
        .collect();
    let (ready, unready, missing, ignored) = group_pods(pods, &metrics, cpu);
    for name in ignored.iter().chain(unready.iter()) {
        metrics.remove(name);
    }
    if metrics.is_empty() {
        return Err(MetricError::NoMetrics);
    }
    let (ratio, usage) = usage_ratio(&metrics, target.0);
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if tol.is_within(ratio) {
            return Ok(Proposal {
                replicas: current,
                usage,
            });
        }
        return Ok(Proposal {
            replicas: ceil_i32(ratio * f64::from(ready)),
            usage,
        });
    }
    if !missing.is_empty() {
        if ratio < 1.0 {
            // On a scale-down, a missing pod counts as exactly at the target.
            for name in &missing {
                metrics.insert(name.clone(), target.0);
            }
        } else if ratio > 1.0 {
            // On a scale-up, as 0.
            for name in &missing {
                metrics.insert(name.clone(), 0);
            }
        }
    }
    if scale_up_with_unready {
        for name in &unready {
            metrics.insert(name.clone(), 0);
        }
    }
    let (new_ratio, _) = usage_ratio(&metrics, target.0);
    if tol.is_within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        // Too small a change, or the rebalancing flipped the direction.
        return Ok(Proposal {
            replicas: current,
            usage,
        });
    }
    let new_replicas = ceil_i32(new_ratio * metrics.len() as f64);
    if (new_ratio < 1.0 && new_replicas > current) || (new_ratio > 1.0 && new_replicas < current) {
        return Ok(Proposal {
            replicas: current,
            usage,
        });
    }
    Ok(Proposal {
        replicas: new_replicas,
        usage,
    })
}

/// `GetResourceReplicas`: a Resource metric's `Utilization` target (percent of requests).
pub fn resource_utilization_replicas(
    pods: &[PodView],
    resource: &str,
    current: i32,
    target_percent: i32,
    tol: Tolerances,
) -> Result<Proposal, MetricError> {
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    let cpu = resource == "cpu";
    let mut metrics: BTreeMap<String, i64> = pods
        .iter()
        .filter_map(|p| p.metrics.get(resource).map(|v| (p.name.clone(), v.0)))
        .collect();
    let (ready, unready, missing, ignored) = group_pods(pods, &metrics, cpu);
    for name in ignored.iter().chain(unready.iter()) {
        metrics.remove(name);
    }
    let mut requests = BTreeMap::new();
    for p in pods {
        match p.requests.get(resource) {
            Some(r) => {
                requests.insert(p.name.clone(), r.0);
            }
            None => return Err(MetricError::MissingRequest(resource.to_string())),
        }
    }
    if metrics.is_empty() {
        return Err(MetricError::NoMetrics);
    }
    let ratio_of = |metrics: &BTreeMap<String, i64>| -> Result<(f64, i64), MetricError> {
        let (mut m, mut r) = (0i64, 0i64);
        for (name, v) in metrics {
            if let Some(req) = requests.get(name) {
                m += v;
                r += req;
            }
        }
        if r == 0 {
            return Err(MetricError::NoMetrics);
        }
        let util = (m * 100) / r;
        Ok((util as f64 / f64::from(target_percent), util))
    };
    let (ratio, util) = ratio_of(&metrics)?;
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if tol.is_within(ratio) {
            return Ok(Proposal {
                replicas: current,
                usage: util,
            });
        }
        return Ok(Proposal {
            replicas: ceil_i32(ratio * f64::from(ready)),
            usage: util,
        });
    }
    if !missing.is_empty() {
        // On a scale-down a missing pod counts as using max(100 %, target) of its request;
        // on a scale-up, as 0.
        let fallback = i64::from(target_percent.max(100));
        for name in &missing {
            if ratio < 1.0 {
                let req = requests.get(name).copied().unwrap_or(0);
                metrics.insert(name.clone(), req * fallback / 100);
            } else if ratio > 1.0 {
                metrics.insert(name.clone(), 0);
            }
        }
    }
    if scale_up_with_unready {
        for name in &unready {
            metrics.insert(name.clone(), 0);
        }
    }
    let (new_ratio, _) = ratio_of(&metrics)?;
    if tol.is_within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(Proposal {
            replicas: current,
            usage: util,
        });
    }
    let new_replicas = ceil_i32(new_ratio * metrics.len() as f64);
    if (new_ratio < 1.0 && new_replicas > current) || (new_ratio > 1.0 && new_replicas < current) {
        return Ok(Proposal {
            replicas: current,
            usage: util,
        });
    }
    Ok(Proposal {
        replicas: new_replicas,
        usage: util,
    })
}

/// `getReadyPodsCount`: Running and ready.
fn ready_pods(pods: &[PodView]) -> Result<i32, MetricError> {
    if pods.is_empty() {
        return Err(MetricError::NoReadyPods);
    }
    Ok(pods
        .iter()
        .filter(|p| p.phase == Phase::Running && p.ready)
        .count() as i32)
}

/// `getUsageRatioReplicaCount`, for Object and External `Value` targets: `ceil(ratio × ready
/// pods)`; from 0 replicas, `ceil(ratio)`.
fn usage_ratio_replica_count(
    pods: &[PodView],
    current: i32,
    ratio: f64,
    tol: Tolerances,
) -> Result<i32, MetricError> {
    if current != 0 {
        if tol.is_within(ratio) {
            return Ok(current);
        }
        let ready = ready_pods(pods)?;
        Ok(ceil_i32(ratio * f64::from(ready)))
    } else {
        Ok(ceil_i32(ratio))
    }
}

/// `GetObjectMetricReplicas` and `GetExternalMetricReplicas` (a `Value` target), with
/// `current` the scale's spec replicas.
pub fn value_replicas(
    pods: &[PodView],
    value: Milli,
    current: i32,
    target: Milli,
    tol: Tolerances,
) -> Result<Proposal, MetricError> {
    let ratio = value.0 as f64 / target.0 as f64;
    let replicas = usage_ratio_replica_count(pods, current, ratio, tol)?;
    Ok(Proposal {
        replicas,
        usage: value.0,
    })
}

/// `GetObjectPerPodMetricReplicas` and `GetExternalPerPodMetricReplicas` (an `AverageValue`
/// target), with `status_replicas` the scale's status replicas.
pub fn per_pod_replicas(
    value: Milli,
    status_replicas: i32,
    target: Milli,
    tol: Tolerances,
) -> Proposal {
    let mut replicas = status_replicas;
    let ratio = value.0 as f64 / (target.0 as f64 * f64::from(status_replicas));
    if !tol.is_within(ratio) {
        replicas = ceil_i32(value.0 as f64 / target.0 as f64);
    }
    let usage = if status_replicas == 0 {
        0
    } else {
        (value.0 as f64 / f64::from(status_replicas)).ceil() as i64
    };
    Proposal { replicas, usage }
}
