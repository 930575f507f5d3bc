//! What `simulate` and `tune` hand a person: text tables, JSON, CSV, and a report folder with
//! SVG plots (plotters' SVG backend) that read at a glance.

use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

use crate::oracle::Clairvoyant;
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

/// The totals of one run, for a terminal.
pub fn totals_text(t: &Totals, c: &Clairvoyant) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "GPU-hours            {:.2}  ({:.2} x the clairvoyant's {:.2})",
        t.gpu_hours,
        t.gpu_hours / c.gpu_hours.max(1e-9),
        c.gpu_hours
    );
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
    let _ = writeln!(
        s,
        "peak replicas        {} (clairvoyant {}), {:.0} s at maxReplicas",
        t.peak_replicas, c.peak_replicas, t.seconds_at_max_replicas
    );
    let _ = writeln!(
        s,
        "requests             {} arrived, {} completed, {} dropped, {} preempted",
        t.requests, t.completed, t.dropped, t.preempted
    );
    let _ = writeln!(
        s,
        "one replica serves   {:.2} requests/s within the goal",
        c.capacity_per_replica
    );
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

/// The sweep table, sorted by GPU-hours, with the recommendation marked.
pub fn sweep_text(outcomes: &[Outcome], best: Option<usize>, c: &Clairvoyant) -> String {
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
        "  {:<w$}  {:>9} {:>7} {:>8} {:>8} {:>5} {:>8} {:>5}  goal",
        "setting", "GPU-hours", "x clv", "p95 wait", "waiting", "peak", "events/h", "flaps"
    );
    for i in order {
        let o = &outcomes[i];
        let t = &o.totals;
        let mark = if Some(i) == best { "*" } else { " " };
        let _ = writeln!(
            s,
            "{mark} {:<w$}  {:>9.2} {:>7.2} {:>7.2}s {:>7.1}% {:>5} {:>8.2} {:>5}  {}",
            labels[i],
            t.gpu_hours,
            o.gpu_hours_ratio,
            t.wait_p95,
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
    let _ = writeln!(s, "\nclairvoyant lower bound: {:.2} GPU-hours (one replica serves {:.2} requests/s within the goal; peak {})", c.gpu_hours, c.capacity_per_replica, c.peak_replicas);
    match best {
        Some(b) => {
            let _ = writeln!(
                s,
                "recommendation (*): {} — {:.2} GPU-hours, {:.2} x the clairvoyant",
                labels[b], outcomes[b].totals.gpu_hours, outcomes[b].gpu_hours_ratio
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
    let _ = writeln!(s, "| candidate | best setting | GPU-hours | × clairvoyant | p95 wait | time with requests waiting | peak replicas | scale events | meets goal |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
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
            "| {name} | {} | {:.1} | {:.2} | {:.2} s | {:.1} % | {} | {} | {} |",
            if setting.is_empty() {
                "as written".into()
            } else {
                setting.join(" ")
            },
            t.gpu_hours,
            o.gpu_hours_ratio,
            t.wait_p95,
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
    s.push_str("gpu_hours,gpu_hours_ratio,wait_p50,wait_p95,wait_p99,waiting_share,peak_replicas,scale_events,flaps,meets_goal\n");
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
            "{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{},{},{},{}",
            t.gpu_hours,
            o.gpu_hours_ratio,
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

fn plot_err(path: &Path) -> impl Fn(String) -> ReportError + '_ {
    move |what| ReportError::Plot {
        path: path.display().to_string(),
        what,
    }
}

/// Replicas and load over time: the trace's rate, the HPA's replicas, the ready ones, the
/// clairvoyant's, and the requests waiting.
pub fn replicas_svg(
    path: &Path,
    title: &str,
    run: &Run,
    c: &Clairvoyant,
) -> Result<(), ReportError> {
    let e = plot_err(path);
    let hours = |t: f64| t / 3600.0;
    let t_max = run.steps.last().map_or(1.0, |s| hours(s.t)).max(1e-3);
    let r_max = run
        .steps
        .iter()
        .map(|s| s.current_replicas.max(s.gpus as i32))
        .chain(std::iter::once(c.peak_replicas))
        .max()
        .unwrap_or(1) as f64
        + 1.0;
    let rps_max = run
        .steps
        .iter()
        .map(|s| s.requests_per_second)
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.1;
    let wait_max = run
        .steps
        .iter()
        .map(|s| s.waiting as f64)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let root = SVGBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let (top, bottom) = root.split_vertically(520);
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .right_y_label_area_size(64)
        .build_cartesian_2d(0.0..t_max, 0.0..r_max)
        .map_err(|x| e(x.to_string()))?
        .set_secondary_coord(0.0..t_max, 0.0..rps_max);
    chart
        .configure_mesh()
        .x_desc("hours")
        .y_desc("replicas")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_secondary_axes()
        .y_desc("requests/s")
        .draw()
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_secondary_series(LineSeries::new(
            run.steps
                .iter()
                .map(|s| (hours(s.t), s.requests_per_second)),
            RGBColor(170, 170, 170).stroke_width(2),
        ))
        .map_err(|x| e(x.to_string()))?
        .label("load (requests/s, right axis)")
        .legend(|(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 20, y)],
                RGBColor(170, 170, 170).stroke_width(2),
            )
        });
    type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);
    let series: [Line; 3] = [
        (
            "HPA replicas",
            RGBColor(31, 119, 180),
            run.steps
                .iter()
                .map(|s| (hours(s.t), f64::from(s.current_replicas)))
                .collect(),
        ),
        (
            "ready replicas",
            RGBColor(44, 160, 44),
            run.steps
                .iter()
                .map(|s| (hours(s.t), s.ready_replicas as f64))
                .collect(),
        ),
        (
            "clairvoyant replicas",
            RGBColor(214, 39, 40),
            c.replicas
                .iter()
                .map(|(t, r)| (hours(*t), f64::from(*r)))
                .collect(),
        ),
    ];
    for (name, color, pts) in series {
        let stepped = step_line(&pts);
        chart
            .draw_series(LineSeries::new(stepped, color.stroke_width(2)))
            .map_err(|x| e(x.to_string()))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(&e)?;
    let mut lower = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .right_y_label_area_size(64)
        .build_cartesian_2d(0.0..t_max, 0.0..wait_max)
        .map_err(|x| e(x.to_string()))?;
    lower
        .configure_mesh()
        .x_desc("hours")
        .y_desc("requests waiting")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(x.to_string()))?;
    lower
        .draw_series(LineSeries::new(
            run.steps.iter().map(|s| (hours(s.t), s.waiting as f64)),
            RGBColor(255, 127, 14).stroke_width(2),
        ))
        .map_err(|x| e(x.to_string()))?
        .label("requests waiting (all replicas)")
        .legend(|(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 20, y)],
                RGBColor(255, 127, 14).stroke_width(2),
            )
        });
    legend(&mut lower, SeriesLabelPosition::UpperLeft).map_err(&e)?;
    root.present().map_err(|x| e(x.to_string()))
}

