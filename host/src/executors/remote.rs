//! What the scheduler process knows about remote tries, shared by the Redis
//! executor and the execution API: attempts waiting in a stream, leases of running
//! ones (kept alive by heartbeats), and the registered workers. Nothing here is
//! persisted; after a restart the scheduler rebuilds it from the metastore
//! (`recover_remote`) and the workers register again.
//!
//! Every time here (heartbeats, leases, worker liveness, the reaper's ticks) is
//! read from the scheduler's [`Clock`], like the rest of the scheduler: a wall
//! clock in production, a simulated one in tests. Durations between two readings
//! saturate at zero ([`elapsed`]), since a wall clock can be stepped back.

use crate::scheduler::{EventSink, ExecutorEvent};
use crate::sync::LockExt;
use aileron_model::clock::Clock;
use aileron_model::{TenantId, TiKey};
use aileron_protocol::ExecutionKey;
use aileron_protocol::wire::{Entry, Refusal};
use aileron_sandbox::{LiveUsage, LogBuffer, QuotaLedger};
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The heartbeat timing every worker is told at registration.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A try whose heartbeats stop for this long is failed (`--worker-timeout`).
    pub worker_timeout: Duration,
}

impl Timing {
    /// Six beats per timeout: a beat or two can be lost or late without the try
    /// being given up.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.worker_timeout / 6).max(Duration::from_millis(100))
    }
    /// Entries read but not started for this long are taken over by other workers.
    pub fn claim_idle(&self) -> Duration {
        self.worker_timeout
    }
}

/// An attempt handed to the executor, not yet started by a worker.
pub struct Queued {
    pub key: TiKey,
    /// The queue on the wire, `<tenant>/<queue>` (`wire::tenant_queue`).
    pub queue: String,
    pub entry: Entry,
    pub log: Arc<LogBuffer>,
    /// What the try has used, as its worker's heartbeats report it (shared
    /// with the scheduler, which charges the tenant from it).
    pub live: Arc<LiveUsage>,
    /// The id Redis gave its entry, once it is in its stream.
    pub published: Option<String>,
}

/// A running attempt and the worker that holds it.
pub struct Lease {
    pub key: TiKey,
    pub try_number: u32,
    pub worker: String,
    pub started: Timestamp,
    /// The last heartbeat (or start) on the scheduler's clock, moved forward by
    /// the scheduler's own stalls (see [`Reaper`]).
    pub last_beat: Timestamp,
    /// The scheduler's copy of the try's log, which the worker's chunks extend.
    pub log: Arc<LogBuffer>,
    /// What the try has used, as the worker's last heartbeat reported it.
    pub live: Arc<LiveUsage>,
}

/// A registered worker, as the API lists it.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub queues: Vec<String>,
    /// The tenants it serves; `None`: every tenant.
    pub tenants: Option<Vec<String>>,
    /// The tenant of the worker token it registered with; `None` for a token
    /// of the whole platform. Its later calls must come with the same.
    pub grant: Option<TenantId>,
    pub slots: u32,
    pub version: String,
    pub first_online: Timestamp,
    /// When its last heartbeat arrived, as the API shows it.
    pub last_heartbeat: Timestamp,
    /// What its liveness is judged from: `last_heartbeat`, moved forward by the
    /// scheduler's own stalls (see [`Reaper`]).
    pub last_beat: Timestamp,
    pub stopped: bool,
    /// Each tenant's memory held by its tries on the worker, as of its last
    /// heartbeat.
    pub tenant_memory: std::collections::BTreeMap<String, u64>,
}

