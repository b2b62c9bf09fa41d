//! Linear memory accounting: each store's cap, and each tenant's pool that all its
//! running sandboxes in this process charge, so one tenant's tries together can
//! hold no more than its `max_memory`.
//!
//! Both are enforced in `memory.grow` (wasmtime's `ResourceLimiter`), before the
//! memory is committed: a guest that asks for too much traps with a reason naming
//! the limit, and the host never allocates the memory at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiterAsync;

use crate::ledger::{Held, HoldRequest, MemoryLedger, headroom};

/// The guest asked for more linear memory than its cap allows.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {cap} bytes exceeded (the guest asked for {requested} bytes in total)")]
pub(crate) struct MemoryLimitExceeded {
    pub(crate) cap: u64,
    pub(crate) requested: u64,
}

/// The guest's growth would take its tenant past the tenant's `max_memory`.
#[derive(Debug, thiserror::Error)]
#[error(
    "tenant memory quota of {cap} bytes exceeded: its running tries hold {in_use} bytes and this \
     one asked for {grow} more"
)]
pub(crate) struct TenantMemoryExceeded {
    pub(crate) cap: u64,
    pub(crate) in_use: u64,
    pub(crate) grow: u64,
}

/// What one tenant's sandboxes hold in this process now, and how often a growth
/// was refused by the tenant's quota since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantMemoryUsage {
    pub in_use_bytes: u64,
    pub refused: u64,
}

/// What one tenant's sandboxes in this process hold, and how much of the
/// tenant's quota the [`MemoryLedger`] let this process hold.
#[derive(Debug, Default, Clone, Copy)]
struct Bytes {
    in_use: u64,
    /// Only meaningful with a ledger and a cap: the process may grow to it
    /// without asking.
    granted: u64,
    /// The ledger's last word: the tenant is near its cap, so what is not in
    /// use goes back at once.
    tight: bool,
}

