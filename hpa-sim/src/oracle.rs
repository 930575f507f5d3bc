//! The clairvoyant yardstick: the GPU-hours of an autoscaler that knows the demand ahead.
//!
//! It runs, at every moment, just the replicas that serve the trace's rate within the latency
//! goal, and starts each one exactly one start-up delay early, so it pays the model load but
//! never waits for it. A replica whose next use comes back sooner than a start-up delay is
//! kept rather than restarted (that is cheaper). It is the least an autoscaler spends to serve
//! every moment within the goal: an HPA, which only sees the past, cannot do that for less.
//! (The goal is checked on the run's p95, so an HPA that lets a few percent of requests wait
//! through one start-up can finish a short run at 0.95-1.0 of it: read ratios near 1 as
//! "at the bound", not as beating it.)
//!
//! A replica's capacity at the goal is found with the serving model itself: the highest
//! steady Poisson rate one replica serves with its p95 queue wait within the goal.

use serde::Serialize;

use crate::curves::Curves;
use crate::rng::Rng;
use crate::scenario::{Loaded, Scenario};
use crate::serving::{Fleet, Request};
use crate::simulate::percentile;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Clairvoyant {
    /// Requests/s one replica serves within the goal.
    pub capacity_per_replica: f64,
    pub gpu_hours: f64,
    pub peak_replicas: i32,
    /// Replicas serving at each trace point, for plots: `(t, replicas)`.
    pub replicas: Vec<(f64, i32)>,
}

/// p95 queue wait of one replica under a steady rate.
fn p95_at(sc: &Scenario, curves: &Curves, rate: f64, seconds: f64) -> f64 {
    let mut rng = Rng::new(sc.seed ^ 0xC1A1);
    let mut server = sc.server;
    server.startup_seconds = 0.0;
    let mut fleet = Fleet::new(server, 1);
    let dt = sc.tick_seconds;
    let ticks = (seconds / dt) as u64;
    let warmup = ticks / 5;
    let mut waits = Vec::new();
    for k in 0..ticks {
        let t = k as f64 * dt;
        let n = rng.poisson(rate * dt);
        let arrivals = (0..n)
            .map(|_| Request {
                arrival: t + rng.uniform() * dt,
                prompt: rng
                    .lognormal(sc.requests.prompt_tokens.mean, sc.requests.prompt_tokens.cv)
                    .max(1.0),
                output: rng
                    .lognormal(sc.requests.output_tokens.mean, sc.requests.output_tokens.cv)
                    .max(1.0),
            })
            .collect();
        fleet.tick(t, dt, arrivals, &mut rng, curves);
        let w = fleet.take_waits();
        if k >= warmup {
            waits.extend(w);
        }
    }
    // Requests still queued at the end have waited at least this long.
    waits.extend(std::iter::repeat_n(seconds, fleet.waiting()));
    waits.sort_by(f64::total_cmp);
    percentile(&waits, 95.0)
}

/// The highest steady rate one replica serves within the goal (bisection).
pub fn capacity(sc: &Scenario, curves: &Curves) -> f64 {
    let goal = sc.goal.p95_queue_wait_seconds;
    // Upper bound: every slot busy at full-batch speed.
    let b = f64::from(sc.server.max_num_seqs);
    let step = (sc.server.step_base_ms + sc.server.step_per_seq_ms * b) / 1000.0;
    let mut hi = b / (sc.requests.output_tokens.mean * step) * 1.5;
    let mut lo = 0.0;
    let seconds = (sc.requests.output_tokens.mean * step * 40.0).clamp(600.0, 3600.0);
    for _ in 0..14 {
        let mid = (lo + hi) / 2.0;
        if p95_at(sc, curves, mid, seconds) <= goal {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo.max(1e-6)
}

/// The yardstick over the loaded trace.
pub fn clairvoyant(loaded: &Loaded) -> Clairvoyant {
    let sc = &loaded.scenario;
    let cap = capacity(sc, &loaded.curves);
    let min = sc.hpa.min_replicas().max(1);
    let dt = 1.0;
    let duration = loaded.trace.duration();
    let n = (duration / dt).ceil() as usize;
    let need: Vec<i32> = (0..n)
        .map(|i| ((loaded.trace.rate(i as f64 * dt) / cap).ceil() as i32).max(min))
        .collect();
    let peak = need.iter().copied().max().unwrap_or(min);
    let startup = sc.server.startup_seconds + sc.server.pending_seconds;
    // Each level k (the k-th replica) is needed over some intervals; a gap shorter than a
    // start-up is bridged, and each start pays a start-up.
    let mut gpu_seconds = 0.0;
    for level in 1..=peak {
        let mut i = 0;
        let mut last_end: Option<usize> = None;
        while i < n {
            if need[i] >= level {
                let start = i;
                while i < n && need[i] >= level {
                    i += 1;
                }
                let len = (i - start) as f64 * dt;
                match last_end {
                    Some(e) if (start - e) as f64 * dt < startup => {
                        gpu_seconds += (start - e) as f64 * dt + len
                    }
                    _ => {
                        // A replica running at the start was loaded before the run.
                        let pay = if start == 0 && level <= sc.initial_replicas() {
                            0.0
                        } else {
                            startup
                        };
                        gpu_seconds += pay + len;
                    }
                }
                last_end = Some(i);
            } else {
                i += 1;
            }
        }
    }
    let replicas = loaded
        .trace
        .points
        .iter()
        .map(|(t, r)| (*t, ((r / cap).ceil() as i32).max(min)))
        .collect();
    Clairvoyant {
        capacity_per_replica: cap,
        gpu_hours: gpu_seconds / 3600.0,
        peak_replicas: peak,
        replicas,
    }
}
