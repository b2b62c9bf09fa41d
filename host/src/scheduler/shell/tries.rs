//! Tries as the executor reports them: a queued TaskInstance starts running, and a
//! finished try's outcome (success, skip, branch, reschedule, retry or failure) is
//! applied to its TaskInstance and to the downstream tasks it skips.

use super::callbacks::Event;
use super::{Expected, State, error_of};
use crate::metastore::{LOGS, TryRecord, XCOM, log_key, xcom_key};
use crate::scheduler::executor::ExecutorEvent;
use crate::sync::LockExt;
use aileron_model::dag::TaskSpec;
use aileron_model::{TaskInstanceState as S, TiKey};
use aileron_sandbox::{TryReport, TryResult, TryUsage};
use jiff::{SignedDuration, Timestamp};
use std::collections::HashSet;

/// The longest a sensor may ask to wait before its next poke: a year.
const MAX_RESCHEDULE_SECS: u64 = 366 * 24 * 3600;

/// How a try ended, as [`State::finish_try`] applies it.
pub(super) struct TryOutcome {
    pub(super) result: TryResult,
    /// Explicit `xcom-push` calls, in call order.
    pub(super) pushes: Vec<(String, String)>,
    /// What it used; `None` for a try that never ran in a sandbox.
    pub(super) usage: Option<TryUsage>,
}

impl State {
    /// Applies what an executor reported, if it is about the current dispatch.
    pub(super) fn on_executor_event(&mut self, event: ExecutorEvent) {
        match event {
            ExecutorEvent::Started {
                key,
                try_number,
                attempt,
                at,
            } => {
                if self.in_flight.get(&key) == Some(&(try_number, attempt))
                    && self.ti(&key).is_some_and(|ti| ti.state == S::Queued)
                {
                    self.mark_running(&key, at, None);
                }
            }
            ExecutorEvent::Finished {
                key,
                try_number,
                attempt,
                started,
                ended,
                report,
            } => {
                // A late report for a try that is no longer current changes
                // nothing: its usage was charged when it was stopped.
                if self.in_flight.get(&key) == Some(&(try_number, attempt)) {
                    self.apply_finish(key, try_number, started, ended, report);
                }
            }
            ExecutorEvent::CallbackFinished {
                id,
                started,
                ended,
                report,
                log,
            } => self.callback_finished(id, started, ended, report, log),
        }
    }

    /// A queued TaskInstance starts running at `at`; `worker` is who runs it when
    /// that is not this process.
    pub(super) fn mark_running(&mut self, key: &TiKey, at: Timestamp, worker: Option<&str>) {
        let Some(mut ti) = self.ti_mut(key) else {
            return;
        };
        ti.state = S::Running;
        ti.start_date = Some(at);
        if let Some(worker) = worker {
            ti.hostname = worker.to_owned();
        }
        ti.end_date = None;
        ti.duration = None;
        if let Some(queued) = ti.queued_at {
            metrics::histogram!("aileron_scheduling_latency_seconds")
                .record(at.duration_since(queued).as_secs_f64().max(0.0));
        }
        let ti = ti.done();
        self.batch.put_ti(&ti);
        self.push_ti_update(&ti);
    }

