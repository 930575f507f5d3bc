//! The report folder's SVG plots (plotters' SVG backend), drawn to read at a glance: every
//! point that falls outside a frame is drawn at its edge as a triangle with its true value
//! beside it, and the HPA's own line is drawn last, on top.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

use super::ReportError;
use crate::bounds::BestSchedule;
use crate::simulate::Run;
use crate::sweep::trim;
use crate::tune::Outcome;

const HPA: RGBColor = RGBColor(20, 40, 120);
const READY: RGBColor = RGBColor(44, 160, 44);
const HPA_GPUS: RGBColor = RGBColor(140, 180, 230);
const BEST: RGBColor = RGBColor(214, 39, 40);
const LOAD: RGBColor = RGBColor(170, 170, 170);
const WAITING: RGBColor = RGBColor(255, 127, 14);
const CLIPPED: RGBColor = RGBColor(120, 0, 120);

/// A drawing's failure as the report's error for the figure at `path`.
trait Drawn<T> {
    fn drawn(self, path: &Path) -> Result<T, ReportError>;
}

impl<T, E: std::fmt::Display> Drawn<T> for Result<T, E> {
    fn drawn(self, path: &Path) -> Result<T, ReportError> {
        self.map_err(|e| ReportError::Plot {
            path: path.display().to_string(),
            what: e.to_string(),
        })
    }
}

/// The series' legend in a framed box.
fn legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
    path: &Path,
) -> Result<(), ReportError>
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
        .drawn(path)
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

/// Points above `y_max`, for marking: one per stretch of consecutive clipped points (its
/// highest), as `(x, true y)`.
fn clipped_peaks(pts: &[(f64, f64)], y_max: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut inside = false;
    for &(x, y) in pts {
        if y > y_max {
            match (inside, out.last_mut()) {
                (true, Some(last)) if y > last.1 => *last = (x, y),
                (true, Some(_)) => {}
                _ => out.push((x, y)),
            }
            inside = true;
        } else {
            inside = false;
        }
    }
    out
}

/// Marks each clipped point: a triangle on the frame's top edge and its true value.
fn mark_clipped<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    peaks: &[(f64, f64)],
    y_max: f64,
    unit: &str,
    path: &Path,
) -> Result<(), ReportError> {
    if peaks.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(
            peaks
                .iter()
                .map(|&(x, _)| TriangleMarker::new((x, y_max), 7, CLIPPED.filled())),
        )
        .drawn(path)?
        .label(format!(
            "off the scale (true value beside), above {}{unit}",
            trim(y_max)
        ))
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, CLIPPED.filled()));
    chart
        .draw_series(peaks.iter().map(|&(x, y)| {
            Text::new(
                format!("{}{unit}", short(y)),
                (x, y_max),
                ("sans-serif", 13).into_font().color(&CLIPPED),
            )
        }))
        .drawn(path)?;
    Ok(())
}

