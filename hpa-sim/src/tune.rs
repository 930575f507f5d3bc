//! `hpa-sim tune`: runs every setting of a sweep (`sweep`) over a scenario, each judged by the
//! bounds of its own replica range, and picks the cheapest setting that meets the latency goal
//! without flapping.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::bounds::{self, Bounds, BoundsError, Range};
use crate::scenario::Loaded;
use crate::simulate::{self, Totals};
use crate::spec::Invalid;
use crate::sweep::Setting;

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

/// What a sweep tells its reader.
#[derive(Debug, Clone)]
pub struct Tuned {
    /// One per setting, in the settings' order.
    pub outcomes: Vec<Outcome>,
    /// Each setting's yardsticks (its replica range's bounds), in the settings' order.
    pub bounds: Vec<Arc<Bounds>>,
    /// The bounds of every replica range the settings cover, each once.
    pub ranges: Vec<(Range, Arc<Bounds>)>,
    /// The recommendation ([`recommend`]).
    pub best: Option<usize>,
    /// [`best_per_candidate`].
    pub per_candidate: BTreeMap<String, usize>,
}

/// A sweep that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(transparent)]
    Bounds(#[from] BoundsError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// What a sweep says while it runs.
pub trait Progress: Sync {
    /// A line of the search for the bounds of `range`.
    fn bounds(&self, range: &Range, line: &str);
    /// The bounds are known; the settings start on `threads` threads.
    fn start(&self, settings: usize, threads: usize);
    /// `done` of `total` settings have run, the last one to `outcome`.
    fn ran(&self, done: usize, total: usize, outcome: &Outcome);
}

/// Runs every setting on `threads` threads, each judged by the bounds of its own replica range
/// (computed once a range), and makes the recommendation.
pub fn tune(
    loaded: &Loaded,
    settings: &[Setting],
    threads: usize,
    progress: &dyn Progress,
) -> Result<Tuned, TuneError> {
    let cache = bounds::Cache::default();
    let per_setting = settings
        .iter()
        .map(|s| {
            let r = Range::of(loaded, &s.hpa);
            cache.get(loaded, &s.hpa, threads, &|line: &str| {
                progress.bounds(&r, line)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    progress.start(settings.len(), threads);
    let outcomes = run_all(
        loaded,
        settings,
        &per_setting,
        threads,
        &|done, total, o| progress.ran(done, total, o),
    )?;
    Ok(Tuned {
        best: recommend(&outcomes),
        per_candidate: best_per_candidate(&outcomes),
        outcomes,
        bounds: per_setting,
        ranges: cache.all(),
    })
}
