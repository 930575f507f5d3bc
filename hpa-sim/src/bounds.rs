//! The yardsticks a run is judged by, for one replica range (`minReplicas`, `maxReplicas`,
//! initial replicas): the lower bound (`lower`), and the best schedule found with the future
//! known, run through the same model. The best schedule is achievable, so the optimum lies
//! between the two.
//!
//! The schedule: the work arriving each minute (at a full batch's speed) over a share `rho`
//! of one replica, rounded up, within the replica range; built by `schedule::build`; run. The
//! share is searched (bisection from a share of 1, to within 0.02, at most 12 runs) for the
//! cheapest schedule that meets the goal; when none does, the one closest to it is reported as
//! missing it.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::lower::{self, Lower};
use crate::scenario::Loaded;
use crate::schedule::{self, Schedule, Timing};
use crate::simulate::{self, Policy, Run};
use crate::spec::{HpaSpec, Invalid};

#[derive(Debug, thiserror::Error)]
pub enum BoundsError {
    /// The setting's HPA cannot run (the run needs its controller for the replica range).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("the best schedule's search ran no schedule")]
    NoRun,
}

/// At most this many runs in the search for the best schedule.
const MAX_RUNS: usize = 12;

/// The highest share searched: rounding each minute's replicas up leaves headroom, so a share
/// somewhat over 1 can still meet the goal.
const MAX_SHARE: f64 = 1.5;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BestSchedule {
    pub gpu_hours: f64,
    pub wait_p95: f64,
    pub wait_p99: f64,
    pub meets_goal: bool,
    /// Why not, when it does not.
    pub misses: Vec<String>,
    pub peak_replicas: i32,
    /// The share of a replica's full-batch throughput each replica was sized for; 0 for
    /// `maxReplicas` all run long.
    pub load_share: f64,
    /// Runs the search took.
    pub runs: usize,
    /// Pods holding a GPU at each sync of its run: what its GPU-hours add up.
    #[serde(skip)]
    pub gpus: Vec<(f64, usize)>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bounds {
    pub lower: Lower,
    pub best_schedule: BestSchedule,
}

/// What the bounds depend on in a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    pub min: i32,
    pub max: i32,
    pub initial: i32,
}

impl Range {
    pub fn of(loaded: &Loaded, hpa: &HpaSpec) -> Range {
        Range {
            min: hpa.min_replicas(),
            max: hpa.max_replicas,
            initial: loaded.scenario.initial_for(hpa),
        }
    }
}

/// The bounds of each replica range, computed once.
#[derive(Debug, Default)]
pub struct Cache {
    done: Mutex<BTreeMap<Range, Arc<Bounds>>>,
}

