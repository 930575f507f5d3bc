//! The serving Deployment: its pods' lifecycle (pending, loading the model, ready, draining),
//! request routing, and each replica's continuous batching, queue and KV cache.
//!
//! A replica runs like vLLM's scheduler: at each admission round it takes waiting requests in
//! order while it has fewer than `max_num_seqs` running and KV cache for the prompt; a decode
//! step takes `base + per_seq × running` milliseconds and gives every running sequence one
//! token; an admitted prompt's prefill adds `prefill_ms_per_token × tokens` to the step that
//! admits it, and a tick admits only the prompts whose prefill fits in it (chunked prefill:
//! the rest waits in the queue). When the KV cache overflows, the newest sequence is preempted back to the head
//! of the queue (vLLM's recompute preemption). Time advances in ticks of the scenario's
//! `tickSeconds`; a request admitted at the first round after it arrived waited 0.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::curves::{Curves, GpuSeries};
use crate::rng::Rng;
use crate::scenario::{Routing, Server};

#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub arrival: f64,
    pub prompt: f64,
    pub output: f64,
}

#[derive(Debug, Clone, Copy)]
struct Seq {
    /// The replica's decode progress at which the last token is out.
    finish: f64,
    /// Progress at admission.
    admitted: f64,
    req: Request,
}

impl PartialEq for Seq {
    fn eq(&self, o: &Self) -> bool {
        self.finish.total_cmp(&o.finish) == Ordering::Equal
    }
}
impl Eq for Seq {}
impl PartialOrd for Seq {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Seq {
    // A min-heap on `finish`.
    fn cmp(&self, o: &Self) -> Ordering {
        o.finish.total_cmp(&self.finish)
    }
}

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
struct Waiting {
    req: Request,
    /// The admission round it first takes part in: admitted in that round, it waited no
    /// longer than the scheduler's step. `None`: it already waited elsewhere.
    round: Option<u64>,
    /// Its wait is already recorded (a preempted sequence back in the queue).
    counted: bool,
}

#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub state: State,
    /// When the pod got its GPU (end of pending).
    pub bound_at: Option<f64>,
    pub ready_at: Option<f64>,
    waiting: VecDeque<Waiting>,
    /// Admission rounds so far.
    round: u64,
    running: BinaryHeap<Seq>,
    progress: f64,
    kv_prompt: f64,
    kv_admitted: f64,
    /// Prefill time still owed from a previous tick (ms).
    debt_ms: f64,
    /// GPU series summed over the agent's current interval, and the tick count.
    gpu_sum: [f64; 5],
    gpu_ticks: u32,
    /// The agent's last published GPU values (means over its last interval).
    pub gpu_published: Option<[f64; 5]>,
}

impl Pod {
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    fn kv_used(&self) -> f64 {
        self.kv_prompt + self.running.len() as f64 * self.progress - self.kv_admitted
    }

    pub fn kv_usage(&self, cfg: &Server) -> f64 {
        (self.kv_used() / cfg.kv_cache_tokens).clamp(0.0, 1.0)
    }

    pub fn is_draining(&self) -> bool {
        matches!(self.state, State::Draining { .. })
    }

    pub fn has_gpu(&self) -> bool {
        self.bound_at.is_some()
    }

    fn load(&self) -> usize {
        self.waiting.len() + self.running.len()
    }
}

/// What happened to requests, for the run's totals.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub arrived: u64,
    pub completed: u64,
    pub dropped: u64,
    pub preempted: u64,
    /// Queue waits of the requests admitted since the last `take_waits`.
    pub waits: Vec<f64>,
}

/// The Deployment and its Service.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub pods: Vec<Pod>,
    /// Requests that found no ready endpoint (the clients retry until one is ready).
    front: VecDeque<Request>,
    cfg: Server,
    next_id: u64,
    rr: usize,
    /// GPU-seconds of pods that are gone.
    gone_gpu_seconds: f64,
    pub counters: Counters,
    max_tps: f64,
}

impl Fleet {
    /// A Deployment with `replicas` pods ready at time 0.
    pub fn new(cfg: Server, replicas: i32) -> Fleet {
        let b = f64::from(cfg.max_num_seqs);
        let max_tps = b / ((cfg.step_base_ms + cfg.step_per_seq_ms * b) / 1000.0);
        let mut f = Fleet {
            pods: Vec::new(),
            front: VecDeque::new(),
            cfg,
            next_id: 0,
            rr: 0,
            gone_gpu_seconds: 0.0,
            counters: Counters::default(),
            max_tps,
        };
        for _ in 0..replicas.max(0) {
            let mut p = f.new_pod(State::Ready);
            p.bound_at = Some(0.0);
            p.ready_at = Some(0.0);
            f.pods.push(p);
        }
        f
    }

    pub fn server(&self) -> &Server {
        &self.cfg
    }

    /// Tokens per second of one replica at full batch.
    pub fn max_tokens_per_second(&self) -> f64 {
        self.max_tps
    }

