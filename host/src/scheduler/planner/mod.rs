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
use std::collections::BTreeMap;
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
    /// Every TaskInstance (all map indexes) of one task.
    pub fn tis_of<'a>(&'a self, task_id: &'a str) -> impl Iterator<Item = &'a TaskInstance> + 'a {
        self.tis
            .range((task_id.to_owned(), i64::MIN)..=(task_id.to_owned(), i64::MAX))
            .map(|(_, ti)| ti)
    }
}