impl Cache {
    /// The bounds for `hpa`'s range (`compute`'s `threads` and `log`).
    pub fn get(
        &self,
        loaded: &Loaded,
        hpa: &HpaSpec,
        threads: usize,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<Arc<Bounds>, BoundsError> {
        let range = Range::of(loaded, hpa);
        if let Some(b) = self.done.lock().ok().and_then(|d| d.get(&range).cloned()) {
            return Ok(b);
        }
        let b = Arc::new(compute(loaded, hpa, threads, log)?);
        if let Ok(mut d) = self.done.lock() {
            d.insert(range, b.clone());
        }
        Ok(b)
    }

    /// Every range computed, in order.
    pub fn all(&self) -> Vec<(Range, Arc<Bounds>)> {
        self.done
            .lock()
            .map(|d| d.iter().map(|(r, b)| (*r, b.clone())).collect())
            .unwrap_or_default()
    }
}

/// Work arriving in each minute of the run, in seconds of one replica at a full batch.
fn work_per_minute(loaded: &Loaded, requests: &[(f64, f64)]) -> Vec<f64> {
    let minutes = (loaded.trace.duration() / 60.0).ceil() as usize;
    let mut w = vec![0.0; minutes.max(1)];
    for &(t, work) in requests {
        let m = ((t / 60.0) as usize).min(w.len() - 1);
        w[m] += work;
    }
    w
}

fn best_of(run: &Run, load_share: f64, runs: usize) -> BestSchedule {
    let t = &run.totals;
    BestSchedule {
        gpu_hours: t.gpu_hours,
        wait_p95: t.wait_p95,
        wait_p99: t.wait_p99,
        meets_goal: t.meets_goal,
        misses: t.misses.clone(),
        peak_replicas: t.peak_replicas,
        load_share,
        runs,
        gpus: run.steps.iter().map(|s| (s.t, s.gpus)).collect(),
    }
}

/// The lower bound and the best schedule for `hpa`'s replica range, the search running up to
/// `threads` schedules at once. `log` hears of each run.
pub fn compute(
    loaded: &Loaded,
    hpa: &HpaSpec,
    threads: usize,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Bounds, BoundsError> {
    let sc = &loaded.scenario;
    let requests = lower::requests(loaded);
    let lower = lower::lower_bound(loaded, hpa, &requests);
    let work = work_per_minute(loaded, &requests);
    drop(requests);
    let (min, max) = (hpa.min_replicas(), hpa.max_replicas);
    let timing = Timing {
        step: sc.controller.sync_period_seconds,
        lead: sc.server.pending_seconds + sc.server.startup_seconds,
        startup: sc.server.startup_seconds,
        flap_window: sc.goal.flap_window_seconds,
        initial: sc.initial_for(hpa),
        duration: loaded.trace.duration(),
    };
    let schedule_for = |rho: f64| -> Schedule {
        if rho > 0.0 {
            let need: Vec<i32> = work
                .iter()
                .map(|w| {
                    let n = (w / (60.0 * rho) - 1e-9).ceil();
                    (n.min(f64::from(max)) as i32).clamp(min, max)
                })
                .collect();
            schedule::build(&need, timing)
        } else {
            Schedule::constant(max)
        }
    };
    let run = |rho: f64, s: &Schedule| -> Result<BestSchedule, Invalid> {
        let run = simulate::run_policy(loaded, Policy::Schedule { schedule: s, hpa }, &mut |_| {})?;
        let t = &run.totals;
        let what = if rho > 0.0 {
            format!("{rho:.3} of a replica")
        } else {
            format!("maxReplicas ({max}) all run")
        };
        log(&format!(
            "best schedule at {what}: {:.2} GPU-hours, p95 wait {:.2} s{}",
            t.gpu_hours,
            t.wait_p95,
            if t.meets_goal {
                ""
            } else {
                " (misses the goal)"
            }
        ));
        Ok(best_of(&run, rho, 0))
    };
    let threads = threads.clamp(1, MAX_RUNS);
    // Every schedule run, with its outcome: a run is deterministic, so a share that gives a
    // schedule already run is not run again.
    let mut done: Vec<(Schedule, BestSchedule)> = Vec::new();
    let mut runs = 0;
    // Runs `shares` (new schedules at once, on threads); their outcomes in order.
    let mut outcomes = |shares: &[f64], runs: &mut usize| -> Result<Vec<BestSchedule>, Invalid> {
        let schedules: Vec<Schedule> = shares.iter().map(|r| schedule_for(*r)).collect();
        let mut fresh: Vec<(f64, &Schedule)> = Vec::new();
        for (rho, s) in shares.iter().zip(&schedules) {
            if !done.iter().any(|(d, _)| d == s) && !fresh.iter().any(|(_, f)| *f == s) {
                fresh.push((*rho, s));
            }
        }
        let results: Vec<Result<BestSchedule, Invalid>> = std::thread::scope(|sc| {
            let handles: Vec<_> = fresh
                .iter()
                .map(|&(rho, s)| sc.spawn(move || run(rho, s)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Invalid(vec!["a schedule run failed".into()])))
                })
                .collect()
        });
        *runs += fresh.len();
        for ((_, s), r) in fresh.iter().zip(results) {
            done.push(((*s).clone(), r?));
        }
        Ok(schedules
            .iter()
            .zip(shares)
            .filter_map(|(s, rho)| {
                let (_, b) = done.iter().find(|(d, _)| d == s)?;
                Some(BestSchedule {
                    load_share: *rho,
                    ..b.clone()
                })
            })
            .collect())
    };
    // The cheapest that meets the goal, and the one closest to it (lowest p95) that does not.
    let mut meets: Option<BestSchedule> = None;
    let mut closest: Option<BestSchedule> = None;
    let mut keep = |b: BestSchedule| {
        if b.meets_goal {
            if meets.as_ref().is_none_or(|m| b.gpu_hours < m.gpu_hours) {
                meets = Some(b);
            }
        } else if closest.as_ref().is_none_or(|c| b.wait_p95 < c.wait_p95) {
            closest = Some(b);
        }
    };
    // The bracket: the share is searched in (lo, hi); `lo_meets` once a share there met it.
    let (mut lo, mut hi, mut lo_meets) = (0.0, MAX_SHARE, false);
    let mut rounds = 0;
    while runs < MAX_RUNS && rounds < 2 * MAX_RUNS && hi - lo > 0.02 {
        rounds += 1;
        // Evenly inside the bracket, as many as run at once; the first round around a share
        // of 1, where the search usually ends.
        let n = threads.min(MAX_RUNS - runs);
        let (a, b) = if rounds == 1 { (0.5, 1.5) } else { (lo, hi) };
        let shares: Vec<f64> = (1..=n)
            .map(|i| a + (b - a) * i as f64 / (n + 1) as f64)
            .collect();
        // The share is assumed to meet the goal below one that meets it, and to miss above
        // one that misses (more replicas wait less).
        let (mut new_lo, mut new_hi) = (lo, hi);
        let mut at_bound = false;
        for b in outcomes(&shares, &mut runs)? {
            if b.meets_goal {
                new_lo = new_lo.max(b.load_share);
                lo_meets = true;
                at_bound |= b.gpu_hours <= lower.gpu_hours * (1.0 + 1e-9);
            } else {
                new_hi = new_hi.min(b.load_share);
            }
            keep(b);
        }
        if new_hi <= new_lo || at_bound {
            // Not monotone here (random routing), or nothing can cost less: keep the best.
            break;
        }
        (lo, hi) = (new_lo, new_hi);
    }
    if !lo_meets {
        // The most the range allows, all run long.
        for b in outcomes(&[0.0], &mut runs)? {
            keep(b);
        }
    }
    let best_schedule = match meets.or(closest) {
        Some(b) => BestSchedule { runs, ..b },
        None => return Err(BoundsError::NoRun),
    };
    Ok(Bounds {
        lower,
        best_schedule,
    })
}
