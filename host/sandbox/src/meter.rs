//! What one try cost: guest CPU metered inside its store in epoch ticks, the time
//! it spent waiting on host calls, and its peak linear memory.
//!
//! The engine's epoch advances every `epoch_tick` (10 ms); a running store is
//! called back at the first epoch check after each advance. A callback that finds
//! the epoch exactly one tick past the one it last saw means the guest was
//! executing wasm across that tick boundary, and counts one tick of CPU. A
//! callback that finds the epoch further on comes after the guest waited (in a
//! host call, or yielded while other tries had the thread) and counts nothing.
//! So a guest is charged for the ticks it actually ran through, not for time it
//! waited, at no cost on the wasm side beyond the epoch checks every store
//! already has for timeouts (fuel would cost 10-30% on every loop). The sampling
//! error is at most one tick per wait; the README gives the measured calibration.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The resources one try used, reported with its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TryUsage {
    /// Guest CPU time: epoch ticks the guest executed through, times the tick.
    pub cpu_seconds: f64,
    /// Time spent in host calls that wait: XCom pulls, variables, connections,
    /// and each outbound HTTP request up to its response headers (requests in
    /// flight at once each count, so this can exceed the try's duration).
    pub host_call_seconds: f64,
    /// The most linear memory the guest held, all its memories together.
    pub peak_memory_bytes: u64,
    /// Growths of its memory refused because its tenant's running tries held
    /// the tenant's `max_memory` (0 or 1: a refusal ends the try).
    #[serde(default)]
    pub refused_allocations: u32,
}

impl TryUsage {
    /// What was used since `earlier`, a reading of the same try: times that
    /// only grow, the peak as it stands now.
    pub fn since(&self, earlier: &TryUsage) -> TryUsage {
        let grown = |now: f64, then: f64| if now > then { now - then } else { 0.0 };
        TryUsage {
            cpu_seconds: grown(self.cpu_seconds, earlier.cpu_seconds),
            host_call_seconds: grown(self.host_call_seconds, earlier.host_call_seconds),
            peak_memory_bytes: self.peak_memory_bytes,
            refused_allocations: self
                .refused_allocations
                .saturating_sub(earlier.refused_allocations),
        }
    }

    /// The larger of two readings of one try, figure by figure.
    pub fn max(&self, other: &TryUsage) -> TryUsage {
        TryUsage {
            cpu_seconds: self.cpu_seconds.max(other.cpu_seconds),
            host_call_seconds: self.host_call_seconds.max(other.host_call_seconds),
            peak_memory_bytes: self.peak_memory_bytes.max(other.peak_memory_bytes),
            refused_allocations: self.refused_allocations.max(other.refused_allocations),
        }
    }
}

/// What a running try has used so far, published by its store at each epoch
/// tick (or, for a try on a worker, by the scheduler from the worker's
/// heartbeats). The scheduler charges a tenant from it while its tries run,
/// and for what a try used before it was stopped or lost.
#[derive(Debug, Default)]
pub struct LiveUsage {
    cpu_nanos: AtomicU64,
    host_call_nanos: AtomicU64,
    peak_memory_bytes: AtomicU64,
}

impl LiveUsage {
    pub fn publish(&self, usage: &TryUsage) {
        let nanos = |secs: f64| (secs * 1e9) as u64;
        self.cpu_nanos
            .store(nanos(usage.cpu_seconds), Ordering::Relaxed);
        self.host_call_nanos
            .store(nanos(usage.host_call_seconds), Ordering::Relaxed);
        self.peak_memory_bytes
            .store(usage.peak_memory_bytes, Ordering::Relaxed);
    }

    /// The usage as of the last tick.
    pub fn snapshot(&self) -> TryUsage {
        let secs = |nanos: &AtomicU64| nanos.load(Ordering::Relaxed) as f64 / 1e9;
        TryUsage {
            cpu_seconds: secs(&self.cpu_nanos),
            host_call_seconds: secs(&self.host_call_nanos),
            peak_memory_bytes: self.peak_memory_bytes.load(Ordering::Relaxed),
            refused_allocations: 0,
        }
    }
}

