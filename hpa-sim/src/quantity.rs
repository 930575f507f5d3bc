//! Kubernetes quantities (`700m`, `"5"`, `1.5k`, `2Gi`) as the milli-units the HPA computes in.
//!
//! The controller reads every target and every metric value with `Quantity.MilliValue()`,
//! which rounds up to a whole milli-unit (`ScaledValue(Milli)` is `ceil(q / 10^-3)`), so a
//! plain `0.0005` is `1m`. The Prometheus Adapter builds its values with
//! `NewMilliQuantity(int64(v * 1000))`, which truncates: that rounding lives in the pipeline
//! (`crate::pipeline`), not here.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// A quantity in milli-units, as `MilliValue()` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Milli(pub i64);

impl Milli {
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// A plain number as `MilliValue()` reads it: rounded up to a whole milli-unit.
    pub fn from_f64_ceil(v: f64) -> Result<Milli, QuantityError> {
        if !v.is_finite() {
            return Err(QuantityError(format!("{v} is not a finite number")));
        }
        let m = (v * 1000.0 - 1e-9).ceil();
        if m.abs() > 9.0e15 {
            return Err(QuantityError(format!("{v} is out of range")));
        }
        Ok(Milli(m as i64))
    }

    /// Kubernetes' own rendering: whole units where exact, else milli-units (`700m`).
    pub fn render(self) -> String {
        if self.0 % 1000 == 0 {
            format!("{}", self.0 / 1000)
        } else {
            format!("{}m", self.0)
        }
    }
}

impl fmt::Display for Milli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid quantity: {0}")]
pub struct QuantityError(pub String);

/// Parses a quantity string: a decimal number with an optional SI (`m`, `k`, `M`, `G`, `T`,
/// `P`, `E`) or binary (`Ki` … `Ei`) suffix, or an exponent (`1e3`).
pub fn parse(text: &str) -> Result<Milli, QuantityError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(QuantityError("empty quantity".into()));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let base: f64 = number
        .parse()
        .map_err(|_| QuantityError(format!("{text:?} does not start with a number")))?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..]
                .parse()
                .map_err(|_| QuantityError(format!("{text:?}: bad exponent {e:?}")))?;
            10f64.powi(exp)
        }
        other => {
            return Err(QuantityError(format!(
                "{text:?}: unknown suffix {other:?} (expected m, k, M, G, T, P, E, Ki … Ei or an exponent)"
            )))
        }
    };
    // Milli-units of `base × factor`, rounded up as MilliValue() does. Exact for the
    // common `<int>m` form.
    if suffix == "m" && !number.contains('.') {
        let v: i64 = number
            .parse()
            .map_err(|_| QuantityError(format!("{text:?} is out of range")))?;
        return Ok(Milli(v));
    }
    Milli::from_f64_ceil(base * factor)
}

/// A quantity as users write it in YAML: a string (`700m`, `"5"`) or a plain number.
impl<'de> Deserialize<'de> for Milli {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Milli;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Kubernetes quantity such as 700m, \"5\" or 0.7")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Milli, E> {
                parse(v).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Milli, E> {
                Milli::from_f64_ceil(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Milli, E> {
                v.checked_mul(1000)
                    .map(Milli)
                    .ok_or_else(|| E::custom("quantity out of range"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Milli, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(|v| v.checked_mul(1000))
                    .map(Milli)
                    .ok_or_else(|| E::custom("quantity out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        // (text, milli) — forms from Kubernetes' own quantity tests and HPA manifests.
        let cases = [
            ("700m", 700),
            ("5", 5000),
            ("0.7", 700),
            ("1.5k", 1_500_000),
            ("2Ki", 2_048_000),
            ("1e3", 1_000_000),
            ("0.0005", 1), // MilliValue rounds up
            ("-1", -1000),
        ];
        for (text, milli) in cases {
            assert_eq!(parse(text), Ok(Milli(milli)), "{text}");
        }
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for text in ["", "abc", "5x", "1e", "m"] {
            let err = parse(text).expect_err(text);
            assert!(!err.0.is_empty());
        }
    }

    #[test]
    fn renders_like_kubernetes() {
        assert_eq!(Milli(700).render(), "700m");
        assert_eq!(Milli(5000).render(), "5");
    }
}
