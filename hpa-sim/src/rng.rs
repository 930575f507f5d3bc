//! The simulator's random numbers: a seeded SplitMix64 generator and the few distributions
//! the serving model draws from (uniform, exponential gaps, Poisson counts, log-normal request
//! lengths), so that a run is reproducible from its seed on every platform.

#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
    /// Box-Muller's second normal, kept for the next call.
    spare: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
            spare: None,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with mean 1.
    pub fn exponential(&mut self) -> f64 {
        -(1.0 - self.uniform()).ln()
    }

    /// Standard normal (Box-Muller: each pair of uniforms gives two).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * sin);
        r * cos
    }

    /// A Poisson count with mean `lambda`: Knuth's product method for small means, a rounded
    /// normal for large ones (where the two agree to well under a percent).
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut k = 0u64;
            let mut p = self.uniform();
            while p > limit {
                k += 1;
                p *= self.uniform();
            }
            k
        } else {
            (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u64
        }
    }

    /// A log-normal draw with the given mean and coefficient of variation (`cv` 0: the mean).
    pub fn lognormal(&mut self, mean: f64, cv: f64) -> f64 {
        if cv <= 0.0 {
            return mean;
        }
        let sigma2 = (1.0 + cv * cv).ln();
        let mu = mean.ln() - sigma2 / 2.0;
        (mu + sigma2.sqrt() * self.normal()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_have_their_means() {
        let mut r = Rng::new(7);
        let n = 200_000;
        let mean = |f: &mut dyn FnMut() -> f64| (0..n).map(|_| f()).sum::<f64>() / n as f64;
        let u = mean(&mut || r.uniform());
        assert!((u - 0.5).abs() < 0.01, "uniform {u}");
        let p = mean(&mut || r.poisson(3.5) as f64);
        assert!((p - 3.5).abs() < 0.05, "poisson small {p}");
        let p = mean(&mut || r.poisson(120.0) as f64);
        assert!((p - 120.0).abs() < 0.5, "poisson large {p}");
        let l = mean(&mut || r.lognormal(300.0, 0.8));
        assert!((l - 300.0).abs() < 6.0, "lognormal {l}");
        // Normals: unit variance, and consecutive draws (a Box-Muller pair) uncorrelated.
        let z: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let var = z.iter().map(|x| x * x).sum::<f64>() / n as f64;
        assert!((var - 1.0).abs() < 0.02, "normal variance {var}");
        let cov = z.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / n as f64;
        assert!(cov.abs() < 0.01, "consecutive normals correlate: {cov}");
    }

    #[test]
    fn a_seed_replays_the_same_draws() {
        let a: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
    }
}
