//! Runs in logical-date order, and what depends on it: `depends_on_past` and
//! `wait_for_downstream` (Airflow's `PrevDagrunDep`), and the one-run-per-date rule
//! that keeps the normal schedule and backfills from duplicating runs.

use super::*;

/// A run as the date lookups see it: (logical date, creation order), id, type.
type Dated = ((Timestamp, u64), String, RunType);

impl State {
    /// Forgets a run deleted in this turn: until the commit the metastore's run
    /// index still lists it, and the lookups below must not.
    pub(super) fn forget_run(&mut self, run: &DagRun) {
        self.deleted_this_turn.insert(run.key());
    }

    /// The runs of one DAG this process holds in memory: every run not committed
    /// yet is among them, and their state and type are newer than the store's.
    fn runs_in_memory(&self, dk: &DagKey) -> impl Iterator<Item = Dated> + '_ {
        let dk = dk.clone();
        self.runs
            .iter()
            .chain(self.finished_this_turn.iter())
            .filter(move |(rk, _)| rk.tenant == dk.tenant && rk.dag_id == dk.dag_id)
            .map(|(_, r)| {
                (
                    (r.run.logical_date, r.run.seq),
                    r.run.run_id.clone(),
                    r.run.run_type,
                )
            })
    }

    /// Whether a stored index entry still counts: not deleted this turn.
    fn stored_live(&self, dk: &DagKey, run_id: &str) -> bool {
        self.deleted_this_turn.is_empty()
            || !self
                .deleted_this_turn
                .contains(&RunKey::new(&dk.tenant, &dk.dag_id, run_id))
    }

    /// The type a run has now: from memory when it is there.
    fn run_type_now(&self, dk: &DagKey, run_id: &str, stored: &str) -> Option<RunType> {
        let key = RunKey::new(&dk.tenant, &dk.dag_id, run_id);
        if let Some(r) = self.known_run(&key) {
            return Some(r.run.run_type);
        }
        [RunType::Manual, RunType::Scheduled, RunType::Backfill]
            .into_iter()
            .find(|t| t.as_str() == stored)
    }

    /// A run of the DAG at exactly this logical date, if there is one.
    pub(super) fn run_at(&self, dk: &DagKey, date: Timestamp) -> Option<String> {
        if let Some((_, id, _)) = self.runs_in_memory(dk).find(|((d, _), ..)| *d == date) {
            return Some(id);
        }
        match self.metastore.runs_at(&dk.tenant, &dk.dag_id, date) {
            Ok(found) => found
                .into_iter()
                .find(|e| self.stored_live(dk, &e.run_id))
                .map(|e| e.run_id),
            Err(e) => {
                tracing::error!("cannot read the run index: {e}");
                None
            }
        }
    }

    /// Up to `n` runs of the DAG before `before` (all dates when `None`), latest
    /// logical date first, that `accept` takes (it sees each run's current type).
    pub(super) fn latest_runs(
        &self,
        dk: &DagKey,
        before: Option<Timestamp>,
        n: usize,
        accept: impl Fn(RunType) -> bool,
    ) -> Vec<String> {
        let in_range = |d: Timestamp| before.is_none_or(|b| d < b);
        let mut found: Vec<Dated> = self
            .runs_in_memory(dk)
            .filter(|((d, _), _, t)| in_range(*d) && accept(*t))
            .collect();
        let mut from_store = Vec::new();
        let read = self
            .metastore
            .runs_before(&dk.tenant, &dk.dag_id, before, |e| {
                from_store.push(e);
                // Enough once `n` are taken; a few extra cover entries skipped
                // below (deleted this turn, or of another type now).
                from_store.len() < n + self.deleted_this_turn.len() + 64
            });
        if let Err(e) = read {
            tracing::error!("cannot read the run index: {e}");
        }
        for e in from_store {
            if !self.stored_live(dk, &e.run_id) || found.iter().any(|(_, id, _)| *id == e.run_id) {
                continue;
            }
            let key = RunKey::new(&dk.tenant, &dk.dag_id, &e.run_id);
            if self.known_run(&key).is_some() {
                // Already counted from memory (and filtered by its current type).
                continue;
            }
            let Some(t) = self.run_type_now(dk, &e.run_id, &e.run_type) else {
                continue;
            };
            if !accept(t) {
                continue;
            }
            found.push(((e.logical_date, e.seq), e.run_id, t));
        }
        found.sort_by_key(|d| std::cmp::Reverse(d.0));
        found.truncate(n);
        found.into_iter().map(|(_, id, _)| id).collect()
    }

    /// The run `depends_on_past` looks at: the latest with an earlier logical date;
    /// with `catchup`, manual runs do not count (Airflow's
    /// `get_previous_scheduled_dagrun`).
    fn previous_run(&self, rk: &RunKey) -> Option<String> {
        let active = self.runs.get(rk)?;
        let catchup = active.spec.catchup;
        self.latest_runs(&rk.dag(), Some(active.run.logical_date), 1, |t| {
            !catchup || t != RunType::Manual
        })
        .pop()
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
                && run.tis().values().any(|ti| ti.state == S::NoStatus)
            {
                self.dirty_runs.insert(rk.clone());
            }
        }
    }
}
