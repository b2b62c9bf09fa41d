//! DAG version numbers: each content hash a DAG has had gets the next number
//! of that DAG (1, 2, …) and the time it was first parsed, as Airflow numbers
//! a DAG's versions. Two tables: by hash (`dag_version_numbers`, for a run's
//! version) and by number (`dag_version_list`, for listing in order).

use super::*;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A numbered version of a DAG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagVersionInfo {
    pub number: u32,
    /// The content hash: the key of its spec in `dag_versions`.
    pub hash: String,
    /// When this content was first parsed (for versions from before numbering,
    /// when its first run was queued, or when they were numbered).
    pub created_at: Timestamp,
}

fn number_key(tenant: &str, dag_id: &str, number: u32) -> String {
    key(&[tenant, dag_id, &format!("{number:010}")])
}

impl WriteBatch {
    /// Records a version's number (both tables).
    pub fn put_version_info(&mut self, tenant: &str, dag_id: &str, v: &DagVersionInfo) {
        self.put(DAG_VERSION_NUMBERS, key(&[tenant, dag_id, &v.hash]), v);
        self.put_raw(
            DAG_VERSION_LIST,
            number_key(tenant, dag_id, v.number),
            v.hash.as_bytes().to_vec(),
        );
    }
}

impl Metastore {
    /// The number of a DAG's version with content `hash`.
    pub fn version_info(
        &self,
        tenant: &str,
        dag_id: &str,
        hash: &str,
    ) -> Result<Option<DagVersionInfo>> {
        self.get(DAG_VERSION_NUMBERS, &key(&[tenant, dag_id, hash]))
    }

    /// The highest number a DAG's versions have (0 for none).
    pub fn last_version_number(&self, tenant: &str, dag_id: &str) -> Result<u32> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(DAG_VERSION_LIST)?;
        let (start, end) = prefix_range(&dag_key(tenant, dag_id));
        let last = t.range(start.as_str()..end.as_str())?.next_back();
        Ok(match last {
            Some(item) => {
                let (k, _) = item?;
                k.value()
                    .rsplit('\0')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            }
            None => 0,
        })
    }

    /// One page of a DAG's versions by number (newest first with
    /// `descending`), and how many it has: a range read of the page.
    pub fn version_page(
        &self,
        tenant: &str,
        dag_id: &str,
        descending: bool,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<DagVersionInfo>, usize)> {
        let txn = self.db.begin_read()?;
        let list = txn.open_table(DAG_VERSION_LIST)?;
        let numbers = txn.open_table(DAG_VERSION_NUMBERS)?;
        let (start, end) = prefix_range(&dag_key(tenant, dag_id));
        let total = list.range(start.as_str()..end.as_str())?.count();
        let range = list.range(start.as_str()..end.as_str())?;
        let entries: Box<dyn Iterator<Item = _>> = if descending {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut page = Vec::new();
        for item in entries.skip(offset).take(limit) {
            let (_, hash) = item?;
            let k = key(&[tenant, dag_id, &String::from_utf8_lossy(hash.value())]);
            if let Some(v) = numbers.get(k.as_str())? {
                page.push(decode(&k, v.value())?);
            }
        }
        Ok((page, total))
    }

    /// A DAG's version by number.
    pub fn version_by_number(
        &self,
        tenant: &str,
        dag_id: &str,
        number: u32,
    ) -> Result<Option<DagVersionInfo>> {
        let Some(hash) = self.get_raw(DAG_VERSION_LIST, &number_key(tenant, dag_id, number))?
        else {
            return Ok(None);
        };
        self.version_info(tenant, dag_id, &String::from_utf8_lossy(&hash))
    }
}

/// Numbers the versions a store kept before versions had numbers (schema 6 →
/// 7): each DAG's in the order their first run was queued, the current one
/// last, and versions no run used before it, in hash order.
pub(super) fn number_versions(txn: &redb::WriteTransaction) -> Result<(), MetastoreError> {
    use redb::ReadableTable;
    use std::collections::{BTreeMap, HashMap};
    let now = Timestamp::now();
    // (tenant, dag) -> hash -> first queued run.
    let mut versions: BTreeMap<(String, String), BTreeMap<String, Option<Timestamp>>> =
        BTreeMap::new();
    for item in txn.open_table(DAG_VERSIONS)?.iter()? {
        let (k, _) = item?;
        let mut parts = k.value().splitn(3, '\0');
        let (Some(t), Some(d), Some(h)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        versions
            .entry((t.to_owned(), d.to_owned()))
            .or_default()
            .insert(h.to_owned(), None);
    }
    for item in txn.open_table(DAG_RUNS)?.iter()? {
        let (k, v) = item?;
        let run: DagRun = decode(k.value(), v.value())?;
        if let Some(first) = versions
            .get_mut(&(run.tenant.clone(), run.dag_id.clone()))
            .and_then(|m| m.get_mut(&run.dag_version))
        {
            *first = Some(first.map_or(run.queued_at, |t| t.min(run.queued_at)));
        }
    }
    let mut current: HashMap<(String, String), String> = HashMap::new();
    for item in txn.open_table(DAGS)?.iter()? {
        let (k, v) = item?;
        let d: DagRecord = decode(k.value(), v.value())?;
        current.insert((d.tenant, d.dag_id), d.version);
    }
    let mut numbers = txn.open_table(DAG_VERSION_NUMBERS)?;
    let mut list = txn.open_table(DAG_VERSION_LIST)?;
    for ((tenant, dag_id), hashes) in versions {
        let now_current = current.get(&(tenant.clone(), dag_id.clone()));
        let mut order: Vec<(String, Option<Timestamp>)> = hashes.into_iter().collect();
        // Used versions by first run, unused ones after, the current one last.
        order.sort_by_key(|(h, first)| (Some(h) == now_current, first.is_none(), *first));
        for (i, (hash, first)) in order.into_iter().enumerate() {
            let info = DagVersionInfo {
                number: i as u32 + 1,
                created_at: first.unwrap_or(now),
                hash,
            };
            let k = key(&[&tenant, &dag_id, &info.hash]);
            let bytes = serde_json::to_vec(&info).expect("a version serializes");
            numbers.insert(k.as_str(), bytes.as_slice())?;
            list.insert(
                number_key(&tenant, &dag_id, info.number).as_str(),
                info.hash.as_bytes(),
            )?;
        }
    }
    Ok(())
}
