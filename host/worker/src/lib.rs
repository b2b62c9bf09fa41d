//! `aileron worker`: takes TaskInstance tries from Redis Streams, runs them in its
//! own sandbox and reports to the scheduler over the execution API
//! (`docs/design/multi-node.md` §1, §3). It never opens the metastore.
//!
//! Three loops share one [`Ctx`]: the control loop registers the worker and
//! heartbeats it; the read loop takes entries while the worker is registered and
//! has free slots; each entry gets a [`runner`] holding one slot. Every loop
//! retries with [`Backoff`]: the process only ends on SIGINT or SIGTERM.

mod api;
mod components;
mod error;
mod ledger;
mod queue;
mod remote_host;
mod runner;

use aileron_protocol::backoff::Backoff;
use aileron_protocol::wire::{
    RegisterRequest, RegisterResponse, WorkerHeartbeat, stream_key, tenant_queue,
};
use api::{Api, Failure};
use clap::Args;
use components::Components;
pub use error::WorkerError;
use error::ensure;
use queue::{Delivery, Queue, ReadPlan};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

/// `aileron worker`'s command line.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// The Redis server holding the queues: redis://HOST:PORT[/DB].
    #[arg(long, env = "AILERON_QUEUE")]
    pub queue: String,
    /// The scheduler: http://HOST:PORT (its execution API is under /execution/v1).
    #[arg(long, env = "AILERON_SERVER")]
    pub server: String,
    /// The worker token the scheduler was given (or generated in HOME/worker.token).
    #[arg(long, env = "AILERON_WORKER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The queues to take tasks from, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    pub queues: Vec<String>,
    /// Take only these tenants' tries, comma-separated (default: every tenant
    /// the token serves; a tenant's worker token serves that tenant alone).
    #[arg(long, value_delimiter = ',')]
    pub tenants: Option<Vec<String>>,
    /// Tries run at once (default: the number of CPUs).
    #[arg(long)]
    pub slots: Option<usize>,
    /// The name shown for this worker (default: the hostname).
    #[arg(long)]
    pub name: Option<String>,
    /// Holds only downloaded components (plugins/store/) and compiled ones
    /// (cache/); default ~/.aileron.
    #[arg(long, env = "AILERON_HOME")]
    pub home: Option<PathBuf>,
    /// Where compiled components are kept (default HOME/cache): workers of one
    /// machine given the same folder compile each component once. It must
    /// belong to this user.
    #[arg(long, env = "AILERON_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// The timing the scheduler hands out at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat: Duration,
    pub worker_timeout: Duration,
    pub claim_idle: Duration,
}

impl Default for Timing {
    /// Used only until the first registration answers, which is before any
    /// entry is read: the scheduler's defaults for a 30 s worker timeout.
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_secs(5),
            worker_timeout: Duration::from_secs(30),
            claim_idle: Duration::from_secs(30),
        }
    }
}

impl Timing {
    /// The scheduler's answer, with zero intervals (which would spin) raised to
    /// a floor.
    fn from_answer(a: &RegisterResponse) -> Timing {
        let ms = |v: u64| Duration::from_millis(v.max(MIN_INTERVAL_MS));
        Timing {
            heartbeat: ms(a.heartbeat_interval_ms),
            worker_timeout: ms(a.worker_timeout_ms),
            claim_idle: ms(a.claim_idle_ms),
        }
    }
}

/// The shortest interval taken from the scheduler: a misconfigured 0 must not
/// turn a loop into a busy one.
const MIN_INTERVAL_MS: u64 = 100;
/// The longest queue name, as the DAG parser enforces it.
const MAX_QUEUE_NAME: usize = 64;
/// How often `/stop` is tried on the way out before exiting without it (the
/// scheduler then marks the worker offline when its heartbeats stop).
const STOP_ATTEMPTS: u32 = 3;

/// What the loops and runners of one worker share.
pub struct Ctx {
    /// `{name}-{8 hex}`: new at every start, and the Redis consumer name.
    id: String,
    api: Api,
    queue: Queue,
    sandbox: aileron_sandbox::Sandbox,
    components: Components,
    timing: watch::Receiver<Timing>,
    /// attempt → stream entry id, for every try this worker holds.
    active: Mutex<HashMap<u64, String>>,
    /// The task queues it serves (`--queues`).
    queues: Vec<String>,
    /// The tenants it serves, as the scheduler answered the registration;
    /// `None`: every tenant, whose streams the read loop finds in Redis.
    tenants: Mutex<Option<Vec<String>>>,
}

