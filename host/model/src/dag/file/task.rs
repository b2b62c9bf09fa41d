//! One `[tasks.<id>]` table into a task, and the checks of its `expand`.

use super::*;

impl Parser<'_> {
    pub(super) fn task(
        &self,
        name: &Spanned<String>,
        raw: &Spanned<RawTask>,
        defaults: &TaskOptions,
        catalog: &dyn OperatorCatalog,
    ) -> Result<TaskSpec> {
        let task_id = name.get_ref();
        let task = raw.get_ref();
        let ctx = |m: String| format!("task `{task_id}`: {m}");
        validate_id("task id", task_id).map_err(|m| self.at(raw, m))?;
        let o = self.options(task.options(), catalog)?.or(defaults);

        let operator = task.operator.get_ref().trim();
        let resolved = catalog
            .resolve(operator)
            .map_err(|m| self.at(&task.operator, ctx(m)))?;

        let params = match &task.params {
            Some(p) => toml_table_to_json(p.get_ref(), "params").map_err(|m| self.at(p, ctx(m)))?,
            None => Map::new(),
        };
        let expand = match &task.expand {
            Some(e) => {
                let map =
                    toml_table_to_json(e.get_ref(), "expand").map_err(|m| self.at(e, ctx(m)))?;
                self.check_expand(&map, &params, &resolved.params_schema)
                    .map_err(|m| self.at(e, ctx(m)))?;
                Some(map)
            }
            None => None,
        };
        // The params a mapped TaskInstance will get: its own plus one element per
        // expand key. A placeholder template stands for the element (checked above).
        let mut merged = params.clone();
        if let Some(expand) = &expand {
            for key in expand.keys() {
                merged.insert(key.clone(), Value::String("{{ expand }}".to_owned()));
            }
        }
        if let Err(errors) = validate_at(
            &resolved.params_schema,
            &Value::Object(merged),
            "params",
            Mode::Unrendered,
        ) {
            let span = task
                .params
                .as_ref()
                .map_or_else(|| raw.span(), Spanned::span);
            return Err(self.error(Some(span), ctx(errors.join("; "))));
        }

        let mut upstream: Vec<String> = Vec::new();
        if let Some(list) = &task.upstream {
            for up in list.get_ref() {
                let up_id = up.get_ref();
                if up_id == task_id {
                    return Err(self.at(up, format!("task `{task_id}` cannot depend on itself")));
                }
                // Airflow only warns about a repeated dependency; keep one.
                if !upstream.contains(up_id) {
                    upstream.push(up_id.clone());
                }
            }
        }

        let depends_on_past =
            o.depends_on_past.unwrap_or(false) || o.wait_for_downstream.unwrap_or(false);
        Ok(TaskSpec {
            task_id: task_id.clone(),
            operator: operator.to_owned(),
            operator_name: resolved.name,
            operator_version: resolved.version,
            operator_digest: resolved.digest,
            params: Value::Object(params),
            expand,
            upstream,
            downstream: Vec::new(),
            trigger_rule: o.trigger_rule.unwrap_or_default(),
            retries: o.retries.unwrap_or(0),
            retry_delay: o.retry_delay.unwrap_or(Duration::from_secs(300)),
            retry_exponential_backoff: o.retry_exponential_backoff.unwrap_or(false),
            max_retry_delay: o.max_retry_delay,
            // A task that sets none gets its tenant's ceiling.
            execution_timeout: o.execution_timeout.or(catalog.ceilings().execution_timeout),
            pool: o.pool.unwrap_or_else(|| "default_pool".to_owned()),
            pool_slots: o.pool_slots.unwrap_or(1),
            priority_weight: o.priority_weight.unwrap_or(1),
            weight_rule: o.weight_rule.unwrap_or_default(),
            queue: o
                .queue
                .unwrap_or_else(|| crate::dag::DEFAULT_QUEUE.to_owned()),
            allow_hosts: o.allow_hosts.unwrap_or_default(),
            depends_on_past,
            wait_for_downstream: o.wait_for_downstream.unwrap_or(false),
            max_active_tis_per_dag: o.max_active_tis_per_dag,
            max_active_tis_per_dagrun: o.max_active_tis_per_dagrun,
            memory_limit: o.memory_limit.or(catalog
                .ceilings()
                .memory_limit
                .map(|c| c.min(catalog.max_memory_bytes()))),
            timeout: o.timeout,
            soft_fail: o.soft_fail.unwrap_or(false),
            callbacks: Callbacks {
                on_failure: o.on_failure.unwrap_or_default(),
                on_success: o.on_success.unwrap_or_default(),
                on_retry: o.on_retry.unwrap_or_default(),
            },
            doc: task.doc.clone(),
        })
    }

    /// `expand` values are lists (each element checked against the param's schema)
    /// or templates rendering to a list; keys must be params the operator knows and
    /// not also be set in `params` (Airflow refuses the same argument in `partial`
    /// and `expand`).
    pub(super) fn check_expand(
        &self,
        expand: &Map<String, Value>,
        params: &Map<String, Value>,
        schema: &Value,
    ) -> Result<(), String> {
        if expand.is_empty() {
            return Err("expand must name at least one param to map over".to_owned());
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        for (key, value) in expand {
            if params.contains_key(key) {
                return Err(format!(
                    "`{key}` is set in both params and expand; set it in one of them"
                ));
            }
            let prop = properties.and_then(|p| p.get(key));
            if prop.is_none() && closed {
                let mut known: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                known.sort_unstable();
                return Err(format!(
                    "expand.{key}: unknown param; expected one of: {}",
                    known.join(", ")
                ));
            }
            match value {
                Value::String(s) if is_template(s) => {}
                Value::Array(items) => {
                    if let Some(prop) = prop {
                        let mut errors = Vec::new();
                        for (i, item) in items.iter().enumerate() {
                            if let Err(e) = validate_at(
                                prop,
                                item,
                                &format!("expand.{key}[{i}]"),
                                Mode::Unrendered,
                            ) {
                                errors.extend(e);
                            }
                        }
                        if !errors.is_empty() {
                            return Err(errors.join("; "));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "expand.{key} must be a list or a template that renders to a list, not {}",
                        json_type(other)
                    ));
                }
            }
        }
        Ok(())
    }
}
