//! The SCENARIO file of `simulate` and `tune`: the HPA, the serving Deployment's model, the
//! arrival trace, how metrics reach the HPA, and the latency goal (format documented in
//! docs/autoscaling.md, "hpa-sim").

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::controller::ControllerConfig;
use crate::curves::{Curves, GpuSeries};
use crate::input::{self, InputError};
use crate::profile::{InlineLine, Profile, ProfileError};
use crate::server::{Routing, Server};
use crate::spec::{HpaSpec, MetricSpec};
use crate::trace::{Trace, TraceError};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub hpa: HpaSpec,
    #[serde(default)]
    pub controller: ControllerConfig,
    /// The Deployment's replicas when the run starts (ready, model loaded). Default: minReplicas.
    #[serde(default)]
    pub initial_replicas: Option<i32>,
    #[serde(default)]
    pub trace: TraceSpec,
    #[serde(default)]
    pub requests: Requests,
    /// The serving profile: a bundled name (`h200-decode`, the default) or a profile file
    /// relative to the scenario file. Its step-time line, prefill cost and GPU curves apply
    /// unless `server:` or `gpu:` give them.
    #[serde(default)]
    pub profile: Option<String>,
    /// The replica as written; `server` is what the run uses.
    #[serde(default, rename = "server")]
    pub server_spec: ServerSpec,
    /// The replica with its profile applied (filled by `load`).
    #[serde(skip)]
    pub server: Server,
    #[serde(default)]
    pub gpu: Gpu,
    /// How each metric named in the HPA is produced; the known names need no entry.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricSource>,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub goal: Goal,
    /// Named alternative metric lists for `tune --sweep candidate=a,b`.
    #[serde(default)]
    pub candidates: BTreeMap<String, Candidate>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated time step in seconds (the serving model's resolution).
    #[serde(default = "default_tick")]
    pub tick_seconds: f64,
}

fn default_seed() -> u64 {
    1
}

