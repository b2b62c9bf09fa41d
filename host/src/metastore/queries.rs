//! Typed reads of every kind of record, and the small writes the API makes
//! directly (variables, connections, pools, XCom entries set by hand), each in
//! its own transaction.

use super::*;

/// What [`Metastore::put_xcom`] requires of the entry before writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XcomWrite {
    /// It must not exist yet.
    Create,
    /// It must exist.
    Update,
}

impl Metastore {
    /// Every DAG of every tenant (what a starting scheduler loads).
    pub fn dags(&self) -> Result<Vec<DagRecord>> {
        self.scan(DAGS, None)
    }
    /// The DAGs of one tenant, by id.
    pub fn tenant_dags(&self, tenant: &str) -> Result<Vec<DagRecord>> {
        self.scan(DAGS, Some(tenant))
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
    /// Every run of every tenant (for tools and tests; nothing that serves a
    /// request reads all of history).
    pub fn all_dag_runs(&self) -> Result<Vec<DagRun>> {
        self.scan(DAG_RUNS, None)
    }
    /// Every run of one tenant's DAGs: for the orders no index keeps.
    pub fn tenant_dag_runs(&self, tenant: &str) -> Result<Vec<DagRun>> {
        self.scan(DAG_RUNS, Some(tenant))
    }
    /// Every TaskInstance of every tenant (for the `/metrics` gauges).
    pub fn all_task_instances(&self) -> Result<Vec<TaskInstance>> {
        self.scan_with(TASK_INSTANCES, None, stored_ti::decode)
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
        self.scan_with(
            TASK_INSTANCES,
            Some(&run_key(tenant, dag_id, run_id)),
            stored_ti::decode,
        )
    }
    pub fn task_instance(
        &self,
        tenant: &str,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
    ) -> Result<Option<TaskInstance>> {
        self.get_with(
            TASK_INSTANCES,
            &ti_key(tenant, dag_id, run_id, task_id, map_index),
            stored_ti::decode,
        )
    }
    pub fn import_errors(&self) -> Result<Vec<ImportErrorRecord>> {
        self.scan(IMPORT_ERRORS, None)
    }
    /// One tenant's import errors, by file.
    pub fn tenant_import_errors(&self, tenant: &str) -> Result<Vec<ImportErrorRecord>> {
        self.scan(IMPORT_ERRORS, Some(tenant))
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

    /// Writes one XCom entry of a TaskInstance from outside a try (the API), in
    /// one transaction with the check `mode` asks for; false when the check
    /// fails (the entry exists for `Create`, is missing for `Update`).
    pub fn put_xcom(
        &self,
        ti: &TaskInstance,
        name: &str,
        json: &str,
        mode: XcomWrite,
    ) -> Result<bool> {
        let k = xcom_key(ti, name);
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(XCOM)?;
            let exists = t.get(k.as_str())?.is_some();
            if exists != (mode == XcomWrite::Update) {
                return Ok(false);
            }
            t.insert(k.as_str(), json.as_bytes())?;
        }
        txn.commit()?;
        Ok(true)
    }

    /// Deletes one XCom entry of a TaskInstance; false if there was none.
    pub fn delete_xcom(&self, ti: &TaskInstance, name: &str) -> Result<bool> {
        self.delete_raw(XCOM, &xcom_key(ti, name))
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
    /// A connection's JSON, opened (`secrets.rs`).
    pub fn connection(&self, tenant: &str, conn_id: &str) -> Result<Option<String>> {
        let key = key(&[tenant, conn_id]);
        let Some(stored) = self.get_raw(CONNECTIONS, &key)? else {
            return Ok(None);
        };
        let plain = self.keys().open(&key, &stored)?;
        Ok(Some(String::from_utf8_lossy(&plain).into_owned()))
    }
    /// Stores a connection's JSON, sealed (`secrets.rs`).
    pub fn set_connection(&self, tenant: &str, conn_id: &str, json: &str) -> Result<()> {
        let mut b = WriteBatch::default();
        let key = key(&[tenant, conn_id]);
        let sealed = self.keys().seal(&key, json.as_bytes())?;
        b.put_raw(CONNECTIONS, key, sealed);
        self.commit(b).map(|_| ())
    }

    /// Every connection of a tenant, `(conn_id, json)` in id order, opened.
    pub fn connections(&self, tenant: &str) -> Result<Vec<(String, String)>> {
        let keys = self.keys();
        // The full key opens the value (it is bound in); the caller gets the id.
        let id_at = prefix_range(tenant).0.len();
        self.scan_with(CONNECTIONS, Some(tenant), |k, v| {
            let plain = keys.open(k, v)?;
            Ok((
                k[id_at..].to_owned(),
                String::from_utf8_lossy(&plain).into_owned(),
            ))
        })
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
        self.scan_with(
            TASK_INSTANCES,
            Some(&key(&[tenant, dag_id, run_id, task_id])),
            stored_ti::decode,
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
    pub fn pool_sizes(&self) -> Result<std::collections::HashMap<aileron_model::PoolKey, u32>> {
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
            out.insert(aileron_model::PoolKey::new(tenant, name), slots);
        }
        Ok(out)
    }
    /// Deletes a pool record; false if there was none.
    pub fn delete_pool(&self, tenant: &str, name: &str) -> Result<bool> {
        self.delete_raw(POOLS, &key(&[tenant, name]))
    }

    /// The stored log of one try, if it finished.
    pub fn log(&self, ti: &TaskInstance, try_number: u32) -> Result<Option<String>> {
        Ok(self
            .get_raw(LOGS, &log_key(ti, try_number))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}