/// The queued attempts and leases.
#[derive(Default)]
pub struct Dispatch {
    pub queued: HashMap<u64, Queued>,
    pub leases: HashMap<u64, Lease>,
    /// Stream entries to acknowledge and delete: `(queue, entry id)`.
    pub doomed: Vec<(String, String)>,
    /// Wire queues made ahead of their first try (every tenant's default
    /// queue), so workers serving every tenant find their streams before the
    /// first entry arrives rather than at their next look.
    pub announced: BTreeSet<String>,
    /// Whether the streams were compared with `queued` since this process started.
    /// Until then nothing is published, so entries that survived a restart are not
    /// added twice.
    pub reconciled: bool,
    /// Whether recovery has handed over every try it kept; until then the streams
    /// are not compared (their entries would all look unwanted).
    pub ready: bool,
}

/// One entry found in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    pub queue: String,
    pub id: String,
    /// `None` when the entry is unreadable.
    pub attempt: Option<u64>,
}

/// What reconciliation must do in Redis.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Repairs {
    /// Queued attempts missing from their stream.
    pub add: Vec<u64>,
    /// Entries nobody wants: finished, cancelled, unknown or unreadable.
    pub delete: Vec<(String, String)>,
}

impl Dispatch {
    /// Compares what the streams hold with what should be there. Entries of a
    /// queued or leased attempt stay (duplicates included: the first `/start` wins
    /// and the others are refused); everything else goes. A queued attempt in no
    /// stream is added again: its entry was trimmed, or lost with a Redis restart.
    /// The caller reads the streams and publishes in the same task, so no entry
    /// is added between the read and this call.
    pub fn reconcile(&mut self, present: &[Present]) -> Repairs {
        let mut repairs = Repairs::default();
        let mut seen = HashSet::new();
        for p in present {
            match p.attempt {
                // In the stream it belongs in (not one an older scheduler named
                // without its tenant, which no worker reads any more).
                Some(a) if self.queued.get(&a).is_some_and(|q| q.queue == p.queue) => {
                    seen.insert(a);
                    let q = self.queued.get_mut(&a).expect("checked");
                    if q.published.is_none() {
                        q.published = Some(p.id.clone());
                    }
                }
                Some(a) if self.leases.contains_key(&a) => {}
                _ => repairs.delete.push((p.queue.clone(), p.id.clone())),
            }
        }
        for attempt in self.queued.keys() {
            if !seen.contains(attempt) {
                repairs.add.push(*attempt);
            }
        }
        repairs.add.sort_unstable();
        self.reconciled = true;
        repairs
    }
}

/// State shared by the Redis executor and the execution API.
pub struct Remote {
    pub dispatch: Mutex<Dispatch>,
    pub workers: Mutex<BTreeMap<String, WorkerInfo>>,
    pub key: ExecutionKey,
    /// The shared secret workers present (`--worker-token`).
    pub worker_token: String,
    pub timing: Timing,
    /// The scheduler's command channel.
    pub events: EventSink,
    pub clock: Arc<dyn Clock>,
    /// Wakes the publisher when there is something to add or delete.
    pub wake: Notify,
    /// Attempts whose finish was applied recently, with the worker and the state
    /// it led to: a finish sent again (its answer was lost) gets the same answer.
    finished: Mutex<HashMap<u64, (String, String, Timestamp)>>,
    /// Whether workers can reach this process yet (its listener is open). Until
    /// then no lease is judged: nobody could have sent a heartbeat.
    listening: std::sync::atomic::AtomicBool,
    /// How much of each capped tenant's `max_memory` each worker (and this
    /// process, as [`SCHEDULER_HOLDER`]) holds.
    pub memory: Arc<QuotaLedger>,
}

/// This process's name in the memory ledger. Workers are named by
/// [`memory_holder`], which always adds a prefix, so no worker id can take it.
pub const SCHEDULER_HOLDER: &str = "scheduler";

/// A worker's name in the memory ledger.
pub fn memory_holder(worker: &str) -> String {
    format!("worker:{worker}")
}

/// A worker not heard from for longer than this leaves the list (Airflow's Edge
/// worker keeps them a day too): long enough to see what happened overnight,
/// short enough that workers replaced by new ids do not pile up.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How long a finished attempt's answer is kept for a repeated finish.
const FINISHED_KEPT: Duration = Duration::from_secs(600);

