//! Callbacks (`on_failure` and friends) run in this process whatever the executor,
//! outside the task slots, at most [`CALLBACK_SLOTS`] at once.

use crate::scheduler::{CallbackJob, EventSink, ExecutorEvent};
use aileron_model::clock::Clock;
use aileron_sandbox::Sandbox;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

/// How many callbacks one process runs at once; more wait their turn. (With
/// workers, callbacks still run in the scheduler's process.)
pub const CALLBACK_SLOTS: usize = 4;

/// Runs callbacks on the runtime it was made on. The scheduler calls
/// [`CallbackRunner::run`] from its own thread, and a callback must not run there:
/// it would hold up every turn while its guest runs.
pub struct CallbackRunner {
    runtime: Handle,
    sandbox: Sandbox,
    slots: Arc<Semaphore>,
    events: EventSink,
    clock: Arc<dyn Clock>,
}

impl CallbackRunner {
    /// Must be called inside the tokio runtime the callbacks should run on.
    pub fn new(sandbox: Sandbox, events: EventSink, clock: Arc<dyn Clock>) -> Self {
        Self {
            runtime: Handle::current(),
            sandbox,
            slots: Arc::new(Semaphore::new(CALLBACK_SLOTS)),
            events,
            clock,
        }
    }

    /// Runs `job` once a slot is free and reports it.
    pub fn run(&self, job: CallbackJob) {
        let (sandbox, slots) = (self.sandbox.clone(), self.slots.clone());
        let (events, clock) = (self.events.clone(), self.clock.clone());
        self.runtime.spawn(async move {
            let Ok(_permit) = slots.acquire_owned().await else {
                return;
            };
            let started = clock.now();
            let log = job.request.log.clone();
            let report = sandbox.run(job.request).await;
            events.send(ExecutorEvent::CallbackFinished {
                id: job.id,
                started,
                ended: clock.now(),
                report,
                log: log.snapshot(),
            });
        });
    }
}
