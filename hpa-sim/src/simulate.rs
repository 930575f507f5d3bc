//! `hpa-sim simulate`: the controller (or a fixed replica schedule) against the serving model,
//! driven by the trace; one record per sync and the run's totals.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::controller::{Controller, SyncOutcome};
use crate::pipeline::Pipeline;
use crate::rng::Rng;
use crate::scenario::Loaded;
use crate::schedule::Schedule;
use crate::serving::Fleet;
use crate::spec::{HpaSpec, Invalid};
use crate::workload::{self, Arrivals};

/// One metric at one sync: the value the HPA read (its status' current value) and the target.
#[derive(Debug, Clone, Serialize)]
pub struct MetricPoint {
    pub value: Option<f64>,
    pub target: f64,
    pub proposal: Option<i32>,
}

/// One sync of the run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub t: f64,
    pub requests_per_second: f64,
    pub current_replicas: i32,
    pub desired_replicas: i32,
    pub ready_replicas: usize,
    /// Pods holding a GPU (loading, ready or draining).
    pub gpus: usize,
    pub waiting: usize,
    /// Queue wait of the requests admitted since the previous sync.
    pub wait_p50: Option<f64>,
    pub wait_p95: Option<f64>,
    pub metrics: BTreeMap<String, MetricPoint>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub hours: f64,
    pub gpu_hours: f64,
    /// Time with at least one request waiting, in seconds and as a share of the run.
    pub waiting_seconds: f64,
    pub waiting_share: f64,
    /// Queue wait (arrival to a slot in a batch) of every request, seconds; one never admitted
    /// counts with the wait it had by the end.
    pub wait_mean: f64,
    pub wait_p50: f64,
    pub wait_p95: f64,
    pub wait_p99: f64,
    pub scale_events: u32,
    pub scale_events_per_hour: f64,
    /// Scale moves undone within the goal's flap window.
    pub flaps: u32,
    pub seconds_at_max_replicas: f64,
    pub peak_replicas: i32,
    pub requests: u64,
    pub completed: u64,
    pub dropped: u64,
    pub preempted: u64,
    /// Requests never admitted by the end of the run; each counts in the percentiles with the
    /// wait it had so far.
    pub waiting_at_end: u64,
    /// Share of the replicas' busy GPU time spent prefilling.
    pub prefill_share: f64,
    pub meets_goal: bool,
    /// Why not, when it does not.
    pub misses: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub steps: Vec<Step>,
    pub totals: Totals,
}

/// Percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn every(interval: f64, tick: f64) -> u64 {
    ((interval / tick).round() as u64).max(1)
}

/// What sets the Deployment's replicas at each sync.
#[derive(Debug, Clone, Copy)]
pub enum Policy<'a> {
    /// The HPA controller, reading the metrics through the pipeline.
    Hpa(&'a HpaSpec),
    /// A replica count fixed in advance (the best schedule found with the future known, or a
    /// constant), within `hpa`'s `minReplicas` and `maxReplicas`.
    Schedule {
        schedule: &'a Schedule,
        hpa: &'a HpaSpec,
    },
}

impl Policy<'_> {
    fn hpa(&self) -> &HpaSpec {
        match self {
            Policy::Hpa(h) | Policy::Schedule { hpa: h, .. } => h,
        }
    }
}

/// Runs the scenario with `hpa` (its own, or a sweep's variant). `progress` is called with
/// the share done, about every 5 % of the run.
pub fn run(loaded: &Loaded, hpa: &HpaSpec, progress: &mut dyn FnMut(f64)) -> Result<Run, Invalid> {
    run_policy(loaded, Policy::Hpa(hpa), progress)
}

