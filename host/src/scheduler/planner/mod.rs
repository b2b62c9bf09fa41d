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
//! - [`timers`]: `dagrun_timeout` and when the scheduler must wake up next.

pub mod admission;
pub mod completion;
#[cfg(test)]
mod tests;
pub mod timers;
pub mod trigger;

use crate::metastore::{DagRun, TaskInstance};
use aileron_model::dag::DagSpec;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// A DagRun the scheduler holds in memory (running or queued), with the DAG version
/// it runs and all its TaskInstances: the snapshot every decision is made on.
pub struct ActiveRun {
    pub run: DagRun,
    pub spec: Arc<DagSpec>,
    /// TaskInstances by (task id, map index).
    pub tis: BTreeMap<(String, i64), TaskInstance>,
}

impl ActiveRun {
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
