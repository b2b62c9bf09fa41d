//! Property-based fuzzing of the parsers that take untrusted text: DAG files, Jinja
//! templates in params, and params against their JSON Schema. Each property only
//! asks that the code answers (a value or an error that says where) and never
//! panics, overflows its stack or runs away.
//!
//! CI runs the default number of cases (a few seconds); for a longer hunt set
//! `PROPTEST_CASES`, e.g. `PROPTEST_CASES=200000 cargo test -p aileron-model --test
//! fuzz --release`. Inputs that once broke something are kept below as plain
//! regression tests.

use aileron_model::dag::{OperatorCatalog, ResolvedOperator, parse_dag_file};
use aileron_model::params_schema::{Mode, check_schema, validate_at};
use aileron_model::template::{NoLookups, RenderContext, render_params, render_str};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;

/// Two operators, one with a params schema that has something of every kind.
struct Catalog;

impl OperatorCatalog for Catalog {
    fn resolve(&self, reference: &str) -> Result<ResolvedOperator, String> {
        let name = reference.split('@').next().unwrap_or(reference);
        let params_schema = match name {
            "noop" => json!({"type": "object"}),
            "echo" => json!({
                "type": "object",
                "properties": {
                    "message": {"type": "string", "minLength": 1},
                    "count": {"type": "integer", "minimum": 0},
                    "tags": {"type": "array", "items": {"enum": ["a", "b"]}}
                },
                "required": ["message"],
                "additionalProperties": false
            }),
            _ => return Err(format!("unknown operator `{name}`")),
        };
        Ok(ResolvedOperator {
            name: name.to_owned(),
            version: "1.0.0".to_owned(),
            digest: format!("sha256:{name}"),
            params_schema,
        })
    }

    fn max_memory_bytes(&self) -> u64 {
        1 << 32
    }
}

/// A DAG file that uses most keys, for mutation.
const SEED_DAG: &str = r#"id = "fuzzed"
schedule = "0 6 * * *"
start_date = "2026-01-01"
catchup = false
max_active_runs = 2
params = { region = "eu", size = { type = "integer", default = 3, minimum = 1 } }

[defaults]
retries = 2
retry_delay = "5m"
memory_limit = "64MiB"

[tasks.extract]
operator = "echo"
params = { message = "{{ ds }} in {{ params.region }}", count = 2 }
execution_timeout = "30s"

[tasks.load]
operator = "echo@1.0.0"
upstream = ["extract"]
trigger_rule = "all_done"
expand = { message = ["a", "b"] }

[tasks.notify]
operator = "noop"
upstream = ["load"]
on_failure = { operator = "echo", params = { message = "{{ reason }}" } }
"#;

/// Pieces DAG files are made of, so random files get past the TOML syntax often.
const DAG_PIECES: &[&str] = &[
    "[tasks.a]\n",
    "[tasks.b]\n",
    "[defaults]\n",
    "[params.p]\n",
    "operator = \"echo\"\n",
    "operator = \"noop\"\n",
    "upstream = [\"a\"]\n",
    "upstream = [\"b\", \"a\"]\n",
    "params = { message = \"x\" }\n",
    "expand = { message = [1, 2] }\n",
    "schedule = \"@daily\"\n",
    "schedule = \"*/0 * * * *\"\n",
    "retries = -1\n",
    "retry_delay = \"1h\"\n",
    "trigger_rule = \"one_done\"\n",
    "memory_limit = 0\n",
    "pool_slots = 99999999999\n",
    "start_date = \"2026-02-30\"\n",
    "id = \"a..b\"\n",
    "default = 1\n",
    "type = \"integer\"\n",
    "\"\"\"\n",
    "'''\n",
    "= = =\n",
    "[[tasks]]\n",
    "{{ params.p }}",
    "\u{0}",
    "\u{feff}",
    "é",
    "\n",
    "#",
    "[",
    "]",
    "{",
    "}",
    "\"",
    ",",
];

fn dag_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(DAG_PIECES), 0..40).prop_map(|p| p.concat())
}

/// The seed DAG with a few random edits (insert, delete or replace a character).
fn mutated_dag() -> impl Strategy<Value = String> {
    let edit = (any::<prop::sample::Index>(), 0u8..3, any::<char>());
    prop::collection::vec(edit, 1..6).prop_map(|edits| {
        let mut chars: Vec<char> = SEED_DAG.chars().collect();
        for (at, op, c) in edits {
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => chars[i] = c,
                _ => {}
            }
        }
        chars.into_iter().collect()
    })
}

/// Checks the one promise the DAG parser makes: an import error names this file
/// and, if it names a line, one that the file has.
fn check_parse(source: &str) {
    match parse_dag_file("acme", "acme/fuzzed.toml", source, &Catalog) {
        Ok(dag) => assert!(!dag.tasks.is_empty()),
        Err(e) => {
            assert_eq!(e.filename, "acme/fuzzed.toml");
            assert!(!e.message.is_empty());
            if let Some(line) = e.line {
                let lines = source.split('\n').count() as u32;
                assert!(line >= 1 && line <= lines, "line {line} of {lines}: {e:?}");
            }
        }
    }
}

