//! The text tables `simulate` and `tune` print and the report folder keeps: the totals, the
//! bounds, the sweep and the best setting per candidate.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::bounds::{Bounds, Range};
use crate::simulate::Totals;
use crate::tune::Outcome;

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
