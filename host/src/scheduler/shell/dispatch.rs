//! Handing out work: admission queues the TaskInstances the planner lets through,
//! and after the commit each queued try has its params rendered and goes to the
//! executor.

use super::{Expected, State};
use crate::metastore::{TaskInstance, XCOM, ti_record_key};
use crate::scheduler::executor::{ExecutorEvent, Job};
use crate::scheduler::planner::{ActiveRun, admission};
use crate::scheduler::task_host::{self, MetastoreHost, RenderLookups};
use crate::sync::LockExt;
use aileron_model::dag::TaskSpec;
use aileron_model::{DagKey, TaskInstanceState as S, TiKey};
use aileron_sandbox::{Limits, LogBuffer, TaskInfo, TryReport, TryRequest, TryResult};
use jiff::Timestamp;
use std::sync::Arc;

impl State {
    /// Queues what admission lets through (see [`admission`]).
    pub(super) fn admit(&mut self, now: Timestamp) {
        // What changed since the last turn is filed into each run's candidates.
        for run in self.runs.values_mut() {
            run.refresh_candidates(&mut self.weights);
        }
        let dags = &self.dags;
        let is_paused = |dk: &DagKey| dags.get(dk).is_some_and(|d| d.record.is_paused);
        // Only tenants with a CPU budget can be held back: a handful to check.
        let held: Vec<&str> = self
            .tenant_limits
            .iter()
            .filter(|(t, l)| l.cpu_per_hour.is_some() && self.held_back(t.as_str(), now).is_some())
            .map(|(t, _)| t.as_str())
            .collect();
        let held_back = |tenant: &str| held.contains(&tenant);
        let snapshot = admission::Snapshot {
            parallelism: self.config.parallelism,
            in_flight: self.in_flight.keys().collect(),
            runs: &self.runs,
            is_paused: &is_paused,
            pools: &self.pools,
            shares: &self.shares,
            held_back: &held_back,
            now,
        };
        let admitted = admission::admit(&snapshot);
        for key in admitted {
            self.queue_ti(&key, now);
        }
    }

    fn queue_ti(&mut self, key: &TiKey, now: Timestamp) {
        let Some(mut ti) = self
            .runs
            .get_mut(&key.run_key())
            .and_then(|run| run.ti_mut(&key.task_id, key.map_index))
            .expected("a TaskInstance to queue", key)
        else {
            return;
        };
        let try_number = if ti.state == S::UpForReschedule {
            ti.try_number.max(1)
        } else {
            ti.try_number + 1
        };
        if try_number > 1 && ti.state == S::UpForRetry {
            // A new try starts with no XCom from the last one, as in Airflow.
            self.batch.delete_prefix(XCOM, ti_record_key(&ti));
        }
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        ti.state = S::Queued;
        ti.try_number = try_number;
        ti.attempt = attempt;
        ti.queued_at = Some(now);
        ti.next_try_at = None;
        let ti = ti.done();
        self.batch.put_ti(&ti);
        self.batch.put_next_attempt(self.next_attempt);
        self.push_ti_update(&ti);
        self.in_flight.insert(key.clone(), (try_number, attempt));
        self.to_dispatch.push((key.clone(), try_number, attempt));
    }

    /// Renders a task's params (or `value`) for a TaskInstance of `run`.
    pub(super) fn render(
        &self,
        run: &ActiveRun,
        task: &TaskSpec,
        ti: Option<&TaskInstance>,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let lookups = RenderLookups::new(&self.metastore, &self.xcom_overlay, &run.run);
        task_host::render(&lookups, run, task, ti, value)
    }

    /// Hands queued TaskInstances to the executor. Runs after the commit.
    pub(in crate::scheduler) fn dispatch(&mut self) {
        self.dispatch_callbacks();
        let jobs = std::mem::take(&mut self.to_dispatch);
        for (key, try_number, attempt) in jobs {
            let Some(run) = self.runs.get(&key.run_key()) else {
                continue;
            };
            let Some(ti) = run.ti(&key.task_id, key.map_index) else {
                continue;
            };
            let Some(task) = run
                .spec
                .task(&key.task_id)
                .expected("the task of a TaskInstance to dispatch", &key)
            else {
                continue;
            };
            let task = task.clone();
            let rendered = self.render(run, &task, Some(ti), &task.params);
            let log = Arc::new(LogBuffer::new(self.live_log_bytes()));
            self.live_logs
                .locked()
                .insert((key.clone(), try_number), log.clone());
            let events = self.events.clone();
            let params = match rendered {
                Ok(p) => p,
                Err(e) => {
                    // A template that cannot render fails this try (retried like any
                    // failure), without starting a sandbox.
                    let now = self.now();
                    log.append_line(
                        aileron_sandbox::LogLevel::Error,
                        &format!("cannot render params: {e}"),
                    );
                    if let Some(sink) = events {
                        sink.send(ExecutorEvent::Finished {
                            key,
                            try_number,
                            attempt,
                            started: now,
                            ended: now,
                            report: TryReport {
                                result: TryResult::Failed(format!("cannot render params: {e}")),
                                xcom: Vec::new(),
                                duration: std::time::Duration::ZERO,
                                usage: Default::default(),
                            },
                        });
                    }
                    continue;
                }
            };
            let host = Arc::new(MetastoreHost::new(
                self.metastore.clone(),
                &run.run.tenant,
                &run.run.dag_id,
                &run.run.run_id,
            ));
            let request = TryRequest {
                tenant: run.run.tenant.clone(),
                digest: task.operator_digest.clone(),
                info: TaskInfo {
                    dag_id: run.run.dag_id.clone(),
                    run_id: run.run.run_id.clone(),
                    task_id: task.task_id.clone(),
                    map_index: u32::try_from(key.map_index).ok(),
                    try_number,
                    logical_date: run.run.logical_date.to_string(),
                    data_interval_start: run.run.data_interval.start.to_string(),
                    data_interval_end: run.run.data_interval.end.to_string(),
                },
                params,
                limits: Limits {
                    memory_bytes: task.memory_limit,
                    tenant_memory_bytes: self
                        .tenant_limits
                        .get(run.run.tenant.as_str())
                        .and_then(|l| l.max_memory),
                    tenant_weight: self.shares.of(&run.run.tenant).weight.max(1),
                    timeout: task.execution_timeout,
                    log_bytes: self.config.log_bytes,
                    allow_hosts: task.allow_hosts.clone(),
                    allow_private_ips: self.config.allow_private_ips,
                    ..Limits::default()
                },
                host,
                log,
                live: Default::default(),
            };
            self.meter(key.clone(), attempt, request.live.clone(), false);
            let rendered_fields = request.params.clone();
            self.executor.submit(Job {
                key: key.clone(),
                try_number,
                attempt,
                queue: task.queue.clone(),
                request,
            });
            // Kept for the UI and API (Airflow's rendered fields); written with the
            // TaskInstance's next change, its start, rather than by a commit of its own.
            if let Some(mut ti) = self
                .runs
                .get_mut(&key.run_key())
                .and_then(|r| r.ti_mut(&key.task_id, key.map_index))
            {
                ti.rendered_fields = Some(rendered_fields);
            }
        }
    }
}
