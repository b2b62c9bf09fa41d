//! The remote executor: the queue lives in Redis Streams (one stream per tenant
//! and task queue, one consumer group), and `aileron worker` processes anywhere take tries
//! from it. This side only publishes, reconciles and watches heartbeats; workers
//! talk back over the execution API (`crate::execution_api`), never to the metastore.

use super::callbacks::CallbackRunner;
use super::remote::{Lease, Present, Queued, REAP_EVERY, Reaper, Remote};
use crate::scheduler::{AdoptedTry, CallbackJob, Executor, Job, RemoteExecutor};
use crate::sync::LockExt;
use aileron_model::TiKey;
use aileron_protocol::TryClaims;
use aileron_protocol::streams;
use aileron_protocol::wire::{Entry, EntryKey, QUEUES_KEY, stream_key, tenant_queue};
use aileron_sandbox::Sandbox;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the streams are compared with what should be in them.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// Entries per XRANGE page and per pipeline.
const PAGE: usize = 1000;
/// Stream length cap, only to bound a leak (a finished entry is deleted by its
/// worker); an entry trimmed by it is added again by reconciliation.
const MAXLEN: usize = 100_000;

/// Hands tries to workers through Redis.
pub struct RedisExecutor {
    remote: Arc<Remote>,
    callbacks: CallbackRunner,
}

/// A `--queue` that cannot name a Redis server.
#[derive(Debug, thiserror::Error)]
#[error("--queue {url:?} is not a Redis URL: {source}")]
pub struct QueueUrlError {
    url: String,
    source: redis::RedisError,
}

/// A connection to `url` that is made on first use and remade after errors, so
/// the scheduler starts (and serves its UI) while Redis is down.
pub fn connect(url: &str) -> Result<ConnectionManager, QueueUrlError> {
    let bad = |source| QueueUrlError {
        url: url.to_owned(),
        source,
    };
    let client = redis::Client::open(url).map_err(bad)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client, config).map_err(bad)
}

impl RedisExecutor {
    /// Starts the publisher and the heartbeat reaper.
    pub fn start(conn: ConnectionManager, remote: Arc<Remote>, sandbox: Sandbox) -> Arc<Self> {
        tokio::spawn(reaper(remote.clone()));
        tokio::spawn(publisher(remote.clone(), conn));
        let callbacks = CallbackRunner::new(sandbox, remote.events.clone(), remote.clock.clone());
        Arc::new(Self { remote, callbacks })
    }
}

impl Executor for RedisExecutor {
    fn submit(&self, job: Job) {
        let now = self.remote.clock.now();
        let mut entry = Entry {
            key: entry_key(&job.key),
            try_number: job.try_number,
            attempt: job.attempt,
            token: String::new(),
            digest: job.request.digest,
            task: job.request.info,
            params: job.request.params,
            limits: job.request.limits,
            enqueued_at: now.as_millisecond(),
        };
        entry.token = self.remote.key.mint(&claims_of(&entry, now));
        let queue = tenant_queue(&job.key.tenant, &job.queue);
        self.remote.dispatch.locked().queued.insert(
            job.attempt,
            Queued {
                key: job.key,
                queue,
                entry,
                log: job.request.log,
                live: job.request.live,
                published: None,
            },
        );
        self.remote.wake.notify_one();
    }

    fn cancel(&self, _key: &TiKey, _try_number: u32, attempt: u64) {
        let mut d = self.remote.dispatch.locked();
        if let Some(q) = d.queued.remove(&attempt)
            && let Some(id) = q.published
        {
            d.doomed.push((q.queue, id));
        }
        // Without its lease the worker's next heartbeat is refused, and it stops
        // the sandbox.
        d.leases.remove(&attempt);
        drop(d);
        self.remote.wake.notify_one();
    }

    fn submit_callback(&self, job: CallbackJob) {
        self.callbacks.run(job);
    }

    fn remote(&self) -> Option<&dyn RemoteExecutor> {
        Some(self)
    }
}

