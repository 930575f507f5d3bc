//! The serving Deployment: its pods' lifecycle (pending, loading the model, ready, draining),
//! the Service's routing, and the agent's GPU samples; each ready pod's batching is a
//! `replica::Replica`.
//!
//! Everything happens at its own time, not at tick edges: a pod binds its GPU, becomes ready
//! and leaves at the exact moment its state says; a request is routed when it arrives, to the
//! endpoints ready then (for `leastRequests`, by their load at that moment). `tick` only groups
//! the work between two of the controller's observations.

use crate::curves::Curves;
use crate::replica::Replica;
pub use crate::replica::{Counters, Request};
use crate::rng::Rng;
use crate::server::{Routing, Server};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    /// Waiting for a GPU until the given time.
    Pending {
        until: f64,
    },
    /// Holding a GPU, loading the model until the given time.
    Loading {
        until: f64,
    },
    Ready,
    /// Deleted: out of the Service, finishing its requests until the deadline.
    Draining {
        deadline: f64,
    },
}

#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub state: State,
    /// When the pod got its GPU (end of pending).
    pub bound_at: Option<f64>,
    pub ready_at: Option<f64>,
    rep: Replica,
    /// The agent's last published GPU values (means over its last interval).
    pub gpu_published: Option<[f64; 5]>,
}

impl Pod {
    pub fn waiting(&self) -> usize {
        self.rep.waiting()
    }

    pub fn running(&self) -> usize {
        self.rep.running()
    }

    pub fn kv_usage(&self, cfg: &Server) -> f64 {
        self.rep.kv_usage(cfg)
    }

    /// Requests the pod's server has finished (`vllm:request_success_total`).
    pub fn completed(&self) -> u64 {
        self.rep.completed()
    }

    pub fn is_draining(&self) -> bool {
        matches!(self.state, State::Draining { .. })
    }

    pub fn has_gpu(&self) -> bool {
        self.bound_at.is_some()
    }

    /// The time of its next lifecycle transition.
    fn transition(&self) -> Option<f64> {
        match self.state {
            State::Pending { until } | State::Loading { until } => Some(until),
            _ => None,
        }
    }
}

/// The Deployment and its Service.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub pods: Vec<Pod>,
    /// Requests that found no ready endpoint (the clients retry until one is ready).
    front: Vec<Request>,
    cfg: Server,
    next_id: u64,
    rr: usize,
    /// GPU-seconds of pods that are gone.
    gone_gpu_seconds: f64,
    pub counters: Counters,
    /// The end of the last tick, and of the agent's last sample.
    now: f64,
    sampled_at: f64,
    /// The ready pods' indices, and the earliest lifecycle transition due (kept up to date by
    /// every change of state).
    ready_idx: Vec<usize>,
    next_transition: f64,
}

impl Fleet {
    /// A Deployment with `replicas` pods ready at time 0.
    pub fn new(cfg: Server, replicas: i32) -> Fleet {
        let mut f = Fleet {
            pods: Vec::new(),
            front: Vec::new(),
            cfg,
            next_id: 0,
            rr: 0,
            gone_gpu_seconds: 0.0,
            counters: Counters::default(),
            now: 0.0,
            sampled_at: 0.0,
            ready_idx: Vec::new(),
            next_transition: f64::INFINITY,
        };
        for _ in 0..replicas.max(0) {
            let mut p = f.new_pod(State::Ready);
            p.bound_at = Some(0.0);
            p.ready_at = Some(0.0);
            f.pods.push(p);
        }
        f.states_changed();
        f
    }

    /// Refreshes what is derived from the pods' states.
    fn states_changed(&mut self) {
        self.ready_idx.clear();
        self.next_transition = f64::INFINITY;
        for (i, p) in self.pods.iter().enumerate() {
            if p.state == State::Ready {
                self.ready_idx.push(i);
            }
            if let Some(t) = p.transition() {
                self.next_transition = self.next_transition.min(t);
            }
        }
    }

    pub fn server(&self) -> &Server {
        &self.cfg
    }

    /// Tokens per second of one replica at full batch.
    pub fn max_tokens_per_second(&self) -> f64 {
        let b = f64::from(self.cfg.max_num_seqs);
        b / ((self.cfg.step_base_ms + self.cfg.step_per_seq_ms * b) / 1000.0)
    }