impl Ctx {
    fn timing(&self) -> Timing {
        *self.timing.borrow()
    }

    /// Serves `tenants` (`None`: every tenant) from now on: a worker of given
    /// tenants reads their streams of its queues, and no other.
    fn serve(&self, tenants: Option<Vec<String>>) {
        if let Some(ts) = &tenants {
            let streams = ts
                .iter()
                .flat_map(|t| {
                    self.queues
                        .iter()
                        .map(move |q| stream_key(&tenant_queue(t, q)))
                })
                .collect();
            self.queue.set_streams(streams);
        }
        *self.tenants.lock().unwrap_or_else(|e| e.into_inner()) = tenants;
    }

    fn every_tenant(&self) -> bool {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    fn lock_active(&self) -> MutexGuard<'_, HashMap<u64, String>> {
        // The map stays consistent whatever panicked while holding it.
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the worker until SIGINT or SIGTERM, then lets its tries finish and report
/// and deregisters. A second signal exits at once.
pub async fn run(args: WorkerArgs) -> Result<ExitCode, WorkerError> {
    let queues = check_queues(&args.queues)?;
    let slots = args.slots.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    ensure(slots >= 1, || "--slots must be at least 1".to_owned())?;
    let hostname = aileron_protocol::hostname();
    let name = args.name.clone().unwrap_or_else(|| hostname.clone());
    check_name(&name)?;
    // The HTTP client is built without TLS (as for the other commands): across
    // untrusted networks, a local TLS tunnel or proxy carries the plain calls.
    ensure(args.server.starts_with("http://"), || {
        "--server must be an http:// URL, like http://scheduler:8080 (this build has no TLS client)"
            .to_owned()
    })?;
    let id = worker_id(&name)?;
    let home = args.home.clone().unwrap_or_else(default_home);

    // The streams are known once the scheduler says which tenants this worker
    // serves (at registration).
    let queue =
        Queue::new(&args.queue, Vec::new(), &id).map_err(|source| WorkerError::QueueUrl {
            url: args.queue.clone(),
            source,
        })?;
    let api = Api::new(&args.server, &args.token, &id)?;
    let sandbox =
        {
            let (home, cache_dir) = (home.clone(), args.cache_dir.clone());
            // Compiles the built-in and stored components: blocking work.
            tokio::task::spawn_blocking(move || {
                let sandbox = aileron_sandbox::Sandbox::open_home(&home, cache_dir, slots)
                    .map_err(|source| WorkerError::Sandbox {
                        home,
                        source: Box::new(source),
                    })?;
                sandbox.prune_cache();
                Ok::<_, WorkerError>(sandbox)
            })
            .await??
        };
    // A capped tenant's tries on every worker share its max_memory: growths
    // past what this worker holds ask the scheduler's ledger.
    let ledger = std::sync::Arc::new(ledger::SchedulerLedger { api: api.clone() });
    if !sandbox.share_memory_quotas(ledger) {
        tracing::error!("this worker's tenant memory is not shared with the scheduler's ledger");
    }
    let components = Components::new(
        sandbox.registry().clone(),
        home.join("plugins"),
        api.clone(),
    );
    let (timing_tx, timing) = watch::channel(Timing::default());
    let ctx = Arc::new(Ctx {
        id: id.clone(),
        api,
        queue,
        sandbox,
        components,
        timing,
        active: Mutex::new(HashMap::new()),
        queues: queues.clone(),
        tenants: Mutex::new(None),
    });
    tracing::info!(
        "worker {id} starting: queues {}, {slots} slots, scheduler {}, home {}",
        queues.join(","),
        args.server,
        home.display()
    );

    let slots_sem = Arc::new(Semaphore::new(slots));
    let (registered_tx, registered) = watch::channel(false);
    let (stop_reading_tx, stop_reading) = watch::channel(false);
    let (stop_control_tx, stop_control) = watch::channel(false);
    let register = RegisterRequest {
        name,
        hostname,
        queues,
        slots: u32::try_from(slots).unwrap_or(u32::MAX),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        tenants: args.tenants.clone(),
        memory_held: Default::default(),
    };
    let control = tokio::spawn(control_loop(
        ctx.clone(),
        register,
        slots_sem.clone(),
        timing_tx,
        registered_tx,
        stop_control,
    ));
    let reader = tokio::spawn(read_loop(
        ctx.clone(),
        slots_sem.clone(),
        registered,
        stop_reading,
    ));

    let mut signals = Signals::new()?;
    signals.next().await;
    let running = ctx.lock_active().len();
    tracing::info!(
        "stopping: no new tries; waiting for {running} running ones to finish and report"
    );
    stop_reading_tx.send_replace(true);
    let drained = async {
        let _ = reader.await;
        // Every runner holds a slot until its entry is acknowledged.
        let _all = slots_sem
            .acquire_many(u32::try_from(slots).unwrap_or(u32::MAX))
            .await;
    };
    tokio::select! {
        () = drained => {}
        () = signals.next() => {
            let left = ctx.lock_active().len();
            tracing::warn!("second signal: exiting now, leaving {left} tries to time out on the scheduler");
            return Ok(ExitCode::FAILURE);
        }
    }
    stop_control_tx.send_replace(true);
    // A worker that never registered is unknown to the scheduler: nothing to stop.
    if control.await.unwrap_or(true) {
        deregister(&ctx.api).await;
    }
    tracing::info!("worker {id} stopped");
    Ok(ExitCode::SUCCESS)
}

/// `POST /stop`, a few times: the scheduler marks a silent worker offline
/// anyway, so an unreachable one does not hold up the exit.
async fn deregister(api: &Api) {
    let mut backoff = Backoff::new();
    for attempt in 1..=STOP_ATTEMPTS {
        match api.stop().await {
            Ok(()) => return,
            Err(e) if attempt < STOP_ATTEMPTS && e.is_retryable() => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!("cannot deregister from the scheduler: {e}");
                return;
            }
        }
    }
}

/// Registers the worker, then heartbeats it every heartbeat interval. Reading is
/// allowed only while the last registration or heartbeat went through: a worker
/// the scheduler cannot hear from takes no new work. A 404 heartbeat means the
/// scheduler restarted and forgot the worker: it registers again. Returns
/// whether the worker was ever registered.
async fn control_loop(
    ctx: Arc<Ctx>,
    request: RegisterRequest,
    slots: Arc<Semaphore>,
    timing: watch::Sender<Timing>,
    registered: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let mut backoff = Backoff::new();
    let mut ever = false;
    'register: loop {
        // What its running tries hold now: a scheduler that restarted learns
        // it here, so its ledger does not grant the same bytes twice.
        let request = RegisterRequest {
            memory_held: ctx.sandbox.memory_held(),
            ..request.clone()
        };
        let answer = match ctx.api.register(&request).await {
            Ok(answer) => answer,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!("cannot register with the scheduler: {e}; backing off {delay:.1?}");
                if wait_for_scheduler(&ctx.api, delay, &mut stop).await {
                    return ever;
                }
                continue;
            }
        };
        backoff.reset();
        ever = true;
        let t = Timing::from_answer(&answer);
        timing.send_replace(t);
        let serving = answer.tenants.as_ref().map_or_else(
            || "every tenant".to_owned(),
            |ts| format!("tenants {}", ts.join(",")),
        );
        ctx.serve(answer.tenants);
        registered.send_replace(true);
        tracing::info!(
            "registered as {}, serving {serving}: heartbeat every {:.1?}, worker timeout {:.1?}",
            ctx.id,
            t.heartbeat,
            t.worker_timeout
        );
        let mut delay = t.heartbeat;
        let mut failing = false;
        loop {
            let stopped = if failing {
                wait_for_scheduler(&ctx.api, delay, &mut stop).await
            } else {
                sleep_or_stop(delay, &mut stop).await
            };
            if stopped {
                return ever;
            }
            let beat = WorkerHeartbeat {
                running: {
                    let mut running: Vec<u64> = ctx.lock_active().keys().copied().collect();
                    running.sort_unstable();
                    running
                },
                free_slots: u32::try_from(slots.available_permits()).unwrap_or(u32::MAX),
                tenant_memory: ctx
                    .sandbox
                    .tenant_memory()
                    .into_iter()
                    .filter(|(_, m)| m.in_use_bytes > 0)
                    .map(|(tenant, m)| (tenant, m.in_use_bytes))
                    .collect(),
            };
            match ctx.api.worker_heartbeat(&beat).await {
                Ok(()) => {
                    if !*registered.borrow() {
                        tracing::info!("the scheduler answers again; taking work");
                    }
                    registered.send_replace(true);
                    backoff.reset();
                    failing = false;
                    delay = ctx.timing().heartbeat;
                }
                Err(Failure::NotFound(_)) => {
                    tracing::warn!(
                        "the scheduler does not know this worker (it restarted?); registering again"
                    );
                    registered.send_replace(false);
                    continue 'register;
                }
                Err(e) => {
                    registered.send_replace(false);
                    failing = true;
                    delay = backoff.next_delay();
                    tracing::warn!(
                        "worker heartbeat failed: {e}; taking no new work, backing off {delay:.1?}"
                    );
                }
            }
        }
    }
}

