//! `hpa-sim tune`: sweeps targets, replica bounds, stabilization windows and candidate metric
//! sets over a scenario, and picks the cheapest setting that meets the latency goal without
//! flapping.
//!
//! Parameters (`--sweep NAME=FROM:TO:STEP` or `NAME=A,B,C`):
//! - `target.<metric>`: the metric's target value;
//! - `share.<metric>`: the target as a share of the metric's value at saturation (from
//!   `--saturation <metric>=<value>`, else from the calibration curves), the way a
//!   tensor-activity target is calibrated;
//! - `minReplicas`, `maxReplicas`, `tolerance`;
//! - `scaleUp.stabilizationWindowSeconds`, `scaleDown.stabilizationWindowSeconds`;
//! - `candidate`: names from the scenario's `candidates:` (each replaces the HPA's metrics).

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::bounds::Bounds;
use crate::quantity::Milli;
use crate::scenario::{Loaded, Series};
use crate::simulate::{self, Totals};
use crate::spec::{Behavior, HpaSpec, Invalid, ScalingRules};

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
    pub param: String,
    pub values: Vec<Value>,
}

const PARAMS: &str = "target.<metric>, share.<metric>, minReplicas, maxReplicas, tolerance, scaleUp.stabilizationWindowSeconds, scaleDown.stabilizationWindowSeconds, candidate";

/// Parameters whose values are whole numbers (replica counts, seconds in an `int32` field).
const WHOLE: [&str; 4] = [
    "minReplicas",
    "maxReplicas",
    "scaleUp.stabilizationWindowSeconds",
    "scaleDown.stabilizationWindowSeconds",
];

/// A `--sweep` that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SweepError {
    #[error("--sweep {0:?}: expected NAME=FROM:TO:STEP or NAME=A,B,C")]
    Syntax(String),
    #[error("--sweep {text:?}: unknown parameter {param:?} (one of {PARAMS})")]
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
        param: String,
        value: String,
    },
}

