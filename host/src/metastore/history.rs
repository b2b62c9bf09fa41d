//! What `db clean` may delete: finished runs whose logical date and end both lie
//! before a cut-off, found by walking the logical-date index from its oldest
//! entry, so the cost follows the old runs asked about, not the whole history.
//!
//! As Airflow's `db clean` does, each DAG keeps its latest non-manual run whatever
//! its age: it is what a DAG page shows as "last run" and what `depends_on_past`
//! of the next scheduled run looks at.

use super::indexes::{ALL_DAGS, OrderValue, RunOrder, date_part, parse_order_value, parse_state};
use super::*;
use aileron_model::DagRunState;
use std::collections::{BTreeSet, HashMap};

/// A run `db clean` may delete, with how many TaskInstances go with it.
#[derive(Debug, Clone)]
pub struct ExpiredRun {
    pub run: DagRun,
    pub task_instances: usize,
}

impl Metastore {
    /// Up to `limit` finished runs of `tenant` (of every tenant when `None`)
    /// whose logical date and end are both before `before`, oldest logical date
    /// first, less each DAG's latest non-manual run.
    pub fn expired_runs(
        &self,
        tenant: Option<&str>,
        before: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<ExpiredRun>> {
        let txn = self.db.begin_read()?;
        let order = txn.open_table(RUN_ORDER)?;
        let runs = txn.open_table(DAG_RUNS)?;
        let tis = txn.open_table(TASK_INSTANCES)?;
        let tenants: Vec<String> = match tenant {
            Some(t) => vec![t.to_owned()],
            None => {
                // The tenants with runs: the first part of the run counts' keys
                // (a few per DAG, not per run).
                let counts = txn.open_table(RUN_COUNTS)?;
                let mut set = BTreeSet::new();
                for item in counts.iter()? {
                    let (k, _) = item?;
                    if let Some(t) = k.value().split('\0').next() {
                        set.insert(t.to_owned());
                    }
                }
                set.into_iter().collect()
            }
        };
        let mut out = Vec::new();
        for tenant in &tenants {
            // The DAGs' latest non-manual runs, looked up once per DAG met.
            let mut kept: HashMap<String, Option<String>> = HashMap::new();
            let prefix = key(&[tenant, ALL_DAGS, RunOrder::LogicalDate.tag()]);
            let (start, _) = prefix_range(&prefix);
            let end = format!("{prefix}\0{}", date_part(before));
            for item in order.range(start.as_str()..end.as_str())? {
                if out.len() >= limit {
                    return Ok(out);
                }
                let (_, v) = item?;
                let Some(OrderValue {
                    state,
                    dag_id,
                    run_id,
                    ..
                }) = parse_order_value(v.value())
                else {
                    continue;
                };
                if !parse_state(state).is_some_and(DagRunState::is_finished) {
                    continue;
                }
                if !kept.contains_key(dag_id) {
                    let latest = latest_non_manual(&order, tenant, dag_id)?;
                    kept.insert(dag_id.to_owned(), latest);
                }
                if kept[dag_id].as_deref() == Some(run_id) {
                    continue;
                }
                let record_key = run_key(tenant, dag_id, run_id);
                let Some(r) = runs.get(record_key.as_str())? else {
                    continue;
                };
                let run: DagRun = decode(&record_key, r.value())?;
                // A run re-run lately (a cleared old date, a backfill) stays.
                if run.end_date.unwrap_or(run.queued_at) >= before {
                    continue;
                }
                let (ti_start, ti_end) = prefix_range(&record_key);
                let task_instances = tis.range(ti_start.as_str()..ti_end.as_str())?.count();
                out.push(ExpiredRun {
                    run,
                    task_instances,
                });
            }
        }
        Ok(out)
    }
}

/// The run id of a DAG's latest scheduled or backfill run by logical date.
fn latest_non_manual(
    order: &redb::ReadOnlyTable<&'static str, &'static [u8]>,
    tenant: &str,
    dag_id: &str,
) -> Result<Option<String>> {
    let (start, end) = prefix_range(&key(&[tenant, dag_id, RunOrder::LogicalDate.tag()]));
    for item in order.range(start.as_str()..end.as_str())?.rev() {
        let (_, v) = item?;
        if let Some(entry) = parse_order_value(v.value())
            && entry.run_type != RunType::Manual.as_str()
        {
            return Ok(Some(entry.run_id.to_owned()));
        }
    }
    Ok(None)
}
