//! The local executor: the queue lives inside it. A bounded queue feeds a fixed number
//! of slots; each slot runs one TaskInstance try in the sandbox and reports back to
//! the scheduler.

use crate::scheduler::Command;
use crate::sync::LockExt;
use aileron_model::TiKey;
use aileron_model::clock::Clock;
use aileron_sandbox::{Sandbox, TryReport, TryRequest, TryResult};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;

/// One TaskInstance try to run.
pub struct Job {
    pub key: TiKey,
    pub try_number: u32,
    /// The dispatch's attempt number: what a report must carry to be applied.
    pub attempt: u64,
    /// The task's `queue`: which workers may take it (remote executors).
    pub queue: String,
    pub request: TryRequest,
}

/// One callback operator run (`on_failure` and friends). Identified by its run and
/// its sequence number within the run.
pub struct CallbackJob {
    pub id: CallbackId,
    pub request: TryRequest,
}

/// (tenant, dag id, run id, seq).
pub type CallbackId = (String, String, String, u64);

/// Where the scheduler sends work. The local executor runs it in-process; a remote
/// one (Redis Streams) hands it to workers.
pub trait Executor: Send + Sync + 'static {
    fn submit(&self, job: Job);
    /// Stops a try the scheduler no longer wants (cleared, marked, deleted): its
    /// sandbox is dropped and its slot freed. A try already finished is unaffected.
    fn cancel(&self, key: &TiKey, try_number: u32, attempt: u64);
    /// Runs a callback outside the task slots, so a notification never waits
    /// behind the tasks it reports on; reports `Command::CallbackFinished`.
    fn submit_callback(&self, job: CallbackJob);
    /// Whether tries run in other processes that outlive this one (workers). Then a
    /// restarted scheduler keeps queued and running tries instead of failing them.
    fn is_remote(&self) -> bool {
        false
    }
    /// After a restart (remote executors only): tries the metastore says are
    /// running, to watch again as if this process had started them.
    fn adopt(&self, _running: Vec<AdoptedTry>) {}
    /// Recovery is over: every try it kept was adopted or submitted again. A remote
    /// executor compares its queue with what it holds only after this, or it
    /// would take the entries of kept tries for strays.
    fn ready(&self) {}
    /// A remote worker's start of `attempt` was committed (remote executors): the
    /// attempt leaves the queue and is watched for heartbeats. Called by the
    /// scheduler after the commit and before the worker is answered, so a cancel
    /// is never undone by a start that was still being answered.
    fn started(&self, _attempt: u64, _worker: &str, _at: jiff::Timestamp) {}
}

/// A try that was running when the scheduler restarted.
pub struct AdoptedTry {
    pub key: TiKey,
    pub try_number: u32,
    pub attempt: u64,
    /// Who runs it (the TaskInstance's `hostname`: a worker id).
    pub worker: String,
    pub started: jiff::Timestamp,
    /// Its live log, refilled by the worker.
    pub log: Arc<aileron_sandbox::LogBuffer>,
}

/// How many callbacks one process runs at once; more wait their turn. (With
/// workers, callbacks still run in the scheduler's process.)
pub const CALLBACK_SLOTS: usize = 4;

type TryId = (TiKey, u32);

/// Tries in the executor: running ones can be aborted; queued ones that were
/// cancelled are skipped when their turn comes.
#[derive(Default)]
struct Tracking {
    running: HashMap<TryId, AbortHandle>,
    cancelled: HashSet<TryId>,
}

/// Runs jobs in this process, at most `slots` at a time.
pub struct LocalExecutor {
    queue: mpsc::Sender<Job>,
    events: mpsc::UnboundedSender<Command>,
    clock: Arc<dyn Clock>,
    tracking: Arc<Mutex<Tracking>>,
    sandbox: Sandbox,
    callback_slots: Arc<Semaphore>,
}

impl LocalExecutor {
    /// `capacity` bounds the queue; the scheduler never has more than its
    /// `parallelism` TaskInstances in flight, so a capacity of at least that never
    /// blocks it. Reports go to `events`.
    pub fn start(
        sandbox: Sandbox,
        slots: usize,
        capacity: usize,
        events: mpsc::UnboundedSender<Command>,
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
            sandbox: sandbox.clone(),
            callback_slots: Arc::new(Semaphore::new(CALLBACK_SLOTS)),
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
                    let _ = events.send(Command::TaskStarted {
                        key: job.key.clone(),
                        try_number: job.try_number,
                        attempt: job.attempt,
                        at: started,
                    });
                    let report = sandbox.run(job.request).await;
                    metrics::histogram!("aileron_sandbox_run_seconds")
                        .record(report.duration.as_secs_f64());
                    let ended = clock.now();
                    done.lock()
                        .unwrap()
                        .running
                        .remove(&(job.key.clone(), job.try_number));
                    let _ = events.send(Command::TaskFinished {
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
            let _ = self.events.send(Command::TaskFinished {
                key: job.key,
                try_number: job.try_number,
                attempt: job.attempt,
                started: now,
                ended: now,
                report: TryReport {
                    result: TryResult::Failed("the executor's queue is full".to_owned()),
                    xcom: Vec::new(),
                    duration: std::time::Duration::ZERO,
                },
            });
        }
    }

    fn submit_callback(&self, job: CallbackJob) {
        run_callback(
            self.sandbox.clone(),
            self.callback_slots.clone(),
            self.events.clone(),
            self.clock.clone(),
            job,
        );
    }

    fn cancel(&self, key: &TiKey, try_number: u32, _attempt: u64) {
        let id = (key.clone(), try_number);
        let mut t = self.tracking.locked();
        match t.running.remove(&id) {
            // Aborting drops the sandbox's future, which stops the guest at its next
            // yield point (every epoch tick) and frees the slot.
            Some(handle) => handle.abort(),
            None => {
                t.cancelled.insert(id);
            }
        }
    }
}

/// Runs one callback in `sandbox` on a tokio task, within `slots`, and reports it.
pub fn run_callback(
    sandbox: Sandbox,
    slots: Arc<Semaphore>,
    events: mpsc::UnboundedSender<Command>,
    clock: Arc<dyn Clock>,
    job: CallbackJob,
) {
    tokio::spawn(async move {
        let Ok(_permit) = slots.acquire_owned().await else {
            return;
        };
        let started = clock.now();
        let log = job.request.log.clone();
        let report = sandbox.run(job.request).await;
        let _ = events.send(Command::CallbackFinished {
            id: job.id,
            started,
            ended: clock.now(),
            report,
            log: log.snapshot(),
        });
    });
}
