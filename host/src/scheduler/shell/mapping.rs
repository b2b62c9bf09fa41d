//! Evaluating a running DagRun: trigger rules applied to its waiting TaskInstances,
//! and dynamic task mapping (a mapped task expanded into one TaskInstance per
//! combination of its rendered `expand` lists).

use super::{Expected, State, new_ti};
use crate::metastore::{LOGS, TaskInstance, TryRecord, log_key, ti_record_key};
use crate::scheduler::planner::trigger::{TriggerStep, trigger_step};
use aileron_model::dag::TaskSpec;
use aileron_model::{DagRunState, RunKey, TaskInstanceState as S};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// Most TaskInstances one mapped task may expand to (Airflow's `max_map_length`).
const MAX_MAP_LENGTH: usize = 1024;

impl State {
    /// Applies trigger rules to TaskInstances with no state, expands mapped tasks, and
    /// finishes the run when nothing is left to do.
    pub(super) fn evaluate_run(&mut self, rk: &RunKey, now: Timestamp) {
        let Some(run) = self.runs.get(rk) else { return };
        if run.run.state != DagRunState::Running {
            return;
        }
        let spec = run.spec.clone();
        let mut changed: Vec<TaskInstance> = Vec::new();
        // Trigger rules decide only for TaskInstances with no state (a mapped
        // task's placeholder included). A run without any (a wide run once all
        // are scheduled) has none to look at; it is re-evaluated after every
        // change, and its tasks are many, so the census is asked first.
        let waiting = run.census().count(S::NoStatus) > 0;
        let tasks = if waiting { &spec.tasks[..] } else { &[] };
        // In file order, so a task sees what this pass decided for its upstream.
        for task in tasks {
            let Some(run) = self.runs.get(rk) else { return };
            let step = trigger_step(run, task);
            if step.runs() && !self.past_allows(rk, task) {
                // Waits for the previous run (depends_on_past); woken when a
                // TaskInstance of this DAG finishes.
                continue;
            }
            let (map_indexes, new_state) = match step {
                TriggerStep::Nothing | TriggerStep::Wait => continue,
                TriggerStep::Expand => {
                    changed.extend(self.expand(rk, task, now));
                    continue;
                }
                TriggerStep::Set { map_indexes, state } => (map_indexes, state),
            };
            let Some(run) = self.runs.get_mut(rk) else {
                return;
            };
            for m in map_indexes {
                let Some(mut ti) = run.ti_mut(&task.task_id, m) else {
                    continue;
                };
                ti.state = new_state;
                if new_state != S::Scheduled {
                    ti.start_date = Some(now);
                    ti.end_date = Some(now);
                }
                changed.push(ti.clone());
            }
        }
        for ti in &changed {
            self.batch.put_ti(ti);
            self.push_ti_update(ti);
        }
        self.maybe_finish_run(rk, now);
    }

    /// Dynamic task mapping: one TaskInstance per combination of the rendered `expand`
    /// lists (Airflow expands several keys as a cross product). An empty list skips
    /// the task; a value that is not a list fails it.
    fn expand(&mut self, rk: &RunKey, task: &TaskSpec, now: Timestamp) -> Vec<TaskInstance> {
        // Expanding again after a clear (Airflow's `revise_map_indexes`): the mapped
        // TaskInstances stand aside for a placeholder; those still in range come
        // back with their tries, the rest become `removed`.
        let mut previous: BTreeMap<i64, TaskInstance> = BTreeMap::new();
        {
            let hostname = self.config.hostname.clone();
            let Some(run) = self.runs.get_mut(rk).expected("the run to expand in", rk) else {
                return Vec::new();
            };
            if !run.tis().contains_key(&(task.task_id.clone(), -1)) {
                let mapped: Vec<(String, i64)> = run
                    .tis()
                    .keys()
                    .filter(|(t, _)| *t == task.task_id)
                    .cloned()
                    .collect();
                for k in mapped {
                    if let Some(ti) = run.remove_ti(&k.0, k.1) {
                        previous.insert(k.1, ti);
                    }
                }
                let placeholder = new_ti(&run.run, task, -1, &hostname);
                run.insert_ti(placeholder);
            }
        }
        let mut out = self.expand_fresh(rk, task, now, &mut previous);
        let Some(run) = self.runs.get_mut(rk).expected("the run to expand in", rk) else {
            return out;
        };
        for (_, mut ti) in previous {
            ti.state = S::Removed;
            ti.end_date = Some(now);
            run.insert_ti(ti.clone());
            out.push(ti);
        }
        out
    }

