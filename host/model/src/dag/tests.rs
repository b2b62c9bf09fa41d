//! The DAG file parser against valid files and every kind of mistake.

use super::*;
use serde_json::json;

/// A catalog with three operators and fake digests.
struct Catalog;

impl OperatorCatalog for Catalog {
    fn resolve(&self, reference: &str) -> std::result::Result<ResolvedOperator, String> {
        let (name, version) = match reference.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (reference, None),
        };
        let schema = match name {
            "echo" => json!({"type": "object", "properties": {"message": {"type": "string"}},
                             "required": ["message"], "additionalProperties": false}),
            "http" => json!({"type": "object", "properties": {
                                "url": {"type": "string", "minLength": 1},
                                "method": {"enum": ["GET", "POST"]}},
                             "required": ["url"], "additionalProperties": false}),
            "sleep" => {
                json!({"type": "object", "properties": {"seconds": {"type": "number", "minimum": 0}}})
            }
            _ => {
                return Err(format!(
                    "unknown operator `{name}`; installed: echo, http, sleep"
                ));
            }
        };
        if version.is_some_and(|v| v != "1.0.0" && !v.starts_with("sha256:")) {
            return Err(format!(
                "operator `{name}` has no version `{}`; installed: 1.0.0",
                version.unwrap_or_default()
            ));
        }
        Ok(ResolvedOperator {
            name: name.to_owned(),
            version: "1.0.0".to_owned(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(name.as_bytes()))),
            params_schema: schema,
        })
    }

    fn max_memory_bytes(&self) -> u64 {
        1 << 32
    }
}

fn parse(source: &str) -> Result<DagSpec> {
    parse_dag_file("acme", "etl/example_etl.toml", source, &Catalog)
}

/// The message and line of the import error for `source`.
fn error(source: &str) -> (String, Option<u32>) {
    let e = parse(source).expect_err("the file should not import");
    assert_eq!(e.filename, "etl/example_etl.toml");
    (e.message, e.line)
}

const MINIMAL: &str = "[tasks.only]\noperator = \"echo\"\nparams = { message = \"hi\" }\n";

const FULL: &str = r##"id = "example_etl"
description = "Daily ETL"
doc = "# Example"
schedule = "0 2 * * *"
start_date = "2026-01-01"
end_date = "2027-01-01T00:00:00Z"
timezone = "Europe/Berlin"
catchup = true
max_active_runs = 3
max_active_tasks = 8
dagrun_timeout = "2h"
max_consecutive_failed_dag_runs = 5
tags = ["etl", "daily"]
owner = "data-team"
params = { region = "eu", regions = ["eu", "us"], limit = 10 }

[defaults]
retries = 2
retry_delay = "30s"
retry_exponential_backoff = true
max_retry_delay = "10m"
execution_timeout = "5m"
pool = "etl_pool"
priority_weight = 2
queue = "fast"
memory_limit = "64MiB"

[tasks.transform]
operator = "echo"
upstream = ["extract"]
trigger_rule = "all_done"
params = { message = "{{ ti.xcom_pull(task_ids='extract') }} for {{ ds }}" }
retries = 0
doc = "Transforms"

[tasks.extract]
operator = "http@1.0.0"
params = { url = "https://example.com/data.json", method = "GET" }
allow_hosts = ["example.com", "*.cdn.example.com:443"]
pool_slots = 2
weight_rule = "absolute"
max_active_tis_per_dag = 1
depends_on_past = true
execution_timeout = 60

[tasks.each_region]
operator = "echo"
upstream = ["transform"]
expand = { message = "{{ params.regions }}" }
wait_for_downstream = true

[tasks.each_literal]
operator = "echo"
upstream = ["transform"]
expand = { message = ["a", "b"] }
"##;

