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
//! data a template creates, so fuel bounds memory as well as time), a recursion limit
//! and a cap on the rendered size.

use crate::params_schema::is_template;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use minijinja::value::{Kwargs, Object, ObjectRepr, Value as MjValue, from_args};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

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

/// Render passes one template may take to resolve XCom and Variable lookups whose
/// keys depend on earlier lookups (see [`render_params`]).
const MAX_LOOKUP_PASSES: usize = 8;

/// Data a template can ask for while rendering.
pub trait TemplateLookups {
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
    pub logical_date: Timestamp,
    pub data_interval_start: Timestamp,
    pub data_interval_end: Timestamp,
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
/// XCom and Variable lookups go through `lookups`. minijinja objects must be
/// `'static`, so they cannot borrow `lookups`; instead a template is rendered, the
/// lookups it asked for and that are not cached yet are answered, and it is rendered
/// again with the answers (a lookup whose key depends on another lookup takes one more
/// pass). Each key is looked up once per call.
pub fn render_params(
    params: &Value,
    ctx: &RenderContext,
    lookups: &dyn TemplateLookups,
) -> Result<Value, TemplateError> {
    render_value_at(params, "params", ctx, lookups)
}

/// Like [`render_params`] with the root of error paths named `root` (e.g. `expand`).
pub fn render_value_at(
    value: &Value,
    root: &str,
    ctx: &RenderContext,
    lookups: &dyn TemplateLookups,
) -> Result<Value, TemplateError> {
    // Most params hold no template at all; they need no engine (a hot path: every
    // TaskInstance's params are rendered before it runs).
    if !contains_template(value) {
        return Ok(value.clone());
    }
    let renderer = Renderer::new(ctx, lookups);
    renderer.walk(value, root)
}

/// Whether any string in `value` is a template.
fn contains_template(value: &Value) -> bool {
    match value {
        Value::String(s) => is_template(s),
        Value::Array(a) => a.iter().any(contains_template),
        Value::Object(o) => o.values().any(contains_template),
        _ => false,
    }
}

/// Renders one string (same rules as a string inside [`render_params`]).
pub fn render_str(
    template: &str,
    ctx: &RenderContext,
    lookups: &dyn TemplateLookups,
) -> Result<Value, TemplateError> {
    Renderer::new(ctx, lookups).render_string(template, "template")
}

/// Lookups requested during a render pass and the answers so far.
#[derive(Debug, Default)]
struct LookupCache {
    xcoms: HashMap<(String, String), Option<Value>>,
    variables: HashMap<String, Option<String>>,
    pending_xcoms: BTreeSet<(String, String)>,
    pending_variables: BTreeSet<String>,
}

type SharedCache = Arc<Mutex<LookupCache>>;

fn lock(cache: &SharedCache) -> std::sync::MutexGuard<'_, LookupCache> {
    // A panic while holding this lock leaves plain data behind; keep using it.
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One rendering session: an environment, the context and the lookup cache shared by
/// every string of one params tree. `'a` covers the templates and the lookups.
struct Renderer<'a> {
    env: Environment<'a>,
    ctx_value: MjValue,
    cache: SharedCache,
    lookups: &'a dyn TemplateLookups,
}

/// What one render pass produced.
enum Pass {
    Done(Result<Value, TemplateError>),
    /// Lookups are pending: answer them and render again.
    NeedsLookups,
}

impl<'a> Renderer<'a> {
    fn new(ctx: &RenderContext, lookups: &'a dyn TemplateLookups) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL_PER_TEMPLATE));
        env.set_recursion_limit(RECURSION_LIMIT);
        // Jinja's default (and Airflow's) keeps a template's trailing newline.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        let cache = SharedCache::default();
        let ctx_value = context_value(ctx, &cache);
        Self {
            env,
            ctx_value,
            cache,
            lookups,
        }
    }

