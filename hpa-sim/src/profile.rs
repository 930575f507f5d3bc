//! Serving profiles: one replica's step-time line, prefill cost and GPU curves, measured in one
//! experiment, with where they come from (format: docs/autoscaling.md, "Serving profiles").
//! `h200-decode` is bundled; `hpa-sim calibrate` writes others.

use serde::Deserialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::curves::{Curves, GpuSeries, Row};
use crate::input::{self, InputError};
use crate::server::Server;

/// The bundled profile a scenario gets when it names none.
pub const DEFAULT: &str = "h200-decode";

const BUNDLED: &[(&str, &str)] = &[("h200-decode", include_str!("../profiles/h200-decode.yaml"))];

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provenance {
    #[serde(default)]
    pub gpu: Option<String>,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub date: Option<String>,
    /// The load's shape (model, precision, context) or the service it was taken from.
    #[serde(default)]
    pub load: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prefill {
    pub ms_per_token: f64,
    /// Whether the experiment measured it (else `source` says where it comes from).
    pub measured: bool,
    #[serde(default)]
    pub source: Option<String>,
}

/// One measured batch size.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Point {
    pub batch: f64,
    pub tokens_per_second: f64,
    #[serde(default)]
    pub utilization: Option<f64>,
    #[serde(default)]
    pub sm_active: Option<f64>,
    #[serde(default)]
    pub sm_occupancy: Option<f64>,
    #[serde(default)]
    pub tensor_active: Option<f64>,
    #[serde(default)]
    pub dram_active: Option<f64>,
}

impl Point {
    /// The GPU values in `GpuSeries::ALL` order, NaN where not measured.
    pub fn values(&self) -> [f64; 5] {
        [
            self.utilization,
            self.sm_active,
            self.sm_occupancy,
            self.tensor_active,
            self.dram_active,
        ]
        .map(|v| v.unwrap_or(f64::NAN))
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub measured: Provenance,
    /// Decode step time = `stepBaseMs + stepPerSeqMs × batch`.
    pub step_base_ms: f64,
    pub step_per_seq_ms: f64,
    pub prefill: Prefill,
    /// The measured batch sizes, increasing.
    pub points: Vec<Point>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("profile {name:?}: {what}")]
    Invalid { name: String, what: String },
    #[error("no bundled profile named {0:?} (bundled: h200-decode); give a path to a profile file instead")]
    Unknown(String),
}

impl Profile {
    /// A bundled profile by name.
    pub fn bundled(name: &str) -> Result<Profile, ProfileError> {
        let text = BUNDLED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| ProfileError::Unknown(name.to_string()))?;
        let p: Profile = serde_saphyr::from_str(text).map_err(|e| ProfileError::Invalid {
            name: name.to_string(),
            what: format!("malformed bundled profile: {e}"),
        })?;
        p.check().map_err(|what| ProfileError::Invalid {
            name: name.to_string(),
            what,
        })?;
        Ok(p)
    }

    /// A bundled name, or a profile file (a path relative to `dir`).
    pub fn resolve(reference: &str, dir: &Path) -> Result<Profile, ProfileError> {
        if BUNDLED.iter().any(|(n, _)| *n == reference) {
            return Profile::bundled(reference);
        }
        let path = dir.join(reference);
        if !path.exists() && !reference.contains(['/', '.']) {
            return Err(ProfileError::Unknown(reference.to_string()));
        }
        Profile::load(&path)
    }

    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let p: Profile = input::read_yaml(path)?;
        p.check().map_err(|what| {
            ProfileError::Input(InputError::Invalid {
                path: PathBuf::from(path),
                what,
            })
        })?;
        Ok(p)
    }

    /// Every check a profile must pass.
    pub fn check(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name}: {v} must be a positive number"))
            }
        };
        positive("stepBaseMs", self.step_base_ms)?;
        if !(self.step_per_seq_ms >= 0.0 && self.step_per_seq_ms.is_finite()) {
            return Err(format!(
                "stepPerSeqMs: {} must be 0 or more",
                self.step_per_seq_ms
            ));
        }
        if !(self.prefill.ms_per_token >= 0.0 && self.prefill.ms_per_token.is_finite()) {
            return Err(format!(
                "prefill.msPerToken: {} must be 0 or more",
                self.prefill.ms_per_token
            ));
        }
        if self.points.is_empty() {
            return Err("points: at least one measured batch size is needed".into());
        }
        let mut last = 0.0;
        for (i, p) in self.points.iter().enumerate() {
            if !(p.batch >= 1.0 && p.batch.is_finite()) {
                return Err(format!("points[{i}].batch: {} must be 1 or more", p.batch));
            }
            if p.batch <= last {
                return Err(format!(
                    "points[{i}].batch: {} is not above the previous point's {last}: batch sizes must increase",
                    p.batch
                ));
            }
            last = p.batch;
            positive(&format!("points[{i}].tokensPerSecond"), p.tokens_per_second)?;
            for (s, v) in GpuSeries::ALL.iter().zip(p.values()) {
                let missing = v.is_nan();
                if !missing && (v < 0.0 || v.is_infinite()) {
                    return Err(format!("points[{i}].{}: {v} must be 0 or more", s.key()));
                }
            }
        }
        for s in GpuSeries::ALL {
            let given = self
                .points
                .iter()
                .filter(|p| p.values()[s as usize].is_finite())
                .count();
            if given != 0 && given != self.points.len() {
                return Err(format!(
                    "{}: given at some batch sizes and not others; give it at every point or none",
                    s.key()
                ));
            }
        }
        Ok(())
    }

    /// Applies the profile to a server: its step-time line and prefill cost, unless the
    /// scenario gave them inline.
    pub fn apply(&self, server: &mut Server, inline: &InlineLine) {
        server.step_base_ms = inline.step_base_ms.unwrap_or(self.step_base_ms);
        server.step_per_seq_ms = inline.step_per_seq_ms.unwrap_or(self.step_per_seq_ms);
        server.prefill_ms_per_token = inline
            .prefill_ms_per_token
            .unwrap_or(self.prefill.ms_per_token);
    }

    /// The GPU curves for `server`.
    pub fn curves(&self, server: &Server) -> Curves {
        let rows: Vec<Row> = self.points.iter().map(|p| (p.batch, p.values())).collect();
        Curves::from_rows(rows, server)
    }

    /// One line on where the profile comes from.
    pub fn provenance(&self) -> String {
        let m = &self.measured;
        let parts: Vec<&str> = [&m.gpu, &m.driver, &m.date, &m.load]
            .into_iter()
            .filter_map(|s| s.as_deref())
            .collect();
        if parts.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, parts.join(", "))
        }
    }
}

