//! The scheduler's side of what a TaskInstance can read while it is rendered or
//! runs: the sandbox's host calls ([`MetastoreHost`]) and template lookups
//! ([`RenderLookups`], [`render`]), serving XCom of its DagRun and variables and
//! connections of its tenant, all from the metastore.

use super::planner::ActiveRun;
use crate::metastore::{DagRun, Metastore};
use aileron_model::dag::TaskSpec;
use aileron_model::template::{self, RenderContext, TemplateLookups};
use std::collections::HashMap;
use std::sync::Arc;

/// Host services for one try, scoped to its tenant and DagRun.
pub struct MetastoreHost {
    metastore: Metastore,
    tenant: String,
    dag_id: String,
    run_id: String,
}

impl MetastoreHost {
    pub fn new(metastore: Metastore, tenant: &str, dag_id: &str, run_id: &str) -> Self {
        Self {
            metastore,
            tenant: tenant.to_owned(),
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
        }
    }
}

/// XCom of a task: the value for an unmapped task, a list (in map order) for a
/// mapped one, as Airflow's `xcom_pull` returns.
fn collect_xcom(values: Vec<(i64, String)>) -> Option<String> {
    match values.as_slice() {
        [] => None,
        [(-1, v)] => Some(v.clone()),
        many => Some(format!(
            "[{}]",
            many.iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(",")
        )),
    }
}

#[async_trait::async_trait]
impl aileron_sandbox::HostServices for MetastoreHost {
    async fn xcom_pull(&self, task_id: &str, key: Option<&str>) -> Option<String> {
        let key = key.unwrap_or("return_value");
        let values = self
            .metastore
            .xcom(&self.tenant, &self.dag_id, &self.run_id, task_id, key)
            .ok()?;
        collect_xcom(values)
    }

    async fn variable(&self, key: &str) -> Option<String> {
        self.metastore.variable(&self.tenant, key).ok().flatten()
    }

    async fn connection(&self, conn_id: &str) -> Result<String, String> {
        match self.metastore.connection(&self.tenant, conn_id) {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(format!("connection `{conn_id}` is not defined")),
            Err(e) => Err(format!("cannot read connection `{conn_id}`: {e}")),
        }
    }
}

/// Template lookups during scheduling: committed XCom plus what this turn wrote.
/// Owned, because the template engine's objects hold it while they render.
pub(super) struct RenderLookups {
    metastore: Metastore,
    tenant: String,
    dag_id: String,
    run_id: String,
    /// XCom of tries of this run that finished in this very turn (not committed
    /// yet): `(task_id, xcom key)` → `(map index, JSON)`.
    overlay: HashMap<(String, String), Vec<(i64, String)>>,
}

impl RenderLookups {
    /// Lookups for `run`. `overlay` is the scheduler's uncommitted XCom, keyed as in
    /// the metastore (tenant, dag, run, task, map part, xcom key); only `run`'s
    /// entries are kept.
    pub(super) fn new(
        metastore: &Metastore,
        overlay: &HashMap<String, String>,
        run: &DagRun,
    ) -> Arc<Self> {
        let prefix = format!(
            "{}\0",
            crate::metastore::key(&[&run.tenant, &run.dag_id, &run.run_id])
        );
        let mut own: HashMap<(String, String), Vec<(i64, String)>> = HashMap::new();
        for (k, v) in overlay {
            let Some(rest) = k.strip_prefix(&prefix) else {
                continue;
            };
            let mut parts = rest.splitn(3, '\0');
            let (Some(task), Some(map), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            // The map part is the index plus one, so that -1 sorts first.
            let map = map.parse::<i64>().unwrap_or(0) - 1;
            own.entry((task.to_owned(), name.to_owned()))
                .or_default()
                .push((map, v.clone()));
        }
        Arc::new(Self {
            metastore: metastore.clone(),
            tenant: run.tenant.clone(),
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            overlay: own,
        })
    }
}

impl TemplateLookups for RenderLookups {
    fn xcom_pull(&self, task_id: &str, key: &str) -> Option<serde_json::Value> {
        let mut values = self
            .metastore
            .xcom(&self.tenant, &self.dag_id, &self.run_id, task_id, key)
            .unwrap_or_default();
        let fresh = self.overlay.get(&(task_id.to_owned(), key.to_owned()));
        for (map, v) in fresh.into_iter().flatten() {
            values.retain(|(m, _)| m != map);
            values.push((*map, v.clone()));
        }
        values.sort_by_key(|(m, _)| *m);
        collect_xcom(values).and_then(|s| serde_json::from_str(&s).ok())
    }

    fn variable(&self, key: &str) -> Option<String> {
        self.metastore.variable(&self.tenant, key).ok().flatten()
    }
}

/// Renders `value` (a task's params or its `expand` table) for a TaskInstance. A
/// mapped TaskInstance's own expanded values are merged over the task's params.
pub(super) fn render(
    lookups: &Arc<RenderLookups>,
    run: &ActiveRun,
    task: &TaskSpec,
    ti: Option<&crate::metastore::TaskInstance>,
    value: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    render_with(
        lookups,
        run,
        &task.task_id,
        ti,
        value,
        serde_json::Map::new(),
    )
}

/// [`render`] for any task id (empty for a DAG-level callback) with `extra` names
/// in the context.
pub(super) fn render_with(
    lookups: &Arc<RenderLookups>,
    run: &ActiveRun,
    task_id: &str,
    ti: Option<&crate::metastore::TaskInstance>,
    value: &serde_json::Value,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value, String> {
    let r = &run.run;
    let ctx = RenderContext {
        dag_id: r.dag_id.clone(),
        task_id: task_id.to_owned(),
        run_id: r.run_id.clone(),
        run_type: r.run_type.as_str().to_owned(),
        logical_date: r.logical_date,
        data_interval_start: r.data_interval.start,
        data_interval_end: r.data_interval.end,
        map_index: ti.and_then(|t| t.map_index_opt()),
        try_number: ti.map(|t| t.try_number).unwrap_or(1).max(1),
        conf: r.conf.clone(),
        dag_params: run.spec.params.clone(),
        extra,
    };
    let mut out =
        template::render_params(value, &ctx, lookups.clone()).map_err(|e| e.to_string())?;
    if let (Some(ti), serde_json::Value::Object(out_map)) = (ti, &mut out)
        && ti.map_index >= 0
        && let Some(serde_json::Value::Object(kwargs)) = &ti.rendered_params
    {
        for (k, v) in kwargs {
            out_map.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}
