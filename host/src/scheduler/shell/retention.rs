//! History retention in the scheduler: expired runs (see
//! `Metastore::expired_runs`) deleted one chunk per turn, for `db clean` and for
//! the `retention` setting, through the same path as deleting one run so the
//! runs in memory and the indexes follow.

use super::State;
use crate::scheduler::SchedulerError;
use aileron_model::RunKey;
use jiff::{SignedDuration, Timestamp};

/// What one chunk of a clean-up deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanChunk {
    pub dag_runs: usize,
    pub task_instances: usize,
    /// More expired runs may remain: ask again (after this chunk's commit).
    pub more: bool,
}

/// How often the retention setting looks for expired runs.
const RETENTION_EVERY: SignedDuration = SignedDuration::from_hours(1);

/// Runs one retention turn deletes, so that a first clean-up of a long history
/// holds up the scheduler a few milliseconds per turn, never seconds.
const RETENTION_CHUNK: usize = 500;

impl State {
    /// Deletes up to `limit` expired runs of `tenant` (every tenant when `None`).
    /// The caller must let this turn commit before asking for the next chunk: the
    /// search reads the metastore, which sees the deletions only then.
    pub(super) fn clean_history(
        &mut self,
        tenant: Option<&str>,
        before: Timestamp,
        limit: usize,
    ) -> Result<CleanChunk, SchedulerError> {
        let expired = self.metastore.expired_runs(tenant, before, limit)?;
        let mut chunk = CleanChunk::default();
        for e in &expired {
            let r = &e.run;
            let rk = RunKey::new(&r.tenant, &r.dag_id, &r.run_id);
            // Cleared since it was stored (this turn, not committed yet): it is
            // running again, not history.
            if self
                .runs
                .get(&rk)
                .is_some_and(|a| !a.run.state.is_finished())
                || self.deleted_this_turn.contains(&rk)
            {
                continue;
            }
            self.remove_run(r);
            chunk.dag_runs += 1;
            chunk.task_instances += e.task_instances;
        }
        if chunk.dag_runs > 0 {
            // One "DAGs changed" for the chunk, not one per run.
            self.updates.push(crate::scheduler::Update::Dags);
        }
        chunk.more = expired.len() == limit && chunk.dag_runs > 0;
        Ok(chunk)
    }

    /// The retention setting's share of a turn: a chunk of expired runs when the
    /// hourly check is due, and the next chunk at once while there are more.
    pub(super) fn apply_retention(&mut self, now: Timestamp) {
        let Some(keep) = self.config.retention else {
            return;
        };
        if now < self.next_clean {
            return;
        }
        let Ok(before) = SignedDuration::try_from(keep).and_then(|k| now.checked_sub(k)) else {
            tracing::error!("history retention {keep:?} is out of range; nothing is cleaned");
            self.next_clean = Timestamp::MAX;
            return;
        };
        match self.clean_history(None, before, RETENTION_CHUNK) {
            Ok(chunk) => {
                if chunk.dag_runs > 0 {
                    tracing::info!(
                        dag_runs = chunk.dag_runs,
                        task_instances = chunk.task_instances,
                        "history retention deleted runs finished before {before}"
                    );
                }
                self.next_clean = if chunk.more {
                    now
                } else {
                    now.checked_add(RETENTION_EVERY).unwrap_or(Timestamp::MAX)
                };
            }
            Err(e) => {
                tracing::error!("history retention failed, retrying in an hour: {e}");
                self.next_clean = now.checked_add(RETENTION_EVERY).unwrap_or(Timestamp::MAX);
            }
        }
    }

    /// When the retention setting next wants a turn, if it is set.
    pub(super) fn retention_timer(&self) -> Option<Timestamp> {
        self.config.retention.map(|_| self.next_clean)
    }
}
