//! The run's requests: arrivals drawn from the trace and each request's lengths, from a random
//! stream of their own, so that every policy run on a scenario (and its bounds) sees the same
//! requests at the same moments. Routing draws from another stream.

use crate::arrivals;
use crate::rng::Rng;
use crate::scenario::{Loaded, Requests};
use crate::server::Server;
use crate::serving::Request;
use crate::trace::Trace;

/// Salt of the routing stream (kube-proxy's random choice), kept apart from the arrivals.
pub const ROUTING_SALT: u64 = 0x5EED_0F0A_7E00;

/// The arrivals of a scenario, tick by tick: the Poisson process of `arrivals` at the trace's
/// rate, on the scenario's seed.
#[derive(Debug, Clone)]
pub struct Arrivals<'a> {
    trace: &'a Trace,
    req: Requests,
    dt: f64,
    rng: Rng,
    process: arrivals::Poisson,
}

impl<'a> Arrivals<'a> {
    pub fn new(loaded: &'a Loaded) -> Arrivals<'a> {
        let mut rng = Rng::new(loaded.scenario.seed);
        let process = arrivals::Poisson::new(&mut rng);
        Arrivals {
            trace: &loaded.trace,
            req: loaded.scenario.requests,
            dt: loaded.scenario.tick_seconds,
            rng,
            process,
        }
    }

    /// The requests arriving in tick `k`, `[k dt, (k + 1) dt)`, in order (at the trace's rate
    /// at the tick's middle). Call it for `k = 0, 1, 2, ...`: the stream is sequential.
    pub fn tick(&mut self, k: u64) -> Vec<Request> {
        let t = k as f64 * self.dt;
        let rate = self.trace.rate(t + self.dt / 2.0);
        self.process
            .tick(t, self.dt, rate, &mut self.rng, &self.req)
    }
}

/// Ticks in a run of the loaded scenario.
pub fn ticks(loaded: &Loaded) -> u64 {
    (loaded.trace.duration() / loaded.scenario.tick_seconds).ceil() as u64
}

/// The least replica time a request takes, in seconds: its prefill, plus its output tokens at
/// the cheapest cost per token there is, a full batch (`stepBaseMs / maxNumSeqs +
/// stepPerSeqMs`: a decode step of `b` sequences takes `base + per_seq × b` ms and gives each
/// one token).
pub fn min_work_seconds(req: &Request, server: &Server) -> f64 {
    let b = f64::from(server.max_num_seqs.max(1));
    let per_token_ms = server.step_base_ms / b + server.step_per_seq_ms;
    (req.prompt * server.prefill_ms_per_token + req.output.max(1.0) * per_token_ms) / 1000.0
}