impl RemoteExecutor for RedisExecutor {
    fn started(&self, attempt: u64, worker: &str, at: jiff::Timestamp) {
        let mut d = self.remote.dispatch.locked();
        // Cancelled in the same turn (cleared, marked): no lease, so the worker's
        // first heartbeat is refused and it stops.
        let Some(q) = d.queued.remove(&attempt) else {
            return;
        };
        d.leases.insert(
            attempt,
            Lease {
                key: q.key,
                try_number: q.entry.try_number,
                worker: worker.to_owned(),
                started: at,
                // Watched from the commit on (which may have taken a while).
                last_beat: self.remote.clock.now(),
                log: q.log,
                live: q.live,
            },
        );
    }

    fn ready(&self) {
        self.remote.dispatch.locked().ready = true;
        self.remote.wake.notify_one();
    }

    fn adopt(&self, running: Vec<AdoptedTry>) {
        let now = self.remote.clock.now();
        let mut d = self.remote.dispatch.locked();
        for t in running {
            d.leases.insert(
                t.attempt,
                Lease {
                    key: t.key,
                    try_number: t.try_number,
                    worker: t.worker,
                    started: t.started,
                    // The worker gets a full timeout from when this scheduler can be
                    // reached again (`Remote::listening`), however long start-up takes.
                    last_beat: now,
                    log: t.log,
                    live: t.live,
                },
            );
        }
    }
}

/// What the token of `entry`, minted at `now`, says.
fn claims_of(e: &Entry, now: jiff::Timestamp) -> TryClaims {
    TryClaims {
        tenant: e.key.tenant.clone(),
        dag_id: e.key.dag_id.clone(),
        run_id: e.key.run_id.clone(),
        task_id: e.key.task_id.clone(),
        map_index: e.key.map_index,
        try_number: e.try_number,
        attempt: e.attempt,
        digest: e.digest.clone(),
        expires_at: TryClaims::expiry(now),
    }
}

fn entry_key(k: &TiKey) -> EntryKey {
    EntryKey {
        tenant: k.tenant.clone(),
        dag_id: k.dag_id.clone(),
        run_id: k.run_id.clone(),
        task_id: k.task_id.clone(),
        map_index: k.map_index,
    }
}

/// Fails tries whose worker went quiet, once a second (see [`Reaper`]). The
/// interval only triggers the ticks; each one measures the scheduler's clock.
async fn reaper(remote: Arc<Remote>) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reaper = Reaper::default();
    loop {
        tick.tick().await;
        if remote.events.is_closed() {
            return;
        }
        reaper.tick(&remote, remote.clock.now());
    }
}

