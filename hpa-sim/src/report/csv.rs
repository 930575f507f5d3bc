//! The report folder's CSV files: one row per sync of a run, one row per setting of a sweep.

use std::fmt::Write as _;

use crate::simulate::Run;
use crate::sweep::trim;
use crate::tune::Outcome;

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

/// One row per setting: its parameters, its totals and its yardsticks.
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
