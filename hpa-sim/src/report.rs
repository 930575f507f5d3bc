//! What `simulate` and `tune` hand a person as text: the totals, the sweep and candidate
//! tables, CSV, and the report folder's files (its SVG plots are `plots`).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use crate::bounds::{Bounds, Range};
use crate::simulate::{Run, Totals};
use crate::tune::{trim, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: drawing failed: {what}")]
    Plot { path: String, what: String },
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|error| ReportError::Io {
        path: path.display().to_string(),
        error,
    })
}

pub fn ensure_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|error| ReportError::Io {
        path: dir.display().to_string(),
        error,
    })
}

/// The two yardsticks, one line each.
pub fn bounds_text(b: &Bounds) -> String {
    let l = &b.lower;
    let s = &b.best_schedule;
    let sized = if s.load_share > 0.0 {
        format!(
            "replicas sized for {:.2} of full-batch throughput",
            s.load_share
        )
    } else {
        "maxReplicas all run".to_string()
    };
    let verdict = if s.meets_goal {
        "meets the goal".to_string()
    } else {
        format!("misses the goal: {}", s.misses.join("; "))
    };
    format!(
        "lower bound          {:.2} GPU-hours ({})\nbest schedule        {:.2} GPU-hours, p95 wait {:.2} s, p99 {:.2} s, peak {}, {verdict} ({sized}; found with the future known in {} runs)\n",
        l.gpu_hours, l.method, s.gpu_hours, s.wait_p95, s.wait_p99, s.peak_replicas, s.runs
    )
}

/// The totals of one run, for a terminal.
/// `b`: its bounds, when they were computed.
pub fn totals_text(t: &Totals, b: Option<&Bounds>) -> String {
    let mut s = String::new();
    match b {
        Some(b) => {
            let _ = writeln!(
                s,
                "GPU-hours            {:.2}  ({:.2} x lower bound, {:.2} x best schedule)",
                t.gpu_hours,
                t.gpu_hours / b.lower.gpu_hours.max(1e-9),
                t.gpu_hours / b.best_schedule.gpu_hours.max(1e-9),
            );
        }
        None => {
            let _ = writeln!(s, "GPU-hours            {:.2}", t.gpu_hours);
        }
    }
    let _ = writeln!(
        s,
        "queue wait           mean {:.2} s, p50 {:.2} s, p95 {:.2} s, p99 {:.2} s",
        t.wait_mean, t.wait_p50, t.wait_p95, t.wait_p99
    );
    let _ = writeln!(
        s,
        "requests waiting     {:.0} s ({:.1} % of the run)",
        t.waiting_seconds,
        t.waiting_share * 100.0
    );
    let _ = writeln!(
        s,
        "scale events         {} ({:.2} per hour), {} flaps",
        t.scale_events, t.scale_events_per_hour, t.flaps
    );
    let best_peak = b
        .map(|b| format!(" (best schedule {})", b.best_schedule.peak_replicas))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "peak replicas        {}{best_peak}, {:.0} s at maxReplicas",
        t.peak_replicas, t.seconds_at_max_replicas
    );
    let _ = writeln!(
        s,
        "requests             {} arrived, {} completed, {} dropped, {} preempted, {} never admitted",
        t.requests, t.completed, t.dropped, t.preempted, t.waiting_at_end
    );
    if let Some(b) = b {
        let _ = writeln!(
            s,
            "one replica serves   at most {:.2} requests/s (the mean request, a full batch)",
            b.lower.max_requests_per_second_per_replica
        );
        s.push_str(&bounds_text(b));
    }
    let verdict = if t.meets_goal {
        "meets the goal".to_string()
    } else {
        format!("misses the goal: {}", t.misses.join("; "))
    };
    let _ = writeln!(s, "verdict              {verdict}");
    s
}

/// Per-sync CSV of a run.
pub fn steps_csv(run: &Run) -> String {
    let names: Vec<String> = run
        .steps
        .first()
        .map(|s| s.metrics.keys().cloned().collect())
        .unwrap_or_default();
    let mut s = String::from("t,requests_per_second,current_replicas,desired_replicas,ready_replicas,gpus,waiting,wait_p50,wait_p95");
    for n in &names {
        let _ = write!(s, ",{n},{n}_target,{n}_proposal");
    }
    s.push('\n');
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    for st in &run.steps {
        let _ = write!(
            s,
            "{},{:.3},{},{},{},{},{},{},{}",
            st.t,
            st.requests_per_second,
            st.current_replicas,
            st.desired_replicas,
            st.ready_replicas,
            st.gpus,
            st.waiting,
            opt(st.wait_p50),
            opt(st.wait_p95)
        );
        for n in &names {
            let m = st.metrics.get(n);
            let _ = write!(
                s,
                ",{},{},{}",
                opt(m.and_then(|m| m.value)),
                m.map(|m| trim(m.target)).unwrap_or_default(),
                m.and_then(|m| m.proposal)
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            );
        }
        s.push('\n');
    }
    s
}

fn label(o: &Outcome) -> String {
    let p: Vec<String> = o.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if p.is_empty() {
        "(as written)".into()
    } else {
        p.join(" ")
    }
}

