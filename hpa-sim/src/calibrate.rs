//! `hpa-sim calibrate`: a serving profile from a user's own load test or history. Samples of
//! per-pod decode throughput, running sequences (the batch) and the agent's GPU series, from a
//! CSV file or a Prometheus; the step-time line fitted by least squares through them, with its
//! residuals; refused, with the reason, when the data cannot support a fit.
//!
//! Samples are grouped by batch size (within a half-octave: 1, 1.41, 2, 2.83, ...); each group
//! is one point of the profile (its mean batch, step time, throughput and GPU series), and the
//! line `step = base + per_seq × batch` is the least-squares fit of the points' step times
//! (`batch / tokens per second`). Where the samples give the prompt tokens per second and a
//! prefill cost is known (`--prefill-ms-per-token`), the time spent prefilling is taken out of
//! each sample's step time first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::curves::GpuSeries;
use crate::input::{self, InputError};
use crate::profile::Provenance;
use crate::trace::{PromQuery, TraceError};

/// One sample: a pod over one interval (or one step of a load test).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Mean running sequences.
    pub batch: f64,
    /// Generated (decode) tokens per second.
    pub tokens_per_second: f64,
    pub prompt_tokens_per_second: Option<f64>,
    /// The GPU series in `GpuSeries::ALL` order; NaN where absent.
    pub gpu: [f64; 5],
}

