//! Rendering task params with Jinja (minijinja) and Airflow's template context.
//!
//! Context names, as Airflow 3's task runner builds them
//! (`task-sdk/src/airflow/sdk/execution_time/task_runner.py`, `get_template_context`):
//!
//! | name | value |
//! |---|---|
//! | `ds`, `ds_nodash` | logical date (UTC) as `YYYY-MM-DD` / `YYYYMMDD` |
//! | `ts`, `ts_nodash`, `ts_nodash_with_tz` | `2026-01-01T00:00:00+00:00` / `20260101T000000` / `20260101T000000+0000` |
//! | `logical_date`, `data_interval_start`, `data_interval_end` | datetimes (below) |
//! | `run_id`, `map_index` (`-1` when unmapped), `task_instance_key_str` | strings / number |
//! | `dag_run` | `conf`, `run_id`, `run_type`, `dag_id`, `logical_date`, `data_interval_start`, `data_interval_end` |
//! | `params` | the DAG's params, overridden (and extended) by the run's `conf` |
//! | `ti`, `task_instance` | `task_id`, `dag_id`, `run_id`, `map_index`, `try_number`, `xcom_pull(task_ids=…, key=…, default=…)` |
//! | `var.value.NAME`, `var.json.NAME`, `var.value.get(NAME, default)` | Airflow Variables |
//! | `task.task_id`, `dag.dag_id` | ids |
//! | `macros.ds_add(ds, days)`, `macros.ds_format(ds, in_fmt, out_fmt)` | Airflow's date macros |
//!
//! Like Airflow, every date string is in UTC (Airflow's logical date is a UTC
//! datetime), so `ds` of a Berlin-midnight run is the previous day's date. A datetime
//! renders as Python's `isoformat()` and offers `year` … `microsecond`,
//! `strftime(fmt)`, `isoformat()`, `timestamp()`, `in_timezone(tz)` and
//! `add(days=, hours=, minutes=, seconds=)` / `subtract(…)` (pendulum's names).
//!
//! Rendering rules: every string in the params tree that contains `{{` or `{%` is
//! rendered, keys are not. A string that is exactly one expression (`"{{ expr }}"`,
//! whitespace around allowed) renders to the expression's *native* JSON value
//! (list, number, bool, object, null), so `expand = { message = "{{ params.regions }}" }`
//! expands over a list; any other template renders to a string. Undefined names are
//! errors that name the missing value (Airflow's default `StrictUndefined`).
//!
//! Templates come from tenants and run in the host, so each one is bounded: a fuel
//! budget (minijinja charges one unit per instruction and about one per 64 bytes of
//!
//! XCom and Variable lookups are answered while the template renders, through the
//! [`TemplateLookups`] the caller hands over (owned, since minijinja's objects live
//! as long as the values that hold them), so a lookup whose key is another lookup's
//! value needs nothing special. Each key is looked up at most once per call, however
//! many strings of the params tree ask for it.
//!
//! The parts: `render` (the engine, its limits and errors), `context` (the names
//! above), `datetime` (datetimes and `macros`), `lookups` (`ti.xcom_pull`, `var`).

mod context;
mod datetime;
mod lookups;
mod render;
#[cfg(test)]
mod tests;

use render::Renderer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// minijinja fuel for one template: one unit per instruction and about one per 64
/// bytes of data created (output, strings, lists, values returned by lookups). A
/// typical param template uses well under a hundred; this allows loops over thousands
/// of items or about 6 MB of data (room for [`MAX_RENDERED_BYTES`] plus working
/// space) and stops a runaway loop or allocation within milliseconds.
pub const FUEL_PER_TEMPLATE: u64 = 100_000;

/// Nesting depth of macro calls, includes and recursive loops. Real params need a
/// handful; the limit keeps a hostile template far away from the thread's stack end.
pub const RECURSION_LIMIT: usize = 64;

/// Bytes one template may render to (as text, or as the JSON of a native value).
/// Params are configuration, not bulk data: 4 MiB fits any sensible query or message
/// and an XCom passed through `{{ ti.xcom_pull(...) }}`, and caps what a loop can
/// produce.
pub const MAX_RENDERED_BYTES: usize = 4 << 20;

