//! `hpa-sim replay`: the controller alone over a CASE file's timeline (format in
//! docs/autoscaling.md, "CASE format"), one JSON line per sync.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

use crate::calc::{Phase, PodView};
use crate::controller::{Controller, ControllerConfig, Observation, SyncOutcome};
use crate::input::{self, InputError};
use crate::quantity::Milli;
use crate::spec::HpaSpec;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    pub hpa: HpaSpec,
    #[serde(default)]
    pub controller: ControllerConfig,
    pub replicas: i32,
    pub timeline: Vec<Sync>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sync {
    pub t: f64,
    #[serde(default)]
    pub pods: Vec<CasePod>,
    #[serde(default)]
    pub object: BTreeMap<String, Milli>,
    #[serde(default)]
    pub external: BTreeMap<String, Milli>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasePod {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phase: Phase,
    #[serde(default = "yes")]
    pub ready: bool,
    #[serde(default)]
    pub deleting: bool,
    #[serde(default)]
    pub metrics: BTreeMap<String, Milli>,
    #[serde(default)]
    pub requests: BTreeMap<String, Milli>,
}

fn yes() -> bool {
    true
}

impl Sync {
    pub fn observation(&self) -> Observation {
        let pods = self
            .pods
            .iter()
            .enumerate()
            .map(|(i, p)| PodView {
                name: p.name.clone().unwrap_or_else(|| format!("pod-{i}")),
                // As upstream's pod lister: a Pending pod is not ready.
                ready: p.ready && p.phase == Phase::Running,
                phase: p.phase,
                deleting: p.deleting,
                metrics: p.metrics.clone(),
                requests: p.requests.clone(),
            })
            .collect();
        Observation {
            pods,
            object: self.object.clone(),
            external: self.external.clone(),
        }
    }
}

/// Reads and checks a CASE file.
pub fn load(path: &Path) -> Result<Case, InputError> {
    let case: Case = input::read_yaml(path)?;
    case.hpa.validate().map_err(|e| InputError::Invalid {
        path: path.to_path_buf(),
        what: e.to_string(),
    })?;
    case.controller
        .validate()
        .map_err(|e| InputError::Invalid {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
    if case.replicas < 0 {
        return Err(InputError::Invalid {
            path: path.to_path_buf(),
            what: format!("replicas: {} must be 0 or more", case.replicas),
        });
    }
    if case.timeline.is_empty() {
        return Err(InputError::Invalid {
            path: path.to_path_buf(),
            what: "timeline: no syncs".into(),
        });
    }
    let mut last = f64::NEG_INFINITY;
    for (i, s) in case.timeline.iter().enumerate() {
        if !s.t.is_finite() || s.t < 0.0 {
            return Err(InputError::Invalid {
                path: path.to_path_buf(),
                what: format!(
                    "timeline[{i}].t: {} must be a time in seconds, 0 or more",
                    s.t
                ),
            });
        }
        if s.t <= last {
            return Err(InputError::Invalid {
                path: path.to_path_buf(),
                what: format!("timeline[{i}].t: {} is not after the previous sync's {last}: syncs must be in time order", s.t),
            });
        }
        last = s.t;
    }
    Ok(case)
}

/// One output line of `replay`.
pub fn json_line(t: f64, o: &SyncOutcome) -> String {
    let t = if t.fract() == 0.0 && t.abs() < 9.0e15 {
        serde_json::Value::from(t as i64)
    } else {
        serde_json::Value::from(t)
    };
    let v = serde_json::json!({
        "t": t,
        "currentReplicas": o.current,
        "proposals": o.proposals,
        "desiredReplicas": o.desired,
        "reason": o.reason,
    });
    v.to_string()
}

/// Runs a case: each sync's outcome, in order.
pub fn run(case: &Case) -> Result<Vec<(f64, SyncOutcome)>, crate::spec::Invalid> {
    let mut ctl = Controller::new(case.hpa.clone(), case.controller)?;
    let mut current = case.replicas;
    let mut out = Vec::with_capacity(case.timeline.len());
    for s in &case.timeline {
        let o = ctl.sync((s.t * 1000.0).round() as i64, current, &s.observation());
        current = o.desired;
        out.push((s.t, o));
    }
    Ok(out)
}
