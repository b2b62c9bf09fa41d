//! The worker's side of the Redis Streams queue (`docs/design/multi-node.md` §2,
//! §3.1 steps 3, 5 and 7): the consumer group, the blocking read that never takes
//! more entries than free slots, the takeover of entries dead workers left behind,
//! the keep-alive of entries being worked on, and the final XACK + XDEL.

use aileron_protocol::streams;
use aileron_protocol::wire::{
    Entry, EntryError, GROUP, QUEUES_KEY, split_tenant_queue, stream_key,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamAutoClaimReply, StreamReadReply};
use redis::{AsyncConnectionConfig, RedisError, RedisResult, Value};
use std::collections::HashMap;
use std::time::Duration;

/// How long one blocking read waits for new entries. Short enough that a stop
/// request, a scheduler that went away or a slot that freed up is noticed soon,
/// long enough that an idle worker costs Redis a few commands a minute.
pub const BLOCK: Duration = Duration::from_secs(5);
/// When some streams are left out of a read (fewer free slots than queues), the
/// read waits only this long so the left-out streams get their turn soon.
pub const PARTIAL_BLOCK: Duration = Duration::from_secs(1);
/// A blocking read's answer may take the block time; past that plus this margin
/// the connection is taken for half-open and replaced. redis 1.x times async
/// answers out after 500 ms by default, which would cut every blocking read.
const READ_MARGIN: Duration = Duration::from_secs(5);
/// The answer time of the short commands (XACK, XDEL, XCLAIM, XGROUP, XAUTOCLAIM).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Connecting to Redis takes milliseconds on a working network.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One stream entry delivered to this worker, not yet understood.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub stream: String,
    pub id: String,
    pub fields: HashMap<String, Value>,
}

impl Delivery {
    /// The entry it carries, or why it cannot be read.
    pub fn entry(&self) -> Result<Entry, EntryError> {
        Entry::from_fields(&text_fields(&self.fields)?)
    }
}

/// The fields of an entry as text; every field the scheduler writes is text.
pub fn text_fields(fields: &HashMap<String, Value>) -> Result<HashMap<String, String>, EntryError> {
    fields
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
                Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
                Value::Int(n) => Some(n.to_string()),
                _ => None,
            };
            text.map(|t| (name.clone(), t))
                .ok_or_else(|| EntryError(format!("field `{name}` is not UTF-8 text")))
        })
        .collect()
}

/// Which streams one read covers and how many entries it takes from each, so the
/// total never exceeds `free`. `XREADGROUP`'s COUNT applies per stream, so with
/// several queues the count is split; with fewer free slots than queues the read
/// covers only `free` of them, rotating so each gets its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    /// Indices into the worker's streams.
    pub streams: Vec<usize>,
    /// COUNT, per stream.
    pub count: usize,
    pub block: Duration,
}

impl ReadPlan {
    /// `None` when there is no free slot (nothing may be read).
    pub fn new(n_streams: usize, free: usize, rotation: usize) -> Option<ReadPlan> {
        if n_streams == 0 || free == 0 {
            return None;
        }
        if free >= n_streams {
            return Some(ReadPlan {
                streams: (0..n_streams).collect(),
                count: free / n_streams,
                block: BLOCK,
            });
        }
        Some(ReadPlan {
            streams: (0..free).map(|i| (rotation + i) % n_streams).collect(),
            count: 1,
            block: PARTIAL_BLOCK,
        })
    }

    /// The most entries this read can return.
    #[cfg(test)]
    pub fn max_entries(&self) -> usize {
        self.streams.len() * self.count
    }
}

/// Whether a command failed because the consumer group (or its stream) is gone,
/// as after a Redis restart without persistence.
pub fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP")
}

