//! The scheduler's in-memory view of active DAGs and runs, and every state transition.
//! Each change is applied in memory and recorded in the pending [`WriteBatch`]; the
//! loop in `mod.rs` commits the batch before anything is dispatched or announced.

use super::executor::{AdoptedTry, CallbackJob, EventSink, Executor, ExecutorEvent, Job};
use super::host::{MetastoreHost, RenderLookups};
use super::{Command, LiveLogs, SchedulerConfig, SchedulerError, Update, run_id_for};
use crate::dag_processor::FileResult;
use crate::metastore::{
    DAG_VERSIONS, DagRecord, DagRun, IMPORT_ERRORS, ImportErrorRecord, LOGS, Metastore, RunType,
    TaskInstance, TryRecord, WriteBatch, XCOM, key, log_key, ti_key, ti_record_key, xcom_key,
};
use crate::sync::LockExt;
use aileron_model::clock::Clock;
use aileron_model::dag::{DagSpec, TaskSpec};
use aileron_model::{DagRunState, TaskInstanceState as S};
use aileron_protocol::wire::Refusal;
use aileron_sandbox::{Limits, LogBuffer, TaskInfo, TryReport, TryRequest, TryResult};
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

#[path = "backfill.rs"]
pub(super) mod backfill;
#[path = "callbacks.rs"]
mod callbacks;
#[path = "manual.rs"]
mod manual;
#[path = "past.rs"]
mod past;

use callbacks::Event;

pub(super) use super::planner::ActiveRun;
use super::planner::admission::{self, Pools, Weights};
use super::planner::completion::{RunOutcome, run_outcome};
use super::planner::timers::{next_run_timer, timed_out_runs};
use super::planner::trigger::{TriggerStep, trigger_step};
pub(super) use aileron_model::{DagKey, RunKey, TiKey};

struct DagEntry {
    record: DagRecord,
    spec: Arc<DagSpec>,
    /// When the next scheduled run is due, cached by `plan`.
    next_due: Option<Timestamp>,
}

/// The longest a sensor may ask to wait before its next poke: a year.
const MAX_RESCHEDULE_SECS: u64 = 366 * 24 * 3600;

/// Extra room in the scheduler's copy of a remote try's log: the worker's buffer
/// holds `log_bytes` plus its truncation marker and closing line, and the copy must
/// take all of it or the offsets of later chunks would stop matching.
const REMOTE_LOG_SLACK: usize = 64 << 10;

/// Most TaskInstances one mapped task may expand to (Airflow's `max_map_length`).
pub const MAX_MAP_LENGTH: usize = 1024;

/// Things to do once the batch is committed.
type AfterCommit = Box<dyn FnOnce() + Send>;

pub(super) struct State {
    metastore: Metastore,
    executor: Arc<dyn Executor>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    live_logs: LiveLogs,
    events: Option<EventSink>,

    dags: HashMap<DagKey, DagEntry>,
    versions: HashMap<(String, String, String), Arc<DagSpec>>,
    runs: BTreeMap<RunKey, ActiveRun>,
    import_errors: HashSet<(String, String)>,
    /// TaskInstances handed to the executor: the try each is running and the
    /// attempt (dispatch) it runs as. A report counts only if both match.
    in_flight: HashMap<TiKey, (u32, u64)>,
    /// The next unused attempt number (persisted as `meta.next_attempt`).
    next_attempt: u64,
    next_seq: u64,

    batch: WriteBatch,
    updates: Vec<Update>,
    after_commit: Vec<AfterCommit>,
    to_dispatch: Vec<(TiKey, u32, u64)>,
    /// XCom written in the current batch, so templates rendered in the same turn see it.
    pub(super) xcom_overlay: HashMap<String, String>,
    dirty_runs: HashSet<RunKey>,
    /// Effective priority weights, cached per DAG version.
    weights: Weights,
    /// Backfills in progress, by id.
    backfills: BTreeMap<u64, crate::metastore::BackfillRecord>,
    /// Each backfill's runs by their place in its order.
    backfill_order: HashMap<u64, HashMap<String, usize>>,
    next_backfill_id: u64,
    /// Runs deleted in this turn: the metastore's run index lists them until
    /// the commit (see `past.rs`).
    deleted_this_turn: HashSet<RunKey>,
    /// Runs that finished this turn: out of `runs`, but their TaskInstances are not
    /// committed yet, and `depends_on_past` checks in this turn must see them.
    pub(super) finished_this_turn: HashMap<RunKey, ActiveRun>,
    /// DAGs with TaskInstances that finished this turn (see `past.rs`).
    finished_in: HashSet<DagKey>,
    /// Callbacks rendered this turn, sent to the executor after the commit.
    callbacks_to_send: Vec<CallbackJob>,
    /// Next callback sequence number of runs in memory.
    callback_seq: HashMap<RunKey, u64>,
    /// Slots of each pool, by (tenant, name); reloaded when the API changes a pool.
    pools: Pools,
    /// The `now` of the last `plan`: timers at or before it were already acted on
    /// (or are blocked on capacity, and a finishing task wakes the loop).
    planned_at: Timestamp,
}

