//! Every span of time the agent derives from `--collect.interval` and
//! `--collect.health-interval`, in one place: what changes when the interval does.
//!
//! docs/design.md ("What the interval sets") has the same list as a table; a stage asks its
//! span of a [`Timing`] rather than multiplying the interval itself.

use std::time::Duration;

/// The two intervals, and every span that follows from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    interval: Duration,
    health_interval: Duration,
}

/// Share of the interval a cycle may spend waiting for devices; the rest is slack so that a
/// cycle with a hung device still finishes before the next one is due.
const CYCLE_BUDGET: f64 = 0.75;

/// The publisher's timer never fires more often than this, whatever the interval.
const MIN_PUBLISHER_TICK: Duration = Duration::from_millis(50);

/// The kubelet's last answer stands at least this long while it does not answer.
const MIN_KUBELET_KEEP: Duration = Duration::from_secs(30);

impl Timing {
    /// The spans of `interval` and `health_interval` (a health interval below the interval is
    /// taken as the interval).
    pub fn new(interval: Duration, health_interval: Duration) -> Timing {
        Timing {
            interval,
            health_interval: health_interval.max(interval),
        }
    }

    /// `--collect.interval`: one collection cycle per collector.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// `--collect.health-interval`: the NVIDIA health tier's reads (never below the interval).
    pub fn health_interval(&self) -> Duration {
        self.health_interval
    }

    /// ¾ interval: how long a collection cycle waits for its devices (and DCGM) before it
    /// reports the late ones down with their last values.
    pub fn cycle_budget(&self) -> Duration {
        self.interval.mul_f64(CYCLE_BUDGET)
    }

    /// 1 interval: a cycle running longer is hung; the snapshot reports its collector failed
    /// and its devices down.
    pub fn hung_after(&self) -> Duration {
        self.interval
    }

    /// ¼ interval (at least 50 ms): the publisher's timer, so that a hung collector shows
    /// within a quarter interval of [`hung_after`](Self::hung_after).
    pub fn publisher_tick(&self) -> Duration {
        (self.interval / 4).max(MIN_PUBLISHER_TICK)
    }

    /// 1½ intervals since the last attribution pass: collectors that have not reported by then
    /// are late, and the others' reports are attributed without them.
    pub fn attribution_late(&self) -> Duration {
        self.interval + self.interval / 2
    }

    /// 6 intervals, at least 30 s: how long the kubelet's last answer stands while its
    /// pod-resources API does not answer, before its allocations are dropped (so that deleted
    /// pods do not linger).
    pub fn kubelet_keep(&self) -> Duration {
        (self.interval * 6).max(MIN_KUBELET_KEEP)
    }

    /// ½ interval: a health read is due once less than this remains before the health interval
    /// has passed (health reads go to the nearest cycle, not the next one).
    pub fn health_tolerance(&self) -> Duration {
        self.interval / 2
    }

    /// `slot / slots` of a health interval: how much later than the others device `slot`
    /// (0-based) of `slots` makes its second health read, so that the devices' health reads
    /// spread over the cycles of a health interval.
    pub fn health_stagger(&self, slot: usize, slots: usize) -> Duration {
        let slots = u32::try_from(slots.max(1)).unwrap_or(u32::MAX);
        let slot = u32::try_from(slot).unwrap_or(0) % slots;
        self.health_interval / slots * slot
    }

    /// 2 intervals: how long DCGM's last read stands while its thread is late.
    pub fn dcgm_keep(&self) -> Duration {
        self.interval.saturating_mul(2)
    }

    /// ½ interval, within 100 ms to 5 s: how long connecting to the DCGM host engine may wait.
    pub fn dcgm_connect_timeout(&self) -> Duration {
        (self.interval / 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// 3 intervals and a second: a DCGM value older than this is no current figure.
    pub fn dcgm_stale(&self) -> Duration {
        self.interval.saturating_mul(3) + Duration::from_secs(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// What changes at 1 s, and at the default 5 s.
    #[test]
    fn every_span_at_one_and_five_seconds() {
        let one = Timing::new(S, 30 * S);
        assert_eq!(one.cycle_budget(), Duration::from_millis(750));
        assert_eq!(one.hung_after(), S);
        assert_eq!(one.publisher_tick(), Duration::from_millis(250));
        assert_eq!(one.attribution_late(), Duration::from_millis(1500));
        assert_eq!(one.kubelet_keep(), 30 * S);
        assert_eq!(one.health_tolerance(), Duration::from_millis(500));
        assert_eq!(one.health_stagger(3, 8), Duration::from_millis(11_250));
        assert_eq!(one.dcgm_keep(), 2 * S);
        assert_eq!(one.dcgm_connect_timeout(), Duration::from_millis(500));
        assert_eq!(one.dcgm_stale(), 4 * S);

        let five = Timing::new(5 * S, 30 * S);
        assert_eq!(five.cycle_budget(), Duration::from_millis(3750));
        assert_eq!(five.publisher_tick(), Duration::from_millis(1250));
        assert_eq!(five.attribution_late(), Duration::from_millis(7500));
        assert_eq!(five.kubelet_keep(), 30 * S);
        assert_eq!(five.dcgm_connect_timeout(), 2500 * Duration::from_millis(1));
        assert_eq!(five.dcgm_stale(), 16 * S);
    }

    #[test]
    fn the_floors_and_ceilings_hold_at_the_extremes() {
        let short = Timing::new(Duration::from_millis(200), Duration::from_millis(200));
        assert_eq!(short.publisher_tick(), Duration::from_millis(50));
        assert_eq!(short.kubelet_keep(), 30 * S);
        assert_eq!(short.dcgm_connect_timeout(), Duration::from_millis(100));
        let long = Timing::new(600 * S, 30 * S);
        assert_eq!(long.health_interval(), 600 * S, "never below the interval");
        assert_eq!(long.kubelet_keep(), 3600 * S);
        assert_eq!(long.dcgm_connect_timeout(), 5 * S);
    }

    #[test]
    fn the_stagger_spreads_the_slots_over_one_health_interval() {
        let t = Timing::new(5 * S, 30 * S);
        let staggers: Vec<Duration> = (0..3).map(|s| t.health_stagger(s, 3)).collect();
        assert_eq!(staggers, [Duration::ZERO, 10 * S, 20 * S]);
        assert_eq!(
            t.health_stagger(0, 0),
            Duration::ZERO,
            "no devices: no stagger"
        );
        assert_eq!(
            t.health_stagger(4, 3),
            10 * S,
            "a slot past the count wraps"
        );
    }

    /// docs/design.md's table ("What the interval sets") names every span.
    #[test]
    fn the_design_doc_names_every_span() {
        let doc = include_str!("../docs/design.md");
        let table = &doc[doc.find("## What the interval sets").unwrap()..];
        let table = &table[..table[3..].find("\n## ").unwrap()];
        let spans: Vec<&str> = include_str!("timing.rs")
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("pub fn "))
            .filter_map(|l| l.split('(').next())
            .filter(|name| *name != "new")
            .collect();
        assert!(spans.len() >= 10, "{spans:?}");
        for span in spans {
            assert!(
                table.contains(&format!("| `{span}")),
                "docs/design.md's table lacks Timing::{span}"
            );
        }
    }
}