    /// Applies the end of the current try of `key` (checked by the caller): stores
    /// its log and outcome and decides what comes next.
    pub(super) fn apply_finish(
        &mut self,
        key: TiKey,
        try_number: u32,
        started: Timestamp,
        ended: Timestamp,
        report: TryReport,
    ) {
        let attempt = self.in_flight.remove(&key).map_or(0, |(_, a)| a);
        // The live buffer stays readable until the stored log is committed, so
        // a reader tailing the log never sees it vanish in between.
        let live = (key.clone(), try_number);
        let log = self
            .live_logs
            .locked()
            .get(&live)
            .map(|l| l.snapshot())
            .unwrap_or_default();
        let live_logs = self.live_logs.clone();
        self.after_commit.push(Box::new(move || {
            live_logs.locked().remove(&live);
        }));
        if let Some(ti) = self.ti(&key) {
            if ti.state == S::Queued
                && let Some(queued) = ti.queued_at
            {
                // Its start was not reported on its own (a short local try):
                // its scheduling latency is counted here instead.
                metrics::histogram!("aileron_scheduling_latency_seconds")
                    .record(started.duration_since(queued).as_secs_f64().max(0.0));
            }
            if !log.is_empty() {
                self.batch
                    .put_raw(LOGS, log_key(ti, try_number), log.into_bytes());
            }
            let TryReport {
                result,
                xcom,
                usage,
                ..
            } = report;
            self.settle(&key, attempt, ended, Some(&usage), Some(true));
            let outcome = TryOutcome {
                result,
                pushes: xcom,
                usage: Some(usage),
            };
            self.finish_try(&key, try_number, started, ended, outcome);
        }
    }

