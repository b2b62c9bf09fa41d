//! The scheduler's shell around its pure planner: the in-memory [`State`] of active
//! DAGs and runs, loading it, handing each command to the change it asks for, and the
//! turn's commit and timers. Each change is applied in memory and recorded in the
//! pending [`WriteBatch`]; the loop in `scheduler/mod.rs` commits the batch before
//! anything is dispatched or announced.
//!
//! The changes themselves, one concern a file: `ingest` (DAG-folder parse results),
//! `runs` (creating, starting and ending DagRuns; the planning pass), `mapping`
//! (trigger rules and dynamic task mapping), `dispatch` (admission and handing work
//! to the executor), `tries` (what the executor reports), `recovery` (restarts and
//! remote workers), `manual` (changes made by hand), `backfill`, `callbacks` and
//! `past` (logical-date order and `depends_on_past`).

use super::executor::{CallbackId, CallbackJob, EventSink, Executor};
use super::{Command, LiveLogs, SchedulerConfig, SchedulerError, Update};
use crate::metastore::{
    DagRecord, DagRun, Metastore, RunType, TaskInstance, TenantLimits, TenantUsageRecord,
    WriteBatch,
};
use aileron_model::clock::Clock;
use aileron_model::dag::{DagSpec, TaskSpec};
use aileron_model::{DagRunState, TaskInstanceState as S, TenantId};
use aileron_protocol::wire::Refusal;
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

pub(super) mod backfill;
mod callbacks;
mod delete_dag;
mod dispatch;
mod ingest;
mod manual;
mod mapping;
mod past;
mod recovery;
pub(super) mod retention;
mod runs;
mod tries;
pub(super) mod usage;

use super::planner::admission::{Pools, Shares, TenantShare, Weights};
use super::planner::timers::next_run_timer;
use super::planner::{ActiveRun, TiMut};
use aileron_model::{DagKey, RunKey, TiKey};

struct DagEntry {
    record: DagRecord,
    spec: Arc<DagSpec>,
    /// When the next scheduled run is due, cached by `plan`.
    next_due: Option<Timestamp>,
}

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
    /// The last version number given to each DAG this process has numbered a
    /// version of (the metastore has the rest; see `ingest.rs`).
    version_numbers: HashMap<DagKey, u32>,
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
    xcom_overlay: HashMap<String, String>,
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
    /// When the retention setting next looks for expired runs.
    next_clean: Timestamp,
    /// Runs that finished this turn: out of `runs`, but their TaskInstances are not
    /// committed yet, and `depends_on_past` checks in this turn must see them.
    finished_this_turn: HashMap<RunKey, ActiveRun>,
    /// DAGs with TaskInstances that finished this turn (see `past.rs`).
    finished_in: HashSet<DagKey>,
    /// Callbacks rendered this turn, sent to the executor after the commit.
    callbacks_to_send: Vec<CallbackJob>,
    /// Next callback sequence number of runs in memory.
    callback_seq: HashMap<RunKey, u64>,
    /// Slots of each pool, by (tenant, name); reloaded when the API changes a pool.
    pools: Pools,
    /// Each tenant's weight and `max_running`; reloaded when the API changes one.
    shares: Shares,
    /// Each tenant's limits as stored (quotas and ceilings); reloaded with `shares`.
    tenant_limits: HashMap<TenantId, TenantLimits>,
    /// Each tenant's metered usage (`usage.rs`), and those charged this turn.
    usage: HashMap<TenantId, TenantUsageRecord>,
    usage_dirty: HashSet<TenantId>,
    /// Tries in flight as their usage is metered, and when running ones were
    /// last charged (`usage.rs`).
    metering: HashMap<TiKey, usage::Metered>,
    /// Callbacks running, metered the same way.
    metering_callbacks: HashMap<CallbackId, usage::Metered>,
    running_charged_at: Timestamp,
    /// The `now` of the last `plan`: timers at or before it were already acted on
    /// (or are blocked on capacity, and a finishing task wakes the loop).
    planned_at: Timestamp,
}

impl State {
    pub(super) fn load(
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
            version_numbers: HashMap::new(),
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
            shares: Shares::default(),
            tenant_limits: usage::limits_of(metastore.tenants()?),
            usage: metastore
                .tenant_usages()?
                .into_iter()
                .filter_map(|(t, u)| Some((TenantId::new(&t).ok()?, u)))
                .collect(),
            usage_dirty: HashSet::new(),
            metering: HashMap::new(),
            metering_callbacks: HashMap::new(),
            running_charged_at: Timestamp::UNIX_EPOCH,
            callbacks_to_send: Vec::new(),
            callback_seq: HashMap::new(),
            deleted_this_turn: HashSet::new(),
            next_clean: Timestamp::UNIX_EPOCH,
            finished_in: HashSet::new(),
            finished_this_turn: HashMap::new(),
            backfills: BTreeMap::new(),
            backfill_order: HashMap::new(),
            next_backfill_id: 1,
        };
        state.shares = shares_of(&state.tenant_limits);
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
            state.runs.insert(key, ActiveRun::new(run, spec, tis));
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

