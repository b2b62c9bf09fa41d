//! The audit log: one record per change asked of the API (made or refused), kept
//! under its tenant (or [`PLATFORM_SCOPE`] for platform changes) in order, so a
//! tenant's log is one range read, newest first.

use super::*;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One audited request. Never holds a request body, so secrets (passwords,
/// connection fields, token values) cannot end up here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Increasing over the whole file: Airflow's `event_log_id`.
    #[serde(default)]
    pub id: u64,
    pub when: Timestamp,
    /// The tenant whose objects the request was about; `None` for platform
    /// objects (tenants, users, workers) and for requests no one signed.
    pub tenant: Option<String>,
    /// Who: a user name, `token:<name>`, or `anonymous`.
    pub actor: String,
    /// What: the operation, e.g. `post_variable`, `trigger_run`.
    pub event: String,
    pub method: String,
    /// The path asked for (ids in it, never a query string).
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The client's address.
    pub source: String,
}

const NEXT_AUDIT: &str = "next_audit_id";
/// `meta` keys `audit_count\0<scope>`: each scope's number of records, so a
/// page's total costs one read, not a walk of the whole log.
const AUDIT_COUNT: &str = "audit_count";

fn read_count(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0)
}

impl Metastore {
    /// Appends one record, giving it the next id. A refused request is written
    /// without waiting for the disk (it reaches the disk with the next durable
    /// commit), so a flood of refused calls cannot turn into a flood of fsyncs.
    pub fn append_audit(&self, mut record: AuditRecord, durable: bool) -> Result<u64> {
        let mut txn = self.db.begin_write()?;
        if !durable {
            txn.set_durability(redb::Durability::None)?;
        }
        let id = {
            let mut meta = txn.open_table(META)?;
            let id = read_count(meta.get(NEXT_AUDIT)?.as_ref().map(|v| v.value())).max(1);
            meta.insert(NEXT_AUDIT, (id + 1).to_string().as_bytes())?;
            record.id = id;
            let scope = record
                .tenant
                .as_deref()
                .unwrap_or(PLATFORM_SCOPE)
                .to_owned();
            let count_key = key(&[AUDIT_COUNT, &scope]);
            let count = read_count(meta.get(count_key.as_str())?.as_ref().map(|v| v.value()));
            meta.insert(count_key.as_str(), (count + 1).to_string().as_bytes())?;
            let bytes = serde_json::to_vec(&record).expect("an audit record serializes");
            txn.open_table(AUDIT)?.insert(
                key(&[&scope, &format!("{id:020}")]).as_str(),
                bytes.as_slice(),
            )?;
            id
        };
        txn.commit()?;
        Ok(id)
    }

    /// One page of a scope's audit log (a tenant, or the platform's with `None`),
    /// newest first, and the scope's total.
    pub fn audit_page(
        &self,
        tenant: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, usize)> {
        self.audit_search(
            tenant,
            &AuditQuery {
                newest_first: true,
                offset,
                limit,
                keep: None,
            },
        )
    }

    /// One page of a scope's audit log in either order, of the records `keep`
    /// keeps, and how many it keeps in all. Without `keep` the page is a range
    /// read and the total one stored count; with it, the scope's log is read
    /// through (records are kept by scope and id only, so a filter on anything
    /// else is a scan, as an unindexed column is in SQL).
    pub fn audit_search(
        &self,
        tenant: Option<&str>,
        q: &AuditQuery<'_>,
    ) -> Result<(Vec<AuditRecord>, usize)> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(AUDIT)?;
        let scope = tenant.unwrap_or(PLATFORM_SCOPE);
        let (start, end) = prefix_range(scope);
        let range = t.range(start.as_str()..end.as_str())?;
        let records: Box<dyn Iterator<Item = _>> = if q.newest_first {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut page = Vec::new();
        let Some(keep) = q.keep else {
            let total = read_count(
                txn.open_table(META)?
                    .get(key(&[AUDIT_COUNT, scope]).as_str())?
                    .as_ref()
                    .map(|v| v.value()),
            );
            for item in records.skip(q.offset).take(q.limit) {
                let (k, v) = item?;
                page.push(decode(k.value(), v.value())?);
            }
            return Ok((page, total as usize));
        };
        let mut total = 0;
        for item in records {
            let (k, v) = item?;
            let record = decode(k.value(), v.value())?;
            if !keep(&record) {
                continue;
            }
            if total >= q.offset && page.len() < q.limit {
                page.push(record);
            }
            total += 1;
        }
        Ok((page, total))
    }
}

/// What [`Metastore::audit_search`] reads.
pub struct AuditQuery<'a> {
    pub newest_first: bool,
    pub offset: usize,
    pub limit: usize,
    /// Keeps only the records this answers true for.
    pub keep: Option<&'a (dyn Fn(&AuditRecord) -> bool + Sync)>,
}

impl Metastore {
    /// One record of a scope's log by id.
    pub fn audit_record(&self, tenant: Option<&str>, id: u64) -> Result<Option<AuditRecord>> {
        self.get(
            AUDIT,
            &key(&[tenant.unwrap_or(PLATFORM_SCOPE), &format!("{id:020}")]),
        )
    }
}