/// A value as it labels a point: 21733, 35.2, 0.58.
fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Replicas and load over time: the trace's rate, the ready replicas, the GPUs the HPA and
/// the best schedule (when computed) held, what each is charged, the HPA's replicas on top,
/// and below, the requests waiting.
pub fn replicas_svg(
    path: &Path,
    title: &str,
    run: &Run,
    best: Option<&BestSchedule>,
) -> Result<(), ReportError> {
    let best_gpus: &[(f64, usize)] = best.map_or(&[], |b| &b.gpus);
    let hours = |t: f64| t / 3600.0;
    let t_max = run.steps.last().map_or(1.0, |s| hours(s.t)).max(1e-3);
    let r_max = run
        .steps
        .iter()
        .map(|s| s.current_replicas.max(s.gpus as i32))
        .chain(best_gpus.iter().map(|g| g.1 as i32))
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
    root.fill(&WHITE).drawn(path)?;
    let (top, bottom) = root.split_vertically(520);
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .right_y_label_area_size(64)
        .build_cartesian_2d(0.0..t_max, 0.0..r_max)
        .drawn(path)?
        .set_secondary_coord(0.0..t_max, 0.0..rps_max);
    chart
        .configure_mesh()
        .x_desc("hours")
        .y_desc("replicas")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .drawn(path)?;
    chart
        .configure_secondary_axes()
        .y_desc("requests/s")
        .draw()
        .drawn(path)?;
    chart
        .draw_secondary_series(LineSeries::new(
            run.steps
                .iter()
                .map(|s| (hours(s.t), s.requests_per_second)),
            LOAD.stroke_width(2),
        ))
        .drawn(path)?
        .label("load (requests/s, right axis)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], LOAD.stroke_width(2)));
    type Line<'a> = (&'a str, RGBColor, u32, Vec<(f64, f64)>);
    // Drawn in this order: the HPA's replicas last, on top of the rest.
    let series: [Line; 4] = [
        (
            "ready replicas",
            READY,
            1,
            run.steps
                .iter()
                .map(|s| (hours(s.t), s.ready_replicas as f64))
                .collect(),
        ),
        (
            "GPUs held under the HPA (charged)",
            HPA_GPUS,
            2,
            run.steps
                .iter()
                .map(|s| (hours(s.t), s.gpus as f64))
                .collect(),
        ),
        (
            "GPUs held by the best schedule (charged)",
            BEST,
            2,
            best_gpus
                .iter()
                .map(|(t, g)| (hours(*t), *g as f64))
                .collect(),
        ),
        (
            "HPA replicas",
            HPA,
            3,
            run.steps
                .iter()
                .map(|s| (hours(s.t), f64::from(s.current_replicas)))
                .collect(),
        ),
    ];
    for (name, color, width, pts) in series {
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(step_line(&pts), color.stroke_width(width)))
            .drawn(path)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
            });
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft, path)?;
    let mut lower = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .right_y_label_area_size(64)
        .build_cartesian_2d(0.0..t_max, 0.0..wait_max)
        .drawn(path)?;
    lower
        .configure_mesh()
        .x_desc("hours")
        .y_desc("requests waiting")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .drawn(path)?;
    lower
        .draw_series(LineSeries::new(
            run.steps.iter().map(|s| (hours(s.t), s.waiting as f64)),
            WAITING.stroke_width(2),
        ))
        .drawn(path)?
        .label("requests waiting (all replicas)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], WAITING.stroke_width(2)));
    legend(&mut lower, SeriesLabelPosition::UpperLeft, path)?;
    root.present().drawn(path)
}

/// Each metric the HPA read against its target, as a share of the target (1.0 = on target),
/// up to 10x; higher values are marked at the top edge with their true share.
pub fn metrics_svg(path: &Path, title: &str, run: &Run) -> Result<(), ReportError> {
    let names: Vec<String> = run
        .steps
        .first()
        .map(|s| s.metrics.keys().cloned().collect())
        .unwrap_or_default();
    let t_max = run.steps.last().map_or(1.0, |s| s.t / 3600.0).max(1e-3);
    let shares = |n: &str| -> Vec<(f64, f64)> {
        run.steps
            .iter()
            .filter_map(|s| {
                s.metrics
                    .get(n)
                    .and_then(|m| m.value.map(|v| (s.t / 3600.0, v / m.target.max(1e-9))))
            })
            .collect()
    };
    let y_max = names
        .iter()
        .flat_map(|n| shares(n))
        .map(|p| p.1)
        .fold(1.5, f64::max)
        .min(10.0);
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).drawn(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .drawn(path)?;
    chart
        .configure_mesh()
        .x_desc("hours")
        .y_desc("value / target")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .drawn(path)?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 1.0), (t_max, 1.0)],
            BLACK.stroke_width(1),
        ))
        .drawn(path)?
        .label("target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    let mut peaks = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let target = run
            .steps
            .first()
            .and_then(|s| s.metrics.get(n))
            .map_or(1.0, |m| m.target);
        let pts = shares(n);
        peaks.extend(clipped_peaks(&pts, y_max));
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|&(x, y)| (x, y.min(y_max))),
                color.stroke_width(2),
            ))
            .drawn(path)?
            .label(format!("{n} (target {})", trim(target)))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    mark_clipped(&mut chart, &peaks, y_max, "x", path)?;
    legend(&mut chart, SeriesLabelPosition::UpperLeft, path)?;
    root.present().drawn(path)
}