/// Takes entries while registered: a blocking `XREADGROUP` for at most the free
/// slots, and every claim-idle interval an `XAUTOCLAIM` of entries that dead
/// workers left behind. Each entry goes to a runner with its slot.
async fn read_loop(
    ctx: Arc<Ctx>,
    slots: Arc<Semaphore>,
    mut registered: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut con = None;
    let mut groups_ready = false;
    let mut backoff = Backoff::new();
    let mut rotation = 0usize;
    // The first pass takes over what a dead predecessor left at once.
    let mut next_claim = Instant::now();
    let mut next_discovery = Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        // Only while the scheduler hears from this worker.
        tokio::select! {
            ready = registered.wait_for(|r| *r) => if ready.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let permits = tokio::select! {
            p = take_free(&slots) => p,
            _ = stop.wait_for(|s| *s) => return,
        };
        let free = permits.len();
        let taken = async {
            // A worker of every tenant looks for new tenants' streams now and
            // then (a tenant's first try makes its stream).
            if ctx.every_tenant() && Instant::now() >= next_discovery {
                let found = ctx.queue.discover(&ctx.queues).await?;
                // With nothing to read yet, look again soon.
                let again = if found.is_empty() {
                    queue::PARTIAL_BLOCK
                } else {
                    queue::BLOCK
                };
                next_discovery = Instant::now() + again;
                groups_ready &= !ctx.queue.set_streams(found);
            }
            if !groups_ready {
                ctx.queue.create_groups().await?;
                groups_ready = true;
            }
            if Instant::now() >= next_claim {
                next_claim = Instant::now() + ctx.timing().claim_idle;
                let claimed = ctx.queue.autoclaim(ctx.timing().claim_idle, free).await?;
                if !claimed.is_empty() {
                    tracing::info!("took over {} entries idle on other workers", claimed.len());
                    return Ok(claimed);
                }
            }
            let n_streams = ctx.queue.streams().len();
            let Some(plan) = ReadPlan::new(n_streams, free, rotation) else {
                if n_streams == 0 {
                    // No tenant has a stream yet: nothing to block on.
                    tokio::time::sleep(queue::PARTIAL_BLOCK).await;
                }
                return Ok(Vec::new());
            };
            rotation = rotation.wrapping_add(plan.streams.len());
            let c = match &mut con {
                Some(c) => c,
                None => con.insert(ctx.queue.read_connection().await?),
            };
            ctx.queue.read(c, &plan).await
        }
        .await;
        match taken {
            Ok(deliveries) => {
                backoff.reset();
                dispatch(&ctx, deliveries, permits);
            }
            Err(e) => {
                drop(permits);
                if queue::is_nogroup(&e) {
                    // Redis lost the stream (restarted empty): recreate the group
                    // and read again at once.
                    tracing::info!("the consumer group is gone; creating it again");
                    groups_ready = false;
                    continue;
                }
                if queue::is_connection_error(&e) {
                    con = None;
                }
                let delay = backoff.next_delay();
                tracing::warn!("cannot read the queue: {e}; backing off {delay:.1?}");
                if sleep_or_stop(delay, &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// Waits for one free slot, then takes every other free one: the read asks for
/// exactly as many entries as there are slots to run them.
async fn take_free(slots: &Arc<Semaphore>) -> Vec<OwnedSemaphorePermit> {
    let Ok(first) = slots.clone().acquire_owned().await else {
        // The semaphore is never closed; should it be, nothing can be run.
        return std::future::pending().await;
    };
    let mut permits = vec![first];
    while let Ok(p) = slots.clone().try_acquire_owned() {
        permits.push(p);
    }
    permits
}

/// Hands each entry a slot and a runner. A read never returns more entries than
/// permits; should it, the extra entries stay pending and are taken over later.
fn dispatch(ctx: &Arc<Ctx>, deliveries: Vec<Delivery>, mut permits: Vec<OwnedSemaphorePermit>) {
    for delivery in deliveries {
        let Some(permit) = permits.pop() else {
            tracing::warn!(id = %delivery.id, "read more entries than free slots; leaving one pending");
            continue;
        };
        tokio::spawn(runner::run(ctx.clone(), delivery, permit));
    }
}

/// Sleeps, unless a stop comes first: `true` when stopped.
/// How often a backing-off worker asks whether the scheduler is back.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Backs off for `delay` after a failed call to the scheduler, but returns as
/// soon as its health check answers again: after an outage every worker picks up
/// work within about a second, not at the end of a backoff grown to its cap.
/// Returns whether the worker was told to stop.
async fn wait_for_scheduler(api: &Api, delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let until = tokio::time::Instant::now() + delay;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return *stop.borrow();
        }
        if sleep_or_stop(left.min(PROBE_EVERY), stop).await {
            return true;
        }
        let answers = tokio::select! {
            up = api.scheduler_answers() => up,
            _ = stop.wait_for(|s| *s) => return true,
        };
        if answers {
            return false;
        }
    }
}

async fn sleep_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        () = tokio::time::sleep(delay) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}

/// The worker id: the display name plus 8 random hex digits, new at every
/// start, so a restarted worker never inherits the leases or pending entries of
/// its previous life.
fn worker_id(name: &str) -> Result<String, WorkerError> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(WorkerError::Randomness)?;
    Ok(format!("{name}-{}", hex::encode(bytes)))
}

/// The queue names, deduplicated, checked as the DAG parser checks them.
fn check_queues(queues: &[String]) -> Result<Vec<String>, WorkerError> {
    let mut out: Vec<String> = Vec::new();
    for q in queues.iter().map(|q| q.trim()) {
        ensure(!q.is_empty(), || {
            "--queues has an empty queue name".to_owned()
        })?;
        ensure(
            q.len() <= MAX_QUEUE_NAME && !q.chars().any(char::is_control),
            || {
                format!(
                    "--queues: {q:?} is not a queue name (at most {MAX_QUEUE_NAME} characters, no control characters)"
                )
            },
        )?;
        if !out.iter().any(|o| o == q) {
            out.push(q.to_owned());
        }
    }
    ensure(!out.is_empty(), || "--queues names no queue".to_owned())?;
    Ok(out)
}

fn check_name(name: &str) -> Result<(), WorkerError> {
    ensure(
        !name.is_empty()
            && name.len() <= MAX_QUEUE_NAME
            && !name.chars().any(|c| c.is_control() || c.is_whitespace()),
        || {
            format!(
                "--name {name:?} is not usable: 1 to {MAX_QUEUE_NAME} characters, no spaces or control characters"
            )
        },
    )
}

fn default_home() -> PathBuf {
    aileron_protocol::default_home()
}

/// SIGINT and SIGTERM, as one stream of stop requests.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, WorkerError> {
        Ok(Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(WorkerError::Signals)?,
        })
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_are_the_name_and_fresh_hex() {
        let a = worker_id("w1").unwrap();
        let b = worker_id("w1").unwrap();
        assert_ne!(a, b);
        let (name, hex) = a.rsplit_once('-').unwrap();
        assert_eq!(name, "w1");
        assert_eq!(hex.len(), 8);
        assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn queue_names_are_checked_and_deduplicated() {
        let q = |v: &[&str]| check_queues(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(q(&["default"]).unwrap(), ["default"]);
        assert_eq!(q(&["a", " b", "a"]).unwrap(), ["a", "b"]);
        assert!(q(&["a", ""]).is_err());
        assert!(q(&["bad\nname"]).is_err());
        assert!(q(&[&"x".repeat(65)]).is_err());
        assert!(matches!(check_name("w 1"), Err(WorkerError::BadFlag(m)) if m.contains("--name")));
        assert!(check_name("").is_err());
        check_name("worker-1.example").unwrap();
    }

    #[test]
    fn timing_from_the_scheduler_is_floored() {
        let t = Timing::from_answer(&RegisterResponse {
            heartbeat_interval_ms: 0,
            worker_timeout_ms: 3000,
            claim_idle_ms: 3000,
            tenants: None,
        });
        assert_eq!(t.heartbeat, Duration::from_millis(MIN_INTERVAL_MS));
        assert_eq!(t.worker_timeout, Duration::from_secs(3));
    }
}