impl State {
    pub fn load(
        metastore: Metastore,
        executor: Arc<dyn Executor>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
        live_logs: LiveLogs,
    ) -> Result<Self, SchedulerError> {
        let mut state = Self {
            metastore: metastore.clone(),
            executor,
            clock,
            config,
            live_logs,
            events: None,
            dags: HashMap::new(),
            versions: HashMap::new(),
            runs: BTreeMap::new(),
            import_errors: HashSet::new(),
            in_flight: HashMap::new(),
            next_attempt: metastore.next_attempt()?,
            next_seq: 1,
            batch: WriteBatch::default(),
            updates: Vec::new(),
            after_commit: Vec::new(),
            to_dispatch: Vec::new(),
            xcom_overlay: HashMap::new(),
            dirty_runs: HashSet::new(),
            planned_at: Timestamp::UNIX_EPOCH,
            weights: Weights::default(),
            pools: Pools(metastore.pool_sizes()?),
            callbacks_to_send: Vec::new(),
            callback_seq: HashMap::new(),
            deleted_this_turn: HashSet::new(),
            finished_in: HashSet::new(),
            finished_this_turn: HashMap::new(),
            backfills: BTreeMap::new(),
            backfill_order: HashMap::new(),
            next_backfill_id: 1,
        };
        state.load_backfills()?;
        for record in metastore.dags()? {
            if let Some(spec) = state.spec(&record.tenant, &record.dag_id, &record.version)? {
                let key = DagKey::new(&record.tenant, &record.dag_id);
                state.dags.insert(
                    key,
                    DagEntry {
                        record,
                        spec,
                        next_due: None,
                    },
                );
            }
        }
        for e in metastore.import_errors()? {
            state.import_errors.insert((e.tenant, e.filename));
        }
        state.next_seq = metastore.next_run_seq()?;
        // Finished runs stay in the metastore: start-up reads the unfinished ones.
        for run in metastore.unfinished_runs()? {
            let Some(spec) = state.spec(&run.tenant, &run.dag_id, &run.dag_version)? else {
                // Without its DAG version the run cannot go on; fail it rather than
                // leave it looking live forever.
                tracing::error!(dag_id = %run.dag_id, run_id = %run.run_id, "DAG version {} is missing; failing the run", run.dag_version);
                let mut run = run;
                run.state = DagRunState::Failed;
                run.end_date = Some(state.clock.now());
                state.batch.put_run(&run);
                continue;
            };
            let tis: BTreeMap<_, _> = metastore
                .task_instances(&run.tenant, &run.dag_id, &run.run_id)?
                .into_iter()
                .map(|ti| ((ti.task_id.clone(), ti.map_index), ti))
                .collect();
            // Belt and braces: never hand out an attempt a stored TaskInstance has.
            for ti in tis.values() {
                state.next_attempt = state.next_attempt.max(ti.attempt + 1);
            }
            let key = run.key();
            state.dirty_runs.insert(key.clone());
            state.runs.insert(key, ActiveRun { run, spec, tis });
        }
        Ok(state)
    }

    fn spec(
        &mut self,
        tenant: &str,
        dag_id: &str,
        version: &str,
    ) -> Result<Option<Arc<DagSpec>>, SchedulerError> {
        let k = (tenant.to_owned(), dag_id.to_owned(), version.to_owned());
        if let Some(s) = self.versions.get(&k) {
            return Ok(Some(s.clone()));
        }
        let Some(spec) = self.metastore.dag_version(tenant, dag_id, version)? else {
            return Ok(None);
        };
        let spec = Arc::new(spec);
        self.versions.insert(k, spec.clone());
        Ok(Some(spec))
    }

    pub fn set_event_sink(&mut self, sink: EventSink) {
        self.events = Some(sink);
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// After a crash or `kill -9`: a try that was running is failed, as Airflow treats
    /// a task whose worker vanished (retried if retries remain); queued work that never
    /// started goes back to be scheduled again.
    pub fn recover(&mut self) {
        self.close_lost_callbacks();
        if self.executor.remote().is_some() {
            self.recover_remote();
            return;
        }
        let now = self.now();
        let mut lost = Vec::new();
        for run in self.runs.values_mut() {
            for ti in run.tis.values_mut() {
                match ti.state {
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
                }
            }
        }
        for key in lost {
            let try_number = self.ti(&key).map(|t| t.try_number).unwrap_or(1);
            let started = self.ti(&key).and_then(|t| t.start_date).unwrap_or(now);
            let reason = "the Aileron process stopped while this try was running";
            self.batch.put_raw(
                LOGS,
                log_key(self.ti(&key).unwrap(), try_number),
                format!("[{now}] ERROR {reason}\n").into_bytes(),
            );
            self.finish_try(
                &key,
                try_number,
                started,
                now,
                TryResult::Failed(reason.to_owned()),
                Vec::new(),
            );
        }
    }

    /// After a restart with remote workers: they run on without this process, so
    /// nothing is failed. Queued tries are dispatched again with the same attempt
    /// (the executor skips those whose stream entry survived) and running ones are
    /// adopted: watched for heartbeats as if this process had started them.
    fn recover_remote(&mut self) {
        let mut adopted = Vec::new();
        let now = self.now();
        for run in self.runs.values_mut() {
            for ti in run.tis.values_mut() {
                if !matches!(ti.state, S::Queued | S::Running) {
                    continue;
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
                    self.live_logs
                        .lock()
                        .unwrap()
                        .insert((key.clone(), ti.try_number), log.clone());
                    adopted.push(AdoptedTry {
                        key,
                        try_number: ti.try_number,
                        attempt: ti.attempt,
                        worker: ti.hostname.clone(),
                        started: ti.start_date.unwrap_or(now),
                        log,
                    });
                }
            }
        }
        if let Some(remote) = self.executor.remote() {
            remote.adopt(adopted);
        }
    }

    /// A remote worker's start of `attempt`: the TaskInstance becomes `running` on
    /// that worker, by this process's clock.
    fn remote_start(
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
        let Some(ti) = self.ti_mut(key) else {
            return Err(Refusal::Superseded);
        };
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
            S::Running if ti.hostname == worker => Ok(try_number),
            S::Running => Err(Refusal::RunningElsewhere),
            _ => Err(Refusal::NotQueued),
        }
    }

    /// A queued TaskInstance starts running at `at`; `worker` is who runs it when
    /// that is not this process.
    fn mark_running(&mut self, key: &TiKey, at: Timestamp, worker: Option<&str>) {
        let Some(ti) = self.ti_mut(key) else { return };
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
        let ti = ti.clone();
        self.batch.put_ti(&ti);
        self.push_ti_update(&ti);
    }

