//! Each tenant's metered usage as the scheduler keeps it: tries' CPU and memory
//! charged as they finish, the CPU budget (`cpu_per_hour`) that holds a tenant's
//! new tries back once its rolling hour is spent, and the figures the usage API
//! and `/metrics` read.

use super::State;
use crate::metastore::{TENANT_USAGE, TenantLimits, TenantUsageRecord};
use crate::scheduler::planner::ActiveRun;
use aileron_model::{RunKey, TaskInstanceState as S, TenantId};
use aileron_sandbox::TryUsage;
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};

/// One tenant's usage now, as the scheduler sees it.
#[derive(Debug, Clone, Default)]
pub struct TenantNow {
    /// Its tries running, and queued for an executor or worker.
    pub running: u64,
    pub queued: u64,
    /// Its TaskInstances ready to run but not admitted yet.
    pub waiting: u64,
    /// Set while its CPU budget is spent: why its tries wait, and until when.
    pub held_back: Option<HeldBack>,
    pub usage: TenantUsageRecord,
}

/// Why a tenant's new tries wait.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldBack {
    pub reason: String,
    pub until: Option<Timestamp>,
}

impl State {
    /// Charges a finished try to its tenant (the record is written with this turn).
    pub(super) fn charge(&mut self, tenant: &str, at: Timestamp, usage: &TryUsage) {
        let Ok(tenant) = TenantId::new(tenant) else {
            return;
        };
        // A tenant deleted meanwhile: its usage went with it.
        if !self.tenant_limits.contains_key(&tenant) {
            return;
        }
        self.usage
            .entry(tenant.clone())
            .or_default()
            .record(at, usage);
        self.usage_dirty.insert(tenant);
    }

    /// Writes the usage records charged this turn into the batch.
    pub(super) fn write_usage(&mut self) {
        for tenant in self.usage_dirty.drain() {
            if let Some(record) = self.usage.get(&tenant) {
                self.batch.put(TENANT_USAGE, tenant.to_string(), record);
            }
        }
    }

    /// Why `tenant` gets no new slot at `now`, if its CPU budget is spent.
    pub(super) fn held_back(&self, tenant: &str, now: Timestamp) -> Option<HeldBack> {
        let budget = self.tenant_limits.get(tenant)?.cpu_per_hour? as f64;
        let record = self.usage.get(tenant)?;
        let until = record.under_budget_at(budget, now)?;
        Some(HeldBack {
            reason: format!(
                "tenant `{tenant}` used its CPU budget (cpu_per_hour) of {budget} s: {:.1} s in \
                 the last hour; its tries wait until {until}",
                record.cpu_last_hour(now)
            ),
            until: Some(until),
        })
    }

    /// The earliest moment a held-back tenant's budget comes back: the scheduler
    /// must look again then, though nothing else happens.
    pub(super) fn budget_timer(&self, now: Timestamp) -> Option<Timestamp> {
        self.tenant_limits
            .keys()
            .filter_map(|tenant| self.held_back(tenant.as_str(), now)?.until)
            .min()
    }

    /// Each tenant's usage now (`only`: that tenant's alone), for the API and
    /// `/metrics`. The runs of other tenants are not walked when `only` is set.
    pub(super) fn tenants_now(
        &self,
        now: Timestamp,
        only: Option<&str>,
    ) -> BTreeMap<String, TenantNow> {
        let wanted = |tenant: &str| only.is_none_or(|o| o == tenant);
        let mut all: BTreeMap<String, TenantNow> = BTreeMap::new();
        // (Keyed by name: in-flight keys carry the tenant as text.)
        for tenant in self.tenant_limits.keys().chain(self.usage.keys()) {
            if !wanted(tenant.as_str()) {
                continue;
            }
            let mut usage = self.usage.get(tenant).cloned().unwrap_or_default();
            usage.forget_before(now);
            all.insert(
                tenant.to_string(),
                TenantNow {
                    held_back: self.held_back(tenant.as_str(), now),
                    usage,
                    ..TenantNow::default()
                },
            );
        }
        for key in self.in_flight.keys().filter(|k| wanted(&k.tenant)) {
            let entry = all.entry(key.tenant.clone()).or_default();
            if self.ti(key).is_some_and(|ti| ti.state == S::Running) {
                entry.running += 1;
            } else {
                entry.queued += 1;
            }
        }
        // Runs are ordered by tenant first: one tenant's are a range.
        let runs: Box<dyn Iterator<Item = (&RunKey, &ActiveRun)>> = match only {
            Some(tenant) => {
                let first = RunKey {
                    tenant: tenant.to_owned(),
                    dag_id: String::new(),
                    run_id: String::new(),
                };
                Box::new(
                    self.runs
                        .range(first..)
                        .take_while(move |(rk, _)| rk.tenant == tenant),
                )
            }
            None => Box::new(self.runs.iter()),
        };
        for (rk, run) in runs {
            let ready = run
                .tis()
                .values()
                .filter(|ti| matches!(ti.state, S::Scheduled))
                .count() as u64;
            if ready > 0 {
                all.entry(rk.tenant.clone()).or_default().waiting += ready;
            }
        }
        all
    }
}

/// The limits of each tenant as stored, by name.
pub(super) fn limits_of(
    tenants: Vec<crate::metastore::TenantRecord>,
) -> HashMap<TenantId, TenantLimits> {
    tenants.into_iter().map(|t| (t.name, t.limits)).collect()
}
