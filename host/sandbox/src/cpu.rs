//! CPU-bound guests take turns on at most `cpu_bound_threads` threads (all
//! cores but one by default), so a short try and the rest of the process (the
//! scheduler, the API) always find a thread free, however many guests of a
//! tenant spin.
//!
//! Every running store is called back at each epoch tick (10 ms). A try that
//! has run more than [`BOUND_AFTER_TICKS`] ticks of CPU is taken as CPU-bound:
//! from then on, each callback gives back its turn and waits (as a wasmtime
//! custom yield) for the next one from a FIFO semaphore of
//! `cpu_bound_threads` permits, so CPU-bound tries round-robin on those
//! threads. A try that is not CPU-bound never waits here. A turn is also given
//! back while its guest waits in a `context` host call.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// CPU ticks (10 ms each by default) after which a try counts as CPU-bound:
/// 20 ms of computing without finishing.
pub(crate) const BOUND_AFTER_TICKS: u64 = 2;

/// The turns CPU-bound tries take, shared by every store of an engine.
#[derive(Debug, Clone)]
pub(crate) struct CpuGate(Arc<Semaphore>);

impl CpuGate {
    pub(crate) fn new(threads: usize) -> Self {
        CpuGate(Arc::new(Semaphore::new(threads.max(1))))
    }

    /// The threads CPU-bound tries may use by default: all cores but one, at
    /// least one.
    pub(crate) fn default_threads() -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1)
    }

    /// Gives back the turn `slot` holds and waits for the next one: the future
    /// a CPU-bound store yields with.
    pub(crate) fn next_turn(&self, slot: &Turn) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        slot.give_back();
        let (gate, slot) = (self.0.clone(), slot.clone());
        Box::pin(async move {
            // The semaphore is never closed: acquiring cannot fail.
            if let Ok(permit) = gate.acquire_owned().await {
                *slot.lock() = Some(permit);
            }
        })
    }
}

/// The turn one store holds, if any; given back when dropped with the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Turn(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl Turn {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        // Only a permit is held inside: nothing a panic could leave half-done.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the turn back (the guest waits on the host, or its slice ended).
    pub(crate) fn give_back(&self) {
        self.lock().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_go_round_in_order_and_are_given_back() {
        let gate = CpuGate::new(1);
        let (a, b) = (Turn::default(), Turn::default());
        gate.next_turn(&a).await;
        assert!(a.lock().is_some());
        // b waits while a holds the only turn...
        let waiting = tokio::spawn(gate.next_turn(&b));
        tokio::task::yield_now().await;
        assert!(b.lock().is_none());
        // ...and gets it once a asks for its next one (and queues behind b).
        let a_next = tokio::spawn(gate.next_turn(&a));
        waiting.await.unwrap();
        assert!(b.lock().is_some());
        assert!(a.lock().is_none());
        b.give_back();
        a_next.await.unwrap();
        assert!(a.lock().is_some());
    }
}
