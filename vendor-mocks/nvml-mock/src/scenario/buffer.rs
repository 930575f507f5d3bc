//! The scenario's `process_utilization_buffer` (mock extension): the driver's buffer of
//! per-process utilization samples, so that how often a caller reads can be checked against
//! what a real driver keeps.
//!
//! nvml.h on `nvmlDeviceGetProcessUtilization`: `lastSeenTimeStamp` "represents the CPU
//! timestamp in microseconds at which utilization samples were last read. Set it to 0 to read
//! utilization based on all the samples maintained by the driver's internal sample buffer."
//! The model: the driver takes a sample of every process each `period_ms`, at multiples of the
//! period since the Unix epoch, and keeps the last `samples` of them; a call answers, per
//! process, for the kept samples newer than `lastSeenTimeStamp`, stamped with the newest, or
//! `NOT_FOUND` when no sample is newer. A caller that waits too long between reads loses the
//! samples that left the buffer meanwhile: the mock says so on stderr, so a test can tell.
//!
//! Absent, every call makes one sample stamped with the time of the call (the mock's older
//! behaviour), so that tests with short intervals never see `NOT_FOUND` for a running process.

use serde::Deserialize;

/// The longest sampling period accepted: one minute.
const MAX_PERIOD_MS: u64 = 60_000;
/// The most samples a buffer may be set to keep.
const MAX_SAMPLES: u64 = 1_000_000;

/// The buffer: one sample per process every `period_ms`, the last `samples` kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleBuffer {
    pub period_ms: u64,
    pub samples: u64,
}

/// What a read at one instant finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// The newest sample's timestamp (microseconds since the Unix epoch); `None` when no kept
    /// sample is newer than `lastSeenTimeStamp` (`NOT_FOUND`).
    pub newest: Option<u64>,
    /// Samples newer than `lastSeenTimeStamp` that had left the buffer before this read.
    pub lost: u64,
}

impl SampleBuffer {
    pub(super) fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_PERIOD_MS).contains(&self.period_ms) {
            return Err(format!(
                "process_utilization_buffer.period_ms is {}; it must be 1 to {MAX_PERIOD_MS}",
                self.period_ms
            ));
        }
        if !(1..=MAX_SAMPLES).contains(&self.samples) {
            return Err(format!(
                "process_utilization_buffer.samples is {}; it must be 1 to {MAX_SAMPLES}",
                self.samples
            ));
        }
        Ok(())
    }

    /// What a read at `now_us` with `last_seen` (both microseconds since the Unix epoch)
    /// finds. `last_seen` 0 asks for the whole buffer and loses nothing.
    pub fn read(&self, now_us: u64, last_seen: u64) -> Read {
        let period = self.period_ms.saturating_mul(1000);
        let newest = now_us / period * period;
        let oldest = newest.saturating_sub(self.samples.saturating_sub(1).saturating_mul(period));
        // The first sample newer than last_seen, kept or not.
        let first_unread = (last_seen / period)
            .saturating_add(1)
            .saturating_mul(period);
        let lost = if last_seen == 0 || oldest <= first_unread {
            0
        } else {
            (oldest - first_unread) / period
        };
        Read {
            newest: (newest > last_seen).then_some(newest),
            lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample every 100 ms, the last 10 kept (one second).
    const B: SampleBuffer = SampleBuffer {
        period_ms: 100,
        samples: 10,
    };
    const T: u64 = 1_764_470_000_000_000; // a multiple of 100 ms, in microseconds

    #[test]
    fn a_read_answers_for_the_samples_since_last_seen() {
        // Read 50 ms after the sample at T: that sample is the newest.
        let r = B.read(T + 50_000, T - 300_000);
        assert_eq!(
            r,
            Read {
                newest: Some(T),
                lost: 0
            }
        );
        // Again in the same period: no newer sample, NOT_FOUND.
        assert_eq!(B.read(T + 60_000, T).newest, None);
        // The whole buffer.
        assert_eq!(
            B.read(T, 0),
            Read {
                newest: Some(T),
                lost: 0
            }
        );
    }

    #[test]
    fn samples_that_left_the_buffer_are_counted_lost() {
        // Kept: T-900ms ..= T. Reading since T-1s loses nothing (the first unread is T-900ms).
        assert_eq!(B.read(T, T - 1_000_000).lost, 0);
        // Since T-1.2s: T-1.1s and T-1.0s left the buffer unread.
        assert_eq!(B.read(T, T - 1_200_000).lost, 2);
        // A timestamp between samples counts from the next one.
        assert_eq!(B.read(T, T - 1_150_000).lost, 2);
        assert_eq!(B.read(T, T - 1_050_000).lost, 1);
    }

    #[test]
    fn bad_settings_say_why() {
        let bad = |p, s| {
            SampleBuffer {
                period_ms: p,
                samples: s,
            }
            .validate()
            .unwrap_err()
        };
        assert!(bad(0, 10).contains("period_ms"));
        assert!(bad(MAX_PERIOD_MS + 1, 10).contains("period_ms"));
        assert!(bad(100, 0).contains("samples"));
        assert!(B.validate().is_ok());
    }
}
