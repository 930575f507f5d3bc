//! Replica schedules fixed in advance: a constant count, or the schedule built with the future
//! known from the replicas each minute needs (each replica started one start-up ahead, kept
//! through gaps shorter than a start-up, and no scale undone within the goal's flap window).

/// Desired replicas on a grid of `step` seconds: `counts[j]` from `j × step` on.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub step: f64,
    pub counts: Vec<i32>,
}

impl Schedule {
    /// The same count all run long.
    pub fn constant(replicas: i32) -> Schedule {
        Schedule {
            step: 1.0,
            counts: vec![replicas],
        }
    }

    /// The desired replicas at `t` (the last count past the end).
    pub fn at(&self, t: f64) -> i32 {
        let j = (t / self.step + 1e-6).floor().max(0.0) as usize;
        self.counts
            .get(j.min(self.counts.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    }
}

/// What the construction needs besides the per-minute need.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The grid of the schedule: the HPA's sync period (when a run applies it).
    pub step: f64,
    /// From creating a pod to its serving: pending plus start-up.
    pub lead: f64,
    /// GPU time a start costs (the model load); a gap shorter than this is bridged.
    pub startup: f64,
    /// A scale undone within this window is a flap.
    pub flap_window: f64,
    /// Replicas ready at t = 0.
    pub initial: i32,
    /// Length of the run.
    pub duration: f64,
}

/// The schedule that has `need[m]` replicas serving through minute `m` (`[60 m, 60 m + 60)`),
/// at the least GPU time for that need: level by level, the `k`-th replica serves the
/// minutes that need at least `k`, starts `lead` ahead of each stretch, and is kept through a
/// gap when holding it costs less than a new start. Flaps are then removed by holding the
/// higher count (never lowering one).
pub fn build(need: &[i32], t: Timing) -> Schedule {
    let n = ((t.duration / t.step).ceil() as usize).max(1) + 1;
    let mut counts = vec![0i32; n];
    let top = need.iter().copied().max().unwrap_or(0);
    for level in 1..=top {
        // Stretches of minutes needing this level, in seconds.
        let mut stretches: Vec<(f64, f64)> = Vec::new();
        let mut m = 0;
        while m < need.len() {
            if need[m] >= level {
                let s = m;
                while m < need.len() && need[m] >= level {
                    m += 1;
                }
                stretches.push((s as f64 * 60.0, m as f64 * 60.0));
            } else {
                m += 1;
            }
        }
        // Held: from one lead before a stretch (a replica ready at t = 0 needs none) to its
        // end; merged across gaps cheaper to hold than to restart, or too short to restart in.
        let mut held: Vec<(f64, f64)> = Vec::new();
        for (s, e) in stretches {
            let from = if s <= 0.0 && level <= t.initial {
                0.0
            } else {
                (s - t.lead).max(0.0)
            };
            match held.last_mut() {
                Some(last) if s - last.1 < t.startup || from <= last.1 => last.1 = e,
                _ => held.push((from, e)),
            }
        }
        let end = need.len() as f64 * 60.0;
        for (from, to) in held {
            let j0 = (from / t.step + 1e-9).floor() as usize;
            // A stretch to the last minute holds to the end.
            let j1 = if to >= end {
                n
            } else {
                ((to / t.step - 1e-9).ceil() as usize).min(n)
            };
            for c in counts.iter_mut().take(j1).skip(j0) {
                *c += 1;
            }
        }
    }
    // Before the first sync the Deployment has its initial replicas.
    counts[0] = t.initial;
    let flap_steps = (t.flap_window / t.step - 1e-9).ceil().max(0.0) as usize;
    remove_flaps(&mut counts, flap_steps);
    Schedule {
        step: t.step,
        counts,
    }
}

/// Raises counts until no scale is undone within `window` grid steps of the one before: a
/// scale-in followed too soon by a scale-out is cancelled (the higher count held), and a
/// scale-in too soon after a scale-out is put off until the window has passed.
pub fn remove_flaps(counts: &mut [i32], window: usize) {
    let n = counts.len();
    // The scale events kept so far: (grid index, upward).
    let mut events: Vec<(usize, bool)> = Vec::new();
    let mut j = 1;
    while j < n {
        if counts[j] == counts[j - 1] {
            j += 1;
            continue;
        }
        let up = counts[j] > counts[j - 1];
        if let Some(&(jl, last_up)) = events.last() {
            if last_up != up && j - jl < window {
                if last_up {
                    // Up at jl, down at j: hold the level until the window has passed.
                    let level = counts[j - 1];
                    let until = (jl + window).min(n);
                    for c in &mut counts[j..until] {
                        *c = (*c).max(level);
                    }
                } else {
                    // Down at jl, up at j: do not scale in at jl at all.
                    let level = counts[jl - 1];
                    for c in &mut counts[jl..j] {
                        *c = (*c).max(level);
                    }
                    events.pop();
                }
                // Look at j again: the counts before it changed.
                continue;
            }
        }
        events.push((j, up));
        j += 1;
    }
}

/// Scale events `(grid index, upward)` of a count sequence, for tests.
pub fn events(counts: &[i32]) -> Vec<(usize, bool)> {
    counts
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] != w[1])
        .map(|(i, w)| (i + 1, w[1] > w[0]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            step: 15.0,
            lead: 180.0,
            startup: 180.0,
            flap_window: 600.0,
            initial: 1,
            duration: 3600.0,
        }
    }

    #[test]
    fn each_replica_starts_one_lead_ahead_and_a_short_gap_is_bridged() {
        // One replica all hour; a second for minutes 20-29 and 31-39 (a 1-minute gap, cheaper
        // to hold than a 3-minute start-up).
        let mut need = vec![1; 60];
        for m in (20..30).chain(31..40) {
            need[m] = 2;
        }
        let s = build(&need, timing());
        assert_eq!(s.at(0.0), 1);
        // Created at 20 min - 180 s = 17 min, so that it serves from minute 20.
        assert_eq!(s.at(17.0 * 60.0 - 15.0), 1);
        assert_eq!(s.at(17.0 * 60.0), 2);
        assert_eq!(s.at(30.5 * 60.0), 2, "the gap is bridged");
        // Gone after minute 39, but not within the 600 s flap window of the scale-out at
        // 17 min: that is 27 min, already past it.
        assert_eq!(s.at(40.0 * 60.0), 1);
        let ev = events(&s.counts);
        assert_eq!(ev.len(), 2, "{ev:?}");
    }

    #[test]
    fn no_scale_is_undone_within_the_flap_window() {
        let mut need = vec![1; 60];
        // Two short bursts 6 minutes apart: each alone would scale out and in.
        for m in [10, 11, 18, 19] {
            need[m] = 3;
        }
        let s = build(&need, timing());
        let ev = events(&s.counts);
        for w in ev.windows(2) {
            if w[0].1 != w[1].1 {
                assert!(
                    (w[1].0 - w[0].0) as f64 * 15.0 >= 600.0,
                    "a flap: {ev:?} in {:?}",
                    s.counts
                );
            }
        }
        // Still serves both bursts.
        for m in [10, 11, 18, 19] {
            assert!(s.at(m as f64 * 60.0) >= 3);
        }
    }

    #[test]
    fn remove_flaps_only_raises() {
        let before = vec![1, 1, 3, 3, 1, 1, 1, 2, 2, 1, 1, 1, 1, 1];
        let mut after = before.clone();
        remove_flaps(&mut after, 4);
        assert!(before.iter().zip(&after).all(|(b, a)| a >= b), "{after:?}");
        let ev = events(&after);
        for w in ev.windows(2) {
            assert!(w[0].1 == w[1].1 || w[1].0 - w[0].0 >= 4, "{after:?}");
        }
    }

    #[test]
    fn a_constant_schedule_is_the_same_everywhere() {
        let s = Schedule::constant(3);
        assert_eq!((s.at(0.0), s.at(1e6)), (3, 3));
    }
}
