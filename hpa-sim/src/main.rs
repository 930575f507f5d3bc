//! The `hpa-sim` command line: `replay`, `simulate`, `tune` and `calibrate`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

use hpa_sim::{bounds, calibrate, plots, profile, report, scenario, simulate, trace, tune};

#[derive(Parser)]
#[command(
    name = "hpa-sim",
    version,
    about = "A faithful HPA controller and LLM-server simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller alone over a CASE file's metric values; one JSON object per sync.
    Replay {
        /// The CASE file (YAML).
        case: PathBuf,
    },
    /// Run the controller against a model of the serving Deployment, driven by a load trace.
    Simulate {
        /// The SCENARIO file (YAML).
        scenario: PathBuf,
        /// Skip the bounds (the lower bound and the best schedule found with the future known:
        /// about ten more runs of the model) for a quicker run; `--json` then has `"bounds":
        /// null`.
        #[arg(long)]
        no_bounds: bool,
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        prom: PromArgs,
    },
    /// Sweep targets, replica bounds, windows and candidate metric sets; recommend the
    /// cheapest setting that meets the scenario's latency goal without flapping.
    Tune {
        /// The SCENARIO file (YAML).
        scenario: PathBuf,
        /// NAME=FROM:TO:STEP or NAME=A,B,C (repeatable). NAME: target.<metric>,
        /// share.<metric>, minReplicas, maxReplicas, tolerance,
        /// scaleUp.stabilizationWindowSeconds, scaleDown.stabilizationWindowSeconds, candidate.
        #[arg(long = "sweep", required = true)]
        sweeps: Vec<String>,
        /// METRIC=VALUE: the metric's value at saturation (share.<metric> targets are a
        /// share of it), e.g. measured from the Deployment's history.
        #[arg(long = "saturation")]
        saturation: Vec<String>,
        /// Simulations run in parallel (default: the CPUs).
        #[arg(long)]
        threads: Option<usize>,
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        prom: PromArgs,
    },
    /// Fit a serving profile (step-time line, GPU curves) to a load test or a history: per-pod
    /// decode throughput, running sequences and the agent's GPU series, from a CSV file or a
    /// Prometheus. Prints the fit and its residuals and writes the profile; refuses data that
    /// cannot support a fit.
    Calibrate(CalibrateArgs),
}

#[derive(clap::Args)]
struct CalibrateArgs {
    /// Samples as CSV: batch,tokens_per_second[,prompt_tokens_per_second][,utilization,
    /// sm_active,sm_occupancy,tensor_active,dram_active], one row per pod and interval (or per
    /// load-test step).
    #[arg(
        long,
        required_unless_present = "prometheus",
        conflicts_with = "prometheus"
    )]
    csv: Option<PathBuf>,
    /// Read the samples from this Prometheus (http://host:port): vllm:num_requests_running,
    /// rate(vllm:generation_tokens_total[1m]) and rate(vllm:prompt_tokens_total[1m]) per pod, and
    /// the GPU series from the shipped recording rules (namespace_pod:pod_gpu_*_ratio:avg1m, or
    /// the agent's pod_gpu_*_ratio where the rules are not loaded).
    #[arg(long)]
    prometheus: Option<String>,
    /// Label matchers selecting the server's pods, e.g. 'namespace="llm",pod=~"vllm-.*"'.
    #[arg(long, default_value = "", requires = "prometheus")]
    selector: String,
    /// Range start and end for --prometheus (Unix seconds or RFC 3339); default: the last
    /// --range-hours up to now.
    #[arg(long, requires_all = ["end", "prometheus"])]
    start: Option<String>,
    /// Range end (with --start).
    #[arg(long, requires = "start")]
    end: Option<String>,
    /// How far back from now, in hours, when --start/--end are not given.
    #[arg(long, default_value_t = 24.0)]
    range_hours: f64,
    /// Resolution of the queries, in seconds.
    #[arg(long, default_value_t = 60.0)]
    step: f64,
    /// Write the profile here (YAML; a scenario uses it with `profile: PATH`).
    #[arg(long)]
    out: PathBuf,
    /// The profile's name.
    #[arg(long, default_value = "calibrated")]
    name: String,
    /// Prefill cost in ms per prompt token, if you measured it: the profile records it, and
    /// samples with prompt_tokens_per_second have their prefill time taken out of the step
    /// time. Without it the profile keeps the bundled profile's estimate, marked not measured.
    #[arg(long)]
    prefill_ms_per_token: Option<f64>,
    /// Provenance recorded in the profile: the GPU, the driver, the date, the load (model,
    /// precision, context lengths).
    #[arg(long)]
    gpu: Option<String>,
    #[arg(long)]
    driver: Option<String>,
    #[arg(long)]
    date: Option<String>,
    #[arg(long)]
    load: Option<String>,
}

