//! Which NVML calls a cycle makes: the two sampling tiers (`--collect.interval` and
//! `--collect.health-interval`) and the calls a cycle skips because its answer is not needed.
//! Pure decisions, so that tests can check them without a driver.

use std::time::{Duration, Instant};

use crate::timing::Timing;

/// Call families read by the device worker on every interval: the series that drive
/// decisions, plus clock event reasons (one cheap call, 0.035 ms on an H200, for a state that
/// flips within seconds and would be missed between health reads).
pub(super) const FAST_FAMILIES: &[&str] = &[
    "utilization",
    "memory",
    "power",
    "temperature",
    "clock",
    "processes",
    "process_utilization",
    "gpm",
    "mps",
    "throttle",
];

/// Call families read by the device's health thread, once per health interval: slow counters
/// and state (energy alone costs 3.4 ms of CPU per call on an H200, PCIe throughput waits
/// 20 ms per direction), and dcgm-exporter's counters: memory clock and temperature, power
/// limit, remapped rows and violation counters (see `limits.rs` for why they are here).
pub(super) const HEALTH_FAMILIES: &[&str] = &[
    "energy",
    "ecc",
    "pcie",
    "nvlink",
    "encoder",
    "decoder",
    "memory_clock",
    "memory_temperature",
    "power_limit",
    "remapped_rows",
    "violations",
    "uuid",
];

/// When a device's health read is due. Health reads are asked at the start of a cycle, so the
/// health interval is kept to the nearest cycle: a read is due once less than half an
/// interval remains before the health interval has passed (a cycle that starts a millisecond
/// early does not push the read a whole interval later).
///
/// The devices of a node are staggered ([`HealthSchedule::staggered`]): every device reads on the
/// first cycle (the first sample waits for it), then device `slot` of `slots` reads `slot / slots`
/// of a health interval later than the first, so that the health reads (6 ms of CPU per H200,
/// docs/measurements.md) spread over the cycles of a health interval rather than all landing on one
/// cycle, where eight of them kept two cores busy for ~25 ms and scrapes of that cycle waited
/// (docs/benchmarks.md).
#[derive(Debug, Clone)]
pub(super) struct HealthSchedule {
    timing: Timing,
    last: Option<Instant>,
    /// How much later than the health interval the second read comes.
    stagger: Duration,
}

impl HealthSchedule {
    pub fn new(timing: Timing) -> Self {
        Self::staggered(timing, 0, 1)
    }

    /// The schedule of device `slot` (0-based) of `slots`.
    pub fn staggered(timing: Timing, slot: usize, slots: usize) -> Self {
        HealthSchedule {
            timing,
            last: None,
            stagger: timing.health_stagger(slot, slots),
        }
    }

    /// Whether a health read is due at `now` (always on the first cycle).
    pub fn due(&self, now: Instant) -> bool {
        match self.last {
            None => true,
            Some(last) => {
                now.saturating_duration_since(last) + self.timing.health_tolerance()
                    >= self.timing.health_interval()
            }
        }
    }

    /// Notes that a health read was asked at `now`. After the first, the next is due one
    /// health interval plus this device's stagger later.
    pub fn asked(&mut self, now: Instant) {
        self.last = Some(match self.last {
            None => now + self.stagger,
            Some(_) => now,
        });
    }
}

/// Whether a cycle asks the device for per-process utilization (`nvmlDeviceGetProcessUtilization`,
/// 2.9 ms of CPU on an H200 even when it answers `NOT_FOUND`). `pids`: the distinct pids of the
/// compute list, `None` when it could not be read.
///
/// - In MIG mode the parent's processes are attributed on its instances, which report none.
/// - With no process there is nothing to share out.
/// - With one process the device's utilization is that process's (see [`sole_process_share`]),
///   once the device is known to report per-process utilization at all (`supported`, learnt
///   from the first answer), so that a device without it keeps behaving as one without it.
/// - Otherwise (two or more, or unknown) it is asked. Under MPS the compute list holds the
///   server and its clients, so it is asked too; the attribution then ignores the clients'
///   figures (docs/attribution.md, rule 7).
pub(super) fn wants_process_utilization(
    in_mig_mode: bool,
    pids: Option<usize>,
    supported: Option<bool>,
) -> bool {
    if in_mig_mode || supported == Some(false) {
        return false;
    }
    match pids {
        None => true,
        Some(0) => false,
        Some(1) => supported.is_none(),
        Some(_) => true,
    }
}