/// The sweep table, sorted by GPU-hours, with the recommendation marked; `bounds` are the
/// yardsticks of the replica ranges the settings cover.
pub fn sweep_text(
    outcomes: &[Outcome],
    best: Option<usize>,
    bounds: &[(Range, Arc<Bounds>)],
) -> String {
    let mut order: Vec<usize> = (0..outcomes.len()).collect();
    order.sort_by(|a, b| {
        outcomes[*a]
            .totals
            .gpu_hours
            .total_cmp(&outcomes[*b].totals.gpu_hours)
    });
    let labels: Vec<String> = outcomes.iter().map(label).collect();
    let w = labels.iter().map(String::len).max().unwrap_or(7).max(7);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:<w$}  {:>9} {:>13} {:>15} {:>8} {:>8} {:>8} {:>5} {:>8} {:>5}  goal",
        "setting",
        "GPU-hours",
        "x lower bound",
        "x best schedule",
        "p95 wait",
        "p99 wait",
        "waiting",
        "peak",
        "events/h",
        "flaps"
    );
    for i in order {
        let o = &outcomes[i];
        let t = &o.totals;
        let mark = if Some(i) == best { "*" } else { " " };
        let _ = writeln!(
            s,
            "{mark} {:<w$}  {:>9.2} {:>13.2} {:>15.2} {:>7.2}s {:>7.2}s {:>7.1}% {:>5} {:>8.2} {:>5}  {}",
            labels[i],
            t.gpu_hours,
            o.ratio_to_lower_bound,
            o.ratio_to_best_schedule,
            t.wait_p95,
            t.wait_p99,
            t.waiting_share * 100.0,
            t.peak_replicas,
            t.scale_events_per_hour,
            t.flaps,
            if t.meets_goal {
                "meets".to_string()
            } else {
                format!("misses ({})", t.misses.join("; "))
            }
        );
    }
    for (r, b) in bounds {
        let _ = writeln!(
            s,
            "\nbounds for minReplicas {} maxReplicas {} ({} ready at the start):",
            r.min, r.max, r.initial
        );
        s.push_str(&bounds_text(b));
    }
    match best {
        Some(b) => {
            let _ = writeln!(
                s,
                "recommendation (*): {} — {:.2} GPU-hours, {:.2} x lower bound, {:.2} x best schedule",
                labels[b],
                outcomes[b].totals.gpu_hours,
                outcomes[b].ratio_to_lower_bound,
                outcomes[b].ratio_to_best_schedule
            );
        }
        None => {
            let _ = writeln!(s, "recommendation: none of these settings meets the goal; widen the sweep (targets, maxReplicas) or relax the goal");
        }
    }
    s
}

/// One row per candidate: its best setting (the recipe table of docs/autoscaling.md).
pub fn candidates_text(
    outcomes: &[Outcome],
    per: &std::collections::BTreeMap<String, usize>,
) -> String {
    let mut rows: Vec<(&String, &Outcome)> = per.iter().map(|(n, i)| (n, &outcomes[*i])).collect();
    rows.sort_by(|a, b| {
        (!a.1.totals.meets_goal)
            .cmp(&!b.1.totals.meets_goal)
            .then(a.1.totals.gpu_hours.total_cmp(&b.1.totals.gpu_hours))
    });
    let mut s = String::new();
    let _ = writeln!(s, "| candidate | best setting | GPU-hours | × lower bound | × best schedule | p95 wait | p99 wait | time with requests waiting | peak replicas | scale events | meets goal |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, o) in rows {
        let t = &o.totals;
        let setting: Vec<String> = o
            .params
            .iter()
            .filter(|(k, _)| k.as_str() != "candidate")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            s,
            "| {name} | {} | {:.1} | {:.2} | {:.2} | {:.2} s | {:.2} s | {:.1} % | {} | {} | {} |",
            if setting.is_empty() {
                "as written".into()
            } else {
                setting.join(" ")
            },
            t.gpu_hours,
            o.ratio_to_lower_bound,
            o.ratio_to_best_schedule,
            t.wait_p95,
            t.wait_p99,
            t.waiting_share * 100.0,
            t.peak_replicas,
            t.scale_events,
            if t.meets_goal {
                "yes".to_string()
            } else {
                format!("no: {}", t.misses.join("; "))
            }
        );
    }
    s
}

pub fn sweep_csv(outcomes: &[Outcome]) -> String {
    let mut keys: Vec<String> = outcomes
        .iter()
        .flat_map(|o| o.params.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    let mut s = keys.join(",");
    s.push_str(if keys.is_empty() { "" } else { "," });
    s.push_str("gpu_hours,lower_bound_gpu_hours,best_schedule_gpu_hours,ratio_to_lower_bound,ratio_to_best_schedule,wait_p50,wait_p95,wait_p99,waiting_share,peak_replicas,scale_events,flaps,meets_goal\n");
    for o in outcomes {
        for k in &keys {
            let _ = write!(
                s,
                "\"{}\",",
                o.params
                    .get(k)
                    .cloned()
                    .unwrap_or_default()
                    .replace('"', "'")
            );
        }
        let t = &o.totals;
        let _ = writeln!(
            s,
            "{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{},{},{},{}",
            t.gpu_hours,
            o.lower_bound_gpu_hours,
            o.best_schedule_gpu_hours,
            o.ratio_to_lower_bound,
            o.ratio_to_best_schedule,
            t.wait_p50,
            t.wait_p95,
            t.wait_p99,
            t.waiting_share,
            t.peak_replicas,
            t.scale_events,
            t.flaps,
            t.meets_goal
        );
    }
    s
}

/// Writes a text file into the report folder.
pub fn save(dir: &Path, name: &str, text: &str) -> Result<(), ReportError> {
    write(&dir.join(name), text)
}
