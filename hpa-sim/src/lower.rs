//! The lower bound: GPU-hours that no policy meeting the goal can go under in the model
//! (the argument is in docs/autoscaling.md, "The bounds").
//!
//! In short: a serving replica does at most one second of work per second, where a request's
//! work is its prefill plus its output tokens at a full batch's cost per token; every request
//! that meets the goal and arrived in a window, less the ones still in a batch at its end, was
//! served within the window; at most 5 % of the run's requests may miss; a replica serves only
//! after a start-up holding its GPU; `minReplicas` of the initial replicas are never deleted.
//! The least GPU time that satisfies all of that is a minimum over integer replica counts at
//! the windows' edges, found by dynamic programming with the 5 % budget priced by a Lagrange
//! multiplier (weak duality: every price gives a bound, the best one is kept).

use serde::Serialize;

use crate::scenario::Loaded;
use crate::spec::HpaSpec;
use crate::workload::{self, Arrivals};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lower {
    pub gpu_hours: f64,
    /// How it was obtained, briefly.
    pub method: String,
    /// The most requests per second one replica serves (the mean request at a full batch).
    pub max_requests_per_second_per_replica: f64,
}

/// One window's requests: the work of those that arrived early enough to be served in it
/// within the goal, largest first, as prefix sums.
struct Window {
    /// `prefix[j]`: the work of the `j` largest.
    prefix: Vec<f64>,
    /// `fit[v]`: the fewest largest to excuse for the rest to fit in `v` windows of serving
    /// (`v` replicas all window long); past its end, none.
    fit: Vec<usize>,
}

impl Window {
    fn new(mut works: Vec<f64>, len: f64) -> Window {
        works.sort_by(|x, y| y.total_cmp(x));
        let mut prefix = Vec::with_capacity(works.len() + 1);
        prefix.push(0.0);
        let mut s = 0.0;
        for w in works {
            s += w;
            prefix.push(s);
        }
        let total = s;
        let mut fit = Vec::new();
        let mut v = 0.0;
        while v * len < total {
            let target = total - v * len;
            fit.push(
                prefix
                    .partition_point(|p| *p < target)
                    .min(prefix.len() - 1),
            );
            v += 1.0;
        }
        Window { prefix, fit }
    }

    fn len(&self) -> usize {
        self.prefix.len() - 1
    }

    /// Work left once the `j` largest are excused.
    fn need(&self, j: usize) -> f64 {
        let total = self.prefix[self.len()];
        (total - self.prefix[j.min(self.len())]).max(0.0)
    }

    /// The fewest largest to excuse for the rest to fit in `v` replica-windows.
    fn fit(&self, v: usize) -> usize {
        self.fit.get(v).copied().unwrap_or(0)
    }