/// Pieces of Jinja, Airflow's context names and things that loop or nest.
const TEMPLATE_PIECES: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    " for x in ",
    " range(",
    "100000",
    ")",
    " endfor ",
    " if ",
    " else ",
    " endif ",
    "params.",
    "region",
    "size",
    "ds",
    "ts",
    "dag_run.conf",
    "ti.xcom_pull(task_ids='a')",
    "var.value.k",
    "var.json.k",
    "macros.ds_add(ds, 1)",
    "|tojson",
    "|upper",
    "|join(',')",
    " ~ ",
    " * ",
    "'x'",
    "\"y\"",
    "[",
    "]",
    "(",
    ")",
    ",",
    ".",
    "x",
    "loop.index",
    " set a = ",
    " recursive ",
    "caller()",
    "\\",
    "\n",
    "é",
];

fn template_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TEMPLATE_PIECES), 0..30).prop_map(|p| p.concat())
}

fn context() -> RenderContext {
    RenderContext {
        dag_id: "fuzzed".into(),
        task_id: "t".into(),
        run_id: "manual__2026-01-01T00:00:00+00:00".into(),
        run_type: "manual".into(),
        logical_date: "2026-01-01T00:00:00Z".parse().unwrap(),
        data_interval_start: "2026-01-01T00:00:00Z".parse().unwrap(),
        data_interval_end: "2026-01-02T00:00:00Z".parse().unwrap(),
        map_index: None,
        try_number: 1,
        conf: serde_json::Map::new(),
        dag_params: json!({"region": "eu", "size": 3})
            .as_object()
            .unwrap()
            .clone(),
        extra: serde_json::Map::new(),
    }
}

/// Any JSON value, nested a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z{}%|. ]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A schema built from the keywords the checker knows, with values of any type.
fn json_schema() -> impl Strategy<Value = Value> {
    const KEYWORDS: &[&str] = &[
        "type",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "minLength",
        "maxLength",
        "pattern",
        "items",
        "properties",
        "required",
        "additionalProperties",
        "minItems",
        "maxItems",
        "format",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
    ];
    let types = prop::sample::select(
        &[
            "string", "integer", "number", "object", "array", "null", "boolean", "bogus",
        ][..],
    )
    .prop_map(|t| json!(t));
    let value = prop_oneof![types, json_value()];
    prop::collection::btree_map(prop::sample::select(KEYWORDS), value, 0..6)
        .prop_recursive(3, 32, 4, |inner| {
            prop::collection::btree_map("[a-z]{1,4}", inner.prop_map(|m| json!(m)), 0..4).prop_map(
                |props| {
                    let mut m = std::collections::BTreeMap::new();
                    m.insert("properties", json!(props));
                    m.insert("type", json!("object"));
                    m
                },
            )
        })
        .prop_map(|m| json!(m))
}

proptest! {
    #[test]
    fn random_dag_files_import_or_say_where(source in dag_text()) {
        check_parse(&source);
    }

    #[test]
    fn edited_dag_files_import_or_say_where(source in mutated_dag()) {
        check_parse(&source);
    }

    #[test]
    fn templates_render_or_fail_cleanly(template in template_text()) {
        let ctx = context();
        match render_str(&template, &ctx, Arc::new(NoLookups)) {
            Ok(value) => {
                let size = serde_json::to_string(&value).unwrap().len();
                prop_assert!(size <= aileron_model::template::MAX_RENDERED_BYTES + 2);
            }
            Err(e) => prop_assert!(e.to_string().starts_with("template")),
        }
        let params = json!({"a": template, "b": [template, {"c": template}]});
        if let Err(e) = render_params(&params, &ctx, Arc::new(NoLookups)) {
            prop_assert!(e.to_string().starts_with("params."), "{e}");
        }
    }

    #[test]
    fn params_are_checked_against_any_schema(schema in json_schema(), value in json_value()) {
        let _ = check_schema(&schema);
        for mode in [Mode::Rendered, Mode::Unrendered] {
            if let Err(errors) = validate_at(&schema, &value, "params", mode) {
                prop_assert!(!errors.is_empty());
                prop_assert!(errors.iter().all(|e| e.starts_with("params")), "{errors:?}");
            }
        }
    }
}

/// Nesting deep enough to exhaust a recursive parser's stack must be an import
/// error, not the end of the process.
#[test]
fn deeply_nested_values_are_import_errors_not_crashes() {
    for depth in [200, 5_000, 100_000] {
        let arrays = format!(
            "[tasks.a]\noperator = \"noop\"\nparams = {{ deep = {}{} }}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        check_parse(&arrays);
        let tables = format!(
            "[tasks.a]\noperator = \"noop\"\nparams = {}{}\n",
            "{ a = ".repeat(depth),
            " 1 ".to_owned() + &"}".repeat(depth)
        );
        check_parse(&tables);
    }
}

/// A template that nests or loops without bound stops within its budget.
#[test]
fn runaway_templates_stop_within_their_budget() {
    let ctx = context();
    for template in [
        "{% for i in range(100000000) %}x{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "{{ 'x' * 100000000 }}",
        &format!("{}1{}", "{{ (".repeat(2_000), ") }}".repeat(2_000)),
    ] {
        assert!(
            render_str(template, &ctx, Arc::new(NoLookups)).is_err(),
            "{template:.60}"
        );
    }
}
