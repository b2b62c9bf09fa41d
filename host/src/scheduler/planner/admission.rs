//! Admission: which ready TaskInstances are queued this turn.
//!
//! Across tenants, slots are shared fairly: each free slot goes to the tenant
//! with the fewest tries in flight for its weight (weighted fair sharing of the
//! executor), so a tenant's share follows its weight whatever the length of its
//! backlog, and a tenant at its `max_running`, or held back (its CPU budget
//! spent), gets none. Within a tenant, as
//! Airflow orders them: highest priority first (then the older run, then the
//! task's place in the file, then the map index), within every limit: each run's
//! `max_active_tasks`, each task's `max_active_tis_per_dag` and
//! `max_active_tis_per_dagrun`, and pool slots. A TaskInstance that does not fit
//! waits, and lower-priority ones that do fit go ahead of it (Airflow skips to the
//! next rather than stopping). The global `parallelism` bounds it all.

use super::ActiveRun;
use super::candidates::Place;
use crate::metastore::TaskInstance;
use aileron_model::TaskInstanceState as S;
use aileron_model::dag::DagSpec;
use aileron_model::{DagKey, DagRunState, PoolKey, RunKey, TenantId, TiKey};
use jiff::Timestamp;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// The pool every task is in unless its DAG file names another (Airflow's).
pub const DEFAULT_POOL: &str = "default_pool";
/// Airflow's default size of `default_pool`.
pub const DEFAULT_POOL_SLOTS: u32 = 128;

/// Slots of each pool that exists. `default_pool` exists in every tenant with
/// Airflow's 128 slots until someone changes it; any other pool must be created.
#[derive(Debug, Default, Clone)]
pub struct Pools(pub HashMap<PoolKey, u32>);

impl Pools {
    pub fn size(&self, key: &PoolKey) -> Option<u32> {
        match self.0.get(key) {
            Some(n) => Some(*n),
            None if key.name == DEFAULT_POOL => Some(DEFAULT_POOL_SLOTS),
            None => None,
        }
    }
}

/// What one tenant is given of the executor: its weight in fair sharing and a
/// cap on its tries queued or running at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantShare {
    /// At least 1.
    pub weight: u32,
    pub max_running: Option<u32>,
}

impl Default for TenantShare {
    fn default() -> Self {
        TenantShare {
            weight: 1,
            max_running: None,
        }
    }
}

/// Each tenant's share; a tenant without an entry has the default one.
#[derive(Debug, Default, Clone)]
pub struct Shares(pub HashMap<TenantId, TenantShare>);

impl Shares {
    pub fn of(&self, tenant: &str) -> TenantShare {
        self.0.get(tenant).copied().unwrap_or_default()
    }
}

/// Each task's effective priority weight (in spec order) per DAG version. It
/// depends only on the DAG's shape, and admission needs it every turn, so it is
/// computed once per version.
#[derive(Debug, Default)]
pub struct Weights(HashMap<(DagKey, String), Vec<i64>>);

impl Weights {
    pub fn of(&mut self, dag: DagKey, spec: &DagSpec) -> &[i64] {
        self.0
            .entry((dag, spec.version.clone()))
            .or_insert_with(|| {
                spec.tasks
                    .iter()
                    .map(|t| spec.priority_weight_total(&t.task_id))
                    .collect()
            })
    }
}

/// What admission looks at.
pub struct Snapshot<'a> {
    /// Airflow's `parallelism`: TaskInstances queued or running at once.
    pub parallelism: usize,
    /// The TaskInstances queued or running now.
    pub in_flight: Vec<&'a TiKey>,
    pub runs: &'a BTreeMap<RunKey, ActiveRun>,
    pub is_paused: &'a dyn Fn(&DagKey) -> bool,
    pub pools: &'a Pools,
    pub shares: &'a Shares,
    /// Tenants whose new tries wait whatever the free slots (a spent CPU budget).
    pub held_back: &'a dyn Fn(&str) -> bool,
    pub now: Timestamp,
}

/// Whether a TaskInstance in `state` may be queued at `now`.
fn is_ready(state: S, next_try_at: Option<Timestamp>, now: Timestamp) -> bool {
    match state {
        S::Scheduled => true,
        S::UpForRetry | S::UpForReschedule => next_try_at.is_none_or(|t| t <= now),
        _ => false,
    }
}

