//! Each tenant's metered usage: totals since the tenant was made, and one bucket
//! per minute of the last hour (what the CPU budget and the Usage page's chart
//! read). One small record per tenant in `tenant_usage`, written by the
//! scheduler with the turn that finished the tries it counts.

use super::*;
use aileron_sandbox::TryUsage;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Minutes of buckets kept: the rolling hour of `cpu_per_hour`.
pub const USAGE_WINDOW_MINUTES: i64 = 60;

/// One minute of a tenant's tries: what they used in it, and the tries that
/// ended in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageMinute {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub cpu_seconds: f64,
    pub host_call_seconds: f64,
    pub tries: u64,
    pub refused_allocations: u64,
    /// The largest peak memory of a try running or ending in the minute.
    pub peak_memory_bytes: u64,
}

/// A tenant's usage: totals, and the last hour by minute (oldest first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantUsageRecord {
    pub cpu_seconds: f64,
    pub host_call_seconds: f64,
    pub tries: u64,
    pub refused_allocations: u64,
    pub minutes: VecDeque<UsageMinute>,
}

fn minute_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(60)
}

impl TenantUsageRecord {
    /// Counts a try that ended at `at`, with what it used that was not
    /// counted yet. A figure that is not a finite, non-negative number (a
    /// worker's report is not to be trusted blindly) counts as zero, so the
    /// record always serializes and the sums only grow.
    pub fn record(&mut self, at: Timestamp, usage: &TryUsage) {
        self.add(at, usage, 1);
    }

    /// Counts what a try still running used up to `at`.
    pub fn record_running(&mut self, at: Timestamp, usage: &TryUsage) {
        self.add(at, usage, 0);
    }

    fn add(&mut self, at: Timestamp, usage: &TryUsage, tries: u64) {
        let clean = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let usage = &TryUsage {
            cpu_seconds: clean(usage.cpu_seconds),
            host_call_seconds: clean(usage.host_call_seconds),
            ..*usage
        };
        let minute = minute_of(at);
        self.cpu_seconds += usage.cpu_seconds;
        self.host_call_seconds += usage.host_call_seconds;
        self.tries += tries;
        self.refused_allocations += u64::from(usage.refused_allocations);
        // Reports arrive in about the order tries end; one from a minute older
        // than the newest bucket joins that bucket rather than reorder them.
        if self.minutes.back().is_none_or(|b| b.minute < minute) {
            self.minutes.push_back(UsageMinute {
                minute,
                ..UsageMinute::default()
            });
        }
        let bucket = self.minutes.back_mut().expect("a bucket was just ensured");
        bucket.cpu_seconds += usage.cpu_seconds;
        bucket.host_call_seconds += usage.host_call_seconds;
        bucket.tries += tries;
        bucket.refused_allocations += u64::from(usage.refused_allocations);
        bucket.peak_memory_bytes = bucket.peak_memory_bytes.max(usage.peak_memory_bytes);
        self.forget_before(at);
    }

    /// Drops buckets that left the rolling hour ending at `now`.
    pub fn forget_before(&mut self, now: Timestamp) {
        let first = minute_of(now) - USAGE_WINDOW_MINUTES + 1;
        while self.minutes.front().is_some_and(|b| b.minute < first) {
            self.minutes.pop_front();
        }
    }

    /// The buckets within the rolling hour ending at `now` (none from after
    /// it: after the wall clock was stepped back, they count when it gets
    /// there again).
    pub fn last_hour(&self, now: Timestamp) -> impl Iterator<Item = &UsageMinute> {
        let last = minute_of(now);
        let first = last - USAGE_WINDOW_MINUTES + 1;
        self.minutes
            .iter()
            .filter(move |b| (first..=last).contains(&b.minute))
    }

    /// Guest CPU seconds of tries that ended in the rolling hour ending at `now`.
    pub fn cpu_last_hour(&self, now: Timestamp) -> f64 {
        self.last_hour(now).map(|b| b.cpu_seconds).sum()
    }

    /// When the rolling hour will hold less than `budget` CPU seconds again, if
    /// it holds `budget` or more at `now`: the end of the minute whose bucket,
    /// once it leaves the window, brings the sum under.
    pub fn under_budget_at(&self, budget: f64, now: Timestamp) -> Option<Timestamp> {
        let mut held = self.cpu_last_hour(now);
        if held < budget {
            return None;
        }
        for bucket in self.last_hour(now) {
            held -= bucket.cpu_seconds;
            if held < budget {
                let leaves = (bucket.minute + USAGE_WINDOW_MINUTES) * 60;
                return Timestamp::from_second(leaves).ok();
            }
        }
        None
    }
}

impl Metastore {
    /// Every tenant's usage record, by tenant name.
    pub fn tenant_usages(&self) -> Result<Vec<(String, TenantUsageRecord)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TENANT_USAGE)?;
        let mut all = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            all.push((k.value().to_owned(), decode(k.value(), v.value())?));
        }
        Ok(all)
    }

    /// One tenant's usage record (empty when it never ran a try).
    pub fn tenant_usage(&self, tenant: &str) -> Result<TenantUsageRecord> {
        Ok(self.get(TENANT_USAGE, tenant)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64, second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 / 60 * 60 + minute * 60 + second).unwrap()
    }

    fn cpu(seconds: f64) -> TryUsage {
        TryUsage {
            cpu_seconds: seconds,
            ..TryUsage::default()
        }
    }

    #[test]
    fn the_rolling_hour_keeps_sixty_minutes_and_the_totals_everything() {
        let mut u = TenantUsageRecord::default();
        u.record(at(0, 5), &cpu(10.0));
        u.record(at(0, 50), &cpu(5.0));
        u.record(at(30, 0), &cpu(20.0));
        assert_eq!(u.minutes.len(), 2);
        assert_eq!(u.cpu_last_hour(at(59, 59)), 35.0);
        // Minute 0 leaves the window when minute 60 begins.
        assert_eq!(u.cpu_last_hour(at(60, 0)), 20.0);
        u.record(at(61, 0), &cpu(1.0));
        assert_eq!(u.minutes.len(), 2, "{:?}", u.minutes);
        assert_eq!((u.cpu_seconds, u.tries), (36.0, 4));
        // Nonsense from a worker counts as nothing and keeps the record sound.
        for bad in [f64::NAN, f64::INFINITY, -5.0, 1e308 * 10.0] {
            u.record(at(61, 30), &cpu(bad));
        }
        assert_eq!(u.cpu_seconds, 36.0);
        assert!(serde_json::to_string(&u).unwrap().contains("36.0"));
        // A minute after `now` (the clock stepped back) is not in its hour.
        assert_eq!(u.cpu_last_hour(at(60, 0)), 20.0);
    }

    #[test]
    fn a_spent_budget_comes_back_when_enough_minutes_leave_the_window() {
        let mut u = TenantUsageRecord::default();
        u.record(at(0, 0), &cpu(30.0));
        u.record(at(10, 0), &cpu(30.0));
        assert_eq!(u.under_budget_at(100.0, at(20, 0)), None);
        // 60 of a budget of 60 is spent; back under it when minute 0 leaves.
        assert_eq!(u.under_budget_at(60.0, at(20, 0)), Some(at(60, 0)));
        // Of a budget of 20 both minutes must leave.
        assert_eq!(u.under_budget_at(20.0, at(20, 0)), Some(at(70, 0)));
    }
}