/// The epoch as the ticker last advanced it, readable by stores (wasmtime keeps
/// the engine's own counter private).
#[derive(Debug, Clone, Default)]
pub(crate) struct EpochClock(Arc<AtomicU64>);

impl EpochClock {
    /// Called by the ticker just before it advances the engine's epoch, so a
    /// store called back for an advance always sees it here.
    pub(crate) fn advance(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// The epoch at which a store's guest got its thread back after a yield, set
/// by the yield's future (which cannot reach the store).
#[derive(Debug, Clone, Default)]
pub(crate) struct Resumed(Arc<AtomicU64>);

impl Resumed {
    /// Marks the guest as running again from now.
    pub(crate) fn now(&self, clock: &EpochClock) {
        self.0.store(clock.now(), Ordering::Release);
    }
}

/// One store's CPU and host-call meter.
pub(crate) struct CpuMeter {
    clock: EpochClock,
    resumed: Resumed,
    last_seen: u64,
    ticks: u64,
    host_calls: Duration,
}

impl CpuMeter {
    pub(crate) fn new(clock: EpochClock) -> Self {
        let last_seen = clock.now();
        CpuMeter {
            clock,
            resumed: Resumed::default(),
            last_seen,
            ticks: 0,
            host_calls: Duration::ZERO,
        }
    }

    /// Called from the store's epoch callback; whether the guest ran through
    /// the tick (false: it comes back from a wait).
    pub(crate) fn on_epoch(&mut self) -> bool {
        let now = self.clock.now();
        let started = self.last_seen.max(self.resumed.0.load(Ordering::Acquire));
        let ran = now == started + 1;
        if ran {
            self.ticks += 1;
        }
        self.last_seen = now;
        ran
    }

    /// What a yield's future marks when the guest runs again, and the clock
    /// it reads.
    pub(crate) fn resume_marker(&self) -> (Resumed, EpochClock) {
        (self.resumed.clone(), self.clock.clone())
    }

    /// Ticks of CPU counted so far.
    pub(crate) fn ticks(&self) -> u64 {
        self.ticks
    }

    pub(crate) fn add_host_call(&mut self, took: Duration) {
        self.host_calls += took;
    }

    pub(crate) fn usage(&self, tick: Duration, peak_memory_bytes: u64) -> TryUsage {
        TryUsage {
            cpu_seconds: self.ticks as f64 * tick.as_secs_f64(),
            host_call_seconds: self.host_calls.as_secs_f64(),
            peak_memory_bytes,
            refused_allocations: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_run_through_count_and_waits_do_not() {
        let clock = EpochClock::default();
        let mut meter = CpuMeter::new(clock.clone());
        // Three ticks of busy wasm: one callback after each advance.
        for _ in 0..3 {
            clock.advance();
            assert!(meter.on_epoch());
        }
        // A wait across five ticks (a host call, or queued behind other tries),
        // then the callback at the first epoch check back in wasm: not counted.
        for _ in 0..5 {
            clock.advance();
        }
        assert!(!meter.on_epoch());
        // Running again from there counts again.
        clock.advance();
        meter.on_epoch();
        // A yield that waited three ticks for its thread: the tick the guest
        // runs after it got the thread back counts.
        for _ in 0..3 {
            clock.advance();
        }
        let (resumed, c) = meter.resume_marker();
        resumed.now(&c);
        clock.advance();
        assert!(meter.on_epoch());
        meter.add_host_call(Duration::from_millis(40));
        let usage = meter.usage(Duration::from_millis(10), 1 << 20);
        assert!((usage.cpu_seconds - 0.05).abs() < 1e-9, "{usage:?}");
        assert!((usage.host_call_seconds - 0.04).abs() < 1e-9, "{usage:?}");
        assert_eq!(usage.peak_memory_bytes, 1 << 20);
    }
}