#[test]
fn a_full_file_parses_with_every_key() {
    let dag = parse(FULL).unwrap();
    assert_eq!(dag.dag_id, "example_etl");
    assert_eq!(dag.tenant, "acme");
    assert_eq!(dag.fileloc, "etl/example_etl.toml");
    assert_eq!(dag.description.as_deref(), Some("Daily ETL"));
    assert_eq!(dag.doc.as_deref(), Some("# Example"));
    assert_eq!(dag.schedule_str.as_deref(), Some("0 2 * * *"));
    assert!(matches!(dag.schedule, Schedule::Cron(_)));
    // A plain date is midnight in the DAG's time zone (CET = UTC+1).
    assert_eq!(
        dag.start_date,
        Some("2025-12-31T23:00:00Z".parse().unwrap())
    );
    assert_eq!(dag.end_date, Some("2027-01-01T00:00:00Z".parse().unwrap()));
    assert_eq!(dag.timezone, "Europe/Berlin");
    assert!(dag.catchup);
    assert_eq!((dag.max_active_runs, dag.max_active_tasks), (3, 8));
    assert_eq!(dag.dagrun_timeout, Some(Duration::from_secs(7200)));
    assert_eq!(dag.max_consecutive_failed_dag_runs, Some(5));
    assert_eq!(dag.tags, ["etl", "daily"]);
    assert_eq!(dag.owner, "data-team");
    assert_eq!(
        Value::Object(dag.params.clone()),
        json!({"region": "eu", "regions": ["eu", "us"], "limit": 10})
    );
    assert_eq!(dag.version.len(), 64, "sha256 hex");
    assert_eq!(dag.source, FULL);

    // Topological order; ready tasks in file order.
    let ids: Vec<&str> = dag.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["extract", "transform", "each_region", "each_literal"]);

    let extract = dag.task("extract").unwrap();
    assert_eq!(extract.operator, "http@1.0.0");
    assert_eq!(
        (
            extract.operator_name.as_str(),
            extract.operator_version.as_str()
        ),
        ("http", "1.0.0")
    );
    assert!(extract.operator_digest.starts_with("sha256:"));
    assert_eq!(
        extract.params,
        json!({"url": "https://example.com/data.json", "method": "GET"})
    );
    assert_eq!(
        extract.allow_hosts,
        ["example.com", "*.cdn.example.com:443"]
    );
    assert_eq!(extract.pool_slots, 2);
    assert_eq!(extract.weight_rule, WeightRule::Absolute);
    assert_eq!(extract.max_active_tis_per_dag, Some(1));
    assert!(extract.depends_on_past && !extract.wait_for_downstream);
    assert_eq!(extract.execution_timeout, Some(Duration::from_secs(60)));
    assert_eq!(extract.downstream, ["transform"]);
    // Inherited from [defaults].
    assert_eq!(extract.retries, 2);
    assert_eq!(extract.retry_delay, Duration::from_secs(30));
    assert!(extract.retry_exponential_backoff);
    assert_eq!(extract.max_retry_delay, Some(Duration::from_secs(600)));
    assert_eq!(extract.pool, "etl_pool");
    assert_eq!(extract.priority_weight, 2);
    assert_eq!(extract.queue, "fast");
    assert_eq!(extract.memory_limit, Some(64 << 20));
    assert_eq!(extract.trigger_rule, TriggerRule::AllSuccess);

    let transform = dag.task("transform").unwrap();
    assert_eq!(transform.retries, 0, "a task overrides [defaults]");
    assert_eq!(transform.execution_timeout, Some(Duration::from_secs(300)));
    assert_eq!(transform.trigger_rule, TriggerRule::AllDone);
    assert_eq!(transform.upstream, ["extract"]);
    assert_eq!(transform.downstream, ["each_region", "each_literal"]);
    assert_eq!(transform.doc.as_deref(), Some("Transforms"));

    let mapped = dag.task("each_region").unwrap();
    assert!(mapped.is_mapped());
    assert_eq!(
        mapped.expand.clone().map(Value::Object),
        Some(json!({"message": "{{ params.regions }}"}))
    );
    assert_eq!(mapped.params, json!({}));
    assert!(
        mapped.wait_for_downstream && mapped.depends_on_past,
        "wait_for_downstream implies depends_on_past"
    );

    let leaves: Vec<&str> = dag.leaves().map(|t| t.task_id.as_str()).collect();
    assert_eq!(leaves, ["each_region", "each_literal"]);
    let roots: Vec<&str> = dag.roots().map(|t| t.task_id.as_str()).collect();
    assert_eq!(roots, ["extract"]);
    let ctx = dag.schedule_context();
    assert_eq!(ctx.timezone.iana_name(), Some("Europe/Berlin"));
    assert!(ctx.catchup);
}