    /// Applies the end of the current try of `key` (checked by the caller): stores
    /// its log and outcome and decides what comes next.
    fn apply_finish(
        &mut self,
        key: TiKey,
        try_number: u32,
        started: Timestamp,
        ended: Timestamp,
        report: TryReport,
    ) {
        self.in_flight.remove(&key);
        // The live buffer stays readable until the stored log is committed, so
        // a reader tailing the log never sees it vanish in between.
        let live = (key.clone(), try_number);
        let log = self
            .live_logs
            .lock()
            .unwrap()
            .get(&live)
            .map(|l| l.snapshot())
            .unwrap_or_default();
        let live_logs = self.live_logs.clone();
        self.after_commit.push(Box::new(move || {
            live_logs.locked().remove(&live);
        }));
        if let Some(ti) = self.ti(&key) {
            if !log.is_empty() {
                self.batch
                    .put_raw(LOGS, log_key(ti, try_number), log.into_bytes());
            }
            let TryReport { result, xcom, .. } = report;
            self.finish_try(&key, try_number, started, ended, result, xcom);
        }
    }

    /// Tells the executor that recovery has handed it everything (see
    /// [`RemoteExecutor::ready`]).
    pub fn executor_ready(&self) {
        if let Some(remote) = self.executor.remote() {
            remote.ready();
        }
    }

    /// The cap of a try's live log: a remote try's copy takes the worker's whole
    /// log, which its own marker and closing line take past `log_bytes`.
    fn live_log_bytes(&self) -> usize {
        if self.executor.remote().is_some() {
            self.config.log_bytes + REMOTE_LOG_SLACK
        } else {
            self.config.log_bytes
        }
    }

    /// A run in memory: active, or finished this turn and not committed yet.
    pub(super) fn known_run(&self, rk: &RunKey) -> Option<&ActiveRun> {
        self.runs
            .get(rk)
            .or_else(|| self.finished_this_turn.get(rk))
    }

    /// A run's state: from memory when it is there (newer than the metastore until
    /// the commit), else as stored; `None` if there is no such run.
    pub(super) fn run_state(
        &self,
        rk: &RunKey,
    ) -> Result<Option<DagRunState>, crate::metastore::MetastoreError> {
        if let Some(r) = self.known_run(rk) {
            return Ok(Some(r.run.state));
        }
        Ok(self
            .metastore
            .dag_run(&rk.tenant, &rk.dag_id, &rk.run_id)?
            .map(|r| r.state))
    }

    fn ti(&self, key: &TiKey) -> Option<&TaskInstance> {
        self.runs
            .get(&key.run_key())?
            .tis
            .get(&(key.task_id.clone(), key.map_index))
    }