#[derive(clap::Args)]
struct Output {
    /// Write a report folder: tables, JSON, CSV and SVG plots.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print JSON on stdout instead of the text tables.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct PromArgs {
    /// Take the arrival trace from this Prometheus (http://host:port) instead of trace.csv.
    #[arg(long, requires = "query")]
    prometheus: Option<String>,
    /// PromQL giving the Service's requests per second, e.g.
    /// 'sum(rate(vllm:request_success_total{namespace="llm"}[1m]))'.
    #[arg(long, requires = "prometheus")]
    query: Option<String>,
    /// Start of the query's range (Unix seconds or RFC 3339), with --end; without them the
    /// range is the last --range-hours up to now.
    #[arg(long, requires = "end")]
    start: Option<String>,
    /// End of the query's range (Unix seconds or RFC 3339), with --start.
    #[arg(long, requires = "start")]
    end: Option<String>,
    /// How far back from now, in hours, when --start/--end are not given.
    #[arg(long, default_value_t = 24.0)]
    range_hours: f64,
    /// Resolution of the query, in seconds.
    #[arg(long, default_value_t = 60.0)]
    step: f64,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hpa-sim: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Replay { case } => {
            let c = hpa_sim::replay::load(&case)?;
            let out = hpa_sim::replay::run(&c).with_context(|| format!("{}", case.display()))?;
            let mut stdout = std::io::stdout().lock();
            for (t, o) in out {
                writeln!(stdout, "{}", hpa_sim::replay::json_line(t, &o))?;
            }
            Ok(())
        }
        Command::Simulate {
            scenario,
            no_bounds,
            out,
            prom,
        } => simulate(&scenario, !no_bounds, &out, &prom),
        Command::Tune {
            scenario,
            sweeps,
            saturation,
            threads,
            out,
            prom,
        } => tune(&scenario, &sweeps, &saturation, threads, &out, &prom),
        Command::Calibrate(args) => calibrate(&args),
    }
}

fn calibrate(a: &CalibrateArgs) -> anyhow::Result<()> {
    if let Some(p) = a.prefill_ms_per_token {
        if !(p >= 0.0 && p.is_finite()) {
            anyhow::bail!("--prefill-ms-per-token {p}: must be 0 or more");
        }
    }
    let (samples, method) = match (&a.csv, &a.prometheus) {
        (Some(csv), _) => (
            calibrate::from_csv(csv)?,
            format!("hpa-sim calibrate --csv {}", csv.display()),
        ),
        (None, Some(url)) => {
            eprintln!("hpa-sim: reading the samples from {url}");
            let source = calibrate::PromSource {
                range: trace::PromQuery {
                    url: url.clone(),
                    query: String::new(),
                    start: a.start.clone(),
                    end: a.end.clone(),
                    range_seconds: a.range_hours * 3600.0,
                    step_seconds: a.step,
                    timeout: std::time::Duration::from_secs(30),
                },
                selector: a.selector.clone(),
            };
            let range = match (&a.start, &a.end) {
                (Some(s), Some(e)) => format!("{s} to {e}"),
                _ => format!("the {} h before the run", a.range_hours),
            };
            (
                source.fetch()?,
                format!(
                    "hpa-sim calibrate from {url} {{{}}}, {range}, {} s step",
                    a.selector, a.step
                ),
            )
        }
        (None, None) => anyhow::bail!("give --csv FILE or --prometheus URL"),
    };
    let fit = calibrate::fit(&samples, a.prefill_ms_per_token)?;
    let bundled = profile::Profile::bundled(profile::DEFAULT)?;
    let (prefill, prefill_source) = match a.prefill_ms_per_token {
        Some(p) => (
            p,
            "measured by the user, given to hpa-sim calibrate (--prefill-ms-per-token)".to_string(),
        ),
        None => (
            bundled.prefill.ms_per_token,
            format!(
                "not measured: the bundled {} profile's estimate, for another model; measure yours (the server's prefill time per prompt token) and set it here",
                bundled.name
            ),
        ),
    };
    let meta = calibrate::Meta {
        name: a.name.clone(),
        description: None,
        measured: profile::Provenance {
            gpu: a.gpu.clone(),
            driver: a.driver.clone(),
            date: a.date.clone(),
            load: a.load.clone(),
            method: Some(format!(
                "{method}: {} samples{}",
                fit.used,
                if fit.prefill_corrected {
                    ", prefill time taken out of the step times"
                } else {
                    ""
                }
            )),
        },
        prefill_ms_per_token: prefill,
        prefill_measured: a.prefill_ms_per_token.is_some(),
        prefill_source,
    };
    let yaml = calibrate::profile_yaml(&fit, &meta);
    // What is written must read back.
    let checked: profile::Profile = serde_saphyr::from_str(&yaml)
        .map_err(|e| anyhow::anyhow!("the profile written does not parse: {e}"))?;
    checked
        .check()
        .map_err(|e| anyhow::anyhow!("the profile written is invalid: {e}"))?;
    calibrate::write(&a.out, &yaml)?;
    write!(std::io::stdout().lock(), "{}", calibrate::fit_text(&fit))?;
    eprintln!(
        "hpa-sim: profile written to {} (use it with `profile: {}` in a scenario, then hpa-sim tune)",
        a.out.display(),
        a.out.display()
    );
    Ok(())
}

