//! Keys of the metastore's tables: parts joined by NUL, so every record of one
//! tenant, DAG, run or TaskInstance is one range scan.

use super::TaskInstance;

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
pub(super) fn prefix_range(prefix: &str) -> (String, String) {
    let start = format!("{prefix}\0");
    let end = format!("{prefix}\u{1}");
    (start, end)
}

/// The key of a TaskInstance record (and the prefix of its XCom and logs).
pub fn ti_record_key(ti: &TaskInstance) -> String {
    ti_key(
        &ti.tenant,
        &ti.dag_id,
        &ti.run_id,
        &ti.task_id,
        ti.map_index,
    )
}

pub fn log_key(ti: &TaskInstance, try_number: u32) -> String {
    format!("{}\0{try_number:05}", ti_record_key(ti))
}

pub fn xcom_key(ti: &TaskInstance, name: &str) -> String {
    format!("{}\0{name}", ti_record_key(ti))
}
