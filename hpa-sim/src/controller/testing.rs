//! Test access to the controller's memory and its policy arithmetic, with explicit past
//! events, as upstream's table tests drive them: `(replica change, seconds ago)`.

use super::behavior::{self, Recommendation, ScaleEvent};
use super::Controller;
use crate::spec::Rules;

fn events(list: &[(i32, i64)], now: i64) -> Vec<ScaleEvent> {
    list.iter()
        .map(|(c, ago)| ScaleEvent {
            change: *c,
            at: now - ago * 1000,
            outdated: false,
        })
        .collect()
}

pub fn scale_up_limit(current: i32, up: &[(i32, i64)], down: &[(i32, i64)], rules: &Rules) -> i32 {
    let now = 10_000_000;
    behavior::scale_up_limit(now, current, &events(up, now), &events(down, now), rules)
}

pub fn scale_down_limit(
    current: i32,
    up: &[(i32, i64)],
    down: &[(i32, i64)],
    rules: &Rules,
) -> i32 {
    let now = 10_000_000;
    behavior::scale_down_limit(now, current, &events(up, now), &events(down, now), rules)
}

pub fn convert_desired_replicas_with_rules(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> (i32, String) {
    behavior::convert_desired_replicas_with_rules(current, desired, min, max)
}

/// `getReplicasChangePerPeriod` over events given as `(change, seconds ago)`.
pub fn change_in_period(period_seconds: i32, list: &[(i32, i64)]) -> i32 {
    let now = 10_000_000;
    behavior::change_in_period(now, period_seconds, &events(list, now))
}

impl Controller {
    /// The stored recommendations' values, in stored order (upstream's tests compare
    /// `hc.recommendations[key]` after a call).
    pub fn recommendation_values(&self) -> Vec<i32> {
        self.recommendations
            .iter()
            .flatten()
            .map(|r| r.replicas)
            .collect()
    }

    /// The stored scale-up and scale-down events, each as `(change, outdated)`.
    pub fn scale_events(&self) -> [Vec<(i32, bool)>; 2] {
        let f = |v: &[ScaleEvent]| v.iter().map(|e| (e.change, e.outdated)).collect();
        [f(&self.up_events), f(&self.down_events)]
    }

    /// `storeScaleEvent` alone, at `now`.
    pub fn store_event(&mut self, now: i64, prev: i32, new: i32) {
        self.store_scale_event(now, prev, new);
    }

    /// Seeds the controller's memory: recommendations and scale events, each
    /// `(replicas or change, seconds before now)`, as upstream's tests set
    /// `hc.recommendations` and `hc.scaleUpEvents` before a call.
    pub fn seed(&mut self, now: i64, recs: &[(i32, i64)], up: &[(i32, i64)], down: &[(i32, i64)]) {
        self.recommendations = Some(
            recs.iter()
                .map(|(r, ago)| Recommendation {
                    replicas: *r,
                    at: now - ago * 1000,
                })
                .collect(),
        );
        self.up_events = events(up, now);
        self.down_events = events(down, now);
    }

    /// `normalizeDesiredReplicasWithBehaviors` (or the no-behavior path) alone, with the
    /// limiting condition's reason.
    pub fn normalize(&mut self, now: i64, current: i32, desired: i32) -> (i32, String) {
        let min = self.spec.min_replicas();
        match self.behavior.clone() {
            None => self.normalize_desired_replicas(now, current, desired, min),
            Some(b) => self.normalize_with_behaviors(now, &b, current, desired, min),
        }
    }
}