/// How many cycles in a row share one read of per-process utilization on a device whose
/// processes stay the same: every other cycle reads, the cycle between holds the last answer.
///
/// The read costs 2.9 ms of CPU on an H200 even when it answers `NOT_FOUND` (docs/measurements.md),
/// the largest cost of a shared GPU's cycle. Nothing is lost by reading less often: the driver
/// keeps a buffer of samples and answers with the mean of each process's samples since
/// `lastSeenTimeStamp` (nvml.h: "Set it to 0 to read utilization based on all the samples
/// maintained by the driver's internal sample buffer"), so a read that continues from the last one
/// covers both cycles' samples. A new or gone process reads at once (see
/// [`ProcessUtilization::held`](super::procutil::ProcessUtilization::held)): a held answer never
/// speaks for a process it was not read for.
pub(super) const PROCESS_UTILIZATION_EVERY: u32 = 2;

/// Whether a cycle may hold the last per-process utilization answer, `cycles_held` cycles
/// after it was read, rather than read again.
pub(super) fn holds_process_utilization(cycles_held: u32) -> bool {
    cycles_held + 1 < PROCESS_UTILIZATION_EVERY
}

/// The per-process utilization of a device that runs a single compute process, when the driver
/// was not asked: all of the device's utilization is that process's. `None` when the device
/// gave no utilization, or does not report per-process utilization (then, as before, no
/// per-process figure: never a guess).
pub(super) fn sole_process_share(
    pid: u32,
    device_utilization: Option<f64>,
    supported: Option<bool>,
) -> Option<(u32, f64)> {
    if supported != Some(true) {
        return None;
    }
    device_utilization.map(|u| (pid, u))
}

