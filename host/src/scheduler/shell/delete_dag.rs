//! A DAG deleted by hand (Airflow's "delete DAG"): every run with what it
//! holds, its backfills, its record, its versions and its users' favorites go. Its file is left
//! alone, so a DAG whose file is still there comes back at the next parse,
//! with no history, as in Airflow.

use super::State;
use crate::metastore::{
    BACKFILLS, DAG_FAVORITES, DAG_VERSION_LIST, DAG_VERSION_NUMBERS, DAG_VERSIONS, DAGS,
    backfill_key, dag_key,
};
use crate::scheduler::{SchedulerError, Update};
use aileron_model::{DagKey, RunKey};
use std::collections::BTreeMap;

impl State {
    /// Deletes DAG `dag_id` of `tenant` and its history; refused while any of
    /// its TaskInstances is queued or running. Answers how many runs went.
    pub(super) fn delete_dag(
        &mut self,
        tenant: &str,
        dag_id: &str,
    ) -> Result<usize, SchedulerError> {
        let dk = DagKey::new(tenant, dag_id);
        if !self.dags.contains_key(&dk) {
            return Err(SchedulerError::DagNotFound(dag_id.to_owned()));
        }
        if self
            .in_flight
            .keys()
            .any(|k| k.tenant == tenant && k.dag_id == dag_id)
        {
            return Err(SchedulerError::InvalidState(format!(
                "TaskInstances of DAG `{dag_id}` are still running; mark them or wait, then delete"
            )));
        }
        // Stored runs, and the newer in-memory state of the active ones.
        let mut runs: BTreeMap<RunKey, crate::metastore::DagRun> = self
            .metastore
            .dag_runs(tenant, dag_id)?
            .into_iter()
            .map(|r| (r.key(), r))
            .collect();
        for (rk, active) in &self.runs {
            if rk.tenant == tenant && rk.dag_id == dag_id {
                runs.insert(rk.clone(), active.run.clone());
            }
        }
        for run in runs.values() {
            self.remove_run(run);
        }
        for b in self.metastore.backfills(tenant, Some(dag_id))? {
            self.untrack_backfill(b.id);
            self.batch.delete(BACKFILLS, backfill_key(tenant, b.id));
        }
        self.dags.remove(&dk);
        self.versions
            .retain(|(t, d, _), _| !(t == tenant && d == dag_id));
        self.version_numbers.remove(&dk);
        let prefix = dag_key(tenant, dag_id);
        self.batch.delete(DAGS, prefix.clone());
        self.batch.delete_prefix(DAG_FAVORITES, prefix.clone());
        self.batch.delete_prefix(DAG_VERSIONS, prefix.clone());
        self.batch
            .delete_prefix(DAG_VERSION_NUMBERS, prefix.clone());
        self.batch.delete_prefix(DAG_VERSION_LIST, prefix);
        self.updates.push(Update::Dags);
        Ok(runs.len())
    }
}