/// Data a template can ask for while rendering. `Send + Sync` because the template
/// objects that call it must be (minijinja requires it of every object).
pub trait TemplateLookups: Send + Sync {
    /// The XCom `key` of `task_id` in the current DagRun; for a mapped task, the list of
    /// its map indexes' values (as Airflow's `xcom_pull` of a mapped upstream).
    fn xcom_pull(&self, task_id: &str, key: &str) -> Option<Value>;
    /// The Variable `key` of the DAG's tenant.
    fn variable(&self, key: &str) -> Option<String>;
}

/// Lookups that find nothing: for rendering without a DagRun (tests, previews).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLookups;

impl TemplateLookups for NoLookups {
    fn xcom_pull(&self, _task_id: &str, _key: &str) -> Option<Value> {
        None
    }
    fn variable(&self, _key: &str) -> Option<String> {
        None
    }
}

/// The plain values a TaskInstance's templates see.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RenderContext {
    pub dag_id: String,
    pub task_id: String,
    pub run_id: String,
    /// `manual`, `scheduled`, `backfill` (Airflow's `DagRunType` values).
    pub run_type: String,
    pub logical_date: jiff::Timestamp,
    pub data_interval_start: jiff::Timestamp,
    pub data_interval_end: jiff::Timestamp,
    /// `None` for an unmapped task (Airflow's `-1`).
    pub map_index: Option<u32>,
    /// 1 on the first try.
    pub try_number: u32,
    /// The DagRun's `conf`.
    pub conf: Map<String, Value>,
    /// The DAG's `params` defaults.
    pub dag_params: Map<String, Value>,
    /// More top-level names, for callbacks (`reason`, `event`); they never shadow
    /// Airflow's own names above.
    pub extra: Map<String, Value>,
}

impl RenderContext {
    /// The effective `params`: the DAG's params, then every key of the run's conf on
    /// top (Airflow's `dag_run_conf_overrides_params = True` updates the params dict
    /// with the whole conf).
    pub fn params(&self) -> Map<String, Value> {
        let mut params = self.dag_params.clone();
        for (k, v) in &self.conf {
            params.insert(k.clone(), v.clone());
        }
        params
    }
}

/// Why rendering failed. `path` names the param (`params.url`, `params.items[2]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{path}: template syntax error: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: {message}")]
    Render { path: String, message: String },
    /// Airflow raises `KeyError: 'Variable NAME does not exist'`.
    #[error("{path}: Variable {key} does not exist")]
    VariableNotFound { path: String, key: String },
    #[error(
        "{path}: template exceeded its budget of work and memory (fuel {FUEL_PER_TEMPLATE}); is there an unbounded loop?"
    )]
    OutOfFuel { path: String },
    #[error("{path}: template output exceeds {MAX_RENDERED_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path}: rendered value is not representable as JSON: {message}")]
    NotJson { path: String, message: String },
}

/// Renders every string of `params` (objects and arrays are walked; keys are not
/// rendered). Paths in errors start at `params`.
///
/// XCom and Variable lookups go to `lookups` while rendering; each key is looked up
/// once per call and the answer reused by every string that asks again.
pub fn render_params(
    params: &Value,
    ctx: &RenderContext,
    lookups: Arc<dyn TemplateLookups>,
) -> Result<Value, TemplateError> {
    render_value_at(params, "params", ctx, lookups)
}

/// Like [`render_params`] with the root of error paths named `root` (e.g. `expand`).
pub fn render_value_at(
    value: &Value,
    root: &str,
    ctx: &RenderContext,
    lookups: Arc<dyn TemplateLookups>,
) -> Result<Value, TemplateError> {
    // Most params hold no template at all; they need no engine (a hot path: every
    // TaskInstance's params are rendered before it runs).
    if !render::contains_template(value) {
        return Ok(value.clone());
    }
    Renderer::new(ctx, lookups).walk(value, root)
}

/// Renders one string (same rules as a string inside [`render_params`]).
pub fn render_str(
    template: &str,
    ctx: &RenderContext,
    lookups: Arc<dyn TemplateLookups>,
) -> Result<Value, TemplateError> {
    Renderer::new(ctx, lookups).render_string(template, "template")
}
