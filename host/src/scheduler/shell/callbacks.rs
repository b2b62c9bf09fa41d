//! Callbacks: the operators a task or DAG names in `on_failure`, `on_success` and
//! `on_retry`, run in the sandbox once the state change that fired them is
//! committed, each recorded (state and log) under its DagRun.
//!
//! When they fire follows Airflow: task callbacks on the outcome of a try that ran
//! (success, up_for_retry, failed, including a try lost in a crash), never for
//! states the scheduler decides without running the task (skipped,
//! upstream_failed) nor for changes made by hand; DAG callbacks when the scheduler
//! finishes a run (`success`; `task_failure`, `all_tasks_deadlocked`, `timed_out`).

use super::*;
use crate::metastore::CallbackRecord;
use crate::scheduler::executor::{CallbackId, CallbackJob};
use crate::scheduler::task_host::{MetastoreHost, RenderLookups};
use aileron_model::dag::CallbackSpec;
use aileron_sandbox::{Limits, TaskInfo, TryReport, TryRequest, TryResult};

/// A callback's log is a notification's trace, not a task's output: kept small.
const CALLBACK_LOG_BYTES: usize = 64 << 10;

/// Which callbacks fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    Success,
    Failure,
    Retry,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Success => "on_success",
            Event::Failure => "on_failure",
            Event::Retry => "on_retry",
        }
    }
}

impl State {
    /// Queues a task's callbacks for the try that just ended in `ti`'s state.
    pub(super) fn fire_task_callbacks(
        &mut self,
        key: &TiKey,
        event: Event,
        reason: Option<String>,
    ) {
        let Some(run) = self.runs.get(&key.run_key()) else {
            return;
        };
        let Some(task) = run.spec.task(&key.task_id) else {
            return;
        };
        let specs = match event {
            Event::Success => &task.callbacks.on_success,
            Event::Failure => &task.callbacks.on_failure,
            Event::Retry => &task.callbacks.on_retry,
        };
        if specs.is_empty() {
            return;
        }
        let specs = specs.clone();
        let ti = run.ti(&key.task_id, key.map_index).cloned();
        self.queue_callbacks(&key.run_key(), event, &specs, ti.as_ref(), reason);
    }

    /// Queues a DAG's run-level callbacks; call while the run is still in `runs`.
    pub(super) fn fire_dag_callbacks(&mut self, rk: &RunKey, event: Event, reason: &str) {
        let Some(run) = self.runs.get(rk) else { return };
        let specs = match event {
            Event::Success => &run.spec.callbacks.on_success,
            Event::Failure => &run.spec.callbacks.on_failure,
            Event::Retry => return,
        };
        if specs.is_empty() {
            return;
        }
        let specs = specs.clone();
        self.queue_callbacks(rk, event, &specs, None, Some(reason.to_owned()));
    }

