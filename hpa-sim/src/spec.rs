//! The HorizontalPodAutoscaler spec as users write it (`autoscaling/v2`), with the API server's
//! defaulting and the validation that would reject it.
//!
//! Defaulting follows `pkg/apis/autoscaling/v2/defaults.go`: `minReplicas` 1; a `behavior`
//! that is present has each missing rule filled from `GenerateHPAScaleUpRules` /
//! `GenerateHPAScaleDownRules`; an absent `behavior` stays absent (the controller then takes its
//! older path, see `controller`). Validation follows `pkg/apis/autoscaling/validation`.

use serde::Deserialize;
use std::collections::BTreeSet;

use crate::quantity::Milli;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HpaSpec {
    /// Accepted so that a real manifest's spec can be pasted; ignored.
    #[serde(default)]
    pub scale_target_ref: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
    #[serde(default)]
    pub behavior: Option<Behavior>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum SourceType {
    Pods,
    Object,
    External,
    Resource,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSpec {
    #[serde(rename = "type")]
    pub kind: SourceType,
    #[serde(default)]
    pub pods: Option<PodsSource>,
    #[serde(default)]
    pub object: Option<ObjectSource>,
    #[serde(default)]
    pub external: Option<ExternalSource>,
    #[serde(default)]
    pub resource: Option<ResourceSource>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricIdentifier {
    pub name: String,
    /// Accepted and ignored: the simulated metrics have no labels to select on.
    #[serde(default)]
    pub selector: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodsSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectSource {
    #[serde(default)]
    pub described_object: Option<serde::de::IgnoredAny>,
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceSource {
    pub name: String,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum TargetType {
    Value,
    AverageValue,
    Utilization,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricTarget {
    #[serde(rename = "type")]
    pub kind: TargetType,
    #[serde(default)]
    pub value: Option<Milli>,
    #[serde(default)]
    pub average_value: Option<Milli>,
    #[serde(default)]
    pub average_utilization: Option<i32>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Behavior {
    #[serde(default)]
    pub scale_up: Option<ScalingRules>,
    #[serde(default)]
    pub scale_down: Option<ScalingRules>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScalingRules {
    #[serde(default)]
    pub stabilization_window_seconds: Option<i32>,
    #[serde(default)]
    pub select_policy: Option<SelectPolicy>,
    #[serde(default)]
    pub policies: Option<Vec<Policy>>,
    /// `behavior.scale{Up,Down}.tolerance` (Kubernetes 1.33+, HPAConfigurableTolerance).
    #[serde(default)]
    pub tolerance: Option<Milli>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum PolicyType {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    #[serde(rename = "type")]
    pub kind: PolicyType,
    pub value: i32,
    pub period_seconds: i32,
}

/// One direction's rules after defaulting: every field set.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// `None` only for scale-down before the controller fills in its
    /// `--horizontal-pod-autoscaler-downscale-stabilization` (300 s).
    pub stabilization_window_seconds: Option<i32>,
    pub select_policy: SelectPolicy,
    pub policies: Vec<Policy>,
    pub tolerance: Option<f64>,
}

/// Defaulted behavior, as the controller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedBehavior {
    pub scale_up: Rules,
    pub scale_down: Rules,
}

/// `GenerateHPAScaleUpRules` with nothing given: 4 pods or 100 % per 15 s, the larger, no
/// stabilization.
pub fn default_scale_up() -> Rules {
    Rules {
        stabilization_window_seconds: Some(0),
        select_policy: SelectPolicy::Max,
        policies: vec![
            Policy {
                kind: PolicyType::Pods,
                value: 4,
                period_seconds: 15,
            },
            Policy {
                kind: PolicyType::Percent,
                value: 100,
                period_seconds: 15,
            },
        ],
        tolerance: None,
    }
}

/// `GenerateHPAScaleDownRules` with nothing given: 100 % per 15 s; the window is left to the
/// controller's flag.
pub fn default_scale_down() -> Rules {
    Rules {
        stabilization_window_seconds: None,
        select_policy: SelectPolicy::Max,
        policies: vec![Policy {
            kind: PolicyType::Percent,
            value: 100,
            period_seconds: 15,
        }],
        tolerance: None,
    }
}

/// `copyHPAScalingRules(from, defaults)`: each field the user set wins.
fn merge(from: Option<&ScalingRules>, mut to: Rules) -> Rules {
    if let Some(from) = from {
        if let Some(w) = from.stabilization_window_seconds {
            to.stabilization_window_seconds = Some(w);
        }
        if let Some(p) = from.select_policy {
            to.select_policy = p;
        }
        if let Some(p) = &from.policies {
            to.policies = p.clone();
        }
        if let Some(t) = from.tolerance {
            to.tolerance = Some(t.as_f64());
        }
    }
    to
}

impl Behavior {
    pub fn resolve(&self) -> ResolvedBehavior {
        ResolvedBehavior {
            scale_up: merge(self.scale_up.as_ref(), default_scale_up()),
            scale_down: merge(self.scale_down.as_ref(), default_scale_down()),
        }
    }
}

impl MetricSpec {
    /// The name proposals are keyed by: the metric's name (a Resource metric's resource).
    pub fn name(&self) -> &str {
        match self.kind {
            SourceType::Pods => self.pods.as_ref().map(|p| p.metric.name.as_str()),
            SourceType::Object => self.object.as_ref().map(|p| p.metric.name.as_str()),
            SourceType::External => self.external.as_ref().map(|p| p.metric.name.as_str()),
            SourceType::Resource => self.resource.as_ref().map(|p| p.name.as_str()),
        }
        .unwrap_or("")
    }

    pub fn target(&self) -> Option<&MetricTarget> {
        match self.kind {
            SourceType::Pods => self.pods.as_ref().map(|p| &p.target),
            SourceType::Object => self.object.as_ref().map(|p| &p.target),
            SourceType::External => self.external.as_ref().map(|p| &p.target),
            SourceType::Resource => self.resource.as_ref().map(|p| &p.target),
        }
    }

    /// The target's value in milli-units, whichever field the target type reads.
    pub fn target_milli(&self) -> Option<Milli> {
        let t = self.target()?;
        match t.kind {
            TargetType::Value => t.value,
            TargetType::AverageValue => t.average_value,
            TargetType::Utilization => t.average_utilization.map(|u| Milli(i64::from(u) * 1000)),
        }
    }

    /// Sets the target's value (used by sweeps), keeping its type.
    pub fn set_target(&mut self, v: Milli) {
        let t = match self.kind {
            SourceType::Pods => self.pods.as_mut().map(|p| &mut p.target),
            SourceType::Object => self.object.as_mut().map(|p| &mut p.target),
            SourceType::External => self.external.as_mut().map(|p| &mut p.target),
            SourceType::Resource => self.resource.as_mut().map(|p| &mut p.target),
        };
        if let Some(t) = t {
            match t.kind {
                TargetType::Value => t.value = Some(v),
                TargetType::AverageValue => t.average_value = Some(v),
                TargetType::Utilization => t.average_utilization = Some((v.0 / 1000) as i32),
            }
        }
    }
}

/// Why Kubernetes would reject an HPA: every problem, each with its field path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the API server would reject this HorizontalPodAutoscaler:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct Invalid(pub Vec<String>);

impl HpaSpec {
    pub fn min_replicas(&self) -> i32 {
        self.min_replicas.unwrap_or(1)
    }

    /// The checks of `ValidateHorizontalPodAutoscalerSpec` that apply to the fields above.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut errs = Vec::new();
        let min = self.min_replicas();
        if min < 1 {
            errs.push(format!(
                "spec.minReplicas: Invalid value: {min}: must be greater than or equal to 1 (0 needs the alpha HPAScaleToZero gate, which the simulator does not model)"
            ));
        }
        if self.max_replicas < 1 {
            errs.push(format!(
                "spec.maxReplicas: Invalid value: {}: must be greater than 0",
                self.max_replicas
            ));
        }
        if self.max_replicas < min {
            errs.push(format!(
                "spec.maxReplicas: Invalid value: {}: must be greater than or equal to `minReplicas` ({min})",
                self.max_replicas
            ));
        }
        if self.metrics.is_empty() {
            errs.push("spec.metrics: Required value: the simulator needs at least one metric (Kubernetes would default to 80 % CPU, which it does not model)".into());
        }
        let mut names = BTreeSet::new();
        for (i, m) in self.metrics.iter().enumerate() {
            validate_metric(&format!("spec.metrics[{i}]"), m, &mut errs);
            if !m.name().is_empty() && !names.insert(m.name().to_string()) {
                errs.push(format!(
                    "spec.metrics[{i}]: Duplicate value: metric {:?} appears twice (proposals are reported by name)",
                    m.name()
                ));
            }
        }
        if let Some(b) = &self.behavior {
            for (dir, rules) in [("scaleUp", &b.scale_up), ("scaleDown", &b.scale_down)] {
                if let Some(r) = rules {
                    validate_rules(&format!("spec.behavior.{dir}"), r, &mut errs);
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Invalid(errs))
        }
    }
}

fn validate_metric(path: &str, m: &MetricSpec, errs: &mut Vec<String>) {
    let (field, present, allowed): (&str, bool, &[TargetType]) = match m.kind {
        SourceType::Pods => ("pods", m.pods.is_some(), &[TargetType::AverageValue]),
        SourceType::Object => (
            "object",
            m.object.is_some(),
            &[TargetType::Value, TargetType::AverageValue],
        ),
        SourceType::External => (
            "external",
            m.external.is_some(),
            &[TargetType::Value, TargetType::AverageValue],
        ),
        SourceType::Resource => (
            "resource",
            m.resource.is_some(),
            &[TargetType::Utilization, TargetType::AverageValue],
        ),
    };
    if !present {
        errs.push(format!(
            "{path}.{field}: Required value: must populate information for the given metric source"
        ));
        return;
    }
    let set = [
        m.pods.is_some(),
        m.object.is_some(),
        m.external.is_some(),
        m.resource.is_some(),
    ];
    if set.iter().filter(|s| **s).count() > 1 {
        errs.push(format!(
            "{path}: Forbidden: must populate the given metric source only"
        ));
    }
    if m.name().is_empty() {
        errs.push(format!(
            "{path}.{field}.metric.name: Required value: must specify a metric name"
        ));
    }
    let Some(t) = m.target() else { return };
    if !allowed.contains(&t.kind) {
        errs.push(format!(
            "{path}.{field}.target.type: Unsupported value: {:?}: supported values: {}",
            t.kind,
            allowed
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return;
    }
    match t.kind {
        TargetType::Value => match t.value {
            None => errs.push(format!("{path}.{field}.target.value: Required value: must set either a target value for metric or a per-pod target")),
            Some(v) if v.0 <= 0 => errs.push(format!("{path}.{field}.target.value: Invalid value: {v}: must be positive")),
            _ => {}
        },
        TargetType::AverageValue => match t.average_value {
            None => errs.push(format!("{path}.{field}.target.averageValue: Required value: must set either a target value for metric or a per-pod target")),
            Some(v) if v.0 <= 0 => errs.push(format!("{path}.{field}.target.averageValue: Invalid value: {v}: must be positive")),
            _ => {}
        },
        TargetType::Utilization => match t.average_utilization {
            None => errs.push(format!("{path}.{field}.target.averageUtilization: Required value: must set a target utilization")),
            Some(v) if v <= 0 => errs.push(format!("{path}.{field}.target.averageUtilization: Invalid value: {v}: must be greater than 0")),
            _ => {}
        },
    }
}

fn validate_rules(path: &str, r: &ScalingRules, errs: &mut Vec<String>) {
    if let Some(w) = r.stabilization_window_seconds {
        if !(0..=3600).contains(&w) {
            errs.push(format!(
                "{path}.stabilizationWindowSeconds: Invalid value: {w}: must be between 0 and 3600"
            ));
        }
    }
    if let Some(t) = r.tolerance {
        if t.0 < 0 {
            errs.push(format!(
                "{path}.tolerance: Invalid value: {t}: must be greater than or equal to 0"
            ));
        }
    }
    if let Some(policies) = &r.policies {
        if policies.is_empty() && r.select_policy != Some(SelectPolicy::Disabled) {
            errs.push(format!(
                "{path}.policies: Required value: must specify at least one Policy"
            ));
        }
        for (i, p) in policies.iter().enumerate() {
            if p.value <= 0 {
                errs.push(format!(
                    "{path}.policies[{i}].value: Invalid value: {}: must be greater than zero",
                    p.value
                ));
            }
            if !(1..=1800).contains(&p.period_seconds) {
                errs.push(format!(
                    "{path}.policies[{i}].periodSeconds: Invalid value: {}: must be greater than zero and less than or equal to 1800",
                    p.period_seconds
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> HpaSpec {
        serde_saphyr::from_str(yaml).expect("spec parses")
    }

    #[test]
    fn present_behavior_is_filled_from_upstream_defaults() {
        let s = spec("maxReplicas: 5\nmetrics: []\nbehavior:\n  scaleDown:\n    stabilizationWindowSeconds: 60\n");
        let b = s.behavior.expect("behavior").resolve();
        assert_eq!(b.scale_up, default_scale_up());
        assert_eq!(b.scale_down.stabilization_window_seconds, Some(60));
        assert_eq!(b.scale_down.policies, default_scale_down().policies);
    }

    #[test]
    fn rejects_what_the_api_server_rejects() {
        let s = spec(
            "minReplicas: 5\nmaxReplicas: 2\nmetrics:\n- type: Pods\n  pods:\n    metric: {name: q}\n    target: {type: Value, value: 1}\nbehavior:\n  scaleUp:\n    stabilizationWindowSeconds: 4000\n    policies: [{type: Pods, value: 0, periodSeconds: 0}]\n",
        );
        let err = s.validate().expect_err("invalid").0.join("\n");
        for needle in [
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas` (5)",
            "spec.metrics[0].pods.target.type: Unsupported value: Value",
            "spec.behavior.scaleUp.stabilizationWindowSeconds",
            "spec.behavior.scaleUp.policies[0].value",
            "spec.behavior.scaleUp.policies[0].periodSeconds",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in\n{err}");
        }
    }
}
