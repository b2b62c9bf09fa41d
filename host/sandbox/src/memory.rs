//! Linear memory accounting: each store's cap, and each tenant's pool that all its
//! running sandboxes in this process charge, so one tenant's tries together can
//! hold no more than its `max_memory`.
//!
//! Both are enforced in `memory.grow` (wasmtime's `ResourceLimiter`), before the
//! memory is committed: a guest that asks for too much traps with a reason naming
//! the limit, and the host never allocates the memory at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiter;

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

/// One tenant's running sandboxes, together.
#[derive(Debug, Default)]
pub(crate) struct TenantPool {
    in_use: AtomicU64,
    refused: AtomicU64,
}

impl TenantPool {
    /// Takes `grow` bytes from the pool unless that would pass `cap`.
    fn charge(&self, grow: u64, cap: Option<u64>) -> Result<(), TenantMemoryExceeded> {
        let mut in_use = self.in_use.load(Ordering::Relaxed);
        loop {
            let after = in_use.saturating_add(grow);
            if let Some(cap) = cap.filter(|&cap| after > cap) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(TenantMemoryExceeded { cap, in_use, grow });
            }
            // A compare-exchange rather than an add: two guests of the tenant
            // growing at once must not both slip under the cap.
            match self.in_use.compare_exchange_weak(
                in_use,
                after,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => in_use = now,
            }
        }
    }

    fn release(&self, bytes: u64) {
        self.in_use.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Every tenant's pool in this process, made on first use.
#[derive(Debug, Default)]
pub(crate) struct TenantPools(Mutex<HashMap<String, Arc<TenantPool>>>);

impl TenantPools {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TenantPool>>> {
        // The map is changed only by one insert at a time: a panic elsewhere
        // cannot leave it half-written, so poisoning is ignored.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn of(&self, tenant: &str) -> Arc<TenantPool> {
        let mut pools = self.lock();
        if let Some(pool) = pools.get(tenant) {
            return pool.clone();
        }
        let pool = Arc::new(TenantPool::default());
        pools.insert(tenant.to_owned(), pool.clone());
        pool
    }

    pub(crate) fn usage(&self) -> Vec<(String, TenantMemoryUsage)> {
        let pools = self.lock();
        let mut all: Vec<_> = pools
            .iter()
            .map(|(tenant, pool)| {
                let usage = TenantMemoryUsage {
                    in_use_bytes: pool.in_use.load(Ordering::Relaxed),
                    refused: pool.refused.load(Ordering::Relaxed),
                };
                (tenant.clone(), usage)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
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

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
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
            && let Err(refused) = tenant.pool.charge(grow, tenant.cap)
        {
            self.refused += 1;
            return Err(refused.into());
        }
        self.used = requested;
        Ok(true)
    }

    fn table_growing(
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

    #[test]
    fn the_limiter_counts_all_memories() {
        let mut m = MemoryLimiter::new(10 << 16, None);
        assert!(m.memory_growing(0, 6 << 16, None).unwrap());
        assert!(m.memory_growing(0, 4 << 16, None).unwrap());
        let err = m.memory_growing(4 << 16, 5 << 16, None).unwrap_err();
        let hit = err.downcast_ref::<MemoryLimitExceeded>().unwrap();
        assert_eq!((hit.cap, hit.requested), (10 << 16, 11 << 16));
        // Growth past a memory's declared maximum is a plain failure.
        assert!(!m.memory_growing(0, 2 << 16, Some(1 << 16)).unwrap());
        assert_eq!(m.used(), 10 << 16);
    }

    #[test]
    fn a_tenant_pool_is_shared_by_its_stores_and_given_back_on_drop() {
        let pools = TenantPools::default();
        let charge = || TenantCharge {
            pool: pools.of("a"),
            cap: Some(10 << 16),
        };
        let mut first = MemoryLimiter::new(1 << 30, Some(charge()));
        let mut second = MemoryLimiter::new(1 << 30, Some(charge()));
        assert!(first.memory_growing(0, 6 << 16, None).unwrap());
        let err = second.memory_growing(0, 5 << 16, None).unwrap_err();
        let hit = err.downcast_ref::<TenantMemoryExceeded>().unwrap();
        assert_eq!(
            (hit.cap, hit.in_use, hit.grow),
            (10 << 16, 6 << 16, 5 << 16)
        );
        assert_eq!(second.refused(), 1);
        assert!(second.memory_growing(0, 4 << 16, None).unwrap());
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
        assert!(other.memory_growing(0, 1 << 16, None).unwrap());
    }
}