#[test]
fn round_trips_through_json() {
    let dag = parse(FULL).unwrap();
    let json = serde_json::to_string(&dag).unwrap();
    let back: DagSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, dag);
    // The task index is rebuilt on demand, not stored.
    assert!(!json.contains("task_index"));
    assert_eq!(back.task("each_region").unwrap().task_id, "each_region");
    assert!(back.task("nope").is_none());
    // Durations are stored as seconds.
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["dagrun_timeout"], json!(7200));
    assert_eq!(value["tasks"][0]["retry_delay"], json!(30));
    assert_eq!(value["schedule"], json!("0 2 * * *"));
}

#[test]
fn defaults_for_a_minimal_file() {
    let dag = parse(MINIMAL).unwrap();
    assert_eq!(dag.dag_id, "example_etl", "the file stem");
    assert_eq!(dag.schedule, Schedule::Manual);
    assert_eq!(dag.timezone, "UTC");
    assert!(!dag.catchup);
    assert_eq!((dag.max_active_runs, dag.max_active_tasks), (16, 16));
    assert_eq!(dag.owner, "aileron");
    let t = &dag.tasks[0];
    assert_eq!(t.retries, 0);
    assert_eq!(t.retry_delay, Duration::from_secs(300));
    assert_eq!(t.pool, "default_pool");
    assert_eq!(t.pool_slots, 1);
    assert_eq!(t.priority_weight, 1);
    assert_eq!(t.weight_rule, WeightRule::Downstream);
    assert_eq!(t.queue, "default");
    assert_eq!(t.trigger_rule, TriggerRule::AllSuccess);
    assert!(t.allow_hosts.is_empty() && t.memory_limit.is_none() && t.expand.is_none());
}

#[test]
fn dates_and_datetimes() {
    let parse_start = |value: &str| {
        let src = format!("start_date = {value}\ntimezone = \"Europe/Berlin\"\n{MINIMAL}");
        parse(&src).unwrap().start_date.unwrap().to_string()
    };
    assert_eq!(parse_start("\"2026-07-01\""), "2026-06-30T22:00:00Z");
    assert_eq!(
        parse_start("\"2026-07-01T06:00:00Z\""),
        "2026-07-01T06:00:00Z"
    );
    assert_eq!(
        parse_start("\"2026-07-01T06:00:00+02:00\""),
        "2026-07-01T04:00:00Z"
    );
    assert_eq!(
        parse_start("\"2026-07-01T06:00:00\""),
        "2026-07-01T04:00:00Z"
    );
    // Native TOML dates and datetimes work too.
    assert_eq!(parse_start("2026-07-01"), "2026-06-30T22:00:00Z");
    assert_eq!(parse_start("2026-07-01T06:00:00Z"), "2026-07-01T06:00:00Z");
}

#[test]
fn unknown_keys_are_import_errors() {
    let src = "[tasks.a]\noperator = \"echo\"\nparams = { message = \"x\" }\n\n[tasks.b]\noperator = \"echo\"\nupstreams = [\"a\"]\n";
    assert_eq!(
        error(src),
        (
            "unknown key `upstreams`; did you mean `upstream`?".to_owned(),
            Some(7)
        )
    );
    let (msg, line) = error(&format!("shedule = \"@daily\"\n{MINIMAL}"));
    assert_eq!(
        (msg.as_str(), line),
        ("unknown key `shedule`; did you mean `schedule`?", Some(1))
    );
    let (msg, _) = error(&format!("[defaults]\nzzz = 1\n{MINIMAL}"));
    assert!(
        msg.starts_with("unknown key `zzz`; expected one of: retries, retry_delay"),
        "{msg}"
    );
}

#[test]
fn toml_syntax_and_type_errors_have_lines() {
    let (msg, line) = error("id = \"x\n[tasks.a]\n");
    assert_eq!(line, Some(1));
    assert!(!msg.is_empty());
    let (msg, line) = error("[tasks.a]\noperator = 3\n");
    assert_eq!(line, Some(2));
    assert!(
        msg.starts_with("`operator`: invalid type: integer `3`"),
        "{msg}"
    );
    let (msg, line) = error("[tasks.a]\nparams = { message = \"x\" }\n");
    assert_eq!((msg.as_str(), line), ("missing field `operator`", Some(1)));
}

