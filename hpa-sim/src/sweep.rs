//! What `hpa-sim tune` sweeps: the parameters (`--sweep NAME=FROM:TO:STEP` or `NAME=A,B,C`),
//! the saturation values shares are taken of (`--saturation METRIC=VALUE`), and the settings,
//! every combination of the sweeps applied to the scenario's HPA.
//!
//! Parameters ([`Param`]):
//! - `target.<metric>`: the metric's target value;
//! - `share.<metric>`: the target as a share of the metric's value at saturation (from
//!   `--saturation <metric>=<value>`, else from the calibration curves), the way a
//!   tensor-activity target is calibrated;
//! - `minReplicas`, `maxReplicas`, `tolerance`;
//! - `scaleUp.stabilizationWindowSeconds`, `scaleDown.stabilizationWindowSeconds`;
//! - `candidate`: names from the scenario's `candidates:` (each replaces the HPA's metrics).

use std::collections::BTreeMap;

use crate::quantity::{Milli, QuantityError};
use crate::scenario::{Loaded, Series};
use crate::spec::{Behavior, HpaSpec, ScalingRules};

/// A parameter a sweep varies. Its name as written (`Display`) is also its key in the sweep's
/// JSON (`params`) and its column in the CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// `target.<metric>`.
    Target(String),
    /// `share.<metric>`.
    Share(String),
    MinReplicas,
    MaxReplicas,
    Tolerance,
    /// `scaleUp.stabilizationWindowSeconds`.
    ScaleUpWindow,
    /// `scaleDown.stabilizationWindowSeconds`.
    ScaleDownWindow,
    Candidate,
}

/// The parameters without a metric, by name.
const FIXED: [(&str, Param); 6] = [
    ("minReplicas", Param::MinReplicas),
    ("maxReplicas", Param::MaxReplicas),
    ("tolerance", Param::Tolerance),
    ("scaleUp.stabilizationWindowSeconds", Param::ScaleUpWindow),
    (
        "scaleDown.stabilizationWindowSeconds",
        Param::ScaleDownWindow,
    ),
    ("candidate", Param::Candidate),
];

const TARGET: &str = "target.";
const SHARE: &str = "share.";

impl Param {
    /// The parameter a name means, if any.
    pub fn parse(name: &str) -> Option<Param> {
        if let Some(m) = name.strip_prefix(TARGET) {
            return Some(Param::Target(m.to_string()));
        }
        if let Some(m) = name.strip_prefix(SHARE) {
            return Some(Param::Share(m.to_string()));
        }
        FIXED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.clone())
    }

    /// Every parameter's name, the metric ones as `target.<metric>`: for help and errors.
    pub fn names() -> String {
        let mut all = vec![format!("{TARGET}<metric>"), format!("{SHARE}<metric>")];
        all.extend(FIXED.iter().map(|(n, _)| n.to_string()));
        all.join(", ")
    }

    /// The metric a target or a share is for.
    pub fn metric(&self) -> Option<&str> {
        match self {
            Param::Target(m) | Param::Share(m) => Some(m),
            _ => None,
        }
    }

    /// Whether its values are whole numbers (replica counts, seconds in an `int32` field).
    fn whole(&self) -> bool {
        matches!(
            self,
            Param::MinReplicas | Param::MaxReplicas | Param::ScaleUpWindow | Param::ScaleDownWindow
        )
    }
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Param::Target(m) => write!(f, "{TARGET}{m}"),
            Param::Share(m) => write!(f, "{SHARE}{m}"),
            fixed => {
                let name = FIXED
                    .iter()
                    .find(|(_, p)| p == fixed)
                    .map_or("", |(n, _)| n);
                f.write_str(name)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Name(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Num(v) => write!(f, "{}", trim(*v)),
            Value::Name(n) => f.write_str(n),
        }
    }
}

