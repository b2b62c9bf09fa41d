//! JSON shapes of API resources, with Airflow's field names.

use crate::metastore::{DagRecord, DagRun, ImportErrorRecord, TaskInstance};
use aileron_model::dag::DagSpec;
use aileron_sandbox::OperatorMeta;
use serde_json::{Value, json};

fn ts(t: Option<jiff::Timestamp>) -> Value {
    t.map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null)
}

pub fn dag(d: &DagRecord, spec: &DagSpec, errors: &[ImportErrorRecord]) -> Value {
    json!({
        "dag_id": d.dag_id,
        "dag_display_name": d.dag_id,
        "description": spec.description,
        "fileloc": d.fileloc,
        "is_paused": d.is_paused,
        "is_active": d.is_active,
        "has_import_errors": errors.iter().any(|e| e.tenant == d.tenant && e.filename == d.fileloc),
        "owners": [spec.owner],
        "tags": spec.tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "timetable_summary": spec.schedule_str,
        "timetable_description": spec.schedule.description(),
        "max_active_runs": spec.max_active_runs,
        "max_active_tasks": spec.max_active_tasks,
        "catchup": spec.catchup,
        "start_date": ts(spec.start_date),
        "end_date": ts(spec.end_date),
        "timezone": spec.timezone,
        "params": spec.params,
        "last_parsed_time": d.last_parsed.to_string(),
        "dag_version": d.version,
    })
}

pub fn tasks(spec: &DagSpec) -> Value {
    Value::Array(
        spec.tasks
            .iter()
            .map(|t| {
                json!({
                    "task_id": t.task_id,
                    "operator": t.operator,
                    "operator_name": t.operator_name,
                    "operator_version": t.operator_version,
                    "plugin_digest": t.operator_digest,
                    "upstream_task_ids": t.upstream,
                    "downstream_task_ids": t.downstream,
                    "trigger_rule": t.trigger_rule.as_str(),
                    "retries": t.retries,
                    "retry_delay": t.retry_delay.as_secs_f64(),
                    "execution_timeout": t.execution_timeout.map(|d| d.as_secs_f64()),
                    "pool": t.pool,
                    "pool_slots": t.pool_slots,
                    "priority_weight": t.priority_weight,
                    "queue": t.queue,
                    "is_mapped": t.expand.is_some(),
                    "params": t.params,
                })
            })
            .collect(),
    )
}

pub fn dag_run(r: &DagRun) -> Value {
    json!({
        "dag_run_id": r.run_id,
        "dag_id": r.dag_id,
        "logical_date": r.logical_date.to_string(),
        "data_interval_start": r.data_interval.start.to_string(),
        "data_interval_end": r.data_interval.end.to_string(),
        "run_type": r.run_type.as_str(),
        "state": r.state.as_str(),
        "conf": r.conf,
        "queued_at": r.queued_at.to_string(),
        "start_date": ts(r.start_date),
        "end_date": ts(r.end_date),
        "dag_version": r.dag_version,
    })
}

pub fn task_instance(ti: &TaskInstance) -> Value {
    json!({
        "task_id": ti.task_id,
        "dag_id": ti.dag_id,
        "dag_run_id": ti.run_id,
        "map_index": ti.map_index,
        "state": ti.state.to_json(),
        "try_number": ti.try_number,
        "max_tries": ti.max_tries,
        "operator": ti.operator,
        "plugin_digest": ti.plugin_digest,
        "queued_when": ts(ti.queued_at),
        "start_date": ts(ti.start_date),
        "end_date": ts(ti.end_date),
        "duration": ti.duration,
        "hostname": ti.hostname,
        "next_try_at": ts(ti.next_try_at),
    })
}

pub fn tries(ti: &TaskInstance) -> Value {
    Value::Array(
        ti.tries
            .iter()
            .map(|t| {
                json!({
                    "try_number": t.try_number,
                    "state": t.state.to_json(),
                    "start_date": t.start_date.to_string(),
                    "end_date": t.end_date.to_string(),
                    "duration": t.duration,
                    "plugin_digest": t.plugin_digest,
                    "error": t.error,
                    "hostname": t.hostname,
                })
            })
            .collect(),
    )
}

pub fn import_error(i: usize, e: &ImportErrorRecord) -> Value {
    let location = match (e.line, e.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", e.filename),
        (Some(l), None) => format!("{}:{l}", e.filename),
        _ => e.filename.clone(),
    };
    json!({
        "import_error_id": i + 1,
        "filename": e.filename,
        "line": e.line,
        "column": e.column,
        "stack_trace": format!("{location}: {}", e.message),
        "message": e.message,
        "timestamp": e.timestamp.to_string(),
    })
}

pub fn plugin(p: &OperatorMeta) -> Value {
    json!({
        "name": p.name,
        "version": p.version,
        "description": p.description,
        "digest": p.digest,
        "size": p.size,
        "builtin": p.builtin,
        "world": p.world,
        "params_schema": p.params_schema,
    })
}