#[test]
fn bad_ids() {
    let (msg, line) = error(&format!("id = \"my dag\"\n{MINIMAL}"));
    assert_eq!(
        (msg.as_str(), line),
        (
            "dag id `my dag` has to be made of alphanumeric characters, dashes, dots and underscores exclusively",
            Some(1)
        )
    );
    let (msg, _) = error(&format!("id = \"a..b\"\n{MINIMAL}"));
    assert_eq!(
        msg,
        "dag id `a..b` must not contain consecutive dots ('..')"
    );
    let (msg, _) = error(&format!("id = \"{}\"\n{MINIMAL}", "x".repeat(251)));
    assert_eq!(msg, "dag id has to be less than 250 characters, not 251");
    let e = parse_dag_file("acme", "bad name.toml", MINIMAL, &Catalog).unwrap_err();
    assert!(
        e.message.contains("it comes from the file name"),
        "{}",
        e.message
    );
    assert_eq!(e.to_string(), format!("bad name.toml: {}", e.message));
    let (msg, line) = error("[tasks.\"a b\"]\noperator = \"echo\"\n");
    assert_eq!(
        (msg.as_str(), line),
        (
            "task id `a b` has to be made of alphanumeric characters, dashes, dots and underscores exclusively",
            Some(1)
        )
    );
}

#[test]
fn graph_errors() {
    let cycle = "[tasks.a]\noperator = \"sleep\"\nupstream = [\"c\"]\n\n[tasks.b]\noperator = \"sleep\"\nupstream = [\"a\"]\n\n[tasks.c]\noperator = \"sleep\"\nupstream = [\"b\"]\n\n[tasks.d]\noperator = \"sleep\"\n";
    assert_eq!(
        error(cycle),
        ("cycle detected: a -> b -> c -> a".to_owned(), Some(1))
    );
    let unknown = "[tasks.extract]\noperator = \"sleep\"\n\n[tasks.load]\noperator = \"sleep\"\nupstream = [\"extract\", \"extrat\"]\n";
    assert_eq!(
        error(unknown),
        (
            "task `load`: unknown upstream task `extrat`; did you mean `extract`?".to_owned(),
            Some(6)
        )
    );
    let own = "[tasks.a]\noperator = \"sleep\"\nupstream = [\"a\"]\n";
    assert_eq!(
        error(own),
        ("task `a` cannot depend on itself".to_owned(), Some(3))
    );
    assert_eq!(
        error("id = \"x\"\n"),
        (
            "the DAG has no tasks: add at least one [tasks.<task_id>] table".to_owned(),
            None
        )
    );
}

#[test]
fn operator_errors() {
    let (msg, line) = error("\n[tasks.a]\noperator = \"htp\"\n");
    assert_eq!(
        (msg.as_str(), line),
        (
            "task `a`: unknown operator `htp`; installed: echo, http, sleep",
            Some(3)
        )
    );
    let (msg, _) = error("[tasks.a]\noperator = \"http@9.9.9\"\nparams = { url = \"x\" }\n");
    assert_eq!(
        msg,
        "task `a`: operator `http` has no version `9.9.9`; installed: 1.0.0"
    );
}

#[test]
fn schedule_timezone_and_date_errors() {
    let (msg, line) = error(&format!("schedule = \"0 25 * * *\"\n{MINIMAL}"));
    assert!(
        msg.starts_with("invalid cron expression `0 25 * * *`"),
        "{msg}"
    );
    assert_eq!(line, Some(1));
    let (msg, _) = error(&format!("schedule = \"@fortnightly\"\n{MINIMAL}"));
    assert!(
        msg.starts_with("unknown schedule preset `@fortnightly`"),
        "{msg}"
    );
    let (msg, line) = error(&format!(
        "description = \"x\"\ntimezone = \"Mars/Olympus\"\n{MINIMAL}"
    ));
    assert_eq!(
        (msg.as_str(), line),
        (
            "unknown time zone `Mars/Olympus`; expected an IANA name such as \"UTC\" or \"Europe/Berlin\"",
            Some(2)
        )
    );
    let (msg, line) = error(&format!("start_date = \"2026-13-01\"\n{MINIMAL}"));
    assert_eq!(line, Some(1));
    assert!(
        msg.starts_with("invalid start_date `2026-13-01`: expected a date"),
        "{msg}"
    );
    let (msg, line) = error(&format!(
        "start_date = \"2026-02-01\"\nend_date = \"2026-01-01\"\n{MINIMAL}"
    ));
    assert_eq!(
        (msg.as_str(), line),
        (
            "end_date 2026-01-01T00:00:00Z is before start_date 2026-02-01T00:00:00Z",
            Some(2)
        )
    );
    let (msg, _) = error(&format!("schedule = \"@daily\"\ncatchup = true\n{MINIMAL}"));
    assert_eq!(msg, "catchup = true needs a start_date to catch up from");
}

