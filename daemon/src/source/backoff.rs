//! Capped exponential backoff with jitter between retries (reconnects, refused commits), so a school's daemons do
//! not hammer a mail server that is down, nor all retry in the same second when it returns.
//! Pure: the caller supplies the random number.

use std::time::Duration;

/// The first wait after a failure; short so a blip costs about a second of delay.
pub(crate) const INITIAL: Duration = Duration::from_secs(1);
/// The longest wait: an outage of hours still gets noticed within five minutes of its end.
pub(crate) const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    failures: u32,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { failures: 0, initial, max }
    }

    /// The wait after one more failure: `initial * 2^n`, capped, then scaled by a factor in
    /// [0.5, 1.0] taken from `unit` (a random number in [0, 1)).
    pub(crate) fn next(&mut self, unit: f64) -> Duration {
        let exp = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }

    /// Work went through: the next failure starts again from `initial`.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let waits: Vec<u64> = (0..6).map(|_| b.next(1.0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        b.reset();
        assert_eq!(b.next(1.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_between_half_and_full() {
        let mut b = Backoff::new(Duration::from_secs(8), Duration::from_secs(300));
        assert_eq!(b.next(0.0), Duration::from_secs(4));
        b.reset();
        assert_eq!(b.next(2.0), Duration::from_secs(8));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut b = Backoff::new(INITIAL, MAX);
        for _ in 0..1000 {
            assert!(b.next(0.9) <= MAX);
        }
    }
}