/// A number as short as it reads: 0.7, 5, 0.066.
pub fn trim(v: f64) -> String {
    let s = format!("{:.4}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.into()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub param: Param,
    pub values: Vec<Value>,
}

/// A `--sweep` or a `--saturation` that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SweepError {
    #[error("--sweep {0:?}: expected NAME=FROM:TO:STEP or NAME=A,B,C")]
    Syntax(String),
    #[error(
        "--sweep {text:?}: unknown parameter {param:?} (one of {})",
        Param::names()
    )]
    Unknown { text: String, param: String },
    #[error("--sweep {text:?}: {count} values; at most 1000")]
    TooMany { text: String, count: usize },
    #[error("--sweep {0:?}: FROM:TO:STEP needs three numbers, FROM <= TO and STEP > 0")]
    Range(String),
    #[error("--sweep {0:?}: values must be numbers")]
    NotNumbers(String),
    #[error("--sweep {0:?}: no values")]
    Empty(String),
    #[error("--sweep {text:?}: {param} takes whole numbers, and {value} is not one")]
    NotWhole {
        text: String,
        param: Param,
        value: String,
    },
    #[error("--saturation {0:?}: expected METRIC=VALUE")]
    SaturationSyntax(String),
    #[error("--saturation {text:?}: {value:?} is not a number")]
    SaturationNotNumber { text: String, value: String },
    #[error("--saturation {0:?}: the value must be positive")]
    SaturationNotPositive(String),
}

/// Parses `NAME=FROM:TO:STEP` or `NAME=A,B,C`.
pub fn parse_sweep(text: &str) -> Result<Sweep, SweepError> {
    let (name, spec) = text
        .split_once('=')
        .ok_or_else(|| SweepError::Syntax(text.to_string()))?;
    let name = name.trim();
    let param = Param::parse(name).ok_or_else(|| SweepError::Unknown {
        text: text.to_string(),
        param: name.to_string(),
    })?;
    let values: Vec<Value> = if param == Param::Candidate {
        spec.split(',')
            .map(|s| Value::Name(s.trim().to_string()))
            .filter(|v| *v != Value::Name(String::new()))
            .collect()
    } else if spec.contains(':') {
        let parts: Vec<&str> = spec.split(':').collect();
        let nums: Result<Vec<f64>, _> = parts.iter().map(|p| p.trim().parse::<f64>()).collect();
        match (parts.len(), nums) {
            (3, Ok(n)) if n[2] > 0.0 && n[1] >= n[0] && n.iter().all(|x| x.is_finite()) => {
                let count = ((n[1] - n[0]) / n[2] + 1e-9).floor() as usize + 1;
                if count > 1000 {
                    return Err(SweepError::TooMany {
                        text: text.to_string(),
                        count,
                    });
                }
                (0..count)
                    .map(|i| Value::Num(n[0] + i as f64 * n[2]))
                    .collect()
            }
            _ => return Err(SweepError::Range(text.to_string())),
        }
    } else {
        let nums: Result<Vec<f64>, _> = spec.split(',').map(|p| p.trim().parse::<f64>()).collect();
        nums.map_err(|_| SweepError::NotNumbers(text.to_string()))?
            .into_iter()
            .map(Value::Num)
            .collect()
    };
    if values.is_empty() {
        return Err(SweepError::Empty(text.to_string()));
    }
    if param.whole() {
        // A replica count of 1.5 would run as 1 under the label 1.5.
        for v in &values {
            if let Value::Num(n) = v {
                let whole =
                    n.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(n);
                if !whole {
                    return Err(SweepError::NotWhole {
                        text: text.to_string(),
                        param,
                        value: trim(*n),
                    });
                }
            }
        }
    }
    Ok(Sweep { param, values })
}

/// Parses the `--saturation METRIC=VALUE` list: each metric's value at saturation.
pub fn parse_saturation(texts: &[String]) -> Result<BTreeMap<String, f64>, SweepError> {
    let mut sat = BTreeMap::new();
    for s in texts {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| SweepError::SaturationSyntax(s.clone()))?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| SweepError::SaturationNotNumber {
                text: s.clone(),
                value: v.to_string(),
            })?;
        if !(v > 0.0 && v.is_finite()) {
            return Err(SweepError::SaturationNotPositive(s.clone()));
        }
        sat.insert(k.trim().to_string(), v);
    }
    Ok(sat)
}

