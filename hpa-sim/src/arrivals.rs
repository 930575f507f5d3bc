//! Arrivals: a Poisson process at the trace's rate, drawn exactly (exponential gaps, the gap
//! left at a tick's end carried into the next), each request with its drawn lengths.
//!
//! Within a tick the rate is the trace's rate at the tick's middle (the trace is linear between
//! its points, so that is the tick's mean rate unless a point falls inside it). The gaps are
//! drawn on the unit-rate time scale, so a rate that changes between ticks changes nothing
//! else: the process is a Poisson process with that piecewise-constant rate, whatever the tick.

use crate::replica::Request;
use crate::rng::Rng;
use crate::scenario::Requests;

/// The arrival process: a Poisson process, each arrival a request with its drawn lengths.
#[derive(Debug, Clone)]
pub struct Poisson {
    /// What is left of the current unit-rate exponential gap.
    gap: f64,
}

impl Poisson {
    pub fn new(rng: &mut Rng) -> Poisson {
        Poisson {
            gap: rng.exponential(),
        }
    }

    /// The requests arriving in `[t, t + dt)` at `rate` per second, in arrival order.
    pub fn tick(
        &mut self,
        t: f64,
        dt: f64,
        rate: f64,
        rng: &mut Rng,
        req: &Requests,
    ) -> Vec<Request> {
        let mut out = Vec::new();
        if !(rate > 0.0 && rate.is_finite()) {
            return out;
        }
        let mass = rate * dt;
        let mut used = 0.0;
        while used + self.gap <= mass {
            used += self.gap;
            out.push(draw(t + used / rate, rng, req));
            self.gap = rng.exponential();
        }
        self.gap -= mass - used;
        out
    }
}

/// A request arriving at `arrival`, its prompt and output lengths drawn from `req` (at least
/// one token each).
pub fn draw(arrival: f64, rng: &mut Rng, req: &Requests) -> Request {
    Request {
        arrival,
        prompt: rng
            .lognormal(req.prompt_tokens.mean, req.prompt_tokens.cv)
            .max(1.0),
        output: rng
            .lognormal(req.output_tokens.mean, req.output_tokens.cv)
            .max(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_poisson_and_gaps_exponential_whatever_the_tick() {
        let req = Requests::default();
        for dt in [0.25, 0.01, 1.0] {
            let mut rng = Rng::new(9);
            let mut a = Poisson::new(&mut rng);
            let (rate, secs) = (40.0, 5_000.0);
            let mut times = Vec::new();
            let mut t = 0.0;
            while t < secs {
                times.extend(
                    a.tick(t, dt, rate, &mut rng, &req)
                        .iter()
                        .map(|r| r.arrival),
                );
                t += dt;
            }
            let n = times.len() as f64;
            assert!((n / secs - rate).abs() < 0.5, "dt {dt}: {} per s", n / secs);
            assert!(times.windows(2).all(|w| w[0] <= w[1]));
            // Exponential gaps: mean 1/rate, and P(gap > mean) = e^-1.
            let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
            let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
            assert!((mean * rate - 1.0).abs() < 0.01, "dt {dt}: mean gap {mean}");
            let over = gaps.iter().filter(|g| **g > 1.0 / rate).count() as f64 / gaps.len() as f64;
            assert!((over - (-1.0f64).exp()).abs() < 0.005, "dt {dt}: {over}");
        }
    }
}