    /// Applies the outcome of one try to its TaskInstance.
    pub(super) fn finish_try(
        &mut self,
        key: &TiKey,
        try_number: u32,
        started: Timestamp,
        ended: Timestamp,
        outcome: TryOutcome,
    ) {
        let TryOutcome {
            result,
            pushes,
            usage,
        } = outcome;
        let Some(run) = self.runs.get(&key.run_key()) else {
            return;
        };
        let spec = run.spec.clone();
        let Some(task) = spec.task(&key.task_id) else {
            return;
        };
        let max_tries = self.ti(key).map_or(task.retries + 1, |t| t.max_tries);
        let now = self.now();
        let mut xcom: Vec<(String, String)> = pushes;
        let mut skip_downstream: Vec<String> = Vec::new();
        let (state, error, next_try_at) = match result {
            TryResult::Success(value) => {
                if let Some(v) = value {
                    xcom.push(("return_value".to_owned(), v));
                }
                (S::Success, None, None)
            }
            TryResult::Skip(_) => (S::Skipped, None, None),
            TryResult::Branch(follow) => {
                let unknown: Vec<&String> = follow
                    .iter()
                    .filter(|f| !task.downstream.contains(f))
                    .collect();
                if unknown.is_empty() {
                    // Airflow's `skip_all_except`: a direct downstream task that is
                    // also downstream of a followed task is kept (it joins the path).
                    let kept: HashSet<&str> = follow
                        .iter()
                        .flat_map(|f| spec.relatives(f, false))
                        .collect();
                    skip_downstream = task
                        .downstream
                        .iter()
                        .filter(|d| !follow.contains(d) && !kept.contains(d.as_str()))
                        .cloned()
                        .collect();
                    xcom.push((
                        "return_value".to_owned(),
                        serde_json::to_string(&follow).unwrap_or_default(),
                    ));
                    (S::Success, None, None)
                } else {
                    let msg = format!(
                        "branch followed {unknown:?}, which are not direct downstream tasks of `{}` (those are {:?})",
                        task.task_id, task.downstream
                    );
                    self.retry_or_fail(task, max_tries, try_number, msg, now)
                }
            }
            TryResult::SkipDownstream { all } => {
                // Short-circuit: with `all`, every task downstream is skipped whatever
                // its trigger rule; otherwise the direct ones, and rules carry it on.
                skip_downstream = if all {
                    spec.relatives(&task.task_id, false)
                        .into_iter()
                        .map(str::to_owned)
                        .collect()
                } else {
                    task.downstream.clone()
                };
                (S::Success, None, None)
            }
            TryResult::Reschedule(secs) => {
                // Airflow's sensor timeout: counted from the start of this try's first
                // poke, checked after each poke, never retried (`soft_fail` skips).
                let first_poke = self
                    .ti(key)
                    .and_then(|ti| {
                        ti.tries
                            .iter()
                            .filter(|t| t.try_number == try_number)
                            .map(|t| t.start_date)
                            .min()
                    })
                    .unwrap_or(started)
                    .min(started);
                let timeout = task
                    .timeout
                    .unwrap_or(aileron_model::dag::DEFAULT_SENSOR_TIMEOUT);
                let waited = now.duration_since(first_poke);
                if waited.as_secs_f64() > timeout.as_secs_f64() {
                    let msg = format!(
                        "Sensor has timed out; run duration of {} seconds is more than the specified timeout of {} seconds",
                        waited.as_secs(),
                        timeout.as_secs()
                    );
                    if task.soft_fail {
                        (S::Skipped, Some(msg), None)
                    } else {
                        (S::Failed, Some(msg), None)
                    }
                } else {
                    // A guest picks the number: clamp it so a huge value cannot overflow.
                    let secs = secs.min(MAX_RESCHEDULE_SECS) as i64;
                    let at = now
                        .saturating_add(SignedDuration::from_secs(secs))
                        .unwrap_or(now);
                    (S::UpForReschedule, None, Some(at))
                }
            }
            TryResult::Failed(msg) => self.retry_or_fail(task, max_tries, try_number, msg, now),
            TryResult::Fatal(msg) => (S::Failed, Some(msg), None),
        };
        let Some(mut ti) = self.ti_mut(key) else {
            return;
        };
        ti.state = state;
        ti.try_number = try_number;
        ti.start_date = Some(started);
        ti.end_date = Some(ended);
        ti.duration = Some(ended.duration_since(started).as_secs_f64());
        ti.next_try_at = next_try_at;
        let digest = ti.plugin_digest.clone();
        let hostname = ti.hostname.clone();
        let attempt = ti.attempt;
        ti.tries.push(TryRecord {
            try_number,
            state,
            start_date: started,
            end_date: ended,
            duration: ended.duration_since(started).as_secs_f64(),
            plugin_digest: digest,
            error,
            hostname,
            attempt,
            usage,
        });
        let ti = ti.done();
        for (k, v) in xcom {
            let xk = xcom_key(&ti, &k);
            self.batch.put_raw(XCOM, xk.clone(), v.clone().into_bytes());
            self.xcom_overlay.insert(xk, v);
        }
        self.batch.put_ti(&ti);
        self.push_ti_update(&ti);
        match state {
            S::Success => self.fire_task_callbacks(key, Event::Success, None),
            S::UpForRetry => self.fire_task_callbacks(key, Event::Retry, error_of(&ti)),
            S::Failed => self.fire_task_callbacks(key, Event::Failure, error_of(&ti)),
            _ => {}
        }
        if !skip_downstream.is_empty() {
            let Some(run) = self.runs.get_mut(&key.run_key()).expected("the run", key) else {
                return;
            };
            let mut changed = Vec::new();
            run.update_tis(|ti| {
                // Only TaskInstances that have not started: one already queued or
                // running (say, by `one_success` on another upstream) finishes.
                let waiting = matches!(
                    ti.state,
                    S::NoStatus | S::Scheduled | S::UpForRetry | S::UpForReschedule
                );
                if skip_downstream.contains(&ti.task_id) && waiting {
                    ti.state = S::Skipped;
                    ti.start_date = Some(now);
                    ti.end_date = Some(now);
                    changed.push(ti.clone());
                }
            });
            for ti in changed {
                self.batch.put_ti(&ti);
                self.push_ti_update(&ti);
            }
        }
    }

    /// `max_tries` is the TaskInstance's: `retries + 1` at first, raised when it is
    /// cleared so a cleared task gets its full set of retries again (as in Airflow).
    fn retry_or_fail(
        &self,
        task: &TaskSpec,
        max_tries: u32,
        try_number: u32,
        msg: String,
        now: Timestamp,
    ) -> (S, Option<String>, Option<Timestamp>) {
        if try_number < max_tries {
            let delay = task.retry_delay_for(try_number);
            let delay = SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX);
            (
                S::UpForRetry,
                Some(msg),
                Some(now.saturating_add(delay).unwrap_or(now)),
            )
        } else {
            (S::Failed, Some(msg), None)
        }
    }
}
