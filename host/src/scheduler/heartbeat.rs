//! The scheduler's heartbeat: the wall-clock time its loop last finished a
//! turn, which `/monitor/health` and `/jobs` report as Airflow does. An idle
//! scheduler still turns every [`EVERY`], so a heartbeat older than
//! [`STALE_AFTER`] means the loop is stuck or gone, not merely quiet.

use jiff::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The longest the scheduler waits between turns when nothing wakes it.
pub const EVERY: Duration = Duration::from_secs(5);

/// How old a heartbeat may be for the scheduler to count as healthy: Airflow's
/// default `scheduler_health_check_threshold`.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// Shared between the scheduler's loop, which beats, and its handles, which read.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    /// When the scheduler was built: the start of its "job".
    started: Timestamp,
    /// Milliseconds since the epoch of the last turn; 0 before the first.
    last_ms: Arc<AtomicI64>,
}

impl Heartbeat {
    pub(super) fn new() -> Self {
        Self {
            started: Timestamp::now(),
            last_ms: Arc::default(),
        }
    }

    /// Records a turn, now.
    pub(super) fn beat(&self) {
        self.last_ms
            .store(Timestamp::now().as_millisecond(), Ordering::Relaxed);
    }

    pub fn started(&self) -> Timestamp {
        self.started
    }

    /// When the loop last finished a turn; `None` before its first.
    pub fn last(&self) -> Option<Timestamp> {
        match self.last_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Timestamp::from_millisecond(ms).ok(),
        }
    }

    /// Whether the last turn is recent enough to call the scheduler healthy.
    pub fn is_fresh(&self) -> bool {
        self.last()
            .is_some_and(|t| Timestamp::now().duration_since(t).unsigned_abs() <= STALE_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_fresh_once_beaten() {
        let h = Heartbeat::new();
        assert_eq!(h.last(), None);
        assert!(!h.is_fresh());
        h.beat();
        assert!(h.is_fresh());
        assert!(h.last().unwrap().as_millisecond() >= h.started().as_millisecond());
        // An old beat is stale.
        h.last_ms.store(
            Timestamp::now().as_millisecond() - 31_000,
            Ordering::Relaxed,
        );
        assert!(!h.is_fresh());
    }
}