    /// Renders each callback's params now (the run may leave memory before the
    /// commit) and records it `queued`; it is sent to the executor after the commit.
    fn queue_callbacks(
        &mut self,
        rk: &RunKey,
        event: Event,
        specs: &[CallbackSpec],
        ti: Option<&TaskInstance>,
        reason: Option<String>,
    ) {
        let now = self.now();
        let Some(run) = self.runs.get(rk).expected("the run of a callback", rk) else {
            return;
        };
        let mut extra = serde_json::Map::new();
        extra.insert("event".to_owned(), event.name().into());
        extra.insert(
            "reason".to_owned(),
            reason.clone().map_or(serde_json::Value::Null, Into::into),
        );
        if let Some(ti) = ti {
            extra.insert("state".to_owned(), ti.state.as_str().into());
        } else {
            extra.insert("state".to_owned(), run.run.state.as_str().into());
        }
        let lookups = RenderLookups::new(&self.metastore, &self.xcom_overlay, &run.run);
        let task_id = ti.map_or("", |t| t.task_id.as_str());
        let rendered: Vec<Result<serde_json::Value, String>> = specs
            .iter()
            .map(|cb| {
                crate::scheduler::task_host::render_with(
                    &lookups,
                    run,
                    task_id,
                    ti,
                    &cb.params,
                    extra.clone(),
                )
            })
            .collect();
        let info = TaskInfo {
            dag_id: run.run.dag_id.clone(),
            run_id: run.run.run_id.clone(),
            task_id: task_id.to_owned(),
            map_index: ti.and_then(|t| u32::try_from(t.map_index).ok()),
            try_number: ti.map_or(1, |t| t.try_number.max(1)),
            logical_date: run.run.logical_date.to_string(),
            data_interval_start: run.run.data_interval.start.to_string(),
            data_interval_end: run.run.data_interval.end.to_string(),
        };
        let tenant = run.run.tenant.clone();
        for (cb, params) in specs.iter().zip(rendered) {
            let seq = self.next_callback_seq(rk);
            let mut record = CallbackRecord {
                tenant: rk.tenant.clone(),
                dag_id: rk.dag_id.clone(),
                run_id: rk.run_id.clone(),
                seq,
                event: event.name().to_owned(),
                task_id: ti.map(|t| t.task_id.clone()),
                map_index: ti.map(|t| t.map_index),
                try_number: ti.map(|t| t.try_number),
                operator: cb.operator.clone(),
                plugin_digest: cb.operator_digest.clone(),
                state: "queued".to_owned(),
                reason: reason.clone(),
                queued_at: now,
                start_date: None,
                end_date: None,
                error: None,
                log: String::new(),
            };
            match params {
                Ok(params) => {
                    let host = Arc::new(MetastoreHost::new(
                        self.metastore.clone(),
                        &rk.tenant,
                        &rk.dag_id,
                        &rk.run_id,
                    ));
                    let request = TryRequest::new(
                        tenant.clone(),
                        cb.operator_digest.clone(),
                        info.clone(),
                        params,
                        Limits {
                            log_bytes: CALLBACK_LOG_BYTES,
                            timeout: Some(std::time::Duration::from_secs(300)),
                            // A callback is the tenant's work too: its memory
                            // counts against the tenant's quota.
                            tenant_memory_bytes: self
                                .tenant_limits
                                .get(tenant.as_str())
                                .and_then(|l| l.max_memory),
                            tenant_weight: self.shares.of(tenant.as_str()).weight.max(1),
                            ..Limits::default()
                        },
                        host,
                    );
                    self.callbacks_to_send.push(CallbackJob {
                        id: CallbackId {
                            run: rk.clone(),
                            seq,
                        },
                        request,
                    });
                }
                Err(e) => {
                    record.state = "failed".to_owned();
                    record.end_date = Some(now);
                    record.error = Some(format!("cannot render params: {e}"));
                }
            }
            self.batch.put_callback(&record);
        }
    }

    fn next_callback_seq(&mut self, rk: &RunKey) -> u64 {
        let metastore = &self.metastore;
        let seq = self.callback_seq.entry(rk.clone()).or_insert_with(|| {
            metastore
                .callbacks(&rk.tenant, &rk.dag_id, &rk.run_id)
                .map(|c| c.iter().map(|c| c.seq + 1).max().unwrap_or(0))
                .unwrap_or(0)
        });
        let n = *seq;
        *seq += 1;
        n
    }

    /// Sends the callbacks queued this turn; runs after the commit.
    pub(super) fn dispatch_callbacks(&mut self) {
        for job in std::mem::take(&mut self.callbacks_to_send) {
            self.meter_callback(job.id.clone(), job.request.live.clone());
            self.executor.submit_callback(job);
        }
        // Sequence numbers of runs that left memory are read again when needed.
        let runs = &self.runs;
        self.callback_seq.retain(|rk, _| runs.contains_key(rk));
    }

    /// Records how a callback went.
    pub(super) fn callback_finished(
        &mut self,
        id: CallbackId,
        started: Timestamp,
        ended: Timestamp,
        report: TryReport,
        log: String,
    ) {
        // Its CPU and memory are the tenant's, like any try's.
        self.settle_callback(&id, ended, &report.usage);
        let CallbackId { run, seq } = id;
        let (dag_id, run_id) = (&run.dag_id, &run.run_id);
        let Ok(Some(mut record)) = self.metastore.callback(&run.tenant, dag_id, run_id, seq) else {
            // The run was deleted meanwhile.
            return;
        };
        let (state, error) = match report.result {
            TryResult::Failed(e) | TryResult::Fatal(e) => ("failed", Some(e)),
            _ => ("success", None),
        };
        if let Some(e) = &error {
            tracing::warn!(%dag_id, %run_id, event = %record.event, "callback {} failed: {e}", record.operator);
        }
        record.state = state.to_owned();
        record.error = error;
        record.start_date = Some(started);
        record.end_date = Some(ended);
        record.log = log;
        self.batch.put_callback(&record);
    }

    /// After a crash, callbacks that were queued or running never report: close them.
    pub(super) fn close_lost_callbacks(&mut self) {
        let now = self.now();
        match self.metastore.unfinished_callbacks() {
            Ok(lost) => {
                for mut c in lost {
                    c.state = "failed".to_owned();
                    c.end_date = Some(now);
                    c.error = Some(
                        "the Aileron process stopped before this callback finished".to_owned(),
                    );
                    self.batch.put_callback(&c);
                }
            }
            Err(e) => tracing::error!("cannot read callbacks: {e}"),
        }
    }
}
