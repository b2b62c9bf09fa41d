//! The DAG file format and its parser: the raw TOML tables (with every key a
//! DAG file may use, so a typo is an error), and [`parse_dag_file`], which turns
//! them into a validated [`DagSpec`]. The parser's steps live beside it: `build`
//! (the DAG and its tasks in dependency order), `task` (one task, its mapping),
//! `options` (task options, typed params, callbacks).

use super::*;

mod build;
mod options;
mod task;

/// Declares a TOML table type with the task options shared by `[defaults]` and
/// `[tasks.<id>]` (serde cannot combine `flatten` with `deny_unknown_fields`).
macro_rules! with_task_options {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($field: $ty,)*
            retries: Option<Spanned<u32>>,
            retry_delay: Option<Spanned<toml::Value>>,
            retry_exponential_backoff: Option<bool>,
            max_retry_delay: Option<Spanned<toml::Value>>,
            execution_timeout: Option<Spanned<toml::Value>>,
            pool: Option<Spanned<String>>,
            pool_slots: Option<Spanned<u32>>,
            priority_weight: Option<i32>,
            weight_rule: Option<Spanned<String>>,
            queue: Option<Spanned<String>>,
            trigger_rule: Option<Spanned<String>>,
            depends_on_past: Option<bool>,
            wait_for_downstream: Option<bool>,
            max_active_tis_per_dag: Option<Spanned<u32>>,
            allow_hosts: Option<Spanned<Vec<Spanned<String>>>>,
            memory_limit: Option<Spanned<toml::Value>>,
            max_active_tis_per_dagrun: Option<Spanned<u32>>,
            timeout: Option<Spanned<toml::Value>>,
            soft_fail: Option<bool>,
            on_failure: Option<Spanned<toml::Value>>,
            on_success: Option<Spanned<toml::Value>>,
            on_retry: Option<Spanned<toml::Value>>,
        }
    };
}

with_task_options! {
    /// `[defaults]`: Airflow's `default_args`.
    struct RawDefaults {}
}

with_task_options! {
    /// `[tasks.<id>]`.
    struct RawTask {
        operator: Spanned<String>,
        params: Option<Spanned<toml::Table>>,
        expand: Option<Spanned<toml::Table>>,
        upstream: Option<Spanned<Vec<Spanned<String>>>>,
        doc: Option<String>,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDag {
    id: Option<Spanned<String>>,
    description: Option<String>,
    doc: Option<String>,
    schedule: Option<Spanned<String>>,
    start_date: Option<Spanned<toml::Value>>,
    end_date: Option<Spanned<toml::Value>>,
    timezone: Option<Spanned<String>>,
    catchup: Option<Spanned<bool>>,
    max_active_runs: Option<Spanned<u32>>,
    max_active_tasks: Option<Spanned<u32>>,
    dagrun_timeout: Option<Spanned<toml::Value>>,
    max_consecutive_failed_dag_runs: Option<u32>,
    tags: Option<Vec<String>>,
    owner: Option<String>,
    params: Option<Spanned<toml::Table>>,
    on_success: Option<Spanned<toml::Value>>,
    on_failure: Option<Spanned<toml::Value>>,
    defaults: Option<RawDefaults>,
    tasks: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawTask>>>>,
}

/// The option fields of a `[defaults]` or `[tasks.<id>]` table, borrowed.
struct OptionFields<'a> {
    retries: Option<&'a Spanned<u32>>,
    retry_delay: Option<&'a Spanned<toml::Value>>,
    retry_exponential_backoff: Option<bool>,
    max_retry_delay: Option<&'a Spanned<toml::Value>>,
    execution_timeout: Option<&'a Spanned<toml::Value>>,
    pool: Option<&'a Spanned<String>>,
    pool_slots: Option<&'a Spanned<u32>>,
    priority_weight: Option<i32>,
    weight_rule: Option<&'a Spanned<String>>,
    queue: Option<&'a Spanned<String>>,
    trigger_rule: Option<&'a Spanned<String>>,
    depends_on_past: Option<bool>,
    wait_for_downstream: Option<bool>,
    max_active_tis_per_dag: Option<&'a Spanned<u32>>,
    allow_hosts: Option<&'a Spanned<Vec<Spanned<String>>>>,
    memory_limit: Option<&'a Spanned<toml::Value>>,
    max_active_tis_per_dagrun: Option<&'a Spanned<u32>>,
    timeout: Option<&'a Spanned<toml::Value>>,
    soft_fail: Option<bool>,
    on_failure: Option<&'a Spanned<toml::Value>>,
    on_success: Option<&'a Spanned<toml::Value>>,
    on_retry: Option<&'a Spanned<toml::Value>>,
}

macro_rules! option_fields {
    ($t:ty) => {
        impl $t {
            fn options(&self) -> OptionFields<'_> {
                OptionFields {
                    retries: self.retries.as_ref(),
                    retry_delay: self.retry_delay.as_ref(),
                    retry_exponential_backoff: self.retry_exponential_backoff,
                    max_retry_delay: self.max_retry_delay.as_ref(),
                    execution_timeout: self.execution_timeout.as_ref(),
                    pool: self.pool.as_ref(),
                    pool_slots: self.pool_slots.as_ref(),
                    priority_weight: self.priority_weight,
                    weight_rule: self.weight_rule.as_ref(),
                    queue: self.queue.as_ref(),
                    trigger_rule: self.trigger_rule.as_ref(),
                    depends_on_past: self.depends_on_past,
                    wait_for_downstream: self.wait_for_downstream,
                    max_active_tis_per_dag: self.max_active_tis_per_dag.as_ref(),
                    allow_hosts: self.allow_hosts.as_ref(),
                    memory_limit: self.memory_limit.as_ref(),
                    max_active_tis_per_dagrun: self.max_active_tis_per_dagrun.as_ref(),
                    timeout: self.timeout.as_ref(),
                    soft_fail: self.soft_fail,
                    on_failure: self.on_failure.as_ref(),
                    on_success: self.on_success.as_ref(),
                    on_retry: self.on_retry.as_ref(),
                }
            }
        }
    };
}
option_fields!(RawDefaults);
option_fields!(RawTask);