/// A sweep whose settings cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("{param}: {metric} is not a GPU series; give its saturation value with --saturation {metric}=VALUE")]
    NoSaturation { param: Param, metric: String },
    #[error(transparent)]
    Target(QuantityError),
    #[error("{param}={value}: the target rounds to {target}, which Kubernetes rejects")]
    TargetZero {
        param: Param,
        value: Value,
        target: Milli,
    },
    #[error("{param}={value}: {error}")]
    Tolerance {
        param: Param,
        value: Value,
        error: QuantityError,
    },
    #[error("the sweep has over {0} settings; narrow it")]
    TooMany(usize),
    #[error("--sweep {param}: no metric named {metric:?} in the HPA or its candidates")]
    NoSuchMetric { param: Param, metric: String },
    #[error("candidate={name}: the scenario has no such candidate (it has: {known})")]
    NoSuchCandidate { name: String, known: String },
}

/// One setting of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// `(param, value)` pairs that apply to this setting.
    pub params: Vec<(String, String)>,
    pub candidate: Option<String>,
    pub hpa: HpaSpec,
}

fn set_window(hpa: &mut HpaSpec, up: bool, seconds: i32) {
    let b = hpa.behavior.get_or_insert_with(Behavior::default);
    let rules = if up {
        &mut b.scale_up
    } else {
        &mut b.scale_down
    };
    rules
        .get_or_insert_with(ScalingRules::default)
        .stabilization_window_seconds = Some(seconds);
}

/// Applies one parameter other than the candidate; `Ok(false)` when it does not apply (a
/// target for a metric the setting does not have).
fn apply(
    loaded: &Loaded,
    hpa: &mut HpaSpec,
    param: &Param,
    v: &Value,
    saturation: &BTreeMap<String, f64>,
    shown: &mut String,
) -> Result<bool, SettingsError> {
    let num = match v {
        Value::Num(n) => *n,
        Value::Name(_) => 0.0,
    };
    match param {
        Param::Target(metric) | Param::Share(metric) => {
            let Some(m) = hpa.metrics.iter_mut().find(|m| m.name() == metric) else {
                return Ok(false);
            };
            let target = if let Param::Share(_) = param {
                let sat = match saturation.get(metric) {
                    Some(s) => *s,
                    None => {
                        let series = loaded
                            .scenario
                            .series_of(metric)
                            .and_then(Series::gpu)
                            .ok_or_else(|| SettingsError::NoSaturation {
                                param: param.clone(),
                                metric: metric.clone(),
                            })?;
                        loaded.curves.saturation(series)
                    }
                };
                num * sat
            } else {
                num
            };
            let q = Milli::from_f64_ceil(target).map_err(SettingsError::Target)?;
            if q.0 <= 0 {
                return Err(SettingsError::TargetZero {
                    param: param.clone(),
                    value: v.clone(),
                    target: q,
                });
            }
            m.set_target(q);
            *shown = format!("{v} ({metric} target {q})");
        }
        Param::MinReplicas => hpa.min_replicas = Some(num as i32),
        Param::MaxReplicas => hpa.max_replicas = num as i32,
        // Both directions' `behavior` tolerance; a negative one is left to `validate`, which
        // rejects it as the API server would.
        Param::Tolerance => {
            let t = Milli::from_f64_ceil(num).map_err(|error| SettingsError::Tolerance {
                param: param.clone(),
                value: v.clone(),
                error,
            })?;
            let b = hpa.behavior.get_or_insert_with(Behavior::default);
            for r in [&mut b.scale_up, &mut b.scale_down] {
                r.get_or_insert_with(ScalingRules::default).tolerance = Some(t);
            }
        }
        Param::ScaleUpWindow => set_window(hpa, true, num as i32),
        Param::ScaleDownWindow => set_window(hpa, false, num as i32),
        // The candidate replaces the metrics before any other parameter applies (`settings`).
        Param::Candidate => return Ok(false),
    }
    Ok(true)
}