/// The scenario with its trace (from Prometheus when asked), and the name it goes by.
fn load(path: &std::path::Path, prom: &PromArgs) -> anyhow::Result<(scenario::Loaded, String)> {
    let trace = match (&prom.prometheus, &prom.query) {
        (Some(url), Some(query)) => {
            eprintln!("hpa-sim: fetching the trace from {url}");
            Some(
                trace::PromQuery {
                    url: url.clone(),
                    query: query.clone(),
                    start: prom.start.clone(),
                    end: prom.end.clone(),
                    range_seconds: prom.range_hours * 3600.0,
                    step_seconds: prom.step,
                    timeout: std::time::Duration::from_secs(30),
                }
                .fetch()?,
            )
        }
        _ => None,
    };
    let loaded = scenario::load(path, trace)?;
    let name = loaded
        .scenario
        .name
        .clone()
        .unwrap_or_else(|| path.display().to_string());
    Ok((loaded, name))
}

/// Progress on stderr for runs that take a while.
fn progress_bar(label: String) -> impl FnMut(f64) {
    let start = std::time::Instant::now();
    let mut last = -1i64;
    move |share: f64| {
        let pct = (share * 100.0) as i64;
        if start.elapsed().as_secs_f64() > 2.0 && pct / 10 != last / 10 {
            eprintln!("hpa-sim: {label}: {pct} %");
            last = pct;
        }
    }
}

/// The bounds' search on stderr.
fn bounds_log(label: String) -> impl Fn(&str) + Sync {
    move |line: &str| eprintln!("hpa-sim: {label}: {line}")
}

fn simulate(
    path: &std::path::Path,
    with_bounds: bool,
    out: &Output,
    prom: &PromArgs,
) -> anyhow::Result<()> {
    let (loaded, name) = load(path, prom)?;
    let hpa = &loaded.scenario.hpa;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The run and its yardsticks at once.
    let log = bounds_log(format!("{name}: bounds"));
    let (bounds, run) = std::thread::scope(|s| {
        let b = s.spawn(|| {
            with_bounds
                .then(|| bounds::compute(&loaded, hpa, threads, &log))
                .transpose()
        });
        let run = simulate::run(
            &loaded,
            hpa,
            &mut progress_bar(format!("simulating {name}")),
        );
        (b.join(), run)
    });
    let run = run?;
    let bounds = bounds.map_err(|_| anyhow::anyhow!("the bounds' computation failed"))??;
    if out.json {
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::json!({"scenario": name, "totals": run.totals, "bounds": bounds, "steps": run.steps})
        )?;
    } else {
        writeln!(
            std::io::stdout().lock(),
            "{name}: {:.1} h of trace from {}\n",
            run.totals.hours,
            loaded.trace.source
        )?;
        write!(
            std::io::stdout().lock(),
            "{}{}",
            report::totals_text(&run.totals, bounds.as_ref()),
            loaded
                .profile
                .summary(&loaded.scenario.server, run.totals.prefill_share)
        )?;
    }
    if let Some(dir) = &out.report {
        report::ensure_dir(dir)?;
        report::save(
            dir,
            "summary.txt",
            &format!(
                "{}{}",
                report::totals_text(&run.totals, bounds.as_ref()),
                loaded
                    .profile
                    .summary(&loaded.scenario.server, run.totals.prefill_share)
            ),
        )?;
        report::save(
            dir,
            "summary.json",
            &serde_json::to_string_pretty(
                &serde_json::json!({"scenario": name, "totals": run.totals, "bounds": bounds}),
            )?,
        )?;
        report::save(dir, "steps.csv", &report::steps_csv(&run))?;
        plots::replicas_svg(
            &dir.join("replicas.svg"),
            &format!("{name}: replicas and load"),
            &run,
            bounds.as_ref().map(|b| &b.best_schedule),
        )?;
        plots::metrics_svg(
            &dir.join("metrics.svg"),
            &format!("{name}: each metric against its target"),
            &run,
        )?;
        eprintln!("hpa-sim: report written to {}", dir.display());
    }
    Ok(())
}

