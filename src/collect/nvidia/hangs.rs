//! Driver calls that run past their deadline: each is counted (`TIMEOUT`, under the call it is
//! blocked in) every time it is found still running, and logged once per device, tier and call,
//! then at most every [`LOG_EVERY`] while it lasts, with one line when the device answers again.
//! Without this a hung NVML call showed only as `gpu_up 0`, and the log said nothing.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::sample::{CallError, ErrorLabel};

/// How often, at most, the same device, tier and call is logged as hung.
pub const LOG_EVERY: Duration = Duration::from_secs(600);

/// Which of a device's threads is hung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// The per-cycle sample: its answer did not come by the cycle's deadline.
    Fast,
    /// The health read: the last one still runs when the next is due.
    Health,
}

impl Tier {
    fn label(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Health => "health",
        }
    }
}

/// The hangs going on now, and when each was last logged.
#[derive(Debug, Default)]
pub struct HangLog {
    /// (device, tier) -> the call it is blocked in, and whether this hang was logged.
    ongoing: BTreeMap<(usize, Tier), (&'static str, bool)>,
    logged_at: HashMap<(usize, Tier, &'static str), Instant>,
}

impl HangLog {
    /// Device `gpu`'s `tier` is still running, blocked in `call` (`None`: its work named no
    /// call yet) at `now`: counted in `errors`, logged unless logged lately.
    pub fn hung(
        &mut self,
        gpu: usize,
        tier: Tier,
        call: Option<&'static str>,
        now: Instant,
        errors: &mut Vec<CallError>,
    ) {
        let call = call.unwrap_or("unknown");
        errors.push(CallError::new(call, ErrorLabel::Timeout));
        let key = (gpu, tier, call);
        let quiet = self
            .logged_at
            .get(&key)
            .is_some_and(|at| now.saturating_duration_since(*at) < LOG_EVERY);
        let entry = self.ongoing.entry((gpu, tier)).or_insert((call, false));
        entry.0 = call;
        if !quiet {
            tracing::warn!(
                gpu,
                tier = tier.label(),
                call,
                "an NVML call has not returned by its deadline; the device is reported with its last values (gpu_up 0 for the fast tier) until it answers (logged again at most every 10 minutes)"
            );
            self.logged_at.insert(key, now);
            entry.1 = true;
        }
    }

    /// Device `gpu`'s `tier` answered: the end of a logged hang is logged too.
    pub fn answered(&mut self, gpu: usize, tier: Tier) {
        if let Some((call, true)) = self.ongoing.remove(&(gpu, tier)) {
            tracing::info!(
                gpu,
                tier = tier.label(),
                call,
                "the hung NVML call returned; the device answers again"
            );
        }
    }

    /// Forgets the devices (after a re-enumeration their indexes name other GPUs); the
    /// rate limit stands.
    pub fn forget_devices(&mut self) {
        self.ongoing.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hang_is_counted_every_time_and_logged_once_per_interval() {
        let mut log = HangLog::default();
        let mut errors = Vec::new();
        let t0 = Instant::now();
        for i in 0..5 {
            log.hung(
                1,
                Tier::Fast,
                Some("utilization"),
                t0 + Duration::from_secs(i),
                &mut errors,
            );
        }
        assert_eq!(errors.len(), 5);
        assert_eq!(
            errors[0],
            CallError::new("utilization", ErrorLabel::Timeout)
        );
        let logged = |log: &HangLog| log.logged_at.values().copied().collect::<Vec<_>>();
        assert_eq!(logged(&log), vec![t0], "logged once");
        log.hung(
            1,
            Tier::Fast,
            Some("utilization"),
            t0 + LOG_EVERY,
            &mut errors,
        );
        assert_eq!(
            logged(&log),
            vec![t0 + LOG_EVERY],
            "and again after LOG_EVERY"
        );
        // Another call, another tier, another device: each logged on its own.
        log.hung(1, Tier::Health, Some("energy"), t0, &mut errors);
        log.hung(2, Tier::Fast, None, t0, &mut errors);
        assert_eq!(log.logged_at.len(), 3);
        assert_eq!(
            errors.last(),
            Some(&CallError::new("unknown", ErrorLabel::Timeout))
        );
        log.answered(1, Tier::Fast);
        assert!(!log.ongoing.contains_key(&(1, Tier::Fast)));
        assert!(log.ongoing.contains_key(&(1, Tier::Health)));
    }
}