#[test]
fn option_errors() {
    let task = |extra: &str| format!("[tasks.a]\noperator = \"sleep\"\n{extra}\n");
    assert_eq!(
        error(&task("trigger_rule = \"all_sucess\"")).0,
        "unknown trigger rule `all_sucess`; expected one of: all_success, all_failed, all_done, all_done_min_one_success, all_skipped, one_success, one_failed, one_done, none_failed, none_failed_min_one_success, none_skipped, always"
    );
    assert_eq!(error(&task("trigger_rule = \"x\"")).1, Some(3));
    let (msg, line) = error(&task("retry_delay = \"5 minutes\""));
    assert_eq!(line, Some(3));
    assert!(
        msg.starts_with("retry_delay: invalid duration `5 minutes`"),
        "{msg}"
    );
    assert_eq!(
        error(&task("retry_delay = -5")).0,
        "retry_delay must not be negative"
    );
    assert_eq!(
        error(&task("execution_timeout = \"0s\"")).0,
        "execution_timeout must be greater than zero"
    );
    assert_eq!(
        error(&task("pool_slots = 0")).0,
        "pool_slots cannot be less than 1"
    );
    assert_eq!(
        error(&task("weight_rule = \"sideways\"")).0,
        "unknown weight_rule `sideways`; expected one of: downstream, upstream, absolute"
    );
    assert_eq!(
        error(&task("memory_limit = \"100GiB\"")),
        (
            "memory_limit of 100GiB is above this host's ceiling of 4GiB".to_owned(),
            Some(3)
        )
    );
    assert!(
        error(&task("memory_limit = \"lots\""))
            .0
            .starts_with("memory_limit: invalid size `lots`")
    );
    assert_eq!(
        error(&task("allow_hosts = [\"https://example.com/x\"]")).0,
        "allow_hosts entry `https://example.com/x` must be a host such as \"api.example.com\", \"api.example.com:8443\" or \"*.example.com\""
    );
    assert_eq!(
        error(&format!("max_active_runs = 0\n{MINIMAL}")).0,
        "max_active_runs must be at least 1"
    );
    let (msg, line) = error(&format!("[defaults]\nretry_delay = \"soon\"\n{MINIMAL}"));
    assert_eq!(line, Some(2));
    assert!(msg.starts_with("retry_delay: invalid duration `soon`"));
}

#[test]
fn params_are_checked_against_the_operator_schema() {
    let (msg, line) = error("[tasks.a]\noperator = \"sleep\"\nparams = { seconds = \"five\" }\n");
    assert_eq!(
        (msg.as_str(), line),
        (
            "task `a`: params.seconds: expected number, got string",
            Some(3)
        )
    );
    let (msg, line) = error("[tasks.a]\noperator = \"http\"\n");
    assert_eq!(
        (msg.as_str(), line),
        ("task `a`: params.url: is required", Some(1))
    );
    let (msg, _) =
        error("[tasks.a]\noperator = \"http\"\nparams = { url = \"x\", methd = \"GET\" }\n");
    assert_eq!(
        msg,
        "task `a`: params.methd: unknown property; expected one of: method, url"
    );
    // Templates are rendered at run time: their type is not checked now.
    parse("[tasks.a]\noperator = \"sleep\"\nparams = { seconds = \"{{ params.delay }}\" }\n")
        .unwrap();
    // [tasks.x.params] sub-tables work too.
    let dag =
        parse("[tasks.a]\noperator = \"http\"\n[tasks.a.params]\nurl = \"https://x\"\n").unwrap();
    assert_eq!(dag.tasks[0].params, json!({"url": "https://x"}));
}

