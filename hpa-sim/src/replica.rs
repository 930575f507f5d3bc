//! One replica's continuous batching, in continuous time: its queue, running sequences, KV
//! cache and prefill, advanced from event to event (an arrival entering the queue, a prefill
//! finishing, a sequence's last token, the KV cache filling up), never by whole ticks.
//!
//! It runs like vLLM's scheduler. A waiting request is admitted the moment it has arrived and
//! the replica has fewer than `max_num_seqs` running, KV cache for its prompt, and at most
//! `max_num_batched_tokens` prompt tokens admitted but not yet prefilled (chunked prefill).
//! Prefill is paid first: while prompt tokens are owed the replica prefills at
//! `prefill_ms_per_token` and decodes nothing; then a decode step takes `base + per_seq × b`
//! milliseconds for `b` running sequences and gives each one token (a fluid step: progress is
//! continuous, so a sequence ends at the exact moment of its last token and frees its slot
//! then). When decoding fills the KV cache the newest sequence is preempted back to the head
//! of the queue and restarts (vLLM's recompute preemption). A request's queue wait is the time
//! from its arrival to its admission.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::curves::Curves;
use crate::server::Server;

#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// Arrival at the Service, seconds.
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

#[derive(Debug, Clone)]
struct Waiting {
    req: Request,
    /// When it reached this replica's queue (its arrival, or when an endpoint became ready).
    enter: f64,
    /// Its wait is already recorded (a preempted sequence back in the queue).
    counted: bool,
}

/// What happened to requests, and where the GPU time went, over the run.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub arrived: u64,
    pub completed: u64,
    pub dropped: u64,
    pub preempted: u64,
    /// Queue waits of the requests admitted since the last `take_waits`.
    pub waits: Vec<f64>,
    /// Seconds replicas spent decoding or prefilling, and prefilling alone.
    pub busy_seconds: f64,
    pub prefill_seconds: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Replica {
    /// The replica's state is as of this time (seconds).
    pub t: f64,
    waiting: VecDeque<Waiting>,
    running: BinaryHeap<Seq>,
    /// Decode steps done since the batch was last empty.
    progress: f64,
    kv_prompt: f64,
    kv_admitted: f64,
    /// Prompt tokens admitted and not yet prefilled.
    prefill_left: f64,
    /// Each GPU series integrated over time (value × seconds) since the agent's last sample.
    pub gpu: [f64; 5],
    /// Requests this replica has finished (vLLM's `vllm:request_success_total`).
    completed: u64,
}

/// Makes `e`, due in `dt`, the segment's end if it comes first.
fn sooner(dt: f64, e: Event, d: &mut f64, ev: &mut Event) {
    if dt < *d {
        *d = dt.max(0.0);
        *ev = e;
    }
}

/// What ends a segment of constant rates.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Event {
    Horizon,
    Entry,
    PrefillDone,
    PrefillRoom,
    Finish,
    KvFull,
}