/// Adds queued attempts to their streams, deletes unwanted entries, and
/// reconciles the streams with `queued`: at start, every 10 s and after every
/// error (which may have been Redis restarting and losing its streams). All Redis
/// writes of this process happen here, one at a time, so reconciliation never
/// races a publish.
async fn publisher(remote: Arc<Remote>, mut conn: ConnectionManager) {
    // Real time, not the scheduler's clock: this paces the I/O with Redis and
    // judges nobody (unlike the reaper).
    let mut last_reconcile: Option<Instant> = None;
    let mut failures = aileron_protocol::backoff::Backoff::new();
    let mut failing = false;
    loop {
        if remote.events.is_closed() {
            return;
        }
        if !remote.dispatch.locked().ready {
            let _ = tokio::time::timeout(Duration::from_secs(1), remote.wake.notified()).await;
            continue;
        }
        let due = last_reconcile.is_none_or(|t| t.elapsed() >= RECONCILE_EVERY);
        let result = async {
            if due {
                reconcile(&remote, &mut conn).await?;
            }
            publish(&remote, &mut conn).await?;
            delete_doomed(&remote, &mut conn).await
        }
        .await;
        match result {
            Ok(()) => {
                if failing {
                    tracing::info!("Redis is reachable again");
                }
                failing = false;
                failures.reset();
                if due {
                    last_reconcile = Some(Instant::now());
                }
                tokio::select! {
                    _ = remote.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(e) => {
                failing = true;
                let delay = failures.next_delay();
                tracing::warn!("Redis: {e}; backing off for {delay:?}");
                // Whatever happened, compare the streams again before trusting them.
                last_reconcile = None;
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn publish(remote: &Remote, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
    loop {
        // (attempt, queue, entry fields)
        type Pending = (u64, String, Vec<(&'static str, String)>);
        let batch: Vec<Pending> = {
            let d = remote.dispatch.locked();
            if !d.reconciled {
                return Ok(());
            }
            d.queued
                .iter()
                .filter(|(_, q)| q.published.is_none())
                .take(PAGE)
                .map(|(a, q)| (*a, q.queue.clone(), q.entry.to_fields()))
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let queues: BTreeSet<&str> = batch.iter().map(|(_, q, _)| q.as_str()).collect();
        let mut pipe = redis::pipe();
        for q in &queues {
            pipe.sadd(QUEUES_KEY, *q).ignore();
        }
        for (_, queue, fields) in &batch {
            pipe.cmd("XADD")
                .arg(stream_key(queue))
                .arg("MAXLEN")
                .arg("~")
                .arg(MAXLEN)
                .arg("*")
                .arg(fields);
        }
        let ids: Vec<String> = pipe.query_async(conn).await?;
        let mut d = remote.dispatch.locked();
        for ((attempt, queue, _), id) in batch.into_iter().zip(ids) {
            match d.queued.get_mut(&attempt) {
                Some(q) => q.published = Some(id),
                // Cancelled while it was being added.
                None => d.doomed.push((queue, id)),
            }
        }
    }
}

async fn delete_doomed(remote: &Remote, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
    let doomed = std::mem::take(&mut remote.dispatch.locked().doomed);
    if doomed.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (queue, id) in &doomed {
        streams::retire(&mut pipe, &stream_key(queue), id);
    }
    if let Err(e) = pipe.query_async::<()>(conn).await {
        // Keep them for the next round.
        remote.dispatch.locked().doomed.extend(doomed);
        return Err(e);
    }
    Ok(())
}

/// Reads every stream and repairs the difference (see [`Dispatch::reconcile`]).
///
/// [`Dispatch::reconcile`]: super::remote::Dispatch::reconcile
async fn reconcile(remote: &Remote, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
    let mut queues: BTreeSet<String> = redis::cmd("SMEMBERS")
        .arg(QUEUES_KEY)
        .query_async(conn)
        .await?;
    let announced = {
        let d = remote.dispatch.locked();
        queues.extend(d.queued.values().map(|q| q.queue.clone()));
        d.announced.clone()
    };
    let new: Vec<&String> = announced.iter().filter(|q| !queues.contains(*q)).collect();
    if !new.is_empty() {
        let mut pipe = redis::pipe();
        for q in new {
            pipe.sadd(QUEUES_KEY, q).ignore();
        }
        pipe.query_async::<()>(conn).await?;
    }
    queues.extend(announced);
    let mut present = Vec::new();
    for queue in &queues {
        let stream = stream_key(queue);
        // The group may be gone with a Redis restart; workers recreate it too.
        match streams::create_group(conn, &stream).await {
            Ok(_) => {}
            // An error reply (say WRONGTYPE: someone put another kind of key under
            // that name) concerns this stream only; the others go on.
            Err(e) if e.code().is_some() => {
                tracing::warn!("Redis: cannot use the stream {stream}: {e}");
                continue;
            }
            Err(e) => return Err(e),
        }
        let mut start = "-".to_owned();
        loop {
            // Bytes, not text: an entry someone else wrote may not be UTF-8, and it
            // must be deleted rather than stop reconciliation.
            let page: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
                .arg(&stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(conn)
                .await?;
            let full = page.len() == PAGE;
            for (id, fields) in page {
                start = format!("({id}");
                let attempt = fields
                    .get("attempt")
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|s| s.parse().ok());
                present.push(Present {
                    queue: queue.clone(),
                    attempt,
                    id,
                });
            }
            if !full {
                break;
            }
        }
    }
    let mut d = remote.dispatch.locked();
    let repairs = d.reconcile(&present);
    if !repairs.add.is_empty() {
        tracing::info!(
            "{} queued tries were missing from Redis; adding them again",
            repairs.add.len()
        );
    }
    let now = remote.clock.now();
    for attempt in repairs.add {
        if let Some(q) = d.queued.get_mut(&attempt) {
            q.published = None;
            // A fresh token: the old one may have expired while the entry waited
            // (a worker acks an entry whose token it was refused for).
            q.entry.token = remote.key.mint(&claims_of(&q.entry, now));
        }
    }
    d.doomed.extend(repairs.delete);
    Ok(())
}