impl Profile {
    /// Where the serving model's numbers come from, and what in them is extrapolated.
    pub fn summary(&self, server: &Server, prefill_share: f64) -> String {
        let p = self;
        let mut s = String::new();
        let _ = writeln!(s, "serving profile      {}", p.provenance());
        let from = |v: f64, profile: f64| {
            if v == profile {
                String::new()
            } else {
                format!(" (inline; the profile's {profile})")
            }
        };
        let _ = writeln!(
            s,
            "step time            {} ms{} + {} ms{} per sequence; prefill {} ms per token{}{}",
            server.step_base_ms,
            from(server.step_base_ms, p.step_base_ms),
            server.step_per_seq_ms,
            from(server.step_per_seq_ms, p.step_per_seq_ms),
            server.prefill_ms_per_token,
            from(server.prefill_ms_per_token, p.prefill.ms_per_token),
            if p.prefill.measured {
                ""
            } else {
                ", not measured"
            }
        );
        // A profile's GPU curves come from decode; prefill time reads them extrapolated.
        if !p.prefill.measured && prefill_share >= 0.2 {
            let _ = writeln!(
                s,
                "GPU series           extrapolated: {:.0} % of the replicas' busy time was prefill, which the profile did not measure; there the GPU series read its largest batch's row",
                prefill_share * 100.0
            );
        }
        s
    }
}

/// The step-time keys a scenario may give inline under `server:`, overriding its profile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InlineLine {
    pub step_base_ms: Option<f64>,
    pub step_per_seq_ms: Option<f64>,
    pub prefill_ms_per_token: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_profile_parses_and_holds_the_h200_rows() {
        let p = Profile::bundled("h200-decode").expect("bundled");
        assert_eq!(p.points.len(), 5);
        assert_eq!(p.points[3].batch, 64.0);
        assert_eq!(p.points[3].tensor_active, Some(0.072));
        assert!(!p.prefill.measured);
        assert_eq!(p.measured.driver.as_deref(), Some("580.159.04"));
        // The default server carries the bundled line and prefill cost.
        let d = Server::default();
        assert_eq!(d.step_base_ms, p.step_base_ms);
        assert_eq!(d.step_per_seq_ms, p.step_per_seq_ms);
        assert_eq!(d.prefill_ms_per_token, p.prefill.ms_per_token);
        assert!(matches!(
            Profile::bundled("a100"),
            Err(ProfileError::Unknown(_))
        ));
    }
}
