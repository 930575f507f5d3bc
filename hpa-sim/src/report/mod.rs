//! What `simulate` and `tune` hand a person: on stdout the text tables or one JSON object, in a
//! report folder (`--report DIR`) the tables, the JSON summary, CSV and SVG plots, and on
//! stderr the progress of a run.
//!
//! Each command's JSON summary and text are built once here: stdout and the folder write the
//! same ones (`simulate --json` adds the per-sync steps, which the folder keeps as CSV).

mod csv;
mod plots;
mod progress;
mod tables;

pub use csv::{steps_csv, sweep_csv};
pub use plots::{cost_latency_svg, metrics_svg, replicas_svg};
pub use progress::{bounds_log, progress_bar, TuneLog};
pub use tables::{bounds_text, candidates_text, sweep_text, totals_text};

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::bounds::Bounds;
use crate::scenario::Loaded;
use crate::simulate::Run;
use crate::tune::Tuned;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: drawing failed: {what}")]
    Plot { path: String, what: String },
    /// Writing stdout failed (`hpa-sim … | head` closes it early: see [`Self::is_broken_pipe`]).
    #[error("{0}")]
    Stdout(std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl ReportError {
    /// The reader of stdout went away: not an error of the run.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ReportError::Stdout(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Where a command's results go.
#[derive(Debug, Clone, Default)]
pub struct Destination {
    /// JSON on stdout instead of the text tables.
    pub json: bool,
    /// The report folder, when one is asked for.
    pub folder: Option<PathBuf>,
}

fn stdout(text: &str) -> Result<(), ReportError> {
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(ReportError::Stdout)
}

fn ensure_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|error| ReportError::Io {
        path: dir.display().to_string(),
        error,
    })
}

/// Writes a text file into the report folder.
fn save(dir: &Path, name: &str, text: &str) -> Result<(), ReportError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|error| ReportError::Io {
        path: path.display().to_string(),
        error,
    })
}

/// `simulate`'s results: the run of scenario `name` and its bounds, when computed.
pub fn simulation(
    to: &Destination,
    name: &str,
    loaded: &Loaded,
    run: &Run,
    bounds: Option<&Bounds>,
) -> Result<(), ReportError> {
    let text = format!(
        "{}{}",
        totals_text(&run.totals, bounds),
        loaded
            .profile
            .summary(&loaded.scenario.server, run.totals.prefill_share)
    );
    let summary = serde_json::json!({"scenario": name, "totals": run.totals, "bounds": bounds});
    if to.json {
        let mut all = summary.clone();
        all["steps"] = serde_json::to_value(&run.steps)?;
        stdout(&format!("{all}\n"))?;
    } else {
        stdout(&format!(
            "{name}: {:.1} h of trace from {}\n\n{text}",
            run.totals.hours, loaded.trace.source
        ))?;
    }
    let Some(dir) = &to.folder else {
        return Ok(());
    };
    ensure_dir(dir)?;
    save(dir, "summary.txt", &text)?;
    save(
        dir,
        "summary.json",
        &serde_json::to_string_pretty(&summary)?,
    )?;
    save(dir, "steps.csv", &steps_csv(run))?;
    replicas_svg(
        &dir.join("replicas.svg"),
        &format!("{name}: replicas and load"),
        run,
        bounds.map(|b| &b.best_schedule),
    )?;
    metrics_svg(
        &dir.join("metrics.svg"),
        &format!("{name}: each metric against its target"),
        run,
    )?;
    eprintln!("hpa-sim: report written to {}", dir.display());
    Ok(())
}

/// `tune`'s results: the sweep of scenario `name`, the settings Kubernetes would reject, and
/// the run of the recommendation (for the report folder's plots and steps).
pub fn sweep(
    to: &Destination,
    name: &str,
    loaded: &Loaded,
    tuned: &Tuned,
    rejected: &[String],
    recommended: Option<&Run>,
) -> Result<(), ReportError> {
    let outcomes = &tuned.outcomes;
    let best = tuned.best;
    let table = sweep_text(outcomes, best, &tuned.ranges);
    let cands = outcomes
        .iter()
        .any(|o| o.candidate.is_some())
        .then(|| candidates_text(outcomes, &tuned.per_candidate));
    let bounds: Vec<serde_json::Value> = tuned
        .ranges
        .iter()
        .map(|(r, b)| {
            serde_json::json!({
                "minReplicas": r.min,
                "maxReplicas": r.max,
                "initialReplicas": r.initial,
                "lower": b.lower,
                "bestSchedule": b.best_schedule,
            })
        })
        .collect();
    let json = serde_json::json!({
        "scenario": name,
        "bounds": bounds,
        "outcomes": outcomes,
        "recommendation": best,
        "bestPerCandidate": tuned.per_candidate,
        "rejected": rejected,
    });
    if to.json {
        stdout(&format!("{json}\n"))?;
    } else {
        let mut text = format!(
            "{name}: {} settings over {:.1} h of trace from {}\n\n{table}",
            outcomes.len(),
            loaded.trace.duration() / 3600.0,
            loaded.trace.source
        );
        if let Some(c) = &cands {
            text.push_str(&format!("\nbest setting per candidate:\n{c}\n"));
        }
        stdout(&text)?;
    }
    let Some(dir) = &to.folder else {
        return Ok(());
    };
    ensure_dir(dir)?;
    save(dir, "sweep.txt", &table)?;
    if let Some(c) = &cands {
        save(dir, "candidates.md", c)?;
    }
    save(dir, "sweep.json", &serde_json::to_string_pretty(&json)?)?;
    save(dir, "sweep.csv", &sweep_csv(outcomes))?;
    cost_latency_svg(
        &dir.join("cost-latency.svg"),
        &format!("{name}: cost against latency"),
        outcomes,
        best,
        loaded.scenario.goal.p95_queue_wait_seconds,
    )?;
    if let (Some(b), Some(run)) = (best, recommended) {
        replicas_svg(
            &dir.join("replicas.svg"),
            &format!("{name}: the recommendation's replicas and load"),
            run,
            Some(&tuned.bounds[b].best_schedule),
        )?;
        metrics_svg(
            &dir.join("metrics.svg"),
            &format!("{name}: the recommendation's metrics against targets"),
            run,
        )?;
        save(dir, "steps.csv", &steps_csv(run))?;
    }
    eprintln!("hpa-sim: report written to {}", dir.display());
    Ok(())
}
