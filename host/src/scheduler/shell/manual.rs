//! Changes people make by hand (Airflow's Clear, Mark success/failed, DagRun state,
//! delete), applied by the scheduler like every other change: in memory, then in
//! the turn's one commit.

use super::*;
use crate::metastore::{DAG_RUNS, LOGS, TASK_INSTANCES, XCOM, run_key, ti_key};
use crate::scheduler::{ClearOptions, TaskTarget};
use crate::sync::LockExt;
use std::collections::BTreeSet;

impl State {
    /// Brings a run into memory (a finished one too) and returns its key and
    /// whether it was already there.
    fn activate(
        &mut self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
    ) -> Result<(RunKey, bool), SchedulerError> {
        let rk = RunKey::new(tenant, dag_id, run_id);
        if self.runs.contains_key(&rk) {
            return Ok((rk, true));
        }
        if let Some(run) = self.finished_this_turn.remove(&rk) {
            // Finished in this very turn: memory is newer than the metastore.
            self.runs.insert(rk.clone(), run);
            return Ok((rk, false));
        }
        let not_found = || SchedulerError::RunNotFound {
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
        };
        let run = self
            .metastore
            .dag_run(tenant, dag_id, run_id)?
            .ok_or_else(not_found)?;
        let spec = self
            .spec(tenant, dag_id, &run.dag_version)?
            .ok_or_else(|| {
                SchedulerError::InvalidState(format!(
                    "the DAG version `{}` of this run is gone",
                    run.dag_version
                ))
            })?;
        let tis = self
            .metastore
            .task_instances(tenant, dag_id, run_id)?
            .into_iter()
            .map(|ti| ((ti.task_id.clone(), ti.map_index), ti))
            .collect();
        self.runs.insert(rk.clone(), ActiveRun::new(run, spec, tis));
        Ok((rk, false))
    }

    /// Puts a run that was only brought in to be looked at back out of memory.
    fn deactivate_unchanged(&mut self, rk: &RunKey, was_active: bool) {
        if !was_active {
            self.retire_run(rk);
        }
    }

    /// The named tasks plus, as asked, everything downstream or upstream of them.
    fn select_tasks(
        &self,
        rk: &RunKey,
        ids: &[String],
        downstream: bool,
        upstream: bool,
    ) -> Result<BTreeSet<String>, SchedulerError> {
        let spec = &self
            .runs
            .get(rk)
            .expected("the run to select tasks in", rk)
            .ok_or_else(internal_error)?
            .spec;
        let mut out = BTreeSet::new();
        for id in ids {
            if spec.task(id).is_none() {
                return Err(SchedulerError::TaskNotFound {
                    dag_id: rk.dag_id.clone(),
                    run_id: rk.run_id.clone(),
                    task_id: id.clone(),
                });
            }
            out.insert(id.clone());
            if downstream {
                out.extend(spec.relatives(id, false).into_iter().map(str::to_owned));
            }
            if upstream {
                out.extend(spec.relatives(id, true).into_iter().map(str::to_owned));
            }
        }
        Ok(out)
    }

    /// Stops tracking a TaskInstance's current try and cancels it in the executor:
    /// its late report, if any, is then ignored as stale.
    pub(super) fn forget_in_flight(&mut self, key: &TiKey) {
        if let Some((try_number, attempt)) = self.in_flight.remove(key) {
            self.executor.cancel(key, try_number, attempt);
            // What it used so far is its tenant's to pay, if it had started.
            let ran = self.ti(key).map(|ti| ti.state == S::Running);
            let now = self.now();
            self.settle(key, attempt, now, None, ran);
            let live = self.live_logs.locked().remove(&(key.clone(), try_number));
            // What the try logged before it was stopped stays readable, as in
            // Airflow, where a task marked while running keeps its log.
            if let Some(log) = live
                && !log.is_empty()
                && let Some(ti) = self.ti(key)
            {
                let mut text = log.snapshot();
                text.push_str(&format!(
                    "[{}] WARNING the try was stopped: its TaskInstance was cleared, marked or deleted\n",
                    self.now()
                ));
                self.batch.put_raw(
                    crate::metastore::LOGS,
                    crate::metastore::log_key(ti, try_number),
                    text.into_bytes(),
                );
            }
        }
    }

    /// Ends a TaskInstance in `state` without running it further: its try, if one
    /// is in flight, is cancelled.
    pub(super) fn force_state(&mut self, key: &TiKey, state: S, now: Timestamp) {
        self.forget_in_flight(key);
        let Some(mut ti) = self
            .runs
            .get_mut(&key.run_key())
            .and_then(|r| r.ti_mut(&key.task_id, key.map_index))
        else {
            return;
        };
        ti.state = state;
        ti.end_date = Some(now);
        ti.next_try_at = None;
        let ti = ti.done();
        self.batch.put_ti(&ti);
        self.push_ti_update(&ti);
    }

