//! The metastore: every durable object in one redb file, with typed reads and one
//! write transaction per batch of changes (group commit).
//!
//! The scheduler is the only writer; readers (API, CLI, host calls) open their own
//! read transactions, which redb serves concurrently with the writer (MVCC).
//!
//! Keys are strings whose parts are joined by NUL, so all records of one DAG, run or
//! TaskInstance sit next to each other and a prefix is a range scan. Values are JSON:
//! readable with any redb tool, and schema evolution is a serde default away.

mod records;

pub use records::*;

use aileron_protocol::ExecutionKey;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Version of the layout below. Bump it and add a step to [`MIGRATIONS`] whenever a
/// table or a record changes in a way old data cannot be read as.
pub const SCHEMA_VERSION: u32 = 2;

/// Migration steps: `MIGRATIONS[i]` turns a version `i + 1` store into version `i + 2`.
type Migration = fn(&redb::WriteTransaction) -> Result<(), MetastoreError>;
const MIGRATIONS: &[Migration] = &[
    // 1 → 2: TaskInstances and tries gain `attempt` (read as 0 when absent) and
    // `meta.next_attempt` appears with the first dispatch; nothing to rewrite.
    |_| Ok(()),
];

type Table = TableDefinition<'static, &'static str, &'static [u8]>;
const META: Table = TableDefinition::new("meta");
pub(crate) const DAGS: Table = TableDefinition::new("dags");
pub(crate) const DAG_VERSIONS: Table = TableDefinition::new("dag_versions");
pub(crate) const DAG_RUNS: Table = TableDefinition::new("dag_runs");
pub(crate) const TASK_INSTANCES: Table = TableDefinition::new("task_instances");
pub(crate) const XCOM: Table = TableDefinition::new("xcom");
pub(crate) const VARIABLES: Table = TableDefinition::new("variables");
pub(crate) const CONNECTIONS: Table = TableDefinition::new("connections");
pub(crate) const IMPORT_ERRORS: Table = TableDefinition::new("import_errors");
pub(crate) const LOGS: Table = TableDefinition::new("logs");
/// Pools by tenant and name. A new table, not a new layout: `init` creates it in
/// an existing file, so no migration step is needed.
pub(crate) const POOLS: Table = TableDefinition::new("pools");
pub(crate) const CALLBACKS: Table = TableDefinition::new("callbacks");
/// Keys of the callbacks not finished yet (empty values): what a restart must
/// close, found without reading every callback ever run.
pub(crate) const CALLBACKS_PENDING: Table = TableDefinition::new("callbacks_pending");
pub(crate) const BACKFILLS: Table = TableDefinition::new("backfills");
const ALL_TABLES: [Table; 14] = [
    META,
    DAGS,
    DAG_VERSIONS,
    DAG_RUNS,
    TASK_INSTANCES,
    XCOM,
    VARIABLES,
    CONNECTIONS,
    IMPORT_ERRORS,
    LOGS,
    POOLS,
    CALLBACKS,
    CALLBACKS_PENDING,
    BACKFILLS,
];

