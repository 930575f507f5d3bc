//! One replica's server as the model runs it (vLLM's batch limits, the step-time line, its
//! start-up and shutdown) and how the Service routes requests to the replicas: the settings the
//! replica model, the GPU curves and the serving profiles all read. A scenario's `server:`
//! resolves to it (`scenario::ServerSpec`).

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum Routing {
    /// kube-proxy's iptables mode: each request to a random ready endpoint.
    #[default]
    Random,
    RoundRobin,
    /// An inference gateway: to the endpoint with the fewest requests.
    LeastRequests,
}

/// One replica (vLLM) as the model runs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Server {
    /// vLLM `--max-num-seqs`: the most sequences in one batch.
    pub max_num_seqs: u32,
    /// KV-cache capacity in tokens (vLLM logs it at start as "GPU KV cache size").
    pub kv_cache_tokens: f64,
    /// vLLM `--max-num-batched-tokens`: a request is admitted while the prompt tokens admitted
    /// but not yet prefilled are at most this many (chunked prefill).
    pub max_num_batched_tokens: f64,
    /// Decode step time = `base_ms + per_seq_ms × running sequences` (from the profile).
    pub step_base_ms: f64,
    pub step_per_seq_ms: f64,
    /// Prefill cost per prompt token (from the profile); the replica prefills before it decodes.
    pub prefill_ms_per_token: f64,
    /// Pending before a GPU is bound (scheduling, node provisioning).
    pub pending_seconds: f64,
    /// From running to ready: image start and model load.
    pub startup_seconds: f64,
    /// A deleted pod finishes its requests for at most this long (`preStop` +
    /// `terminationGracePeriodSeconds`); what is left is dropped.
    pub termination_grace_seconds: f64,
    pub routing: Routing,
}

/// The bundled `h200-decode` profile's step-time line and prefill cost (a test checks them
/// against the profile file).
pub const H200_STEP_BASE_MS: f64 = 1.0404;
pub const H200_STEP_PER_SEQ_MS: f64 = 0.031332;
pub const H200_PREFILL_MS_PER_TOKEN: f64 = 0.0065;

impl Default for Server {
    fn default() -> Self {
        Server {
            max_num_seqs: 256,
            kv_cache_tokens: 500_000.0,
            max_num_batched_tokens: 8192.0,
            step_base_ms: H200_STEP_BASE_MS,
            step_per_seq_ms: H200_STEP_PER_SEQ_MS,
            prefill_ms_per_token: H200_PREFILL_MS_PER_TOKEN,
            pending_seconds: 0.0,
            startup_seconds: 180.0,
            termination_grace_seconds: 120.0,
            routing: Routing::Random,
        }
    }
}