fn default_tick() -> f64 {
    0.25
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraceSpec {
    /// CSV of `time,requests_per_second`, relative to the scenario file.
    #[serde(default)]
    pub csv: Option<PathBuf>,
    /// Multiplies every rate (e.g. to try twice the traffic).
    #[serde(default)]
    pub scale: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Length {
    pub mean: f64,
    /// Coefficient of variation of a log-normal; 0 = every request the mean.
    #[serde(default)]
    pub cv: f64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Requests {
    pub prompt_tokens: Length,
    pub output_tokens: Length,
}

impl Default for Requests {
    fn default() -> Self {
        Requests {
            prompt_tokens: Length {
                mean: 1000.0,
                cv: 0.6,
            },
            output_tokens: Length {
                mean: 250.0,
                cv: 0.8,
            },
        }
    }
}

/// `server:` as written: every key optional; the step-time keys override the profile's.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSpec {
    pub max_num_seqs: Option<u32>,
    pub kv_cache_tokens: Option<f64>,
    pub max_num_batched_tokens: Option<f64>,
    pub step_base_ms: Option<f64>,
    pub step_per_seq_ms: Option<f64>,
    pub prefill_ms_per_token: Option<f64>,
    pub pending_seconds: Option<f64>,
    pub startup_seconds: Option<f64>,
    pub termination_grace_seconds: Option<f64>,
    pub routing: Option<Routing>,
}

impl ServerSpec {
    /// The replica with `profile` applied under the inline keys.
    pub fn resolve(&self, profile: &Profile) -> Server {
        let d = Server::default();
        let mut s = Server {
            max_num_seqs: self.max_num_seqs.unwrap_or(d.max_num_seqs),
            kv_cache_tokens: self.kv_cache_tokens.unwrap_or(d.kv_cache_tokens),
            max_num_batched_tokens: self
                .max_num_batched_tokens
                .unwrap_or(d.max_num_batched_tokens),
            pending_seconds: self.pending_seconds.unwrap_or(d.pending_seconds),
            startup_seconds: self.startup_seconds.unwrap_or(d.startup_seconds),
            termination_grace_seconds: self
                .termination_grace_seconds
                .unwrap_or(d.termination_grace_seconds),
            routing: self.routing.unwrap_or(d.routing),
            ..d
        };
        profile.apply(
            &mut s,
            &InlineLine {
                step_base_ms: self.step_base_ms,
                step_per_seq_ms: self.step_per_seq_ms,
                prefill_ms_per_token: self.prefill_ms_per_token,
            },
        );
        s
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gpu {
    /// A CSV path relative to the scenario file, keyed by `share` of the full-batch
    /// throughput, replacing the profile's curves; `h200` (the former name of the bundled
    /// curves) is the profile's own.
    #[serde(default)]
    pub curves: Option<String>,
}

/// A simulated series a metric reads.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// Per pod, from the agent: `pod_gpu_utilization_ratio`.
    GpuUtilization,
    GpuSmActive,
    GpuSmOccupancy,
    GpuTensorActive,
    GpuDramActive,
    /// Per pod, from vLLM: `vllm:num_requests_waiting`.
    NumRequestsWaiting,
    NumRequestsRunning,
    /// `vllm:kv_cache_usage_perc` (0..1; older vLLM: `vllm:gpu_cache_usage_perc`).
    KvCacheUsage,
    /// Per pod, from vLLM: requests finished per second, `rate(vllm:request_success_total[1m])`.
    /// It follows the load one for one up to the replica's capacity, then stays there.
    RequestSuccessRate,
    /// The Service's arrival rate, requests/s over the window (an Object metric).
    RequestRate,
}

impl Series {
    pub fn gpu(self) -> Option<GpuSeries> {
        Some(match self {
            Series::GpuUtilization => GpuSeries::Utilization,
            Series::GpuSmActive => GpuSeries::SmActive,
            Series::GpuSmOccupancy => GpuSeries::SmOccupancy,
            Series::GpuTensorActive => GpuSeries::TensorActive,
            Series::GpuDramActive => GpuSeries::DramActive,
            _ => return None,
        })
    }

    /// A counter, read as its `rate(...[window])`; the others are gauges, read as their
    /// `avg_over_time(...[window])`.
    pub fn is_counter(self) -> bool {
        matches!(self, Series::RequestSuccessRate)
    }

    /// Exported by vLLM itself: absent until the server is up.
    pub fn from_vllm(self) -> bool {
        matches!(
            self,
            Series::NumRequestsWaiting
                | Series::NumRequestsRunning
                | Series::KvCacheUsage
                | Series::RequestSuccessRate
        )
    }

    /// The series a known metric name reads: the adapter's and KEDA's names in
    /// daemonset/autoscaling, the agent's and vLLM's own names.
    pub fn known(name: &str) -> Option<Series> {
        let n = name.trim_start_matches("pod_").replace(':', "_");
        Some(match n.as_str() {
            "gpu_utilization_ratio" => Series::GpuUtilization,
            "gpu_sm_active_ratio" => Series::GpuSmActive,
            "gpu_sm_occupancy_ratio" => Series::GpuSmOccupancy,
            "gpu_tensor_active_ratio" => Series::GpuTensorActive,
            "gpu_dram_active_ratio" => Series::GpuDramActive,
            "vllm_num_requests_waiting" => Series::NumRequestsWaiting,
            "vllm_num_requests_running" => Series::NumRequestsRunning,
            "vllm_kv_cache_usage_perc" | "vllm_gpu_cache_usage_perc" | "vllm_kv_cache_usage" => {
                Series::KvCacheUsage
            }
            "vllm_request_success_rate" => Series::RequestSuccessRate,
            "requests_per_second" | "vllm_request_rate" => Series::RequestRate,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSource {
    pub series: Series,
}

/// `pipeline:`: how a metric travels from the pods to the HPA (its timing).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Prometheus' scrape interval.
    pub scrape_interval_seconds: f64,
    /// The agent's `--collect.interval`: a GPU value is the mean over the interval before
    /// the sample.
    pub agent_interval_seconds: f64,
    /// The `avg_over_time(...[window])` of the adapter's and KEDA's queries.
    pub window_seconds: f64,
    /// Extra lag between Prometheus and the HPA (rule evaluation, adapter or KEDA caching).
    pub delay_seconds: f64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            scrape_interval_seconds: 15.0,
            agent_interval_seconds: 5.0,
            window_seconds: 60.0,
            delay_seconds: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Goal {
    /// The 95th percentile of the time a request waits for a slot in a batch.
    pub p95_queue_wait_seconds: f64,
    /// Flapping: a scale in one direction undone within this window.
    pub flap_window_seconds: f64,
    /// The most flaps allowed over the run.
    pub max_flaps: u32,
}

impl Default for Goal {
    fn default() -> Self {
        Goal {
            p95_queue_wait_seconds: 2.0,
            flap_window_seconds: 600.0,
            max_flaps: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Candidate {
    #[serde(default)]
    pub description: Option<String>,
    pub metrics: Vec<MetricSpec>,
}

/// A scenario with its trace loaded and every reference resolved.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub scenario: Scenario,
    pub trace: Trace,
    pub curves: Curves,
    /// The serving profile the server and curves come from.
    pub profile: Profile,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("{path}: {error}")]
    Profile { path: PathBuf, error: ProfileError },
}

fn invalid(path: &Path, what: impl Into<String>) -> ScenarioError {
    ScenarioError::Input(InputError::Invalid {
        path: path.to_path_buf(),
        what: what.into(),
    })
}

impl Scenario {
    /// The series each HPA metric reads.
    pub fn series_of(&self, metric: &str) -> Option<Series> {
        self.metrics
            .get(metric)
            .map(|m| m.series)
            .or_else(|| Series::known(metric))
    }

    pub fn initial_replicas(&self) -> i32 {
        self.initial_for(&self.hpa)
    }

    /// The replicas ready at t = 0 under `hpa` (a sweep's variant): `initialReplicas`, else
    /// that HPA's `minReplicas`.
    pub fn initial_for(&self, hpa: &HpaSpec) -> i32 {
        self.initial_replicas.unwrap_or_else(|| hpa.min_replicas())
    }

    /// Every check that does not need the trace.
    pub fn check(&self, path: &Path) -> Result<(), ScenarioError> {
        self.hpa
            .validate()
            .map_err(|e| invalid(path, e.to_string()))?;
        self.controller
            .validate()
            .map_err(|e| invalid(path, e.to_string()))?;
        let mut lists: Vec<(&str, &Vec<MetricSpec>)> = vec![("hpa.metrics", &self.hpa.metrics)];
        for (name, c) in &self.candidates {
            lists.push((name.as_str(), &c.metrics));
            let mut h = self.hpa.clone();
            h.metrics = c.metrics.clone();
            h.validate()
                .map_err(|e| invalid(path, format!("candidates.{name}: {e}")))?;
        }
        for (where_, metrics) in lists {
            for m in metrics {
                if self.series_of(m.name()).is_none() {
                    return Err(invalid(
                        path,
                        format!(
                            "{where_}: metric {:?} is not a known name; map it under `metrics:` to one of gpu_utilization, gpu_sm_active, gpu_sm_occupancy, gpu_tensor_active, gpu_dram_active, num_requests_waiting, num_requests_running, kv_cache_usage, request_rate",
                            m.name()
                        ),
                    ));
                }
            }
        }
        let s = &self.server;
        let positive = [
            ("server.kvCacheTokens", s.kv_cache_tokens),
            ("server.maxNumBatchedTokens", s.max_num_batched_tokens),
            ("server.stepBaseMs", s.step_base_ms),
            (
                "pipeline.scrapeIntervalSeconds",
                self.pipeline.scrape_interval_seconds,
            ),
            (
                "pipeline.agentIntervalSeconds",
                self.pipeline.agent_interval_seconds,
            ),
            ("pipeline.windowSeconds", self.pipeline.window_seconds),
            ("goal.p95QueueWaitSeconds", self.goal.p95_queue_wait_seconds),
            (
                "requests.promptTokens.mean",
                self.requests.prompt_tokens.mean,
            ),
            (
                "requests.outputTokens.mean",
                self.requests.output_tokens.mean,
            ),
            ("tickSeconds", self.tick_seconds),
        ];
        for (name, v) in positive {
            if !(v > 0.0 && v.is_finite()) {
                return Err(invalid(
                    path,
                    format!("{name}: {v} must be a positive number"),
                ));
            }
        }
        let non_negative = [
            ("server.stepPerSeqMs", s.step_per_seq_ms),
            ("server.prefillMsPerToken", s.prefill_ms_per_token),
            ("server.pendingSeconds", s.pending_seconds),
            ("server.startupSeconds", s.startup_seconds),
            (
                "server.terminationGraceSeconds",
                s.termination_grace_seconds,
            ),
            ("pipeline.delaySeconds", self.pipeline.delay_seconds),
            ("requests.promptTokens.cv", self.requests.prompt_tokens.cv),
            ("requests.outputTokens.cv", self.requests.output_tokens.cv),
            ("goal.flapWindowSeconds", self.goal.flap_window_seconds),
        ];
        for (name, v) in non_negative {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(path, format!("{name}: {v} must be 0 or more")));
            }
        }
        if s.max_num_seqs == 0 || s.max_num_seqs > 65_536 {
            return Err(invalid(
                path,
                format!(
                    "server.maxNumSeqs: {} must be between 1 and 65536",
                    s.max_num_seqs
                ),
            ));
        }
        if self.tick_seconds > 1.0 {
            return Err(invalid(
                path,
                format!(
                    "tickSeconds: {} is too coarse (at most 1)",
                    self.tick_seconds
                ),
            ));
        }
        let init = self.initial_replicas();
        if init < 1 {
            return Err(invalid(
                path,
                format!("initialReplicas: {init} must be at least 1"),
            ));
        }
        Ok(())
    }
}

/// The most requests one run simulates: every request is drawn, queued and served, and its wait
/// kept for the percentiles (a week at 30 requests/s is 18 million).
pub const MAX_REQUESTS: f64 = 2e7;

/// Reads a scenario, its trace (unless `trace` is given, e.g. from Prometheus) and its curves.
pub fn load(path: &Path, trace: Option<Trace>) -> Result<Loaded, ScenarioError> {
    let mut scenario: Scenario = input::read_yaml(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let profile = match &scenario.profile {
        None => Profile::bundled(crate::profile::DEFAULT),
        Some(p) => Profile::resolve(p, dir),
    }
    .map_err(|error| ScenarioError::Profile {
        path: path.to_path_buf(),
        error,
    })?;
    scenario.server = scenario.server_spec.resolve(&profile);
    scenario.check(path)?;
    let trace = match (trace, &scenario.trace.csv) {
        (Some(t), _) => t,
        (None, Some(csv)) => Trace::from_csv(&dir.join(csv))?,
        (None, None) => {
            return Err(invalid(
                path,
                "trace.csv: no arrival trace (give one here, or --prometheus URL --query Q)",
            ))
        }
    };
    let trace = match scenario.trace.scale {
        Some(f) if f > 0.0 && f.is_finite() => trace.scaled(f),
        Some(f) => {
            return Err(invalid(
                path,
                format!("trace.scale: {f} must be a positive number"),
            ))
        }
        None => trace,
    };
    let requests = trace.expected_requests();
    if requests.is_nan() || requests > MAX_REQUESTS {
        return Err(invalid(
            path,
            format!(
                "the trace asks for about {requests:.3e} requests over {:.1} h (peak {:.3e} requests/s); hpa-sim simulates at most {MAX_REQUESTS:.0e} in one run: scale the trace down (trace.scale) or shorten it",
                trace.duration() / 3600.0,
                trace.peak()
            ),
        ));
    }
    let curves = match scenario.gpu.curves.as_deref() {
        None | Some("h200") => profile.curves(&scenario.server),
        Some(csv) => Curves::from_csv(&dir.join(csv), &scenario.server)?,
    };
    for m in scenario
        .hpa
        .metrics
        .iter()
        .chain(scenario.candidates.values().flat_map(|c| c.metrics.iter()))
    {
        if let Some(g) = scenario.series_of(m.name()).and_then(Series::gpu) {
            if !curves.has(g) {
                return Err(invalid(
                    path,
                    format!(
                        "metric {:?} reads {}, which the calibration curves do not give",
                        m.name(),
                        g.column()
                    ),
                ));
            }
        }
    }
    Ok(Loaded {
        scenario,
        trace,
        curves,
        profile,
        path: path.to_path_buf(),
    })
}
