//! CPU-bound guests take turns on at most `cpu_bound_threads` threads (all
//! cores but one by default), so a short try and the rest of the process (the
//! scheduler, the API) always find a thread free, however many guests of a
//! tenant spin.
//!
//! Every running store is called back at each epoch tick (10 ms). A try that
//! has run more than [`BOUND_AFTER_TICKS`] ticks of CPU is taken as CPU-bound:
//! from then on, each callback gives back its turn and waits (as a wasmtime
//! custom yield) for the next one; `cpu_bound_threads` turns exist. Turns go
//! round the tenants with a guest waiting, each taking as many turns in a row as
//! its weight, and within a tenant in the order its guests asked: a tenant with
//! 30 spinning guests and one with a single CPU-heavy guest get a turn each in
//! alternation (at equal weights), not 30 to 1. A try that is
//! not CPU-bound never waits here. A turn is given back whenever the guest
//! calls the host (a `context` call, WASI, outbound HTTP: it may wait there),
//! and a CPU-bound guest back from the host takes a turn before it computes on.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::meter::{EpochClock, Resumed};

/// CPU ticks (10 ms each by default) after which a try counts as CPU-bound:
/// 20 ms of computing without finishing.
pub(crate) const BOUND_AFTER_TICKS: u64 = 2;

/// The turns CPU-bound tries take, shared by every store of an engine.
#[derive(Debug, Clone)]
pub(crate) struct CpuGate(Arc<Mutex<Turns>>);

/// Free turns, and who waits for one: by tenant, each in asking order.
#[derive(Debug)]
struct Turns {
    free: usize,
    waiting: BTreeMap<String, Waiting>,
    /// The tenant the last handed-over turn went to, and how many it has had
    /// in a row: it has another while that is under its weight, else the next
    /// goes to the first waiting tenant after it.
    last: Option<(String, u32)>,
}

/// One tenant's guests waiting for a turn, and the tenant's weight.
#[derive(Debug)]
struct Waiting {
    weight: u32,
    guests: VecDeque<oneshot::Sender<Held>>,
}

fn lock(turns: &Mutex<Turns>) -> std::sync::MutexGuard<'_, Turns> {
    // Every change under the lock is a single push, pop or count: a panic
    // cannot leave it half-done, so poisoning is ignored.
    turns.lock().unwrap_or_else(|e| e.into_inner())
}

impl CpuGate {
    pub(crate) fn new(threads: usize) -> Self {
        CpuGate(Arc::new(Mutex::new(Turns {
            free: threads.max(1),
            waiting: BTreeMap::new(),
            last: None,
        })))
    }

    /// The threads CPU-bound tries may use by default: all cores but one, at
    /// least one.
    pub(crate) fn default_threads() -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1)
    }

    /// Gives back the turn `slot` holds and waits for the next one for
    /// `tenant` of weight `weight`: the future a CPU-bound store yields with.
    /// `resumed` is marked when it has the turn (`meter.rs`).
    pub(crate) fn next_turn(
        &self,
        (tenant, weight): (&str, u32),
        slot: &Turn,
        resumed: (Resumed, EpochClock),
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        slot.give_back();
        let waiter = {
            let mut turns = lock(&self.0);
            if turns.free > 0 && turns.waiting.is_empty() {
                turns.free -= 1;
                turns.served(tenant);
                None
            } else {
                let (tx, rx) = oneshot::channel();
                let waiting = turns
                    .waiting
                    .entry(tenant.to_owned())
                    .or_insert_with(|| Waiting {
                        weight: 1,
                        guests: VecDeque::new(),
                    });
                waiting.weight = weight.max(1);
                waiting.guests.push_back(tx);
                Some(rx)
            }
        };
        let (gate, slot) = (self.0.clone(), slot.clone());
        Box::pin(async move {
            let held = match waiter {
                None => Held(Some(gate)),
                // The sender is dropped only with the gate: then run on.
                Some(rx) => match rx.await {
                    Ok(held) => held,
                    Err(_) => return,
                },
            };
            // Back to tokio once per slice even when a turn was free at once: a
            // task is stopped (aborted, when its TaskInstance is changed by hand)
            // only at an await that is pending, so a lone spinning guest that
            // never waited could not be stopped before its own timeout. Dropped
            // here, `held` gives the turn back.
            tokio::task::yield_now().await;
            *slot.lock() = Some(held);
            resumed.0.now(&resumed.1);
        })
    }
}

/// A plain yield to tokio, marking `resumed` when the guest has its thread
/// back: what a guest that is not CPU-bound yields with at each tick.
pub(crate) fn yield_thread(
    resumed: (Resumed, EpochClock),
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        tokio::task::yield_now().await;
        resumed.0.now(&resumed.1);
    })
}

/// A turn being held; given on to the next waiter (or freed) when dropped.
/// (`None` only while being handed over.)
#[derive(Debug)]
struct Held(Option<Arc<Mutex<Turns>>>);

impl Turns {
    /// Notes that `tenant` has the turn just handed over.
    fn served(&mut self, tenant: &str) {
        match &mut self.last {
            Some((last, in_row)) if last == tenant => *in_row += 1,
            _ => self.last = Some((tenant.to_owned(), 1)),
        }
    }

