//! Calibration curves: what the GPU series read at a given share of a server's capacity.
//!
//! The default is the H200 table of docs/autoscaling.md ("Measured on an H200": one NVIDIA H200,
//! driver 580.159.04, measured 2026-11-30 with gpu-pod-exporter on the real NVML): a
//! decoder-shaped load at batch 1 to 256, each series the mean of 6 scrapes. A user
//! gives their own as CSV with the columns `share,utilization,sm_active,sm_occupancy,
//! tensor_active,dram_active` (share 0..1 of the server's maximum throughput).

use std::path::Path;

use crate::input::{self, InputError};

/// The GPU series a curve gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GpuSeries {
    /// NVML utilization (`pod_gpu_utilization_ratio`).
    Utilization,
    SmActive,
    SmOccupancy,
    TensorActive,
    DramActive,
}

impl GpuSeries {
    pub const ALL: [GpuSeries; 5] = [
        GpuSeries::Utilization,
        GpuSeries::SmActive,
        GpuSeries::SmOccupancy,
        GpuSeries::TensorActive,
        GpuSeries::DramActive,
    ];

    pub fn column(self) -> &'static str {
        match self {
            GpuSeries::Utilization => "utilization",
            GpuSeries::SmActive => "sm_active",
            GpuSeries::SmOccupancy => "sm_occupancy",
            GpuSeries::TensorActive => "tensor_active",
            GpuSeries::DramActive => "dram_active",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Points `(share, [value per series])`, share increasing; linear between points, flat past
/// the last.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    points: Vec<(f64, [f64; 5])>,
}

/// The measured H200 rows: batch 1, 4, 16, 64, 256 at shares 0.03, 0.12, 0.41, 0.78, 1.00,
/// and idle at 0. (The "half the time idle" row is a duty cycle, which the serving model
/// produces itself by averaging busy and idle time.)
const H200: [(f64, [f64; 5]); 6] = [
    (0.0, [0.0, 0.0, 0.0, 0.0, 0.0]),
    (0.03, [0.63, 0.39, 0.054, 0.015, 0.37]),
    (0.12, [0.70, 0.44, 0.062, 0.017, 0.41]),
    (0.41, [0.89, 0.69, 0.097, 0.038, 0.64]),
    (0.78, [0.97, 0.83, 0.123, 0.072, 0.77]),
    (1.00, [0.975, 0.92, 0.140, 0.094, 0.84]),
];

impl Curves {
    pub fn h200() -> Curves {
        Curves {
            points: H200.to_vec(),
        }
    }

    /// Reads a user's curves from CSV (header required).
    pub fn from_csv(path: &Path) -> Result<Curves, InputError> {
        let table = input::read_csv(path, 2)?;
        let col = |name: &str| table.columns.iter().position(|c| c == name);
        let share = col("share").ok_or_else(|| InputError::Invalid {
            path: path.to_path_buf(),
            what: "the header has no `share` column".into(),
        })?;
        let cols: Vec<Option<usize>> = GpuSeries::ALL.iter().map(|s| col(s.column())).collect();
        if cols.iter().all(Option::is_none) {
            return Err(InputError::Invalid {
                path: path.to_path_buf(),
                what: "the header names none of utilization, sm_active, sm_occupancy, tensor_active, dram_active".into(),
            });
        }
        let mut points = Vec::new();
        let mut last = f64::NEG_INFINITY;
        for (line, row) in &table.rows {
            let s = row[share];
            if !(0.0..=1.0).contains(&s) {
                return Err(InputError::Csv {
                    path: path.to_path_buf(),
                    line: *line,
                    what: format!("share {s} is outside 0..1"),
                });
            }
            if s <= last {
                return Err(InputError::Csv {
                    path: path.to_path_buf(),
                    line: *line,
                    what: format!("share {s} is not above the previous row's {last}"),
                });
            }
            last = s;
            let mut v = [f64::NAN; 5];
            for (i, c) in cols.iter().enumerate() {
                if let Some(c) = c {
                    v[i] = row[*c];
                }
            }
            points.push((s, v));
        }
        if points.first().is_some_and(|p| p.0 > 0.0) {
            points.insert(0, (0.0, [0.0; 5]));
        }
        Ok(Curves { points })
    }

    /// Whether the curves give this series (a user's CSV may leave columns out).
    pub fn has(&self, s: GpuSeries) -> bool {
        self.points
            .iter()
            .skip(1)
            .all(|p| p.1[s.index()].is_finite())
    }

    /// The series' value at `share` of capacity (clamped to 0..1).
    pub fn at(&self, s: GpuSeries, share: f64) -> f64 {
        let x = share.clamp(0.0, 1.0);
        let i = s.index();
        let mut prev = self.points[0];
        for p in &self.points {
            if x <= p.0 {
                if p.0 <= prev.0 {
                    return p.1[i];
                }
                let f = (x - prev.0) / (p.0 - prev.0);
                return prev.1[i] + f * (p.1[i] - prev.1[i]);
            }
            prev = *p;
        }
        prev.1[i]
    }

    /// The value at saturation (share 1): what a calibrated target is a fraction of.
    pub fn saturation(&self, s: GpuSeries) -> f64 {
        self.at(s, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h200_reproduces_the_measured_rows() {
        let c = Curves::h200();
        assert_eq!(c.at(GpuSeries::Utilization, 0.41), 0.89);
        assert_eq!(c.at(GpuSeries::TensorActive, 1.0), 0.094);
        // Between rows: linear.
        let mid = c.at(GpuSeries::TensorActive, (0.41 + 0.78) / 2.0);
        assert!((mid - 0.055).abs() < 1e-9);
        // Tensor activity over its saturation value follows the share (measured: 0.40, 0.77,
        // 1.0 against 0.41, 0.78, 1.0).
        for (share, norm) in [(0.41, 0.40), (0.78, 0.77), (1.0, 1.0)] {
            let v = c.at(GpuSeries::TensorActive, share) / c.saturation(GpuSeries::TensorActive);
            assert!((v - norm).abs() < 0.01, "{share}: {v}");
        }
        // NVML utilization saturates: 0.89 at 41 % of capacity.
        assert!(c.at(GpuSeries::Utilization, 0.41) > 0.85);
    }
}
