//! Tests of rendering: the context names, native values, lookups and limits.

use super::render::single_expression;
use super::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

/// Lookups backed by maps, recording every call in order.
#[derive(Default)]
struct Fake {
    xcoms: HashMap<(String, String), Value>,
    variables: HashMap<String, String>,
    calls: Mutex<Vec<String>>,
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
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl TemplateLookups for Fake {
    fn xcom_pull(&self, task_id: &str, key: &str) -> Option<Value> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("xcom {task_id}/{key}"));
        self.xcoms.get(&(task_id.into(), key.into())).cloned()
    }
    fn variable(&self, key: &str) -> Option<String> {
        self.calls.lock().unwrap().push(format!("var {key}"));
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
    let out = render_params(
        &json!({"m": "{{ reason }} on {{ ds }}"}),
        &c,
        Arc::new(NoLookups),
    )
    .unwrap();
    assert_eq!(out, json!({"m": "boom on 2026-01-02"}));
}

fn render(template: &str) -> Result<Value, TemplateError> {
    render_str(template, &ctx(), Arc::new(NoLookups))
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
        render_str("{{ map_index }}", &mapped, Arc::new(NoLookups)).unwrap(),
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
        Arc::new(NoLookups),
    )
    .unwrap();
    assert_eq!(out, json!({"r": "us", "e": true, "n": 3, "conf": "us"}));
}

#[test]
fn walks_objects_and_arrays_but_not_keys() {
    let out = render_params(
        &json!({"{{ ds }}": ["{{ ds }}", 1, {"deep": "x{{ ds_nodash }}"}], "plain": "no {template}"}),
        &ctx(),
        Arc::new(NoLookups),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"{{ ds }}": ["2026-01-02", 1, {"deep": "x20260102"}], "plain": "no {template}"})
    );
}

#[test]
fn xcom_pull_single_list_key_default() {
    let fake = Arc::new(
        Fake::default()
            .xcom("extract", "return_value", json!({"rows": 10}))
            .xcom("other", "return_value", json!([1, 2]))
            .xcom("extract", "count", json!(7)),
    );
    let c = ctx();
    let r = |t: &str| render_str(t, &c, fake.clone()).unwrap();
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
    let err = render_str(
        "{{ ti.xcom_pull(task_ids='a', bogus=1) }}",
        &c,
        fake.clone(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
}

#[test]
fn each_lookup_happens_once_per_call() {
    let fake = Arc::new(
        Fake::default()
            .xcom("a", "return_value", json!("k"))
            .var("k", "v"),
    );
    let out = render_params(
        &json!({"x": "{{ ti.xcom_pull('a') }}", "y": "{{ ti.xcom_pull('a') }}-{{ var.value.k }}",
                // A lookup whose key comes from another lookup.
                "z": "{{ var.value[ti.xcom_pull('a')] }}"}),
        &ctx(),
        fake.clone(),
    )
    .unwrap();
    assert_eq!(out, json!({"x": "k", "y": "k-v", "z": "v"}));
    let mut calls = fake.calls();
    calls.sort();
    assert_eq!(calls, ["var k", "xcom a/return_value"]);
}

/// Lookups are answered while the template renders, in the order it asks: a key
/// taken from another lookup's answer costs no second render, and later lookups are
/// not asked for before it. A chain longer than any fixed number of rounds works.
#[test]
fn dependent_lookups_resolve_in_one_pass() {
    let mut fake = Fake::default()
        .xcom("a", "return_value", json!("k"))
        .var("k", "b")
        .xcom("b", "return_value", json!({"rows": 3}))
        .xcom("c", "return_value", json!("last"));
    for i in 0..12 {
        fake = fake.var(&format!("k{i}"), &format!("k{}", i + 1));
    }
    let fake = Arc::new(fake);
    let out = render_str(
        "{{ ti.xcom_pull(var.value[ti.xcom_pull('a')])['rows'] }} \
         {% for i in range(3) %}{{ ti.xcom_pull('a') }}{% endfor %} {{ ti.xcom_pull('c') }}",
        &ctx(),
        fake.clone(),
    )
    .unwrap();
    assert_eq!(out, json!("3 kkk last"));
    assert_eq!(
        fake.calls(),
        [
            "xcom a/return_value",
            "var k",
            "xcom b/return_value",
            "xcom c/return_value"
        ]
    );

    let chain = (0..12).fold("'k0'".to_owned(), |key, _| format!("var.value[{key}]"));
    let out = render_str(&format!("{{{{ {chain} }}}}"), &ctx(), fake.clone()).unwrap();
    assert_eq!(out, json!("k12"));
    let vars = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("var k"))
        .count();
    assert_eq!(vars, 1 + 12, "each Variable of the chain is looked up once");
}

#[test]
fn variables() {
    let fake = Arc::new(
        Fake::default()
            .var("bucket", "s3://b")
            .var("cfg", r#"{"size": 3}"#)
            .var("bad", "{"),
    );
    let c = ctx();
    let r = |t: &str| render_str(t, &c, fake.clone());
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
    let err = render_params(
        &json!({"msg": "{{ params.regoin }}"}),
        &ctx(),
        Arc::new(NoLookups),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "params.msg: `params.regoin` is undefined");
    let err = render_params(
        &json!({"a": ["ok", "hi {{ nope }}"]}),
        &ctx(),
        Arc::new(NoLookups),
    )
    .unwrap_err();
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
        render("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"),
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
    let big = Arc::new(Fake::default().xcom("big", "return_value", json!("x".repeat(5_000_000))));
    assert!(matches!(
        render_str("{{ ti.xcom_pull('big') }}", &ctx(), big),
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
