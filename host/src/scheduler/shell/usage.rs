//! Each tenant's metered usage as the scheduler keeps it: tries' CPU and memory
//! charged while they run and when they end, the CPU budget (`cpu_per_hour`)
//! that holds a tenant's new tries back once its rolling hour is spent, and the
//! figures the usage API and `/metrics` read.
//!
//! Every try the scheduler hands out carries a [`LiveUsage`] it keeps a handle
//! to: the local executor's sandbox refreshes it at each epoch tick, and for a
//! try on a worker the execution API refreshes it from the worker's heartbeats.
//! Every [`CHARGE_RUNNING_EVERY`] what running tries used since the last charge
//! is charged, so a long try spends its tenant's budget as it goes rather than
//! all at its end; a try that ends is charged the rest from its report, and one
//! that is stopped by hand or lost with its worker the rest as last read.
//! Callbacks are the tenant's work too, and are metered the same way.

use super::State;
use crate::metastore::{TENANT_USAGE, TenantLimits, TenantUsageRecord};
use crate::scheduler::executor::CallbackId;
use crate::scheduler::planner::ActiveRun;
use aileron_model::TiKey;
use aileron_model::{RunKey, TaskInstanceState as S, TenantId};
use aileron_sandbox::{LiveUsage, TryUsage};
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// How often running tries are charged for what they used meanwhile: how late,
/// at most, a spent `cpu_per_hour` budget is noticed while tries run (plus a
/// worker's heartbeat interval for tries on workers).
pub const CHARGE_RUNNING_EVERY: SignedDuration = SignedDuration::from_secs(10);

/// A try in flight, as its usage is metered.
pub(super) struct Metered {
    attempt: u64,
    live: Arc<LiveUsage>,
    /// What its tenant was charged for it so far.
    charged: TryUsage,
    /// Adopted after a restart: what it used before was charged (up to the
    /// last charge) by the process before, so its first reading here is taken
    /// as what was charged rather than charged again.
    adopted: bool,
}

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
    /// Charges usage to its tenant (the record is written with this turn);
    /// `ended`: the try ended with it, and counts as one run.
    pub(super) fn charge(&mut self, tenant: &str, at: Timestamp, usage: &TryUsage, ended: bool) {
        let Ok(tenant) = TenantId::new(tenant) else {
            return;
        };
        // A tenant deleted meanwhile: its usage went with it.
        if !self.tenant_limits.contains_key(&tenant) {
            return;
        }
        let record = self.usage.entry(tenant.clone()).or_default();
        if ended {
            record.record(at, usage);
        } else {
            record.record_running(at, usage);
        }
        self.usage_dirty.insert(tenant);
    }

    /// Starts metering a try handed out as `attempt`.
    pub(super) fn meter(&mut self, key: TiKey, attempt: u64, live: Arc<LiveUsage>, adopted: bool) {
        self.metering.insert(
            key,
            Metered {
                attempt,
                live,
                charged: TryUsage::default(),
                adopted,
            },
        );
    }

    /// Starts metering a callback sent to run.
    pub(super) fn meter_callback(&mut self, id: CallbackId, live: Arc<LiveUsage>) {
        self.metering_callbacks.insert(
            id,
            Metered {
                attempt: 0,
                live,
                charged: TryUsage::default(),
                adopted: false,
            },
        );
    }

    /// A callback that ended: its tenant is charged what it used beyond what
    /// was charged while it ran.
    pub(super) fn settle_callback(&mut self, id: &CallbackId, at: Timestamp, report: &TryUsage) {
        let rest = match self.metering_callbacks.remove(id) {
            Some(m) => report.max(&m.live.snapshot()).since(&m.charged),
            None => *report,
        };
        self.charge(&id.run.tenant, at, &rest, true);
    }

    /// A try that ended or was stopped at `at`: its tenant is charged what it
    /// used beyond what was charged already, by its `report` where it has one
    /// (the larger of that and the last reading), else by the last reading.
    /// `ran`: whether it started, so it counts as a try run (`None`: not
    /// known, as for a try whose run was deleted; then it did if it used
    /// anything).
    pub(super) fn settle(
        &mut self,
        key: &TiKey,
        attempt: u64,
        at: Timestamp,
        report: Option<&TryUsage>,
        ran: Option<bool>,
    ) {
        let metered = self.metering.remove(key).filter(|m| m.attempt == attempt);
        let (rest, used_any) = match metered {
            Some(m) => {
                let read = m.live.snapshot();
                let used = report.map_or(read, |r| r.max(&read));
                (used.since(&m.charged), used != TryUsage::default())
            }
            // Never handed to an executor (its params did not render).
            None => (report.copied().unwrap_or_default(), false),
        };
        if ran.unwrap_or(used_any) {
            self.charge(&key.tenant, at, &rest, true);
        }
    }

    /// Charges running tries for what they used since they were last charged,
    /// once every [`CHARGE_RUNNING_EVERY`].
    pub(super) fn charge_running(&mut self, now: Timestamp) {
        // With nothing in flight the interval starts again from now, so the
        // first charge of a try comes one interval after it was handed out.
        let due = self.running_charged_at + CHARGE_RUNNING_EVERY;
        if !self.nothing_metered() && now < due {
            return;
        }
        self.running_charged_at = now;
        let tries = self.metering.iter_mut().map(|(k, m)| (&k.tenant, m));
        let callbacks = (self.metering_callbacks.iter_mut()).map(|(id, m)| (&id.run.tenant, m));
        let mut charges = Vec::new();
        for (tenant, m) in tries.chain(callbacks) {
            let read = m.live.snapshot();
            if m.adopted {
                if read != TryUsage::default() {
                    m.charged = read;
                    m.adopted = false;
                }
                continue;
            }
            let delta = read.since(&m.charged);
            if delta.cpu_seconds > 0.0 || delta.host_call_seconds > 0.0 {
                m.charged = read;
                charges.push((tenant.clone(), delta));
            }
        }
        for (tenant, delta) in charges {
            self.charge(&tenant, now, &delta, false);
        }
    }

    /// When running tries are charged next, if any is in flight.
    pub(super) fn running_charge_timer(&self) -> Option<Timestamp> {
        (!self.nothing_metered()).then(|| self.running_charged_at + CHARGE_RUNNING_EVERY)
    }

    fn nothing_metered(&self) -> bool {
        self.metering.is_empty() && self.metering_callbacks.is_empty()
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
        // What running tries used since they were last charged, in one pass.
        let tries = self.metering.iter().map(|(k, m)| (&k.tenant, m));
        let callbacks = (self.metering_callbacks.iter()).map(|(id, m)| (&id.run.tenant, m));
        for (tenant, m) in tries.chain(callbacks).filter(|(t, _)| wanted(t)) {
            if !m.adopted
                && let Some(entry) = all.get_mut(tenant.as_str())
            {
                entry
                    .usage
                    .record_running(now, &m.live.snapshot().since(&m.charged));
            }
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
            let ready = run.census().count(S::Scheduled) as u64;
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