    fn new_pod(&mut self, state: State) -> Pod {
        let id = self.next_id;
        self.next_id += 1;
        Pod {
            name: format!("vllm-{id:05}"),
            state,
            bound_at: None,
            ready_at: None,
            waiting: VecDeque::new(),
            round: 0,
            running: BinaryHeap::new(),
            progress: 0.0,
            kv_prompt: 0.0,
            kv_admitted: 0.0,
            debt_ms: 0.0,
            gpu_sum: [0.0; 5],
            gpu_ticks: 0,
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
    }

    fn retire(&mut self, p: Pod, now: f64) {
        if let Some(b) = p.bound_at {
            self.gone_gpu_seconds += now - b;
        }
        self.counters.dropped += (p.waiting.len() + p.running.len()) as u64;
    }

    /// Routes requests to the ready endpoints; `fresh` ones have not waited yet.
    fn route(&mut self, reqs: impl IntoIterator<Item = Request>, fresh: bool, rng: &mut Rng) {
        let ready: Vec<usize> = self
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| p.state == State::Ready)
            .map(|(i, _)| i)
            .collect();
        for req in reqs {
            if ready.is_empty() {
                self.front.push_back(req);
                continue;
            }
            let i = match self.cfg.routing {
                Routing::Random => {
                    ready[(rng.uniform() * ready.len() as f64) as usize % ready.len()]
                }
                Routing::RoundRobin => {
                    self.rr = self.rr.wrapping_add(1);
                    ready[self.rr % ready.len()]
                }
                Routing::LeastRequests => *ready
                    .iter()
                    .min_by_key(|i| self.pods[**i].load())
                    .unwrap_or(&ready[0]),
            };
            let pod = &mut self.pods[i];
            let round = fresh.then_some(pod.round);
            pod.waiting.push_back(Waiting {
                req,
                round,
                counted: false,
            });
        }
    }

    /// Advances the Deployment by one tick `[now, now + dt)` with the requests arriving in it.
    pub fn tick(
        &mut self,
        now: f64,
        dt: f64,
        arrivals: Vec<Request>,
        rng: &mut Rng,
        curves: &Curves,
    ) {
        // Lifecycle transitions.
        for p in &mut self.pods {
            match p.state {
                State::Pending { until } if now >= until => {
                    p.state = State::Loading {
                        until: now + self.cfg.startup_seconds,
                    };
                    p.bound_at = Some(now);
                }
                State::Loading { until } if now >= until => {
                    p.state = State::Ready;
                    p.ready_at = Some(now);
                }
                _ => {}
            }
        }
        self.counters.arrived += arrivals.len() as u64;
        if !self.front.is_empty() && self.pods.iter().any(|p| p.state == State::Ready) {
            let front: Vec<Request> = self.front.drain(..).collect();
            self.route(front, false, rng);
        }
        self.route(arrivals, true, rng);

        let cfg = self.cfg;
        let max_tps = self.max_tps;
        let mut gone = Vec::new();
        for (i, p) in self.pods.iter_mut().enumerate() {
            let serving = matches!(p.state, State::Ready | State::Draining { .. });
            let mut g = [0.0; 5];
            if serving {
                let share = step_pod(p, now, dt, &cfg, max_tps, &mut self.counters);
                if let Some(share) = share {
                    for s in GpuSeries::ALL {
                        g[s as usize] = curves.at(s, share);
                    }
                }
            }
            if p.has_gpu() {
                for (a, v) in p.gpu_sum.iter_mut().zip(g) {
                    *a += v;
                }
                p.gpu_ticks += 1;
            }
            if let State::Draining { deadline } = p.state {
                if p.load() == 0 || now + dt >= deadline {
                    gone.push(i);
                }
            }
        }
        for i in gone.into_iter().rev() {
            let p = self.pods.remove(i);
            self.retire(p, now + dt);
        }
    }

    /// The agent's sample: each pod with a GPU publishes its mean over the interval.
    pub fn agent_sample(&mut self) {
        for p in &mut self.pods {
            if p.gpu_ticks > 0 {
                let n = f64::from(p.gpu_ticks);
                let mut v = [0.0; 5];
                for (o, s) in v.iter_mut().zip(p.gpu_sum) {
                    *o = s / n;
                }
                p.gpu_published = Some(v);
            }
            p.gpu_sum = [0.0; 5];
            p.gpu_ticks = 0;
        }
    }

    /// The waits recorded since the last call.
    pub fn take_waits(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.counters.waits)
    }

    /// Arrival times of the requests waiting that were never admitted (their wait is not yet
    /// recorded): at the end of a run they count with the wait they had so far.
    pub fn unadmitted_arrivals(&self) -> Vec<f64> {
        let queued = self
            .pods
            .iter()
            .flat_map(|p| p.waiting.iter())
            .filter(|w| !w.counted)
            .map(|w| w.req.arrival);
        self.front.iter().map(|r| r.arrival).chain(queued).collect()
    }
}