    /// A run whose TaskInstances were changed by hand is planned again: a finished
    /// one is re-finished from its leaves, a live one goes on.
    fn replan(&mut self, rk: &RunKey) {
        let Some(run) = self.runs.get_mut(rk).expected("the run to plan again", rk) else {
            return;
        };
        if run.run.state.is_finished() {
            run.run.state = DagRunState::Running;
        }
        self.dirty_runs.insert(rk.clone());
    }

    pub(super) fn clear(
        &mut self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        opts: ClearOptions,
    ) -> Result<Vec<TaskInstance>, SchedulerError> {
        let (rk, was_active) = self.activate(tenant, dag_id, run_id)?;
        if !opts.dry_run {
            self.move_to_latest_version(&rk);
        }
        let ids = match &opts.task_ids {
            Some(ids) => ids.clone(),
            None => self
                .runs
                .get(&rk)
                .expected("the run to clear", &rk)
                .ok_or_else(internal_error)?
                .spec
                .tasks
                .iter()
                .map(|t| t.task_id.clone())
                .collect(),
        };
        let tasks = match self.select_tasks(&rk, &ids, opts.downstream, opts.upstream) {
            Ok(t) => t,
            Err(e) => {
                self.deactivate_unchanged(&rk, was_active);
                return Err(e);
            }
        };
        let run = self
            .runs
            .get(&rk)
            .expected("the run to clear", &rk)
            .ok_or_else(internal_error)?;
        let (selected, listed): (Vec<(String, i64)>, Vec<TaskInstance>) = run
            .tis()
            .iter()
            .filter(|(_, ti)| {
                tasks.contains(&ti.task_id)
                    && (!opts.only_failed || matches!(ti.state, S::Failed | S::UpstreamFailed))
            })
            .map(|(k, ti)| (k.clone(), ti.clone()))
            .unzip();
        if opts.dry_run || selected.is_empty() {
            self.deactivate_unchanged(&rk, was_active);
            return Ok(listed);
        }
        for (task_id, map_index) in selected {
            let key = rk.ti(&task_id, map_index);
            self.forget_in_flight(&key);
            let tk = ti_key(&key.tenant, &key.dag_id, &key.run_id, &task_id, map_index);
            // A new try starts without the XCom of the old ones.
            self.batch.delete_prefix(XCOM, tk.clone());
            let Some(run) = self.runs.get_mut(&rk).expected("the run to clear", &rk) else {
                continue;
            };
            let Some(retries) = run
                .spec
                .task(&task_id)
                .expected("the task of a TaskInstance to clear", &key)
                .map(|task| task.retries)
            else {
                continue;
            };
            // Mapped TaskInstances keep their tries, like any other; when every one
            // of a task is cleared, the task expands again (see `State::expand`).
            let Some(mut ti) = run
                .ti_mut(&task_id, map_index)
                .expected("a TaskInstance to clear", &key)
            else {
                continue;
            };
            ti.state = S::NoStatus;
            // A cleared task gets its full set of retries again, as in Airflow.
            ti.max_tries = ti.try_number + retries + 1;
            ti.queued_at = None;
            ti.start_date = None;
            ti.end_date = None;
            ti.duration = None;
            ti.next_try_at = None;
            let ti = ti.done();
            self.batch.put_ti(&ti);
            self.push_ti_update(&ti);
        }
        // Airflow puts a cleared run back to `queued`; the scheduler starts it again
        // within `max_active_runs`.
        let run = self
            .runs
            .get_mut(&rk)
            .expected("the run to clear", &rk)
            .ok_or_else(internal_error)?;
        run.run.state = DagRunState::Queued;
        run.run.start_date = None;
        run.run.end_date = None;
        let dag_run = run.run.clone();
        self.batch.put_run(&dag_run);
        self.push_run_update(&dag_run);
        self.dirty_runs.insert(rk);
        Ok(listed)
    }

