//! How far one sync may move the replicas, as upstream's `horizontal.go` decides it after the
//! metrics' proposal: the stabilization windows (the recommendations a controller remembers),
//! and the scaling limits, either the fixed `max(2 × current, 4)` of an HPA without `behavior`
//! or the `behavior` policies over the scale events it remembers.

use super::Controller;
use crate::spec::{PolicyType, ResolvedBehavior, Rules, SelectPolicy};

/// A sync's desired replicas, remembered for the stabilization windows (upstream's
/// `timestampedRecommendation`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Recommendation {
    pub(super) replicas: i32,
    pub(super) at: i64,
}

/// Records this sync's recommendation in the slot of one that has left every window, or appends
/// it (upstream writes the same few lines in both stabilization functions).
fn store(recs: &mut Vec<Recommendation>, old: Option<usize>, replicas: i32, at: i64) {
    let rec = Recommendation { replicas, at };
    match old {
        Some(i) => recs[i] = rec,
        None => recs.push(rec),
    }
}

/// A change of the scale, remembered for the `behavior` policies (upstream's
/// `timestampedScaleEvent`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ScaleEvent {
    pub(super) change: i32,
    pub(super) at: i64,
    pub(super) outdated: bool,
}

const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

/// Seconds as the simulation's milliseconds.
fn secs(s: i32) -> i64 {
    i64::from(s) * 1000
}

impl Controller {
    /// The remembered recommendations (`recordInitialRecommendation` has made them).
    pub(super) fn recs(&mut self) -> &mut Vec<Recommendation> {
        self.recommendations.get_or_insert_with(Vec::new)
    }

    /// `normalizeDesiredReplicas`: the path of an HPA without `behavior`.
    pub(super) fn normalize_desired_replicas(
        &mut self,
        now: i64,
        current: i32,
        desired: i32,
        min: i32,
    ) -> (i32, String) {
        let stabilized = self.stabilize_recommendation(now, desired);
        let mut cond = String::new();
        if stabilized != desired {
            cond = "ScaleDownStabilized: recent recommendations were higher than current one, applying the highest recent recommendation".into();
        }
        let (d, limit) =
            convert_desired_replicas_with_rules(current, stabilized, min, self.spec.max_replicas);
        if d != stabilized {
            cond = limit;
        }
        (d, cond)
    }

    /// `stabilizeRecommendation`: the highest recommendation within the controller's
    /// downscale window.
    pub(super) fn stabilize_recommendation(&mut self, now: i64, desired: i32) -> i32 {
        let cutoff = now - secs(self.cfg.downscale_stabilization_seconds);
        let recs = self.recs();
        let mut max = desired;
        let mut old = None;
        for (i, r) in recs.iter().enumerate() {
            // Upstream's `rec.timestamp.Before(cutoff)`. Real syncs are one resync period plus
            // the sync's own duration apart (the key is re-queued after it is processed), so the
            // entry from exactly one window's worth of syncs ago is already outside the window;
            // with all readings of a simulated sync at one instant, that is `<=` (module doc).
            if r.at <= cutoff {
                old = Some(i);
            } else if r.replicas > max {
                max = r.replicas;
            }
        }
        store(recs, old, desired, now);
        max
    }

    /// `normalizeDesiredReplicasWithBehaviors`.
    pub(super) fn normalize_with_behaviors(
        &mut self,
        now: i64,
        b: &ResolvedBehavior,
        current: i32,
        desired: i32,
        min: i32,
    ) -> (i32, String) {
        let (stabilized, stab_reason) = self.stabilize_with_behaviors(now, b, current, desired);
        let mut cond = String::new();
        if stabilized != desired {
            cond = stab_reason;
        }
        let (d, limit) = self.convert_with_behavior_rate(now, b, current, stabilized, min);
        if d != stabilized {
            cond = limit;
        }
        (d, cond)
    }

    /// `stabilizeRecommendationWithBehaviors`: for scale-up the lowest recommendation of the
    /// up window, for scale-down the highest of the down window.
    pub(super) fn stabilize_with_behaviors(
        &mut self,
        now: i64,
        b: &ResolvedBehavior,
        current: i32,
        desired: i32,
    ) -> (i32, String) {
        let up_cutoff = now - secs(b.scale_up.stabilization_window_seconds.unwrap_or(0));
        let down_cutoff = now - secs(b.scale_down.stabilization_window_seconds.unwrap_or(0));
        let recs = self.recs();
        let mut up = desired;
        let mut down = desired;
        let mut old = None;
        for (i, r) in recs.iter().enumerate() {
            if r.at > up_cutoff {
                up = up.min(r.replicas);
            }
            if r.at > down_cutoff {
                down = down.max(r.replicas);
            }
            if r.at < up_cutoff && r.at < down_cutoff {
                old = Some(i);
            }
        }
        let mut recommendation = current;
        if recommendation < up {
            recommendation = up;
        }
        if recommendation > down {
            recommendation = down;
        }
        store(recs, old, desired, now);
        let reason = if desired >= current {
            "ScaleUpStabilized: recent recommendations were lower than current one, applying the lowest recent recommendation"
        } else {
            "ScaleDownStabilized: recent recommendations were higher than current one, applying the highest recent recommendation"
        };
        (recommendation, reason.into())
    }