    /// [`Self::expand`] from the placeholder; `previous` mapped TaskInstances in
    /// range are reused (and taken out of it).
    fn expand_fresh(
        &mut self,
        rk: &RunKey,
        task: &TaskSpec,
        now: Timestamp,
        previous: &mut BTreeMap<i64, TaskInstance>,
    ) -> Vec<TaskInstance> {
        let Some(run) = self.runs.get(rk).expected("the run to expand in", rk) else {
            return Vec::new();
        };
        let expand = task.expand.clone().unwrap_or_default();
        let rendered = self.render(run, task, None, &serde_json::Value::Object(expand));
        let missing_upstream_value = matches!(&rendered, Ok(serde_json::Value::Object(m))
            if m.values().any(serde_json::Value::is_null));
        let lists: Result<Vec<(String, Vec<serde_json::Value>)>, String> = match rendered {
            Ok(serde_json::Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::Array(items) => Ok((k, items)),
                    other => Err(format!(
                        "expand key `{k}` must be a list, got {}",
                        json_kind(&other)
                    )),
                })
                .collect(),
            Ok(_) => Err("expand must be a table".to_owned()),
            Err(e) => Err(e),
        };
        let lists = lists.and_then(|lists| {
            let n = lists
                .iter()
                .try_fold(1usize, |n, (_, items)| n.checked_mul(items.len()))
                .filter(|n| *n <= MAX_MAP_LENGTH);
            match n {
                Some(_) => Ok(lists),
                None => Err(format!(
                    "expanding would create more than {MAX_MAP_LENGTH} TaskInstances"
                )),
            }
        });
        let Some(run) = self.runs.get_mut(rk).expected("the run to expand in", rk) else {
            return Vec::new();
        };
        let placeholder_key = (task.task_id.clone(), -1);
        let Some(mut placeholder) = run
            .ti_mut(&placeholder_key.0, placeholder_key.1)
            .expected("the placeholder of a mapped task", &(rk, &placeholder_key))
        else {
            return Vec::new();
        };
        if missing_upstream_value {
            // Airflow: a map whose upstream value does not exist cannot be resolved,
            // and the task is upstream_failed (it never runs).
            placeholder.state = S::UpstreamFailed;
            placeholder.start_date = Some(now);
            placeholder.end_date = Some(now);
            return vec![placeholder.done()];
        }
        let lists = match lists {
            Ok(l) => l,
            Err(e) => {
                // Recorded as a failed first try so the reason shows like any other.
                let reason = format!("cannot expand: {e}");
                placeholder.state = S::Failed;
                placeholder.try_number = 1;
                placeholder.start_date = Some(now);
                placeholder.end_date = Some(now);
                let record = TryRecord {
                    try_number: 1,
                    state: S::Failed,
                    start_date: now,
                    end_date: now,
                    duration: 0.0,
                    plugin_digest: placeholder.plugin_digest.clone(),
                    error: Some(reason.clone()),
                    hostname: placeholder.hostname.clone(),
                    attempt: 0,
                    usage: None,
                };
                placeholder.tries.push(record);
                let ti = placeholder.done();
                self.batch.put_raw(
                    LOGS,
                    log_key(&ti, 1),
                    format!("[{now}] ERROR {reason}\n").into_bytes(),
                );
                return vec![ti];
            }
        };
        let mut combos: Vec<serde_json::Map<String, serde_json::Value>> =
            vec![serde_json::Map::new()];
        for (k, items) in &lists {
            let mut next = Vec::with_capacity(combos.len() * items.len());
            for c in &combos {
                for item in items {
                    let mut c = c.clone();
                    c.insert(k.clone(), item.clone());
                    next.push(c);
                }
            }
            combos = next;
        }
        if combos.is_empty() {
            placeholder.state = S::Skipped;
            placeholder.start_date = Some(now);
            placeholder.end_date = Some(now);
            return vec![placeholder.done()];
        }
        // The placeholder of an unexpanded mapped task has map index -1.
        self.batch.delete(
            crate::metastore::TASK_INSTANCES,
            ti_record_key(&placeholder),
        );
        drop(placeholder);
        run.remove_ti(&placeholder_key.0, placeholder_key.1);
        let mut out = Vec::new();
        for (i, kwargs) in combos.into_iter().enumerate() {
            let mut ti = previous
                .remove(&(i as i64))
                .unwrap_or_else(|| new_ti(&run.run, task, i as i64, &self.config.hostname));
            ti.state = S::Scheduled;
            ti.rendered_params = Some(serde_json::Value::Object(kwargs));
            run.insert_ti(ti.clone());
            out.push(ti);
        }
        out
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a table",
    }
}