/// The `lastSeenTimeStamp` to pass to per-process utilization. While it is asked every cycle,
/// the newest timestamp seen (each answer holds the samples since the last). After a cycle
/// that skipped it, or on the first call (`last_seen` 0 asks for the driver's whole buffer),
/// the driver still holds samples from long ago; the window then starts at most one interval
/// before `now_us` (microseconds since the Unix epoch, NVML's timestamp clock), so that the
/// figure is about the last interval as it is in every other cycle.
pub(super) fn window_start(
    last_seen: u64,
    asked_last_cycle: bool,
    now_us: u64,
    interval: Duration,
) -> u64 {
    if asked_last_cycle && last_seen != 0 {
        return last_seen;
    }
    let interval_us = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
    last_seen.max(now_us.saturating_sub(interval_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// The cycles (0-based, one per `interval`, each starting a little late as real ones do)
    /// on which the health tier is read.
    fn health_cycles(interval: Duration, health: Duration, cycles: u32) -> Vec<u32> {
        let t0 = Instant::now();
        let mut s = HealthSchedule::new(Timing::new(interval, health));
        let mut out = Vec::new();
        for n in 0..cycles {
            // Jitter of up to 3 ms either way, as a thread woken by a timeout has.
            let jitter = Duration::from_millis(u64::from(n % 3));
            let now = t0 + interval * n + jitter;
            if s.due(now) {
                s.asked(now);
                out.push(n);
            }
        }
        out
    }

    #[test]
    fn health_reads_every_health_interval_from_the_first_cycle() {
        // The end-to-end test's setting: interval 1s, health 2s.
        assert_eq!(health_cycles(S, 2 * S, 7), [0, 2, 4, 6]);
        // The defaults: 5s and 30s.
        assert_eq!(health_cycles(5 * S, 30 * S, 13), [0, 6, 12]);
        // Equal intervals: every cycle, as before the tiers.
        assert_eq!(health_cycles(S, S, 4), [0, 1, 2, 3]);
        // Not a multiple: the nearest cycle (12s at 5s -> every 15s, never every 10s).
        assert_eq!(health_cycles(5 * S, 12 * S, 7), [0, 2, 4, 6]);
    }

    /// The cycles on which each of `slots` devices reads its health tier.
    fn staggered_cycles(interval: Duration, health: Duration, slots: usize) -> Vec<Vec<u32>> {
        let t0 = Instant::now();
        (0..slots)
            .map(|slot| {
                let mut s = HealthSchedule::staggered(Timing::new(interval, health), slot, slots);
                (0..19)
                    .filter(|n| {
                        let now = t0 + interval * *n;
                        let due = s.due(now);
                        if due {
                            s.asked(now);
                        }
                        due
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_devices_health_reads_are_spread_over_the_health_interval() {
        // The defaults, 8 GPUs: all on the first cycle, then at most two a cycle, each device
        // every 6 cycles.
        let cycles = staggered_cycles(5 * S, 30 * S, 8);
        for c in &cycles {
            assert_eq!(c[0], 0);
            assert!(c.windows(2).skip(1).all(|w| w[1] - w[0] == 6), "{c:?}");
        }
        for n in 1..19 {
            let reading = cycles.iter().filter(|c| c.contains(&n)).count();
            assert!(reading <= 2, "{reading} devices on cycle {n}: {cycles:?}");
        }
        assert_eq!(cycles[0], [0, 6, 12, 18]);
        assert_eq!(cycles[4], [0, 9, 15]);
        // One device: as unstaggered.
        assert_eq!(staggered_cycles(5 * S, 30 * S, 1), [vec![0, 6, 12, 18]]);
    }

    #[test]
    fn an_early_cycle_does_not_push_the_read_a_cycle_later() {
        let t0 = Instant::now();
        let mut s = HealthSchedule::new(Timing::new(S, 2 * S));
        s.asked(t0);
        assert!(!s.due(t0 + S));
        assert!(s.due(t0 + 2 * S - Duration::from_millis(5)));
    }

    #[test]
    fn a_health_interval_below_the_interval_is_the_interval() {
        assert_eq!(
            health_cycles(2 * S, Duration::from_millis(500), 3),
            [0, 1, 2]
        );
    }

    #[test]
    fn every_family_is_on_one_tier() {
        for f in FAST_FAMILIES {
            assert!(!HEALTH_FAMILIES.contains(f), "{f} on both tiers");
        }
        for slow in [
            "energy",
            "ecc",
            "pcie",
            "nvlink",
            "encoder",
            "decoder",
            "memory_clock",
            "memory_temperature",
            "power_limit",
            "remapped_rows",
            "violations",
        ] {
            assert!(HEALTH_FAMILIES.contains(&slow), "{slow}");
        }
        for fast in ["utilization", "memory", "power", "processes", "gpm"] {
            assert!(FAST_FAMILIES.contains(&fast), "{fast}");
        }
    }

    #[test]
    fn per_process_utilization_is_asked_only_of_a_shared_device() {
        let yes = Some(true);
        // One vLLM pod per GPU: one process, not asked once support is known.
        assert!(!wants_process_utilization(false, Some(1), yes));
        assert!(!wants_process_utilization(false, Some(0), yes));
        assert!(!wants_process_utilization(false, Some(0), None));
        // The first time a process runs, asked once to learn whether the device reports it.
        assert!(wants_process_utilization(false, Some(1), None));
        // Two processes, or MPS (the server and a client).
        assert!(wants_process_utilization(false, Some(2), yes));
        assert!(wants_process_utilization(false, Some(64), None));
        // The compute list failed: asked, as before.
        assert!(wants_process_utilization(false, None, yes));
        // MIG mode: never (the instances' processes carry no utilization).
        assert!(!wants_process_utilization(true, Some(5), yes));
        assert!(!wants_process_utilization(true, None, None));
        // A device that does not report it is not asked again.
        assert!(!wants_process_utilization(false, Some(5), Some(false)));
    }

    #[test]
    fn per_process_utilization_is_read_every_other_cycle() {
        assert!(holds_process_utilization(0));
        assert!(!holds_process_utilization(1));
        assert!(!holds_process_utilization(2));
    }

    #[test]
    fn a_sole_process_has_the_device_utilization() {
        assert_eq!(
            sole_process_share(42, Some(0.87), Some(true)),
            Some((42, 0.87))
        );
        assert_eq!(sole_process_share(42, None, Some(true)), None);
        // Not reported per process by the device: no figure, as before the skip.
        assert_eq!(sole_process_share(42, Some(0.87), Some(false)), None);
        assert_eq!(sole_process_share(42, Some(0.87), None), None);
    }

    #[test]
    fn the_window_after_a_skip_is_at_most_one_interval() {
        let now = 1_764_470_000_000_000; // 2025-11-30, in microseconds
                                         // Asked every cycle: exactly the samples since the last answer.
        assert_eq!(window_start(now - 1_200_000, true, now, S), now - 1_200_000);
        // First call: not the driver's whole buffer (0), the last interval.
        assert_eq!(window_start(0, false, now, S), now - 1_000_000);
        assert_eq!(window_start(0, true, now, S), now - 1_000_000);
        // After an hour of one process per GPU, a second process comes: the last interval,
        // not an hour-old mean.
        assert_eq!(
            window_start(now - 3_600_000_000, false, now, 5 * S),
            now - 5_000_000
        );
        // A skip shorter than an interval keeps the samples since the last one seen.
        assert_eq!(window_start(now - 300_000, false, now, S), now - 300_000);
        // Absurd values do not wrap.
        assert_eq!(window_start(0, false, 10, Duration::MAX), 0);
    }
}