    /// `convertDesiredReplicasWithBehaviorRate`.
    pub(super) fn convert_with_behavior_rate(
        &self,
        now: i64,
        b: &ResolvedBehavior,
        current: i32,
        desired: i32,
        min: i32,
    ) -> (i32, String) {
        let max = self.spec.max_replicas;
        if desired > current {
            let mut limit = scale_up_limit(
                now,
                current,
                &self.up_events,
                &self.down_events,
                &b.scale_up,
            );
            if limit < current {
                limit = current;
            }
            let (allowed, reason) = if max > limit {
                (limit, "ScaleUpLimit: the desired replica count is increasing faster than the maximum scale rate")
            } else {
                (max, "TooManyReplicas: the desired replica count is more than the maximum replica count")
            };
            if desired > allowed {
                return (allowed, reason.into());
            }
        } else if desired < current {
            let mut limit = scale_down_limit(
                now,
                current,
                &self.up_events,
                &self.down_events,
                &b.scale_down,
            );
            if limit > current {
                limit = current;
            }
            let (allowed, reason) = if min < limit {
                (limit, "ScaleDownLimit: the desired replica count is decreasing faster than the maximum scale rate")
            } else {
                (min, "TooFewReplicas: the desired replica count is less than the minimum replica count")
            };
            if desired < allowed {
                return (allowed, reason.into());
            }
        }
        (desired, String::new())
    }

    /// `storeScaleEvent`: kept only for an HPA with `behavior`; an event older than the
    /// direction's longest policy period is reused for the new one.
    pub(super) fn store_scale_event(&mut self, now: i64, prev: i32, new: i32) {
        let Some(b) = &self.behavior else { return };
        let (events, rules, change) = if new > prev {
            (&mut self.up_events, &b.scale_up, new - prev)
        } else {
            (&mut self.down_events, &b.scale_down, prev - new)
        };
        let longest = rules
            .policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0);
        let cutoff = now - secs(longest);
        let mut old = None;
        for (i, e) in events.iter_mut().enumerate() {
            if e.at < cutoff {
                e.outdated = true;
            }
            if e.outdated {
                old = Some(i);
            }
        }
        let ev = ScaleEvent {
            change,
            at: now,
            outdated: false,
        };
        match old {
            Some(i) => events[i] = ev,
            None => events.push(ev),
        }
    }
}

/// `convertDesiredReplicasWithRules`: min/max and the fixed scale-up limit
/// `max(2 × current, 4)` of an HPA without `behavior`.
pub(super) fn convert_desired_replicas_with_rules(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> (i32, String) {
    let scale_up_limit =
        (SCALE_UP_LIMIT_FACTOR * f64::from(current)).max(SCALE_UP_LIMIT_MINIMUM) as i32;
    let (maximum, reason) = if max > scale_up_limit {
        (scale_up_limit, "ScaleUpLimit: the desired replica count is increasing faster than the maximum scale rate")
    } else {
        (
            max,
            "TooManyReplicas: the desired replica count is more than the maximum replica count",
        )
    };
    if desired < min {
        return (
            min,
            "TooFewReplicas: the desired replica count is less than the minimum replica count"
                .into(),
        );
    }
    if desired > maximum {
        return (maximum, reason.into());
    }
    (desired, String::new())
}

/// `getReplicasChangePerPeriod`.
pub(super) fn change_in_period(now: i64, period_seconds: i32, events: &[ScaleEvent]) -> i32 {
    let cutoff = now - secs(period_seconds);
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.change)
        .sum()
}

/// `calculateScaleUpLimitWithScalingRules`: each policy counted from the replicas at the
/// start of its period.
pub(super) fn scale_up_limit(
    now: i64,
    current: i32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    rules: &Rules,
) -> i32 {
    policy_limit(now, current, up, down, rules, true)
}

/// `calculateScaleDownLimitWithBehaviors`.
pub(super) fn scale_down_limit(
    now: i64,
    current: i32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    rules: &Rules,
) -> i32 {
    policy_limit(now, current, up, down, rules, false)
}

/// Upstream's two limit functions, which differ only in direction: each policy proposes from
/// the replicas at the start of its period; `selectPolicy: Max` takes the largest change (the
/// highest proposal going up, the lowest going down), `Min` the smallest.
fn policy_limit(
    now: i64,
    current: i32,
    up: &[ScaleEvent],
    down: &[ScaleEvent],
    rules: &Rules,
    scale_up: bool,
) -> i32 {
    let highest = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Max => scale_up,
        SelectPolicy::Min => !scale_up,
    };
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = if highest {
        (i32::MIN, std::cmp::max)
    } else {
        (i32::MAX, std::cmp::min)
    };
    for p in &rules.policies {
        let start = current - change_in_period(now, p.period_seconds, up)
            + change_in_period(now, p.period_seconds, down);
        let proposed = match (p.kind, scale_up) {
            (PolicyType::Pods, true) => start + p.value,
            (PolicyType::Pods, false) => start - p.value,
            // Rounded up going up, so that a small percentage still adds a pod.
            (PolicyType::Percent, true) => {
                (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
            }
            (PolicyType::Percent, false) => {
                (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
            }
        };
        result = pick(result, proposed);
    }
    result
}
