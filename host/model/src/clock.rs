//! Time as an injected dependency: the scheduler asks a [`Clock`] for "now", so tests
//! drive a simulated clock instead of sleeping.

use jiff::Timestamp;
use std::sync::Mutex;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    /// A simulated clock may jump forward to `t` when the scheduler has nothing to do
    /// before then. A real clock returns false: the caller must wait for real.
    fn advance_to(&self, _t: Timestamp) -> bool {
        false
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to, or when the scheduler is idle and waiting for
/// a timer (then it jumps straight to that timer).
#[derive(Debug)]
pub struct SimClock {
    now: Mutex<Timestamp>,
}

impl SimClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn set(&self, t: Timestamp) {
        *self.now.lock().unwrap() = t;
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap()
    }

    fn advance_to(&self, t: Timestamp) -> bool {
        let mut now = self.now.lock().unwrap();
        if t > *now {
            *now = t;
        }
        true
    }
}
