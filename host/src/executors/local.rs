//! The local executor: the queue lives inside it. A bounded queue feeds a fixed number
//! of slots; each slot runs one TaskInstance try in the sandbox and reports back to
//! the scheduler.

use super::callbacks::CallbackRunner;
use crate::scheduler::{CallbackJob, EventSink, Executor, ExecutorEvent, Job};
use crate::sync::LockExt;
use aileron_model::TiKey;
use aileron_model::clock::Clock;
use aileron_sandbox::{Sandbox, TryReport, TryResult};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;

type TryId = (TiKey, u32);

/// How long a try runs before its start is reported on its own. A try that ends
/// sooner (most tries of small operators do, in well under a millisecond) is
/// reported once, by its end, which carries its start time: one scheduler
/// report and one TaskInstance write instead of two, and no turn (with its
/// commit) spent on a start that its end follows at once. Short enough that a
/// try is seen `running` without a noticeable delay.
const REPORT_START_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

/// Tries in the executor: running ones can be aborted (what they used so far
/// the scheduler reads from the try's `LiveUsage`, which it handed out); queued
/// ones that were cancelled are skipped when their turn comes.
#[derive(Default)]
struct Tracking {
    running: HashMap<TryId, AbortHandle>,
    cancelled: HashSet<TryId>,
}

/// Runs jobs in this process, at most `slots` at a time.
pub struct LocalExecutor {
    queue: mpsc::Sender<Job>,
    events: EventSink,
    clock: Arc<dyn Clock>,
    tracking: Arc<Mutex<Tracking>>,
    callbacks: CallbackRunner,
}

impl LocalExecutor {
    /// `capacity` bounds the queue; the scheduler never has more than its
    /// `parallelism` TaskInstances in flight, so a capacity of at least that never
    /// blocks it. Reports go to `events`.
    pub fn start(
        sandbox: Sandbox,
        slots: usize,
        capacity: usize,
        events: EventSink,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let (queue, mut rx) = mpsc::channel::<Job>(capacity.max(1));
        let slots = Arc::new(Semaphore::new(slots.max(1)));
        let tracking: Arc<Mutex<Tracking>> = Arc::default();
        let this = Arc::new(Self {
            queue,
            events: events.clone(),
            clock: clock.clone(),
            tracking: tracking.clone(),
            callbacks: CallbackRunner::new(sandbox.clone(), events.clone(), clock.clone()),
        });
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let id = (job.key.clone(), job.try_number);
                let mut t = tracking.locked();
                if t.cancelled.remove(&id) {
                    continue;
                }
                let sandbox = sandbox.clone();
                let events = events.clone();
                let clock = clock.clone();
                let done = tracking.clone();
                let handle = tokio::spawn(async move {
                    let started = clock.now();
                    let run = sandbox.run(job.request);
                    tokio::pin!(run);
                    let report = tokio::select! {
                        biased;
                        // Done within the grace: its end says when it started.
                        report = &mut run => report,
                        () = tokio::time::sleep(REPORT_START_AFTER) => {
                            events.send(ExecutorEvent::Started {
                                key: job.key.clone(),
                                try_number: job.try_number,
                                attempt: job.attempt,
                                at: started,
                            });
                            run.await
                        }
                    };
                    metrics::histogram!("aileron_sandbox_run_seconds")
                        .record(report.duration.as_secs_f64());
                    let ended = clock.now();
                    let current = done
                        .locked()
                        .running
                        .remove(&(job.key.clone(), job.try_number))
                        .is_some();
                    if !current {
                        // Cancelled as it ended: the scheduler no longer wants
                        // the outcome, and charged the usage when it cancelled.
                        return;
                    }
                    events.send(ExecutorEvent::Finished {
                        key: job.key,
                        try_number: job.try_number,
                        attempt: job.attempt,
                        started,
                        ended,
                        report,
                    });
                    drop(permit);
                });
                t.running.insert(id, handle.abort_handle());
            }
        });
        this
    }
}

impl Executor for LocalExecutor {
    fn submit(&self, job: Job) {
        if let Err(e) = self.queue.try_send(job) {
            // Cannot happen while capacity >= parallelism; should it, the try fails
            // (and is retried) rather than vanish.
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            let now = self.clock.now();
            self.events.send(ExecutorEvent::Finished {
                key: job.key,
                try_number: job.try_number,
                attempt: job.attempt,
                started: now,
                ended: now,
                report: TryReport {
                    result: TryResult::Failed("the executor's queue is full".to_owned()),
                    xcom: Vec::new(),
                    duration: std::time::Duration::ZERO,
                    usage: Default::default(),
                },
            });
        }
    }

    fn submit_callback(&self, job: CallbackJob) {
        self.callbacks.run(job);
    }

    fn cancel(&self, key: &TiKey, try_number: u32, _attempt: u64) {
        let id = (key.clone(), try_number);
        let mut t = self.tracking.locked();
        match t.running.remove(&id) {
            // Aborting drops the sandbox's future, which stops the guest at its next
            // yield point (every epoch tick) and frees the slot. What it used so
            // far the scheduler charged from the try's `LiveUsage`.
            Some(handle) => handle.abort(),
            None => {
                t.cancelled.insert(id);
            }
        }
    }
}