/// Every combination of the sweeps, deduplicated; combinations Kubernetes would reject are
/// left out and listed in the second value.
pub fn settings(
    loaded: &Loaded,
    sweeps: &[Sweep],
    saturation: &BTreeMap<String, f64>,
) -> Result<(Vec<Setting>, Vec<String>), SettingsError> {
    let sc = &loaded.scenario;
    // Whether a combination's HPA has a metric: the candidate's metrics, or the scenario's.
    let cand = sweeps.iter().position(|s| s.param == Param::Candidate);
    let has_metric = |c: &[(usize, usize)], metric: &str| -> bool {
        let metrics = match cand.and_then(|ci| c.iter().find(|(si, _)| *si == ci)) {
            Some((ci, vi)) => sc
                .candidates
                .get(&sweeps[*ci].values[*vi].to_string())
                .map_or(&[][..], |k| k.metrics.as_slice()),
            None => sc.hpa.metrics.as_slice(),
        };
        metrics.iter().any(|m| m.name() == metric)
    };
    let mut combos: Vec<Vec<(usize, usize)>> = vec![vec![]];
    // The candidate first, so that each combination knows its metrics: a target or share of a
    // metric it does not have changes nothing, so it takes one value there, not every one
    // (the combinations would only be duplicates, removed below).
    let order: Vec<usize> = cand
        .into_iter()
        .chain((0..sweeps.len()).filter(|si| Some(*si) != cand))
        .collect();
    for si in order {
        let s = &sweeps[si];
        let mut next = Vec::new();
        for c in &combos {
            let n = match s.param.metric() {
                Some(m) if !has_metric(c, m) => 1,
                _ => s.values.len(),
            };
            for vi in 0..n {
                let mut c2 = c.clone();
                c2.push((si, vi));
                next.push(c2);
            }
        }
        combos = next;
        if combos.len() > 20_000 {
            return Err(SettingsError::TooMany(combos.len()));
        }
    }
    // A target or share for a metric no setting has is a typo, not a no-op.
    for s in sweeps {
        if let Some(metric) = s.param.metric() {
            let somewhere = sc
                .hpa
                .metrics
                .iter()
                .chain(sc.candidates.values().flat_map(|c| c.metrics.iter()))
                .any(|m| m.name() == metric);
            if !somewhere {
                return Err(SettingsError::NoSuchMetric {
                    param: s.param.clone(),
                    metric: metric.to_string(),
                });
            }
        }
    }
    let mut out: Vec<Setting> = Vec::new();
    let mut rejected = Vec::new();
    for combo in combos {
        let mut hpa = sc.hpa.clone();
        let mut candidate = None;
        let mut params = Vec::new();
        // The candidate comes first in each combination (`order`): it replaces the metrics the
        // targets then apply to.
        for (si, vi) in combo {
            let s = &sweeps[si];
            let v = &s.values[vi];
            if s.param == Param::Candidate {
                let name = v.to_string();
                let c = sc
                    .candidates
                    .get(&name)
                    .ok_or_else(|| SettingsError::NoSuchCandidate {
                        name: name.clone(),
                        known: sc.candidates.keys().cloned().collect::<Vec<_>>().join(", "),
                    })?;
                hpa.metrics = c.metrics.clone();
                candidate = Some(name.clone());
                params.push((s.param.to_string(), name));
                continue;
            }
            let mut shown = v.to_string();
            if apply(loaded, &mut hpa, &s.param, v, saturation, &mut shown)? {
                params.push((s.param.to_string(), shown));
            }
        }
        if let Err(e) = hpa.validate() {
            let p: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            rejected.push(format!("{}: {}", p.join(" "), e.0.join("; ")));
            continue;
        }
        if out.iter().any(|s| s.hpa == hpa && s.candidate == candidate) {
            continue;
        }
        out.push(Setting {
            params,
            candidate,
            hpa,
        });
    }
    Ok((out, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_lists() {
        let s = parse_sweep("target.vllm_num_requests_waiting=2:10:2").expect("range");
        assert_eq!(
            s.param,
            Param::Target("vllm_num_requests_waiting".to_string())
        );
        assert_eq!(
            s.values,
            vec![
                Value::Num(2.0),
                Value::Num(4.0),
                Value::Num(6.0),
                Value::Num(8.0),
                Value::Num(10.0)
            ]
        );
        let s = parse_sweep("share.gpu_tensor_active_ratio=0.5:0.8:0.1").expect("float range");
        assert_eq!(s.values.len(), 4);
        let s = parse_sweep("candidate=queue,gpu").expect("names");
        assert_eq!(
            s.values,
            vec![Value::Name("queue".into()), Value::Name("gpu".into())]
        );
        for bad in [
            "x",
            "bogus=1:2:1",
            "maxReplicas=5:1:1",
            "maxReplicas=1:5:0",
            "maxReplicas=a,b",
        ] {
            assert!(parse_sweep(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_parameter_reads_back_under_its_own_name() {
        let mut names: Vec<String> = FIXED.iter().map(|(n, _)| n.to_string()).collect();
        names.extend(["target.kv_cache_usage".into(), "share.gpu_sm_active".into()]);
        for n in &names {
            let p = Param::parse(n).unwrap_or_else(|| panic!("{n}"));
            assert_eq!(p.to_string(), *n);
        }
        assert_eq!(Param::parse("bogus"), None);
        assert_eq!(
            Param::names(),
            "target.<metric>, share.<metric>, minReplicas, maxReplicas, tolerance, \
             scaleUp.stabilizationWindowSeconds, scaleDown.stabilizationWindowSeconds, candidate"
        );
    }

    #[test]
    fn whole_number_parameters_refuse_fractions() {
        for bad in [
            "maxReplicas=1.5",
            "minReplicas=1,2.5",
            "minReplicas=1:3:0.5",
            "scaleUp.stabilizationWindowSeconds=30.5",
            "maxReplicas=1e12",
        ] {
            let e = parse_sweep(bad).expect_err(bad);
            assert!(matches!(e, SweepError::NotWhole { .. }), "{bad}: {e}");
        }
        let e = parse_sweep("maxReplicas=1.5").expect_err("fraction");
        assert_eq!(
            e.to_string(),
            "--sweep \"maxReplicas=1.5\": maxReplicas takes whole numbers, and 1.5 is not one"
        );
        let s = parse_sweep("maxReplicas=2:6:2").expect("whole range");
        assert_eq!(s.values.len(), 3);
        // Fractions stay fine where they mean something.
        parse_sweep("tolerance=0.05,0.15").expect("tolerance");
        parse_sweep("target.vllm_num_requests_waiting=2.5").expect("target");
    }

    #[test]
    fn saturation_values_are_positive_numbers() {
        let s = parse_saturation(&["gpu_sm_active = 0.8".into()]).expect("one");
        assert_eq!(s.get("gpu_sm_active"), Some(&0.8));
        for (bad, said) in [
            ("x", "--saturation \"x\": expected METRIC=VALUE"),
            ("x=y", "--saturation \"x=y\": \"y\" is not a number"),
            ("x=0", "--saturation \"x=0\": the value must be positive"),
        ] {
            let e = parse_saturation(&[bad.into()]).expect_err(bad);
            assert_eq!(e.to_string(), said);
        }
    }

    #[test]
    fn trims_numbers() {
        assert_eq!(trim(0.7000), "0.7");
        assert_eq!(trim(5.0), "5");
        assert_eq!(trim(0.0658), "0.0658");
    }
}