/// How long from `earlier` to `now`: zero when `now` is before it (a wall clock
/// stepped back, or a reading taken by another thread just before `earlier`).
pub fn elapsed(earlier: Timestamp, now: Timestamp) -> Duration {
    let d = now.duration_since(earlier);
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

impl Remote {
    /// Linear memory `tenant`'s tries hold on the workers that are online
    /// (not stopped, heard from within the worker timeout), as of their last
    /// heartbeats.
    pub fn tenant_memory(&self, tenant: &str) -> u64 {
        let now = self.clock.now();
        self.workers
            .locked()
            .values()
            .filter(|w| !w.stopped && elapsed(w.last_beat, now) <= self.timing.worker_timeout)
            .filter_map(|w| w.tenant_memory.get(tenant))
            .sum()
    }

    pub fn new(
        key: ExecutionKey,
        worker_token: String,
        timing: Timing,
        events: EventSink,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            dispatch: Mutex::default(),
            workers: Mutex::default(),
            key,
            worker_token,
            timing,
            events,
            clock,
            wake: Notify::new(),
            finished: Mutex::default(),
            listening: std::sync::atomic::AtomicBool::new(false),
            memory: QuotaLedger::new(),
        })
    }

    /// Makes `tenants`' default queues known to workers ahead of their first
    /// try (their streams are created at the publisher's next reconciliation).
    pub fn announce<'t>(&self, tenants: impl IntoIterator<Item = &'t str>) {
        let mut d = self.dispatch.locked();
        for t in tenants {
            d.announced.insert(aileron_protocol::wire::tenant_queue(
                t,
                aileron_model::dag::DEFAULT_QUEUE,
            ));
        }
    }

    /// Stops announcing a deleted tenant's default queue, so reconciliation
    /// does not make its stream again.
    pub fn forget(&self, tenant: &str) {
        self.dispatch
            .locked()
            .announced
            .remove(&aileron_protocol::wire::tenant_queue(
                tenant,
                aileron_model::dag::DEFAULT_QUEUE,
            ));
    }

    /// Workers can reach this process from `now` on: every lease (the adopted
    /// ones of a restart above all) gets a full worker timeout from here, however
    /// long start-up took.
    pub fn listening(&self, now: Timestamp) {
        for lease in self.dispatch.locked().leases.values_mut() {
            lease.last_beat = lease.last_beat.max(now);
        }
        self.listening
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Credits `gap` to every lease and worker: time this process spent stopped
    /// (SIGSTOP, a VM pause, swap) or starved, during which it could not read the
    /// heartbeats sent to it. Never past `now`. A negative gap (the clock was
    /// stepped back) only brings beats that are now in the future back to `now`.
    fn credit(&self, gap: SignedDuration, now: Timestamp) {
        let credited = |beat: Timestamp| {
            if gap.is_negative() {
                beat.min(now)
            } else {
                beat.checked_add(gap).map_or(now, |t| t.min(now))
            }
        };
        for lease in self.dispatch.locked().leases.values_mut() {
            lease.last_beat = credited(lease.last_beat);
        }
        for worker in self.workers.locked().values_mut() {
            worker.last_beat = credited(worker.last_beat);
        }
    }

    /// Records that `worker`'s finish of `attempt` was applied with `state`.
    pub fn record_finish(&self, attempt: u64, worker: &str, state: &str) {
        let now = self.clock.now();
        let mut f = self.finished.locked();
        // Pruned now and then rather than on every insert, which would be
        // quadratic under a busy queue.
        if f.len() % 1024 == 1023 {
            f.retain(|_, (_, _, at)| elapsed(*at, now) < FINISHED_KEPT);
        }
        f.insert(attempt, (worker.to_owned(), state.to_owned(), now));
    }

    /// The state a finish of `attempt` by `worker` already led to, if it was applied
    /// (a finish sent again because its answer was lost). A try the scheduler
    /// ended itself (no heartbeat) is not in here: that worker's finish is refused.
    pub fn finished_state(&self, attempt: u64, worker: &str) -> Option<String> {
        let f = self.finished.locked();
        f.get(&attempt)
            .filter(|(w, _, _)| w == worker)
            .map(|(_, s, _)| s.clone())
    }

    /// The lease of `attempt` if `worker` holds it, or why not.
    pub fn check_lease(&self, attempt: u64, worker: &str) -> Result<Arc<LogBuffer>, Refusal> {
        let d = self.dispatch.locked();
        match d.leases.get(&attempt) {
            Some(l) if l.worker == worker => Ok(l.log.clone()),
            Some(_) => Err(Refusal::RunningElsewhere),
            None if d.queued.contains_key(&attempt) => Err(Refusal::NotRunning),
            None => Err(Refusal::Superseded),
        }
    }

    /// Drops workers not heard from for more than [`FORGET_AFTER`] (each worker
    /// start registers a new id). A stopped worker's last heartbeat, at most a beat
    /// before its stop, stands for its stop time.
    pub fn forget_silent_workers(&self, now: Timestamp) {
        self.workers
            .lock()
            .unwrap()
            .retain(|_, w| elapsed(w.last_beat, now) <= FORGET_AFTER);
    }

    /// Fails every lease whose worker has not been heard from for the worker
    /// timeout at `now` (the scheduler's clock); retries decide what happens next.
    /// Returns how many. Judges nothing before [`listening`](Remote::listening).
    /// A beat after `now` is not silence.
    pub fn reap(&self, now: Timestamp) -> usize {
        if !self.listening.load(std::sync::atomic::Ordering::Acquire) {
            return 0;
        }
        let timeout = self.timing.worker_timeout;
        self.forget_silent_workers(now);
        // What a silent or stopped worker held of tenants' memory quotas is
        // free again; if it comes back, it registers again with what it holds.
        let gone: std::collections::HashSet<String> = (self.workers.locked().values())
            .filter(|w| w.stopped || elapsed(w.last_beat, now) >= timeout)
            .map(|w| memory_holder(&w.id))
            .collect();
        self.memory.forget_all(&gone);
        let expired: Vec<(u64, Lease)> = {
            let mut d = self.dispatch.locked();
            let gone: Vec<u64> = d
                .leases
                .iter()
                .filter(|(_, l)| elapsed(l.last_beat, now) >= timeout)
                .map(|(a, _)| *a)
                .collect();
            gone.into_iter()
                .filter_map(|a| d.leases.remove(&a).map(|l| (a, l)))
                .collect()
        };
        for (attempt, lease) in &expired {
            let reason = format!(
                "no heartbeat from worker {} for {:?}; the try is given up",
                lease.worker, timeout
            );
            tracing::warn!(attempt, task = %lease.key.task_id, "{reason}");
            lease
                .log
                .append_closing_line(aileron_sandbox::LogLevel::Error, &reason);
            self.events.send(ExecutorEvent::Finished {
                key: lease.key.clone(),
                try_number: lease.try_number,
                attempt: *attempt,
                started: lease.started,
                ended: now.max(lease.started),
                report: aileron_sandbox::TryReport {
                    result: aileron_sandbox::TryResult::Failed(reason),
                    xcom: Vec::new(),
                    duration: Duration::ZERO,
                    // As of the worker's last heartbeat.
                    usage: lease.live.snapshot(),
                },
            });
        }
        expired.len()
    }
}