/// The series' legend in a framed box.
fn legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| x.to_string())
}

/// A replica count held until the next point.
fn step_line(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(pts.len() * 2);
    for w in pts.windows(2) {
        out.push(w[0]);
        out.push((w[1].0, w[0].1));
    }
    if let Some(l) = pts.last() {
        out.push(*l);
    }
    out
}

/// Each metric the HPA read against its target, as a share of the target (1.0 = on target).
pub fn metrics_svg(path: &Path, title: &str, run: &Run) -> Result<(), ReportError> {
    let e = plot_err(path);
    let names: Vec<String> = run
        .steps
        .first()
        .map(|s| s.metrics.keys().cloned().collect())
        .unwrap_or_default();
    let t_max = run.steps.last().map_or(1.0, |s| s.t / 3600.0).max(1e-3);
    let y_max = run
        .steps
        .iter()
        .flat_map(|s| {
            s.metrics
                .values()
                .filter_map(|m| m.value.map(|v| v / m.target.max(1e-9)))
        })
        .fold(1.5, f64::max)
        .min(10.0);
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("hours")
        .y_desc("value / target")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 1.0), (t_max, 1.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(|x| e(x.to_string()))?
        .label("target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    for (i, n) in names.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let target = run
            .steps
            .first()
            .and_then(|s| s.metrics.get(n))
            .map_or(1.0, |m| m.target);
        let pts: Vec<(f64, f64)> = run
            .steps
            .iter()
            .filter_map(|s| {
                s.metrics
                    .get(n)
                    .and_then(|m| m.value)
                    .map(|v| (s.t / 3600.0, (v / m_target(target)).min(y_max)))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|x| e(x.to_string()))?
            .label(format!("{n} (target {})", trim(target)))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(&e)?;
    root.present().map_err(|x| e(x.to_string()))
}

fn m_target(t: f64) -> f64 {
    t.max(1e-9)
}

/// Cost against latency over the sweep: each setting's GPU-hours (× clairvoyant) and p95
/// wait, the goal as a line, the recommendation ringed.
pub fn cost_latency_svg(
    path: &Path,
    title: &str,
    outcomes: &[Outcome],
    best: Option<usize>,
    goal_p95: f64,
) -> Result<(), ReportError> {
    let e = plot_err(path);
    let x_max = outcomes
        .iter()
        .map(|o| o.gpu_hours_ratio)
        .fold(1.0, f64::max)
        * 1.1;
    let y_max = outcomes
        .iter()
        .map(|o| o.totals.wait_p95)
        .fold(goal_p95 * 2.0, f64::max)
        .min(goal_p95 * 20.0)
        * 1.1;
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.8..x_max, 0.0..y_max)
        .map_err(|x| e(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("GPU-hours / clairvoyant's")
        .y_desc("p95 queue wait (s)")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(x.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.8, goal_p95), (x_max, goal_p95)],
            RED.stroke_width(1),
        ))
        .map_err(|x| e(x.to_string()))?
        .label(format!("goal: p95 wait {} s", trim(goal_p95)))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    let mut candidates: Vec<String> = outcomes
        .iter()
        .map(|o| o.candidate.clone().unwrap_or_default())
        .collect();
    candidates.sort();
    candidates.dedup();
    for (ci, cand) in candidates.iter().enumerate() {
        let color = Palette99::pick(ci).to_rgba();
        let pts: Vec<(f64, f64)> = outcomes
            .iter()
            .filter(|o| o.candidate.clone().unwrap_or_default() == *cand)
            .map(|o| (o.gpu_hours_ratio, o.totals.wait_p95.min(y_max)))
            .collect();
        let name = if cand.is_empty() {
            "settings".to_string()
        } else {
            cand.clone()
        };
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|x| e(x.to_string()))?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    if let Some(b) = best {
        let o = &outcomes[b];
        chart
            .draw_series(std::iter::once(Circle::new(
                (o.gpu_hours_ratio, o.totals.wait_p95.min(y_max)),
                10,
                BLACK.stroke_width(2),
            )))
            .map_err(|x| e(x.to_string()))?
            .label("recommendation")
            .legend(|(x, y)| Circle::new((x + 10, y), 6, BLACK.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(&e)?;
    root.present().map_err(|x| e(x.to_string()))
}

/// Writes a text file into the report folder.
pub fn save(dir: &Path, name: &str, text: &str) -> Result<(), ReportError> {
    write(&dir.join(name), text)
}