/// Runs the scenario with any policy.
pub fn run_policy(
    loaded: &Loaded,
    policy: Policy,
    progress: &mut dyn FnMut(f64),
) -> Result<Run, Invalid> {
    let sc = &loaded.scenario;
    let hpa = policy.hpa();
    let mut ctl = Controller::new(hpa.clone(), sc.controller)?;
    let dt = sc.tick_seconds;
    let duration = loaded.trace.duration();
    let ticks = workload::ticks(loaded);
    let sync_every = every(sc.controller.sync_period_seconds, dt);
    let scrape_every = every(sc.pipeline.scrape_interval_seconds, dt);
    let agent_every = every(sc.pipeline.agent_interval_seconds, dt);
    let mut arrivals = Arrivals::new(loaded);
    let mut rng = Rng::new(sc.seed ^ workload::ROUTING_SALT);
    let initial = sc.initial_for(hpa);
    let mut fleet = Fleet::new(sc.server, initial);
    let mut pipeline = Pipeline::new(&sc.pipeline);
    let mut spec_replicas = initial;
    let mut steps = Vec::new();
    let mut all_waits: Vec<f64> = Vec::new();
    let mut waiting_ticks = 0u64;
    let mut at_max_ticks = 0u64;
    let mut peak = spec_replicas;
    let mut events: Vec<(f64, i32)> = Vec::new();
    let report_every = (ticks / 20).max(1);
    for k in 0..ticks {
        let t = k as f64 * dt;
        fleet.tick(t, dt, arrivals.tick(k), &mut rng, &loaded.curves);
        if fleet.waiting() > 0 {
            waiting_ticks += 1;
        }
        if spec_replicas >= hpa.max_replicas {
            at_max_ticks += 1;
        }
        let now = (k + 1) as f64 * dt;
        if (k + 1) % agent_every == 0 {
            fleet.agent_sample();
        }
        if (k + 1) % scrape_every == 0 {
            pipeline.scrape(now, &fleet);
        }
        if (k + 1) % sync_every == 0 {
            let (desired, metrics, reason) = match policy {
                Policy::Hpa(hpa) => {
                    let obs = pipeline.observe(now, &fleet, sc, &hpa.metrics);
                    let out: SyncOutcome =
                        ctl.sync((now * 1000.0).round() as i64, spec_replicas, &obs);
                    let metrics = hpa
                        .metrics
                        .iter()
                        .map(|m| {
                            let name = m.name().to_string();
                            let point = MetricPoint {
                                value: out.usage.get(&name).map(|u| *u as f64 / 1000.0),
                                target: m.target_milli().map_or(0.0, |v| v.as_f64()),
                                proposal: out.proposals.get(&name).copied(),
                            };
                            (name, point)
                        })
                        .collect();
                    (out.desired, metrics, out.reason)
                }
                Policy::Schedule { schedule, hpa } => (
                    schedule.at(now).clamp(hpa.min_replicas(), hpa.max_replicas),
                    BTreeMap::new(),
                    "schedule".to_string(),
                ),
            };
            let mut waits = fleet.take_waits();
            waits.sort_unstable_by(f64::total_cmp);
            steps.push(Step {
                t: now,
                requests_per_second: loaded.trace.rate(now),
                current_replicas: spec_replicas,
                desired_replicas: desired,
                ready_replicas: fleet.ready(),
                gpus: fleet.gpus(),
                waiting: fleet.waiting(),
                wait_p50: (!waits.is_empty()).then(|| percentile(&waits, 50.0)),
                wait_p95: (!waits.is_empty()).then(|| percentile(&waits, 95.0)),
                metrics,
                reason,
            });
            all_waits.extend(waits);
            if desired != spec_replicas {
                events.push((now, desired - spec_replicas));
                spec_replicas = desired;
                fleet.set_replicas(spec_replicas, now);
                peak = peak.max(spec_replicas);
            }
        }
        if k % report_every == 0 {
            progress(k as f64 / ticks as f64);
        }
    }
    progress(1.0);
    all_waits.extend(fleet.take_waits());
    // A request never admitted by the end has waited at least until then: it counts with that
    // wait (a run cannot meet the goal by leaving a queue behind).
    let end = ticks as f64 * dt;
    let unadmitted = fleet.unadmitted_arrivals();
    all_waits.extend(unadmitted.iter().map(|a| (end - a).max(0.0)));
    all_waits.sort_unstable_by(f64::total_cmp);
    let hours = duration / 3600.0;
    let flaps = events
        .windows(2)
        .filter(|w| (w[0].1 > 0) != (w[1].1 > 0) && w[1].0 - w[0].0 < sc.goal.flap_window_seconds)
        .count() as u32;
    let c = &fleet.counters;
    let mut totals = Totals {
        hours,
        gpu_hours: fleet.gpu_seconds(duration) / 3600.0,
        waiting_seconds: waiting_ticks as f64 * dt,
        waiting_share: waiting_ticks as f64 / ticks.max(1) as f64,
        wait_mean: all_waits.iter().sum::<f64>() / all_waits.len().max(1) as f64,
        wait_p50: percentile(&all_waits, 50.0),
        wait_p95: percentile(&all_waits, 95.0),
        wait_p99: percentile(&all_waits, 99.0),
        scale_events: events.len() as u32,
        scale_events_per_hour: events.len() as f64 / hours.max(1e-9),
        flaps,
        seconds_at_max_replicas: at_max_ticks as f64 * dt,
        peak_replicas: peak,
        requests: c.arrived,
        completed: c.completed,
        dropped: c.dropped,
        preempted: c.preempted,
        waiting_at_end: unadmitted.len() as u64,
        prefill_share: c.prefill_seconds / c.busy_seconds.max(1e-9),
        meets_goal: true,
        misses: Vec::new(),
    };
    let goal = &sc.goal;
    if totals.wait_p95 > goal.p95_queue_wait_seconds {
        totals.misses.push(format!(
            "p95 queue wait {:.2} s > goal {:.2} s",
            totals.wait_p95, goal.p95_queue_wait_seconds
        ));
    }
    if totals.flaps > goal.max_flaps {
        totals.misses.push(format!(
            "{} flaps (a scale undone within {} s) > {}",
            totals.flaps, goal.flap_window_seconds, goal.max_flaps
        ));
    }
    // Requests still in the system at the end are not dropped; ones a drain cut off are.
    if totals.dropped > 0 {
        totals.misses.push(format!(
            "{} requests dropped by draining pods",
            totals.dropped
        ));
    }
    totals.meets_goal = totals.misses.is_empty();
    Ok(Run { steps, totals })
}