#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    #[error("cannot open the metastore: {0}")]
    Open(#[from] redb::DatabaseError),
    #[error("metastore transaction failed: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("metastore table error: {0}")]
    Table(#[from] redb::TableError),
    #[error("metastore storage error: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("metastore commit failed: {0}")]
    Commit(#[from] redb::CommitError),
    #[error("corrupt record under `{key}`: {source}")]
    Codec {
        key: String,
        source: serde_json::Error,
    },
    #[error(
        "the metastore has schema version {found}, newer than this Aileron understands ({SCHEMA_VERSION}); upgrade Aileron"
    )]
    TooNew { found: u32 },
    #[error("cannot create the execution key: {0}")]
    ExecutionKey(#[from] aileron_protocol::KeyError),
}

pub type Result<T, E = MetastoreError> = std::result::Result<T, E>;

/// Joins key parts with NUL.
pub fn key(parts: &[&str]) -> String {
    parts.join("\0")
}

/// Key part for a map index that sorts numerically (-1 first).
pub fn map_part(map_index: i64) -> String {
    format!("{:010}", map_index.saturating_add(1))
}

pub fn dag_key(tenant: &str, dag_id: &str) -> String {
    key(&[tenant, dag_id])
}
pub fn run_key(tenant: &str, dag_id: &str, run_id: &str) -> String {
    key(&[tenant, dag_id, run_id])
}
pub fn ti_key(tenant: &str, dag_id: &str, run_id: &str, task_id: &str, map_index: i64) -> String {
    key(&[tenant, dag_id, run_id, task_id, &map_part(map_index)])
}

pub fn callback_key(tenant: &str, dag_id: &str, run_id: &str, seq: u64) -> String {
    key(&[tenant, dag_id, run_id, &format!("{seq:010}")])
}
pub fn backfill_key(tenant: &str, id: u64) -> String {
    key(&[tenant, &format!("{id:012}")])
}

/// The half-open key range of everything under `prefix` (whole parts).
fn prefix_range(prefix: &str) -> (String, String) {
    let start = format!("{prefix}\0");
    let end = format!("{prefix}\u{1}");
    (start, end)
}

/// One batch of writes, applied atomically by [`Metastore::commit`], in the order
/// they were recorded (a prefix delete must not undo a later put).
#[derive(Default)]
pub struct WriteBatch {
    ops: Vec<Op>,
}

enum Op {
    Put(Table, String, Vec<u8>),
    Delete(Table, String),
    /// Deletes every key under a prefix of whole parts.
    DeletePrefix(Table, String),
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn put<T: Serialize>(&mut self, table: Table, key: String, value: &T) {
        let bytes = serde_json::to_vec(value).expect("records always serialize");
        self.ops.push(Op::Put(table, key, bytes));
    }
    pub fn put_raw(&mut self, table: Table, key: String, value: Vec<u8>) {
        self.ops.push(Op::Put(table, key, value));
    }
    pub fn delete(&mut self, table: Table, key: String) {
        self.ops.push(Op::Delete(table, key));
    }
    /// Deletes every key that starts with `prefix` followed by a part separator.
    pub fn delete_prefix(&mut self, table: Table, prefix: String) {
        self.ops.push(Op::DeletePrefix(table, prefix));
    }

    pub fn put_dag(&mut self, dag: &DagRecord) {
        self.put(DAGS, dag_key(&dag.tenant, &dag.dag_id), dag);
    }
    /// Writes a callback record and keeps the pending index in step with it.
    pub fn put_callback(&mut self, c: &CallbackRecord) {
        let k = callback_key(&c.tenant, &c.dag_id, &c.run_id, c.seq);
        if c.state == "queued" || c.state == "running" {
            self.put_raw(CALLBACKS_PENDING, k.clone(), Vec::new());
        } else {
            self.delete(CALLBACKS_PENDING, k.clone());
        }
        self.put(CALLBACKS, k, c);
    }
    pub fn put_backfill(&mut self, b: &BackfillRecord) {
        self.put(BACKFILLS, backfill_key(&b.tenant, b.id), b);
    }
    pub fn put_run(&mut self, run: &DagRun) {
        self.put(
            DAG_RUNS,
            run_key(&run.tenant, &run.dag_id, &run.run_id),
            run,
        );
    }
    pub fn put_ti(&mut self, ti: &TaskInstance) {
        self.put(
            TASK_INSTANCES,
            ti_key(
                &ti.tenant,
                &ti.dag_id,
                &ti.run_id,
                &ti.task_id,
                ti.map_index,
            ),
            ti,
        );
    }
    /// Records the next unused attempt number (see [`Metastore::next_attempt`]).
    pub fn put_next_attempt(&mut self, next: u64) {
        self.put(META, NEXT_ATTEMPT.to_owned(), &next);
    }
}

const NEXT_ATTEMPT: &str = "next_attempt";

/// Handle to the metastore; cheap to clone.
#[derive(Clone)]
pub struct Metastore {
    db: Arc<Database>,
}

impl Metastore {
    /// Opens (or creates) the metastore file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        Self::init(db)
    }

    /// A metastore that lives in memory only: for `aileron dags test` and tests.
    pub fn in_memory() -> Result<Self> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::init(db)
    }

    fn init(db: Database) -> Result<Self> {
        let txn = db.begin_write()?;
        for table in ALL_TABLES {
            txn.open_table(table)?;
        }
        let found = {
            let meta = txn.open_table(META)?;
            let v = meta.get("schema_version")?;
            v.map(|g| {
                String::from_utf8_lossy(g.value())
                    .parse::<u32>()
                    .unwrap_or(0)
            })
        };
        match found {
            None => {}
            Some(v) if v > SCHEMA_VERSION => return Err(MetastoreError::TooNew { found: v }),
            Some(v) => {
                for step in &MIGRATIONS[(v as usize).saturating_sub(1)..] {
                    step(&txn)?;
                }
            }
        }
        txn.open_table(META)?
            .insert("schema_version", SCHEMA_VERSION.to_string().as_bytes())?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// The key that signs the execution API's try tokens: created (32 random
    /// bytes) on first use and kept in `meta` as a hex string, so that tokens
    /// already handed out stay valid across restarts.
    pub fn execution_key(&self) -> Result<ExecutionKey> {
        const KEY: &str = "execution_key";
        if let Some(key) = self.get(META, KEY)? {
            return Ok(key);
        }
        let txn = self.db.begin_write()?;
        let mut meta = txn.open_table(META)?;
        // Looked up again under the write lock: another caller may have just
        // created it, and every token must verify under the one key.
        let existing = meta.get(KEY)?.map(|v| decode(KEY, v.value())).transpose()?;
        let key = match existing {
            Some(key) => key,
            None => {
                let key = ExecutionKey::generate()?;
                let json = serde_json::to_vec(&key).expect("a key serializes");
                meta.insert(KEY, json.as_slice())?;
                key
            }
        };
        drop(meta);
        txn.commit()?;
        Ok(key)
    }

    /// The next unused dispatch attempt number: written in the same batch that
    /// hands out an attempt, so a restarted scheduler never reuses one.
    pub fn next_attempt(&self) -> Result<u64> {
        Ok(self.get(META, NEXT_ATTEMPT)?.unwrap_or(1))
    }

    pub fn schema_version(&self) -> Result<u32> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get("schema_version")?
            .and_then(|g| String::from_utf8_lossy(g.value()).parse().ok())
            .unwrap_or(0))
    }

    /// Applies a batch in one durable write transaction; returns how long it took.
    pub fn commit(&self, batch: WriteBatch) -> Result<Duration> {
        let started = Instant::now();
        let txn = self.db.begin_write()?;
        {
            // Each table is opened once and kept open for the whole batch.
            let mut open: std::collections::HashMap<String, redb::Table<&str, &[u8]>> =
                std::collections::HashMap::new();
            for op in &batch.ops {
                let table = match op {
                    Op::Put(t, ..) | Op::Delete(t, _) | Op::DeletePrefix(t, _) => *t,
                };
                let t = match open.entry(table.name().to_owned()) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(txn.open_table(table)?)
                    }
                };
                match op {
                    Op::Put(_, k, v) => {
                        t.insert(k.as_str(), v.as_slice())?;
                    }
                    Op::Delete(_, k) => {
                        t.remove(k.as_str())?;
                    }
                    Op::DeletePrefix(_, prefix) => {
                        let (start, end) = prefix_range(prefix);
                        t.retain_in(start.as_str()..end.as_str(), |_, _| false)?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(started.elapsed())
    }

    fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(table)?;
        match t.get(key)? {
            None => Ok(None),
            Some(v) => decode(key, v.value()).map(Some),
        }
    }

    fn get_raw(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(table)?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Every record under a key prefix, in key order.
    fn scan<T: DeserializeOwned>(&self, table: Table, prefix: Option<&str>) -> Result<Vec<T>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(table)?;
        let mut out = Vec::new();
        let mut push = |k: &str, v: &[u8]| -> Result<()> {
            out.push(decode(k, v)?);
            Ok(())
        };
        match prefix {
            Some(p) => {
                let (start, end) = prefix_range(p);
                for item in t.range(start.as_str()..end.as_str())? {
                    let (k, v) = item?;
                    push(k.value(), v.value())?;
                }
            }
            None => {
                for item in t.iter()? {
                    let (k, v) = item?;
                    push(k.value(), v.value())?;
                }
            }
        }
        Ok(out)
    }

    pub fn dags(&self) -> Result<Vec<DagRecord>> {
        self.scan(DAGS, None)
    }
    pub fn dag(&self, tenant: &str, dag_id: &str) -> Result<Option<DagRecord>> {
        self.get(DAGS, &dag_key(tenant, dag_id))
    }
    pub fn dag_version(
        &self,
        tenant: &str,
        dag_id: &str,
        version: &str,
    ) -> Result<Option<aileron_model::dag::DagSpec>> {
        self.get(DAG_VERSIONS, &key(&[tenant, dag_id, version]))
    }
    pub fn dag_runs(&self, tenant: &str, dag_id: &str) -> Result<Vec<DagRun>> {
        let mut runs: Vec<DagRun> = self.scan(DAG_RUNS, Some(&dag_key(tenant, dag_id)))?;
        runs.sort_by_key(|r| r.seq);
        Ok(runs)
    }
    pub fn all_dag_runs(&self) -> Result<Vec<DagRun>> {
        self.scan(DAG_RUNS, None)
    }
    /// Every TaskInstance of every tenant (for the `/metrics` gauges).
    pub fn all_task_instances(&self) -> Result<Vec<TaskInstance>> {
        self.scan(TASK_INSTANCES, None)
    }
    pub fn dag_run(&self, tenant: &str, dag_id: &str, run_id: &str) -> Result<Option<DagRun>> {
        self.get(DAG_RUNS, &run_key(tenant, dag_id, run_id))
    }
    pub fn task_instances(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Vec<TaskInstance>> {
        self.scan(TASK_INSTANCES, Some(&run_key(tenant, dag_id, run_id)))
    }
    pub fn task_instance(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
    ) -> Result<Option<TaskInstance>> {
        self.get(
            TASK_INSTANCES,
            &ti_key(tenant, dag_id, run_id, task_id, map_index),
        )
    }
    pub fn import_errors(&self) -> Result<Vec<ImportErrorRecord>> {
        self.scan(IMPORT_ERRORS, None)
    }

    /// XCom values of one task in one run, `(map_index, json)` in map order.
    pub fn xcom(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        xcom_key: &str,
    ) -> Result<Vec<(i64, String)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(XCOM)?;
        let (start, end) = prefix_range(&key(&[tenant, dag_id, run_id, task_id]));
        let mut out = Vec::new();
        for item in t.range(start.as_str()..end.as_str())? {
            let (k, v) = item?;
            let k = k.value();
            // key = tenant, dag, run, task, map, xcom key
            let mut parts = k.splitn(6, '\0');
            let map = parts
                .nth(4)
                .and_then(|m| m.parse::<i64>().ok())
                .unwrap_or(0)
                - 1;
            if parts.next() == Some(xcom_key) {
                out.push((map, String::from_utf8_lossy(v.value()).into_owned()));
            }
        }
        Ok(out)
    }

    /// Every XCom entry of one TaskInstance: `(key, json)`.
    pub fn xcom_entries(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
    ) -> Result<Vec<(String, String)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(XCOM)?;
        let prefix = ti_key(tenant, dag_id, run_id, task_id, map_index);
        let (start, end) = prefix_range(&prefix);
        let mut out = Vec::new();
        for item in t.range(start.as_str()..end.as_str())? {
            let (k, v) = item?;
            let name = k.value()[prefix.len() + 1..].to_owned();
            out.push((name, String::from_utf8_lossy(v.value()).into_owned()));
        }
        Ok(out)
    }

    pub fn variable(&self, tenant: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .get_raw(VARIABLES, &key(&[tenant, name]))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
    pub fn set_variable(&self, tenant: &str, name: &str, value: &str) -> Result<()> {
        let mut b = WriteBatch::default();
        b.put_raw(VARIABLES, key(&[tenant, name]), value.as_bytes().to_vec());
        self.commit(b).map(|_| ())
    }
    /// Every variable of a tenant, `(name, value)` in name order.
    pub fn variables(&self, tenant: &str) -> Result<Vec<(String, String)>> {
        self.scan_raw(VARIABLES, tenant)
    }
    /// Deletes a variable; false if there was none.
    pub fn delete_variable(&self, tenant: &str, name: &str) -> Result<bool> {
        self.delete_raw(VARIABLES, &key(&[tenant, name]))
    }
    pub fn connection(&self, tenant: &str, conn_id: &str) -> Result<Option<String>> {
        Ok(self
            .get_raw(CONNECTIONS, &key(&[tenant, conn_id]))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
    pub fn set_connection(&self, tenant: &str, conn_id: &str, json: &str) -> Result<()> {
        let mut b = WriteBatch::default();
        b.put_raw(
            CONNECTIONS,
            key(&[tenant, conn_id]),
            json.as_bytes().to_vec(),
        );
        self.commit(b).map(|_| ())
    }

    /// Every connection of a tenant, `(conn_id, json)` in id order.
    pub fn connections(&self, tenant: &str) -> Result<Vec<(String, String)>> {
        self.scan_raw(CONNECTIONS, tenant)
    }
    /// Deletes a connection; false if there was none.
    pub fn delete_connection(&self, tenant: &str, conn_id: &str) -> Result<bool> {
        self.delete_raw(CONNECTIONS, &key(&[tenant, conn_id]))
    }

    /// Every TaskInstance (all map indexes) of one task in one run.
    pub fn task_instances_of(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
    ) -> Result<Vec<TaskInstance>> {
        self.scan(
            TASK_INSTANCES,
            Some(&key(&[tenant, dag_id, run_id, task_id])),
        )
    }

    /// The callbacks a run fired, in the order they fired.
    pub fn callbacks(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Vec<CallbackRecord>> {
        self.scan(CALLBACKS, Some(&run_key(tenant, dag_id, run_id)))
    }
    pub fn callback(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        seq: u64,
    ) -> Result<Option<CallbackRecord>> {
        self.get(CALLBACKS, &callback_key(tenant, dag_id, run_id, seq))
    }
    /// Callbacks that were queued or running, across every run: after a crash they
    /// will never report, so the scheduler closes them at start.
    pub fn unfinished_callbacks(&self) -> Result<Vec<CallbackRecord>> {
        let keys: Vec<String> = {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(CALLBACKS_PENDING)?;
            let mut keys = Vec::new();
            for item in t.iter()? {
                keys.push(item?.0.value().to_owned());
            }
            keys
        };
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(c) = self.get::<CallbackRecord>(CALLBACKS, &k)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Every backfill of a DAG, oldest first.
    pub fn backfills(&self, tenant: &str, dag_id: Option<&str>) -> Result<Vec<BackfillRecord>> {
        let mut all: Vec<BackfillRecord> = self.scan(BACKFILLS, Some(tenant))?;
        if let Some(d) = dag_id {
            all.retain(|b| b.dag_id == d);
        }
        all.sort_by_key(|b| b.id);
        Ok(all)
    }
    pub fn backfill(&self, tenant: &str, id: u64) -> Result<Option<BackfillRecord>> {
        self.get(BACKFILLS, &backfill_key(tenant, id))
    }
    /// Backfills of every tenant (the scheduler's start).
    pub fn all_backfills(&self) -> Result<Vec<BackfillRecord>> {
        self.scan(BACKFILLS, None)
    }

    /// Every pool record of a tenant, `(name, json)` in name order.
    pub fn pools(&self, tenant: &str) -> Result<Vec<(String, String)>> {
        self.scan_raw(POOLS, tenant)
    }
    pub fn pool(&self, tenant: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .get_raw(POOLS, &key(&[tenant, name]))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
    pub fn set_pool(&self, tenant: &str, name: &str, json: &str) -> Result<()> {
        let mut b = WriteBatch::default();
        b.put_raw(POOLS, key(&[tenant, name]), json.as_bytes().to_vec());
        self.commit(b).map(|_| ())
    }
    /// The size of every pool of every tenant, for the scheduler's admission. A
    /// record it cannot read counts as 0 slots: nothing runs in a pool whose size
    /// is unknown, rather than everything.
    pub fn pool_sizes(&self) -> Result<std::collections::HashMap<(String, String), u32>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(POOLS)?;
        let mut out = std::collections::HashMap::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let mut parts = k.value().splitn(2, '\0');
            let (Some(tenant), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let slots = serde_json::from_slice::<PoolRecord>(v.value()).map_or(0, |p| p.slots);
            out.insert((tenant.to_owned(), name.to_owned()), slots);
        }
        Ok(out)
    }
    /// Deletes a pool record; false if there was none.
    pub fn delete_pool(&self, tenant: &str, name: &str) -> Result<bool> {
        self.delete_raw(POOLS, &key(&[tenant, name]))
    }

    /// Raw values under one first key part (a tenant), with the rest of the key.
    fn scan_raw(&self, table: Table, first: &str) -> Result<Vec<(String, String)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(table)?;
        let (start, end) = prefix_range(first);
        let mut out = Vec::new();
        for item in t.range(start.as_str()..end.as_str())? {
            let (k, v) = item?;
            out.push((
                k.value()[start.len()..].to_owned(),
                String::from_utf8_lossy(v.value()).into_owned(),
            ));
        }
        Ok(out)
    }

    /// Removes one key in its own durable transaction; false if it was absent.
    fn delete_raw(&self, table: Table, key: &str) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(table)?.remove(key)?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    /// The stored log of one try, if it finished.
    pub fn log(&self, ti: &TaskInstance, try_number: u32) -> Result<Option<String>> {
        Ok(self
            .get_raw(LOGS, &log_key(ti, try_number))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}

pub fn log_key(ti: &TaskInstance, try_number: u32) -> String {
    format!(
        "{}\0{try_number:05}",
        ti_key(
            &ti.tenant,
            &ti.dag_id,
            &ti.run_id,
            &ti.task_id,
            ti.map_index
        )
    )
}

pub fn xcom_key(ti: &TaskInstance, name: &str) -> String {
    format!(
        "{}\0{name}",
        ti_key(
            &ti.tenant,
            &ti.dag_id,
            &ti.run_id,
            &ti.task_id,
            ti.map_index
        )
    )
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| MetastoreError::Codec {
        key: key.replace('\0', "/"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_is_recorded_and_reopen_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aileron.redb");
        {
            let m = Metastore::open(&path).unwrap();
            assert_eq!(m.schema_version().unwrap(), SCHEMA_VERSION);
            m.set_variable("default", "answer", "42").unwrap();
        }
        let m = Metastore::open(&path).unwrap();
        assert_eq!(
            m.variable("default", "answer").unwrap().as_deref(),
            Some("42")
        );
        assert_eq!(m.variable("other", "answer").unwrap(), None);
    }

    #[test]
    fn unfinished_callbacks_are_found_through_the_pending_index() {
        let m = Metastore::in_memory().unwrap();
        let t = jiff::Timestamp::UNIX_EPOCH;
        let mut c = CallbackRecord {
            tenant: "t".into(),
            dag_id: "d".into(),
            run_id: "r".into(),
            seq: 0,
            event: "on_failure".into(),
            task_id: None,
            map_index: None,
            try_number: None,
            operator: "echo".into(),
            plugin_digest: "sha256:x".into(),
            state: "queued".into(),
            reason: None,
            queued_at: t,
            start_date: None,
            end_date: None,
            error: None,
            log: String::new(),
        };
        let mut b = WriteBatch::default();
        b.put_callback(&c);
        c.seq = 1;
        c.state = "success".into();
        b.put_callback(&c);
        m.commit(b).unwrap();
        let pending = m.unfinished_callbacks().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].seq, 0);
        let mut done = pending[0].clone();
        done.state = "failed".into();
        let mut b = WriteBatch::default();
        b.put_callback(&done);
        m.commit(b).unwrap();
        assert!(m.unfinished_callbacks().unwrap().is_empty());
        assert_eq!(m.callbacks("t", "d", "r").unwrap().len(), 2);
    }

    #[test]
    fn variables_connections_and_pools_list_and_delete() {
        let m = Metastore::in_memory().unwrap();
        m.set_variable("t", "b", "2").unwrap();
        m.set_variable("t", "a", "1").unwrap();
        m.set_variable("other", "c", "3").unwrap();
        assert_eq!(
            m.variables("t").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(m.delete_variable("t", "a").unwrap());
        assert!(!m.delete_variable("t", "a").unwrap());
        assert_eq!(m.variables("t").unwrap().len(), 1);

        m.set_connection("t", "db", "{}").unwrap();
        assert_eq!(
            m.connections("t").unwrap(),
            vec![("db".into(), "{}".into())]
        );
        assert!(m.delete_connection("t", "db").unwrap());
        assert!(m.connections("t").unwrap().is_empty());

        m.set_pool("t", "p", r#"{"slots":2}"#).unwrap();
        assert_eq!(m.pool("t", "p").unwrap().as_deref(), Some(r#"{"slots":2}"#));
        assert_eq!(m.pools("t").unwrap().len(), 1);
        assert!(m.delete_pool("t", "p").unwrap());
        assert_eq!(m.pool("t", "p").unwrap(), None);
    }

    #[test]
    fn the_execution_key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aileron.redb");
        let key = {
            let m = Metastore::open(&path).unwrap();
            let key = m.execution_key().unwrap();
            assert_eq!(m.execution_key().unwrap(), key);
            key
        };
        let m = Metastore::open(&path).unwrap();
        assert_eq!(m.execution_key().unwrap(), key);
        // Stored as a JSON string of hex digits, readable with any redb tool.
        let stored = m.get_raw(META, "execution_key").unwrap().unwrap();
        assert_eq!(stored, format!("\"{}\"", key.to_hex()).into_bytes());
        // Another metastore gets another key.
        let other = Metastore::in_memory().unwrap().execution_key().unwrap();
        assert_ne!(other, key);
    }

    #[test]
    fn a_corrupt_execution_key_is_an_error_not_replaced() {
        let m = Metastore::in_memory().unwrap();
        let mut b = WriteBatch::default();
        b.put_raw(META, "execution_key".into(), b"\"not hex\"".to_vec());
        m.commit(b).unwrap();
        let err = m.execution_key().unwrap_err();
        assert!(
            matches!(&err, MetastoreError::Codec { key, .. } if key == "execution_key"),
            "{err}"
        );
        assert_eq!(
            m.get_raw(META, "execution_key").unwrap().unwrap(),
            b"\"not hex\""
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aileron.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", "999".as_bytes())
                .unwrap();
            txn.commit().unwrap();
        }
        let err = Metastore::open(&path).err().unwrap();
        assert!(
            matches!(err, MetastoreError::TooNew { found: 999 }),
            "{err}"
        );
    }

    #[test]
    fn prefix_delete_removes_only_that_prefix() {
        let m = Metastore::in_memory().unwrap();
        let mut b = WriteBatch::default();
        b.put_raw(
            XCOM,
            key(&["t", "d", "r1", "a", "0000000000", "k"]),
            b"1".to_vec(),
        );
        b.put_raw(
            XCOM,
            key(&["t", "d", "r10", "a", "0000000000", "k"]),
            b"2".to_vec(),
        );
        m.commit(b).unwrap();
        let mut b = WriteBatch::default();
        b.delete_prefix(XCOM, run_key("t", "d", "r1"));
        m.commit(b).unwrap();
        assert!(m.xcom("t", "d", "r1", "a", "k").unwrap().is_empty());
        assert_eq!(
            m.xcom("t", "d", "r10", "a", "k").unwrap(),
            vec![(-1, "2".to_owned())]
        );
    }
}