impl Replica {
    pub fn new(t: f64) -> Replica {
        Replica {
            t,
            ..Default::default()
        }
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Requests finished since the replica started.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    pub fn load(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    fn kv_used(&self) -> f64 {
        self.kv_prompt + self.running.len() as f64 * self.progress - self.kv_admitted
    }

    pub fn kv_usage(&self, cfg: &Server) -> f64 {
        (self.kv_used() / cfg.kv_cache_tokens).clamp(0.0, 1.0)
    }

    /// Queues a request that reached this replica at `enter` (not before its clock's past
    /// matters: it is admitted no earlier than `enter`).
    pub fn enqueue(&mut self, req: Request, enter: f64) {
        self.waiting.push_back(Waiting {
            req,
            enter,
            counted: false,
        });
    }

    /// Admits waiting requests at the current time, in order.
    fn admit(&mut self, cfg: &Server, c: &mut Counters) {
        let max = cfg.max_num_seqs as usize;
        let prefills = cfg.prefill_ms_per_token > 0.0;
        while self.running.len() < max {
            if prefills && self.prefill_left > cfg.max_num_batched_tokens {
                break;
            }
            let Some(front) = self.waiting.front() else {
                break;
            };
            if front.enter > self.t {
                break;
            }
            // Room for the prompt and one more token for every running sequence; a replica
            // with nothing running takes any prompt (it runs alone).
            let b = self.running.len() as f64 + 1.0;
            if !self.running.is_empty()
                && self.kv_used() + front.req.prompt + b > cfg.kv_cache_tokens
            {
                break;
            }
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            if !w.counted {
                c.waits.push((self.t - w.req.arrival).max(0.0));
            }
            if prefills {
                self.prefill_left += w.req.prompt;
            }
            self.kv_prompt += w.req.prompt;
            self.kv_admitted += self.progress;
            self.running.push(Seq {
                finish: self.progress + w.req.output.max(1.0),
                admitted: self.progress,
                req: w.req,
            });
        }
    }

    /// Whether a request entering the queue later could be admitted then.
    fn entry_due(&self, cfg: &Server) -> Option<f64> {
        if self.running.len() >= cfg.max_num_seqs as usize {
            return None;
        }
        self.waiting
            .front()
            .filter(|w| w.enter > self.t)
            .map(|w| w.enter - self.t)
    }

    /// Runs the replica up to `to`. With `stop_when_empty` (a draining pod) it stops at the
    /// moment it holds no request. Returns the time reached.
    pub fn advance(
        &mut self,
        to: f64,
        cfg: &Server,
        curves: &Curves,
        c: &mut Counters,
        stop_when_empty: bool,
    ) -> f64 {
        let prefill_s = cfg.prefill_ms_per_token / 1000.0;
        loop {
            self.admit(cfg, c);
            if stop_when_empty && self.load() == 0 {
                return self.t;
            }
            if self.t >= to {
                self.t = self.t.max(to);
                return self.t;
            }
            let mut d = to - self.t;
            let mut ev = Event::Horizon;
            if let Some(e) = self.entry_due(cfg) {
                sooner(e, Event::Entry, &mut d, &mut ev);
            }
            let b = self.running.len();
            if self.prefill_left > 0.0 {
                sooner(
                    self.prefill_left * prefill_s,
                    Event::PrefillDone,
                    &mut d,
                    &mut ev,
                );
                let room = self.prefill_left - cfg.max_num_batched_tokens;
                let admissible = b < cfg.max_num_seqs as usize
                    && self.waiting.front().is_some_and(|w| w.enter <= self.t);
                if room > 0.0 && admissible {
                    sooner(room * prefill_s, Event::PrefillRoom, &mut d, &mut ev);
                }
                self.prefill_left = match ev {
                    Event::PrefillDone => 0.0,
                    Event::PrefillRoom => cfg.max_num_batched_tokens,
                    _ => (self.prefill_left - d / prefill_s).max(0.0),
                };
                let v = curves.prefilling();
                for (g, x) in self.gpu.iter_mut().zip(v) {
                    *g += x * d;
                }
                c.busy_seconds += d;
                c.prefill_seconds += d;
            } else if b > 0 {
                let step = (cfg.step_base_ms + cfg.step_per_seq_ms * b as f64) / 1000.0;
                let next = self.running.peek().map_or(f64::INFINITY, |s| s.finish);
                sooner(
                    (next - self.progress) * step,
                    Event::Finish,
                    &mut d,
                    &mut ev,
                );
                if b > 1 {
                    let room = (cfg.kv_cache_tokens - self.kv_used()) / b as f64;
                    sooner(room * step, Event::KvFull, &mut d, &mut ev);
                }
                self.progress = if ev == Event::Finish {
                    next
                } else {
                    self.progress + d / step
                };
                let v = curves.at_batch(b);
                for (g, x) in self.gpu.iter_mut().zip(v) {
                    *g += x * d;
                }
                c.busy_seconds += d;
            }
            self.t = if ev == Event::Horizon { to } else { self.t + d };
            match ev {
                Event::Finish => self.complete(c),
                Event::KvFull => self.preempt(cfg, c),
                _ => {}
            }
        }
    }

    fn complete(&mut self, c: &mut Counters) {
        while self
            .running
            .peek()
            .is_some_and(|s| s.finish <= self.progress)
        {
            if let Some(s) = self.running.pop() {
                self.kv_prompt -= s.req.prompt;
                self.kv_admitted -= s.admitted;
                c.completed += 1;
                self.completed += 1;
            }
        }
        if self.running.is_empty() {
            // Start the next batch from a clean slate (no rounding carried over).
            self.progress = 0.0;
            self.kv_prompt = 0.0;
            self.kv_admitted = 0.0;
        }
    }

    /// The KV cache is full: the newest sequences go back to the head of the queue until the
    /// rest have room for a step.
    fn preempt(&mut self, cfg: &Server, c: &mut Counters) {
        let mut seqs = std::mem::take(&mut self.running).into_vec();
        seqs.sort_by(|a, b| a.admitted.total_cmp(&b.admitted));
        loop {
            let n = seqs.len() as f64;
            let used = self.kv_prompt + n * self.progress - self.kv_admitted;
            if seqs.len() <= 1 || used + n <= cfg.kv_cache_tokens {
                break;
            }
            if let Some(s) = seqs.pop() {
                self.kv_prompt -= s.req.prompt;
                self.kv_admitted -= s.admitted;
                c.preempted += 1;
                // Its wait was recorded at its first admission; it is back at the head now.
                self.waiting.push_front(Waiting {
                    req: s.req,
                    enter: self.t,
                    counted: true,
                });
            }
        }
        self.running = seqs.into_iter().collect();
    }

    /// Arrival times of the queued requests never admitted (a preempted one was).
    pub fn unadmitted_arrivals(&self) -> impl Iterator<Item = f64> + '_ {
        self.waiting
            .iter()
            .filter(|w| !w.counted)
            .map(|w| w.req.arrival)
    }

    /// Drops everything (a pod gone); returns how many requests it held.
    pub fn drop_all(&mut self) -> usize {
        let n = self.load();
        self.waiting.clear();
        self.running.clear();
        n
    }
}
