//! Task options (of `[defaults]` and each task), typed params and callbacks.

use super::*;

impl Parser<'_> {
    pub(super) fn options(
        &self,
        raw: OptionFields<'_>,
        catalog: &dyn OperatorCatalog,
    ) -> Result<TaskOptions> {
        let mut o = TaskOptions {
            retries: raw.retries.map(|r| *r.get_ref()),
            retry_exponential_backoff: raw.retry_exponential_backoff,
            soft_fail: raw.soft_fail,
            priority_weight: raw.priority_weight,
            depends_on_past: raw.depends_on_past,
            wait_for_downstream: raw.wait_for_downstream,
            pool: raw.pool.map(|p| p.get_ref().clone()),
            queue: raw.queue.map(|q| q.get_ref().clone()),
            ..TaskOptions::default()
        };
        if let Some(d) = raw.retry_delay {
            o.retry_delay = Some(self.duration("retry_delay", d)?);
        }
        if let Some(d) = raw.max_retry_delay {
            o.max_retry_delay = Some(self.positive_duration("max_retry_delay", d)?);
        }
        if let Some(d) = raw.execution_timeout {
            let timeout = self.positive_duration("execution_timeout", d)?;
            let ceiling = catalog.ceilings().execution_timeout;
            self.within_tenant_ceiling(d, "execution_timeout", timeout, ceiling, |t| {
                crate::units::format_duration(*t)
            })?;
            o.execution_timeout = Some(timeout);
        }
        if let Some(d) = raw.timeout {
            o.timeout = Some(self.positive_duration("timeout", d)?);
        }
        if let Some(m) = raw.max_active_tis_per_dagrun {
            if *m.get_ref() == 0 {
                return Err(self.at(m, "max_active_tis_per_dagrun must be at least 1"));
            }
            o.max_active_tis_per_dagrun = Some(*m.get_ref());
        }
        for (name, value, slot) in [
            ("on_failure", raw.on_failure, &mut o.on_failure),
            ("on_success", raw.on_success, &mut o.on_success),
            ("on_retry", raw.on_retry, &mut o.on_retry),
        ] {
            if let Some(v) = value {
                *slot = Some(self.callbacks(name, v, catalog)?);
            }
        }
        for (name, value) in [("pool", raw.pool), ("queue", raw.queue)] {
            if let Some(v) = value
                && v.get_ref().trim().is_empty()
            {
                return Err(self.at(v, format!("{name} must not be empty")));
            }
        }
        if let Some(slots) = raw.pool_slots {
            if *slots.get_ref() == 0 {
                return Err(self.at(slots, "pool_slots cannot be less than 1"));
            }
            o.pool_slots = Some(*slots.get_ref());
        }
        if let Some(w) = raw.weight_rule {
            o.weight_rule = Some(w.get_ref().parse().map_err(|m: String| self.at(w, m))?);
        }
        if let Some(r) = raw.trigger_rule {
            o.trigger_rule =
                Some(r.get_ref().parse().map_err(
                    |e: crate::trigger_rule::UnknownTriggerRule| self.at(r, e.to_string()),
                )?);
        }
        if let Some(m) = raw.max_active_tis_per_dag {
            if *m.get_ref() == 0 {
                return Err(self.at(m, "max_active_tis_per_dag must be at least 1"));
            }
            o.max_active_tis_per_dag = Some(*m.get_ref());
        }
        if let Some(hosts) = raw.allow_hosts {
            let mut list = Vec::new();
            for h in hosts.get_ref() {
                validate_host_pattern(h.get_ref()).map_err(|m| self.at(h, m))?;
                list.push(h.get_ref().clone());
            }
            o.allow_hosts = Some(list);
        }
        if let Some(m) = raw.memory_limit {
            let bytes = match m.get_ref() {
                toml::Value::Integer(n) => {
                    u64::try_from(*n).map_err(|_| "memory_limit must not be negative".to_owned())
                }
                toml::Value::String(s) => parse_size(s).map_err(|e| format!("memory_limit: {e}")),
                other => Err(format!(
                    "memory_limit must be a size such as \"64MiB\" or a number of bytes, not {}",
                    other.type_str()
                )),
            }
            .map_err(|msg| self.at(m, msg))?;
            if bytes == 0 {
                return Err(self.at(m, "memory_limit must be greater than zero"));
            }
            let ceiling = catalog.max_memory_bytes();
            if bytes > ceiling {
                return Err(self.at(
                    m,
                    format!(
                        "memory_limit of {} is above this host's ceiling of {}",
                        crate::units::format_size(bytes),
                        crate::units::format_size(ceiling)
                    ),
                ));
            }
            let ceiling = catalog.ceilings().memory_limit;
            self.within_tenant_ceiling(m, "memory_limit", bytes, ceiling, |b| {
                crate::units::format_size(*b)
            })?;
            o.memory_limit = Some(bytes);
        }
        Ok(o)
    }

    /// An import error at `at` if `value` of `field` is above the tenant's
    /// `ceiling`, naming both as `show` writes them.
    fn within_tenant_ceiling<S, T: PartialOrd>(
        &self,
        at: &Spanned<S>,
        field: &str,
        value: T,
        ceiling: Option<T>,
        show: impl Fn(&T) -> String,
    ) -> Result<()> {
        match ceiling {
            Some(ceiling) if value > ceiling => Err(self.at(
                at,
                format!(
                    "{field} of {} is above the tenant's ceiling of {} (set by a platform admin)",
                    show(&value),
                    show(&ceiling)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Splits the `params` table into plain defaults and typed params. A param
    /// written as a table with a `default` or `type` key is a typed param (wrap a
    /// plain table default as `{ default = { … } }`); its default must match its
    /// schema, and a scheduled DAG cannot have a required param with no default,
    /// since a scheduled run has no conf to supply it (both as in Airflow).
    pub(super) fn param_specs(
        &self,
        map: Map<String, Value>,
        scheduled: bool,
    ) -> std::result::Result<SplitParams, String> {
        let mut defaults = Map::new();
        let mut specs = BTreeMap::new();
        for (name, value) in map {
            let typed = match &value {
                Value::Object(t) => t.contains_key("default") || t.contains_key("type"),
                _ => false,
            };
            if !typed {
                defaults.insert(name, value);
                continue;
            }
            let Value::Object(mut schema) = value else {
                unreachable!()
            };
            let default = schema.remove("default");
            let description = match schema.remove("description") {
                None => None,
                Some(Value::String(d)) => Some(d),
                Some(_) => return Err(format!("params.{name}.description must be a string")),
            };
            let schema = Value::Object(schema);
            crate::params_schema::check_schema(&schema)
                .map_err(|m| format!("params.{name}: {m}"))?;
            match &default {
                Some(d) => {
                    validate_at(&schema, d, &format!("params.{name}"), Mode::Rendered).map_err(
                        |e| {
                            format!(
                                "the default of param `{name}` does not match its schema: {}",
                                e.join("; ")
                            )
                        },
                    )?;
                    defaults.insert(name.clone(), d.clone());
                }
                None if scheduled => {
                    return Err(format!(
                        "param `{name}` has no default, so scheduled runs (which have no conf) could not run; give it a default or remove the schedule"
                    ));
                }
                None => {}
            }
            specs.insert(
                name,
                ParamSpec {
                    default,
                    description,
                    schema,
                },
            );
        }
        Ok((defaults, specs))
    }

    /// `on_failure = { operator = "…", params = { … } }`, or a list of such tables.
    pub(super) fn callbacks(
        &self,
        key: &str,
        value: &Spanned<toml::Value>,
        catalog: &dyn OperatorCatalog,
    ) -> Result<Vec<CallbackSpec>> {
        let shape = || {
            format!(
                "{key} must be a table {{ operator = \"…\", params = {{ … }} }} or a list of them"
            )
        };
        let tables: Vec<&toml::Table> = match value.get_ref() {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(items) => items
                .iter()
                .map(|i| i.as_table().ok_or_else(shape))
                .collect::<std::result::Result<_, _>>()
                .map_err(|m| self.at(value, m))?,
            _ => return Err(self.at(value, shape())),
        };
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            if let Some(k) = t.keys().find(|k| *k != "operator" && *k != "params") {
                return Err(self.at(
                    value,
                    format!("{key}: unknown key `{k}`; a callback has `operator` and `params`"),
                ));
            }
            let Some(operator) = t.get("operator").and_then(toml::Value::as_str) else {
                return Err(self.at(
                    value,
                    format!("{key}: `operator` (a plugin name) is required"),
                ));
            };
            let operator = operator.trim();
            let resolved = catalog
                .resolve(operator)
                .map_err(|m| self.at(value, format!("{key}: {m}")))?;
            let params = match t.get("params") {
                None => Map::new(),
                Some(toml::Value::Table(p)) => toml_table_to_json(p, &format!("{key}.params"))
                    .map_err(|m| self.at(value, m))?,
                Some(_) => return Err(self.at(value, format!("{key}.params must be a table"))),
            };
            let params = Value::Object(params);
            validate_at(
                &resolved.params_schema,
                &params,
                &format!("{key}.params"),
                Mode::Unrendered,
            )
            .map_err(|e| self.at(value, e.join("; ")))?;
            out.push(CallbackSpec {
                operator: operator.to_owned(),
                operator_name: resolved.name,
                operator_version: resolved.version,
                operator_digest: resolved.digest,
                params,
            });
        }
        Ok(out)
    }
}