    /// A cleared run runs again with the DAG file as it is now, as a run does in
    /// Airflow when the DAG folder keeps no history: its `dag_version` becomes the
    /// current one, TaskInstances of tasks no longer in the DAG become `removed`,
    /// tasks that are new (or back) get TaskInstances with no state.
    fn move_to_latest_version(&mut self, rk: &RunKey) {
        let Some(latest) = self
            .dags
            .get(&rk.dag())
            .filter(|d| d.record.is_active)
            .map(|d| d.spec.clone())
        else {
            return;
        };
        let Some(run) = self.runs.get(rk).expected("the run to clear", rk) else {
            return;
        };
        if run.spec.version == latest.version {
            return;
        }
        let now = self.now();
        let hostname = self.config.hostname.clone();
        let gone: Vec<TiKey> = run
            .tis()
            .values()
            .filter(|ti| latest.task(&ti.task_id).is_none() && ti.state != S::Removed)
            .map(TiKey::from)
            .collect();
        for key in &gone {
            self.force_state(key, S::Removed, now);
        }
        let Some(run) = self.runs.get_mut(rk).expected("the run to clear", rk) else {
            return;
        };
        run.spec = latest.clone();
        run.run.dag_version = latest.version.clone();
        let mut changed = Vec::new();
        for task in &latest.tasks {
            let any = run.tis_of(&task.task_id).next().is_some();
            let back: Vec<i64> = run
                .tis_of(&task.task_id)
                .filter(|ti| ti.state == S::Removed)
                .map(|ti| ti.map_index)
                .collect();
            for map_index in back {
                if let Some(mut ti) = run.ti_mut(&task.task_id, map_index) {
                    ti.state = S::NoStatus;
                    ti.end_date = None;
                    changed.push(ti.clone());
                }
            }
            if !any {
                let ti = new_ti(&run.run, task, -1, &hostname);
                run.insert_ti(ti.clone());
                changed.push(ti);
            }
        }
        let dag_run = run.run.clone();
        self.batch.put_run(&dag_run);
        for ti in changed {
            self.batch.put_ti(&ti);
            self.push_ti_update(&ti);
        }
    }

    pub(super) fn set_task_state(
        &mut self,
        target: TaskTarget,
        state: S,
        downstream: bool,
        upstream: bool,
    ) -> Result<Vec<TaskInstance>, SchedulerError> {
        if !matches!(state, S::Success | S::Failed | S::Skipped) {
            return Err(SchedulerError::InvalidState(format!(
                "a TaskInstance can be set to success, failed or skipped, not `{state}`"
            )));
        }
        let (rk, was_active) = self.activate(&target.tenant, &target.dag_id, &target.run_id)?;
        let tasks = match self.select_tasks(
            &rk,
            std::slice::from_ref(&target.task_id),
            downstream,
            upstream,
        ) {
            Ok(t) => t,
            Err(e) => {
                self.deactivate_unchanged(&rk, was_active);
                return Err(e);
            }
        };
        let keys: Vec<(String, i64)> = self
            .runs
            .get(&rk)
            .expected("the run to mark in", &rk)
            .ok_or_else(internal_error)?
            .tis()
            .keys()
            .filter(|(task_id, map_index)| {
                tasks.contains(task_id)
                    && (task_id != &target.task_id
                        || target.map_index.is_none_or(|m| m == *map_index))
            })
            .cloned()
            .collect();
        if !keys.iter().any(|(t, _)| t == &target.task_id) {
            self.deactivate_unchanged(&rk, was_active);
            return Err(SchedulerError::TaskNotFound {
                dag_id: target.dag_id,
                run_id: target.run_id,
                task_id: format!(
                    "{}{}",
                    target.task_id,
                    target
                        .map_index
                        .map(|m| format!("[{m}]"))
                        .unwrap_or_default()
                ),
            });
        }
        let now = self.now();
        let mut changed = Vec::new();
        for (task_id, map_index) in keys {
            let key = rk.ti(&task_id, map_index);
            if self.ti(&key).is_some_and(|ti| ti.state == state) {
                continue;
            }
            self.forget_in_flight(&key);
            let Some(mut ti) = self
                .runs
                .get_mut(&rk)
                .and_then(|run| run.ti_mut(&task_id, map_index))
                .expected("a TaskInstance to mark", &key)
            else {
                continue;
            };
            ti.state = state;
            let started = *ti.start_date.get_or_insert(now);
            ti.end_date = Some(now);
            ti.duration = Some(now.duration_since(started).as_secs_f64());
            ti.next_try_at = None;
            let ti = ti.done();
            self.batch.put_ti(&ti);
            self.push_ti_update(&ti);
            changed.push(ti);
        }
        // Airflow's `set_task_instance_state` then clears the failed and
        // upstream_failed tasks downstream of what was marked, so they run again.
        let marked: BTreeSet<String> = changed.iter().map(|t| t.task_id.clone()).collect();
        let spec = self
            .runs
            .get(&rk)
            .expected("the run to mark in", &rk)
            .ok_or_else(internal_error)?
            .spec
            .clone();
        let below: BTreeSet<String> = marked
            .iter()
            .flat_map(|t| spec.relatives(t, false))
            .map(str::to_owned)
            .filter(|t| !marked.contains(t))
            .collect();
        let run = self
            .runs
            .get_mut(&rk)
            .expected("the run to mark in", &rk)
            .ok_or_else(internal_error)?;
        let mut resumed = Vec::new();
        run.update_tis(|ti| {
            if below.contains(&ti.task_id) && matches!(ti.state, S::Failed | S::UpstreamFailed) {
                let retries = spec.task(&ti.task_id).map_or(0, |t| t.retries);
                ti.state = S::NoStatus;
                ti.max_tries = ti.try_number + retries + 1;
                ti.start_date = None;
                ti.end_date = None;
                ti.duration = None;
                ti.next_try_at = None;
                resumed.push(ti.clone());
            }
        });
        for ti in resumed {
            self.batch.put_ti(&ti);
            self.push_ti_update(&ti);
        }
        self.replan(&rk);
        Ok(changed)
    }

