//! XCom and Variables in templates: `ti` / `task_instance` (with `xcom_pull`),
//! `var.value` and `var.json` (with `.get`), answered while rendering by the caller's
//! [`TemplateLookups`] through a cache that lives for one render call.

use super::TemplateLookups;
use super::render::invalid;
use minijinja::ErrorKind;
use minijinja::value::{Kwargs, Object, Serde, Value as MjValue, from_args};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The caller's lookups and the answers given so far in this render call, missing
/// ones included, so each key reaches the caller once (lookups may read storage).
pub(super) struct Lookups {
    source: Arc<dyn TemplateLookups>,
    xcoms: Mutex<HashMap<(String, String), Option<Value>>>,
    variables: Mutex<HashMap<String, Option<String>>>,
}

impl fmt::Debug for Lookups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The source is the caller's and need not be `Debug`.
        f.debug_struct("Lookups").finish_non_exhaustive()
    }
}

/// Locks a cache. A panic while holding it leaves plain data behind; keep using it.
fn lock<T>(cache: &Mutex<T>) -> MutexGuard<'_, T> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Lookups {
    pub(super) fn new(source: Arc<dyn TemplateLookups>) -> Arc<Self> {
        Arc::new(Self {
            source,
            xcoms: Mutex::default(),
            variables: Mutex::default(),
        })
    }

    /// The lock is held across the caller's lookup: rendering is single-threaded, and
    /// holding it is what makes "once per key" hold without a second check.
    fn xcom(&self, task_id: &str, key: &str) -> Option<Value> {
        lock(&self.xcoms)
            .entry((task_id.to_owned(), key.to_owned()))
            .or_insert_with(|| self.source.xcom_pull(task_id, key))
            .clone()
    }

    fn variable(&self, key: &str) -> Option<String> {
        lock(&self.variables)
            .entry(key.to_owned())
            .or_insert_with(|| self.source.variable(key))
            .clone()
    }
}

/// Why `var.value.NAME` or `var.json.NAME` failed: attached as the source of the
/// minijinja error, so that the renderer reports
/// [`TemplateError::VariableNotFound`](super::TemplateError::VariableNotFound)
/// whatever the error's text says.
#[derive(Debug, thiserror::Error)]
#[error("Variable {key} does not exist")]
pub(super) struct VariableMissing {
    pub(super) key: String,
}

/// `ti` / `task_instance`.
#[derive(Debug)]
pub(super) struct TaskInstanceObject {
    pub(super) task_id: String,
    pub(super) dag_id: String,
    pub(super) run_id: String,
    pub(super) map_index: i64,
    pub(super) try_number: u32,
    pub(super) lookups: Arc<Lookups>,
}

impl TaskInstanceObject {
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
        let pull = |task_id: &str| self.lookups.xcom(task_id, &key);
        let to_value = |v: Option<Value>| match v {
            Some(v) => MjValue::from(Serde(v)),
            None => default.clone().unwrap_or(MjValue::from(())),
        };
        match task_ids {
            // Airflow 3: no task_ids means the calling task.
            None => Ok(to_value(pull(&self.task_id))),
            Some(v) if v.is_none() || v.is_undefined() => Ok(to_value(pull(&self.task_id))),
            Some(v) if v.as_str().is_some() => Ok(to_value(pull(v.as_str().unwrap_or_default()))),
            Some(v) => {
                // A list of task ids: a list of values, `None` for a missing one.
                let mut out = Vec::new();
                for item in v.try_iter()? {
                    let Some(task_id) = item.as_str() else {
                        return Err(invalid(
                            "xcom_pull task_ids must be a string or a list of strings",
                        ));
                    };
                    out.push(match pull(task_id) {
                        Some(v) => MjValue::from(Serde(v)),
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
pub(super) struct VariableAccessor {
    pub(super) json: bool,
    pub(super) lookups: Arc<Lookups>,
}

impl VariableAccessor {
    /// `Ok(None)` when the Variable does not exist.
    fn lookup(&self, key: &str) -> Result<Option<MjValue>, minijinja::Error> {
        let Some(raw) = self.lookups.variable(key) else {
            return Ok(None);
        };
        if !self.json {
            return Ok(Some(MjValue::from(raw)));
        }
        serde_json::from_str::<Value>(&raw)
            .map(|v| Some(MjValue::from(Serde(v))))
            .map_err(|e| invalid(format!("Variable {key} is not valid JSON: {e}")))
    }
}

impl Object for VariableAccessor {
    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let name = key.as_str()?;
        // An attribute cannot fail, so a missing Variable is an invalid value: it
        // raises its error wherever the template uses it.
        Some(match self.lookup(name) {
            Ok(Some(v)) => v,
            Ok(None) => {
                let missing = VariableMissing {
                    key: name.to_owned(),
                };
                MjValue::from(invalid(missing.to_string()).with_source(missing))
            }
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