/// One tenant's running sandboxes, together.
pub(crate) struct TenantPool {
    tenant: String,
    bytes: Mutex<Bytes>,
    refused: AtomicU64,
    /// The tenant's cap as the last growth was given it (0: none), for what a
    /// release gives back.
    cap: AtomicU64,
    /// Present when other processes run the tenant's tries too.
    ledger: Option<Arc<dyn MemoryLedger>>,
    /// One conversation with the ledger at a time per tenant, so its grants and
    /// give-backs arrive in the order they were decided.
    asking: tokio::sync::Mutex<()>,
    /// Whether an unreachable ledger was already logged.
    warned: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for TenantPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantPool")
            .field("tenant", &self.tenant)
            .field("bytes", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl TenantPool {
    fn new(tenant: &str, ledger: Option<Arc<dyn MemoryLedger>>) -> Self {
        TenantPool {
            tenant: tenant.to_owned(),
            bytes: Mutex::default(),
            refused: AtomicU64::new(0),
            cap: AtomicU64::new(0),
            ledger,
            asking: tokio::sync::Mutex::new(()),
            warned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bytes> {
        // Each change is a few assignments with no call in between: a panic
        // elsewhere cannot leave the figures half-written.
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `grow` bytes unless that would pass `cap` or, with `granted`, what
    /// the ledger granted this process (read under the same lock, so a grant
    /// being given back cannot be grown into); else the bytes in use.
    fn take(&self, grow: u64, cap: u64, granted: bool) -> Result<(), u64> {
        let mut b = self.lock();
        let after = b.in_use.saturating_add(grow);
        let limit = if granted { cap.min(b.granted) } else { cap };
        if after > limit {
            return Err(b.in_use);
        }
        b.in_use = after;
        Ok(())
    }

    fn refuse(&self, cap: u64, in_use: u64, grow: u64) -> TenantMemoryExceeded {
        self.refused.fetch_add(1, Ordering::Relaxed);
        TenantMemoryExceeded { cap, in_use, grow }
    }

    /// Takes `grow` bytes from the pool unless that would pass `cap`, counting
    /// what the tenant's tries hold in other processes as the ledger says.
    async fn charge(&self, grow: u64, cap: Option<u64>) -> Result<(), TenantMemoryExceeded> {
        let Some(cap) = cap else {
            // Counted, not capped.
            let _ = self.take(grow, u64::MAX, false);
            return Ok(());
        };
        self.cap.store(cap, Ordering::Relaxed);
        let Some(ledger) = &self.ledger else {
            return self
                .take(grow, cap, false)
                .map_err(|in_use| self.refuse(cap, in_use, grow));
        };
        // Within what this process holds: no need to ask.
        if self.take(grow, cap, true).is_ok() {
            return Ok(());
        }
        let _turn = self.asking.lock().await;
        // A few rounds at most: another store of the tenant in this process may
        // take what was just granted before this one does.
        for _ in 0..3 {
            let in_use = match self.take(grow, cap, true) {
                Ok(()) => return Ok(()),
                Err(in_use) => in_use,
            };
            let need = in_use.saturating_add(grow);
            if need > cap {
                return Err(self.refuse(cap, in_use, grow));
            }
            let want = need.saturating_add(headroom(cap, need, cap));
            let request = HoldRequest {
                tenant: &self.tenant,
                cap,
                need,
                want,
            };
            match ledger.hold(request).await {
                Ok(Held::Granted { bytes, tight }) => {
                    let mut b = self.lock();
                    b.granted = bytes;
                    b.tight = tight;
                }
                Ok(Held::Refused { others }) => {
                    return Err(self.refuse(cap, in_use.saturating_add(others), grow));
                }
                Err(unreachable) => {
                    // The cap still holds in this process; the ledger learns what
                    // it holds when the worker registers again.
                    if !self.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            tenant = %self.tenant,
                            "cannot ask the scheduler for memory ({unreachable}); \
                             this process applies the tenant's max_memory on its own meanwhile"
                        );
                    }
                    let mut b = self.lock();
                    b.granted = b.granted.max(need);
                }
            }
        }
        self.take(grow, cap, true)
            .map_err(|in_use| self.refuse(cap, in_use, grow))
    }

    fn release(self: &Arc<Self>, bytes: u64) {
        let surplus = {
            let mut b = self.lock();
            b.in_use = b.in_use.saturating_sub(bytes);
            self.ledger.is_some() && b.granted > self.keep(&b)
        };
        // Given back by a task of its own: a store is dropped in sync code, and
        // the ledger may be a request away.
        if surplus && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.clone();
            runtime.spawn(async move { pool.give_back().await });
        }
    }

    /// What the process keeps of its grant: what is in use, and room for the
    /// next growths unless the tenant is near its cap or has no try running
    /// here (an idle process holds nothing, however many there are).
    fn keep(&self, b: &Bytes) -> u64 {
        let cap = self.cap.load(Ordering::Relaxed);
        if b.tight || cap == 0 || b.in_use == 0 {
            b.in_use
        } else {
            b.in_use.saturating_add(headroom(cap, b.in_use, cap))
        }
    }

    async fn give_back(&self) {
        let Some(ledger) = &self.ledger else { return };
        let _turn = self.asking.lock().await;
        let target = {
            let mut b = self.lock();
            let target = self.keep(&b);
            if b.granted <= target {
                return;
            }
            // Lowered here first, so no store grows into what is being given back.
            b.granted = target;
            target
        };
        let request = HoldRequest {
            tenant: &self.tenant,
            cap: self.cap.load(Ordering::Relaxed),
            need: target,
            want: target,
        };
        if let Ok(Held::Granted { tight, .. }) = ledger.hold(request).await {
            self.lock().tight = tight;
        }
    }

    /// What this process holds of the tenant's quota: its grant, or what is in
    /// use if that is more (memory taken while the ledger was unreachable);
    /// nothing for a tenant never capped here, which the ledger does not track.
    fn held(&self) -> u64 {
        if self.cap.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let b = self.lock();
        b.granted.max(b.in_use)
    }
}

/// Every tenant's pool in this process, made on first use.
#[derive(Debug, Default)]
pub(crate) struct TenantPools {
    pools: Mutex<HashMap<String, Arc<TenantPool>>>,
    ledger: std::sync::OnceLock<Arc<dyn MemoryLedger>>,
}

impl TenantPools {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TenantPool>>> {
        // The map is changed only by one insert at a time: a panic elsewhere
        // cannot leave it half-written, so poisoning is ignored.
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every capped tenant's growths in this process ask `ledger` for
    /// their share of the quota. Only before the first try; `false` after.
    pub(crate) fn share_quotas(&self, ledger: Arc<dyn MemoryLedger>) -> bool {
        self.lock().is_empty() && self.ledger.set(ledger).is_ok()
    }

    pub(crate) fn of(&self, tenant: &str) -> Arc<TenantPool> {
        let mut pools = self.lock();
        if let Some(pool) = pools.get(tenant) {
            return pool.clone();
        }
        let pool = Arc::new(TenantPool::new(tenant, self.ledger.get().cloned()));
        pools.insert(tenant.to_owned(), pool.clone());
        pool
    }

    pub(crate) fn usage(&self) -> Vec<(String, TenantMemoryUsage)> {
        let pools = self.lock();
        let mut all: Vec<_> = pools
            .iter()
            .map(|(tenant, pool)| {
                let usage = TenantMemoryUsage {
                    in_use_bytes: pool.lock().in_use,
                    refused: pool.refused.load(Ordering::Relaxed),
                };
                (tenant.clone(), usage)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// What this process holds of each tenant's quota (those holding nothing
    /// left out), for the ledger when the process registers again.
    pub(crate) fn held(&self) -> BTreeMap<String, u64> {
        self.lock()
            .iter()
            .map(|(tenant, pool)| (tenant.clone(), pool.held()))
            .filter(|(_, bytes)| *bytes > 0)
            .collect()
    }
}

/// The tenant pool a store charges, with the tenant's cap (`None`: counted, not
/// capped).
pub(crate) struct TenantCharge {
    pub(crate) pool: Arc<TenantPool>,
    pub(crate) cap: Option<u64>,
}

/// Caps the guest's linear memory in total across all its memories (a component
/// has several core instances; a per-memory cap would multiply the budget), and
/// charges its tenant's pool. What it charged is given back when the store (and
/// so this limiter) is dropped.
pub(crate) struct MemoryLimiter {
    cap: u64,
    used: u64,
    tenant: Option<TenantCharge>,
    refused: u32,
}

impl MemoryLimiter {
    pub(crate) fn new(cap: u64, tenant: Option<TenantCharge>) -> Self {
        MemoryLimiter {
            cap,
            used: 0,
            tenant,
            refused: 0,
        }
    }

    pub(crate) fn cap(&self) -> u64 {
        self.cap
    }

    /// Linear memory the guest holds; memories never shrink, so this is its peak.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// Growths refused by the tenant's pool.
    pub(crate) fn refused(&self) -> u32 {
        self.refused
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        if let Some(tenant) = &self.tenant {
            tenant.pool.release(self.used);
        }
    }
}

// Async because a growth past what this process holds of a capped tenant's
// quota asks the scheduler's ledger first; wasmtime then calls it from the
// store's fiber, which waits without holding the thread.
#[async_trait::async_trait]
impl ResourceLimiterAsync for MemoryLimiter {
    async fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            // Beyond the memory's own declared maximum: an ordinary failed
            // `memory.grow` (-1) as the spec says, not the task's limit.
            return Ok(false);
        }
        let grow = (desired - current) as u64;
        let requested = self.used + grow;
        if requested > self.cap {
            // A trap rather than `Ok(false)`: language runtimes abort on a failed
            // allocation with an unhelpful `unreachable`, while this error names the
            // limit in the try's failure reason.
            return Err(MemoryLimitExceeded {
                cap: self.cap,
                requested,
            }
            .into());
        }
        if let Some(tenant) = &self.tenant
            && let Err(refused) = tenant.pool.charge(grow, tenant.cap).await
        {
            self.refused += 1;
            return Err(refused.into());
        }
        self.used = requested;
        Ok(true)
    }

    async fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pooling allocator's per-table element limit.
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::QuotaLedger;

    #[tokio::test]
    async fn the_limiter_counts_all_memories() {
        let mut m = MemoryLimiter::new(10 << 16, None);
        assert!(m.memory_growing(0, 6 << 16, None).await.unwrap());
        assert!(m.memory_growing(0, 4 << 16, None).await.unwrap());
        let err = m.memory_growing(4 << 16, 5 << 16, None).await.unwrap_err();
        let hit = err.downcast_ref::<MemoryLimitExceeded>().unwrap();
        assert_eq!((hit.cap, hit.requested), (10 << 16, 11 << 16));
        // Growth past a memory's declared maximum is a plain failure.
        assert!(!m.memory_growing(0, 2 << 16, Some(1 << 16)).await.unwrap());
        assert_eq!(m.used(), 10 << 16);
    }

    #[tokio::test]
    async fn a_tenant_pool_is_shared_by_its_stores_and_given_back_on_drop() {
        let pools = TenantPools::default();
        let charge = || TenantCharge {
            pool: pools.of("a"),
            cap: Some(10 << 16),
        };
        let mut first = MemoryLimiter::new(1 << 30, Some(charge()));
        let mut second = MemoryLimiter::new(1 << 30, Some(charge()));
        assert!(first.memory_growing(0, 6 << 16, None).await.unwrap());
        let err = second.memory_growing(0, 5 << 16, None).await.unwrap_err();
        let hit = err.downcast_ref::<TenantMemoryExceeded>().unwrap();
        assert_eq!(
            (hit.cap, hit.in_use, hit.grow),
            (10 << 16, 6 << 16, 5 << 16)
        );
        assert_eq!(second.refused(), 1);
        assert!(second.memory_growing(0, 4 << 16, None).await.unwrap());
        let usage = pools.usage();
        assert_eq!(
            usage,
            vec![(
                "a".to_owned(),
                TenantMemoryUsage {
                    in_use_bytes: 10 << 16,
                    refused: 1
                }
            )]
        );
        drop(first);
        assert_eq!(pools.usage()[0].1.in_use_bytes, 4 << 16);
        drop(second);
        assert_eq!(pools.usage()[0].1.in_use_bytes, 0);
        // Another tenant has a pool of its own.
        let mut other = MemoryLimiter::new(
            1 << 30,
            Some(TenantCharge {
                pool: pools.of("b"),
                cap: Some(1 << 16),
            }),
        );
        assert!(other.memory_growing(0, 1 << 16, None).await.unwrap());
    }

    /// Two processes (two pool sets) of one tenant share its quota through the
    /// ledger: what one holds, the other cannot take, until it is given back.
    #[tokio::test]
    async fn processes_sharing_a_ledger_share_the_quota() {
        const MIB: u64 = 1 << 20;
        let ledger = QuotaLedger::new();
        let worker = |name: &str| {
            let pools = TenantPools::default();
            assert!(pools.share_quotas(ledger.in_process(name)));
            pools
        };
        let (w1, w2) = (worker("w1"), worker("w2"));
        let store = |pools: &TenantPools| {
            MemoryLimiter::new(
                1 << 30,
                Some(TenantCharge {
                    pool: pools.of("a"),
                    cap: Some(64 * MIB),
                }),
            )
        };
        async fn grow(m: &mut MemoryLimiter, mib: u64) -> wasmtime::Result<bool> {
            let current = m.used() as usize;
            let desired = current + (mib << 20) as usize;
            m.memory_growing(current, desired, None).await
        }
        // Four 15 MiB guests, two in each process: they fit in 64 MiB.
        let mut held = Vec::new();
        for pools in [&w1, &w2, &w1, &w2] {
            let mut m = store(pools);
            assert!(grow(&mut m, 15).await.unwrap());
            held.push(m);
        }
        let total: u64 = ledger.holdings("a").values().sum();
        assert!((60 * MIB..=64 * MIB).contains(&total), "{total}");
        // A fifth is refused in either process, naming what the tenant holds.
        for pools in [&w1, &w2] {
            let mut m = store(pools);
            let err = grow(&mut m, 15).await.unwrap_err();
            let hit = err.downcast_ref::<TenantMemoryExceeded>().unwrap();
            assert!(hit.in_use >= 60 * MIB, "{hit}");
        }
        // One guest of w1 ends: its bytes go back to the ledger, and w2 can grow.
        drop(held.remove(0));
        tokio::task::yield_now().await;
        for _ in 0..100 {
            if ledger.holdings("a")["w1"] <= 15 * MIB {
                break;
            }
            tokio::task::yield_now().await;
        }
        let mut m = store(&w2);
        assert!(grow(&mut m, 15).await.unwrap());
        // Everything ends: the ledger is empty again.
        drop(m);
        drop(held);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            ledger.holdings("a").is_empty(),
            "{:?}",
            ledger.holdings("a")
        );
    }
}
