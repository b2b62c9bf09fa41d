//! The scheduler: the single writer of the metastore. It turns DAGs into DagRuns and
//! TaskInstances, decides what runs next, hands work to the executor and applies what
//! comes back, committing each batch of changes in one transaction.
//!
//! It is an actor: everything reaches it as a [`Command`] on one channel. Each turn of
//! its loop takes the pending commands (all of them, unless tenants compete: see
//! `inbox`), applies them to the in-memory state of the
//! active runs, plans (trigger rules, retries, new runs, admission), commits the batch,
//! and only then dispatches work and answers callers. Dispatching after the commit
//! means a crash can never leave work running that the metastore does not know about.
//!
//! Scheduling is event-driven: a finished TaskInstance is a command, so its downstream
//! tasks are evaluated in the very next turn. Timers (schedules, retry delays) only
//! decide how long the loop may sleep when nothing arrives. Time comes from an
//! injected [`Clock`], so tests run retries and schedules on a simulated clock.

pub mod executor;
pub mod heartbeat;
mod inbox;
pub mod planner;
mod shell;
mod task_host;

use aileron_model::TiKey;
pub use executor::{
    AdoptedTry, CallbackId, CallbackJob, EventSink, Executor, ExecutorEvent, Job, RemoteExecutor,
};
pub use planner::admission::{DEFAULT_POOL, DEFAULT_POOL_SLOTS};
pub use shell::backfill::{BackfillDate, BackfillRequest, MAX_BACKFILL_RUNS};
pub use shell::retention::CleanChunk;
pub use shell::usage::{HeldBack, TenantNow};
pub use task_host::MetastoreHost;

use crate::dag_processor::FileResult;
use crate::metastore::{BackfillRecord, DagRun, Metastore, MetastoreError, RunType, TaskInstance};
use crate::sync::LockExt;
use aileron_model::clock::Clock;
use aileron_protocol::wire::Refusal;
use aileron_sandbox::{LogBuffer, TryReport};
use inbox::Inbox;
use jiff::Timestamp;
use shell::State;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

/// What the scheduler is told to do.
pub enum Command {
    /// Parse results of DAG files (`None`: the file is gone). `full` marks a scan of
    /// the whole folder: DAGs whose files were not in it become inactive.
    DagFiles {
        files: Vec<(String, Option<FileResult>)>,
        full: bool,
    },
    Trigger {
        tenant: String,
        dag_id: String,
        run_id: Option<String>,
        logical_date: Option<Timestamp>,
        conf: serde_json::Map<String, serde_json::Value>,
        reply: oneshot::Sender<Result<DagRun, SchedulerError>>,
    },
    SetPaused {
        tenant: String,
        dag_id: String,
        paused: bool,
        reply: oneshot::Sender<Result<(), SchedulerError>>,
    },
    /// A report from the executor.
    Executor(ExecutorEvent),
    /// A remote worker asks to start a dispatched attempt (`/execution/v1`).
    /// Answered after the commit with the try number, or why it may not.
    RemoteStart {
        key: TiKey,
        try_number: u32,
        attempt: u64,
        worker: String,
        reply: oneshot::Sender<Result<u32, Refusal>>,
    },
    /// A remote worker reports how its attempt ended. Answered after the commit
    /// with the TaskInstance's new state, or why the report was refused.
    RemoteFinish {
        key: TiKey,
        try_number: u32,
        attempt: u64,
        worker: String,
        report: TryReport,
        reply: oneshot::Sender<Result<aileron_model::TaskInstanceState, Refusal>>,
    },
    Clear {
        tenant: String,
        dag_id: String,
        run_id: String,
        opts: ClearOptions,
        reply: oneshot::Sender<Result<Vec<TaskInstance>, SchedulerError>>,
    },
    SetTaskState {
        target: TaskTarget,
        state: aileron_model::TaskInstanceState,
        downstream: bool,
        upstream: bool,
        reply: oneshot::Sender<Result<Vec<TaskInstance>, SchedulerError>>,
    },
    SetRunState {
        tenant: String,
        dag_id: String,
        run_id: String,
        state: aileron_model::DagRunState,
        reply: oneshot::Sender<Result<DagRun, SchedulerError>>,
    },
    DeleteRun {
        tenant: String,
        dag_id: String,
        run_id: String,
        reply: oneshot::Sender<Result<(), SchedulerError>>,
    },
    /// Deletes a DAG with its history (`shell/delete_dag.rs`); answers how
    /// many runs went.
    DeleteDag {
        tenant: String,
        dag_id: String,
        reply: oneshot::Sender<Result<usize, SchedulerError>>,
    },
    /// One chunk of `db clean`; answered after its commit.
    CleanHistory {
        tenant: Option<String>,
        before: Timestamp,
        limit: usize,
        reply: oneshot::Sender<Result<CleanChunk, SchedulerError>>,
    },
    CreateBackfill {
        request: BackfillRequest,
        reply: oneshot::Sender<Result<(BackfillRecord, Vec<BackfillDate>), SchedulerError>>,
    },
    SetBackfillPaused {
        tenant: String,
        id: u64,
        paused: bool,
        reply: oneshot::Sender<Result<BackfillRecord, SchedulerError>>,
    },
    CancelBackfill {
        tenant: String,
        id: u64,
        reply: oneshot::Sender<Result<BackfillRecord, SchedulerError>>,
    },
    /// A pool was created, resized or deleted: reload pool sizes and admit again.
    PoolsChanged,
    /// A tenant's limits changed: reload them and admit again.
    TenantsChanged,
    /// Each tenant's usage now (`shell/usage.rs`).
    TenantUsage {
        /// One tenant's alone, or every tenant's.
        tenant: Option<String>,
        reply: oneshot::Sender<BTreeMap<String, TenantNow>>,
    },
    /// Answered once every command sent before it is applied and committed.
    Sync {
        reply: oneshot::Sender<()>,
    },
    Shutdown,
}