    pub(super) fn set_event_sink(&mut self, sink: EventSink) {
        self.events = Some(sink);
    }

    pub(super) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(super) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The tenants with tries in flight, each with its weight.
    pub(super) fn tenants_in_flight(&self) -> Vec<(&str, u32)> {
        let mut tenants: Vec<&str> = self.in_flight.keys().map(|k| k.tenant.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        tenants
            .into_iter()
            .map(|t| (t, self.shares.of(t).weight))
            .collect()
    }

    /// A run in memory: active, or finished this turn and not committed yet.
    fn known_run(&self, rk: &RunKey) -> Option<&ActiveRun> {
        self.runs
            .get(rk)
            .or_else(|| self.finished_this_turn.get(rk))
    }

    /// A run's state: from memory when it is there (newer than the metastore until
    /// the commit), else as stored; `None` if there is no such run.
    fn run_state(
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
            .ti(&key.task_id, key.map_index)
    }

    fn ti_mut(&mut self, key: &TiKey) -> Option<TiMut<'_>> {
        self.dirty_runs.insert(key.run_key());
        self.runs
            .get_mut(&key.run_key())?
            .ti_mut(&key.task_id, key.map_index)
    }

    /// Handles one command; false means stop.
    pub(super) fn handle(&mut self, cmd: Command) -> bool {
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
            Command::DeleteDag {
                tenant,
                dag_id,
                reply,
            } => {
                let result = self.delete_dag(&tenant, &dag_id);
                self.reply_after_commit(reply, result);
            }
            Command::CleanHistory {
                tenant,
                before,
                limit,
                reply,
            } => {
                let result = self.clean_history(tenant.as_deref(), before, limit);
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
            Command::TenantsChanged => match self.metastore.tenants() {
                Ok(tenants) => {
                    self.tenant_limits = usage::limits_of(tenants);
                    self.shares = shares_of(&self.tenant_limits);
                    // A deleted tenant's usage went with it.
                    let limits = &self.tenant_limits;
                    self.usage.retain(|t, _| limits.contains_key(t));
                }
                Err(e) => tracing::error!("cannot reload the tenants' limits: {e}"),
            },
            Command::TenantUsage { tenant, reply } => {
                let _ = reply.send(self.tenants_now(self.clock.now(), tenant.as_deref()));
            }
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
                        .and_then(|r| r.ti(&key.task_id, key.map_index))
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
    fn reply_after_commit<T: Send + 'static>(
        &mut self,
        reply: tokio::sync::oneshot::Sender<Result<T, SchedulerError>>,
        result: Result<T, SchedulerError>,
    ) {
        self.after_commit.push(Box::new(move || {
            let _ = reply.send(result);
        }));
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

    /// Commits the pending batch; returns the updates to announce.
    pub(super) fn commit(&mut self) -> Result<Vec<Update>, SchedulerError> {
        self.write_usage();
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
    pub(super) fn next_timer(&self) -> (Option<Timestamp>, Option<Timestamp>) {
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
        if let Some(t) = self.retention_timer() {
            any = Some(any.map_or(t, |n| n.min(t)));
        }
        // A tenant whose CPU budget comes back has tries to admit then. (Not a
        // task timer: a simulated clock is not jumped to it, the test moves it.)
        if let Some(t) = self.budget_timer(after) {
            any = Some(any.map_or(t, |n| n.min(t)));
        }
        // Running tries are charged as they go (not a task timer either).
        if let Some(t) = self.running_charge_timer() {
            any = Some(any.map_or(t, |n| n.min(t)));
        }
        (any, tasks)
    }

    fn is_paused(&self, tenant: &str, dag_id: &str) -> bool {
        self.dags
            .get(&DagKey::new(tenant, dag_id))
            .is_some_and(|d| d.record.is_paused)
    }
}

/// Lookups that cannot fail. A miss is a bug in the scheduler: it is logged with
/// the key, and the caller gives up only the command, run or TaskInstance at hand
/// rather than ending the scheduler.
trait Expected<T> {
    /// The value as it is; a `None` is logged as `what` missing under `key`.
    fn expected(self, what: &str, key: &dyn std::fmt::Debug) -> Option<T>;
}

impl<T> Expected<T> for Option<T> {
    fn expected(self, what: &str, key: &dyn std::fmt::Debug) -> Option<T> {
        if self.is_none() {
            tracing::error!(
                ?key,
                "scheduler bug: {what} is missing; only what needed it is given up"
            );
        }
        self
    }
}

/// What a command fails with when an [`Expected`] lookup missed.
fn internal_error() -> SchedulerError {
    SchedulerError::Internal
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

/// The admission shares of the tenants, from their limits.
fn shares_of(limits: &HashMap<TenantId, TenantLimits>) -> Shares {
    Shares(
        limits
            .iter()
            .map(|(tenant, l)| {
                let share = TenantShare {
                    weight: l.weight(),
                    max_running: l.max_running,
                };
                (tenant.clone(), share)
            })
            .collect(),
    )
}
