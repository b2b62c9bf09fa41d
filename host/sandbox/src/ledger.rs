//! One tenant's `max_memory` shared by every process that runs its tries: the
//! [`QuotaLedger`] (kept by the scheduler) decides how many bytes of the quota
//! each process may hold, and a process asks it through a [`MemoryLedger`]
//! before its tenant pool (`memory.rs`) lets a guest grow past what it holds.
//!
//! Why a ledger rather than each process checking the cap on its own: with N
//! workers, N local checks would let a tenant hold N times its quota. Why grants
//! rather than one call per growth: a process asks for a little more than it
//! needs while the tenant is far from its cap (so most growths cost nothing),
//! and for exactly what it needs once the tenant gets near it (so bytes held
//! but unused elsewhere do not refuse a growth that fits).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A process's request to hold part of a tenant's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRequest<'a> {
    pub tenant: &'a str,
    /// The tenant's `max_memory`, as the try that grows was given it.
    pub cap: u64,
    /// What the process must hold for the growth to go ahead.
    pub need: u64,
    /// What it would like to hold (`need` plus room for the next growths);
    /// never less than `need`.
    pub want: u64,
}

/// The ledger's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The process now holds `bytes` (at least `need`, at most `want`);
    /// `tight` when the tenant is near its cap, so the process should give back
    /// what it does not use at once.
    Granted { bytes: u64, tight: bool },
    /// `need` does not fit: the other processes hold `others` bytes. What the
    /// process held is unchanged.
    Refused { others: u64 },
}

/// The ledger could not be asked (the scheduler is unreachable or does not
/// know this process yet); the pool then decides on its own.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LedgerUnreachable(pub String);

/// What a hold request comes to, later.
pub type HoldFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Held, LedgerUnreachable>> + Send + 'a>>;

/// Where a process asks for its share of a tenant's quota: the scheduler's
/// [`QuotaLedger`] itself in the scheduler's process, the execution API in a
/// worker's.
pub trait MemoryLedger: Send + Sync {
    /// Sets what this process holds of the tenant's quota: `want` bytes if
    /// they fit, else at least `need`, else nothing changes. Asking for less
    /// than held always succeeds.
    fn hold<'a>(&'a self, request: HoldRequest<'a>) -> HoldFuture<'a>;
}

impl std::fmt::Debug for dyn MemoryLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryLedger")
    }
}

/// The part of a tenant's quota one process may grow into when it is
/// `free` bytes from the cap, beyond what it needs: an eighth of the quota
/// (at least 1 MiB, at most 64 MiB), but none while the tenant is within a
/// quarter of its cap.
pub fn headroom(cap: u64, need: u64, free: u64) -> u64 {
    let chunk = (cap / 8).clamp(1 << 20, 64 << 20);
    let spare = free.saturating_sub(need);
    if spare < cap / 4 { 0 } else { chunk.min(spare) }
}

/// Which process holds part of a quota: a worker id, or the scheduler's own.
pub type Holder = String;

/// How much of each capped tenant's quota each process holds; the sum for a
/// tenant never passes the cap its last request named. Not persisted: after a
/// restart the workers' registrations say what they hold.
#[derive(Debug, Default)]
pub struct QuotaLedger {
    tenants: Mutex<HashMap<String, BTreeMap<Holder, u64>>>,
}

impl QuotaLedger {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<Holder, u64>>> {
        // Every change is one insert or remove: a panic elsewhere cannot leave
        // the map half-written, so poisoning is ignored.
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers `holder`'s request (see [`MemoryLedger::hold`]).
    pub fn hold(&self, holder: &str, r: HoldRequest<'_>) -> Held {
        let mut tenants = self.lock();
        let holders = tenants.entry(r.tenant.to_owned()).or_default();
        let mine = holders.get(holder).copied().unwrap_or(0);
        let others: u64 = holders
            .iter()
            .filter(|(h, _)| h.as_str() != holder)
            .map(|(_, b)| *b)
            .sum();
        let free = r.cap.saturating_sub(others);
        let bytes = if r.want <= mine {
            // Giving back: always allowed, whatever the cap is now.
            r.want
        } else if r.need > free && r.need > mine {
            return Held::Refused { others };
        } else {
            let extra = headroom(r.cap, r.need, free);
            r.need.max(r.want.min(r.need + extra))
        };
        if bytes == 0 {
            holders.remove(holder);
            if holders.is_empty() {
                tenants.remove(r.tenant);
            }
        } else {
            holders.insert(holder.to_owned(), bytes);
        }
        Held::Granted {
            bytes,
            tight: free.saturating_sub(bytes) < r.cap / 4,
        }
    }

    /// What `holder` says it holds, by tenant, replacing what the ledger had
    /// for it: a worker registering (again, after a scheduler restart) brings
    /// what it kept meanwhile.
    pub fn adopt(&self, holder: &str, held: &BTreeMap<String, u64>) {
        let mut tenants = self.lock();
        Self::drop_holder(&mut tenants, holder);
        for (tenant, &bytes) in held.iter().filter(|(_, b)| **b > 0) {
            tenants
                .entry(tenant.clone())
                .or_default()
                .insert(holder.to_owned(), bytes);
        }
    }

    /// `holder` is gone (stopped, or silent past the worker timeout): what it
    /// held is free again.
    pub fn forget(&self, holder: &str) {
        self.forget_all(&std::collections::HashSet::from([holder.to_owned()]));
    }

    /// Every holder in `gone` is gone: one pass over what is held, however
    /// many holders `gone` names (the reaper passes every silent worker it
    /// still lists, each second).
    pub fn forget_all(&self, gone: &std::collections::HashSet<String>) {
        if gone.is_empty() {
            return;
        }
        self.lock().retain(|_, holders| {
            holders.retain(|holder, _| !gone.contains(holder.as_str()));
            !holders.is_empty()
        });
    }

