//! GPU curves: what the GPU series read while a replica decodes a batch of a given size, keyed
//! by the batch sizes a profile measured (docs/autoscaling.md, "Serving profiles").
//!
//! Between measured batch sizes a value is linear in the replica's throughput (the step-time
//! line's tokens per second), since the load-tracking series follow throughput; below the
//! smallest measured batch and above the largest it is flat. While a replica prefills, its
//! series read the largest measured batch's row: no profile measured prefill, so that is an
//! extrapolation, and the run says so when prefill takes a large share of the GPU's time.
//! A user may still give curves as CSV keyed by `share` (0..1 of the replica's full-batch
//! throughput) with the columns `utilization,sm_active,sm_occupancy,tensor_active,dram_active`.

use std::path::Path;

use crate::input::{self, InputError};
use crate::server::Server;

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

    /// The column name in CSV files.
    pub fn column(self) -> &'static str {
        match self {
            GpuSeries::Utilization => "utilization",
            GpuSeries::SmActive => "sm_active",
            GpuSeries::SmOccupancy => "sm_occupancy",
            GpuSeries::TensorActive => "tensor_active",
            GpuSeries::DramActive => "dram_active",
        }
    }

    /// The key in profile files.
    pub fn key(self) -> &'static str {
        match self {
            GpuSeries::Utilization => "utilization",
            GpuSeries::SmActive => "smActive",
            GpuSeries::SmOccupancy => "smOccupancy",
            GpuSeries::TensorActive => "tensorActive",
            GpuSeries::DramActive => "dramActive",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A measured row: the batch size and each series' value (NaN where not measured).
pub type Row = (f64, [f64; 5]);

/// The curves resolved for one server: a value per batch size up to its `maxNumSeqs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    rows: Vec<Row>,
    /// Index `b`: the values while decoding a batch of `b` (0: idle, all 0).
    table: Vec<[f64; 5]>,
    /// The values while prefilling.
    prefill: [f64; 5],
}

/// Tokens per millisecond at batch `b` on the server's step-time line.
fn throughput(server: &Server, b: f64) -> f64 {
    b / (server.step_base_ms + server.step_per_seq_ms * b)
}

impl Curves {
    /// Curves from measured rows (batch increasing, at least one), for `server`.
    pub fn from_rows(rows: Vec<Row>, server: &Server) -> Curves {
        let max = server.max_num_seqs as usize;
        let mut table = Vec::with_capacity(max + 1);
        table.push([0.0; 5]);
        for b in 1..=max {
            table.push(interpolate(&rows, server, b as f64));
        }
        let prefill = rows.last().map_or([0.0; 5], |r| r.1);
        Curves {
            rows,
            table,
            prefill,
        }
    }

    /// The bundled H200 decode profile's curves on the default server (for tests).
    #[cfg(test)]
    pub fn h200() -> Curves {
        crate::profile::Profile::bundled(crate::profile::DEFAULT)
            .expect("the bundled profile")
            .curves(&Server::default())
    }

    /// Reads curves keyed by `share` of the full-batch throughput from CSV (header required),
    /// each share mapped to the batch size at which `server` reaches it.
    pub fn from_csv(path: &Path, server: &Server) -> Result<Curves, InputError> {
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
        let full = throughput(server, f64::from(server.max_num_seqs));
        let mut rows = Vec::new();
        let mut last = f64::NEG_INFINITY;
        for (line, row) in &table.rows {
            let s = row[share];
            let err = |what: String| InputError::Csv {
                path: path.to_path_buf(),
                line: *line,
                what,
            };
            if !(0.0..=1.0).contains(&s) {
                return Err(err(format!("share {s} is outside 0..1")));
            }
            if s <= last {
                return Err(err(format!(
                    "share {s} is not above the previous row's {last}"
                )));
            }
            last = s;
            if s == 0.0 {
                // Idle reads 0 in the model whatever the row says.
                continue;
            }
            // b / (base + per b) = s × full  =>  b = s full base / (1 - s full per).
            let x = s * full;
            let denom = 1.0 - x * server.step_per_seq_ms;
            let b = if denom > 0.0 {
                x * server.step_base_ms / denom
            } else {
                f64::from(server.max_num_seqs)
            };
            let mut v = [f64::NAN; 5];
            for (i, c) in cols.iter().enumerate() {
                if let Some(c) = c {
                    v[i] = row[*c];
                }
            }
            rows.push((b, v));
        }
        if rows.is_empty() {
            return Err(InputError::Invalid {
                path: path.to_path_buf(),
                what: "no row with a share above 0".into(),
            });
        }
        Ok(Curves::from_rows(rows, server))
    }