    fn new_pod(&mut self, state: State) -> Pod {
        let id = self.next_id;
        self.next_id += 1;
        Pod {
            name: format!("vllm-{id:05}"),
            state,
            bound_at: None,
            ready_at: None,
            rep: Replica::new(0.0),
            gpu_published: None,
        }
    }

    /// Pods that count toward the Deployment's replicas (not draining).
    pub fn live(&self) -> usize {
        self.pods.iter().filter(|p| !p.is_draining()).count()
    }

    pub fn ready(&self) -> usize {
        self.pods.iter().filter(|p| p.state == State::Ready).count()
    }

    /// Pods holding a GPU now.
    pub fn gpus(&self) -> usize {
        self.pods.iter().filter(|p| p.has_gpu()).count()
    }

    pub fn waiting(&self) -> usize {
        self.front.len() + self.pods.iter().map(Pod::waiting).sum::<usize>()
    }

    /// GPU-seconds used up to `now`.
    pub fn gpu_seconds(&self, now: f64) -> f64 {
        self.gone_gpu_seconds
            + self
                .pods
                .iter()
                .filter_map(|p| p.bound_at)
                .map(|b| now - b)
                .sum::<f64>()
    }

    /// The Deployment controller: create or delete pods to reach `replicas`. Deletion takes
    /// the ReplicaSet's order: pending first, then not ready, then the most recently ready.
    pub fn set_replicas(&mut self, replicas: i32, now: f64) {
        let want = replicas.max(0) as usize;
        while self.live() < want {
            let state = if self.cfg.pending_seconds > 0.0 {
                State::Pending {
                    until: now + self.cfg.pending_seconds,
                }
            } else {
                State::Loading {
                    until: now + self.cfg.startup_seconds,
                }
            };
            let mut p = self.new_pod(state);
            if matches!(state, State::Loading { .. }) {
                p.bound_at = Some(now);
            }
            self.pods.push(p);
        }
        while self.live() > want {
            let rank = |p: &Pod| -> (u8, f64) {
                match p.state {
                    State::Pending { .. } => (0, 0.0),
                    State::Loading { until } => (1, -until),
                    State::Ready => (2, -p.ready_at.unwrap_or(0.0)),
                    State::Draining { .. } => (9, 0.0),
                }
            };
            let victim = self
                .pods
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.is_draining())
                .min_by(|a, b| {
                    let (ra, rb) = (rank(a.1), rank(b.1));
                    ra.0.cmp(&rb.0).then(ra.1.total_cmp(&rb.1))
                })
                .map(|(i, _)| i);
            let Some(i) = victim else { break };
            match self.pods[i].state {
                State::Ready => {
                    self.pods[i].state = State::Draining {
                        deadline: now + self.cfg.termination_grace_seconds,
                    };
                }
                _ => {
                    let p = self.pods.remove(i);
                    self.retire(p, now);
                }
            }
        }
        self.states_changed();
    }

    fn retire(&mut self, mut p: Pod, at: f64) {
        if let Some(b) = p.bound_at {
            self.gone_gpu_seconds += at - b;
        }
        self.counters.dropped += p.rep.drop_all() as u64;
    }

    /// Applies the lifecycle transitions due by `until`, in time order; an endpoint that
    /// becomes ready takes the requests that found none.
    fn lifecycle(&mut self, until: f64, rng: &mut Rng, curves: &Curves) {
        while self.next_transition <= until {
            let next = self
                .pods
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.transition().map(|t| (i, t)))
                .filter(|(_, t)| *t <= until)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            let Some((i, at)) = next else { break };
            let startup = self.cfg.startup_seconds;
            let p = &mut self.pods[i];
            match p.state {
                State::Pending { .. } => {
                    p.state = State::Loading {
                        until: at + startup,
                    };
                    p.bound_at = Some(at);
                    self.states_changed();
                }
                _ => {
                    p.state = State::Ready;
                    p.ready_at = Some(at);
                    p.rep = Replica::new(at);
                    self.states_changed();
                    if !self.front.is_empty() {
                        let front = std::mem::take(&mut self.front);
                        for req in front {
                            self.route(req, at, rng, curves);
                        }
                    }
                }
            }
        }
    }

    /// Routes a request at time `at` to a ready endpoint, or holds it at the Service.
    fn route(&mut self, req: Request, at: f64, rng: &mut Rng, curves: &Curves) {
        let n = self.ready_idx.len();
        if n == 0 {
            self.front.push(req);
            return;
        }
        let pick = match self.cfg.routing {
            Routing::Random => Some((rng.uniform() * n as f64) as usize % n),
            Routing::RoundRobin => {
                self.rr = self.rr.wrapping_add(1);
                Some(self.rr % n)
            }
            Routing::LeastRequests => None,
        };
        let cfg = self.cfg;
        let i = match pick {
            Some(k) => self.ready_idx.get(k).copied(),
            None => {
                // The load each endpoint has at this moment.
                let mut best: Option<(usize, usize)> = None;
                for &i in &self.ready_idx {
                    let p = &mut self.pods[i];
                    p.rep.advance(at, &cfg, curves, &mut self.counters, false);
                    let load = p.rep.load();
                    if best.is_none_or(|(_, l)| load < l) {
                        best = Some((i, load));
                    }
                }
                best.map(|(i, _)| i)
            }
        };
        match i {
            Some(i) => self.pods[i].rep.enqueue(req, at),
            None => self.front.push(req),
        }
    }

    /// Advances the Deployment over `[now, now + dt)` with the requests arriving in it.
    pub fn tick(
        &mut self,
        now: f64,
        dt: f64,
        mut arrivals: Vec<Request>,
        rng: &mut Rng,
        curves: &Curves,
    ) {
        let end = now + dt;
        if !arrivals.is_sorted_by(|a, b| a.arrival <= b.arrival) {
            arrivals.sort_by(|a, b| a.arrival.total_cmp(&b.arrival));
        }
        self.counters.arrived += arrivals.len() as u64;
        for req in arrivals {
            let at = req.arrival.clamp(now, end);
            self.lifecycle(at, rng, curves);
            self.route(req, at, rng, curves);
        }
        self.lifecycle(end, rng, curves);
        let cfg = self.cfg;
        let mut gone = Vec::new();
        for (i, p) in self.pods.iter_mut().enumerate() {
            match p.state {
                State::Ready => {
                    p.rep.advance(end, &cfg, curves, &mut self.counters, false);
                }
                State::Draining { deadline } => {
                    let to = deadline.min(end);
                    let at = p.rep.advance(to, &cfg, curves, &mut self.counters, true);
                    if p.rep.load() == 0 || at >= deadline {
                        gone.push((i, at));
                    }
                }
                _ => {}
            }
        }
        if !gone.is_empty() {
            for (i, at) in gone.into_iter().rev() {
                let p = self.pods.remove(i);
                self.retire(p, at);
            }
            self.states_changed();
        }
        self.now = end;
    }

    /// The agent's sample: each pod with a GPU publishes its series' means over the time it
    /// held the GPU since the previous sample.
    pub fn agent_sample(&mut self) {
        for p in &mut self.pods {
            let Some(bound) = p.bound_at else { continue };
            let span = self.now - bound.max(self.sampled_at);
            if span > 0.0 {
                p.gpu_published = Some(p.rep.gpu.map(|g| g / span));
            }
            p.rep.gpu = [0.0; 5];
        }
        self.sampled_at = self.now;
    }

    /// The waits recorded since the last call.
    pub fn take_waits(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.counters.waits)
    }

    /// Arrival times of the requests waiting that were never admitted (their wait is not yet
    /// recorded): at the end of a run they count with the wait they had so far.
    pub fn unadmitted_arrivals(&self) -> Vec<f64> {
        let queued = self.pods.iter().flat_map(|p| p.rep.unadmitted_arrivals());
        self.front.iter().map(|r| r.arrival).chain(queued).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrivals::Poisson;
    use crate::curves::GpuSeries;
    use crate::scenario::{Length, Requests};

    fn server() -> Server {
        Server {
            pending_seconds: 0.0,
            startup_seconds: 60.0,
            ..Server::default()
        }
    }

    fn run(f: &mut Fleet, from: f64, secs: f64, rate: f64, rng: &mut Rng) {
        let dt = 0.25;
        let curves = Curves::h200();
        let req = Requests {
            prompt_tokens: Length {
                mean: 500.0,
                cv: 0.0,
            },
            output_tokens: Length {
                mean: 200.0,
                cv: 0.0,
            },
        };
        let mut arrivals = Poisson::new(rng);
        let mut t = from;
        while t < from + secs {
            let arr = arrivals.tick(t, dt, rate, rng, &req);
            f.tick(t, dt, arr, rng, &curves);
            t += dt;
        }
    }

    #[test]
    fn a_light_load_waits_for_nothing_and_an_overload_queues() {
        let mut rng = Rng::new(3);
        let mut f = Fleet::new(server(), 1);
        run(&mut f, 0.0, 120.0, 2.0, &mut rng);
        let waits = f.take_waits();
        assert!(!waits.is_empty());
        assert!(waits.iter().all(|w| *w == 0.0), "light load waited");
        assert_eq!(f.waiting(), 0);
        // Far past capacity: each prompt's prefill (500 x 0.0065 ms) and 200 decode steps of
        // ~9 ms at full batch give under 100 req/s.
        run(&mut f, 120.0, 120.0, 200.0, &mut rng);
        assert!(f.waiting() > 5000, "overload queued only {}", f.waiting());
        assert_eq!(f.pods[0].running(), 256);
    }

    #[test]
    fn new_replicas_load_before_serving_and_deletion_drains() {
        let mut rng = Rng::new(4);
        let mut f = Fleet::new(server(), 1);
        f.set_replicas(3, 0.0);
        assert_eq!((f.live(), f.ready(), f.gpus()), (3, 1, 3));
        run(&mut f, 0.0, 61.0, 1.0, &mut rng);
        assert_eq!(f.ready(), 3);
        // Ready at the exact end of the start-up.
        assert_eq!(f.pods[1].ready_at, Some(60.0));
        run(&mut f, 61.0, 10.0, 20.0, &mut rng);
        f.set_replicas(1, 71.0);
        assert_eq!(f.live(), 1);
        // The newest ready pods drain, then go.
        run(&mut f, 71.0, 200.0, 0.0, &mut rng);
        assert_eq!(f.pods.len(), 1);
        assert_eq!(f.pods[0].name, "vllm-00000");
        assert_eq!(f.counters.dropped, 0);
        assert_eq!(f.counters.arrived, f.counters.completed);
        // A drained pod's GPU is charged until its last request ends, not to a tick's end.
        let charged = f.gpu_seconds(271.0) - 271.0;
        assert!(
            charged > 2.0 * 71.0 && charged < 2.0 * 71.0 + 2.0 * 3.0,
            "{charged}"
        );
    }

    #[test]
    fn a_pending_pod_binds_its_gpu_when_pending_ends() {
        let mut rng = Rng::new(6);
        let mut f = Fleet::new(
            Server {
                pending_seconds: 10.1,
                ..server()
            },
            1,
        );
        f.set_replicas(2, 0.0);
        assert_eq!(f.gpus(), 1);
        run(&mut f, 0.0, 11.0, 0.0, &mut rng);
        assert_eq!(f.pods[1].bound_at, Some(10.1));
        assert_eq!(f.pods[1].state, State::Loading { until: 70.1 });
    }

    #[test]
    fn gpu_series_follow_the_curve_with_the_batch() {
        let mut rng = Rng::new(5);
        let curves = Curves::h200();
        let mut tensor = Vec::new();
        for rate in [2.0, 10.0, 40.0] {
            let mut f = Fleet::new(server(), 1);
            run(&mut f, 0.0, 120.0, rate, &mut rng);
            f.agent_sample();
            let v = f.pods[0].gpu_published.expect("sampled")[GpuSeries::TensorActive as usize];
            tensor.push(v);
        }
        assert!(tensor[0] < tensor[1] && tensor[1] < tensor[2], "{tensor:?}");
        assert!(tensor[2] <= curves.saturation(GpuSeries::TensorActive));
    }

    #[test]
    fn a_replica_always_decoding_one_batch_reads_that_batch_row() {
        // 64 sequences of a million tokens: the batch stays at 64 for the whole sample.
        let mut rng = Rng::new(8);
        let curves = Curves::h200();
        let mut f = Fleet::new(
            Server {
                prefill_ms_per_token: 0.0,
                kv_cache_tokens: 1e12,
                ..server()
            },
            1,
        );
        let arr = (0..64)
            .map(|_| Request {
                arrival: 0.0,
                prompt: 1.0,
                output: 1e6,
            })
            .collect();
        f.tick(0.0, 0.25, arr, &mut rng, &curves);
        for k in 1..20 {
            f.tick(k as f64 * 0.25, 0.25, Vec::new(), &mut rng, &curves);
        }
        f.agent_sample();
        let v = f.pods[0].gpu_published.expect("sampled");
        assert!(
            (v[GpuSeries::TensorActive as usize] - 0.072).abs() < 1e-12,
            "{v:?}"
        );
        assert!((v[GpuSeries::Utilization as usize] - 0.97).abs() < 1e-12);
    }
}