    /// Handles one command; false means stop.
    pub fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Shutdown => return false,
            Command::Clear {
                tenant,
                dag_id,
                run_id,
                opts,
                reply,
            } => {
                let result = self.clear(&tenant, &dag_id, &run_id, opts);
                self.reply_after_commit(reply, result);
            }
            Command::SetTaskState {
                target,
                state,
                downstream,
                upstream,
                reply,
            } => {
                let result = self.set_task_state(target, state, downstream, upstream);
                self.reply_after_commit(reply, result);
            }
            Command::SetRunState {
                tenant,
                dag_id,
                run_id,
                state,
                reply,
            } => {
                let result = self.set_run_state(&tenant, &dag_id, &run_id, state);
                self.reply_after_commit(reply, result);
            }
            Command::DeleteRun {
                tenant,
                dag_id,
                run_id,
                reply,
            } => {
                let result = self.delete_run(&tenant, &dag_id, &run_id);
                self.reply_after_commit(reply, result);
            }
            Command::CreateBackfill { request, reply } => {
                let result = self.create_backfill(request);
                self.reply_after_commit(reply, result);
            }
            Command::SetBackfillPaused {
                tenant,
                id,
                paused,
                reply,
            } => {
                let result = self.set_backfill_paused(&tenant, id, paused);
                self.reply_after_commit(reply, result);
            }
            Command::CancelBackfill { tenant, id, reply } => {
                let result = self.cancel_backfill(&tenant, id);
                self.reply_after_commit(reply, result);
            }
            Command::PoolsChanged => match self.metastore.pool_sizes() {
                Ok(pools) => self.pools = Pools(pools),
                Err(e) => tracing::error!("cannot reload pools: {e}"),
            },
            Command::Sync { reply } => self.after_commit.push(Box::new(move || {
                let _ = reply.send(());
            })),
            Command::DagFiles { files, full } => self.ingest(files, full),
            Command::Trigger {
                tenant,
                dag_id,
                run_id,
                logical_date,
                conf,
                reply,
            } => {
                let result = self.create_run(
                    &tenant,
                    &dag_id,
                    RunType::Manual,
                    run_id,
                    logical_date,
                    None,
                    conf,
                );
                self.after_commit.push(Box::new(move || {
                    let _ = reply.send(result);
                }));
            }
            Command::SetPaused {
                tenant,
                dag_id,
                paused,
                reply,
            } => {
                let result = match self.dags.get_mut(&DagKey::new(&tenant, &dag_id)) {
                    Some(d) => {
                        d.record.is_paused = paused;
                        self.batch.put_dag(&d.record);
                        self.updates.push(Update::Dags);
                        // Paused runs stop admitting work; unpausing must look again.
                        let keys: Vec<_> = self
                            .runs
                            .keys()
                            .filter(|k| k.tenant == tenant && k.dag_id == dag_id)
                            .cloned()
                            .collect();
                        self.dirty_runs.extend(keys);
                        Ok(())
                    }
                    None => Err(SchedulerError::DagNotFound(dag_id)),
                };
                self.after_commit.push(Box::new(move || {
                    let _ = reply.send(result);
                }));
            }
            Command::Executor(event) => self.on_executor_event(event),
            Command::RemoteStart {
                key,
                try_number,
                attempt,
                worker,
                reply,
            } => {
                let result = self.remote_start(&key, try_number, attempt, &worker);
                self.after_commit.push(Box::new(move || {
                    let _ = reply.send(result);
                }));
            }
            Command::RemoteFinish {
                key,
                try_number,
                attempt,
                worker,
                report,
                reply,
            } => {
                // Only the worker that started this very attempt, while it still runs.
                let result = match self.ti(&key) {
                    _ if self.in_flight.get(&key) != Some(&(try_number, attempt)) => {
                        Err(Refusal::Superseded)
                    }
                    None => Err(Refusal::Superseded),
                    Some(ti) if ti.state != S::Running => Err(Refusal::NotRunning),
                    Some(ti) if ti.hostname != worker => Err(Refusal::RunningElsewhere),
                    Some(ti) => Ok(ti.start_date.unwrap_or_else(|| self.now())),
                };
                let result = result.map(|started| {
                    let now = self.now();
                    self.apply_finish(key.clone(), try_number, started, now.max(started), report);
                    // A run that just ended is no longer in `runs`; its TaskInstance
                    // ended in a finished state all the same.
                    self.known_run(&key.run_key())
                        .and_then(|r| r.tis.get(&(key.task_id.clone(), key.map_index)))
                        .map_or(S::Success, |ti| ti.state)
                });
                self.after_commit.push(Box::new(move || {
                    let _ = reply.send(result);
                }));
            }
        }
        true
    }

    /// Answers a caller once the change it asked for is committed.
    /// Applies what an executor reported, if it is about the current dispatch.
    fn on_executor_event(&mut self, event: ExecutorEvent) {
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
                // A late report for a try that is no longer current is ignored.
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

    fn reply_after_commit<T: Send + 'static>(
        &mut self,
        reply: tokio::sync::oneshot::Sender<Result<T, SchedulerError>>,
        result: Result<T, SchedulerError>,
    ) {
        self.after_commit.push(Box::new(move || {
            let _ = reply.send(result);
        }));
    }

    fn ti_mut(&mut self, key: &TiKey) -> Option<&mut TaskInstance> {
        self.dirty_runs.insert(key.run_key());
        self.runs
            .get_mut(&key.run_key())?
            .tis
            .get_mut(&(key.task_id.clone(), key.map_index))
    }

    fn push_ti_update(&mut self, ti: &TaskInstance) {
        if ti.state.is_finished() {
            self.finished_in.insert(DagKey::new(&ti.tenant, &ti.dag_id));
        }
        self.updates.push(Update::TaskInstance {
            tenant: ti.tenant.clone(),
            dag_id: ti.dag_id.clone(),
            run_id: ti.run_id.clone(),
            task_id: ti.task_id.clone(),
            map_index: ti.map_index,
            state: ti.state,
            try_number: ti.try_number,
        });
    }

    /// Applies the outcome of one try to its TaskInstance.
    fn finish_try(
        &mut self,
        key: &TiKey,
        try_number: u32,
        started: Timestamp,
        ended: Timestamp,
        result: TryResult,
        pushes: Vec<(String, String)>,
    ) {
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
        let Some(ti) = self.ti_mut(key) else { return };
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
        });
        let ti = ti.clone();
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
            let run = self.runs.get_mut(&key.run_key()).unwrap();
            let mut changed = Vec::new();
            for ti in run.tis.values_mut() {
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
            }
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

    /// Applies DAG-folder parse results.
    fn ingest(&mut self, files: Vec<(String, Option<FileResult>)>, full: bool) {
        let now = self.now();
        let seen: HashSet<String> = files.iter().map(|(f, _)| f.clone()).collect();
        for (fileloc, result) in files {
            let tenant = crate::dag_processor::DagFolder::tenant_of(&fileloc).to_owned();
            let err_key = (tenant.clone(), fileloc.clone());
            match result {
                Some(FileResult::Dag(spec)) => {
                    if self.import_errors.remove(&err_key) {
                        self.batch.delete(IMPORT_ERRORS, key(&[&tenant, &fileloc]));
                    }
                    let spec: Arc<DagSpec> = Arc::new(*spec);
                    let dk = DagKey::new(&spec.tenant, &spec.dag_id);
                    let vk = (
                        spec.tenant.clone(),
                        spec.dag_id.clone(),
                        spec.version.clone(),
                    );
                    if !self.versions.contains_key(&vk) {
                        self.batch
                            .put(DAG_VERSIONS, key(&[&vk.0, &vk.1, &vk.2]), spec.as_ref());
                        self.versions.insert(vk, spec.clone());
                    }
                    // A file whose DAG id changed leaves its old DAG behind: deactivate it.
                    self.deactivate_file(&fileloc, Some(&dk));
                    let paused = self.config.paused_at_creation;
                    let entry = self.dags.entry(dk).or_insert_with(|| DagEntry {
                        record: DagRecord {
                            tenant: spec.tenant.clone(),
                            dag_id: spec.dag_id.clone(),
                            fileloc: fileloc.clone(),
                            version: spec.version.clone(),
                            is_paused: paused,
                            is_active: true,
                            last_scheduled_interval: None,
                            last_parsed: now,
                            tags: spec.tags.clone(),
                        },
                        spec: spec.clone(),
                        next_due: None,
                    });
                    entry.record.fileloc = fileloc.clone();
                    entry.record.version = spec.version.clone();
                    entry.record.tags = spec.tags.clone();
                    entry.record.is_active = true;
                    entry.record.last_parsed = now;
                    entry.spec = spec;
                    entry.next_due = None;
                    self.batch.put_dag(&entry.record);
                }
                Some(FileResult::Error(e)) => {
                    let record = ImportErrorRecord {
                        tenant: tenant.clone(),
                        filename: fileloc.clone(),
                        line: e.line,
                        column: e.column,
                        message: e.message.clone(),
                        timestamp: now,
                    };
                    self.batch
                        .put(IMPORT_ERRORS, key(&[&tenant, &fileloc]), &record);
                    self.import_errors.insert(err_key);
                }
                None => {
                    if self.import_errors.remove(&err_key) {
                        self.batch.delete(IMPORT_ERRORS, key(&[&tenant, &fileloc]));
                    }
                    self.deactivate_file(&fileloc, None);
                }
            }
        }
        if full {
            let gone: Vec<String> = self
                .dags
                .values()
                .filter(|d| d.record.is_active && !seen.contains(&d.record.fileloc))
                .map(|d| d.record.fileloc.clone())
                .collect();
            for f in gone {
                self.deactivate_file(&f, None);
            }
            let stale: Vec<_> = self
                .import_errors
                .iter()
                .filter(|(_, f)| !seen.contains(f))
                .cloned()
                .collect();
            for k in stale {
                self.import_errors.remove(&k);
                self.batch.delete(IMPORT_ERRORS, key(&[&k.0, &k.1]));
            }
        }
        self.updates.push(Update::Dags);
    }

    fn deactivate_file(&mut self, fileloc: &str, keep: Option<&DagKey>) {
        for (k, d) in self.dags.iter_mut() {
            if d.record.fileloc == fileloc && d.record.is_active && Some(k) != keep {
                d.record.is_active = false;
                self.batch.put_dag(&d.record);
            }
        }
    }

    /// Creates a DagRun and its TaskInstances.
    #[allow(clippy::too_many_arguments)]
    fn create_run(
        &mut self,
        tenant: &str,
        dag_id: &str,
        run_type: RunType,
        run_id: Option<String>,
        logical_date: Option<Timestamp>,
        interval: Option<aileron_model::schedule::DataInterval>,
        conf: serde_json::Map<String, serde_json::Value>,
    ) -> Result<DagRun, SchedulerError> {
        let now = self.now();
        let entry = self
            .dags
            .get(&DagKey::new(tenant, dag_id))
            .filter(|d| d.record.is_active)
            .ok_or_else(|| SchedulerError::DagNotFound(dag_id.to_owned()))?;
        let spec = entry.spec.clone();
        // Typed params are checked now, so a bad conf is refused at trigger time
        // rather than failing tasks later.
        spec.resolve_params(&conf)
            .map_err(SchedulerError::BadConf)?;
        // Airflow keeps dates to the microsecond; so do run ids made from them.
        let logical_date = logical_date
            .unwrap_or(now)
            .round(jiff::Unit::Microsecond)
            .unwrap_or(now);
        let interval = match interval {
            Some(i) => i,
            None => spec
                .schedule
                .manual_interval(&spec.schedule_context(), logical_date),
        };
        let run_id = run_id.unwrap_or_else(|| run_id_for(run_type, logical_date));
        if run_id.is_empty() || run_id.len() > 250 || run_id.contains('\0') {
            return Err(SchedulerError::BadConf(
                "dag_run_id must be 1 to 250 characters".to_owned(),
            ));
        }
        let rk = RunKey::new(tenant, dag_id, &run_id);
        if self.runs.contains_key(&rk) || self.metastore.dag_run(tenant, dag_id, &run_id)?.is_some()
        {
            return Err(SchedulerError::RunExists {
                dag_id: dag_id.to_owned(),
                run_id,
            });
        }
        let run = DagRun {
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
            run_id: run_id.clone(),
            run_type,
            state: DagRunState::Queued,
            logical_date,
            data_interval: interval,
            conf,
            dag_version: spec.version.clone(),
            queued_at: now,
            start_date: None,
            end_date: None,
            seq: self.next_seq,
            backfill_id: None,
        };
        self.next_seq += 1;
        let mut tis = BTreeMap::new();
        for task in &spec.tasks {
            let ti = new_ti(&run, task, -1, &self.config.hostname);
            self.batch.put_ti(&ti);
            tis.insert((task.task_id.clone(), -1), ti);
        }
        self.batch.put_run(&run);
        self.updates.push(Update::DagRun {
            tenant: run.tenant.clone(),
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            state: run.state,
        });
        self.dirty_runs.insert(rk.clone());
        self.runs.insert(
            rk,
            ActiveRun {
                run: run.clone(),
                spec,
                tis,
            },
        );
        Ok(run)
    }

    /// One planning pass: new scheduled runs, starting queued runs, timeouts,
    /// trigger rules, finished runs, and admission of ready TaskInstances.
    pub fn plan(&mut self) {
        let now = self.now();
        self.planned_at = now;
        // A run that finishes in this pass frees a place under `max_active_runs`
        // (the DAG's or a backfill's): go round again so the next run is created
        // and started now, not whenever the next command happens to arrive.
        for _ in 0..4 {
            let finished_before = self.finished_this_turn.len();
            if self.config.create_scheduled_runs {
                self.create_scheduled_runs(now);
            }
            self.start_queued_runs(now);
            self.time_out_runs(now);
            // Evaluating a run can finish TaskInstances that other runs of the same
            // DAG wait on (depends_on_past), so go round until nothing new is dirty.
            for _ in 0..8 {
                self.wake_runs_waiting_on_past();
                if self.dirty_runs.is_empty() {
                    break;
                }
                let dirty: Vec<RunKey> = self.dirty_runs.drain().collect();
                for rk in dirty {
                    self.evaluate_run(&rk, now);
                }
            }
            if self.finished_this_turn.len() == finished_before {
                break;
            }
        }
        self.complete_backfills(now);
        self.admit(now);
    }

    fn create_scheduled_runs(&mut self, now: Timestamp) {
        let keys: Vec<DagKey> = self.dags.keys().cloned().collect();
        for dk in keys {
            loop {
                let entry = &self.dags[&dk];
                if entry.record.is_paused || !entry.record.is_active {
                    break;
                }
                let spec = entry.spec.clone();
                let next = spec.schedule.next_dagrun(
                    &spec.schedule_context(),
                    entry.record.last_scheduled_interval.as_ref(),
                    now,
                );
                let Some(interval) = next else {
                    self.dags.get_mut(&dk).unwrap().next_due = None;
                    break;
                };
                let due = interval.end.max(interval.start);
                if due > now {
                    self.dags.get_mut(&dk).unwrap().next_due = Some(due);
                    break;
                }
                // Only for a DAG with a run due: `runs` is keyed by DAG first, so
                // this reads its runs alone. Backfill runs have their own
                // `max_active_runs` (as in Airflow).
                let active = self
                    .runs
                    .range(RunKey::new(&dk.tenant, &dk.dag_id, "")..)
                    .take_while(|(k, _)| k.tenant == dk.tenant && k.dag_id == dk.dag_id)
                    .filter(|(_, r)| r.run.backfill_id.is_none())
                    .count();
                if active >= spec.max_active_runs as usize {
                    self.dags.get_mut(&dk).unwrap().next_due = None;
                    break;
                }
                if self.run_at(&dk, interval.start).is_some() {
                    // A backfill or a manual run already covers this date: Airflow
                    // keeps one run per logical date and moves on.
                    let entry = self.dags.get_mut(&dk).unwrap();
                    entry.record.last_scheduled_interval = Some(interval);
                    self.batch.put_dag(&entry.record);
                    continue;
                }
                let run_id = run_id_for(RunType::Scheduled, interval.start);
                let created = self.create_run(
                    &dk.tenant,
                    &dk.dag_id,
                    RunType::Scheduled,
                    Some(run_id),
                    Some(interval.start),
                    Some(interval),
                    serde_json::Map::new(),
                );
                let entry = self.dags.get_mut(&dk).unwrap();
                entry.record.last_scheduled_interval = Some(interval);
                self.batch.put_dag(&entry.record);
                if let Err(e) = created
                    && !matches!(e, SchedulerError::RunExists { .. })
                {
                    tracing::warn!(dag_id = %dk.dag_id, "could not create a scheduled run: {e}");
                    break;
                }
            }
        }
    }

    /// Starts queued runs, oldest logical date first: a DAG's own runs within its
    /// `max_active_runs`, a backfill's runs in the backfill's order within the
    /// backfill's `max_active_runs` (and not while it is paused). Nothing of a
    /// paused DAG starts.
    fn start_queued_runs(&mut self, now: Timestamp) {
        let mut running: HashMap<DagKey, usize> = HashMap::new();
        let mut running_backfill: HashMap<u64, u32> = HashMap::new();
        for r in self.runs.values() {
            if r.run.state == DagRunState::Running {
                match self.backfill_slot(&r.run) {
                    Some((id, ..)) => *running_backfill.entry(id).or_default() += 1,
                    None => {
                        *running
                            .entry(DagKey::new(&r.run.tenant, &r.run.dag_id))
                            .or_default() += 1
                    }
                }
            }
        }
        let mut queued: Vec<(bool, usize, Timestamp, u64, RunKey)> = self
            .runs
            .iter()
            .filter(|(_, r)| r.run.state == DagRunState::Queued)
            .map(|(k, r)| {
                let ordinal = self.backfill_slot(&r.run).map(|s| s.3);
                (
                    ordinal.is_some(),
                    ordinal.unwrap_or(0),
                    r.run.logical_date,
                    r.run.seq,
                    k.clone(),
                )
            })
            .collect();
        queued.sort();
        for (.., rk) in queued {
            let dk = rk.dag();
            let (paused, max) = match self.dags.get(&dk) {
                Some(d) => (d.record.is_paused, d.spec.max_active_runs as usize),
                None => (false, self.runs[&rk].spec.max_active_runs as usize),
            };
            if paused {
                continue;
            }
            match self.backfill_slot(&self.runs[&rk].run) {
                Some((id, backfill_paused, max_backfill, _)) => {
                    let n = running_backfill.entry(id).or_default();
                    if backfill_paused || *n >= max_backfill {
                        continue;
                    }
                    *n += 1;
                }
                None => {
                    let n = running.entry(dk).or_default();
                    if *n >= max {
                        continue;
                    }
                    *n += 1;
                }
            }
            let r = self.runs.get_mut(&rk).unwrap();
            r.run.state = DagRunState::Running;
            r.run.start_date = Some(now);
            let run = r.run.clone();
            self.batch.put_run(&run);
            self.push_run_update(&run);
            self.dirty_runs.insert(rk.clone());
            // This run's trigger rules must be evaluated in this same pass.
            self.evaluate_run(&rk, now);
        }
    }

    fn push_run_update(&mut self, run: &DagRun) {
        self.updates.push(Update::DagRun {
            tenant: run.tenant.clone(),
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            state: run.state,
        });
    }

    /// Applies trigger rules to TaskInstances with no state, expands mapped tasks, and
    /// finishes the run when nothing is left to do.
    fn evaluate_run(&mut self, rk: &RunKey, now: Timestamp) {
        let Some(run) = self.runs.get(rk) else { return };
        if run.run.state != DagRunState::Running {
            return;
        }
        let spec = run.spec.clone();
        let mut changed: Vec<TaskInstance> = Vec::new();
        // In file order, so a task sees what this pass decided for its upstream.
        for task in &spec.tasks {
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
                let Some(ti) = run.tis.get_mut(&(task.task_id.clone(), m)) else {
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
            let run = self.runs.get_mut(rk).unwrap();
            if !run.tis.contains_key(&(task.task_id.clone(), -1)) {
                let mapped: Vec<(String, i64)> = run
                    .tis
                    .keys()
                    .filter(|(t, _)| *t == task.task_id)
                    .cloned()
                    .collect();
                for k in mapped {
                    let ti = run.tis.remove(&k).unwrap();
                    previous.insert(k.1, ti);
                }
                let placeholder = new_ti(&run.run, task, -1, &hostname);
                run.tis.insert((task.task_id.clone(), -1), placeholder);
            }
        }
        let mut out = self.expand_fresh(rk, task, now, &mut previous);
        let run = self.runs.get_mut(rk).unwrap();
        for (m, mut ti) in previous {
            ti.state = S::Removed;
            ti.end_date = Some(now);
            run.tis.insert((task.task_id.clone(), m), ti.clone());
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
        let run = &self.runs[rk];
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
        let run = self.runs.get_mut(rk).unwrap();
        let placeholder = run.tis.get_mut(&(task.task_id.clone(), -1)).unwrap();
        if missing_upstream_value {
            // Airflow: a map whose upstream value does not exist cannot be resolved,
            // and the task is upstream_failed (it never runs).
            placeholder.state = S::UpstreamFailed;
            placeholder.start_date = Some(now);
            placeholder.end_date = Some(now);
            return vec![placeholder.clone()];
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
                placeholder.tries.push(TryRecord {
                    try_number: 1,
                    state: S::Failed,
                    start_date: now,
                    end_date: now,
                    duration: 0.0,
                    plugin_digest: placeholder.plugin_digest.clone(),
                    error: Some(reason.clone()),
                    hostname: placeholder.hostname.clone(),
                    attempt: 0,
                });
                let ti = placeholder.clone();
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
            return vec![placeholder.clone()];
        }
        let template = run.tis.remove(&(task.task_id.clone(), -1)).unwrap();
        // The placeholder of an unexpanded mapped task has map index -1.
        self.batch
            .delete(crate::metastore::TASK_INSTANCES, ti_record_key(&template));
        let mut out = Vec::new();
        for (i, kwargs) in combos.into_iter().enumerate() {
            let mut ti = previous
                .remove(&(i as i64))
                .unwrap_or_else(|| new_ti(&run.run, task, i as i64, &self.config.hostname));
            ti.state = S::Scheduled;
            ti.rendered_params = Some(serde_json::Value::Object(kwargs));
            run.tis.insert((task.task_id.clone(), i as i64), ti.clone());
            out.push(ti);
        }
        out
    }

    fn maybe_finish_run(&mut self, rk: &RunKey, now: Timestamp) {
        let Some(run) = self.runs.get(rk) else { return };
        let (state, deadlocked) = match run_outcome(run, self.dirty_runs.contains(rk)) {
            RunOutcome::Continue => return,
            RunOutcome::Finished(state) => (state, false),
            RunOutcome::Deadlocked => (DagRunState::Failed, true),
        };
        if deadlocked {
            // Nothing runs and nothing can: Airflow fails the run rather than leave
            // it running forever.
            tracing::warn!(run_id = %rk.run_id, dag_id = %rk.dag_id, "deadlock: no task can run; failing the run");
            let mut changed = Vec::new();
            if let Some(run) = self.runs.get_mut(rk) {
                for ti in run.tis.values_mut() {
                    if ti.state == S::NoStatus {
                        ti.state = S::UpstreamFailed;
                        changed.push(ti.clone());
                    }
                }
            }
            for ti in changed {
                self.batch.put_ti(&ti);
                self.push_ti_update(&ti);
            }
        }
        self.end_run(rk, state, now);
        match (state, deadlocked) {
            (DagRunState::Success, _) => self.fire_dag_callbacks(rk, Event::Success, "success"),
            (_, true) => self.fire_dag_callbacks(rk, Event::Failure, "all_tasks_deadlocked"),
            (_, false) => {
                self.fire_dag_callbacks(rk, Event::Failure, "task_failure");
                self.check_consecutive_failures(rk);
            }
        }
        self.retire_run(rk);
    }

    /// Takes a finished run out of memory, keeping it readable until the commit.
    pub(super) fn retire_run(&mut self, rk: &RunKey) {
        if let Some(run) = self.runs.remove(rk) {
            self.finished_this_turn.insert(rk.clone(), run);
        }
    }

    /// Sets a run's final state (it stays in `runs` for the caller to fire
    /// callbacks, then remove it).
    pub(super) fn end_run(&mut self, rk: &RunKey, state: DagRunState, now: Timestamp) {
        let active = self.runs.get_mut(rk).unwrap();
        active.run.state = state;
        active.run.end_date = Some(now);
        let run = active.run.clone();
        self.batch.put_run(&run);
        self.push_run_update(&run);
    }

    /// Airflow's `max_consecutive_failed_dag_runs`: after a run fails on a task
    /// failure, the DAG is paused if its latest N runs (any type, latest logical
    /// date first) all failed.
    fn check_consecutive_failures(&mut self, rk: &RunKey) {
        let dk = rk.dag();
        let Some(n) = self.runs[rk].spec.max_consecutive_failed_dag_runs else {
            return;
        };
        let latest = self.latest_runs(&dk, None, n as usize, |_| true);
        if latest.len() < n as usize {
            return;
        }
        // Runs that failed earlier in this same turn are only in memory yet.
        let all_failed = latest.iter().all(|run_id| {
            let key = RunKey::new(&rk.tenant, &rk.dag_id, run_id);
            self.run_state(&key).ok().flatten() == Some(DagRunState::Failed)
        });
        if all_failed
            && let Some(d) = self.dags.get_mut(&dk)
            && !d.record.is_paused
        {
            tracing::warn!(dag_id = %dk.dag_id, "pausing the DAG: its last {n} runs failed (max_consecutive_failed_dag_runs)");
            d.record.is_paused = true;
            self.batch.put_dag(&d.record);
            self.updates.push(Update::Dags);
        }
    }

    /// Airflow's `dagrun_timeout`: a running run (of an unpaused DAG) that has
    /// been running longer fails; its unfinished TaskInstances, running ones
    /// included, become `skipped`; the DAG's `on_failure` fires with `timed_out`.
    fn time_out_runs(&mut self, now: Timestamp) {
        let due = timed_out_runs(&self.runs, |rk| self.is_paused(&rk.tenant, &rk.dag_id), now);
        for rk in due {
            tracing::warn!(dag_id = %rk.dag_id, run_id = %rk.run_id, "the run exceeded its dagrun_timeout; failing it");
            let keys: Vec<TiKey> = self.runs[&rk]
                .tis
                .values()
                .filter(|ti| !ti.state.is_finished())
                .map(TiKey::from)
                .collect();
            for key in keys {
                self.force_state(&key, S::Skipped, now);
            }
            self.end_run(&rk, DagRunState::Failed, now);
            self.fire_dag_callbacks(&rk, Event::Failure, "timed_out");
            self.retire_run(&rk);
            self.dirty_runs.remove(&rk);
        }
    }

    /// Queues what admission lets through (see [`admission`]).
    fn admit(&mut self, now: Timestamp) {
        let dags = &self.dags;
        let is_paused = |dk: &DagKey| dags.get(dk).is_some_and(|d| d.record.is_paused);
        let snapshot = admission::Snapshot {
            parallelism: self.config.parallelism,
            in_flight: self.in_flight.keys().collect(),
            runs: &self.runs,
            is_paused: &is_paused,
            pools: &self.pools,
            now,
        };
        let admitted = admission::admit(&snapshot, &mut self.weights);
        for key in admitted {
            self.queue_ti(&key, now);
        }
    }

    fn queue_ti(&mut self, key: &TiKey, now: Timestamp) {
        let rk = key.run_key();
        let run = self.runs.get_mut(&rk).unwrap();
        let ti = run
            .tis
            .get_mut(&(key.task_id.clone(), key.map_index))
            .unwrap();
        let try_number = if ti.state == S::UpForReschedule {
            ti.try_number.max(1)
        } else {
            ti.try_number + 1
        };
        if try_number > 1 && ti.state == S::UpForRetry {
            // A new try starts with no XCom from the last one, as in Airflow.
            self.batch.delete_prefix(XCOM, ti_record_key(ti));
        }
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        ti.state = S::Queued;
        ti.try_number = try_number;
        ti.attempt = attempt;
        ti.queued_at = Some(now);
        ti.next_try_at = None;
        let ti = ti.clone();
        self.batch.put_ti(&ti);
        self.batch.put_next_attempt(self.next_attempt);
        self.push_ti_update(&ti);
        self.in_flight.insert(key.clone(), (try_number, attempt));
        self.to_dispatch.push((key.clone(), try_number, attempt));
    }

    /// Renders a task's params (or `value`) for a TaskInstance of `run`.
    fn render(
        &self,
        run: &ActiveRun,
        task: &TaskSpec,
        ti: Option<&TaskInstance>,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let lookups = RenderLookups::new(&self.metastore, &self.xcom_overlay, &run.run);
        super::host::render(&lookups, run, task, ti, value)
    }

    /// Hands queued TaskInstances to the executor. Runs after the commit.
    pub fn dispatch(&mut self) {
        self.dispatch_callbacks();
        let jobs = std::mem::take(&mut self.to_dispatch);
        for (key, try_number, attempt) in jobs {
            let Some(run) = self.runs.get(&key.run_key()) else {
                continue;
            };
            let Some(ti) = run.tis.get(&(key.task_id.clone(), key.map_index)) else {
                continue;
            };
            let task = run
                .spec
                .task(&key.task_id)
                .expect("TIs only exist for tasks")
                .clone();
            let rendered = self.render(run, &task, Some(ti), &task.params);
            let log = Arc::new(LogBuffer::new(self.live_log_bytes()));
            self.live_logs
                .lock()
                .unwrap()
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
                    timeout: task.execution_timeout,
                    log_bytes: self.config.log_bytes,
                    allow_hosts: task.allow_hosts.clone(),
                    allow_private_ips: self.config.allow_private_ips,
                    ..Limits::default()
                },
                host,
                log,
            };
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
            if let Some(ti) = self
                .runs
                .get_mut(&key.run_key())
                .and_then(|r| r.tis.get_mut(&(key.task_id.clone(), key.map_index)))
            {
                ti.rendered_fields = Some(rendered_fields);
            }
        }
    }

    /// Commits the pending batch; returns the updates to announce.
    pub fn commit(&mut self) -> Result<Vec<Update>, SchedulerError> {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            let took = self.metastore.commit(batch)?;
            metrics::histogram!("aileron_metastore_commit_seconds").record(took.as_secs_f64());
        }
        let running = self
            .in_flight
            .keys()
            .filter(|k| self.ti(k).is_some_and(|ti| ti.state == S::Running))
            .count();
        metrics::gauge!("aileron_executor_slots_busy").set(running as f64);
        metrics::gauge!("aileron_executor_queue_depth")
            .set(self.in_flight.len().saturating_sub(running) as f64);
        self.xcom_overlay.clear();
        self.finished_this_turn.clear();
        self.deleted_this_turn.clear();
        for f in self.after_commit.drain(..) {
            f();
        }
        Ok(std::mem::take(&mut self.updates))
    }

    /// The earliest moment something becomes due without any command arriving, and
    /// separately the earliest retry or reschedule of a run in progress.
    pub fn next_timer(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        let after = self.planned_at;
        let mut tasks: Option<Timestamp> = None;
        for (rk, run) in &self.runs {
            if self.is_paused(&rk.tenant, &rk.dag_id) {
                continue;
            }
            if let Some(t) = next_run_timer(run, after) {
                tasks = Some(tasks.map_or(t, |n| n.min(t)));
            }
        }
        let mut any = tasks;
        if self.config.create_scheduled_runs {
            for d in self.dags.values() {
                if d.record.is_paused || !d.record.is_active {
                    continue;
                }
                if let Some(t) = d.next_due.filter(|t| *t > after) {
                    any = Some(any.map_or(t, |n| n.min(t)));
                }
            }
        }
        (any, tasks)
    }

    fn is_paused(&self, tenant: &str, dag_id: &str) -> bool {
        self.dags
            .get(&DagKey::new(tenant, dag_id))
            .is_some_and(|d| d.record.is_paused)
    }
}

/// The error of a TaskInstance's last try, the `reason` its callbacks see.
fn error_of(ti: &TaskInstance) -> Option<String> {
    ti.tries.last().and_then(|t| t.error.clone())
}

fn new_ti(run: &DagRun, task: &TaskSpec, map_index: i64, hostname: &str) -> TaskInstance {
    TaskInstance {
        tenant: run.tenant.clone(),
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        task_id: task.task_id.clone(),
        map_index,
        state: S::NoStatus,
        try_number: 0,
        max_tries: task.retries + 1,
        operator: task.operator.clone(),
        plugin_digest: task.operator_digest.clone(),
        queued_at: None,
        start_date: None,
        end_date: None,
        duration: None,
        next_try_at: None,
        rendered_params: None,
        rendered_fields: None,
        tries: Vec::new(),
        hostname: hostname.to_owned(),
        attempt: 0,
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