/// What is in flight, counted for each limit.
#[derive(Default)]
struct Usage {
    per_run: HashMap<RunKey, usize>,
    per_task: HashMap<(DagKey, String), u32>,
    per_run_task: HashMap<(RunKey, String), u32>,
    per_pool: HashMap<PoolKey, u64>,
    per_tenant: HashMap<String, u64>,
}

impl Usage {
    fn add(&mut self, key: &TiKey, pool: Option<(PoolKey, u32)>) {
        let rk = key.run_key();
        *self.per_run.entry(rk.clone()).or_default() += 1;
        *self
            .per_task
            .entry((rk.dag(), key.task_id.clone()))
            .or_default() += 1;
        *self
            .per_run_task
            .entry((rk, key.task_id.clone()))
            .or_default() += 1;
        if let Some((pool, slots)) = pool {
            *self.per_pool.entry(pool).or_default() += u64::from(slots);
        }
        *self.per_tenant.entry(key.tenant.clone()).or_default() += 1;
    }

    fn of_tenant(&self, tenant: &str) -> u64 {
        self.per_tenant.get(tenant).copied().unwrap_or(0)
    }
}

/// One tenant's candidates across its runs, merged lazily in Airflow's order:
/// (−priority weight, logical date, run order, task order, map index; ties
/// between runs broken by DAG and run id, so the order is the same every turn).
/// Only what admission takes or skips is looked at: a run with 10,000 ready
/// TaskInstances costs a few heap steps, not a sort of 10,000.
struct TenantQueue<'a> {
    runs: Vec<&'a ActiveRun>,
    heap: BinaryHeap<Reverse<Head<'a>>>,
}

/// The next candidate of one run.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Head<'a> {
    order: (i64, Timestamp, u64, usize, i64, &'a str, &'a str),
    /// Index in `TenantQueue::runs`.
    run: usize,
}

/// What admission does with a run after looking at one of its candidates.
enum Then {
    /// Look at its next candidate.
    Next,
    /// Skip the rest of this task's map indexes (a per-task cap is reached).
    NextTask,
    /// Skip the run (its `max_active_tasks` is reached).
    Drop,
}

impl<'a> TenantQueue<'a> {
    fn new() -> Self {
        TenantQueue {
            runs: Vec::new(),
            heap: BinaryHeap::new(),
        }
    }

    fn head(run: &'a ActiveRun, index: usize, place: Place) -> Head<'a> {
        Head {
            order: (
                place.0,
                run.run.logical_date,
                run.run.seq,
                place.1,
                place.2,
                &run.run.dag_id,
                &run.run.run_id,
            ),
            run: index,
        }
    }

    fn add(&mut self, run: &'a ActiveRun) {
        if let Some(first) = run.candidates().next_after(None) {
            self.heap
                .push(Reverse(Self::head(run, self.runs.len(), first)));
            self.runs.push(run);
        }
    }

    fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The first candidate: its run, its place and the TaskInstance (if the
    /// place still names one).
    fn pop(&mut self) -> Option<(usize, Place, Option<&'a TaskInstance>)> {
        let Reverse(head) = self.heap.pop()?;
        let (w, _, _, pos, map, _, _) = head.order;
        let run = self.runs[head.run];
        let ti = run
            .spec
            .tasks
            .get(pos)
            .and_then(|task| run.ti(&task.task_id, map));
        Some((head.run, (w, pos, map), ti))
    }

    /// Puts the run back with its candidate after `place`, as `then` says.
    fn advance(&mut self, index: usize, place: Place, then: Then) {
        let after = match then {
            Then::Next => place,
            Then::NextTask => (place.0, place.1, i64::MAX),
            Then::Drop => return,
        };
        let run = self.runs[index];
        if let Some(next) = run.candidates().next_after(Some(after)) {
            self.heap.push(Reverse(Self::head(run, index, next)));
        }
    }
}

/// The tenant the next slot goes to: among those with a TaskInstance left to
/// try and room under their `max_running`, the one with the fewest in flight
/// per unit of weight (ties: the tenant name, so the choice is deterministic).
fn next_tenant<'r>(
    queues: &BTreeMap<&'r str, TenantQueue<'_>>,
    usage: &Usage,
    shares: &Shares,
) -> Option<&'r str> {
    queues
        .iter()
        .filter(|(tenant, queue)| {
            !queue.is_empty()
                && shares
                    .of(tenant)
                    .max_running
                    .is_none_or(|m| usage.of_tenant(tenant) < u64::from(m))
        })
        .min_by(|(a, _), (b, _)| {
            let (wa, wb) = (
                u64::from(shares.of(a).weight.max(1)),
                u64::from(shares.of(b).weight.max(1)),
            );
            // used_a / w_a against used_b / w_b, without division.
            (usage.of_tenant(a) * wb).cmp(&(usage.of_tenant(b) * wa))
        })
        .map(|(tenant, _)| *tenant)
}