    /// Whether the curves give this series (a user's file may leave columns out).
    pub fn has(&self, s: GpuSeries) -> bool {
        self.rows.iter().all(|r| r.1[s.index()].is_finite())
    }

    /// The values while decoding a batch of `b` (flat past the table).
    pub fn at_batch(&self, b: usize) -> &[f64; 5] {
        &self.table[b.min(self.table.len() - 1)]
    }

    /// The values while prefilling (the largest measured batch's row).
    pub fn prefilling(&self) -> &[f64; 5] {
        &self.prefill
    }

    /// One series at batch `b`.
    pub fn at(&self, s: GpuSeries, b: usize) -> f64 {
        self.at_batch(b)[s.index()]
    }

    /// The value at the server's full batch (`maxNumSeqs`): what a calibrated target is a
    /// share of.
    pub fn saturation(&self, s: GpuSeries) -> f64 {
        self.at(s, self.table.len() - 1)
    }
}

/// The rows' values at batch `b`, linear in throughput between rows, flat outside.
fn interpolate(rows: &[Row], server: &Server, b: f64) -> [f64; 5] {
    let Some(first) = rows.first() else {
        return [0.0; 5];
    };
    if b <= first.0 {
        return first.1;
    }
    for w in rows.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        if b <= hi.0 {
            let (x0, x1, x) = (
                throughput(server, lo.0),
                throughput(server, hi.0),
                throughput(server, b),
            );
            let f = if x1 > x0 { (x - x0) / (x1 - x0) } else { 1.0 };
            let mut v = [0.0; 5];
            for (i, o) in v.iter_mut().enumerate() {
                *o = lo.1[i] + f * (hi.1[i] - lo.1[i]);
            }
            return v;
        }
    }
    rows[rows.len() - 1].1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h200_curves_read_the_measured_rows_at_their_batch_sizes() {
        let c = Curves::h200();
        // A replica at batch 64 reads what the H200 read at batch 64.
        assert_eq!(c.at(GpuSeries::TensorActive, 64), 0.072);
        assert_eq!(c.at(GpuSeries::Utilization, 16), 0.89);
        assert_eq!(c.at(GpuSeries::TensorActive, 256), 0.094);
        assert_eq!(c.saturation(GpuSeries::TensorActive), 0.094);
        assert_eq!(c.at(GpuSeries::SmActive, 1), 0.39);
        assert_eq!(c.at_batch(0), &[0.0; 5]);
        // Between rows: increasing, and linear in throughput (128 is past the middle of 64..256
        // in throughput: the line flattens).
        let mid = c.at(GpuSeries::TensorActive, 128);
        assert!(mid > 0.083 && mid < 0.088, "{mid}");
        // Past the largest measured batch: flat; prefill reads the largest batch's row.
        assert_eq!(c.at(GpuSeries::TensorActive, 10_000), 0.094);
        assert_eq!(c.prefilling()[GpuSeries::TensorActive as usize], 0.094);
    }

    #[test]
    fn share_keyed_csv_maps_each_share_to_the_batch_that_reaches_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.csv");
        std::fs::write(&p, "share,tensor_active\n0,0\n0.5,0.05\n1.0,0.1\n").expect("write");
        let server = Server::default();
        let c = Curves::from_csv(&p, &server).expect("valid");
        assert!(c.has(GpuSeries::TensorActive));
        assert!(!c.has(GpuSeries::Utilization));
        assert!((c.saturation(GpuSeries::TensorActive) - 0.1).abs() < 1e-12);
        // The batch at half the full-batch throughput reads 0.05.
        let full = throughput(&server, 256.0);
        let b = (1..=256)
            .min_by(|a, b| {
                let d = |x: usize| (throughput(&server, x as f64) - full / 2.0).abs();
                d(*a).total_cmp(&d(*b))
            })
            .expect("a batch");
        assert!((c.at(GpuSeries::TensorActive, b) - 0.05).abs() < 0.002);
    }
}