/// What `clear` resets (Airflow's "Clear" with its options).
#[derive(Debug, Clone, Default)]
pub struct ClearOptions {
    /// The tasks to clear; `None` clears every task of the run.
    pub task_ids: Option<Vec<String>>,
    pub downstream: bool,
    pub upstream: bool,
    /// Only TaskInstances that are `failed` or `upstream_failed`.
    pub only_failed: bool,
    /// Say what would be cleared, change nothing.
    pub dry_run: bool,
}

/// One task (all its map indexes, or one) of one DagRun.
#[derive(Debug, Clone)]
pub struct TaskTarget {
    pub tenant: String,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("DAG `{0}` not found")]
    DagNotFound(String),
    #[error("DagRun `{run_id}` of DAG `{dag_id}` not found")]
    RunNotFound { dag_id: String, run_id: String },
    #[error("task `{task_id}` not found in DagRun `{run_id}` of DAG `{dag_id}`")]
    TaskNotFound {
        dag_id: String,
        run_id: String,
        task_id: String,
    },
    #[error("{0}")]
    InvalidState(String),
    #[error("DagRun `{run_id}` already exists for DAG `{dag_id}`")]
    RunExists { dag_id: String, run_id: String },
    #[error("invalid conf: {0}")]
    BadConf(String),
    /// A well-formed request that cannot be done as asked (422).
    #[error("{0}")]
    Invalid(String),
    #[error("backfill {0} not found")]
    BackfillNotFound(u64),
    #[error(transparent)]
    Metastore(#[from] MetastoreError),
    #[error("the scheduler has stopped")]
    Stopped,
    /// A bug in the scheduler, logged where it happened; only this command failed.
    #[error("the scheduler hit an internal error (see its log); the request was not completed")]
    Internal,
}

/// A state change, broadcast after it is committed (for the UI, `dags test`, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    DagRun {
        tenant: String,
        dag_id: String,
        run_id: String,
        state: aileron_model::DagRunState,
    },
    TaskInstance {
        tenant: String,
        dag_id: String,
        run_id: String,
        task_id: String,
        map_index: i64,
        state: aileron_model::TaskInstanceState,
        try_number: u32,
    },
    Dags,
}