/// The TaskInstances to queue now, in the order they were admitted. The runs'
/// candidates must be up to date ([`ActiveRun::refresh_candidates`]).
pub fn admit(snapshot: &Snapshot<'_>) -> Vec<TiKey> {
    let free = snapshot
        .parallelism
        .saturating_sub(snapshot.in_flight.len());
    if free == 0 {
        return Vec::new();
    }
    let runs = snapshot.runs;
    let mut usage = Usage::default();
    for key in &snapshot.in_flight {
        let pool = runs
            .get(&key.run_key())
            .and_then(|r| r.spec.task(&key.task_id))
            .map(|t| (PoolKey::new(&key.tenant, &t.pool), t.pool_slots));
        usage.add(key, pool);
    }

    // Each tenant's queue over its running, unpaused runs; a held-back
    // tenant's candidates stay scheduled.
    let mut queues: BTreeMap<&str, TenantQueue<'_>> = BTreeMap::new();
    for (rk, run) in runs {
        if run.run.state != DagRunState::Running
            || run.candidates().is_empty()
            || (snapshot.held_back)(&rk.tenant)
            || (snapshot.is_paused)(&rk.dag())
        {
            continue;
        }
        queues
            .entry(rk.tenant.as_str())
            .or_insert_with(TenantQueue::new)
            .add(run);
    }

    let mut admitted = Vec::new();
    while admitted.len() < free {
        let Some(tenant) = next_tenant(&queues, &usage, snapshot.shares) else {
            break;
        };
        let Some(queue) = queues.get_mut(tenant) else {
            break;
        };
        let Some((index, place, ti)) = queue.pop() else {
            break;
        };
        let run = queue.runs[index];
        let then = match ti {
            Some(ti) if is_ready(ti.state, ti.next_try_at, snapshot.now) => {
                fit(ti, run, snapshot, &mut usage, &mut admitted)
            }
            // Waiting out a retry or reschedule delay, or no longer a candidate.
            _ => Then::Next,
        };
        queue.advance(index, place, then);
    }
    admitted
}

/// Admits `ti` if every limit lets it through; what to look at next either way.
fn fit(
    ti: &TaskInstance,
    run: &ActiveRun,
    snapshot: &Snapshot<'_>,
    usage: &mut Usage,
    admitted: &mut Vec<TiKey>,
) -> Then {
    let key = TiKey::from(ti);
    let rk = key.run_key();
    let Some(task) = run.spec.task(&key.task_id) else {
        return Then::NextTask;
    };
    if usage.per_run.get(&rk).copied().unwrap_or(0) >= run.spec.max_active_tasks as usize {
        return Then::Drop;
    }
    let task_key = (rk.dag(), key.task_id.clone());
    let in_dag = usage.per_task.get(&task_key).copied().unwrap_or(0);
    if task.max_active_tis_per_dag.is_some_and(|m| in_dag >= m) {
        return Then::NextTask;
    }
    let run_task_key = (rk, key.task_id.clone());
    let in_run = usage.per_run_task.get(&run_task_key).copied().unwrap_or(0);
    if task.max_active_tis_per_dagrun.is_some_and(|m| in_run >= m) {
        return Then::NextTask;
    }
    let pool = PoolKey::new(&key.tenant, &task.pool);
    let Some(size) = snapshot.pools.size(&pool) else {
        // Airflow leaves such a task scheduled until the pool is created.
        tracing::debug!(pool = %task.pool, task_id = %key.task_id, "the task's pool does not exist; it waits");
        return Then::NextTask;
    };
    let used = usage.per_pool.get(&pool).copied().unwrap_or(0);
    if used + u64::from(task.pool_slots) > u64::from(size) {
        // A smaller TaskInstance of the same pool may still fit.
        return Then::Next;
    }
    usage.add(&key, Some((pool, task.pool_slots)));
    admitted.push(key);
    Then::Next
}