    /// The tenant the next turn goes to: the last one again while it has had
    /// fewer in a row than its weight, else the first waiting one after it,
    /// wrapping around.
    fn next_tenant(&self) -> Option<String> {
        if let Some((last, in_row)) = &self.last
            && let Some(w) = self.waiting.get(last)
            && *in_row < w.weight
        {
            return Some(last.clone());
        }
        let after = self.last.as_ref().map(|(t, _)| t.as_str());
        let mut names = self.waiting.keys();
        match after {
            Some(last) => self
                .waiting
                .range::<str, _>((std::ops::Bound::Excluded(last), std::ops::Bound::Unbounded))
                .next()
                .map(|(k, _)| k.clone())
                .or_else(|| names.next().cloned()),
            None => names.next().cloned(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(gate) = self.0.take() else { return };
        let mut turns = lock(&gate);
        loop {
            let Some(tenant) = turns.next_tenant() else {
                turns.free += 1;
                return;
            };
            let waiting = turns.waiting.get_mut(&tenant).expect("a waiting tenant");
            let waiter = waiting.guests.pop_front();
            if waiting.guests.is_empty() {
                turns.waiting.remove(&tenant);
            }
            let Some(waiter) = waiter else { continue };
            turns.served(&tenant);
            // A waiter that gave up (its try ended) hands the turn straight on.
            match waiter.send(Held(Some(gate.clone()))) {
                Ok(()) => return,
                // Disarmed: its drop must not take the lock held here.
                Err(mut held) => drop(held.0.take()),
            }
        }
    }
}

/// The turn one store holds, if any; given back when dropped with the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Turn(Arc<Mutex<Option<Held>>>);

impl Turn {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        // Only a turn is held inside: nothing a panic could leave half-done.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a turn is held.
    pub(crate) fn held(&self) -> bool {
        self.lock().is_some()
    }

    /// Gives the turn back (the guest waits on the host, or its slice ended).
    pub(crate) fn give_back(&self) {
        let held = self.lock().take();
        drop(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> (Resumed, EpochClock) {
        (Resumed::default(), EpochClock::default())
    }

    #[tokio::test]
    async fn turns_go_round_the_tenants_then_in_order() {
        let gate = CpuGate::new(1);
        let turn = |_: u8| Turn::default();
        let (a1, a2, a3, b1) = (turn(0), turn(0), turn(0), turn(0));
        gate.next_turn(("a", 1), &a1, m()).await;
        assert!(a1.lock().is_some());
        // Two more of a's guests wait, then one of b's.
        let a2_waits = tokio::spawn(gate.next_turn(("a", 1), &a2, m()));
        let a3_waits = tokio::spawn(gate.next_turn(("a", 1), &a3, m()));
        tokio::task::yield_now().await;
        let b1_waits = tokio::spawn(gate.next_turn(("b", 1), &b1, m()));
        tokio::task::yield_now().await;
        // a1's slice ends: b goes next (a was served last), not a2.
        let a1_again = tokio::spawn(gate.next_turn(("a", 1), &a1, m()));
        b1_waits.await.unwrap();
        assert!(b1.lock().is_some() && a1.lock().is_none());
        // Then a's guests, in the order they asked.
        b1.give_back();
        a2_waits.await.unwrap();
        assert!(a2.lock().is_some());
        a2.give_back();
        a3_waits.await.unwrap();
        a3.give_back();
        a1_again.await.unwrap();
        assert!(a1.lock().is_some());
        // Dropped with its store, the turn is free again.
        drop(a1);
        gate.next_turn(("c", 1), &Turn::default(), m()).await;
    }

    #[tokio::test]
    async fn a_tenant_takes_as_many_turns_in_a_row_as_its_weight() {
        let gate = CpuGate::new(1);
        let holder = Turn::default();
        gate.next_turn(("x", 1), &holder, m()).await;
        // Three guests of a (weight 2) and two of b (weight 1) wait.
        let mut waits = Vec::new();
        for (tenant, weight) in [("a", 2), ("a", 2), ("a", 2), ("b", 1), ("b", 1)] {
            let turn = Turn::default();
            waits.push((
                tenant,
                turn.clone(),
                tokio::spawn(gate.next_turn((tenant, weight), &turn, m())),
            ));
            tokio::task::yield_now().await;
        }
        holder.give_back();
        let mut order = Vec::new();
        for _ in 0..5 {
            // Whoever has the turn now is recorded, then gives it on.
            let i = loop {
                tokio::task::yield_now().await;
                if let Some(i) = waits
                    .iter()
                    .position(|(_, t, w)| w.is_finished() && t.held())
                {
                    break i;
                }
            };
            let (tenant, turn, _) = waits.remove(i);
            order.push(tenant);
            turn.give_back();
        }
        assert_eq!(order, ["a", "a", "b", "a", "b"]);
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_passes_the_turn_on() {
        let gate = CpuGate::new(1);
        let (a, b, c) = (Turn::default(), Turn::default(), Turn::default());
        gate.next_turn(("a", 1), &a, m()).await;
        let b_waits = gate.next_turn(("b", 1), &b, m());
        let c_waits = tokio::spawn(gate.next_turn(("c", 1), &c, m()));
        tokio::task::yield_now().await;
        drop(b_waits);
        a.give_back();
        c_waits.await.unwrap();
        assert!(c.lock().is_some());
    }
}
