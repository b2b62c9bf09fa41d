//! Workers: the `aileron worker` processes registered with this scheduler
//! (`docs/design/multi-node.md` §5). The registry lives in memory in [`Remote`],
//! filled by the execution API's register, heartbeat and stop calls; the tries a
//! worker runs come from the executor's leases, which are authoritative, never from
//! what the worker says. Without a remote executor (`aileron standalone`) tries run
//! in this process and the list is empty.

use super::Caller;
use super::error::BadRequest;
use super::query::ApiQuery;
use super::{ApiResult, ApiState, Page, paginate};
use crate::executors::remote::{Remote, WorkerInfo, elapsed};
use crate::sync::LockExt;
use aileron_model::TiKey;
use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use utoipa::ToSchema;

/// What a worker is doing, as Airflow's Edge worker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// It holds at least one try.
    Running,
    /// It is heard from and holds no try.
    Idle,
    /// It said it stopped, or nothing was heard from it for the worker timeout.
    Offline,
}

impl WorkerState {
    pub const ALL: [Self; 3] = [Self::Running, Self::Idle, Self::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Idle => "idle",
            Self::Offline => "offline",
        }
    }
}

/// A try a worker runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RunningTry {
    pub dag_id: String,
    pub dag_run_id: String,
    pub task_id: String,
    /// -1 for a task that is not mapped.
    pub map_index: i64,
    pub try_number: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Worker {
    /// The worker's id, `<name>-<8 hex digits>`: what the `hostname` of a
    /// TaskInstance holds for a try the worker ran.
    pub worker_name: String,
    /// The machine the worker runs on, as it reported it.
    pub hostname: String,
    /// The queues it takes tries from.
    pub queues: Vec<String>,
    /// The tenants whose tries it takes; null: every tenant.
    pub tenants: Option<Vec<String>>,
    /// How many tries it runs at once.
    pub slots: u32,
    /// The tries it runs now, by the scheduler's leases.
    pub running: Vec<RunningTry>,
    pub state: WorkerState,
    /// When it first registered with this scheduler process.
    pub first_online: Timestamp,
    pub last_heartbeat: Timestamp,
    /// The worker's Aileron version.
    pub version: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerCollection {
    pub workers: Vec<Worker>,
    pub total_entries: usize,
}

/// One registered worker with its state and every try it holds (of all tenants).
pub struct Listed {
    pub info: WorkerInfo,
    pub state: WorkerState,
    pub tries: Vec<(TiKey, u32)>,
}

fn silent_for(w: &WorkerInfo, now: Timestamp) -> Duration {
    elapsed(w.last_beat, now)
}

/// Whether `w` is offline at `now`: stopped, or silent for the worker timeout (the
/// same test that gives up its tries).
fn offline(w: &WorkerInfo, now: Timestamp, timeout: Duration) -> bool {
    w.stopped || silent_for(w, now) >= timeout
}

fn state_of(w: &WorkerInfo, holds_tries: bool, now: Timestamp, timeout: Duration) -> WorkerState {
    if offline(w, now, timeout) {
        WorkerState::Offline
    } else if holds_tries {
        WorkerState::Running
    } else {
        WorkerState::Idle
    }
}

/// The registered workers at `now` (the scheduler's clock), sorted by id, each
/// with its state and tries. (The heartbeat reaper drops workers silent for a day.)
pub fn list(remote: &Remote, now: Timestamp) -> Vec<Listed> {
    let timeout = remote.timing.worker_timeout;
    // One lock at a time: the execution API takes them one after the other too.
    let infos: Vec<WorkerInfo> = remote.workers.locked().values().cloned().collect();
    let mut tries: HashMap<String, Vec<(TiKey, u32)>> = HashMap::new();
    {
        let d = remote.dispatch.locked();
        for lease in d.leases.values() {
            tries
                .entry(lease.worker.clone())
                .or_default()
                .push((lease.key.clone(), lease.try_number));
        }
    }
    // `workers` is a BTreeMap: `infos` is already sorted by id.
    infos
        .into_iter()
        .map(|info| {
            let mut held = tries.remove(&info.id).unwrap_or_default();
            held.sort();
            let state = state_of(&info, !held.is_empty(), now, timeout);
            Listed {
                info,
                state,
                tries: held,
            }
        })
        .collect()
}

/// A listed worker as the API shows it to `tenant`: only that tenant's tries are
/// named. The state still counts every try the worker holds, since a worker busy
/// with another tenant's work is not idle.
fn worker(l: Listed, tenant: &str) -> Worker {
    let running = l
        .tries
        .into_iter()
        .filter(|(k, _)| k.tenant == tenant)
        .map(|(k, try_number)| RunningTry {
            dag_id: k.dag_id,
            dag_run_id: k.run_id,
            task_id: k.task_id,
            map_index: k.map_index,
            try_number,
        })
        .collect();
    let w = l.info;
    Worker {
        worker_name: w.id,
        hostname: w.hostname,
        queues: w.queues,
        tenants: w.tenants,
        slots: w.slots,
        running,
        state: l.state,
        first_online: w.first_online,
        last_heartbeat: w.last_heartbeat,
        version: w.version,
    }
}

/// List the workers registered with this scheduler, sorted by `worker_name`,
/// with the tries each runs. Empty under `aileron standalone`, which runs tries
/// itself.
#[utoipa::path(
    get, path = "/workers", tag = "Worker", operation_id = "get_workers",
    params(Page),
    responses(
        (status = 200, description = "One page of workers.", body = WorkerCollection),
        BadRequest,
    )
)]
pub async fn list_workers(
    caller: Caller,
    State(s): State<ApiState>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<WorkerCollection>> {
    let all = match &s.remote {
        Some(remote) => list(remote, remote.clock.now())
            .into_iter()
            .map(|l| worker(l, caller.tenant()))
            .collect(),
        None => Vec::new(),
    };
    let (workers, total_entries) = paginate(all, page.limit, page.offset);
    Ok(Json(WorkerCollection {
        workers,
        total_entries,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn info(last_beat: Timestamp, stopped: bool) -> WorkerInfo {
        WorkerInfo {
            id: "w-0000000a".into(),
            name: "w".into(),
            hostname: "h".into(),
            queues: vec!["default".into()],
            tenants: None,
            grant: None,
            slots: 1,
            version: "0".into(),
            first_online: Timestamp::UNIX_EPOCH,
            last_heartbeat: Timestamp::UNIX_EPOCH,
            last_beat,
            stopped,
            tenant_memory: Default::default(),
        }
    }

    #[test]
    fn states_follow_stops_silence_and_leases() {
        let beat: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let soon = beat + Duration::from_secs(1);
        let late = beat + TIMEOUT;
        let w = info(beat, false);
        assert_eq!(state_of(&w, false, soon, TIMEOUT), WorkerState::Idle);
        assert_eq!(state_of(&w, true, soon, TIMEOUT), WorkerState::Running);
        // Silent for the whole timeout: offline, even with tries not yet reaped.
        assert_eq!(state_of(&w, true, late, TIMEOUT), WorkerState::Offline);
        let stopped = info(beat, true);
        assert_eq!(
            state_of(&stopped, false, soon, TIMEOUT),
            WorkerState::Offline
        );
        // A clock read before the beat (another thread's `now`) is not silence.
        assert_eq!(state_of(&w, false, beat, TIMEOUT), WorkerState::Idle);
    }

    #[test]
    fn workers_offline_for_a_day_are_forgotten() {
        use crate::executors::remote::{FORGET_AFTER, Timing};
        let remote = Remote::new(
            aileron_protocol::ExecutionKey::generate().unwrap(),
            "t".into(),
            Timing {
                worker_timeout: TIMEOUT,
            },
            crate::scheduler::EventSink::for_tests().0,
            std::sync::Arc::new(aileron_model::clock::SystemClock),
        );
        let forgotten = |w: WorkerInfo, now: Timestamp| {
            remote.workers.locked().insert(w.id.clone(), w);
            remote.forget_silent_workers(now);
            std::mem::take(&mut *remote.workers.locked()).is_empty()
        };
        let beat: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let day = beat + FORGET_AFTER;
        let past_day = day + Duration::from_secs(1);
        assert!(!forgotten(info(beat, true), day));
        assert!(forgotten(info(beat, true), past_day));
        assert!(forgotten(info(beat, false), past_day));
        // Heard from a moment ago: kept.
        let recent = past_day - Duration::from_secs(1);
        assert!(!forgotten(info(recent, false), past_day));
    }
}