/// How often the reaper looks at the leases.
pub const REAP_EVERY: Duration = Duration::from_secs(1);

/// Drives [`Remote::reap`] once per [`REAP_EVERY`], telling its own stalls apart
/// from silent workers.
///
/// A tick that comes more than a tick late means this process did not run for
/// that long: stopped, paused with its VM, swapped out or starved. Heartbeats
/// sent meanwhile wait unread in its sockets, so judging leases at once would
/// give up healthy tries. Such a tick credits the gap to every lease and worker
/// and judges nothing; the next tick, after the waiting heartbeats were read,
/// judges as usual. A stall of the scheduler therefore never counts against a
/// worker, while a worker that died during it is still found one timeout later.
///
/// What is measured is the scheduler's clock, read at each tick (the ticks
/// themselves come from a real-time interval, which only triggers them). So a
/// clock that jumps forward by more than two ticks between two of them looks
/// exactly like a stall and is credited the same way: a wall clock stepped
/// forward by the OS, or a simulated clock set ahead by a test or jumping to a
/// retry's timer. A test that wants a lease given up moves the clock in steps
/// of at most two ticks, each seen by a tick, or calls [`Remote::reap`] itself.
/// A clock stepped back judges nothing on that tick
/// either; beats it left in the future come back to the tick's time, so every
/// silence is timed from the step at the latest.
#[derive(Debug, Default)]
pub struct Reaper {
    last_tick: Option<Timestamp>,
}

