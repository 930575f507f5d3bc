//! How metrics reach the HPA: Prometheus scrapes every pod's series, and the adapter (Pods
//! metrics) or KEDA (External metrics) answers the HPA with `avg_over_time(...[window])` over
//! the scrapes, as the queries in daemonset/autoscaling render it.
//!
//! - A Pods metric is `avg by (pod) (avg_over_time(series[1m]))` for each pod the HPA lists;
//!   a pod with no scrape in the window has no value (missing).
//! - An External metric is KEDA's `sum(avg_over_time(series[1m]))` over every pod that has
//!   samples in the window, deleted pods included until their samples age out.
//! - An Object metric `request_rate` is the Service's arrivals over the window.
//! - `vllm_request_success_rate` is a counter's `rate(...[window])`, not an `avg_over_time`:
//!   per pod, the finished requests between its first and last scrape in the window over the
//!   time between them (no value from fewer than two scrapes, as Prometheus gives none).
//!
//! Values become quantities as the adapter and KEDA build them, `NewMilliQuantity(int64(v *
//! 1000))`: truncated to a milli-unit.

use std::collections::{BTreeMap, VecDeque};

use crate::calc::{Phase, PodView};
use crate::controller::Observation;
use crate::quantity::Milli;
use crate::scenario::{PipelineConfig, Scenario, Series};
use crate::serving::{Fleet, State};
use crate::spec::{MetricSpec, SourceType};

/// The series a scrape reads from one pod: a [`Scrape`]'s values, in this order.
const SCRAPED: [Series; 9] = [
    Series::GpuUtilization,
    Series::GpuSmActive,
    Series::GpuSmOccupancy,
    Series::GpuTensorActive,
    Series::GpuDramActive,
    Series::NumRequestsWaiting,
    Series::NumRequestsRunning,
    Series::KvCacheUsage,
    Series::RequestSuccessRate,
];

fn slot(s: Series) -> Option<usize> {
    SCRAPED.iter().position(|x| *x == s)
}

/// One scrape of one pod: its time and each scraped series' value, by [`slot`].
type Scrape = (f64, [Option<f64>; SCRAPED.len()]);

/// Prometheus' scrapes of every pod and of the Service's arrivals, kept as far back as the
/// adapter's and KEDA's queries look; it answers what the HPA reads ([`Pipeline::observe`]).
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    /// Per pod: `(scrape time, value per scraped series)`.
    samples: BTreeMap<String, VecDeque<Scrape>>,
    /// `(time, arrivals counter)` at each scrape, for the request rate.
    arrivals: VecDeque<(f64, u64)>,
    horizon: f64,
}

/// A counter's `rate(...[window])` from its samples in the window, oldest first: the increase
/// between the first and the last over the time between them; none from fewer than two.
fn rate(mut inside: impl DoubleEndedIterator<Item = (f64, f64)>) -> Option<f64> {
    let first = inside.next()?;
    let last = inside.next_back()?;
    (last.0 > first.0).then(|| (last.1 - first.1) / (last.0 - first.0))
}

fn adapter_quantity(v: f64) -> Milli {
    Milli((v * 1000.0) as i64)
}

impl Pipeline {
    pub fn new(p: &PipelineConfig) -> Pipeline {
        Pipeline {
            horizon: p.window_seconds + p.delay_seconds + p.scrape_interval_seconds,
            ..Default::default()
        }
    }

    /// One scrape of every pod's endpoints at `now`.
    pub fn scrape(&mut self, now: f64, fleet: &Fleet) {
        let server = fleet.server();
        for p in &fleet.pods {
            let mut v = [None; SCRAPED.len()];
            let mut put = |s: Series, x: f64| {
                if let Some(i) = slot(s) {
                    v[i] = Some(x);
                }
            };
            // The agent serves a pod's GPU series once it has sampled the pod's device.
            if let Some(published) = p.gpu_published {
                for s in SCRAPED {
                    if let Some(g) = s.gpu() {
                        put(s, published[g as usize]);
                    }
                }
            }
            // vLLM's /metrics answers once the server is up (model loaded).
            if matches!(p.state, State::Ready | State::Draining { .. }) {
                put(Series::NumRequestsWaiting, p.waiting() as f64);
                put(Series::NumRequestsRunning, p.running() as f64);
                put(Series::KvCacheUsage, p.kv_usage(server));
                put(Series::RequestSuccessRate, p.completed() as f64);
            }
            if v.iter().any(Option::is_some) {
                self.samples
                    .entry(p.name.clone())
                    .or_default()
                    .push_back((now, v));
            }
        }
        self.arrivals.push_back((now, fleet.counters.arrived));
        let cutoff = now - self.horizon;
        self.samples.retain(|_, q| {
            while q.front().is_some_and(|s| s.0 < cutoff) {
                q.pop_front();
            }
            !q.is_empty()
        });
        while self.arrivals.front().is_some_and(|s| s.0 < cutoff) {
            self.arrivals.pop_front();
        }
    }

