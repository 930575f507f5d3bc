//! The retry backoff every reconnecting part of the agent uses: 1 s after the first failure,
//! doubling to 30 s, back to 1 s after a success (NVML's init, ROCm SMI's init, the kubelet's
//! pod-resources API).

use std::time::Duration;

/// Retry delays after consecutive failures: [`Backoff::FIRST`], doubling to [`Backoff::MAX`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// The wait after the first failure.
    pub const FIRST: Duration = Duration::from_secs(1);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(30);

    pub const fn new() -> Backoff {
        Backoff {
            next: Backoff::FIRST,
            failures: 0,
        }
    }

    /// After a failure: how long to wait before the next try (each one twice the last, at
    /// most [`Backoff::MAX`]).
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(Backoff::MAX);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    /// The wait the next failure will bring, without counting one.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// After a success: the next failure waits [`Backoff::FIRST`] again.
    pub fn succeeded(&mut self) {
        *self = Backoff::new();
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_second_doubling_to_thirty_and_back_after_a_success() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..7).map(|_| b.failed().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.failures(), 7);
        assert_eq!(b.peek(), Backoff::MAX);
        b.succeeded();
        assert_eq!((b.failures(), b.failed()), (0, Backoff::FIRST));
    }
}
