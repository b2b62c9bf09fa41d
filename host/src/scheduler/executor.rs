//! The scheduler's side of the executor boundary: the work it hands out ([`Job`],
//! [`CallbackJob`]), the trait whoever runs it implements ([`Executor`]) and the only
//! messages an executor may send back ([`ExecutorEvent`] through an [`EventSink`]).
//!
//! The scheduler owns this contract and the executors (`crate::executors`) depend on
//! it, never the other way: the scheduler knows nothing of Redis or of slots.

use super::Command;
use aileron_model::{RunKey, TiKey};
use aileron_sandbox::{LiveUsage, LogBuffer, TryReport, TryRequest};
use jiff::Timestamp;
use std::sync::Arc;
use tokio::sync::mpsc;

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

/// Which callback run a [`CallbackJob`] is: its DagRun and its order within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallbackId {
    pub run: RunKey,
    pub seq: u64,
}

/// One callback operator run (`on_failure` and friends).
pub struct CallbackJob {
    pub id: CallbackId,
    pub request: TryRequest,
}

/// Where the scheduler sends work. The local executor runs it in-process; a remote
/// one (Redis Streams) hands it to workers.
pub trait Executor: Send + Sync + 'static {
    fn submit(&self, job: Job);
    /// Stops a try the scheduler no longer wants (cleared, marked, deleted): its
    /// sandbox is dropped and its slot freed. A try already finished is unaffected.
    fn cancel(&self, key: &TiKey, try_number: u32, attempt: u64);
    /// Runs a callback outside the task slots, so a notification never waits
    /// behind the tasks it reports on; reports [`ExecutorEvent::CallbackFinished`].
    fn submit_callback(&self, job: CallbackJob);
    /// The hooks of an executor whose tries run in other processes that outlive
    /// this one (workers); `None` for one that runs them in this process.
    fn remote(&self) -> Option<&dyn RemoteExecutor> {
        None
    }
}

/// What only an executor with remote workers needs: a restarted scheduler keeps its
/// queued and running tries instead of failing them, and hands the running ones
/// back to it.
pub trait RemoteExecutor {
    /// After a restart: tries the metastore says are running, to watch again as
    /// if this process had started them.
    fn adopt(&self, running: Vec<AdoptedTry>);
    /// Recovery is over: every try it kept was adopted or submitted again. The
    /// executor compares its queue with what it holds only after this, or it would
    /// take the entries of kept tries for strays.
    fn ready(&self);
    /// A worker's start of `attempt` was committed: the attempt leaves the queue
    /// and is watched for heartbeats. Called after the commit and before the worker
    /// is answered, so a cancel is never undone by a start still being answered.
    fn started(&self, attempt: u64, worker: &str, at: Timestamp);
}

/// A try that was running when the scheduler restarted.
pub struct AdoptedTry {
    pub key: TiKey,
    pub try_number: u32,
    pub attempt: u64,
    /// Who runs it (the TaskInstance's `hostname`: a worker id).
    pub worker: String,
    pub started: Timestamp,
    /// Its live log, refilled by the worker.
    pub log: Arc<LogBuffer>,
    /// What it has used, refilled by the worker's heartbeats.
    pub live: Arc<LiveUsage>,
}

/// What an executor tells the scheduler. Each is applied only if `(try_number,
/// attempt)` is still the TaskInstance's current dispatch.
pub enum ExecutorEvent {
    /// A try began running in this process (local executor).
    Started {
        key: TiKey,
        try_number: u32,
        attempt: u64,
        at: Timestamp,
    },
    /// A try ended, or its executor gave up on it (a worker's heartbeats stopped).
    Finished {
        key: TiKey,
        try_number: u32,
        attempt: u64,
        started: Timestamp,
        ended: Timestamp,
        report: TryReport,
    },
    /// A callback operator finished.
    CallbackFinished {
        id: CallbackId,
        started: Timestamp,
        ended: Timestamp,
        report: TryReport,
        log: String,
    },
}

/// The scheduler's channel as an executor sees it: it can report events and
/// nothing else. Cheap to clone.
#[derive(Clone)]
pub struct EventSink(mpsc::UnboundedSender<Command>);

impl EventSink {
    pub(super) fn new(tx: mpsc::UnboundedSender<Command>) -> Self {
        Self(tx)
    }

    /// Reports `event`; false once the scheduler has stopped.
    pub fn send(&self, event: ExecutorEvent) -> bool {
        self.0.send(Command::Executor(event)).is_ok()
    }

    /// Whether the scheduler has stopped (background loops end then).
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// A sink and the receiving end of its channel, for an executor's tests.
    pub fn for_tests() -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }
}
