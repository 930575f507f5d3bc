//! The `hpa-sim` command line: `replay`, `simulate`, `tune` and `calibrate`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

use hpa_sim::{bounds, calibrate, profile, report, scenario, simulate, sweep, trace, tune};

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
        /// NAME=FROM:TO:STEP or NAME=A,B,C (repeatable).
        #[arg(long = "sweep", required = true, help = sweep_help())]
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

impl Output {
    fn destination(&self) -> report::Destination {
        report::Destination {
            json: self.json,
            folder: self.report.clone(),
        }
    }
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

/// `--sweep`'s help, naming every parameter.
fn sweep_help() -> String {
    format!(
        "NAME=FROM:TO:STEP or NAME=A,B,C (repeatable). NAME: {}",
        sweep::Param::names()
    )
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
    let log = report::bounds_log(format!("{name}: bounds"));
    let (bounds, run) = std::thread::scope(|s| {
        let b = s.spawn(|| {
            with_bounds
                .then(|| bounds::compute(&loaded, hpa, threads, &log))
                .transpose()
        });
        let run = simulate::run(
            &loaded,
            hpa,
            &mut report::progress_bar(format!("simulating {name}")),
        );
        (b.join(), run)
    });
    let run = run?;
    let bounds = bounds.map_err(|_| anyhow::anyhow!("the bounds' computation failed"))??;
    report::simulation(&out.destination(), &name, &loaded, &run, bounds.as_ref())?;
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
        .map(|s| sweep::parse_sweep(s))
        .collect::<Result<Vec<_>, _>>()?;
    let saturation = sweep::parse_saturation(saturation)?;
    let (settings, rejected) = sweep::settings(&loaded, &sweeps, &saturation)?;
    for r in &rejected {
        eprintln!("hpa-sim: skipped, Kubernetes would reject it: {r}");
    }
    if settings.is_empty() {
        anyhow::bail!("the sweep leaves no valid setting");
    }
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let tuned = tune::tune(&loaded, &settings, threads, &report::TuneLog::new(&name))?;
    // The report folder shows the recommendation's run.
    let recommended = match (&out.report, tuned.best) {
        (Some(_), Some(b)) => Some(simulate::run(&loaded, &settings[b].hpa, &mut |_| {})?),
        _ => None,
    };
    report::sweep(
        &out.destination(),
        &name,
        &loaded,
        &tuned,
        &rejected,
        recommended.as_ref(),
    )?;
    Ok(())
}

/// `hpa-sim … | head` closes stdout early: that is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<report::ReportError>()
                .is_some_and(report::ReportError::is_broken_pipe)
    })
}
