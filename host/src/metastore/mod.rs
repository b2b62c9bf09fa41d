//! The metastore: every durable object in one redb file, with typed reads and one
//! write transaction per batch of changes (group commit).
//!
//! The scheduler is the only writer; readers (API, CLI, host calls) open their own
//! read transactions, which redb serves concurrently with the writer (MVCC).
//!
//! Keys are strings whose parts are joined by NUL, so all records of one DAG, run or
//! TaskInstance sit next to each other and a prefix is a range scan. Values are JSON:
//! readable with any redb tool, and schema evolution is a serde default away.

mod access;
mod audit;
mod batch;
mod error;
mod favorites;
mod history;
mod indexes;
mod keys;
mod queries;
mod records;
mod schema;
mod secrets;
mod stored_ti;
#[cfg(test)]
mod tests;
mod usage;
mod versions;

pub use access::*;
pub use audit::{AuditQuery, AuditRecord};
pub use batch::*;
pub use error::*;
pub use history::ExpiredRun;
pub use indexes::{RunOrder, RunPage, RunQuery};
pub use keys::*;
pub use queries::XcomWrite;
pub use records::*;
pub use schema::*;
pub use usage::*;
pub use versions::DagVersionInfo;

use aileron_protocol::ExecutionKey;

use redb::{Database, ReadableDatabase, ReadableTable, TableHandle};
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One table's share of the metastore file.
#[derive(Debug, Clone)]
pub struct TableSize {
    pub name: String,
    pub entries: u64,
    /// Keys and values.
    pub stored_bytes: u64,
    /// Page headers, offsets and the unused parts of pages.
    pub overhead_bytes: u64,
}

/// Handle to the metastore; cheap to clone.
#[derive(Clone)]
pub struct Metastore {
    db: Arc<Database>,
    /// Seals and opens connections (`secrets.rs`); replaced by a rotation.
    keyring: Arc<std::sync::RwLock<Arc<secrets::Keyring>>>,
    /// The file, for a key rotation; `None` in memory.
    path: Option<Arc<std::path::PathBuf>>,
}

impl Metastore {
    /// Opens (or creates) the metastore file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        let sealed = secrets::any_sealed(&db)?;
        let mut m = Self::init(db, secrets::Keyring::load(path, sealed)?)?;
        m.path = Some(Arc::new(path.to_path_buf()));
        m.seal_plain_connections()?;
        Ok(m)
    }

    /// A metastore that lives in memory only: for `aileron dags test` and tests.
    pub fn in_memory() -> Result<Self> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::init(db, secrets::Keyring::ephemeral()?)
    }

    fn init(db: Database, keyring: secrets::Keyring) -> Result<Self> {
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
            None => access::seed_tenants(&txn)?,
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
        Ok(Self {
            db: Arc::new(db),
            keyring: Arc::new(std::sync::RwLock::new(Arc::new(keyring))),
            path: None,
        })
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

    /// What each table holds, as redb counts it: for the bench's size report and
    /// for anyone asking where the file's bytes go.
    pub fn table_sizes(&self) -> Result<Vec<TableSize>> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for table in ALL_TABLES {
            let t = txn.open_table(table)?;
            let stats = t.stats()?;
            out.push(TableSize {
                name: table.name().to_owned(),
                entries: t.len()?,
                stored_bytes: stats.stored_bytes(),
                overhead_bytes: stats.metadata_bytes() + stats.fragmented_bytes(),
            });
        }
        Ok(out)
    }

    /// Applies a batch in one durable write transaction; returns how long it took.
    /// A write or delete of a run or TaskInstance also brings the indexes
    /// (`indexes.rs`) along, in the same transaction.
    pub fn commit(&self, batch: WriteBatch) -> Result<Duration> {
        let started = Instant::now();
        let txn = self.db.begin_write()?;
        {
            // Each table is opened once and kept open for the whole batch.
            let mut tables = indexes::OpenTables::new();
            let mut ti_counts = indexes::TiCountDelta::default();
            for op in &batch.ops {
                let table = match op {
                    Op::Put(t, ..) | Op::Delete(t, _) | Op::DeletePrefix(t, _) => *t,
                };
                let is_runs = table.name() == DAG_RUNS.name();
                let is_tis = table.name() == TASK_INSTANCES.name();
                let t = indexes::open(&txn, &mut tables, table)?;
                match op {
                    Op::Put(_, k, v) => {
                        let old = t.insert(k.as_str(), v.as_slice())?;
                        if is_tis {
                            if let Some(old) = &old {
                                ti_counts.add(k, old.value(), -1);
                            }
                            ti_counts.add(k, v, 1);
                        }
                        if is_runs {
                            let old: Option<DagRun> =
                                old.map(|o| decode(k, o.value())).transpose()?;
                            let new: DagRun = decode(k, v)?;
                            indexes::reindex(&txn, &mut tables, old.as_ref(), Some(&new))?;
                        }
                    }
                    Op::Delete(_, k) => {
                        let old: Option<DagRun> = match t.remove(k.as_str())? {
                            Some(old) if is_runs => Some(decode(k, old.value())?),
                            Some(old) if is_tis => {
                                ti_counts.add(k, old.value(), -1);
                                None
                            }
                            _ => None,
                        };
                        if let Some(old) = old {
                            indexes::reindex(&txn, &mut tables, Some(&old), None)?;
                        }
                    }
                    Op::DeletePrefix(_, prefix) => {
                        let (start, end) = prefix_range(prefix);
                        let mut gone: Vec<DagRun> = Vec::new();
                        t.retain_in(start.as_str()..end.as_str(), |k, v| {
                            if is_runs && let Ok(run) = decode::<DagRun>(k, v) {
                                gone.push(run);
                            }
                            if is_tis {
                                ti_counts.add(k, v, -1);
                            }
                            false
                        })?;
                        for old in &gone {
                            indexes::reindex(&txn, &mut tables, Some(old), None)?;
                        }
                    }
                }
            }
            ti_counts.write(&txn, &mut tables)?;
        }
        txn.commit()?;
        Ok(started.elapsed())
    }

    fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>> {
        self.get_with(table, key, decode)
    }

    fn get_with<T>(
        &self,
        table: Table,
        key: &str,
        decode: impl Fn(&str, &[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
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
        self.scan_with(table, prefix, decode)
    }

    fn scan_with<T>(
        &self,
        table: Table,
        prefix: Option<&str>,
        decode: impl Fn(&str, &[u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
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
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| MetastoreError::Codec {
        key: key.replace('\0', "/"),
        source,
    })
}
