//! Runs in logical-date order, and what depends on it: `depends_on_past` and
//! `wait_for_downstream` (Airflow's `PrevDagrunDep`), and the one-run-per-date rule
//! that keeps the normal schedule and backfills from duplicating runs.

use super::*;

/// Every run of one DAG by (logical date, creation order): run id and type.
pub(super) type RunDates = BTreeMap<(Timestamp, u64), (String, RunType)>;

impl State {
    pub(super) fn index_run(&mut self, run: &DagRun) {
        self.run_dates
            .entry(DagKey::new(&run.tenant, &run.dag_id))
            .or_default()
            .insert(
                (run.logical_date, run.seq),
                (run.run_id.clone(), run.run_type),
            );
    }

    pub(super) fn unindex_run(&mut self, run: &DagRun) {
        if let Some(index) = self
            .run_dates
            .get_mut(&DagKey::new(&run.tenant, &run.dag_id))
        {
            index.remove(&(run.logical_date, run.seq));
        }
    }

    /// A run of the DAG at exactly this logical date, if there is one.
    pub(super) fn run_at(&self, dk: &DagKey, date: Timestamp) -> Option<&str> {
        self.run_dates
            .get(dk)?
            .range((date, 0)..=(date, u64::MAX))
            .next()
            .map(|(_, (id, _))| id.as_str())
    }

    /// The run `depends_on_past` looks at: the latest with an earlier logical date;
    /// with `catchup`, manual runs do not count (Airflow's
    /// `get_previous_scheduled_dagrun`).
    fn previous_run(&self, rk: &RunKey) -> Option<String> {
        let run = &self.runs.get(rk)?.run;
        let catchup = self.runs[rk].spec.catchup;
        self.run_dates
            .get(&rk.dag())?
            .range(..(run.logical_date, 0))
            .rev()
            .find(|(_, (_, t))| !catchup || *t != RunType::Manual)
            .map(|(_, (id, _))| id.clone())
    }

    /// States of every TaskInstance of `task_id` in another run of the same DAG.
    fn states_in(&self, rk: &RunKey, run_id: &str, task_id: &str) -> Vec<S> {
        let key = RunKey::new(&rk.tenant, &rk.dag_id, run_id);
        if let Some(r) = self.known_run(&key) {
            return r.tis_of(task_id).map(|t| t.state).collect();
        }
        match self
            .metastore
            .task_instances_of(&rk.tenant, &rk.dag_id, run_id, task_id)
        {
            Ok(tis) => tis.into_iter().map(|t| t.state).collect(),
            Err(e) => {
                tracing::error!("cannot read the previous run's TaskInstances: {e}");
                Vec::new()
            }
        }
    }

    /// Whether `task` may run in this run as far as the previous run goes. With no
    /// previous run, or as the first run of a backfill, it may. Otherwise every
    /// TaskInstance of the task there (all map indexes) must be success or
    /// skipped, and none missing; with `wait_for_downstream`, so must those of its
    /// direct downstream tasks.
    pub(super) fn past_allows(&self, rk: &RunKey, task: &TaskSpec) -> bool {
        if !task.depends_on_past {
            return true;
        }
        if self.is_first_of_backfill(rk) {
            return true;
        }
        let Some(prev) = self.previous_run(rk) else {
            return true;
        };
        let done = |states: &[S]| {
            !states.is_empty() && states.iter().all(|s| matches!(s, S::Success | S::Skipped))
        };
        if !done(&self.states_in(rk, &prev, &task.task_id)) {
            return false;
        }
        !task.wait_for_downstream
            || task
                .downstream
                .iter()
                .all(|d| done(&self.states_in(rk, &prev, d)))
    }

    /// Runs whose DAG had TaskInstances finish this turn may now pass their
    /// `depends_on_past` checks: look at them again.
    pub(super) fn wake_runs_waiting_on_past(&mut self) {
        if self.finished_in.is_empty() {
            return;
        }
        let dags = std::mem::take(&mut self.finished_in);
        for (rk, run) in &self.runs {
            if run.run.state == DagRunState::Running
                && dags.contains(&rk.dag())
                && run.spec.tasks.iter().any(|t| t.depends_on_past)
                && run.tis.values().any(|ti| ti.state == S::NoStatus)
            {
                self.dirty_runs.insert(rk.clone());
            }
        }
    }
}