/// One replica's tick: admission, decode, completions, preemption. Returns the share of
/// capacity it worked at, or `None` when it was idle.
fn step_pod(
    p: &mut Pod,
    now: f64,
    dt: f64,
    cfg: &Server,
    max_tps: f64,
    c: &mut Counters,
) -> Option<f64> {
    let max = cfg.max_num_seqs as usize;
    let mut prefill_ms = 0.0;
    // Admission round, in order.
    let tick_ms = dt * 1000.0;
    while p.running.len() < max {
        // Chunked prefill: a tick prefills only what fits in it; the rest waits.
        if p.debt_ms + prefill_ms >= tick_ms {
            break;
        }
        let Some(front) = p.waiting.front() else {
            break;
        };
        if p.kv_used() + front.req.prompt > cfg.kv_cache_tokens {
            break;
        }
        let Some(w) = p.waiting.pop_front() else {
            break;
        };
        if !w.counted {
            c.waits.push(if w.round == Some(p.round) {
                0.0
            } else {
                (now - w.req.arrival).max(0.0)
            });
        }
        prefill_ms += w.req.prompt * cfg.prefill_ms_per_token;
        p.kv_prompt += w.req.prompt;
        p.kv_admitted += p.progress;
        p.running.push(Seq {
            finish: p.progress + w.req.output.max(1.0),
            admitted: p.progress,
            req: w.req,
        });
    }
    p.round += 1;
    let b = p.running.len();
    if b == 0 && prefill_ms == 0.0 && p.debt_ms == 0.0 {
        return None;
    }
    // Decode for what is left of the tick after prefill.
    let prefill_paid_ms = (prefill_ms + p.debt_ms).min(tick_ms);
    let budget_ms = tick_ms - prefill_ms - p.debt_ms;
    p.debt_ms = (-budget_ms).max(0.0);
    let mut tokens = 0.0;
    if b > 0 && budget_ms > 0.0 {
        let step_ms = cfg.step_base_ms + cfg.step_per_seq_ms * b as f64;
        let steps = budget_ms / step_ms;
        p.progress += steps;
        tokens = steps * b as f64;
    }
    // Completions.
    while p.running.peek().is_some_and(|s| s.finish <= p.progress) {
        if let Some(s) = p.running.pop() {
            p.kv_prompt -= s.req.prompt;
            p.kv_admitted -= s.admitted;
            c.completed += 1;
        }
    }
    // KV overflow: preempt the newest sequences back to the head of the queue.
    if p.kv_used() > cfg.kv_cache_tokens && p.running.len() > 1 {
        let mut seqs = std::mem::take(&mut p.running).into_vec();
        seqs.sort_by(|a, b| a.admitted.total_cmp(&b.admitted));
        while p.kv_prompt + seqs.len() as f64 * p.progress - p.kv_admitted > cfg.kv_cache_tokens
            && seqs.len() > 1
        {
            if let Some(s) = seqs.pop() {
                p.kv_prompt -= s.req.prompt;
                p.kv_admitted -= s.admitted;
                c.preempted += 1;
                // Its wait was recorded at its first admission.
                p.waiting.push_front(Waiting {
                    req: s.req,
                    round: None,
                    counted: true,
                });
            }
        }
        p.running = seqs.into_iter().collect();
    }
    let share = (tokens / (dt * max_tps) + prefill_paid_ms / tick_ms).min(1.0);
    Some(share.max(1e-6))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut t = from;
        while t < from + secs {
            let n = rng.poisson(rate * dt);
            let arr = (0..n)
                .map(|_| Request {
                    arrival: t + rng.uniform() * dt,
                    prompt: 500.0,
                    output: 200.0,
                })
                .collect();
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
        assert!(waits.iter().all(|w| *w == 0.0), "light load waited");
        assert_eq!(f.waiting(), 0);
        // Far past capacity: each prompt's prefill (500 × 0.02 ms) and 200 decode steps of
        // ~28 ms at full batch give well under 200 req/s.
        run(&mut f, 120.0, 120.0, 200.0, &mut rng);
        assert!(f.waiting() > 1000, "overload queued only {}", f.waiting());
        // The batch is full or the ticks are spent on prefill: either way, busy.
        let running = f.pods[0].running();
        assert!(running > 64, "overloaded replica runs only {running}");
    }

    #[test]
    fn new_replicas_load_before_serving_and_deletion_drains() {
        let mut rng = Rng::new(4);
        let mut f = Fleet::new(server(), 1);
        f.set_replicas(3, 0.0);
        assert_eq!((f.live(), f.ready(), f.gpus()), (3, 1, 3));
        run(&mut f, 0.0, 61.0, 1.0, &mut rng);
        assert_eq!(f.ready(), 3);
        run(&mut f, 61.0, 10.0, 20.0, &mut rng);
        f.set_replicas(1, 71.0);
        assert_eq!(f.live(), 1);
        // The newest ready pods drain, then go.
        run(&mut f, 71.0, 200.0, 0.0, &mut rng);
        assert_eq!(f.pods.len(), 1);
        assert_eq!(f.pods[0].name, "vllm-00000");
        assert_eq!(f.counters.dropped, 0);
        assert_eq!(f.counters.arrived, f.counters.completed);
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
}