    /// Index of the first request from `from` on whose work is at most `lambda`.
    fn first_at_most(&self, from: usize, lambda: f64) -> usize {
        let (mut lo, mut hi) = (from.min(self.len()), self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.prefix[mid + 1] - self.prefix[mid] > lambda {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// The requests every run of the scenario sees: `(arrival, least work in seconds)`, in order.
pub fn requests(loaded: &Loaded) -> Vec<(f64, f64)> {
    let mut arrivals = Arrivals::new(loaded);
    let server = loaded.scenario.server;
    let mut out = Vec::with_capacity(loaded.trace.expected_requests().max(0.0) as usize + 1024);
    for k in 0..workload::ticks(loaded) {
        for r in arrivals.tick(k) {
            out.push((r.arrival, workload::min_work_seconds(&r, &server)));
        }
    }
    out
}

/// The fixed inputs of the dynamic programme.
struct Dp<'a> {
    windows: &'a [Window],
    len: f64,
    startup: f64,
    /// maxNumSeqs: sequences one replica holds in a batch.
    batch: usize,
    /// Replicas that serve the whole run, whatever the policy.
    floor: usize,
    /// Counts above this are one state ("more"): at least the initial replicas.
    top: usize,
    initial: usize,
    /// Counts per state: state `j` stands for the counts `q j ..= q j + q - 1` (1 but for
    /// very large ranges or runs, to bound the work); each term takes the end of the range
    /// that lowers the cost, so a coarse state only loosens the bound.
    q: usize,
}

/// The counts a state stands for; `None` above: more than `top`.
type Counts = (usize, Option<usize>);

/// At most this many start-up steps are tried within a window; more are one option that
/// assumes nothing of the work (a relaxation: it only lowers the bound).
const MAX_RISES: usize = 48;

/// About this many window transitions per price at most (the states get coarser past it).
const BUDGET: usize = 400_000;

impl Dp<'_> {
    fn states(&self) -> usize {
        self.top / self.q + 2
    }

    fn counts(&self, j: usize) -> Counts {
        if j + 1 == self.states() {
            (self.top + 1, None)
        } else {
            (self.q * j, Some((self.q * j + self.q - 1).min(self.top)))
        }
    }

    /// The least cost of window `w` given the serving counts at its start (`from`) and end
    /// (`to`), with `lambda` per request excused beyond the in-flight ones: over the start-ups
    /// `u` within the window, its serving time (at least the work left, `floor` replicas, and
    /// the end count less the start-ups after each moment) plus `u` start-ups, the work fitting
    /// under the peak count `from + u`.
    fn window_cost(&self, w: &Window, from: Counts, to: Counts, lambda: f64) -> f64 {
        let l = self.len;
        let q = self.q;
        // In flight at the end: a batch per serving replica, charged as the largest requests.
        let j0 = match to.1 {
            None => w.len(),
            Some(hi) => (self.batch * hi).min(w.len()),
        };
        let jl = w.first_at_most(j0, lambda);
        let rise = from.1.map_or(0, |hi| to.0.saturating_sub(hi));
        let enough = w.fit.len();
        let u_hi = rise
            .max(to.0.saturating_sub(self.floor))
            .max(from.1.map_or(0, |hi| enough.saturating_sub(hi)));
        let value = |j: usize, a: f64| w.need(j).max(a) + lambda * (j - j0) as f64;
        let mut best = f64::INFINITY;
        // Start-ups `u .. u + q - 1` at once: the cost of the fewest, the room of the most.
        let mut u = rise;
        for _ in 0..MAX_RISES {
            if u > u_hi {
                return best;
            }
            let most = u + q - 1;
            let a_count = self.floor.max(to.0.saturating_sub(most));
            let a = l * a_count as f64;
            // The work must fit under the peak, `from + u` replicas all window long.
            let jf = from.1.map_or(j0, |hi| w.fit(hi + most).max(j0));
            // Excusing beyond `ja` saves nothing: the serving time is `a` anyway.
            let ja = w.fit(a_count).max(j0).max(jf);
            let jx = jl.clamp(jf, ja);
            let c = self.startup * u as f64 + value(ja, a).min(value(jx, a));
            best = best.min(c);
            u += q;
        }
        // Still more start-ups: assume nothing of the work but the floor.
        let a = l * self.floor as f64;
        let ja = w.fit(self.floor).max(j0);
        let jx = jl.clamp(j0, ja);
        best.min(self.startup * u as f64 + value(ja, a).min(value(jx, a)))
    }

    /// The least total cost plus `lambda` per excused request.
    fn value(&self, lambda: f64) -> f64 {
        let states = self.states();
        let mut cost = vec![f64::INFINITY; states];
        cost[self.initial.min(self.top) / self.q] = 0.0;
        let mut next = vec![f64::INFINITY; states];
        for w in self.windows {
            next.fill(f64::INFINITY);
            for (to, slot) in next.iter_mut().enumerate() {
                let to = self.counts(to);
                // Every count in it is under the floor: impossible.
                if to.1.is_some_and(|hi| hi < self.floor) {
                    continue;
                }
                for (from, c) in cost.iter().enumerate() {
                    if !c.is_finite() {
                        continue;
                    }
                    let total = c + self.window_cost(w, self.counts(from), to, lambda);
                    if total < *slot {
                        *slot = total;
                    }
                }
            }
            std::mem::swap(&mut cost, &mut next);
        }
        cost.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// The lower bound for `hpa`'s replica range on the loaded scenario, whose requests are
/// `requests` (from [`requests`]).
pub fn lower_bound(loaded: &Loaded, hpa: &HpaSpec, requests: &[(f64, f64)]) -> Lower {
    let sc = &loaded.scenario;
    let duration = loaded.trace.duration();
    let goal = sc.goal.p95_queue_wait_seconds;
    let initial = sc.initial_for(hpa).max(0) as usize;
    // The initial replicas are deleted newest first and never below minReplicas.
    let floor = initial.min(hpa.min_replicas().max(0) as usize);
    let work: f64 = requests.iter().map(|r| r.1).sum();
    let longest = requests.iter().map(|r| r.1).fold(0.0, f64::max);
    let per_replica = if work > 0.0 {
        requests.len() as f64 / work
    } else {
        0.0
    };
    // The goal's p95 is the nearest rank of every request's wait: this many may exceed it.
    let rank = ((95.0 / 100.0) * requests.len() as f64).ceil().max(1.0) as usize;
    let budget = requests.len().saturating_sub(rank) as f64;
    let held = floor as f64 * duration;
    let mut best = (held, "minReplicas held all run".to_string());
    let dt = sc.tick_seconds;
    for len in [300.0, 600.0, 1200.0] {
        // Window edges on ticks; each window long beside the goal's wait.
        let len = ((len / dt).round() * dt).max(dt);
        if len > duration || len < 5.0 * goal {
            continue;
        }
        let count = (duration / len).floor() as usize;
        let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); count];
        for &(t, w) in requests {
            let k = (t / len).floor() as usize;
            if k < count && t < (k + 1) as f64 * len - goal {
                buckets[k].push(w);
            }
        }
        let windows: Vec<Window> = buckets.into_iter().map(|b| Window::new(b, len)).collect();
        // Counts past `top` are one state, "more", which assumes nothing of the work (so any
        // `top` gives a bound). Above maxReplicas only draining pods add to the count; and
        // once the start-ups to reach "more" cost more than the most work a window needs, it
        // is no way out either, so the states stop there.
        let needed = windows.iter().map(|w| w.fit.len()).max().unwrap_or(0) + 1;
        let startup = sc.server.startup_seconds;
        let range = hpa.max_replicas.max(0) as usize;
        let dear = if startup > 0.0 {
            ((needed as f64 * (len / startup).max(1.0)).ceil() as usize).saturating_add(2)
        } else {
            range
        };
        let top = initial.max(floor).max(range.min(dear));
        // States coarse enough that windows x states^2 stays within the budget.
        let fine = (BUDGET / count.max(1)).max(4) as f64;
        let most_states = (fine.sqrt() as usize).saturating_sub(2).max(1);
        let dp = Dp {
            windows: &windows,
            len,
            startup: sc.server.startup_seconds,
            batch: sc.server.max_num_seqs as usize,
            floor,
            top,
            initial,
            q: (top + 1).div_ceil(most_states).max(1),
        };
        let rest = floor as f64 * (duration - count as f64 * len);
        let bound = |lambda: f64| dp.value(lambda) - lambda * budget + rest;
        let mut top = bound(0.0);
        // The dual is concave in the price: bracket its peak, then golden-section search.
        let mut hi = longest.max(1e-3);
        let mut at_hi = bound(hi);
        top = top.max(at_hi);
        for _ in 0..24 {
            let v = bound(2.0 * hi);
            top = top.max(v);
            if v <= at_hi {
                break;
            }
            hi *= 2.0;
            at_hi = v;
        }
        let (mut a, mut b) = (0.0, 2.0 * hi);
        let phi = (5f64.sqrt() - 1.0) / 2.0;
        let (mut c, mut d) = (b - phi * (b - a), a + phi * (b - a));
        let (mut fc, mut fd) = (bound(c), bound(d));
        for _ in 0..20 {
            top = top.max(fc).max(fd);
            if fc >= fd {
                b = d;
                d = c;
                fd = fc;
                c = b - phi * (b - a);
                fc = bound(c);
            } else {
                a = c;
                c = d;
                fc = fd;
                d = a + phi * (b - a);
                fd = bound(d);
            }
        }
        top = top.max(fc).max(fd);
        if top > best.0 {
            best = (top, format!("work at full-batch speed per {len:.0} s window, 5 % late and in-flight requests excused, start-ups, minReplicas held"));
        }
    }
    Lower {
        gpu_hours: best.0 / 3600.0,
        method: best.1,
        max_requests_per_second_per_replica: per_replica,
    }
}
