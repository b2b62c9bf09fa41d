//! Restarts and remote workers: what a crash left running is failed (or, with remote
//! workers, adopted) and queued work goes back to be scheduled; a remote worker's
//! start of a try; the size of a try's live log.

use super::tries::TryOutcome;
use super::{Expected, State};
use crate::metastore::{LOGS, log_key};
use crate::scheduler::executor::AdoptedTry;
use crate::sync::LockExt;
use aileron_model::{TaskInstanceState as S, TiKey};
use aileron_protocol::wire::Refusal;
use aileron_sandbox::{LiveUsage, LogBuffer, TryResult};
use std::sync::Arc;

/// Extra room in the scheduler's copy of a remote try's log: the worker's buffer
/// holds `log_bytes` plus its truncation marker and closing line, and the copy must
/// take all of it or the offsets of later chunks would stop matching.
const REMOTE_LOG_SLACK: usize = 64 << 10;

impl State {
    /// After a crash or `kill -9`: a try that was running is failed, as Airflow treats
    /// a task whose worker vanished (retried if retries remain); queued work that never
    /// started goes back to be scheduled again.
    pub(in crate::scheduler) fn recover(&mut self) {
        self.close_lost_callbacks();
        if self.executor.remote().is_some() {
            self.recover_remote();
            return;
        }
        let now = self.now();
        let mut lost = Vec::new();
        for run in self.runs.values_mut() {
            run.update_tis(|ti| match ti.state {
                S::Running => lost.push(TiKey::from(&*ti)),
                S::Queued => {
                    let last = ti.tries.last();
                    ti.try_number = last.map(|t| t.try_number).unwrap_or(0);
                    if last.is_some_and(|t| t.state == S::UpForReschedule) {
                        ti.state = S::UpForReschedule;
                        ti.next_try_at = Some(now);
                    } else {
                        ti.state = S::Scheduled;
                    }
                    ti.queued_at = None;
                    self.batch.put_ti(ti);
                }
                _ => {}
            });
        }
        for key in lost {
            let Some(ti) = self
                .ti(&key)
                .expected("a TaskInstance that was running", &key)
            else {
                continue;
            };
            let try_number = ti.try_number;
            let started = ti.start_date.unwrap_or(now);
            let log = log_key(ti, try_number);
            let reason = "the Aileron process stopped while this try was running";
            self.batch
                .put_raw(LOGS, log, format!("[{now}] ERROR {reason}\n").into_bytes());
            self.finish_try(
                &key,
                try_number,
                started,
                now,
                TryOutcome {
                    result: TryResult::Failed(reason.to_owned()),
                    pushes: Vec::new(),
                    usage: None,
                },
            );
        }
    }

    /// After a restart with remote workers: they run on without this process, so
    /// nothing is failed. Queued tries are dispatched again with the same attempt
    /// (the executor skips those whose stream entry survived) and running ones are
    /// adopted: watched for heartbeats as if this process had started them.
    fn recover_remote(&mut self) {
        let mut adopted = Vec::new();
        let mut metered = Vec::new();
        let now = self.now();
        for run in self.runs.values_mut() {
            run.update_tis(|ti| {
                if !matches!(ti.state, S::Queued | S::Running) {
                    return;
                }
                if ti.attempt == 0 {
                    // Dispatched by a version without attempts: give it one, so no
                    // two TaskInstances share an attempt.
                    ti.attempt = self.next_attempt;
                    self.next_attempt += 1;
                    self.batch.put_next_attempt(self.next_attempt);
                    self.batch.put_ti(ti);
                }
                let key = TiKey::from(&*ti);
                self.in_flight
                    .insert(key.clone(), (ti.try_number, ti.attempt));
                if ti.state == S::Queued {
                    self.to_dispatch.push((key, ti.try_number, ti.attempt));
                } else {
                    let log = Arc::new(LogBuffer::new(self.config.log_bytes + REMOTE_LOG_SLACK));
                    let live = Arc::new(LiveUsage::default());
                    metered.push((key.clone(), ti.attempt, live.clone()));
                    self.live_logs
                        .locked()
                        .insert((key.clone(), ti.try_number), log.clone());
                    adopted.push(AdoptedTry {
                        key,
                        try_number: ti.try_number,
                        attempt: ti.attempt,
                        worker: ti.hostname.clone(),
                        started: ti.start_date.unwrap_or(now),
                        log,
                        live,
                    });
                }
            });
        }
        for (key, attempt, live) in metered {
            self.meter(key, attempt, live, true);
        }
        if let Some(remote) = self.executor.remote() {
            remote.adopt(adopted);
        }
    }

    /// A remote worker's start of `attempt`: the TaskInstance becomes `running` on
    /// that worker, by this process's clock.
    pub(super) fn remote_start(
        &mut self,
        key: &TiKey,
        try_number: u32,
        attempt: u64,
        worker: &str,
    ) -> Result<u32, Refusal> {
        if self.in_flight.get(key) != Some(&(try_number, attempt)) {
            return Err(Refusal::Superseded);
        }
        let now = self.now();
        let Some(ti) = self.ti(key) else {
            return Err(Refusal::Superseded);
        };
        let same_worker = ti.hostname == worker;
        match ti.state {
            S::Queued => {
                self.mark_running(key, now, Some(worker));
                let (executor, worker) = (self.executor.clone(), worker.to_owned());
                self.after_commit.push(Box::new(move || {
                    if let Some(remote) = executor.remote() {
                        remote.started(attempt, &worker, now);
                    }
                }));
                Ok(try_number)
            }
            // The same worker again: its first answer was lost.
            S::Running if same_worker => Ok(try_number),
            S::Running => Err(Refusal::RunningElsewhere),
            _ => Err(Refusal::NotQueued),
        }
    }

    /// Tells the executor that recovery has handed it everything (see
    /// [`RemoteExecutor::ready`]).
    pub(in crate::scheduler) fn executor_ready(&self) {
        if let Some(remote) = self.executor.remote() {
            remote.ready();
        }
    }

    /// The cap of a try's live log: a remote try's copy takes the worker's whole
    /// log, which its own marker and closing line take past `log_bytes`.
    pub(super) fn live_log_bytes(&self) -> usize {
        if self.executor.remote().is_some() {
            self.config.log_bytes + REMOTE_LOG_SLACK
        } else {
            self.config.log_bytes
        }
    }
}
