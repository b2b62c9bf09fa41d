//! One batch of writes, applied atomically by [`Metastore::commit`].

use super::*;
use serde::Serialize;

/// One batch of writes, applied atomically by [`Metastore::commit`], in the order
/// they were recorded (a prefix delete must not undo a later put).
#[derive(Default)]
pub struct WriteBatch {
    pub(super) ops: Vec<Op>,
}

pub(super) enum Op {
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
        self.put_raw(TASK_INSTANCES, ti_record_key(ti), stored_ti::encode(ti));
    }
    /// Records the next unused attempt number (see [`Metastore::next_attempt`]).
    /// The log of one try of `ti`.
    pub fn put_log(&mut self, ti: &TaskInstance, try_number: u32, text: Vec<u8>) {
        self.put_raw(LOGS, log_key(ti, try_number), text);
    }
    pub fn put_next_attempt(&mut self, next: u64) {
        self.put(META, NEXT_ATTEMPT.to_owned(), &next);
    }
}

pub(super) const NEXT_ATTEMPT: &str = "next_attempt";