/// Knobs of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How many TaskInstances may be queued or running at once (Airflow's
    /// `parallelism`).
    pub parallelism: usize,
    /// Create runs from DAG schedules (off for `aileron dags test`).
    pub create_scheduled_runs: bool,
    /// Airflow's `dags_are_paused_at_creation`.
    pub paused_at_creation: bool,
    /// Per-try log cap in bytes.
    pub log_bytes: usize,
    pub hostname: String,
    /// Let tasks' outbound HTTP reach loopback and private addresses (off: an
    /// allow-listed name that resolves to one is refused). See `Limits`.
    pub allow_private_ips: bool,
    /// Delete finished runs older than this, checked every hour (`db clean`
    /// on a timer); `None` keeps all history.
    pub retention: Option<std::time::Duration>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            parallelism: 32,
            create_scheduled_runs: true,
            paused_at_creation: false,
            log_bytes: 1 << 20,
            hostname: aileron_protocol::hostname(),
            allow_private_ips: false,
            retention: None,
        }
    }
}

/// Logs of tries that are running right now, readable while they grow.
pub type LiveLogs = Arc<Mutex<HashMap<(TiKey, u32), Arc<LogBuffer>>>>;

/// The way to talk to a running scheduler; cheap to clone.
#[derive(Clone)]
pub struct SchedulerHandle {
    tx: mpsc::UnboundedSender<Command>,
    updates: broadcast::Sender<Update>,
    live_logs: LiveLogs,
    heartbeat: heartbeat::Heartbeat,
}

impl SchedulerHandle {
    /// Resolves once the scheduler has stopped (its command channel closed):
    /// loops that serve it end with it, and let go of what they hold.
    pub async fn stopped(&self) {
        self.tx.closed().await;
    }

    pub fn send(&self, cmd: Command) -> Result<(), SchedulerError> {
        self.tx.send(cmd).map_err(|_| SchedulerError::Stopped)
    }

    pub fn is_alive(&self) -> bool {
        !self.tx.is_closed()
    }

    /// When the scheduler started and last finished a turn.
    pub fn heartbeat(&self) -> &heartbeat::Heartbeat {
        &self.heartbeat
    }

