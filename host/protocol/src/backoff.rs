//! The retry delay of every loop that talks to Redis or the scheduler (the worker's
//! register, read, heartbeat, logs and finish; the scheduler's Redis publisher):
//! `min(30 s, 0.5 s · 2^n)` scaled by a random factor in [0.5, 1.0], reset after a
//! success (`docs/design/multi-node.md` §3.3).

use std::time::Duration;

/// The first delay before jitter.
const BASE: Duration = Duration::from_millis(500);
/// The longest delay: a scheduler or Redis that comes back is noticed within
/// half a minute, and a worker that cannot reach them costs almost nothing.
const CAP: Duration = Duration::from_secs(30);
/// Past this many doublings the delay is the cap anyway (0.5 s · 2^6 > 30 s);
/// stopping there keeps the shift from overflowing.
const MAX_EXPONENT: u32 = 6;

/// Consecutive failures of one loop and the delay they call for. The random
/// factor keeps many workers that lost the same server from retrying in step.
#[derive(Debug, Default, Clone)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one more failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        let delay = jittered(undelayed(self.failures), random_unit());
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// After a success: the next failure waits the shortest delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The delay after `failures` earlier failures, before jitter.
fn undelayed(failures: u32) -> Duration {
    (BASE * (1u32 << failures.min(MAX_EXPONENT))).min(CAP)
}

/// `delay` scaled into [delay/2, delay] by `unit` in [0, 1].
fn jittered(delay: Duration, unit: f64) -> Duration {
    delay.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A random number in [0, 1]. Without OS randomness (which does not happen on the
/// systems Aileron runs on) the delay is simply not jittered.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let expected = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000];
        for (n, ms) in expected.into_iter().enumerate() {
            assert_eq!(undelayed(n as u32), Duration::from_millis(ms), "n = {n}");
        }
        assert_eq!(undelayed(u32::MAX), CAP);
    }

    #[test]
    fn jitter_stays_between_half_and_whole() {
        let d = Duration::from_secs(8);
        assert_eq!(jittered(d, 0.0), Duration::from_secs(4));
        assert_eq!(jittered(d, 1.0), d);
        assert_eq!(jittered(d, 7.0), d);
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..=1.0).contains(&u), "{u}");
        }
    }

    #[test]
    fn delays_grow_within_bounds_and_reset() {
        let mut b = Backoff::new();
        for n in 0..20u32 {
            let d = b.next_delay();
            let top = undelayed(n);
            assert!(
                d >= top / 2 && d <= top,
                "failure {n}: {d:?} outside [{:?}, {top:?}]",
                top / 2
            );
            assert!(d <= CAP);
        }
        assert_eq!(b.failures, 20);
        b.reset();
        assert_eq!(b.failures, 0);
        let d = b.next_delay();
        assert!(d >= BASE / 2 && d <= BASE, "{d:?}");
    }
}