    /// `avg_over_time(series{pod}[window])` evaluated at `at`; for a counter, its rate.
    fn avg_over_time(&self, pod: &str, s: Series, at: f64, window: f64) -> Option<f64> {
        let i = slot(s)?;
        let q = self.samples.get(pod)?;
        if s.is_counter() {
            return rate(
                q.iter()
                    .filter(|(t, _)| *t > at - window && *t <= at)
                    .filter_map(|(t, v)| Some((*t, v[i]?))),
            );
        }
        let (mut sum, mut n) = (0.0, 0u32);
        for (t, v) in q {
            if *t > at - window && *t <= at {
                if let Some(x) = v[i] {
                    sum += x;
                    n += 1;
                }
            }
        }
        (n > 0).then(|| sum / f64::from(n))
    }

    /// `sum(avg_over_time(series[window]))` over every pod with samples.
    fn sum_avg(&self, s: Series, at: f64, window: f64) -> Option<f64> {
        let mut any = false;
        let mut total = 0.0;
        for pod in self.samples.keys() {
            if let Some(v) = self.avg_over_time(pod, s, at, window) {
                any = true;
                total += v;
            }
        }
        any.then_some(total)
    }

    /// Arrivals per second over the window (`rate(requests_total[window])`).
    fn request_rate(&self, at: f64, window: f64) -> Option<f64> {
        rate(
            self.arrivals
                .iter()
                .filter(|s| s.0 > at - window && s.0 <= at)
                .map(|&(t, n)| (t, n as f64)),
        )
    }

    /// What the HPA reads at `now` for the given metrics.
    pub fn observe(
        &self,
        now: f64,
        fleet: &Fleet,
        sc: &Scenario,
        metrics: &[MetricSpec],
    ) -> Observation {
        let p = &sc.pipeline;
        let at = now - p.delay_seconds;
        let w = p.window_seconds;
        let pods = fleet
            .pods
            .iter()
            .map(|pod| {
                let mut values = BTreeMap::new();
                for m in metrics
                    .iter()
                    .filter(|m| matches!(m.kind, SourceType::Pods))
                {
                    if let Some(v) = sc
                        .series_of(m.name())
                        .and_then(|s| self.avg_over_time(&pod.name, s, at, w))
                    {
                        values.insert(m.name().to_string(), adapter_quantity(v));
                    }
                }
                PodView {
                    name: pod.name.clone(),
                    phase: if matches!(pod.state, State::Pending { .. }) {
                        Phase::Pending
                    } else {
                        Phase::Running
                    },
                    ready: pod.state == State::Ready,
                    deleting: pod.is_draining(),
                    metrics: values,
                    requests: BTreeMap::new(),
                }
            })
            .collect();
        let mut obs = Observation {
            pods,
            ..Default::default()
        };
        for m in metrics {
            let Some(series) = sc.series_of(m.name()) else {
                continue;
            };
            let value = match series {
                Series::RequestRate => self.request_rate(at, w),
                s => self.sum_avg(s, at, w),
            };
            let Some(v) = value else { continue };
            match m.kind {
                SourceType::External => {
                    obs.external
                        .insert(m.name().to_string(), adapter_quantity(v));
                }
                SourceType::Object => {
                    obs.object.insert(m.name().to_string(), adapter_quantity(v));
                }
                _ => {}
            }
        }
        obs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrivals::Poisson;
    use crate::curves::Curves;
    use crate::rng::Rng;
    use crate::scenario::{Length, Requests};
    use crate::server::Server;

    #[test]
    fn the_finished_request_rate_is_a_counters_rate_over_the_window() {
        let server = Server {
            pending_seconds: 0.0,
            startup_seconds: 0.0,
            ..Server::default()
        };
        let mut f = Fleet::new(server, 1);
        let mut prom = Pipeline::new(&PipelineConfig::default());
        let req = Requests {
            prompt_tokens: Length {
                mean: 500.0,
                cv: 0.0,
            },
            output_tokens: Length {
                mean: 100.0,
                cv: 0.0,
            },
        };
        let (curves, mut rng) = (Curves::h200(), Rng::new(7));
        let mut arrivals = Poisson::new(&mut rng);
        let (dt, rate) = (0.25, 20.0);
        let mut t = 0.0;
        let mut scrapes = 0;
        while t < 600.0 {
            let arr = arrivals.tick(t, dt, rate, &mut rng, &req);
            f.tick(t, dt, arr, &mut rng, &curves);
            t += dt;
            if t % 15.0 == 0.0 {
                prom.scrape(t, &f);
                scrapes += 1;
                if scrapes == 1 {
                    // One scrape in the window: a rate needs two.
                    let one = prom.avg_over_time("vllm-00000", Series::RequestSuccessRate, t, 60.0);
                    assert_eq!(one, None);
                }
            }
        }
        let v = prom
            .avg_over_time("vllm-00000", Series::RequestSuccessRate, t, 60.0)
            .unwrap_or(f64::NAN);
        // Poisson arrivals at 20/s: the 45 s between the window's first and last scrape hold
        // ~900 finishes (sd ~30).
        assert!((v - rate).abs() < 3.0, "rate {v}");
        // The counter is the pod's own: it matches the fleet's total for a lone pod.
        assert_eq!(f.pods[0].completed(), f.counters.completed);
    }
}