fn tune(
    path: &std::path::Path,
    sweeps: &[String],
    saturation: &[String],
    threads: Option<usize>,
    out: &Output,
    prom: &PromArgs,
) -> anyhow::Result<()> {
    let (loaded, name) = load(path, prom)?;
    let sweeps = sweeps
        .iter()
        .map(|s| tune::parse_sweep(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sat = std::collections::BTreeMap::new();
    for s in saturation {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--saturation {s:?}: expected METRIC=VALUE"))?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--saturation {s:?}: {v:?} is not a number"))?;
        if !(v > 0.0 && v.is_finite()) {
            anyhow::bail!("--saturation {s:?}: the value must be positive");
        }
        sat.insert(k.trim().to_string(), v);
    }
    let (settings, rejected) =
        tune::settings(&loaded, &sweeps, &sat).map_err(anyhow::Error::msg)?;
    for r in &rejected {
        eprintln!("hpa-sim: skipped, Kubernetes would reject it: {r}");
    }
    if settings.is_empty() {
        anyhow::bail!("the sweep leaves no valid setting");
    }
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Each setting is judged by the bounds of its own replica range (computed once a range).
    let cache = bounds::Cache::default();
    let per_setting = settings
        .iter()
        .map(|s| {
            let r = bounds::Range::of(&loaded, &s.hpa);
            cache.get(
                &loaded,
                &s.hpa,
                threads,
                &bounds_log(format!(
                    "{name}: bounds for minReplicas {} maxReplicas {}",
                    r.min, r.max
                )),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ranges = cache.all();
    eprintln!(
        "hpa-sim: {name}: {} settings on {threads} threads",
        settings.len()
    );
    let started = std::time::Instant::now();
    let outcomes = tune::run_all(
        &loaded,
        &settings,
        &per_setting,
        threads,
        &|done, total, o| {
            let p: Vec<String> = o.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            eprintln!(
                "hpa-sim: [{done}/{total}] {:.0} s: {} -> {:.2} GPU-hours, p95 wait {:.2} s{}",
                started.elapsed().as_secs_f64(),
                p.join(" "),
                o.totals.gpu_hours,
                o.totals.wait_p95,
                if o.totals.meets_goal {
                    ""
                } else {
                    " (misses the goal)"
                }
            );
        },
    )?;
    let best = tune::recommend(&outcomes);
    let per = tune::best_per_candidate(&outcomes);
    let has_candidates = outcomes.iter().any(|o| o.candidate.is_some());
    let table = report::sweep_text(&outcomes, best, &ranges);
    let cands = has_candidates.then(|| report::candidates_text(&outcomes, &per));
    let bounds_json: Vec<serde_json::Value> = ranges
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
        "bounds": bounds_json,
        "outcomes": outcomes,
        "recommendation": best,
        "bestPerCandidate": per,
        "rejected": rejected,
    });
    if out.json {
        writeln!(std::io::stdout().lock(), "{json}")?;
    } else {
        writeln!(
            std::io::stdout().lock(),
            "{name}: {} settings over {:.1} h of trace from {}\n",
            outcomes.len(),
            loaded.trace.duration() / 3600.0,
            loaded.trace.source
        )?;
        write!(std::io::stdout().lock(), "{table}")?;
        if let Some(c) = &cands {
            writeln!(
                std::io::stdout().lock(),
                "\nbest setting per candidate:\n{c}"
            )?;
        }
    }
    if let Some(dir) = &out.report {
        report::ensure_dir(dir)?;
        report::save(dir, "sweep.txt", &table)?;
        if let Some(c) = &cands {
            report::save(dir, "candidates.md", c)?;
        }
        report::save(dir, "sweep.json", &serde_json::to_string_pretty(&json)?)?;
        report::save(dir, "sweep.csv", &report::sweep_csv(&outcomes))?;
        plots::cost_latency_svg(
            &dir.join("cost-latency.svg"),
            &format!("{name}: cost against latency"),
            &outcomes,
            best,
            loaded.scenario.goal.p95_queue_wait_seconds,
        )?;
        if let Some(b) = best {
            let run = simulate::run(&loaded, &settings[b].hpa, &mut |_| {})?;
            plots::replicas_svg(
                &dir.join("replicas.svg"),
                &format!("{name}: the recommendation's replicas and load"),
                &run,
                Some(&per_setting[b].best_schedule),
            )?;
            plots::metrics_svg(
                &dir.join("metrics.svg"),
                &format!("{name}: the recommendation's metrics against targets"),
                &run,
            )?;
            report::save(dir, "steps.csv", &report::steps_csv(&run))?;
        }
        eprintln!("hpa-sim: report written to {}", dir.display());
    }
    Ok(())
}

/// `hpa-sim … | head` closes stdout early: that is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