    /// Running, and its loop turned within the health threshold.
    pub fn is_healthy(&self) -> bool {
        self.is_alive() && self.heartbeat.is_fresh()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    pub fn live_log(&self, key: &TiKey, try_number: u32) -> Option<String> {
        let logs = self.live_logs.locked();
        logs.get(&(key.clone(), try_number)).map(|l| l.snapshot())
    }

    pub async fn trigger(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: Option<String>,
        logical_date: Option<Timestamp>,
        conf: serde_json::Map<String, serde_json::Value>,
    ) -> Result<DagRun, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Trigger {
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
            run_id,
            logical_date,
            conf,
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    pub async fn set_paused(
        &self,
        tenant: &str,
        dag_id: &str,
        paused: bool,
    ) -> Result<(), SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SetPaused {
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
            paused,
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// Creates a backfill (or, with `dry_run`, only plans it): the record and what
    /// happens to each logical date.
    pub async fn create_backfill(
        &self,
        request: BackfillRequest,
    ) -> Result<(BackfillRecord, Vec<BackfillDate>), SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::CreateBackfill { request, reply })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    pub async fn set_backfill_paused(
        &self,
        tenant: &str,
        id: u64,
        paused: bool,
    ) -> Result<BackfillRecord, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SetBackfillPaused {
            tenant: tenant.to_owned(),
            id,
            paused,
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    pub async fn cancel_backfill(
        &self,
        tenant: &str,
        id: u64,
    ) -> Result<BackfillRecord, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::CancelBackfill {
            tenant: tenant.to_owned(),
            id,
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// Clears TaskInstances of a run so they run again; returns what was (or, with
    /// `dry_run`, would be) cleared.
    pub async fn clear(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        opts: ClearOptions,
    ) -> Result<Vec<TaskInstance>, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Clear {
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
            opts,
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// Marks TaskInstances `success`, `failed` or `skipped` (Airflow's "Mark
    /// success/failed"), optionally with their downstream or upstream tasks.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_task_state(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: Option<i64>,
        state: aileron_model::TaskInstanceState,
        downstream: bool,
        upstream: bool,
    ) -> Result<Vec<TaskInstance>, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SetTaskState {
            target: TaskTarget {
                tenant: tenant.to_owned(),
                dag_id: dag_id.to_owned(),
                run_id: run_id.to_owned(),
                task_id: task_id.to_owned(),
                map_index,
            },
            state,
            downstream,
            upstream,
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// Sets a DagRun's state: `success` marks all its TaskInstances success,
    /// `failed` fails running ones and skips unfinished ones, `queued` runs it again.
    pub async fn set_run_state(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        state: aileron_model::DagRunState,
    ) -> Result<DagRun, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::SetRunState {
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
            state,
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// Deletes a DagRun with its TaskInstances, XCom and logs.
    pub async fn delete_run(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
    ) -> Result<(), SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::DeleteRun {
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// Deletes a DAG with every run and what it holds, its backfills and its
    /// versions; refused while its TaskInstances run. Its file is left: a DAG
    /// whose file is there comes back at the next parse, with no history.
    pub async fn delete_dag(&self, tenant: &str, dag_id: &str) -> Result<usize, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::DeleteDag {
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// Deletes up to `limit` finished runs of `tenant` (every tenant when `None`)
    /// older than `before`, with everything they hold (see
    /// `Metastore::expired_runs`). Ask again while the answer says `more`.
    pub async fn clean_history(
        &self,
        tenant: Option<&str>,
        before: Timestamp,
        limit: usize,
    ) -> Result<CleanChunk, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::CleanHistory {
            tenant: tenant.map(str::to_owned),
            before,
            limit,
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// Each tenant's usage now (or one tenant's): in-flight counts, the CPU
    /// budget, metered totals.
    pub async fn tenant_usage(
        &self,
        tenant: Option<&str>,
    ) -> Result<BTreeMap<String, TenantNow>, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::TenantUsage {
            tenant: tenant.map(str::to_owned),
            reply,
        })?;
        rx.await.map_err(|_| SchedulerError::Stopped)
    }

    /// Waits until everything sent before is applied and committed.
    pub async fn sync(&self) -> Result<(), SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Sync { reply })?;
        rx.await.map_err(|_| SchedulerError::Stopped)
    }

    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }
}

/// A scheduler ready to run; see [`Scheduler::spawn`].
pub struct Scheduler {
    state: State,
    inbox: Inbox,
    handle: SchedulerHandle,
}

impl Scheduler {
    /// Loads the active runs from the metastore and recovers what a crash left behind:
    /// tries that were running are failed (retried if retries remain), queued work goes
    /// back to `scheduled`.
    /// `executor` builds the executor from the channel it reports back on.
    pub fn new(
        metastore: Metastore,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
        executor: impl FnOnce(EventSink) -> Arc<dyn Executor>,
    ) -> Result<Self, SchedulerError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let executor = executor(EventSink::new(tx.clone()));
        let (updates, _) = broadcast::channel(65_536);
        let live_logs: LiveLogs = Arc::default();
        let handle = SchedulerHandle {
            tx,
            updates,
            live_logs: live_logs.clone(),
            heartbeat: heartbeat::Heartbeat::new(),
        };
        let mut state = State::load(metastore, executor, clock, config, live_logs)?;
        state.set_event_sink(EventSink::new(handle.tx.clone()));
        state.recover();
        let updates = state.commit()?;
        // What recovery kept (remote executors: queued tries) is submitted now, so
        // the executor holds all of it before it looks at its queue.
        state.dispatch();
        state.executor_ready();
        for u in updates {
            let _ = handle.updates.send(u);
        }
        Ok(Self {
            state,
            inbox: Inbox::new(rx),
            handle,
        })
    }

    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Runs the scheduler on a thread of its own until it stops; the handle
    /// resolves with how it ended (a panic in it resolves as one). When the
    /// caller's runtime shuts down, the scheduler is told to stop as well.
    ///
    /// Not a task on the caller's runtime: each turn blocks in the metastore's
    /// commit (writes and an fsync), which would hold one of that runtime's few
    /// worker threads, and the guests and API requests queued on it, for the
    /// length of every commit; and each turn would queue behind the guests ready
    /// to run there. (On the 2-core bench machine, a 1,000-task fan-out runs about
    /// twice as fast this way.)
    pub fn spawn(self) -> std::io::Result<JoinHandle<Result<(), SchedulerError>>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = oneshot::channel();
        let stop = StopOnDrop(self.handle.clone());
        std::thread::Builder::new()
            .name("aileron-scheduler".into())
            .spawn(move || {
                let _ = tx.send(runtime.block_on(self.run()));
            })?;
        Ok(tokio::spawn(async move {
            let _stop = stop;
            rx.await.expect("the scheduler thread panicked")
        }))
    }

    /// Runs until [`Command::Shutdown`] or until every handle is dropped.
    async fn run(mut self) -> Result<(), SchedulerError> {
        loop {
            // Plan, commit, then act: see the module docs for why in this order.
            self.state.plan();
            let updates = self.state.commit()?;
            self.state.dispatch();
            for u in updates {
                let _ = self.handle.updates.send(u);
            }
            self.handle.heartbeat.beat();

            // Reports held back from the last turn are taken without waiting.
            let first = if self.inbox.has_held() {
                None
            } else {
                match self.inbox.try_next() {
                    Ok(cmd) => Some(cmd),
                    Err(mpsc::error::TryRecvError::Disconnected) => return self.stop(),
                    Err(mpsc::error::TryRecvError::Empty) => match self.wait().await {
                        Some(cmd) => Some(cmd),
                        None => continue,
                    },
                }
            };
            // One commit covers the whole turn (group commit); see `inbox` for
            // what a turn takes when tenants compete.
            let caps = inbox::caps(self.state.tenants_in_flight());
            for cmd in self.inbox.turn(first, &caps) {
                if !self.state.handle(cmd) {
                    return self.stop();
                }
            }
        }
    }

    /// Commits what the commands handled so far changed, so a shutdown loses nothing
    /// that was already applied in memory.
    fn stop(mut self) -> Result<(), SchedulerError> {
        let updates = self.state.commit()?;
        for u in updates {
            let _ = self.handle.updates.send(u);
        }
        Ok(())
    }

    /// Waits for the next command or timer. With a simulated clock and nothing in
    /// flight, a run waiting for a retry or reschedule has the clock jump straight to
    /// that moment; schedules never move a simulated clock (the test does).
    async fn wait(&mut self) -> Option<Command> {
        let (next, task_timer) = self.state.next_timer();
        let now = self.state.now();
        if let Some(t) = task_timer
            && self.state.in_flight() == 0
            && (t <= now || self.state.clock().advance_to(t))
        {
            return None;
        }
        match next {
            Some(t) if t <= now => None,
            Some(t) => {
                // A real clock can be stepped by the OS; and an idle scheduler
                // still turns to beat its heartbeat.
                let wait = t.duration_since(now).unsigned_abs().min(heartbeat::EVERY);
                tokio::select! {
                    cmd = self.inbox.recv() => Some(cmd.unwrap_or(Command::Shutdown)),
                    _ = tokio::time::sleep(wait) => None,
                }
            }
            None => tokio::select! {
                cmd = self.inbox.recv() => Some(cmd.unwrap_or(Command::Shutdown)),
                _ = tokio::time::sleep(heartbeat::EVERY) => None,
            },
        }
    }
}

/// Tells the scheduler to stop when dropped: the scheduler holds senders to its own
/// channel (through its executor), so it would not see its callers go.
struct StopOnDrop(SchedulerHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// `manual__2026-01-01T00:00:00+00:00`, as Airflow names runs (Python's isoformat:
/// microseconds only when there are any).
pub fn run_id_for(run_type: RunType, logical_date: Timestamp) -> String {
    let format = if logical_date.subsec_nanosecond() == 0 {
        "%Y-%m-%dT%H:%M:%S+00:00"
    } else {
        "%Y-%m-%dT%H:%M:%S%.6f+00:00"
    };
    let ts = logical_date.strftime(format).to_string();
    format!("{}__{ts}", run_type.as_str())
}

/// What `aileron tasks test` prints.
pub struct TaskTestReport {
    pub log: String,
    pub summary: String,
    pub ok: bool,
}

/// Runs one task of `spec` in the sandbox as a fresh, unrecorded TaskInstance
/// (Airflow's `tasks test`): params rendered for a manual run at `logical_date`
/// with `extra` merged over them, no upstream XCom, nothing written.
pub async fn test_task(
    sandbox: &aileron_sandbox::Sandbox,
    spec: &aileron_model::dag::DagSpec,
    task: &aileron_model::dag::TaskSpec,
    logical_date: Timestamp,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<TaskTestReport, SchedulerError> {
    use aileron_sandbox::{Limits, TaskInfo, TryRequest, TryResult};
    let metastore = Metastore::in_memory()?;
    let run = DagRun {
        tenant: spec.tenant.clone(),
        dag_id: spec.dag_id.clone(),
        run_id: run_id_for(RunType::Manual, logical_date),
        run_type: RunType::Manual,
        state: aileron_model::DagRunState::Running,
        logical_date,
        data_interval: spec
            .schedule
            .manual_interval(&spec.schedule_context(), logical_date),
        conf: serde_json::Map::new(),
        dag_version: spec.version.clone(),
        queued_at: logical_date,
        start_date: None,
        end_date: None,
        seq: 0,
        backfill_id: None,
    };
    let active = planner::ActiveRun::new(run.clone(), Arc::new(spec.clone()), Default::default());
    let lookups = task_host::RenderLookups::new(&metastore, &HashMap::new(), &run);
    let log = Arc::new(LogBuffer::new(1 << 20));
    let mut params = match task_host::render(&lookups, &active, task, None, &task.params) {
        Ok(p) => p,
        Err(e) => {
            return Ok(TaskTestReport {
                log: String::new(),
                summary: format!("failed: cannot render params: {e}"),
                ok: false,
            });
        }
    };
    if let serde_json::Value::Object(m) = &mut params {
        m.extend(extra);
    }
    let report = sandbox
        .run(TryRequest {
            tenant: spec.tenant.clone(),
            digest: task.operator_digest.clone(),
            info: TaskInfo {
                dag_id: spec.dag_id.clone(),
                run_id: run.run_id.clone(),
                task_id: task.task_id.clone(),
                map_index: None,
                try_number: 1,
                logical_date: logical_date.to_string(),
                data_interval_start: run.data_interval.start.to_string(),
                data_interval_end: run.data_interval.end.to_string(),
            },
            params,
            limits: Limits {
                memory_bytes: task.memory_limit,
                timeout: task.execution_timeout,
                ..Limits::default()
            },
            host: Arc::new(MetastoreHost::new(
                metastore.clone(),
                &spec.tenant,
                &spec.dag_id,
                &run.run_id,
            )),
            live: Default::default(),
            log: log.clone(),
        })
        .await;
    let (summary, ok) = match report.result {
        TryResult::Success(Some(v)) => (format!("success, returned {v}"), true),
        TryResult::Success(None) => ("success".to_owned(), true),
        TryResult::Skip(r) => (format!("skipped: {r}"), true),
        TryResult::Branch(b) => (format!("branch to {b:?}"), true),
        TryResult::Reschedule(s) => (format!("reschedule in {s}s"), true),
        TryResult::SkipDownstream { all } => (
            format!(
                "success, skipping {} downstream tasks",
                if all { "all" } else { "the direct" }
            ),
            true,
        ),
        TryResult::Failed(e) => (format!("failed: {e}"), false),
        TryResult::Fatal(e) => (format!("failed (fatal): {e}"), false),
    };
    Ok(TaskTestReport {
        log: log.snapshot(),
        summary,
        ok,
    })
}
