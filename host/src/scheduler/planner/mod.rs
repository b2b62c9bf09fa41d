//! The scheduler's decisions as pure functions: given a snapshot of the runs in
//! memory and `now`, what should happen next. Nothing here reads the metastore,
//! renders a template, talks to an executor or looks at a clock; the shell
//! (`super::shell`) gathers the inputs, applies the answers and does the I/O. That
//! split is what lets every rule below be unit-tested on plain values.
//!
//! - [`trigger`]: what a task's trigger rule makes of its TaskInstances that have
//!   no state yet;
//! - [`completion`]: whether a run is done, and how it ended;
//! - [`admission`]: which ready TaskInstances are queued, in what order, within
//!   parallelism, run and task caps and pools;
//! - [`candidates`]: each run's TaskInstances admission may queue, kept in its
//!   order as they change, so a turn costs what changed, not the run's size;
//! - [`census`]: each run's TaskInstances counted by state, and the delays they
//!   wait on, kept the same way;
//! - [`timers`]: `dagrun_timeout` and when the scheduler must wake up next.

pub mod admission;
pub mod candidates;
pub mod census;
pub mod completion;
#[cfg(test)]
mod tests;
pub mod timers;
pub mod trigger;

use crate::metastore::{DagRun, TaskInstance};
use aileron_model::DagKey;
use aileron_model::dag::DagSpec;
use candidates::Candidates;
use census::{Census, Tally};
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::{Bound, Deref, DerefMut};
use std::sync::Arc;

/// A DagRun the scheduler holds in memory (running or queued), with the DAG version
/// it runs and all its TaskInstances: the snapshot every decision is made on.
///
/// The TaskInstances are changed only through the methods below, which note what
/// changed for the run's [`Candidates`] and keep its [`Census`]; a change that
/// bypassed them would leave a ready TaskInstance unseen by admission, or the run
/// unfinished.
pub struct ActiveRun {
    pub run: DagRun,
    pub spec: Arc<DagSpec>,
    /// TaskInstances by (task id, map index).
    tis: BTreeMap<(String, i64), TaskInstance>,
    candidates: Candidates,
    census: Census,
}

impl ActiveRun {
    pub fn new(
        run: DagRun,
        spec: Arc<DagSpec>,
        tis: BTreeMap<(String, i64), TaskInstance>,
    ) -> Self {
        ActiveRun {
            run,
            spec,
            census: Census::of(tis.values()),
            tis,
            candidates: Candidates::default(),
        }
    }

    /// TaskInstances by (task id, map index).
    pub fn tis(&self) -> &BTreeMap<(String, i64), TaskInstance> {
        &self.tis
    }

    pub fn ti(&self, task_id: &str, map_index: i64) -> Option<&TaskInstance> {
        self.tis.get(&(task_id, map_index) as &dyn SlotKey)
    }