/// Parses `NAME=FROM:TO:STEP` or `NAME=A,B,C`.
pub fn parse_sweep(text: &str) -> Result<Sweep, SweepError> {
    let (param, spec) = text
        .split_once('=')
        .ok_or_else(|| SweepError::Syntax(text.to_string()))?;
    let param = param.trim().to_string();
    let known = param.starts_with("target.")
        || param.starts_with("share.")
        || WHOLE.contains(&param.as_str())
        || matches!(param.as_str(), "tolerance" | "candidate");
    if !known {
        return Err(SweepError::Unknown {
            text: text.to_string(),
            param,
        });
    }
    let values: Vec<Value> = if param == "candidate" {
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
    if WHOLE.contains(&param.as_str()) {
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

/// Applies one parameter; `Ok(false)` when it does not apply (a target for a metric the
/// setting does not have).
fn apply(
    loaded: &Loaded,
    hpa: &mut HpaSpec,
    param: &str,
    v: &Value,
    saturation: &BTreeMap<String, f64>,
    shown: &mut String,
) -> Result<bool, String> {
    let num = match v {
        Value::Num(n) => *n,
        Value::Name(_) => 0.0,
    };
    if let Some(metric) = param
        .strip_prefix("target.")
        .or_else(|| param.strip_prefix("share."))
    {
        let Some(m) = hpa.metrics.iter_mut().find(|m| m.name() == metric) else {
            return Ok(false);
        };
        let target = if param.starts_with("share.") {
            let sat = match saturation.get(metric) {
                Some(s) => *s,
                None => {
                    let series = loaded.scenario.series_of(metric).and_then(Series::gpu).ok_or_else(|| {
                        format!("{param}: {metric} is not a GPU series; give its saturation value with --saturation {metric}=VALUE")
                    })?;
                    loaded.curves.saturation(series)
                }
            };
            num * sat
        } else {
            num
        };
        let q = Milli::from_f64_ceil(target).map_err(|e| e.to_string())?;
        if q.0 <= 0 {
            return Err(format!(
                "{param}={v}: the target rounds to {q}, which Kubernetes rejects"
            ));
        }
        m.set_target(q);
        *shown = format!("{v} ({metric} target {q})");
        return Ok(true);
    }
    match param {
        "minReplicas" => hpa.min_replicas = Some(num as i32),
        "maxReplicas" => hpa.max_replicas = num as i32,
        // Both directions' `behavior` tolerance; a negative one is left to `validate`, which
        // rejects it as the API server would.
        "tolerance" => {
            let t = Milli::from_f64_ceil(num).map_err(|e| format!("{param}={v}: {e}"))?;
            let b = hpa.behavior.get_or_insert_with(Behavior::default);
            for r in [&mut b.scale_up, &mut b.scale_down] {
                r.get_or_insert_with(ScalingRules::default).tolerance = Some(t);
            }
        }
        "scaleUp.stabilizationWindowSeconds" => set_window(hpa, true, num as i32),
        "scaleDown.stabilizationWindowSeconds" => set_window(hpa, false, num as i32),
        _ => return Err(format!("unknown parameter {param}")),
    }
    Ok(true)
}

/// Every combination of the sweeps, deduplicated; combinations Kubernetes would reject are
/// left out and listed in the second value.
pub fn settings(
    loaded: &Loaded,
    sweeps: &[Sweep],
    saturation: &BTreeMap<String, f64>,
) -> Result<(Vec<Setting>, Vec<String>), String> {
    let sc = &loaded.scenario;
    // The metric names each combination's HPA will have: the candidate's, or the scenario's.
    let cand = sweeps.iter().position(|s| s.param == "candidate");
    let names_of = |c: &[(usize, usize)]| -> Vec<String> {
        let metrics = match cand.and_then(|ci| c.iter().find(|(si, _)| *si == ci)) {
            Some((ci, vi)) => sc
                .candidates
                .get(&sweeps[*ci].values[*vi].to_string())
                .map(|k| k.metrics.clone())
                .unwrap_or_default(),
            None => sc.hpa.metrics.clone(),
        };
        metrics.iter().map(|m| m.name().to_string()).collect()
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
        let metric = s
            .param
            .strip_prefix("target.")
            .or_else(|| s.param.strip_prefix("share."));
        let mut next = Vec::new();
        for c in &combos {
            let n = match metric {
                Some(m) if !names_of(c).iter().any(|x| x == m) => 1,
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
            return Err(format!(
                "the sweep has over {} settings; narrow it",
                combos.len()
            ));
        }
    }
    // A target or share for a metric no setting has is a typo, not a no-op.
    for s in sweeps {
        if let Some(metric) = s
            .param
            .strip_prefix("target.")
            .or_else(|| s.param.strip_prefix("share."))
        {
            let somewhere = sc
                .hpa
                .metrics
                .iter()
                .chain(sc.candidates.values().flat_map(|c| c.metrics.iter()))
                .any(|m| m.name() == metric);
            if !somewhere {
                return Err(format!(
                    "--sweep {}: no metric named {metric:?} in the HPA or its candidates",
                    s.param
                ));
            }
        }
    }
    let mut out: Vec<Setting> = Vec::new();
    let mut rejected = Vec::new();
    for combo in combos {
        let mut hpa = sc.hpa.clone();
        let mut candidate = None;
        let mut params = Vec::new();
        // The candidate first: it replaces the metrics the targets then apply to.
        let mut ordered = combo.clone();
        ordered.sort_by_key(|(si, _)| sweeps[*si].param != "candidate");
        for (si, vi) in ordered {
            let s = &sweeps[si];
            let v = &s.values[vi];
            if s.param == "candidate" {
                let name = v.to_string();
                let c = sc.candidates.get(&name).ok_or_else(|| {
                    format!(
                        "candidate={name}: the scenario has no such candidate (it has: {})",
                        sc.candidates.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                })?;
                hpa.metrics = c.metrics.clone();
                candidate = Some(name.clone());
                params.push((s.param.clone(), name));
                continue;
            }
            let mut shown = v.to_string();
            if apply(loaded, &mut hpa, &s.param, v, saturation, &mut shown)? {
                params.push((s.param.clone(), shown));
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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub params: BTreeMap<String, String>,
    pub candidate: Option<String>,
    pub totals: Totals,
    /// The yardsticks of this setting's own replica range.
    pub lower_bound_gpu_hours: f64,
    pub best_schedule_gpu_hours: f64,
    pub best_schedule_meets_goal: bool,
    /// GPU-hours over the lower bound's (at least 1 for a setting that meets the goal) and
    /// over the best schedule's.
    pub ratio_to_lower_bound: f64,
    pub ratio_to_best_schedule: f64,
}

/// A sweep that could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("a sweep worker failed")]
    Worker,
    #[error("setting {0} was not run")]
    NotRun(usize),
}

/// Runs every setting on `threads` threads, each judged by its own bounds (`bounds[i]` for
/// `settings[i]`); `progress(done, total, outcome)` after each.
pub fn run_all(
    loaded: &Loaded,
    settings: &[Setting],
    bounds: &[Arc<Bounds>],
    threads: usize,
    progress: &(dyn Fn(usize, usize, &Outcome) + Sync),
) -> Result<Vec<Outcome>, RunError> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Outcome, Invalid>>>> =
        Mutex::new(vec![None; settings.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let (Some(setting), Some(b)) = (settings.get(i), bounds.get(i)) else {
                    break;
                };
                let r = simulate::run(loaded, &setting.hpa, &mut |_| {}).map(|run| {
                    let lower = b.lower.gpu_hours;
                    let best = b.best_schedule.gpu_hours;
                    Outcome {
                        params: setting.params.iter().cloned().collect(),
                        candidate: setting.candidate.clone(),
                        lower_bound_gpu_hours: lower,
                        best_schedule_gpu_hours: best,
                        best_schedule_meets_goal: b.best_schedule.meets_goal,
                        ratio_to_lower_bound: run.totals.gpu_hours / lower.max(1e-9),
                        ratio_to_best_schedule: run.totals.gpu_hours / best.max(1e-9),
                        totals: run.totals,
                    }
                });
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                if let Ok(o) = &r {
                    progress(n, settings.len(), o);
                }
                if let Ok(mut res) = results.lock() {
                    res[i] = Some(r);
                }
            });
        }
    });
    let res = results.into_inner().map_err(|_| RunError::Worker)?;
    res.into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            Some(r) => r.map_err(RunError::from),
            None => Err(RunError::NotRun(i)),
        })
        .collect()
}

/// The recommendation: the fewest GPU-hours among the settings that meet the goal; ties go
/// to fewer scale events, then the lower p95 wait.
pub fn recommend(outcomes: &[Outcome]) -> Option<usize> {
    best_of(outcomes, |_| true)
}

fn best_of(outcomes: &[Outcome], keep: impl Fn(&Outcome) -> bool) -> Option<usize> {
    outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.totals.meets_goal && keep(o))
        .min_by(|a, b| {
            a.1.totals
                .gpu_hours
                .total_cmp(&b.1.totals.gpu_hours)
                .then(a.1.totals.scale_events.cmp(&b.1.totals.scale_events))
                .then(a.1.totals.wait_p95.total_cmp(&b.1.totals.wait_p95))
        })
        .map(|(i, _)| i)
}

/// Per candidate: its best setting that meets the goal, or, when none does, its setting with
/// the lowest p95 wait (marked by `meets_goal: false`).
pub fn best_per_candidate(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut names: Vec<String> = outcomes
        .iter()
        .map(|o| o.candidate.clone().unwrap_or_default())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let mine = |o: &Outcome| o.candidate.clone().unwrap_or_default() == name;
            let best = best_of(outcomes, mine).or_else(|| {
                outcomes
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| mine(o))
                    .min_by(|a, b| {
                        a.1.totals
                            .wait_p95
                            .total_cmp(&b.1.totals.wait_p95)
                            .then(a.1.totals.gpu_hours.total_cmp(&b.1.totals.gpu_hours))
                    })
                    .map(|(i, _)| i)
            })?;
            Some((name, best))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_lists() {
        let s = parse_sweep("target.vllm_num_requests_waiting=2:10:2").expect("range");
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
    fn trims_numbers() {
        assert_eq!(trim(0.7000), "0.7");
        assert_eq!(trim(5.0), "5");
        assert_eq!(trim(0.0658), "0.0658");
    }
}