#[test]
fn expand_is_checked() {
    let t = |expand: &str| format!("[tasks.m]\noperator = \"echo\"\nexpand = {expand}\n");
    // A literal list is checked element by element.
    assert_eq!(
        error(&t("{ message = [\"ok\", 3] }")),
        (
            "task `m`: expand.message[1]: expected string, got integer".to_owned(),
            Some(3)
        )
    );
    assert_eq!(
        error(&t("{ mesage = [\"a\"] }")).0,
        "task `m`: expand.mesage: unknown param; expected one of: message"
    );
    assert_eq!(
        error(&t("{ message = \"not a template\" }")).0,
        "task `m`: expand.message must be a list or a template that renders to a list, not a string"
    );
    assert_eq!(
        error(&t("{}")).0,
        "task `m`: expand must name at least one param to map over"
    );
    assert_eq!(
        error("[tasks.m]\noperator = \"echo\"\nparams = { message = \"x\" }\nexpand = { message = [\"a\"] }\n").0,
        "task `m`: `message` is set in both params and expand; set it in one of them"
    );
    // An expand key satisfies `required`.
    parse(&t("{ message = [\"a\", \"b\"] }")).unwrap();
    parse(&t("{ message = \"{{ params.regions }}\" }")).unwrap();
}

#[test]
fn topological_order_is_stable() {
    let src = "[tasks.b]\noperator = \"sleep\"\nupstream = [\"a\"]\n[tasks.a]\noperator = \"sleep\"\n[tasks.c]\noperator = \"sleep\"\n[tasks.d]\noperator = \"sleep\"\nupstream = [\"b\", \"c\", \"b\"]\n";
    let dag = parse(src).unwrap();
    let ids: Vec<&str> = dag.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert_eq!(
        dag.task("d").unwrap().upstream,
        ["b", "c"],
        "a repeated upstream is kept once"
    );
    assert_eq!(dag.task("a").unwrap().downstream, ["b"]);
    assert_eq!(dag.task("b").unwrap().downstream, ["d"]);
}

#[test]
fn priority_weights_follow_the_weight_rule() {
    let src = "[tasks.a]\noperator = \"sleep\"\npriority_weight = 1\n\
               [tasks.b]\noperator = \"sleep\"\nupstream = [\"a\"]\npriority_weight = 10\n\
               [tasks.c]\noperator = \"sleep\"\nupstream = [\"a\"]\npriority_weight = 100\nweight_rule = \"upstream\"\n\
               [tasks.d]\noperator = \"sleep\"\nupstream = [\"b\", \"c\"]\npriority_weight = 1000\nweight_rule = \"absolute\"\n";
    let dag = parse(src).unwrap();
    assert_eq!(dag.priority_weight_total("a"), 1111);
    assert_eq!(dag.priority_weight_total("b"), 1010);
    assert_eq!(dag.priority_weight_total("c"), 101);
    assert_eq!(dag.priority_weight_total("d"), 1000);
}

#[test]
fn retry_delays() {
    let mut task = parse(MINIMAL).unwrap().tasks.remove(0);
    task.retry_delay = Duration::from_secs(30);
    assert_eq!(task.retry_delay_for(1), Duration::from_secs(30));
    assert_eq!(task.retry_delay_for(5), Duration::from_secs(30));
    task.retry_exponential_backoff = true;
    let secs: Vec<u64> = (1..=6).map(|n| task.retry_delay_for(n).as_secs()).collect();
    assert_eq!(secs, [30, 60, 120, 240, 480, 960]);
    task.max_retry_delay = Some(Duration::from_secs(200));
    assert_eq!(task.retry_delay_for(4), Duration::from_secs(200));
    task.max_retry_delay = None;
    assert_eq!(task.retry_delay_for(40), MAX_RETRY_DELAY);
    task.retry_delay = Duration::ZERO;
    assert_eq!(
        task.retry_delay_for(1),
        Duration::from_secs(1),
        "at least a second"
    );
}