/// Validated task options; `None` = not set at this level.
#[derive(Debug, Clone, Default)]
struct TaskOptions {
    retries: Option<u32>,
    retry_delay: Option<Duration>,
    retry_exponential_backoff: Option<bool>,
    max_retry_delay: Option<Duration>,
    execution_timeout: Option<Duration>,
    pool: Option<String>,
    pool_slots: Option<u32>,
    priority_weight: Option<i32>,
    weight_rule: Option<WeightRule>,
    queue: Option<String>,
    trigger_rule: Option<TriggerRule>,
    depends_on_past: Option<bool>,
    wait_for_downstream: Option<bool>,
    max_active_tis_per_dag: Option<u32>,
    allow_hosts: Option<Vec<String>>,
    memory_limit: Option<u64>,
    max_active_tis_per_dagrun: Option<u32>,
    timeout: Option<Duration>,
    soft_fail: Option<bool>,
    on_failure: Option<Vec<CallbackSpec>>,
    on_success: Option<Vec<CallbackSpec>>,
    on_retry: Option<Vec<CallbackSpec>>,
}

impl TaskOptions {
    /// These options, falling back to `defaults` for anything unset.
    fn or(self, defaults: &TaskOptions) -> TaskOptions {
        let d = defaults.clone();
        TaskOptions {
            retries: self.retries.or(d.retries),
            retry_delay: self.retry_delay.or(d.retry_delay),
            retry_exponential_backoff: self
                .retry_exponential_backoff
                .or(d.retry_exponential_backoff),
            max_retry_delay: self.max_retry_delay.or(d.max_retry_delay),
            execution_timeout: self.execution_timeout.or(d.execution_timeout),
            pool: self.pool.or(d.pool),
            pool_slots: self.pool_slots.or(d.pool_slots),
            priority_weight: self.priority_weight.or(d.priority_weight),
            weight_rule: self.weight_rule.or(d.weight_rule),
            queue: self.queue.or(d.queue),
            trigger_rule: self.trigger_rule.or(d.trigger_rule),
            depends_on_past: self.depends_on_past.or(d.depends_on_past),
            wait_for_downstream: self.wait_for_downstream.or(d.wait_for_downstream),
            max_active_tis_per_dag: self.max_active_tis_per_dag.or(d.max_active_tis_per_dag),
            allow_hosts: self.allow_hosts.or(d.allow_hosts),
            memory_limit: self.memory_limit.or(d.memory_limit),
            max_active_tis_per_dagrun: self
                .max_active_tis_per_dagrun
                .or(d.max_active_tis_per_dagrun),
            timeout: self.timeout.or(d.timeout),
            soft_fail: self.soft_fail.or(d.soft_fail),
            on_failure: self.on_failure.or(d.on_failure),
            on_success: self.on_success.or(d.on_success),
            on_retry: self.on_retry.or(d.on_retry),
        }
    }
}