    pub(super) fn set_run_state(
        &mut self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        state: DagRunState,
    ) -> Result<DagRun, SchedulerError> {
        if state == DagRunState::Running {
            return Err(SchedulerError::InvalidState(
                "a DagRun can be set to success, failed or queued, not running".to_owned(),
            ));
        }
        let (rk, _) = self.activate(tenant, dag_id, run_id)?;
        let now = self.now();
        let keys: Vec<(String, i64)> = self
            .runs
            .get(&rk)
            .expected("the run to set the state of", &rk)
            .ok_or_else(internal_error)?
            .tis()
            .keys()
            .cloned()
            .collect();
        for (task_id, map_index) in keys {
            let key = rk.ti(&task_id, map_index);
            let current = self.ti(&key).map(|t| t.state).unwrap_or(S::Success);
            // Airflow: success marks every TaskInstance success; failed fails the
            // running ones and skips those that had not started.
            let new = match state {
                DagRunState::Success if current != S::Success => S::Success,
                DagRunState::Failed if matches!(current, S::Running | S::Queued) => S::Failed,
                DagRunState::Failed if !current.is_finished() => S::Skipped,
                _ => continue,
            };
            self.force_state(&key, new, now);
        }
        let run = self
            .runs
            .get_mut(&rk)
            .expected("the run to set the state of", &rk)
            .ok_or_else(internal_error)?;
        run.run.state = state;
        if state == DagRunState::Queued {
            run.run.start_date = None;
            run.run.end_date = None;
            self.dirty_runs.insert(rk.clone());
        } else {
            run.run.end_date = Some(now);
        }
        let dag_run = run.run.clone();
        if state.is_finished() {
            self.retire_run(&rk);
        }
        self.batch.put_run(&dag_run);
        self.push_run_update(&dag_run);
        Ok(dag_run)
    }

    pub(super) fn delete_run(
        &mut self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
    ) -> Result<(), SchedulerError> {
        let rk = RunKey::new(tenant, dag_id, run_id);
        let run = match self.runs.get(&rk) {
            Some(r) => Some(r.run.clone()),
            None => self.metastore.dag_run(tenant, dag_id, run_id)?,
        };
        let Some(run) = run else {
            return Err(SchedulerError::RunNotFound {
                dag_id: dag_id.to_owned(),
                run_id: run_id.to_owned(),
            });
        };
        self.remove_run(&run);
        self.updates.push(Update::Dags);
        Ok(())
    }

    /// Deletes a run the caller has read, with everything it holds, from memory,
    /// the executors and (in this turn's batch) the metastore.
    pub(super) fn remove_run(&mut self, run: &DagRun) {
        let rk = run.key();
        self.runs.remove(&rk);
        self.forget_run(run);
        self.dirty_runs.remove(&rk);
        let gone: Vec<TiKey> = self
            .in_flight
            .keys()
            .filter(|k| k.run_key() == rk)
            .cloned()
            .collect();
        for key in gone {
            self.forget_in_flight(&key);
        }
        let rkey = run_key(&run.tenant, &run.dag_id, &run.run_id);
        self.batch.delete(DAG_RUNS, rkey.clone());
        self.batch.delete_prefix(TASK_INSTANCES, rkey.clone());
        self.batch.delete_prefix(XCOM, rkey.clone());
        self.batch.delete_prefix(LOGS, rkey.clone());
        self.batch
            .delete_prefix(crate::metastore::CALLBACKS_PENDING, rkey.clone());
        self.batch.delete_prefix(crate::metastore::CALLBACKS, rkey);
    }
}