#[test]
fn typed_params_validate_defaults_and_conf() {
    let dag = parse(
        r#"
[params]
region = "eu"
[params.count]
default = 3
type = "integer"
minimum = 1
description = "How many"
[params.target]
type = "string"
enum = ["a", "b"]
[tasks.only]
operator = "echo"
params = { message = "hi" }
"#,
    )
    .unwrap();
    assert_eq!(dag.params.get("count"), Some(&serde_json::json!(3)));
    assert!(!dag.params.contains_key("target"));
    assert_eq!(
        dag.param_specs["count"].description.as_deref(),
        Some("How many")
    );
    let conf = |v: serde_json::Value| v.as_object().unwrap().clone();
    let ok = dag
        .resolve_params(&conf(serde_json::json!({"target": "a", "extra": 1})))
        .unwrap();
    assert_eq!(ok["count"], 3);
    assert_eq!(ok["extra"], 1);
    let err = dag.resolve_params(&Map::new()).unwrap_err();
    assert!(err.contains("param `target` is required"), "{err}");
    let err = dag
        .resolve_params(&conf(serde_json::json!({"target": "c", "count": 0})))
        .unwrap_err();
    assert!(
        err.contains("params.count") && err.contains("params.target"),
        "{err}"
    );
}

#[test]
fn typed_param_errors() {
    let (m, _) = error(
        "schedule = \"@daily\"\nstart_date = \"2026-01-01\"\n[params.n]\ntype = \"integer\"\n[tasks.only]\noperator = \"echo\"\n",
    );
    assert!(m.contains("param `n` has no default"), "{m}");
    let (m, _) = error(
        "[params.n]\ntype = \"integer\"\ndefault = \"x\"\n[tasks.only]\noperator = \"echo\"\n",
    );
    assert!(m.contains("the default of param `n` does not match"), "{m}");
    let (m, _) =
        error("[params.n]\ntype = \"int\"\ndefault = 1\n[tasks.only]\noperator = \"echo\"\n");
    assert!(m.contains("type must be one of"), "{m}");
}

#[test]
fn callbacks_sensor_and_limit_keys() {
    let dag = parse(
        r#"
on_failure = { operator = "echo", params = { message = "run {{ run_id }} failed: {{ reason }}" } }
on_success = [{ operator = "sleep" }, { operator = "echo", params = { message = "ok" } }]
[defaults]
on_retry = { operator = "echo", params = { message = "retrying" } }
[tasks.wait]
operator = "sleep"
timeout = "10m"
soft_fail = true
max_active_tis_per_dagrun = 2
on_failure = { operator = "echo", params = { message = "{{ ti.task_id }}" } }
"#,
    )
    .unwrap();
    assert_eq!(dag.callbacks.on_failure.len(), 1);
    assert_eq!(dag.callbacks.on_success.len(), 2);
    assert_eq!(dag.callbacks.on_success[0].operator_name, "sleep");
    let t = dag.task("wait").unwrap();
    assert_eq!(t.timeout, Some(Duration::from_secs(600)));
    assert!(t.soft_fail);
    assert_eq!(t.max_active_tis_per_dagrun, Some(2));
    assert_eq!(t.callbacks.on_retry.len(), 1, "from [defaults]");
    assert_eq!(t.callbacks.on_failure[0].operator_name, "echo");
    // It survives the metastore's JSON.
    let back: DagSpec = serde_json::from_str(&serde_json::to_string(&dag).unwrap()).unwrap();
    assert_eq!(back, dag);

    let (m, _) = error("on_failure = \"echo\"\n[tasks.only]\noperator = \"echo\"\n");
    assert!(m.contains("on_failure must be a table"), "{m}");
    let (m, _) = error("on_failure = { operator = \"nope\" }\n[tasks.only]\noperator = \"echo\"\n");
    assert!(m.contains("on_failure"), "{m}");
    let (m, _) = error(
        "on_failure = { operator = \"echo\", when = 1 }\n[tasks.only]\noperator = \"echo\"\n",
    );
    assert!(m.contains("unknown key `when`"), "{m}");
    let (m, _) = error("on_retry = { operator = \"echo\" }\n[tasks.only]\noperator = \"echo\"\n");
    assert!(m.contains("on_retry"), "{m}");
}