    fn drop_holder(tenants: &mut HashMap<String, BTreeMap<Holder, u64>>, holder: &str) {
        tenants.retain(|_, holders| {
            holders.remove(holder);
            !holders.is_empty()
        });
    }

    /// What each process holds of `tenant`'s quota.
    pub fn holdings(&self, tenant: &str) -> BTreeMap<Holder, u64> {
        self.lock().get(tenant).cloned().unwrap_or_default()
    }

    /// This ledger as the [`MemoryLedger`] of a sandbox in its own process,
    /// holding as `holder`.
    pub fn in_process(self: &Arc<Self>, holder: &str) -> Arc<dyn MemoryLedger> {
        Arc::new(InProcess {
            ledger: self.clone(),
            holder: holder.to_owned(),
        })
    }
}

/// A sandbox in the ledger's own process: a call, not a request.
struct InProcess {
    ledger: Arc<QuotaLedger>,
    holder: Holder,
}

impl MemoryLedger for InProcess {
    fn hold<'a>(&'a self, request: HoldRequest<'a>) -> HoldFuture<'a> {
        let answer = self.ledger.hold(&self.holder, request);
        Box::pin(std::future::ready(Ok(answer)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ask(l: &QuotaLedger, holder: &str, need: u64, want: u64) -> Held {
        l.hold(
            holder,
            HoldRequest {
                tenant: "a",
                cap: 64 * MIB,
                need,
                want,
            },
        )
    }

    #[test]
    fn grants_never_sum_past_the_cap_and_are_exact_near_it() {
        let l = QuotaLedger::new();
        // Far from the cap: what was wanted, room included.
        assert_eq!(
            ask(&l, "w1", 15 * MIB, 23 * MIB),
            Held::Granted {
                bytes: 23 * MIB,
                tight: false
            }
        );
        assert_eq!(
            ask(&l, "w2", 15 * MIB, 23 * MIB),
            Held::Granted {
                bytes: 23 * MIB,
                tight: false
            }
        );
        // 18 MiB free: near the cap, exactly what is needed.
        assert_eq!(
            ask(&l, "w1", 30 * MIB, 38 * MIB),
            Held::Granted {
                bytes: 30 * MIB,
                tight: true
            }
        );
        // w2 gives its room back, then a fourth 15 MiB fits exactly.
        ask(&l, "w2", 15 * MIB, 15 * MIB);
        assert!(matches!(
            ask(&l, "w2", 30 * MIB, 38 * MIB),
            Held::Granted { bytes, .. } if bytes == 30 * MIB
        ));
        // A fifth does not, and what w2 held stays.
        assert_eq!(
            ask(&l, "w2", 45 * MIB, 45 * MIB),
            Held::Refused { others: 30 * MIB }
        );
        assert_eq!(l.holdings("a")["w2"], 30 * MIB);
        let total: u64 = l.holdings("a").values().sum();
        assert!(total <= 64 * MIB);
        // Another tenant's quota is its own.
        assert!(matches!(
            l.hold(
                "w1",
                HoldRequest {
                    tenant: "b",
                    cap: 64 * MIB,
                    need: 40 * MIB,
                    want: 40 * MIB
                }
            ),
            Held::Granted { .. }
        ));
    }

    #[test]
    fn a_holder_that_goes_frees_its_share_and_one_that_returns_brings_it() {
        let l = QuotaLedger::new();
        ask(&l, "w1", 60 * MIB, 60 * MIB);
        assert!(matches!(
            ask(&l, "w2", 10 * MIB, 10 * MIB),
            Held::Refused { .. }
        ));
        l.forget("w1");
        assert!(matches!(
            ask(&l, "w2", 10 * MIB, 10 * MIB),
            Held::Granted { .. }
        ));
        // w1 registers again (a scheduler restart) still holding 50 MiB.
        l.adopt("w1", &BTreeMap::from([("a".to_owned(), 50 * MIB)]));
        assert_eq!(
            ask(&l, "w2", 20 * MIB, 20 * MIB),
            Held::Refused { others: 50 * MIB }
        );
        // Giving everything back leaves no entry behind.
        ask(&l, "w1", 0, 0);
        ask(&l, "w2", 0, 0);
        assert!(l.lock().is_empty());
    }

    #[test]
    fn forgetting_many_holders_keeps_the_others() {
        let l = QuotaLedger::new();
        ask(&l, "w1", 10 * MIB, 10 * MIB);
        ask(&l, "w2", 10 * MIB, 10 * MIB);
        ask(&l, "w3", 10 * MIB, 10 * MIB);
        let gone = ["w1", "w3", "never-held"].map(str::to_owned).into();
        l.forget_all(&gone);
        let left: Vec<Holder> = l.holdings("a").into_keys().collect();
        assert_eq!(left, ["w2"]);
        l.forget_all(&["w2".to_owned()].into());
        assert!(l.lock().is_empty());
    }

    #[test]
    fn headroom_shrinks_to_nothing_near_the_cap() {
        assert_eq!(headroom(64 * MIB, 0, 64 * MIB), 8 * MIB);
        assert_eq!(headroom(64 * MIB, 40 * MIB, 64 * MIB), 8 * MIB);
        assert_eq!(headroom(64 * MIB, 50 * MIB, 64 * MIB), 0);
        // Small quotas still get a page-sized start, big ones no more than 64 MiB.
        assert_eq!(headroom(4 * MIB, 0, 4 * MIB), MIB);
        assert_eq!(headroom(8 << 30, 0, 8 << 30), 64 * MIB);
    }
}