    /// One TaskInstance to change; the census learns what it became when the
    /// guard is dropped.
    pub fn ti_mut(&mut self, task_id: &str, map_index: i64) -> Option<TiMut<'_>> {
        let run_size = self.tis.len();
        let ti = self.tis.get_mut(&(task_id, map_index) as &dyn SlotKey)?;
        self.candidates.touch(run_size, task_id, map_index);
        Some(TiMut::new(ti, &mut self.census))
    }

    /// Adds or replaces a TaskInstance; the one it replaced.
    pub fn insert_ti(&mut self, ti: TaskInstance) -> Option<TaskInstance> {
        self.candidates
            .touch(self.tis.len(), &ti.task_id, ti.map_index);
        self.census.add(Tally::of(&ti));
        let replaced = self.tis.insert((ti.task_id.clone(), ti.map_index), ti);
        if let Some(old) = &replaced {
            self.census.remove(Tally::of(old));
        }
        replaced
    }

    pub fn remove_ti(&mut self, task_id: &str, map_index: i64) -> Option<TaskInstance> {
        self.candidates.touch(self.tis.len(), task_id, map_index);
        let removed = self.tis.remove(&(task_id, map_index) as &dyn SlotKey);
        if let Some(old) = &removed {
            self.census.remove(Tally::of(old));
        }
        removed
    }

    /// Changes every TaskInstance with `change` (clearing, recovery, the end of a
    /// run): the census is counted again and the candidates are rebuilt at the
    /// next admission.
    pub fn update_tis(&mut self, change: impl FnMut(&mut TaskInstance)) {
        self.candidates.rebuild();
        self.tis.values_mut().for_each(change);
        self.census = Census::of(self.tis.values());
    }

    /// The run's TaskInstances counted by state.
    pub fn census(&self) -> &Census {
        &self.census
    }

    /// Brings the candidates up to date with what changed since the last call;
    /// `weights` are the effective priority weights of `spec`'s tasks, in order.
    pub fn refresh_candidates(&mut self, weights: &mut admission::Weights) {
        if self.candidates.needs_refresh(&self.spec) {
            let weights = weights.of(DagKey::new(&self.run.tenant, &self.run.dag_id), &self.spec);
            self.candidates.refresh(&self.spec, &self.tis, weights);
        }
    }

    /// The candidates, in admission order within the run.
    pub fn candidates(&self) -> &Candidates {
        &self.candidates
    }

    /// Every TaskInstance (all map indexes) of one task. Called for every task
    /// of a run on each evaluation, so its bounds borrow `task_id` rather than
    /// copy it (see [`SlotKey`]).
    pub fn tis_of<'a>(&'a self, task_id: &'a str) -> impl Iterator<Item = &'a TaskInstance> + 'a {
        let (low, high) = ((task_id, i64::MIN), (task_id, i64::MAX));
        self.tis
            .range::<dyn SlotKey + '_, _>((
                Bound::Included(&low as &dyn SlotKey),
                Bound::Included(&high as &dyn SlotKey),
            ))
            .map(|(_, ti)| ti)
    }
}

/// A TaskInstance of an [`ActiveRun`] borrowed to change. Dropping it tells the
/// run's census the state it left and the state it is in now.
pub struct TiMut<'a> {
    ti: &'a mut TaskInstance,
    census: &'a mut Census,
    was: Tally,
}

impl<'a> TiMut<'a> {
    fn new(ti: &'a mut TaskInstance, census: &'a mut Census) -> Self {
        let was = Tally::of(ti);
        TiMut { ti, census, was }
    }
}

impl TiMut<'_> {
    /// Ends the change: the TaskInstance as it now is, and the run free again.
    pub fn done(self) -> TaskInstance {
        self.ti.clone()
    }
}

impl Deref for TiMut<'_> {
    type Target = TaskInstance;
    fn deref(&self) -> &TaskInstance {
        self.ti
    }
}

impl DerefMut for TiMut<'_> {
    fn deref_mut(&mut self) -> &mut TaskInstance {
        self.ti
    }
}

impl Drop for TiMut<'_> {
    fn drop(&mut self) {
        let now = Tally::of(self.ti);
        if now != self.was {
            self.census.remove(self.was);
            self.census.add(now);
        }
    }
}

/// A TaskInstance's place in [`ActiveRun::tis`], `(task id, map index)`, owned or
/// borrowed: what lets a range over the map be bounded by a `&str` without
/// building `String` keys. Ordered exactly as the owned tuple is.
pub trait SlotKey {
    fn task_id(&self) -> &str;
    fn map_index(&self) -> i64;
}

impl SlotKey for (String, i64) {
    fn task_id(&self) -> &str {
        &self.0
    }
    fn map_index(&self) -> i64 {
        self.1
    }
}

impl SlotKey for (&str, i64) {
    fn task_id(&self) -> &str {
        self.0
    }
    fn map_index(&self) -> i64 {
        self.1
    }
}

impl<'a> Borrow<dyn SlotKey + 'a> for (String, i64) {
    fn borrow(&self) -> &(dyn SlotKey + 'a) {
        self
    }
}

impl PartialEq for dyn SlotKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn SlotKey + '_ {}

impl PartialOrd for dyn SlotKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn SlotKey + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.task_id(), self.map_index()).cmp(&(other.task_id(), other.map_index()))
    }
}