/// One point of the fit: the samples of one batch-size group.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub batch: f64,
    pub samples: usize,
    /// Mean decode step time (ms) and the throughput it gives.
    pub step_ms: f64,
    pub tokens_per_second: f64,
    /// The fitted line's throughput at this batch.
    pub fitted_tokens_per_second: f64,
    pub gpu: [f64; 5],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub step_base_ms: f64,
    pub step_per_seq_ms: f64,
    pub points: Vec<Point>,
    /// Samples used, and left out (idle or partly idle: batch under 1; mostly prefill).
    pub used: usize,
    pub idle: usize,
    pub prefill_bound: usize,
    /// Whether the step times were corrected for prefill.
    pub prefill_corrected: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Prometheus(#[from] TraceError),
    #[error("too few points: {0}")]
    TooFew(String),
    #[error("no spread in batch size: {0}")]
    NoSpread(String),
    #[error("no saturation: {0}")]
    NoSaturation(String),
    #[error("the data do not follow a step-time line: {0}")]
    BadFit(String),
    #[error("{path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The fewest batch-size groups a line is fitted through.
pub const MIN_POINTS: usize = 3;
/// The least spread of batch sizes (largest over smallest).
pub const MIN_SPREAD: f64 = 4.0;
/// At the largest batch, the most a further doubling may still add to throughput (by the fit)
/// for the data to count as saturated.
pub const MAX_GAIN_PER_DOUBLING: f64 = 0.25;

/// Reads samples from CSV: `batch,tokens_per_second`, optionally `prompt_tokens_per_second`
/// and the GPU columns `utilization,sm_active,sm_occupancy,tensor_active,dram_active`.
pub fn from_csv(path: &Path) -> Result<Vec<Sample>, CalibrateError> {
    let table = input::read_csv(path, 2)?;
    let col = |name: &str| table.columns.iter().position(|c| c == name);
    let need = |name: &str| {
        col(name).ok_or_else(|| InputError::Invalid {
            path: path.to_path_buf(),
            what: format!(
                "the header has no `{name}` column (columns: batch, tokens_per_second, optional prompt_tokens_per_second, utilization, sm_active, sm_occupancy, tensor_active, dram_active)"
            ),
        })
    };
    let (b, g) = (need("batch")?, need("tokens_per_second")?);
    let q = col("prompt_tokens_per_second");
    let gpu: Vec<Option<usize>> = GpuSeries::ALL.iter().map(|s| col(s.column())).collect();
    let mut out = Vec::with_capacity(table.rows.len());
    for (line, row) in &table.rows {
        let bad = |what: String| InputError::Csv {
            path: path.to_path_buf(),
            line: *line,
            what,
        };
        if row[b] < 0.0 || row[g] < 0.0 {
            return Err(bad("batch and tokens_per_second must be 0 or more".into()).into());
        }
        let mut v = [f64::NAN; 5];
        for (i, c) in gpu.iter().enumerate() {
            if let Some(c) = c {
                if row[*c] < 0.0 {
                    return Err(bad(format!("{} is negative", GpuSeries::ALL[i].column())).into());
                }
                v[i] = row[*c];
            }
        }
        out.push(Sample {
            batch: row[b],
            tokens_per_second: row[g],
            prompt_tokens_per_second: q.map(|q| row[q]),
            gpu: v,
        });
    }
    Ok(out)
}

/// Where to read a history from Prometheus.
#[derive(Debug, Clone)]
pub struct PromSource {
    /// The range (its `query` is ignored: each series has its own).
    pub range: PromQuery,
    /// Label matchers selecting the server's pods, e.g. `namespace="llm",pod=~"vllm-.*"`.
    pub selector: String,
}

impl PromSource {
    fn run(&self, query: String) -> Result<Vec<crate::trace::PromSeries>, TraceError> {
        PromQuery {
            query,
            ..self.range.clone()
        }
        .matrix()
    }

    /// The queries for each input: vLLM's own series for the batch and the throughput, the
    /// shipped recording rules for the GPU series (the agent's raw series where the rules are
    /// not loaded).
    pub fn queries(&self) -> (String, String, String) {
        let sel = &self.selector;
        (
            format!(
                "avg by (namespace, pod) (avg_over_time(vllm:num_requests_running{{{sel}}}[1m]))"
            ),
            format!("sum by (namespace, pod) (rate(vllm:generation_tokens_total{{{sel}}}[1m]))"),
            format!("sum by (namespace, pod) (rate(vllm:prompt_tokens_total{{{sel}}}[1m]))"),
        )
    }

    /// Samples joined by pod and time.
    pub fn fetch(&self) -> Result<Vec<Sample>, CalibrateError> {
        type Key = (String, String, i64);
        let key = |labels: &BTreeMap<String, String>, t: f64| -> Key {
            let l = |k: &str| labels.get(k).cloned().unwrap_or_default();
            (l("namespace"), l("pod"), (t * 1000.0).round() as i64)
        };
        let (running_q, tokens_q, prompt_q) = self.queries();
        let mut samples: BTreeMap<Key, Sample> = BTreeMap::new();
        let running = self.run(running_q.clone())?;
        let tokens = self.run(tokens_q.clone())?;
        for (name, q, r) in [
            ("running sequences", &running_q, &running),
            ("decode throughput", &tokens_q, &tokens),
        ] {
            if r.is_empty() {
                return Err(TraceError::Prometheus {
                    url: self.range.url.clone(),
                    what: format!("the {name} query {q:?} returned no series in that range: is vLLM scraped, and does --selector match its pods?"),
                }
                .into());
            }
        }
        for s in &running {
            for (t, v) in &s.samples {
                samples.insert(
                    key(&s.labels, *t),
                    Sample {
                        batch: *v,
                        tokens_per_second: f64::NAN,
                        prompt_tokens_per_second: None,
                        gpu: [f64::NAN; 5],
                    },
                );
            }
        }
        let mut put = |series: &[crate::trace::PromSeries], f: &dyn Fn(&mut Sample, f64)| {
            for s in series {
                for (t, v) in &s.samples {
                    if let Some(x) = samples.get_mut(&key(&s.labels, *t)) {
                        f(x, *v);
                    }
                }
            }
        };
        put(&tokens, &|x, v| x.tokens_per_second = v);
        put(&self.run(prompt_q)?, &|x, v| {
            x.prompt_tokens_per_second = Some(v)
        });
        let sel = &self.selector;
        for s in GpuSeries::ALL {
            let metric = format!("pod_gpu_{}_ratio", s.column());
            let mut r = self.run(format!("namespace_pod:{metric}:avg1m{{{sel}}}"))?;
            if r.is_empty() {
                r = self.run(format!(
                    "avg by (namespace, pod) (avg_over_time({metric}{{{sel}}}[1m]))"
                ))?;
            }
            let i = s as usize;
            put(&r, &|x, v| x.gpu[i] = v);
        }
        Ok(samples
            .into_values()
            .filter(|s| s.tokens_per_second.is_finite())
            .collect())
    }
}

/// Sums over one group's samples: batch, step time, GPU series (and how many samples had
/// each), samples.
type Group = (f64, f64, [f64; 5], [usize; 5], usize);

/// The half-octave group of a batch size.
fn group(batch: f64) -> i64 {
    (2.0 * batch.log2()).floor() as i64
}

/// Fits the step-time line, or says why the samples cannot support one.
pub fn fit(samples: &[Sample], prefill_ms_per_token: Option<f64>) -> Result<Fit, CalibrateError> {
    let (mut idle, mut prefill_bound) = (0, 0);
    let mut corrected = false;
    let mut groups: BTreeMap<i64, Group> = BTreeMap::new();
    for s in samples {
        let usable = s.batch >= 1.0 && s.tokens_per_second > 0.0;
        if !usable {
            idle += 1;
            continue;
        }
        // The share of the time spent decoding: all of it, less the prompt tokens' prefill.
        let mut decode = 1.0;
        if let (Some(q), Some(p)) = (s.prompt_tokens_per_second, prefill_ms_per_token) {
            decode = 1.0 - q * p / 1000.0;
            corrected = true;
            if decode < 0.2 {
                prefill_bound += 1;
                continue;
            }
        }
        let step = 1000.0 * decode * s.batch / s.tokens_per_second;
        let g = groups
            .entry(group(s.batch))
            .or_insert((0.0, 0.0, [0.0; 5], [0; 5], 0));
        g.0 += s.batch;
        g.1 += step;
        for (i, v) in s.gpu.iter().enumerate() {
            if v.is_finite() {
                g.2[i] += v;
                g.3[i] += 1;
            }
        }
        g.4 += 1;
    }
    let used: usize = groups.values().map(|g| g.4).sum();
    let mut points: Vec<Point> = groups
        .values()
        .map(|(b, st, gs, gn, n)| {
            let n_f = *n as f64;
            let mut gpu = [f64::NAN; 5];
            for i in 0..5 {
                // A series counts at a point only where every sample of it has it.
                if gn[i] == *n {
                    gpu[i] = gs[i] / n_f;
                }
            }
            let (batch, step_ms) = (b / n_f, st / n_f);
            Point {
                batch,
                samples: *n,
                step_ms,
                tokens_per_second: 1000.0 * batch / step_ms,
                fitted_tokens_per_second: f64::NAN,
                gpu,
            }
        })
        .collect();
    let left_out = if idle + prefill_bound > 0 {
        format!(
            " ({idle} idle or partly idle with a batch under 1, {prefill_bound} mostly prefill, left out)"
        )
    } else {
        String::new()
    };
    if used < MIN_POINTS || points.len() < MIN_POINTS {
        return Err(CalibrateError::TooFew(format!(
            "{used} samples at {} batch sizes{left_out}; a step-time line needs samples at {MIN_POINTS} or more batch sizes: load-test at several (e.g. 1, 4, 16, 64, 256 sequences) or give a longer history",
            points.len()
        )));
    }
    let (lo, hi) = (points[0].batch, points[points.len() - 1].batch);
    if hi / lo < MIN_SPREAD {
        return Err(CalibrateError::NoSpread(format!(
            "the batch sizes span only {} to {} ({:.1}x); the line's base and per-sequence cost need a spread of {MIN_SPREAD}x or more: load-test at light and at heavy load",
            trim(lo),
            trim(hi),
            hi / lo
        )));
    }
    let n = points.len() as f64;
    let mb = points.iter().map(|p| p.batch).sum::<f64>() / n;
    let ms = points.iter().map(|p| p.step_ms).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.batch - mb).powi(2)).sum();
    let sxy: f64 = points
        .iter()
        .map(|p| (p.batch - mb) * (p.step_ms - ms))
        .sum();
    let per = sxy / sxx;
    let base = ms - per * mb;
    if per.is_nan() || per <= 0.0 {
        return Err(CalibrateError::NoSaturation(format!(
            "the step time does not grow with the batch (fit: {} ms {:+} ms per sequence): throughput still grows in proportion to the batch at {}; raise the load until it flattens",
            trim(base),
            per,
            trim(hi)
        )));
    }
    if base.is_nan() || base <= 0.0 {
        return Err(CalibrateError::BadFit(format!(
            "the fit gives a base step time of {} ms, which is not a time: check that the samples are one pod's decode throughput and its running sequences",
            trim(base)
        )));
    }
    let gain = base / (base + per * hi);
    if gain > MAX_GAIN_PER_DOUBLING {
        return Err(CalibrateError::NoSaturation(format!(
            "throughput is still rising at the largest batch measured ({}): by the fit (step {} ms + {} ms per sequence) doubling it would add {:.0} % more; the server was never near saturation. Load-test up to the batch where throughput flattens (vLLM's --max-num-seqs)",
            trim(hi),
            trim(base),
            trim(per),
            gain * 100.0
        )));
    }
    for p in &mut points {
        p.fitted_tokens_per_second = 1000.0 * p.batch / (base + per * p.batch);
    }
    Ok(Fit {
        step_base_ms: base,
        step_per_seq_ms: per,
        points,
        used,
        idle,
        prefill_bound,
        prefill_corrected: corrected,
    })
}