#[test]
fn import_error_display() {
    let e = ImportError {
        filename: "a.toml".into(),
        line: Some(3),
        column: Some(1),
        message: "boom".into(),
    };
    assert_eq!(e.to_string(), "a.toml:3: boom");
    assert_eq!(
        line_col("ab\ncd\néx", 8),
        (3, 2),
        "columns count characters"
    );
}

/// [`Catalog`] for a tenant with ceilings.
struct Ceiled(Ceilings);

impl OperatorCatalog for Ceiled {
    fn resolve(&self, reference: &str) -> std::result::Result<ResolvedOperator, String> {
        Catalog.resolve(reference)
    }
    fn max_memory_bytes(&self) -> u64 {
        Catalog.max_memory_bytes()
    }
    fn ceilings(&self) -> Ceilings {
        self.0
    }
}

#[test]
fn a_tenant_s_ceilings_refuse_more_and_fill_in_what_is_not_set() {
    let ceilings = Ceilings {
        max_active_runs: Some(4),
        execution_timeout: Some(Duration::from_secs(600)),
        memory_limit: Some(64 << 20),
    };
    let parse = |source: &str| parse_dag_file("acme", "x.toml", source, &Ceiled(ceilings));
    // Nothing asked: the ceilings are the values.
    let dag = parse(MINIMAL).unwrap();
    assert_eq!(dag.max_active_runs, 4);
    let task = &dag.tasks[0];
    assert_eq!(task.execution_timeout, Some(Duration::from_secs(600)));
    assert_eq!(task.memory_limit, Some(64 << 20));
    // Less than the ceilings: kept.
    let dag = parse(&format!(
        "max_active_runs = 2\n[defaults]\nexecution_timeout = \"5m\"\nmemory_limit = \"32MiB\"\n{MINIMAL}"
    ))
    .unwrap();
    assert_eq!(dag.max_active_runs, 2);
    assert_eq!(
        dag.tasks[0].execution_timeout,
        Some(Duration::from_secs(300))
    );
    assert_eq!(dag.tasks[0].memory_limit, Some(32 << 20));
    // More: an import error at the key, naming the ceiling.
    for (file, line, message) in [
        (
            format!("max_active_runs = 5\n{MINIMAL}"),
            1,
            "max_active_runs of 5 is above the tenant's ceiling of 4 (set by a platform admin)",
        ),
        (
            format!("{MINIMAL}execution_timeout = \"1h\"\n"),
            4,
            "execution_timeout of 1h is above the tenant's ceiling of 10m (set by a platform admin)",
        ),
        (
            format!("{MINIMAL}memory_limit = \"128MiB\"\n"),
            4,
            "memory_limit of 128MiB is above the tenant's ceiling of 64MiB (set by a platform admin)",
        ),
    ] {
        let e = parse(&file).expect_err(&file);
        assert_eq!(
            (e.message.as_str(), e.line),
            (message, Some(line)),
            "{file}"
        );
    }
    // A version is one file under one set of ceilings.
    let plain = parse_dag_file("acme", "x.toml", MINIMAL, &Catalog).unwrap();
    assert_ne!(parse(MINIMAL).unwrap().version, plain.version);
    let again = parse_dag_file("acme", "x.toml", MINIMAL, &Catalog).unwrap();
    assert_eq!(plain.version, again.version);
}

/// The same catalog, but every component is another build.
struct Rebuilt;

impl OperatorCatalog for Rebuilt {
    fn resolve(&self, reference: &str) -> std::result::Result<ResolvedOperator, String> {
        let mut resolved = Catalog.resolve(reference)?;
        resolved.digest = format!("{}-rebuilt", resolved.digest);
        Ok(resolved)
    }

    fn max_memory_bytes(&self) -> u64 {
        Catalog.max_memory_bytes()
    }
}

#[test]
fn a_version_is_the_file_with_the_components_it_resolved_to() {
    let dag = |catalog: &dyn OperatorCatalog| {
        parse_dag_file("acme", "x.toml", FULL, catalog)
            .unwrap()
            .version
    };
    // Another build of an operator the file names makes another version, so a
    // run made before keeps running the build it started with.
    assert_eq!(dag(&Catalog), dag(&Catalog));
    assert_ne!(dag(&Catalog), dag(&Rebuilt));
}
