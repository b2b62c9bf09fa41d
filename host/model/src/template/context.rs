//! The names a template sees: a [`RenderContext`] turned into Airflow's template
//! context (see the table in the module above).

use super::RenderContext;
use super::datetime::{DateTime, Macros, iso, utc};
use super::lookups::{Lookups, TaskInstanceObject, VariableAccessor};
use jiff::Timestamp;
use minijinja::value::{Serde, Value as MjValue};
use std::sync::Arc;

/// The context for every template of one render; `lookups` (and so its cache) is
/// shared by `ti`, `task_instance` and `var`.
pub(super) fn context_value(ctx: &RenderContext, lookups: &Arc<Lookups>) -> MjValue {
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
        lookups: lookups.clone(),
    });
    let dag_run = minijinja::context! {
        conf => MjValue::from(Serde(&ctx.conf)),
        run_id => ctx.run_id.clone(),
        run_type => ctx.run_type.clone(),
        dag_id => ctx.dag_id.clone(),
        logical_date => date(ctx.logical_date),
        data_interval_start => date(ctx.data_interval_start),
        data_interval_end => date(ctx.data_interval_end),
    };
    let var = minijinja::context! {
        value => MjValue::from_object(VariableAccessor { json: false, lookups: lookups.clone() }),
        json => MjValue::from_object(VariableAccessor { json: true, lookups: lookups.clone() }),
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
        params => MjValue::from(Serde(ctx.params())),
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
        minijinja::context! { ..base, ..MjValue::from(Serde(&ctx.extra)) }
    }
}