    fn walk(&self, value: &'a Value, path: &str) -> Result<Value, TemplateError> {
        Ok(match value {
            Value::String(s) if is_template(s) => self.render_string(s, path)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.walk(item, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.walk(v, &child_path(path, k))?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }

    fn render_string(&self, template: &'a str, path: &str) -> Result<Value, TemplateError> {
        for _ in 0..MAX_LOOKUP_PASSES {
            match self.pass(template, path) {
                Pass::Done(result) => return result,
                Pass::NeedsLookups => self.answer_pending(),
            }
        }
        Err(TemplateError::Render {
            path: path.to_owned(),
            message: format!(
                "more than {MAX_LOOKUP_PASSES} rounds of dependent XCom/Variable lookups"
            ),
        })
    }

    /// One render of `template`; lookups answered from the cache, misses recorded.
    fn pass(&self, template: &'a str, path: &str) -> Pass {
        let result = match single_expression(template) {
            Some(expr) => self.eval_native(expr, template, path),
            None => self.render_text(template, path),
        };
        let cache = lock(&self.cache);
        if cache.pending_xcoms.is_empty() && cache.pending_variables.is_empty() {
            Pass::Done(result)
        } else {
            // The pass saw placeholders; whatever it produced is discarded.
            Pass::NeedsLookups
        }
    }

    fn answer_pending(&self) {
        let (xcoms, variables) = {
            let mut cache = lock(&self.cache);
            (
                std::mem::take(&mut cache.pending_xcoms),
                std::mem::take(&mut cache.pending_variables),
            )
        };
        // Look up without holding the lock: the lookups may be slow.
        let xcoms: Vec<_> = xcoms
            .into_iter()
            .map(|(task, key)| {
                let v = self.lookups.xcom_pull(&task, &key);
                ((task, key), v)
            })
            .collect();
        let variables: Vec<_> = variables
            .into_iter()
            .map(|key| {
                let v = self.lookups.variable(&key);
                (key, v)
            })
            .collect();
        let mut cache = lock(&self.cache);
        cache.xcoms.extend(xcoms);
        cache.variables.extend(variables);
    }

    fn eval_native(
        &self,
        expr: &'a str,
        template: &'a str,
        path: &str,
    ) -> Result<Value, TemplateError> {
        let compiled = match self.env.compile_expression(expr) {
            Ok(c) => c,
            // Let the template parser report it, with the template's own positions.
            Err(_) => return self.render_text(template, path),
        };
        match compiled.eval(self.ctx_value.clone()) {
            // An undefined result renders as an error naming it (or as "" for a silent
            // undefined such as `x if false`): the template path says which.
            Ok(v) if v.is_undefined() => self.render_text(template, path),
            Ok(v) => {
                let json = serde_json::to_value(&v).map_err(|e| TemplateError::NotJson {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
                if json_size(&json) > MAX_RENDERED_BYTES {
                    return Err(TemplateError::TooLarge {
                        path: path.to_owned(),
                    });
                }
                Ok(json)
            }
            Err(e) => Err(convert_error(&e, path)),
        }
    }

    fn render_text(&self, template: &'a str, path: &str) -> Result<Value, TemplateError> {
        let tmpl = self
            .env
            .template_from_named_str(TEMPLATE_NAME, template)
            .map_err(|e| convert_error(&e, path))?;
        let mut out = CappedWriter::default();
        match tmpl.render_captured_to(self.ctx_value.clone(), &mut out) {
            Ok(_) => {}
            Err(_) if out.overflowed => {
                return Err(TemplateError::TooLarge {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(convert_error(&e, path)),
        }
        String::from_utf8(out.buf)
            .map(Value::String)
            .map_err(|e| TemplateError::NotJson {
                path: path.to_owned(),
                message: e.to_string(),
            })
    }
}

const TEMPLATE_NAME: &str = "<template>";

/// `{{ expr }}` with nothing around it (whitespace allowed) → `expr`.
fn single_expression(template: &str) -> Option<&str> {
    let inner = template.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    // Jinja whitespace control markers: `{{- x -}}`, `{{+ x +}}`.
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    let nested = ["{{", "}}", "{%", "%}", "{#", "#}"];
    if inner.trim().is_empty() || nested.iter().any(|d| inner.contains(d)) {
        // `{{ a }} and {{ b }}` also starts and ends with braces: not one expression.
        return None;
    }
    Some(inner.trim())
}

/// The length of `value`'s compact JSON text, without building it.
fn json_size(value: &Value) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0 += data.len();
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// A writer that stops at [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct CappedWriter {
    buf: Vec<u8>,
    overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("rendered output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn convert_error(e: &minijinja::Error, path: &str) -> TemplateError {
    let path = path.to_owned();
    let detail = e.detail().map(str::to_owned);
    let line = e
        .line()
        .filter(|&l| l > 1)
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default();
    match e.kind() {
        ErrorKind::SyntaxError => TemplateError::Syntax {
            path,
            message: format!("{}{line}", detail.unwrap_or_else(|| e.kind().to_string())),
        },
        ErrorKind::OutOfFuel => TemplateError::OutOfFuel { path },
        ErrorKind::UndefinedError => TemplateError::Render {
            path,
            message: format!(
                "{}{line}",
                detail.unwrap_or_else(|| "undefined value".to_owned())
            ),
        },
        kind => {
            // Found anywhere in the detail, in case minijinja adds context around it.
            let missing = detail
                .as_deref()
                .and_then(|d| Some(&d[d.find(VARIABLE_MISSING)? + VARIABLE_MISSING.len()..]));
            if let Some(key) = missing {
                return TemplateError::VariableNotFound {
                    path,
                    key: key.to_owned(),
                };
            }
            let message = match detail {
                Some(d) => format!("{kind}: {d}{line}"),
                None => format!("{kind}{line}"),
            };
            TemplateError::Render { path, message }
        }
    }
}

/// Prefix of the error detail a missing `var.value.NAME` raises; recognised by
/// [`convert_error`] to produce [`TemplateError::VariableNotFound`].
const VARIABLE_MISSING: &str = "\u{1}variable-missing:";

fn child_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_owned()))
    }
}

// ---------------------------------------------------------------------------------
// The context

fn iso(z: &Zoned) -> String {
    // Python's `isoformat()`: microseconds only when non-zero, offset as +HH:MM.
    let micros = z.subsec_nanosecond() / 1_000;
    let base = z.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let offset = z.strftime("%:z").to_string();
    if micros == 0 {
        format!("{base}{offset}")
    } else {
        format!("{base}.{micros:06}{offset}")
    }
}

fn utc(t: Timestamp) -> Zoned {
    t.to_zoned(TimeZone::UTC)
}

fn context_value(ctx: &RenderContext, cache: &SharedCache) -> MjValue {
    let logical = utc(ctx.logical_date);
    let ds = logical.strftime("%Y-%m-%d").to_string();
    let ds_nodash = ds.replace('-', "");
    let ts = iso(&logical);
    let ts_nodash = logical.strftime("%Y%m%dT%H%M%S").to_string();
    let ts_nodash_with_tz = ts.replace(['-', ':'], "");
    let map_index = ctx.map_index.map_or(-1, i64::from);
    let key_str = format!("{}__{}__{}", ctx.dag_id, ctx.task_id, ds_nodash);
    let date = |t: Timestamp| MjValue::from_object(DateTime(utc(t)));

    let ti = MjValue::from_object(TaskInstanceObject {
        task_id: ctx.task_id.clone(),
        dag_id: ctx.dag_id.clone(),
        run_id: ctx.run_id.clone(),
        map_index,
        try_number: ctx.try_number,
        cache: cache.clone(),
    });
    let dag_run = minijinja::context! {
        conf => MjValue::from(minijinja::value::Serde(&ctx.conf)),
        run_id => ctx.run_id.clone(),
        run_type => ctx.run_type.clone(),
        dag_id => ctx.dag_id.clone(),
        logical_date => date(ctx.logical_date),
        data_interval_start => date(ctx.data_interval_start),
        data_interval_end => date(ctx.data_interval_end),
    };
    let var = minijinja::context! {
        value => MjValue::from_object(VariableAccessor { json: false, cache: cache.clone() }),
        json => MjValue::from_object(VariableAccessor { json: true, cache: cache.clone() }),
    };
    let base = minijinja::context! {
        ds => ds,
        ds_nodash => ds_nodash,
        ts => ts,
        ts_nodash => ts_nodash,
        ts_nodash_with_tz => ts_nodash_with_tz,
        logical_date => date(ctx.logical_date),
        data_interval_start => date(ctx.data_interval_start),
        data_interval_end => date(ctx.data_interval_end),
        run_id => ctx.run_id.clone(),
        map_index => map_index,
        task_instance_key_str => key_str,
        dag_run => dag_run,
        params => MjValue::from(minijinja::value::Serde(ctx.params())),
        ti => ti.clone(),
        task_instance => ti,
        var => var,
        task => minijinja::context! { task_id => ctx.task_id.clone(), dag_id => ctx.dag_id.clone() },
        dag => minijinja::context! { dag_id => ctx.dag_id.clone() },
        macros => MjValue::from_object(Macros),
    };
    if ctx.extra.is_empty() {
        base
    } else {
        // The first context given wins on a name both have.
        minijinja::context! { ..base, ..MjValue::from(minijinja::value::Serde(&ctx.extra)) }
    }
}

fn invalid(msg: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// `ti` / `task_instance`.
#[derive(Debug)]
struct TaskInstanceObject {
    task_id: String,
    dag_id: String,
    run_id: String,
    map_index: i64,
    try_number: u32,
    cache: SharedCache,
}

impl TaskInstanceObject {
    /// One cached XCom, or `none` and a pending lookup.
    fn pull_one(&self, task_id: &str, key: &str) -> Option<Value> {
        let mut cache = lock(&self.cache);
        let k = (task_id.to_owned(), key.to_owned());
        match cache.xcoms.get(&k) {
            Some(v) => v.clone(),
            None => {
                cache.pending_xcoms.insert(k);
                None
            }
        }
    }

    fn xcom_pull(&self, args: &[MjValue]) -> Result<MjValue, minijinja::Error> {
        let (positional, kwargs): (Option<MjValue>, Kwargs) = from_args(args)?;
        let task_ids: Option<MjValue> = match positional {
            Some(v) => Some(v),
            None => kwargs.get::<Option<MjValue>>("task_ids")?,
        };
        let key: Option<String> = kwargs.get("key")?;
        let key = key.unwrap_or_else(|| "return_value".to_owned());
        let default: Option<MjValue> = kwargs.get("default")?;
        let dag_id: Option<String> = kwargs.get("dag_id")?;
        kwargs.assert_all_used()?;
        if dag_id.is_some_and(|d| d != self.dag_id) {
            return Err(invalid("xcom_pull from another DAG is not supported"));
        }
        let to_value = |v: Option<Value>| match v {
            Some(v) => MjValue::from(minijinja::value::Serde(v)),
            None => default.clone().unwrap_or(MjValue::from(())),
        };
        match task_ids {
            // Airflow 3: no task_ids means the calling task.
            None => Ok(to_value(self.pull_one(&self.task_id, &key))),
            Some(v) if v.is_none() || v.is_undefined() => {
                Ok(to_value(self.pull_one(&self.task_id, &key)))
            }
            Some(v) if v.as_str().is_some() => Ok(to_value(
                self.pull_one(v.as_str().unwrap_or_default(), &key),
            )),
            Some(v) => {
                // A list of task ids: a list of values, `None` for a missing one.
                let mut out = Vec::new();
                for item in v.try_iter()? {
                    let Some(task_id) = item.as_str() else {
                        return Err(invalid(
                            "xcom_pull task_ids must be a string or a list of strings",
                        ));
                    };
                    out.push(match self.pull_one(task_id, &key) {
                        Some(v) => MjValue::from(minijinja::value::Serde(v)),
                        None => MjValue::from(()),
                    });
                }
                Ok(MjValue::from(out))
            }
        }
    }
}

impl Object for TaskInstanceObject {
    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        Some(match key.as_str()? {
            "task_id" => MjValue::from(self.task_id.clone()),
            "dag_id" => MjValue::from(self.dag_id.clone()),
            "run_id" => MjValue::from(self.run_id.clone()),
            "map_index" => MjValue::from(self.map_index),
            "try_number" => MjValue::from(self.try_number),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[MjValue],
    ) -> Result<MjValue, minijinja::Error> {
        match method {
            "xcom_pull" => self.xcom_pull(args),
            _ => Err(minijinja::Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `var.value` and `var.json`.
#[derive(Debug)]
struct VariableAccessor {
    json: bool,
    cache: SharedCache,
}

impl VariableAccessor {
    /// `Ok(Some)` found, `Ok(None)` missing, `Err(())` pending lookup.
    fn lookup(&self, key: &str) -> Result<Option<MjValue>, minijinja::Error> {
        let raw = {
            let mut cache = lock(&self.cache);
            match cache.variables.get(key) {
                Some(v) => v.clone(),
                None => {
                    cache.pending_variables.insert(key.to_owned());
                    // A placeholder for this pass; the caller renders again.
                    return Ok(Some(MjValue::from(())));
                }
            }
        };
        let Some(raw) = raw else { return Ok(None) };
        if !self.json {
            return Ok(Some(MjValue::from(raw)));
        }
        serde_json::from_str::<Value>(&raw)
            .map(|v| Some(MjValue::from(minijinja::value::Serde(v))))
            .map_err(|e| invalid(format!("Variable {key} is not valid JSON: {e}")))
    }
}

impl Object for VariableAccessor {
    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let name = key.as_str()?;
        Some(match self.lookup(name) {
            Ok(Some(v)) => v,
            Ok(None) => MjValue::from(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("{VARIABLE_MISSING}{name}"),
            )),
            Err(e) => MjValue::from(e),
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[MjValue],
    ) -> Result<MjValue, minijinja::Error> {
        if method != "get" {
            return Err(minijinja::Error::from(ErrorKind::UnknownMethod));
        }
        // Airflow's `var.value.get(name, default_var=None)`.
        let (name, default, kwargs): (String, Option<MjValue>, Kwargs) = from_args(args)?;
        let default = match default {
            Some(d) => Some(d),
            None => kwargs.get::<Option<MjValue>>("default_var")?,
        };
        kwargs.assert_all_used()?;
        Ok(self
            .lookup(&name)?
            .unwrap_or_else(|| default.unwrap_or(MjValue::from(()))))
    }
}

/// A datetime in the template context (Airflow passes pendulum datetimes).
#[derive(Debug, Clone)]
struct DateTime(Zoned);

impl DateTime {
    fn shifted(&self, kwargs: &Kwargs, sign: i64) -> Result<MjValue, minijinja::Error> {
        let mut secs: i64 = 0;
        for (unit, size) in [
            ("weeks", 604_800),
            ("days", 86_400),
            ("hours", 3_600),
            ("minutes", 60),
            ("seconds", 1),
        ] {
            let n: Option<i64> = kwargs.get(unit)?;
            secs = n
                .unwrap_or(0)
                .checked_mul(size)
                .and_then(|s| secs.checked_add(s))
                .ok_or_else(|| invalid("date arithmetic overflow"))?;
        }
        kwargs.assert_all_used()?;
        let moved = self
            .0
            .checked_add(SignedDuration::from_secs(secs * sign))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(MjValue::from_object(DateTime(moved)))
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&iso(&self.0))
    }
}

impl Object for DateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let z = &self.0;
        Some(match key.as_str()? {
            "year" => MjValue::from(z.year()),
            "month" => MjValue::from(z.month()),
            "day" => MjValue::from(z.day()),
            "hour" => MjValue::from(z.hour()),
            "minute" => MjValue::from(z.minute()),
            "second" => MjValue::from(z.second()),
            "microsecond" => MjValue::from(z.subsec_nanosecond() / 1_000),
            "timezone_name" | "tz" => MjValue::from(z.time_zone().iana_name().unwrap_or("UTC")),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[MjValue],
    ) -> Result<MjValue, minijinja::Error> {
        match method {
            "strftime" => {
                let (fmt,): (String,) = from_args(args)?;
                jiff::fmt::strtime::format(fmt.as_str(), &self.0)
                    .map(MjValue::from)
                    .map_err(|e| invalid(format!("strftime: {e}")))
            }
            "isoformat" => {
                let () = from_args(args)?;
                Ok(MjValue::from(iso(&self.0)))
            }
            "timestamp" => {
                let () = from_args(args)?;
                Ok(MjValue::from(
                    self.0.timestamp().as_millisecond() as f64 / 1000.0,
                ))
            }
            "date" | "to_date_string" => {
                let () = from_args(args)?;
                Ok(MjValue::from(self.0.strftime("%Y-%m-%d").to_string()))
            }
            "in_timezone" | "in_tz" | "astimezone" => {
                let (name,): (String,) = from_args(args)?;
                let tz = TimeZone::get(&name)
                    .map_err(|e| invalid(format!("unknown time zone `{name}`: {e}")))?;
                Ok(MjValue::from_object(DateTime(self.0.with_time_zone(tz))))
            }
            "add" => {
                let (kwargs,): (Kwargs,) = from_args(args)?;
                self.shifted(&kwargs, 1)
            }
            "subtract" => {
                let (kwargs,): (Kwargs,) = from_args(args)?;
                self.shifted(&kwargs, -1)
            }
            _ => Err(minijinja::Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }

    fn custom_cmp(
        self: &Arc<Self>,
        other: &minijinja::value::DynObject,
    ) -> Option<std::cmp::Ordering> {
        let other = other.downcast_ref::<Self>()?;
        Some(self.0.timestamp().cmp(&other.0.timestamp()))
    }
}

/// `macros`: Airflow's date helpers.
#[derive(Debug)]
struct Macros;

impl Object for Macros {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[MjValue],
    ) -> Result<MjValue, minijinja::Error> {
        match method {
            // `ds_add('2015-01-01', 5)` → '2015-01-06'
            "ds_add" => {
                let (ds, days): (String, i64) = from_args(args)?;
                let date: jiff::civil::Date = ds.parse().map_err(|e| {
                    invalid(format!("ds_add: `{ds}` is not a YYYY-MM-DD date: {e}"))
                })?;
                let moved = date
                    .checked_add(
                        jiff::Span::new()
                            .try_days(days)
                            .map_err(|e| invalid(e.to_string()))?,
                    )
                    .map_err(|e| invalid(e.to_string()))?;
                Ok(MjValue::from(moved.to_string()))
            }
            // `ds_format('2015-01-01', '%Y-%m-%d', '%m-%d-%y')` → '01-01-15'
            "ds_format" => {
                let (ds, input, output): (String, String, String) = from_args(args)?;
                let parsed = jiff::fmt::strtime::BrokenDownTime::parse(input.as_str(), ds.as_str())
                    .map_err(|e| invalid(format!("ds_format: {e}")))?;
                parsed
                    .to_string(output.as_str())
                    .map(MjValue::from)
                    .map_err(|e| invalid(format!("ds_format: {e}")))
            }
            _ => Err(minijinja::Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::RefCell;

    /// Lookups backed by maps, counting every call.
    #[derive(Default)]
    struct Fake {
        xcoms: HashMap<(String, String), Value>,
        variables: HashMap<String, String>,
        calls: RefCell<Vec<String>>,
    }

    impl Fake {
        fn xcom(mut self, task: &str, key: &str, value: Value) -> Self {
            self.xcoms.insert((task.into(), key.into()), value);
            self
        }
        fn var(mut self, key: &str, value: &str) -> Self {
            self.variables.insert(key.into(), value.into());
            self
        }
    }

    impl TemplateLookups for Fake {
        fn xcom_pull(&self, task_id: &str, key: &str) -> Option<Value> {
            self.calls
                .borrow_mut()
                .push(format!("xcom {task_id}/{key}"));
            self.xcoms.get(&(task_id.into(), key.into())).cloned()
        }
        fn variable(&self, key: &str) -> Option<String> {
            self.calls.borrow_mut().push(format!("var {key}"));
            self.variables.get(key).cloned()
        }
    }

    fn ctx() -> RenderContext {
        RenderContext {
            dag_id: "etl".into(),
            task_id: "load".into(),
            run_id: "scheduled__2026-01-02T00:00:00+00:00".into(),
            run_type: "scheduled".into(),
            logical_date: "2026-01-02T00:00:00Z".parse().unwrap(),
            data_interval_start: "2026-01-02T00:00:00Z".parse().unwrap(),
            data_interval_end: "2026-01-03T00:00:00Z".parse().unwrap(),
            map_index: None,
            try_number: 1,
            conf: Map::new(),
            dag_params: json!({"region": "eu", "regions": ["eu", "us"], "n": 3})
                .as_object()
                .cloned()
                .unwrap(),
            extra: Map::new(),
        }
    }

    #[test]
    fn extra_names_are_added_but_never_shadow_builtins() {
        let mut c = ctx();
        c.extra.insert("reason".into(), json!("boom"));
        c.extra.insert("ds".into(), json!("not a date"));
        let out = render_params(&json!({"m": "{{ reason }} on {{ ds }}"}), &c, &NoLookups).unwrap();
        assert_eq!(out, json!({"m": "boom on 2026-01-02"}));
    }

    fn render(template: &str) -> Result<Value, TemplateError> {
        render_str(template, &ctx(), &NoLookups)
    }

    fn text(template: &str) -> String {
        match render(template).unwrap() {
            Value::String(s) => s,
            other => panic!("{template} rendered to {other}"),
        }
    }

    #[test]
    fn date_context_names() {
        assert_eq!(text("{{ ds }}"), "2026-01-02");
        assert_eq!(text("{{ ds_nodash }}"), "20260102");
        assert_eq!(text("{{ ts }}"), "2026-01-02T00:00:00+00:00");
        assert_eq!(text("{{ ts_nodash }}"), "20260102T000000");
        assert_eq!(text("{{ ts_nodash_with_tz }}"), "20260102T000000+0000");
        assert_eq!(text("{{ logical_date }}"), "2026-01-02T00:00:00+00:00");
        assert_eq!(
            text("{{ data_interval_start }}"),
            "2026-01-02T00:00:00+00:00"
        );
        assert_eq!(text("{{ data_interval_end }}"), "2026-01-03T00:00:00+00:00");
        assert_eq!(text("at {{ data_interval_end.hour }}h"), "at 0h");
    }

    #[test]
    fn run_and_task_context_names() {
        assert_eq!(text("{{ run_id }}"), "scheduled__2026-01-02T00:00:00+00:00");
        assert_eq!(
            text("{{ dag_run.run_id }}"),
            "scheduled__2026-01-02T00:00:00+00:00"
        );
        assert_eq!(
            text("{{ dag_run.logical_date }}"),
            "2026-01-02T00:00:00+00:00"
        );
        assert_eq!(text("{{ dag_run.run_type }}"), "scheduled");
        assert_eq!(render("{{ dag_run.conf }}").unwrap(), json!({}));
        assert_eq!(text("{{ task.task_id }}/{{ dag.dag_id }}"), "load/etl");
        assert_eq!(
            text("{{ ti.task_id }} {{ ti.dag_id }} {{ ti.try_number }}"),
            "load etl 1"
        );
        assert_eq!(
            text("{{ task_instance.run_id }}"),
            "scheduled__2026-01-02T00:00:00+00:00"
        );
        assert_eq!(render("{{ map_index }}").unwrap(), json!(-1));
        assert_eq!(render("{{ ti.map_index }}").unwrap(), json!(-1));
        let mapped = RenderContext {
            map_index: Some(2),
            ..ctx()
        };
        assert_eq!(
            render_str("{{ map_index }}", &mapped, &NoLookups).unwrap(),
            json!(2)
        );
        assert_eq!(text("{{ task_instance_key_str }}"), "etl__load__20260102");
        assert_eq!(text("{{ params.region }}"), "eu");
    }

    #[test]
    fn datetime_methods_and_macros() {
        assert_eq!(
            text("{{ logical_date.strftime('%d/%m/%Y') }}"),
            "02/01/2026"
        );
        assert_eq!(
            text("{{ logical_date.in_timezone('Europe/Berlin') }}"),
            "2026-01-02T01:00:00+01:00"
        );
        assert_eq!(
            text("{{ logical_date.add(days=1, hours=2).isoformat() }}"),
            "2026-01-03T02:00:00+00:00"
        );
        assert_eq!(
            text("{{ logical_date.subtract(weeks=1).date() }}"),
            "2025-12-26"
        );
        assert_eq!(
            render("{{ data_interval_end > data_interval_start }}").unwrap(),
            json!(true)
        );
        assert_eq!(text("{{ macros.ds_add(ds, 5) }}"), "2026-01-07");
        assert_eq!(text("{{ macros.ds_add(ds, -2) }}"), "2025-12-31");
        assert_eq!(
            text("{{ macros.ds_format(ds, '%Y-%m-%d', '%m-%d-%y') }}"),
            "01-02-26"
        );
    }

    #[test]
    fn single_expressions_render_natively() {
        assert_eq!(render("{{ params.regions }}").unwrap(), json!(["eu", "us"]));
        assert_eq!(render("  {{ params.n }} ").unwrap(), json!(3));
        assert_eq!(render("{{- params.n * 2 -}}").unwrap(), json!(6));
        assert_eq!(render("{{ params.n > 2 }}").unwrap(), json!(true));
        assert_eq!(
            render("{{ {'a': [1, none]} }}").unwrap(),
            json!({"a": [1, null]})
        );
        assert_eq!(render("{{ none }}").unwrap(), Value::Null);
        assert_eq!(render("{{ '3' }}").unwrap(), json!("3"));
        // Anything else is a string.
        assert_eq!(render("{{ params.n }}s").unwrap(), json!("3s"));
        assert_eq!(render("{{ params.n }}{{ params.n }}").unwrap(), json!("33"));
        assert_eq!(
            render("{% for r in params.regions %}{{ r }};{% endfor %}").unwrap(),
            json!("eu;us;")
        );
        assert_eq!(
            render("{{ params.regions }} and more").unwrap(),
            json!("['eu', 'us'] and more")
        );
        assert_eq!(single_expression("{{ a }} and {{ b }}"), None);
        assert_eq!(single_expression("{{ a }}"), Some("a"));
    }

    #[test]
    fn conf_overrides_and_extends_params() {
        let mut c = ctx();
        c.conf = json!({"region": "us", "extra": true})
            .as_object()
            .cloned()
            .unwrap();
        let out = render_params(
            &json!({"r": "{{ params.region }}", "e": "{{ params.extra }}", "n": "{{ params.n }}",
                    "conf": "{{ dag_run.conf.region }}"}),
            &c,
            &NoLookups,
        )
        .unwrap();
        assert_eq!(out, json!({"r": "us", "e": true, "n": 3, "conf": "us"}));
    }

    #[test]
    fn walks_objects_and_arrays_but_not_keys() {
        let out = render_params(
            &json!({"{{ ds }}": ["{{ ds }}", 1, {"deep": "x{{ ds_nodash }}"}], "plain": "no {template}"}),
            &ctx(),
            &NoLookups,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"{{ ds }}": ["2026-01-02", 1, {"deep": "x20260102"}], "plain": "no {template}"})
        );
    }

    #[test]
    fn xcom_pull_single_list_key_default() {
        let fake = Fake::default()
            .xcom("extract", "return_value", json!({"rows": 10}))
            .xcom("other", "return_value", json!([1, 2]))
            .xcom("extract", "count", json!(7));
        let c = ctx();
        let r = |t: &str| render_str(t, &c, &fake).unwrap();
        assert_eq!(
            r("{{ ti.xcom_pull(task_ids='extract') }}"),
            json!({"rows": 10})
        );
        assert_eq!(r("{{ ti.xcom_pull('extract') }}"), json!({"rows": 10}));
        assert_eq!(
            r("{{ ti.xcom_pull(task_ids='extract', key='count') }}"),
            json!(7)
        );
        assert_eq!(
            r("{{ ti.xcom_pull(task_ids=['extract', 'other', 'missing']) }}"),
            json!([{"rows": 10}, [1, 2], null])
        );
        assert_eq!(r("{{ ti.xcom_pull(task_ids='missing') }}"), Value::Null);
        assert_eq!(
            r("{{ ti.xcom_pull(task_ids='missing', default=5) }}"),
            json!(5)
        );
        assert_eq!(
            r("{{ ti.xcom_pull(task_ids='extract')['rows'] }} rows for {{ ds }}"),
            json!("10 rows for 2026-01-02")
        );
        assert_eq!(
            r("got {{ ti.xcom_pull(task_ids='missing') }}"),
            json!("got None")
        );
        let err = render_str("{{ ti.xcom_pull(task_ids='a', bogus=1) }}", &c, &fake).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn each_lookup_happens_once_per_call() {
        let fake = Fake::default()
            .xcom("a", "return_value", json!("k"))
            .var("k", "v");
        let out = render_params(
            &json!({"x": "{{ ti.xcom_pull('a') }}", "y": "{{ ti.xcom_pull('a') }}-{{ var.value.k }}",
                    // A lookup whose key comes from another lookup.
                    "z": "{{ var.value[ti.xcom_pull('a')] }}"}),
            &ctx(),
            &fake,
        )
        .unwrap();
        assert_eq!(out, json!({"x": "k", "y": "k-v", "z": "v"}));
        let mut calls = fake.calls.borrow().clone();
        calls.sort();
        assert_eq!(calls, ["var k", "xcom a/return_value"]);
    }

    #[test]
    fn variables() {
        let fake = Fake::default()
            .var("bucket", "s3://b")
            .var("cfg", r#"{"size": 3}"#)
            .var("bad", "{");
        let c = ctx();
        let r = |t: &str| render_str(t, &c, &fake);
        assert_eq!(r("{{ var.value.bucket }}/x").unwrap(), json!("s3://b/x"));
        assert_eq!(r("{{ var.json.cfg.size }}").unwrap(), json!(3));
        assert_eq!(
            r("{{ var.value.get('nope', 'fallback') }}").unwrap(),
            json!("fallback")
        );
        assert_eq!(r("{{ var.value.get('bucket') }}").unwrap(), json!("s3://b"));
        assert_eq!(
            r("{{ var.value.nope }}").unwrap_err(),
            TemplateError::VariableNotFound {
                path: "template".into(),
                key: "nope".into()
            }
        );
        assert_eq!(
            r("x {{ var.json.nope }}").unwrap_err().to_string(),
            "template: Variable nope does not exist"
        );
        assert!(
            r("{{ var.json.bad }}")
                .unwrap_err()
                .to_string()
                .contains("Variable bad is not valid JSON")
        );
    }

    #[test]
    fn undefined_names_are_named() {
        let err =
            render_params(&json!({"msg": "{{ params.regoin }}"}), &ctx(), &NoLookups).unwrap_err();
        assert_eq!(err.to_string(), "params.msg: `params.regoin` is undefined");
        let err =
            render_params(&json!({"a": ["ok", "hi {{ nope }}"]}), &ctx(), &NoLookups).unwrap_err();
        assert_eq!(err.to_string(), "params.a[1]: `nope` is undefined");
        // A silent undefined (an `if` without `else`) renders as nothing.
        assert_eq!(render("{{ 1 if false }}").unwrap(), json!(""));
    }

    #[test]
    fn syntax_errors() {
        let err = render("{{ ds ").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("template: template syntax error: "),
            "{err}"
        );
        let err = render("line one\n{% if %}").unwrap_err();
        assert!(err.to_string().ends_with("(line 2)"), "{err}");
    }

    #[test]
    fn untrusted_templates_are_bounded() {
        assert_eq!(
            render(
                "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
            ),
            Err(TemplateError::OutOfFuel {
                path: "template".into()
            })
        );
        // Compared with matches!: a failure must not print megabytes.
        // Output is paid for in fuel, so a big loop stops on whichever limit comes first.
        assert!(matches!(
            render("{% for i in range(100) %}{{ 'x' * 50000 }}{% endfor %}"),
            Err(TemplateError::TooLarge { .. } | TemplateError::OutOfFuel { .. })
        ));
        // A native value over the cap, e.g. a huge XCom passed through.
        let big = Fake::default().xcom("big", "return_value", json!("x".repeat(5_000_000)));
        assert!(matches!(
            render_str("{{ ti.xcom_pull('big') }}", &ctx(), &big),
            Err(TemplateError::TooLarge { .. })
        ));
        // Memory is bounded too: doubling a string runs out of fuel, not of RAM.
        assert!(matches!(
            render(
                "{% set ns = namespace(s='x' * 1000) %}{% for i in range(40) %}\
                 {% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
            ),
            Err(TemplateError::OutOfFuel { .. })
        ));
        let err = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").unwrap_err();
        assert!(err.to_string().contains("recursion"), "{err}");
    }
}
