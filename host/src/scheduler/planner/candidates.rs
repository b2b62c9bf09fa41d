//! Each run's candidates for admission: its TaskInstances that are `scheduled`,
//! `up_for_retry` or `up_for_reschedule`, ordered as admission takes them within
//! a run (highest effective priority weight first, then the task's place in the
//! file, then the map index).
//!
//! Admission runs every turn. Sorting every ready TaskInstance each time made a
//! turn cost the size of the backlog: a tenant with 10,000 queued tries slowed
//! every other tenant's scheduling. The set is kept instead: [`ActiveRun`]'s
//! changing methods note which TaskInstances changed, and [`Candidates::refresh`]
//! re-files only those, so a turn costs what changed since the last one.
//!
//! [`ActiveRun`]: super::ActiveRun

use crate::metastore::TaskInstance;
use aileron_model::TaskInstanceState as S;
use aileron_model::dag::DagSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

/// A candidate's place: (−effective priority weight, task position, map index).
pub type Place = (i64, usize, i64);

#[derive(Default)]
pub struct Candidates {
    set: BTreeSet<Place>,
    /// TaskInstances changed since the last refresh, by (task id, map index).
    touched: Vec<(String, i64)>,
    /// Everything is filed again at the next refresh: many changed at once, or
    /// never filed yet.
    stale: bool,
    /// The DAG version the set was filed for; a run moved to another version
    /// (a clear) is filed again, its tasks' places having changed.
    filed_for: Option<Arc<DagSpec>>,
}

/// Whether a TaskInstance in `state` may be queued now or once its delay is over.
fn is_candidate(state: S) -> bool {
    matches!(state, S::Scheduled | S::UpForRetry | S::UpForReschedule)
}

impl Candidates {
    /// Notes that a TaskInstance changed (or was added or removed). Past as many
    /// notes as the run has TaskInstances, filing them all again is as cheap.
    pub(super) fn touch(&mut self, run_size: usize, task_id: &str, map_index: i64) {
        if self.stale {
            return;
        }
        if self.touched.len() >= run_size.max(16) {
            self.rebuild();
            return;
        }
        self.touched.push((task_id.to_owned(), map_index));
    }

    /// Files every TaskInstance again at the next refresh.
    pub(super) fn rebuild(&mut self) {
        self.stale = true;
        self.touched = Vec::new();
    }

    pub(super) fn refresh(
        &mut self,
        spec: &Arc<DagSpec>,
        tis: &BTreeMap<(String, i64), TaskInstance>,
        weights: &[i64],
    ) {
        let place = |task_id: &str, map_index: i64| -> Option<Place> {
            let i = spec.task_position(task_id)?;
            Some((-weights.get(i).copied().unwrap_or_default(), i, map_index))
        };
        let same_spec = self
            .filed_for
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, spec));
        if self.stale || !same_spec {
            self.set = tis
                .values()
                .filter(|ti| is_candidate(ti.state))
                .filter_map(|ti| place(&ti.task_id, ti.map_index))
                .collect();
            self.touched.clear();
            self.stale = false;
            self.filed_for = Some(spec.clone());
            return;
        }
        for (task_id, map_index) in std::mem::take(&mut self.touched) {
            let Some(at) = place(&task_id, map_index) else {
                continue;
            };
            let key = (task_id, map_index);
            match tis.get(&key) {
                Some(ti) if is_candidate(ti.state) => self.set.insert(at),
                _ => self.set.remove(&at),
            };
        }
    }

    /// The first candidate after `after` (from the start when `None`).
    pub fn next_after(&self, after: Option<Place>) -> Option<Place> {
        match after {
            None => self.set.first().copied(),
            Some(p) => self
                .set
                .range((Bound::Excluded(p), Bound::Unbounded))
                .next()
                .copied(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether [`Candidates::refresh`] has anything to do for `spec`.
    pub(super) fn needs_refresh(&self, spec: &Arc<DagSpec>) -> bool {
        self.stale
            || !self.touched.is_empty()
            || !self
                .filed_for
                .as_ref()
                .is_some_and(|f| Arc::ptr_eq(f, spec))
    }
}