/// Parses and validates one DAG file. `fileloc` is its path relative to the DAGs
/// folder; the file stem is the default `dag_id`.
pub fn parse_dag_file(
    tenant: &str,
    fileloc: &str,
    source: &str,
    catalog: &dyn OperatorCatalog,
) -> std::result::Result<DagSpec, ImportError> {
    let p = Parser { fileloc, source };
    let raw: RawDag = toml::from_str(source).map_err(|e| p.toml_error(&e))?;
    p.build(tenant, raw, catalog)
}

/// Error construction and conversions for one file.
struct Parser<'a> {
    fileloc: &'a str,
    source: &'a str,
}

impl Parser<'_> {
    pub(super) fn error(
        &self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> ImportError {
        let (line, column) = match span {
            Some(span) => {
                let (l, c) = line_col(self.source, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ImportError {
            filename: self.fileloc.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    pub(super) fn at<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> ImportError {
        self.error(Some(spanned.span()), message)
    }

    pub(super) fn toml_error(&self, e: &toml::de::Error) -> ImportError {
        let mut message = e.message().trim().to_owned();
        if let Some(improved) = improve_unknown_field(&message) {
            message = improved;
        } else if let Some(key) = e.span().and_then(|s| key_on_line(self.source, s.start)) {
            // toml names the wrong type, not the key: add it from the source line.
            if !message.contains(&format!("`{key}`")) {
                message = format!("`{key}`: {message}");
            }
        }
        self.error(e.span(), message)
    }

    /// A date (midnight in the DAG's time zone) or a datetime, as a TOML string or
    /// TOML datetime. A datetime without an offset is in the DAG's time zone.
    pub(super) fn date(
        &self,
        key: &str,
        value: &Spanned<toml::Value>,
        tz: &TimeZone,
    ) -> Result<Timestamp> {
        let text = match value.get_ref() {
            toml::Value::String(s) => s.trim().to_owned(),
            toml::Value::Datetime(d) => d.to_string(),
            other => {
                return Err(self.at(
                    value,
                    format!(
                        "{key} must be a date or datetime string, not {}",
                        other.type_str()
                    ),
                ));
            }
        };
        parse_datetime(&text, tz).ok_or_else(|| {
            self.at(
                value,
                format!("invalid {key} `{text}`: expected a date (\"2026-01-01\") or an RFC 3339 datetime (\"2026-01-01T06:00:00Z\")"),
            )
        })
    }

    pub(super) fn duration(&self, key: &str, value: &Spanned<toml::Value>) -> Result<Duration> {
        let parsed = match value.get_ref() {
            toml::Value::Integer(secs) => u64::try_from(*secs)
                .map(Duration::from_secs)
                .map_err(|_| format!("{key} must not be negative")),
            toml::Value::String(s) => parse_duration(s).map_err(|e| format!("{key}: {e}")),
            other => Err(format!(
                "{key} must be a duration such as \"30s\" or a number of seconds, not {}",
                other.type_str()
            )),
        };
        parsed.map_err(|m| self.at(value, m))
    }

    pub(super) fn positive_duration(
        &self,
        key: &str,
        value: &Spanned<toml::Value>,
    ) -> Result<Duration> {
        let d = self.duration(key, value)?;
        if d.is_zero() {
            return Err(self.at(value, format!("{key} must be greater than zero")));
        }
        Ok(d)
    }
}
