//! The progress of a run on stderr: the share of a simulation done, the bounds' search, and
//! each setting of a sweep as it finishes.

use std::sync::OnceLock;
use std::time::Instant;

use crate::bounds::Range;
use crate::tune::{Outcome, Progress};

/// The share of a run done, every 10 %, once the run has taken over 2 s.
pub fn progress_bar(label: String) -> impl FnMut(f64) {
    let start = Instant::now();
    let mut last = -1i64;
    move |share: f64| {
        let pct = (share * 100.0) as i64;
        if start.elapsed().as_secs_f64() > 2.0 && pct / 10 != last / 10 {
            eprintln!("hpa-sim: {label}: {pct} %");
            last = pct;
        }
    }
}

/// The bounds' search, a line at a time.
pub fn bounds_log(label: String) -> impl Fn(&str) + Sync {
    move |line: &str| eprintln!("hpa-sim: {label}: {line}")
}

/// A sweep of scenario `name` as it runs; a setting's time counts from the start of the
/// settings' runs (after the bounds).
pub struct TuneLog {
    name: String,
    started: OnceLock<Instant>,
}

impl TuneLog {
    pub fn new(name: &str) -> TuneLog {
        TuneLog {
            name: name.to_string(),
            started: OnceLock::new(),
        }
    }
}

impl Progress for TuneLog {
    fn bounds(&self, r: &Range, line: &str) {
        eprintln!(
            "hpa-sim: {}: bounds for minReplicas {} maxReplicas {}: {line}",
            self.name, r.min, r.max
        );
    }

    fn start(&self, settings: usize, threads: usize) {
        let _ = self.started.set(Instant::now());
        eprintln!(
            "hpa-sim: {}: {settings} settings on {threads} threads",
            self.name
        );
    }

    fn ran(&self, done: usize, total: usize, o: &Outcome) {
        let p: Vec<String> = o.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!(
            "hpa-sim: [{done}/{total}] {:.0} s: {} -> {:.2} GPU-hours, p95 wait {:.2} s{}",
            self.started
                .get()
                .map_or(0.0, |s| s.elapsed().as_secs_f64()),
            p.join(" "),
            o.totals.gpu_hours,
            o.totals.wait_p95,
            if o.totals.meets_goal {
                ""
            } else {
                " (misses the goal)"
            }
        );
    }
}