fn trim(v: f64) -> String {
    crate::sweep::trim(v)
}

/// The fit and its residuals, for a terminal.
pub fn fit_text(f: &Fit) -> String {
    let mut s = String::new();
    let full = f.points.last().map_or(0.0, |p| p.batch);
    let _ = writeln!(
        s,
        "step time = {:.4} ms + {:.6} ms x batch (least squares through {} points, {} samples{})",
        f.step_base_ms,
        f.step_per_seq_ms,
        f.points.len(),
        f.used,
        if f.idle + f.prefill_bound > 0 {
            format!(
                "; {} idle and {} mostly-prefill samples left out",
                f.idle, f.prefill_bound
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "at batch {}: {:.0} tokens/s; a further doubling would add {:.1} %",
        trim(full),
        1000.0 * full / (f.step_base_ms + f.step_per_seq_ms * full),
        100.0 * f.step_base_ms / (f.step_base_ms + f.step_per_seq_ms * full)
    );
    let _ = writeln!(
        s,
        "\n   batch  samples  step ms  fit ms   tokens/s  fitted  residual"
    );
    for p in &f.points {
        let fit_ms = f.step_base_ms + f.step_per_seq_ms * p.batch;
        let _ = writeln!(
            s,
            "{:>8} {:>8} {:>8.3} {:>7.3} {:>10.0} {:>7.0}  {:+6.1} %",
            trim(p.batch),
            p.samples,
            p.step_ms,
            fit_ms,
            p.tokens_per_second,
            p.fitted_tokens_per_second,
            100.0 * (p.fitted_tokens_per_second - p.tokens_per_second) / p.tokens_per_second
        );
    }
    let given: Vec<&str> = GpuSeries::ALL
        .iter()
        .filter(|g| f.points.iter().all(|p| p.gpu[**g as usize].is_finite()))
        .map(|g| g.column())
        .collect();
    let _ = writeln!(
        s,
        "\nGPU curves: {}",
        if given.is_empty() {
            "none (the samples have no GPU series; metrics on them cannot be simulated)".into()
        } else {
            given.join(", ")
        }
    );
    s
}

/// What the profile file records besides the fit.
#[derive(Debug, Clone)]
pub struct Meta {
    pub name: String,
    pub description: Option<String>,
    pub measured: Provenance,
    pub prefill_ms_per_token: f64,
    pub prefill_measured: bool,
    pub prefill_source: String,
}

/// A YAML string (JSON's quoting is valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The profile file (the format `profile::Profile` reads), with the residuals as comments.
pub fn profile_yaml(f: &Fit, m: &Meta) -> String {
    let mut s = String::from(
        "# hpa-sim serving profile written by `hpa-sim calibrate` (format: docs/autoscaling.md,\n# \"Serving profiles\"). The step-time line is the least-squares fit through the points:\n",
    );
    for line in fit_text(f).lines() {
        let _ = writeln!(s, "{}", format!("#   {line}").trim_end());
    }
    let _ = writeln!(s, "name: {}", q(&m.name));
    if let Some(d) = &m.description {
        let _ = writeln!(s, "description: {}", q(d));
    }
    s.push_str("measured:\n");
    let pv = &m.measured;
    for (k, v) in [
        ("gpu", &pv.gpu),
        ("driver", &pv.driver),
        ("date", &pv.date),
        ("load", &pv.load),
        ("method", &pv.method),
    ] {
        if let Some(v) = v {
            let _ = writeln!(s, "  {k}: {}", q(v));
        }
    }
    let _ = writeln!(s, "stepBaseMs: {}", round6(f.step_base_ms));
    let _ = writeln!(s, "stepPerSeqMs: {}", round6(f.step_per_seq_ms));
    let _ = writeln!(
        s,
        "prefill:\n  msPerToken: {}\n  measured: {}\n  source: {}",
        m.prefill_ms_per_token,
        m.prefill_measured,
        q(&m.prefill_source)
    );
    s.push_str("points:\n");
    for p in &f.points {
        let _ = write!(
            s,
            "  - {{batch: {}, tokensPerSecond: {}",
            round6(p.batch),
            p.tokens_per_second.round()
        );
        for g in GpuSeries::ALL {
            let v = p.gpu[g as usize];
            if f.points.iter().all(|p| p.gpu[g as usize].is_finite()) {
                let _ = write!(s, ", {}: {}", g.key(), round6(v));
            }
        }
        s.push_str("}\n");
    }
    s
}

/// Six significant digits, as short as they print.
fn round6(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(5 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// Writes the profile.
pub fn write(path: &Path, text: &str) -> Result<(), CalibrateError> {
    std::fs::write(path, text).map_err(|error| CalibrateError::Write {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(batch: f64, tps: f64) -> Sample {
        Sample {
            batch,
            tokens_per_second: tps,
            prompt_tokens_per_second: None,
            gpu: [f64::NAN; 5],
        }
    }

    #[test]
    fn the_h200_rows_give_the_bundled_line() {
        let rows = [
            (1.0, 794.0),
            (4.0, 3311.0),
            (16.0, 11532.0),
            (64.0, 21817.0),
            (256.0, 28139.0),
        ];
        let s: Vec<Sample> = rows.iter().map(|(b, t)| sample(*b, *t)).collect();
        let f = fit(&s, None).expect("a fit");
        assert!((f.step_base_ms - 1.0404).abs() < 5e-5, "{}", f.step_base_ms);
        assert!((f.step_per_seq_ms - 0.031332).abs() < 5e-7);
        assert_eq!(f.points.len(), 5);
        let text = fit_text(&f);
        assert!(text.contains("+17.5 %"), "{text}");
        assert!(text.contains("-10.0 %"), "{text}");
    }

    #[test]
    fn prefill_time_comes_out_of_the_step_time() {
        // Each sample spent a quarter of its time prefilling (250 ms/s at 0.01 ms per token).
        let line = |b: f64| 1000.0 * b / (1.0 + 0.03 * b);
        let s: Vec<Sample> = [1.0, 4.0, 16.0, 64.0, 256.0]
            .iter()
            .map(|b| Sample {
                prompt_tokens_per_second: Some(25_000.0),
                ..sample(*b, 0.75 * line(*b))
            })
            .collect();
        let f = fit(&s, Some(0.01)).expect("a fit");
        assert!((f.step_base_ms - 1.0).abs() < 1e-9 && (f.step_per_seq_ms - 0.03).abs() < 1e-12);
        assert!(f.prefill_corrected);
        // Without the prefill cost, the line is a third slower.
        let g = fit(&s, None).expect("a fit");
        assert!((g.step_per_seq_ms / 0.03 - 4.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn history_samples_group_by_half_octave() {
        let mut s = Vec::new();
        for b in [1.0, 1.2, 3.9, 4.1, 15.0, 17.0, 60.0, 70.0, 250.0] {
            s.push(sample(b, 1000.0 * b / (1.0 + 0.03 * b)));
        }
        s.push(sample(0.4, 100.0));
        let f = fit(&s, None).expect("a fit");
        assert_eq!(f.idle, 1);
        assert_eq!(f.used, 9);
        assert_eq!(
            f.points.iter().map(|p| p.samples).collect::<Vec<_>>(),
            vec![2, 1, 1, 1, 1, 1, 1, 1]
        );
        assert!((f.step_per_seq_ms - 0.03).abs() < 1e-9);
    }
}