/// Cost against latency over the sweep: each setting's GPU-hours over its lower bound (the
/// frame holds every setting) and its p95 wait (up to 20x the goal; higher ones are marked at
/// the top edge with their true value), the goal and the lower bound as lines, the best
/// schedule's ratio where the settings share one, and the recommendation ringed.
pub fn cost_latency_svg(
    path: &Path,
    title: &str,
    outcomes: &[Outcome],
    best: Option<usize>,
    goal_p95: f64,
) -> Result<(), ReportError> {
    let ratios = || outcomes.iter().map(|o| o.ratio_to_lower_bound);
    let best_ratio = outcomes
        .first()
        .map(|o| o.best_schedule_gpu_hours / o.lower_bound_gpu_hours.max(1e-9))
        .filter(|r| {
            outcomes.iter().all(|o| {
                (o.best_schedule_gpu_hours / o.lower_bound_gpu_hours.max(1e-9) - r).abs() < 1e-9
            })
        });
    let lo = ratios()
        .chain(std::iter::once(1.0))
        .fold(f64::INFINITY, f64::min);
    let hi = ratios()
        .chain(std::iter::once(1.0))
        .chain(best_ratio)
        .fold(0.0, f64::max);
    let pad = ((hi - lo) * 0.05).max(0.05);
    let (x_lo, x_hi) = ((lo - pad).max(0.0), hi + pad);
    let y_max = outcomes
        .iter()
        .map(|o| o.totals.wait_p95)
        .fold(goal_p95 * 2.0, f64::max)
        .min(goal_p95 * 20.0)
        * 1.1;
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).drawn(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo..x_hi, 0.0..y_max)
        .drawn(path)?;
    chart
        .configure_mesh()
        .x_desc("GPU-hours / lower bound")
        .y_desc("p95 queue wait (s)")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .drawn(path)?;
    chart
        .draw_series(LineSeries::new(
            vec![(x_lo, goal_p95), (x_hi, goal_p95)],
            RED.stroke_width(1),
        ))
        .drawn(path)?
        .label(format!("goal: p95 wait {} s", trim(goal_p95)))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .draw_series(LineSeries::new(
            vec![(1.0, 0.0), (1.0, y_max)],
            BLACK.stroke_width(1),
        ))
        .drawn(path)?
        .label("lower bound")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    if let Some(r) = best_ratio {
        chart
            .draw_series(LineSeries::new(
                vec![(r, 0.0), (r, y_max)],
                BEST.stroke_width(1),
            ))
            .drawn(path)?
            .label(format!("best schedule ({r:.2} x lower bound)"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BEST));
    }
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
            .map(|o| (o.ratio_to_lower_bound, o.totals.wait_p95.min(y_max)))
            .collect();
        let name = if cand.is_empty() {
            "settings".to_string()
        } else {
            cand.clone()
        };
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .drawn(path)?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    let off: Vec<(f64, f64)> = outcomes
        .iter()
        .filter(|o| o.totals.wait_p95 > y_max)
        .map(|o| (o.ratio_to_lower_bound, o.totals.wait_p95))
        .collect();
    mark_clipped(&mut chart, &off, y_max, " s", path)?;
    if let Some(b) = best {
        let o = &outcomes[b];
        chart
            .draw_series(std::iter::once(Circle::new(
                (o.ratio_to_lower_bound, o.totals.wait_p95.min(y_max)),
                10,
                BLACK.stroke_width(2),
            )))
            .drawn(path)?
            .label("recommendation")
            .legend(|(x, y)| Circle::new((x + 10, y), 6, BLACK.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight, path)?;
    root.present().drawn(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::Totals;

    fn outcome(ratio: f64, p95: f64) -> Outcome {
        Outcome {
            params: Default::default(),
            candidate: None,
            totals: Totals {
                gpu_hours: ratio * 10.0,
                wait_p95: p95,
                meets_goal: p95 <= 2.0,
                ..Totals::default()
            },
            lower_bound_gpu_hours: 10.0,
            best_schedule_gpu_hours: 12.0,
            best_schedule_meets_goal: true,
            ratio_to_lower_bound: ratio,
            ratio_to_best_schedule: ratio / 1.2,
        }
    }

    #[test]
    fn off_scale_points_are_marked_with_their_true_value() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cost-latency.svg");
        // A setting far under the bound (it misses the goal) with a huge wait, and two
        // ordinary ones.
        let outcomes = [
            outcome(0.58, 21_733.0),
            outcome(1.3, 0.4),
            outcome(2.1, 1.9),
        ];
        cost_latency_svg(&path, "t", &outcomes, Some(1), 2.0).expect("plot");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(svg.contains("21733 s"), "the true p95 is written beside it");
        assert!(
            svg.contains("off the scale"),
            "and the mark is in the legend"
        );
        // The 0.58x point is inside the frame: the x axis starts below it.
        // The x axis' tick labels (centred under the frame; the y axis' are right-aligned),
        // as (value, pixel x); and the settings' points' pixel x.
        let attr = |t: &str, name: &str| -> Option<f64> {
            t.split(&format!(" {name}=\""))
                .nth(1)?
                .split('"')
                .next()?
                .parse()
                .ok()
        };
        let ticks: Vec<(f64, f64)> = svg
            .split("<text")
            .filter(|t| t.contains("text-anchor=\"middle\"") && t.contains("dy=\"0.76em\""))
            .filter_map(|t| {
                let v = t
                    .split('>')
                    .nth(1)?
                    .split('<')
                    .next()?
                    .trim()
                    .parse()
                    .ok()?;
                Some((v, attr(t, "x")?))
            })
            .collect();
        let px = |v: f64| -> f64 {
            // Linear between the first two ticks.
            let ((v0, x0), (v1, x1)) = (ticks[0], ticks[1]);
            x0 + (v - v0) * (x1 - x0) / (v1 - v0)
        };
        let points: Vec<f64> = svg
            .split("<circle")
            .skip(1)
            .filter(|c| attr(c, "r") == Some(4.0))
            .filter_map(|c| attr(c, "cx"))
            .collect();
        let leftmost = points.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            (leftmost - px(0.58)).abs() < 2.0,
            "the 0.58x point is drawn at its value: {leftmost} against {} ({ticks:?})",
            px(0.58)
        );
        // Nothing off the scale, nothing marked.
        let path2 = dir.path().join("plain.svg");
        cost_latency_svg(&path2, "t", &outcomes[1..], Some(0), 2.0).expect("plot");
        let svg2 = std::fs::read_to_string(&path2).expect("svg");
        assert!(!svg2.contains("off the scale"));
    }

    #[test]
    fn clipped_stretches_are_marked_once_at_their_peak() {
        let pts = [
            (0.0, 1.0),
            (1.0, 12.0),
            (2.0, 35.0),
            (3.0, 20.0),
            (4.0, 1.0),
            (5.0, 11.0),
        ];
        assert_eq!(clipped_peaks(&pts, 10.0), vec![(2.0, 35.0), (5.0, 11.0)]);
        assert!(clipped_peaks(&pts, 40.0).is_empty());
    }
}