/// Whether the connection itself failed (rather than one command), so a
/// dedicated connection should be replaced.
pub fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// The streams one worker reads, and its connections to Redis.
#[derive(Clone)]
pub struct Queue {
    client: redis::Client,
    /// For the short commands. It reconnects by itself after a failure, so the
    /// worker starts and keeps going while Redis is down.
    manager: ConnectionManager,
    /// Replaced when the worker learns which tenants it serves, and (for a
    /// worker of every tenant) when a tenant's stream appears.
    streams: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    consumer: String,
    /// Where each stream's next XAUTOCLAIM scan starts. One call looks at only
    /// about ten times COUNT pending entries, and live workers' entries sit at
    /// the front; without a cursor an entry further back would wait until those
    /// finish.
    claim_cursors: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl Queue {
    /// Opens nothing yet: connections are made on first use, so a worker starts
    /// even while Redis is down. Only a malformed URL is an error.
    pub fn new(url: &str, streams: Vec<String>, consumer: &str) -> RedisResult<Queue> {
        let client = redis::Client::open(url)?;
        let manager = ConnectionManager::new_lazy_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_response_timeout(Some(COMMAND_TIMEOUT))
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                // One quick reconnection attempt per failure: the worker's own
                // loops back off (and say so), so a command need not wait out
                // the manager's six retries while Redis is down.
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500)),
        )?;
        Ok(Queue {
            client,
            manager,
            streams: std::sync::Arc::new(std::sync::Mutex::new(streams)),
            consumer: consumer.to_owned(),
            claim_cursors: Default::default(),
        })
    }

    pub fn streams(&self) -> Vec<String> {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads `streams` from now on; true if that is a change (whose consumer
    /// groups the caller then makes).
    pub fn set_streams(&self, mut streams: Vec<String>) -> bool {
        streams.sort();
        streams.dedup();
        let mut current = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if *current == streams {
            return false;
        }
        *current = streams;
        true
    }

    /// The streams of `queues` of every tenant that has one: the wire queues the
    /// scheduler lists in [`QUEUES_KEY`], for a worker serving every tenant.
    pub async fn discover(&self, queues: &[String]) -> RedisResult<Vec<String>> {
        let mut con = self.manager.clone();
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(QUEUES_KEY)
            .query_async(&mut con)
            .await?;
        Ok(names
            .iter()
            .filter(|n| split_tenant_queue(n).is_some_and(|(_, q)| queues.iter().any(|w| w == q)))
            .map(|n| stream_key(n))
            .collect())
    }

    /// A new connection for the blocking read: its answer timeout covers the
    /// longest block.
    pub async fn read_connection(&self) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(BLOCK + READ_MARGIN));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Creates the group on every stream (and the stream, if missing) with id 0,
    /// so entries added before the group existed are read too. Whoever touches a
    /// stream first creates it, so BUSYGROUP is expected and ignored.
    pub async fn create_groups(&self) -> RedisResult<()> {
        let mut con = self.manager.clone();
        for stream in &self.streams() {
            if streams::create_group(&mut con, stream).await? {
                tracing::debug!(stream, "created the consumer group");
            }
        }
        Ok(())
    }

    /// One `XREADGROUP … BLOCK` on `con` for new entries, as `plan` says.
    pub async fn read(
        &self,
        con: &mut MultiplexedConnection,
        plan: &ReadPlan,
    ) -> RedisResult<Vec<Delivery>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(plan.count)
            .arg("BLOCK")
            .arg(u64::try_from(plan.block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS");
        // A plan is made for this worker's streams; an index past them is skipped
        // rather than trusted.
        let streams = self.streams();
        let keys: Vec<&String> = plan
            .streams
            .iter()
            .filter_map(|&i| streams.get(i))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        for key in &keys {
            cmd.arg(*key);
        }
        for _ in &keys {
            cmd.arg(">");
        }
        let reply: Option<StreamReadReply> = cmd.query_async(con).await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| {
                let stream = k.key;
                k.ids.into_iter().map(move |id| Delivery {
                    stream: stream.clone(),
                    id: id.id,
                    fields: id.map,
                })
            })
            .collect())
    }

    /// Takes over, on every stream, entries that other consumers read but have
    /// not touched for `min_idle`, at most `free` in all. A live worker touches its
    /// entries every heartbeat interval (see [`keep`](Queue::keep)), so what is
    /// idle this long belongs to a worker that died or hangs.
    pub async fn autoclaim(&self, min_idle: Duration, free: usize) -> RedisResult<Vec<Delivery>> {
        let mut con = self.manager.clone();
        let mut taken = Vec::new();
        for stream in &self.streams() {
            let room = free.saturating_sub(taken.len());
            if room == 0 {
                break;
            }
            let cursor = self
                .claim_cursors
                .lock()
                .unwrap()
                .get(stream)
                .cloned()
                .unwrap_or_else(|| "0-0".to_owned());
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(stream)
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
                .arg(&cursor)
                .arg("COUNT")
                .arg(room)
                .query_async(&mut con)
                .await?;
            // "0-0" when the scan reached the end: the next one starts over.
            self.claim_cursors
                .lock()
                .unwrap()
                .insert(stream.clone(), reply.next_stream_id.clone());
            // `deleted_ids` were in someone's pending list but no longer in the
            // stream; XAUTOCLAIM already dropped them, nothing to do.
            taken.extend(reply.claimed.into_iter().map(|id| Delivery {
                stream: stream.clone(),
                id: id.id,
                fields: id.map,
            }));
        }
        Ok(taken)
    }

    /// Resets the idle time of an entry this worker is working on, so nobody's
    /// XAUTOCLAIM takes it over. JUSTID leaves its delivery count alone.
    pub async fn keep(&self, stream: &str, id: &str) -> RedisResult<()> {
        let mut con = self.manager.clone();
        let _: Value = redis::cmd("XCLAIM")
            .arg(stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(0)
            .arg(id)
            .arg("JUSTID")
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Acknowledges and deletes a finished entry, in one round trip, so the stream
    /// holds only attempts in flight. Both are no-ops on an entry that is gone.
    pub async fn ack(&self, stream: &str, id: &str) -> RedisResult<()> {
        let mut con = self.manager.clone();
        let mut pipe = redis::pipe();
        streams::retire(&mut pipe, stream, id);
        let done: RedisResult<()> = pipe.query_async(&mut con).await;
        match done {
            // The group is gone with its stream (Redis restarted empty): so is
            // the entry, and the XDEL of the pipeline ran regardless.
            Err(e) if is_nogroup(&e) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_never_takes_more_than_the_free_slots() {
        for n_streams in 1..6 {
            for free in 0..20 {
                for rotation in 0..7 {
                    let Some(plan) = ReadPlan::new(n_streams, free, rotation) else {
                        assert_eq!(free, 0);
                        continue;
                    };
                    assert!(plan.max_entries() <= free, "{n_streams} {free}: {plan:?}");
                    assert!(plan.count >= 1);
                    assert!(!plan.streams.is_empty());
                    assert!(plan.streams.iter().all(|&i| i < n_streams));
                    let mut unique = plan.streams.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    assert_eq!(unique.len(), plan.streams.len());
                }
            }
        }
        assert_eq!(ReadPlan::new(0, 4, 0), None);
    }

    #[test]
    fn streams_left_out_of_a_read_get_their_turn() {
        let plan = ReadPlan::new(3, 3, 9).unwrap();
        assert_eq!(
            (plan.streams, plan.count, plan.block),
            (vec![0, 1, 2], 1, BLOCK)
        );
        let plan = ReadPlan::new(2, 9, 0).unwrap();
        assert_eq!((plan.streams, plan.count), (vec![0, 1], 4));
        let seen: Vec<Vec<usize>> = (0..3)
            .map(|r| ReadPlan::new(3, 1, r).unwrap().streams)
            .collect();
        assert_eq!(seen, [vec![0], vec![1], vec![2]]);
        assert_eq!(ReadPlan::new(3, 2, 2).unwrap().block, PARTIAL_BLOCK);
    }

    /// A throw-away `redis-server` on a free loopback port, killed when dropped.
    /// CI installs redis-server; a machine without it fails this test loudly
    /// rather than skipping it.
    struct RedisServer {
        child: std::process::Child,
        url: String,
    }

    impl RedisServer {
        async fn start() -> RedisServer {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect(
                    "redis-server must be installed for this test (apt-get install redis-server)",
                );
            let server = RedisServer {
                child,
                url: format!("redis://127.0.0.1:{port}"),
            };
            let client = redis::Client::open(server.url.as_str()).unwrap();
            for _ in 0..100 {
                if let Ok(mut c) = client.get_multiplexed_async_connection().await
                    && redis::cmd("PING")
                        .query_async::<String>(&mut c)
                        .await
                        .is_ok()
                {
                    return server;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("redis-server on port {port} did not answer PING");
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn plan(streams: Vec<usize>, count: usize) -> ReadPlan {
        ReadPlan {
            streams,
            count,
            block: Duration::from_millis(100),
        }
    }

    async fn add(con: &mut MultiplexedConnection, stream: &str, n: usize) {
        for i in 0..n {
            let _: String = redis::cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("n")
                .arg(i)
                .query_async(con)
                .await
                .unwrap();
        }
    }

    async fn pending(con: &mut MultiplexedConnection, stream: &str) -> usize {
        let summary: Vec<Value> = redis::cmd("XPENDING")
            .arg(stream)
            .arg(GROUP)
            .query_async(con)
            .await
            .unwrap();
        redis::from_redis_value_ref(&summary[0]).unwrap()
    }

    #[tokio::test]
    async fn groups_reads_takeovers_and_acks_against_redis() {
        let redis = RedisServer::start().await;
        let streams = vec!["aileron:q:a".to_owned(), "aileron:q:b".to_owned()];
        let w1 = Queue::new(&redis.url, streams.clone(), "w1-00000001").unwrap();
        let w2 = Queue::new(&redis.url, streams.clone(), "w2-00000002").unwrap();
        let mut admin = w1.read_connection().await.unwrap();

        // Groups are created with their streams; a second creation is no error.
        w1.create_groups().await.unwrap();
        w2.create_groups().await.unwrap();
        let len: usize = redis::cmd("XLEN")
            .arg(&streams[1])
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(len, 0);

        // A read takes at most what the plan allows, across both streams.
        add(&mut admin, &streams[0], 3).await;
        add(&mut admin, &streams[1], 3).await;
        let mut con = w1.read_connection().await.unwrap();
        let p = ReadPlan::new(2, 3, 0).unwrap();
        let got = w1
            .read(
                &mut con,
                &ReadPlan {
                    block: Duration::from_millis(100),
                    ..p
                },
            )
            .await
            .unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        let p = ReadPlan::new(2, 1, 1).unwrap();
        let got = w1
            .read(
                &mut con,
                &ReadPlan {
                    block: Duration::from_millis(100),
                    ..p
                },
            )
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].stream, streams[1]);
        assert!(got[0].fields.contains_key("n"));
        // The rest goes to the other worker; then nothing is left, after the block.
        let got = w2.read(&mut con, &plan(vec![0, 1], 10)).await.unwrap();
        assert_eq!(got.len(), 3);
        let started = std::time::Instant::now();
        assert!(
            w2.read(&mut con, &plan(vec![0, 1], 10))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(started.elapsed() >= Duration::from_millis(90));

        // A blocking read longer than redis' default 500 ms answer timeout works
        // on the read connection.
        let long = ReadPlan {
            streams: vec![0],
            count: 1,
            block: Duration::from_millis(1200),
        };
        assert!(w1.read(&mut con, &long).await.unwrap().is_empty());

        // w1's entries are idle: w2 takes them over, at most `free` of them.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let taken = w2.autoclaim(Duration::from_millis(20), 2).await.unwrap();
        assert_eq!(taken.len(), 2, "{taken:?}");
        // Kept entries are not idle: a takeover leaves them alone and takes the
        // four others, idle since before the long read.
        for d in &taken {
            w2.keep(&d.stream, &d.id).await.unwrap();
        }
        let taken_again = w1.autoclaim(Duration::from_millis(500), 10).await.unwrap();
        assert_eq!(taken_again.len(), 4, "{taken_again:?}");
        assert!(
            taken_again
                .iter()
                .all(|a| !taken.iter().any(|t| t.stream == a.stream && t.id == a.id)),
            "{taken_again:?}"
        );

        // Acknowledged entries leave the stream and the pending list.
        for d in &taken {
            w2.ack(&d.stream, &d.id).await.unwrap();
            w2.ack(&d.stream, &d.id).await.unwrap();
        }
        let total: usize =
            pending(&mut admin, &streams[0]).await + pending(&mut admin, &streams[1]).await;
        assert_eq!(total, 4);
        let len0: usize = redis::cmd("XLEN")
            .arg(&streams[0])
            .query_async(&mut admin)
            .await
            .unwrap();
        let len1: usize = redis::cmd("XLEN")
            .arg(&streams[1])
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(len0 + len1, 4);

        // Redis loses everything (a restart without persistence): reads fail
        // with NOGROUP until the group is created again; acks of vanished
        // entries are no errors.
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut admin)
            .await
            .unwrap();
        let e = w1.read(&mut con, &plan(vec![0, 1], 1)).await.unwrap_err();
        assert!(is_nogroup(&e), "{e}");
        assert!(!is_connection_error(&e), "{e}");
        let e = w1.keep(&streams[0], "1-1").await.unwrap_err();
        assert!(is_nogroup(&e), "{e}");
        w1.ack(&streams[0], "1-1").await.unwrap();
        w1.create_groups().await.unwrap();
        add(&mut admin, &streams[0], 1).await;
        let got = w1.read(&mut con, &plan(vec![0, 1], 1)).await.unwrap();
        assert_eq!(got.len(), 1);
        w1.ack(&got[0].stream, &got[0].id).await.unwrap();
        assert_eq!(pending(&mut admin, &streams[0]).await, 0);
    }

    #[tokio::test]
    async fn a_dead_redis_is_a_connection_error() {
        let redis = RedisServer::start().await;
        let q = Queue::new(&redis.url, vec!["aileron:q:x".to_owned()], "w-1").unwrap();
        let mut con = q.read_connection().await.unwrap();
        drop(redis);
        let e = q.read(&mut con, &plan(vec![0], 1)).await.unwrap_err();
        assert!(is_connection_error(&e), "{e}");
        assert!(!is_nogroup(&e));
        assert!(q.read_connection().await.is_err());
        assert!(q.ack("aileron:q:x", "1-1").await.is_err());
    }

    #[test]
    fn an_entry_is_read_from_its_redis_fields() {
        let entry = Entry {
            key: aileron_protocol::wire::EntryKey {
                tenant: "default".into(),
                dag_id: "etl".into(),
                run_id: "r1".into(),
                task_id: "extract".into(),
                map_index: 3,
            },
            try_number: 1,
            attempt: 42,
            token: "v1.a.b".into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            task: aileron_sandbox::TaskInfo {
                dag_id: "etl".into(),
                run_id: "r1".into(),
                task_id: "extract".into(),
                map_index: Some(3),
                try_number: 1,
                logical_date: "2026-01-01T00:00:00Z".into(),
                data_interval_start: "2026-01-01T00:00:00Z".into(),
                data_interval_end: "2026-01-01T00:00:00Z".into(),
            },
            params: serde_json::json!({"seconds": 1}),
            limits: aileron_sandbox::Limits::default(),
            enqueued_at: 1,
        };
        let mut delivery = Delivery {
            stream: "aileron:q:default".into(),
            id: "1-0".into(),
            fields: entry
                .to_fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::BulkString(v.into_bytes())))
                .collect(),
        };
        assert_eq!(delivery.entry().unwrap(), entry);
        // What the runner drops (and acknowledges) rather than runs.
        delivery.fields.remove("token");
        let err = delivery.entry().unwrap_err().to_string();
        assert!(err.contains("`token` is missing"), "{err}");
        delivery.fields.insert("token".into(), Value::Nil);
        let err = delivery.entry().unwrap_err().to_string();
        assert!(err.contains("`token` is not UTF-8"), "{err}");
    }

    #[test]
    fn fields_must_be_text() {
        let mut fields = HashMap::new();
        fields.insert("v".to_owned(), Value::BulkString(b"1".to_vec()));
        fields.insert("attempt".to_owned(), Value::Int(3));
        let text = text_fields(&fields).unwrap();
        assert_eq!(text["v"], "1");
        assert_eq!(text["attempt"], "3");
        fields.insert("key".to_owned(), Value::BulkString(vec![0xff, 0xfe]));
        let err = text_fields(&fields).unwrap_err().to_string();
        assert!(err.contains("`key` is not UTF-8"), "{err}");
    }
}
