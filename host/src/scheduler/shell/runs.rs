//! DagRuns: creating them (triggered, scheduled, backfilled), the planning pass that
//! starts queued ones within `max_active_runs`, and ending them (finished,
//! deadlocked, timed out), pausing a DAG after too many consecutive failures.

use super::callbacks::Event;
use super::{Expected, State, new_ti};
use crate::metastore::{DagRun, RunType};
use crate::scheduler::planner::ActiveRun;
use crate::scheduler::planner::completion::{RunOutcome, run_outcome};
use crate::scheduler::planner::timers::timed_out_runs;
use crate::scheduler::{SchedulerError, Update, run_id_for};
use aileron_model::schedule::DataInterval;
use aileron_model::{DagKey, DagRunState, RunKey, TaskInstanceState as S, TiKey};
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};

impl State {
    /// Creates a DagRun and its TaskInstances.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_run(
        &mut self,
        tenant: &str,
        dag_id: &str,
        run_type: RunType,
        run_id: Option<String>,
        logical_date: Option<Timestamp>,
        interval: Option<aileron_model::schedule::DataInterval>,
        conf: serde_json::Map<String, serde_json::Value>,
    ) -> Result<DagRun, SchedulerError> {
        let now = self.now();
        let entry = self
            .dags
            .get(&DagKey::new(tenant, dag_id))
            .filter(|d| d.record.is_active)
            .ok_or_else(|| SchedulerError::DagNotFound(dag_id.to_owned()))?;
        let spec = entry.spec.clone();
        // Typed params are checked now, so a bad conf is refused at trigger time
        // rather than failing tasks later.
        spec.resolve_params(&conf)
            .map_err(SchedulerError::BadConf)?;
        // Airflow keeps dates to the microsecond; so do run ids made from them.
        let logical_date = logical_date
            .unwrap_or(now)
            .round(jiff::Unit::Microsecond)
            .unwrap_or(now);
        let interval = match interval {
            Some(i) => i,
            None => spec
                .schedule
                .manual_interval(&spec.schedule_context(), logical_date),
        };
        let run_id = run_id.unwrap_or_else(|| run_id_for(run_type, logical_date));
        if run_id.is_empty() || run_id.len() > 250 || run_id.contains('\0') {
            return Err(SchedulerError::BadConf(
                "dag_run_id must be 1 to 250 characters".to_owned(),
            ));
        }
        let rk = RunKey::new(tenant, dag_id, &run_id);
        if self.runs.contains_key(&rk) || self.metastore.dag_run(tenant, dag_id, &run_id)?.is_some()
        {
            return Err(SchedulerError::RunExists {
                dag_id: dag_id.to_owned(),
                run_id,
            });
        }
        let run = DagRun {
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
            run_id: run_id.clone(),
            run_type,
            state: DagRunState::Queued,
            logical_date,
            data_interval: interval,
            conf,
            dag_version: spec.version.clone(),
            queued_at: now,
            start_date: None,
            end_date: None,
            seq: self.next_seq,
            backfill_id: None,
        };
        self.next_seq += 1;
        let mut tis = BTreeMap::new();
        for task in &spec.tasks {
            let ti = new_ti(&run, task, -1, &self.config.hostname);
            self.batch.put_ti(&ti);
            tis.insert((task.task_id.clone(), -1), ti);
        }
        self.batch.put_run(&run);
        self.updates.push(Update::DagRun {
            tenant: run.tenant.clone(),
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            state: run.state,
        });
        self.dirty_runs.insert(rk.clone());
        self.runs.insert(rk, ActiveRun::new(run.clone(), spec, tis));
        Ok(run)
    }

    /// One planning pass: new scheduled runs, starting queued runs, timeouts,
    /// trigger rules, finished runs, and admission of ready TaskInstances.
    pub(in crate::scheduler) fn plan(&mut self) {
        let now = self.now();
        self.planned_at = now;
        self.apply_retention(now);
        self.charge_running(now);
        // A run that finishes in this pass frees a place under `max_active_runs`
        // (the DAG's or a backfill's): go round again so the next run is created
        // and started now, not whenever the next command happens to arrive.
        for _ in 0..4 {
            let finished_before = self.finished_this_turn.len();
            if self.config.create_scheduled_runs {
                self.create_scheduled_runs(now);
            }
            self.start_queued_runs(now);
            self.time_out_runs(now);
            // Evaluating a run can finish TaskInstances that other runs of the same
            // DAG wait on (depends_on_past), so go round until nothing new is dirty.
            for _ in 0..8 {
                self.wake_runs_waiting_on_past();
                if self.dirty_runs.is_empty() {
                    break;
                }
                let dirty: Vec<RunKey> = self.dirty_runs.drain().collect();
                for rk in dirty {
                    self.evaluate_run(&rk, now);
                }
            }
            if self.finished_this_turn.len() == finished_before {
                break;
            }
        }
        self.complete_backfills(now);
        self.admit(now);
    }

    fn create_scheduled_runs(&mut self, now: Timestamp) {
        let keys: Vec<DagKey> = self.dags.keys().cloned().collect();
        for dk in keys {
            while let Some(entry) = self.dags.get(&dk).expected("the DAG", &dk) {
                if entry.record.is_paused || !entry.record.is_active {
                    break;
                }
                let spec = entry.spec.clone();
                let next = spec.schedule.next_dagrun(
                    &spec.schedule_context(),
                    entry.record.last_scheduled_interval.as_ref(),
                    now,
                );
                let Some(interval) = next else {
                    self.set_next_due(&dk, None);
                    break;
                };
                let due = interval.end.max(interval.start);
                if due > now {
                    self.set_next_due(&dk, Some(due));
                    break;
                }
                // Only for a DAG with a run due: `runs` is keyed by DAG first, so
                // this reads its runs alone. Backfill runs have their own
                // `max_active_runs` (as in Airflow).
                let active = self
                    .runs
                    .range(RunKey::new(&dk.tenant, &dk.dag_id, "")..)
                    .take_while(|(k, _)| k.tenant == dk.tenant && k.dag_id == dk.dag_id)
                    .filter(|(_, r)| r.run.backfill_id.is_none())
                    .count();
                if active >= spec.max_active_runs as usize {
                    self.set_next_due(&dk, None);
                    break;
                }
                if self.run_at(&dk, interval.start).is_some() {
                    // A backfill or a manual run already covers this date: Airflow
                    // keeps one run per logical date and moves on.
                    self.set_last_scheduled(&dk, interval);
                    continue;
                }
                let run_id = run_id_for(RunType::Scheduled, interval.start);
                let created = self.create_run(
                    &dk.tenant,
                    &dk.dag_id,
                    RunType::Scheduled,
                    Some(run_id),
                    Some(interval.start),
                    Some(interval),
                    serde_json::Map::new(),
                );
                self.set_last_scheduled(&dk, interval);
                if let Err(e) = created
                    && !matches!(e, SchedulerError::RunExists { .. })
                {
                    tracing::warn!(dag_id = %dk.dag_id, "could not create a scheduled run: {e}");
                    break;
                }
            }
        }
    }

    /// Caches when a DAG's next scheduled run is due (see `next_timer`).
    fn set_next_due(&mut self, dk: &DagKey, due: Option<Timestamp>) {
        if let Some(entry) = self.dags.get_mut(dk).expected("the DAG", dk) {
            entry.next_due = due;
        }
    }

    /// Records the data interval a DAG's schedule has reached.
    fn set_last_scheduled(&mut self, dk: &DagKey, interval: DataInterval) {
        if let Some(entry) = self.dags.get_mut(dk).expected("the DAG", dk) {
            entry.record.last_scheduled_interval = Some(interval);
            self.batch.put_dag(&entry.record);
        }
    }

    /// Starts queued runs, oldest logical date first: a DAG's own runs within its
    /// `max_active_runs`, a backfill's runs in the backfill's order within the
    /// backfill's `max_active_runs` (and not while it is paused). Nothing of a
    /// paused DAG starts.
    fn start_queued_runs(&mut self, now: Timestamp) {
        let mut running: HashMap<DagKey, usize> = HashMap::new();
        let mut running_backfill: HashMap<u64, u32> = HashMap::new();
        for r in self.runs.values() {
            if r.run.state == DagRunState::Running {
                match self.backfill_slot(&r.run) {
                    Some((id, ..)) => *running_backfill.entry(id).or_default() += 1,
                    None => {
                        *running
                            .entry(DagKey::new(&r.run.tenant, &r.run.dag_id))
                            .or_default() += 1
                    }
                }
            }
        }
        let mut queued: Vec<(bool, usize, Timestamp, u64, RunKey)> = self
            .runs
            .iter()
            .filter(|(_, r)| r.run.state == DagRunState::Queued)
            .map(|(k, r)| {
                let ordinal = self.backfill_slot(&r.run).map(|s| s.3);
                (
                    ordinal.is_some(),
                    ordinal.unwrap_or(0),
                    r.run.logical_date,
                    r.run.seq,
                    k.clone(),
                )
            })
            .collect();
        queued.sort();
        for (.., rk) in queued {
            let Some(queued_run) = self.runs.get(&rk).expected("a queued run", &rk) else {
                continue;
            };
            let dk = rk.dag();
            let (paused, max) = match self.dags.get(&dk) {
                Some(d) => (d.record.is_paused, d.spec.max_active_runs as usize),
                None => (false, queued_run.spec.max_active_runs as usize),
            };
            if paused {
                continue;
            }
            match self.backfill_slot(&queued_run.run) {
                Some((id, backfill_paused, max_backfill, _)) => {
                    let n = running_backfill.entry(id).or_default();
                    if backfill_paused || *n >= max_backfill {
                        continue;
                    }
                    *n += 1;
                }
                None => {
                    let n = running.entry(dk).or_default();
                    if *n >= max {
                        continue;
                    }
                    *n += 1;
                }
            }
            let Some(r) = self.runs.get_mut(&rk).expected("a queued run", &rk) else {
                continue;
            };
            r.run.state = DagRunState::Running;
            r.run.start_date = Some(now);
            let run = r.run.clone();
            self.batch.put_run(&run);
            self.push_run_update(&run);
            self.dirty_runs.insert(rk.clone());
            // This run's trigger rules must be evaluated in this same pass.
            self.evaluate_run(&rk, now);
        }
    }

    pub(super) fn push_run_update(&mut self, run: &DagRun) {
        self.updates.push(Update::DagRun {
            tenant: run.tenant.clone(),
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            state: run.state,
        });
    }

    pub(super) fn maybe_finish_run(&mut self, rk: &RunKey, now: Timestamp) {
        let Some(run) = self.runs.get(rk) else { return };
        let (state, deadlocked) = match run_outcome(run, self.dirty_runs.contains(rk)) {
            RunOutcome::Continue => return,
            RunOutcome::Finished(state) => (state, false),
            RunOutcome::Deadlocked => (DagRunState::Failed, true),
        };
        if deadlocked {
            // Nothing runs and nothing can: Airflow fails the run rather than leave
            // it running forever.
            tracing::warn!(run_id = %rk.run_id, dag_id = %rk.dag_id, "deadlock: no task can run; failing the run");
            let mut changed = Vec::new();
            if let Some(run) = self.runs.get_mut(rk) {
                run.update_tis(|ti| {
                    if ti.state == S::NoStatus {
                        ti.state = S::UpstreamFailed;
                        changed.push(ti.clone());
                    }
                });
            }
            for ti in changed {
                self.batch.put_ti(&ti);
                self.push_ti_update(&ti);
            }
        }
        self.end_run(rk, state, now);
        match (state, deadlocked) {
            (DagRunState::Success, _) => self.fire_dag_callbacks(rk, Event::Success, "success"),
            (_, true) => self.fire_dag_callbacks(rk, Event::Failure, "all_tasks_deadlocked"),
            (_, false) => {
                self.fire_dag_callbacks(rk, Event::Failure, "task_failure");
                self.check_consecutive_failures(rk);
            }
        }
        self.retire_run(rk);
    }

    /// Takes a finished run out of memory, keeping it readable until the commit.
    pub(super) fn retire_run(&mut self, rk: &RunKey) {
        if let Some(run) = self.runs.remove(rk) {
            self.finished_this_turn.insert(rk.clone(), run);
        }
    }

    /// Sets a run's final state (it stays in `runs` for the caller to fire
    /// callbacks, then remove it).
    pub(super) fn end_run(&mut self, rk: &RunKey, state: DagRunState, now: Timestamp) {
        let Some(active) = self.runs.get_mut(rk).expected("the run to end", rk) else {
            return;
        };
        active.run.state = state;
        active.run.end_date = Some(now);
        let run = active.run.clone();
        self.batch.put_run(&run);
        self.push_run_update(&run);
    }

    /// Airflow's `max_consecutive_failed_dag_runs`: after a run fails on a task
    /// failure, the DAG is paused if its latest N runs (any type, latest logical
    /// date first) all failed.
    fn check_consecutive_failures(&mut self, rk: &RunKey) {
        let dk = rk.dag();
        let Some(run) = self.runs.get(rk).expected("the failed run", rk) else {
            return;
        };
        let Some(n) = run.spec.max_consecutive_failed_dag_runs else {
            return;
        };
        let latest = self.latest_runs(&dk, None, n as usize, |_| true);
        if latest.len() < n as usize {
            return;
        }
        // Runs that failed earlier in this same turn are only in memory yet.
        let all_failed = latest.iter().all(|run_id| {
            let key = RunKey::new(&rk.tenant, &rk.dag_id, run_id);
            self.run_state(&key).ok().flatten() == Some(DagRunState::Failed)
        });
        if all_failed
            && let Some(d) = self.dags.get_mut(&dk)
            && !d.record.is_paused
        {
            tracing::warn!(dag_id = %dk.dag_id, "pausing the DAG: its last {n} runs failed (max_consecutive_failed_dag_runs)");
            d.record.is_paused = true;
            self.batch.put_dag(&d.record);
            self.updates.push(Update::Dags);
        }
    }

    /// Airflow's `dagrun_timeout`: a running run (of an unpaused DAG) that has
    /// been running longer fails; its unfinished TaskInstances, running ones
    /// included, become `skipped`; the DAG's `on_failure` fires with `timed_out`.
    fn time_out_runs(&mut self, now: Timestamp) {
        let due = timed_out_runs(&self.runs, |rk| self.is_paused(&rk.tenant, &rk.dag_id), now);
        for rk in due {
            tracing::warn!(dag_id = %rk.dag_id, run_id = %rk.run_id, "the run exceeded its dagrun_timeout; failing it");
            let Some(run) = self.runs.get(&rk).expected("the timed-out run", &rk) else {
                continue;
            };
            let keys: Vec<TiKey> = run
                .tis()
                .values()
                .filter(|ti| !ti.state.is_finished())
                .map(TiKey::from)
                .collect();
            for key in keys {
                self.force_state(&key, S::Skipped, now);
            }
            self.end_run(&rk, DagRunState::Failed, now);
            self.fire_dag_callbacks(&rk, Event::Failure, "timed_out");
            self.retire_run(&rk);
            self.dirty_runs.remove(&rk);
        }
    }
}