impl Reaper {
    /// One tick at `now`, the scheduler's clock. Returns how many tries were
    /// given up.
    pub fn tick(&mut self, remote: &Remote, now: Timestamp) -> usize {
        let gap = self
            .last_tick
            .map_or(SignedDuration::ZERO, |t| now.duration_since(t));
        self.last_tick = Some(now);
        if gap.is_negative() {
            tracing::warn!(
                "the clock went back by {:.1?}; no heartbeat is judged on this tick",
                gap.unsigned_abs()
            );
            remote.credit(gap, now);
            return 0;
        }
        if gap.unsigned_abs() > 2 * REAP_EVERY {
            // When in the gap the stall began is unknown: the whole gap is
            // credited, erring by at most one tick in the workers' favour.
            tracing::warn!(
                "the scheduler did not run (or its clock jumped) for about {:.1?}; that \
                 time does not count against workers' heartbeats",
                gap.unsigned_abs()
            );
            remote.credit(gap, now);
            return 0;
        }
        remote.reap(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Command;
    use aileron_sandbox::{Limits, TaskInfo};
    use tokio::sync::mpsc;

    /// Any moment: tests count from here.
    fn t0() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    /// `ms` milliseconds after [`t0`] (negative: before it).
    fn at_ms(ms: i64) -> Timestamp {
        t0() + SignedDuration::from_millis(ms)
    }

    fn at(s: i64) -> Timestamp {
        at_ms(s * 1000)
    }

    fn key(task: &str) -> TiKey {
        TiKey {
            tenant: "default".into(),
            dag_id: "d".into(),
            run_id: "r".into(),
            task_id: task.into(),
            map_index: -1,
        }
    }

    fn queued(attempt: u64, published: Option<String>) -> Queued {
        let k = key(&format!("t{attempt}"));
        Queued {
            entry: Entry {
                key: aileron_protocol::wire::EntryKey {
                    tenant: k.tenant.clone(),
                    dag_id: k.dag_id.clone(),
                    run_id: k.run_id.clone(),
                    task_id: k.task_id.clone(),
                    map_index: -1,
                },
                try_number: 1,
                attempt,
                token: String::new(),
                digest: String::new(),
                task: TaskInfo {
                    dag_id: "d".into(),
                    run_id: "r".into(),
                    task_id: k.task_id.clone(),
                    map_index: None,
                    try_number: 1,
                    logical_date: String::new(),
                    data_interval_start: String::new(),
                    data_interval_end: String::new(),
                },
                params: serde_json::Value::Null,
                limits: Limits::default(),
                enqueued_at: 0,
            },
            key: k,
            queue: "default".into(),
            log: Arc::new(LogBuffer::new(1024)),
            live: Default::default(),
            published,
        }
    }

    fn present(id: &str, attempt: Option<u64>) -> Present {
        Present {
            queue: "default".into(),
            id: id.into(),
            attempt,
        }
    }

    #[test]
    fn reconcile_adds_the_missing_and_deletes_the_unwanted() {
        let now = t0();
        let mut d = Dispatch::default();
        d.queued.insert(1, queued(1, None)); // never published, present: adopt its id
        d.queued.insert(2, queued(2, Some("2-0".into()))); // lost
        d.queued.insert(4, queued(4, None)); // never published, missing
        d.leases.insert(
            5,
            Lease {
                key: key("t5"),
                try_number: 1,
                worker: "w".into(),
                started: Timestamp::UNIX_EPOCH,
                last_beat: now,
                log: Arc::new(LogBuffer::new(1024)),
                live: Default::default(),
            },
        );
        let streams = [
            present("1-0", Some(1)),
            present("1-1", Some(1)), // a duplicate stays: the first start wins
            present("5-0", Some(5)), // running: its worker acks it
            present("6-0", Some(6)), // finished or cancelled
            present("7-0", None),    // unreadable
        ];
        let r = d.reconcile(&streams);
        assert_eq!(r.add, vec![2, 4]);
        assert_eq!(
            r.delete,
            vec![
                ("default".to_owned(), "6-0".to_owned()),
                ("default".to_owned(), "7-0".to_owned())
            ]
        );
        assert_eq!(d.queued[&1].published.as_deref(), Some("1-0"));
        assert!(d.reconciled);
    }

    #[test]
    fn an_entry_in_a_stream_without_its_tenant_moves_to_the_tenant_s_stream() {
        let mut d = Dispatch::default();
        d.queued.insert(1, queued(1, None));
        // Written by a scheduler from before per-tenant streams.
        let old = Present {
            queue: "old".into(),
            ..present("1-0", Some(1))
        };
        let r = d.reconcile(&[old]);
        assert_eq!(r.add, vec![1]);
        assert_eq!(r.delete, vec![("old".to_owned(), "1-0".to_owned())]);
    }

    #[test]
    fn heartbeat_timing_follows_the_worker_timeout() {
        let t = Timing {
            worker_timeout: Duration::from_secs(30),
        };
        assert_eq!(t.heartbeat_interval(), Duration::from_secs(5));
        assert_eq!(t.claim_idle(), Duration::from_secs(30));
    }

    fn lease(worker: &str, last_beat: Timestamp) -> Lease {
        Lease {
            key: key(worker),
            try_number: 1,
            worker: worker.into(),
            started: Timestamp::UNIX_EPOCH,
            last_beat,
            log: Arc::new(LogBuffer::new(1024)),
            live: Default::default(),
        }
    }

    /// A remote with a 3 s worker timeout and two leases beating until `t0`.
    fn remote_with_leases(t0: Timestamp) -> (Arc<Remote>, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = EventSink::for_tests();
        let remote = Remote::new(
            ExecutionKey::generate().unwrap(),
            "secret".into(),
            Timing {
                worker_timeout: Duration::from_secs(3),
            },
            tx,
            Arc::new(aileron_model::clock::SimClock::new(t0)),
        );
        {
            let mut d = remote.dispatch.locked();
            d.leases.insert(1, lease("a", t0));
            d.leases.insert(2, lease("b", t0));
        }
        (remote, rx)
    }

    /// A heartbeat of `attempt`'s worker arriving at `at`.
    fn beat(remote: &Remote, attempt: u64, at: Timestamp) {
        remote
            .dispatch
            .lock()
            .unwrap()
            .leases
            .get_mut(&attempt)
            .unwrap()
            .last_beat = at;
    }

    fn given_up(rx: &mut mpsc::UnboundedReceiver<Command>) -> Vec<u64> {
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            if let Command::Executor(ExecutorEvent::Finished { attempt, .. }) = c {
                out.push(attempt);
            }
        }
        out.sort_unstable();
        out
    }

    /// Simulated time: the reaper ticks every second while the workers beat,
    /// then the scheduler is stopped for 6 s (twice the timeout). The late tick
    /// judges nothing; the heartbeats that waited are read; nothing is given up.
    #[test]
    fn a_stall_of_the_scheduler_does_not_count_against_workers() {
        let at = at_ms;
        let (remote, mut rx) = remote_with_leases(t0());
        remote.listening(t0());
        let mut reaper = Reaper::default();
        for s in 1..=3 {
            assert_eq!(reaper.tick(&remote, at(s * 1000)), 0);
            // Worker `a` beats every half second; `b` dies after its beat at 2 s.
            for ms in [s * 1000 - 500, s * 1000] {
                beat(&remote, 1, at(ms));
                if ms <= 2000 {
                    beat(&remote, 2, at(ms));
                }
            }
        }
        // Stopped from 3 s to 9 s: the first tick after it comes 6 s late.
        assert_eq!(
            reaper.tick(&remote, at(9_000)),
            0,
            "a late tick judges nothing"
        );
        assert!(given_up(&mut rx).is_empty());
        // The heartbeats that waited in the sockets are read: `a` only.
        beat(&remote, 1, at(9_010));
        assert_eq!(reaper.tick(&remote, at(10_000)), 0);
        assert!(
            given_up(&mut rx).is_empty(),
            "the stall is credited to `b` too"
        );
        // `b` really is silent: it is given up one timeout of awake time after its
        // last beat (1 s before the stall, 2 s after it), `a` never.
        beat(&remote, 1, at(10_500));
        assert_eq!(reaper.tick(&remote, at(11_000)), 1);
        assert_eq!(given_up(&mut rx), [2]);
        assert!(remote.dispatch.locked().leases.contains_key(&1));
    }

    #[test]
    fn ordinary_silence_is_judged_on_time() {
        let (remote, mut rx) = remote_with_leases(t0());
        remote.listening(t0());
        let mut reaper = Reaper::default();
        assert_eq!(reaper.tick(&remote, at(1)), 0);
        assert_eq!(reaper.tick(&remote, at(2)), 0);
        assert_eq!(reaper.tick(&remote, at(3)), 2, "silent for the 3 s timeout");
        assert_eq!(given_up(&mut rx), [1, 2]);
    }

    /// After a restart, adopted leases are judged from when workers can reach the
    /// scheduler again, one worker timeout later, however long start-up took.
    #[test]
    fn adopted_leases_get_one_timeout_from_listening() {
        let (remote, mut rx) = remote_with_leases(t0());
        // Start-up (the DAG folder scan) takes 20 s: nothing is judged meanwhile.
        assert_eq!(remote.reap(at(20)), 0);
        remote.listening(at(20));
        assert_eq!(remote.reap(at(22)), 0);
        // `a`'s worker is alive and beats; `b`'s died while the scheduler was down.
        beat(&remote, 1, at(22));
        assert_eq!(remote.reap(at(23)), 1);
        assert_eq!(given_up(&mut rx), [2]);
    }

    #[test]
    fn a_tenant_s_memory_is_summed_over_the_workers_still_online() {
        let (remote, _rx) = remote_with_leases(t0());
        let with = |id: &str, last_beat, stopped, held: &[(&str, u64)]| WorkerInfo {
            stopped,
            tenant_memory: held.iter().map(|(t, m)| ((*t).to_owned(), *m)).collect(),
            ..worker(id, last_beat)
        };
        let mut workers = remote.workers.locked();
        workers.insert("w1".into(), with("w1", t0(), false, &[("a", 10), ("b", 1)]));
        workers.insert("w2".into(), with("w2", t0(), false, &[("a", 5)]));
        // Stopped, or silent past the timeout: no longer counted.
        workers.insert("w3".into(), with("w3", t0(), true, &[("a", 100)]));
        workers.insert("w4".into(), with("w4", at(-10), false, &[("a", 1000)]));
        drop(workers);
        assert_eq!(remote.tenant_memory("a"), 15);
        assert_eq!(remote.tenant_memory("b"), 1);
        assert_eq!(remote.tenant_memory("c"), 0);
    }

    fn worker(id: &str, last_beat: Timestamp) -> WorkerInfo {
        WorkerInfo {
            id: id.into(),
            name: id.into(),
            hostname: "h".into(),
            queues: vec!["default".into()],
            tenants: None,
            grant: None,
            slots: 1,
            version: "0".into(),
            first_online: last_beat,
            last_heartbeat: last_beat,
            last_beat,
            stopped: false,
            tenant_memory: Default::default(),
        }
    }

    /// A wall clock stepped back an hour (by the OS, NTP) while the workers beat:
    /// nothing is given up for the step, nothing panics, and a worker that goes
    /// silent is found one timeout after the step, not an hour later.
    #[test]
    fn a_clock_stepped_back_neither_expires_nor_panics() {
        let (remote, mut rx) = remote_with_leases(t0());
        remote
            .workers
            .locked()
            .insert("w".into(), worker("w", at(2)));
        remote.listening(t0());
        let mut reaper = Reaper::default();
        for s in 1..=2 {
            assert_eq!(reaper.tick(&remote, at(s)), 0);
            beat(&remote, 1, at(s));
            beat(&remote, 2, at(s));
        }
        // Every beat is now an hour in the future: no silence, no underflow.
        let back = at(3 - 3600);
        assert_eq!(remote.reap(back), 0, "a beat after `now` is not silence");
        assert_eq!(
            reaper.tick(&remote, back),
            0,
            "a backwards tick judges nothing"
        );
        assert!(given_up(&mut rx).is_empty());
        {
            let d = remote.dispatch.locked();
            assert!(d.leases.values().all(|l| l.last_beat == back), "clamped");
        }
        assert_eq!(remote.workers.locked()["w"].last_beat, back);
        // `a` beats on the new time line; `b` is silent from the step on.
        let after = |s: i64| back + SignedDuration::from_secs(s);
        for s in 1..=2 {
            beat(&remote, 1, after(s));
            assert_eq!(reaper.tick(&remote, after(s)), 0);
        }
        assert_eq!(
            reaper.tick(&remote, after(3)),
            1,
            "one timeout after the step"
        );
        assert_eq!(given_up(&mut rx), [2]);
        assert!(remote.dispatch.locked().leases.contains_key(&1));
        assert!(remote.workers.locked().contains_key("w"));
    }

    /// A clock that jumps ahead between two ticks (a wall clock stepped forward,
    /// a simulated clock set ahead by a test or jumping to a retry's timer) is
    /// credited like a stall: no lease is given up and no worker forgotten for the
    /// jump, even one longer than [`FORGET_AFTER`]. Silence after it is judged as
    /// usual.
    #[test]
    fn a_clock_jump_is_credited_like_a_stall() {
        let (remote, mut rx) = remote_with_leases(t0());
        remote
            .workers
            .locked()
            .insert("w".into(), worker("w", t0()));
        remote.listening(t0());
        let mut reaper = Reaper::default();
        assert_eq!(reaper.tick(&remote, at(1)), 0);
        beat(&remote, 1, at(1));
        beat(&remote, 2, at(1));
        let later = at(1) + SignedDuration::from_hours(48);
        assert_eq!(reaper.tick(&remote, later), 0);
        assert!(given_up(&mut rx).is_empty());
        // The worker's second of silence before the jump still counts; the jump
        // does not.
        assert_eq!(
            remote.workers.locked()["w"].last_beat,
            later - SignedDuration::from_secs(1)
        );
        let after = |s: i64| later + SignedDuration::from_secs(s);
        beat(&remote, 1, after(1));
        assert_eq!(reaper.tick(&remote, after(1)), 0);
        assert_eq!(reaper.tick(&remote, after(2)), 0);
        assert_eq!(
            reaper.tick(&remote, after(3)),
            1,
            "`b`: 3 s silent after the jump"
        );
        assert_eq!(given_up(&mut rx), [2]);
        assert!(remote.workers.locked().contains_key("w"));
    }
}
