//! XCom (return values, explicit push and pull) and params templating with Airflow's
//! context names, plus dynamic task mapping over a literal list and an upstream's
//! XCom list.

use aileron_model::DagRunState;
use aileron_model::TaskInstanceState::*;
use aileron_tests::{Env, Outcome, assert_run, assert_states};
use serde_json::{Value, json};

fn xcom(env: &Env, o: &Outcome, task: &str, key: &str) -> Vec<Value> {
    env.app
        .metastore
        .xcom("default", &o.run.dag_id, &o.run.run_id, task, key)
        .unwrap()
        .into_iter()
        .map(|(_, v)| serde_json::from_str(&v).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_values_push_pull_and_templates() {
    let dag = r#"
params = { region = "eu", size = 3 }

[tasks.hello]
operator = "echo"
params = { message = "hello {{ params.region }} on {{ ds }}" }

[tasks.pusher]
operator = "testkit"
params = { mode = "xcom", push = { answer = 42, nested = { a = [1, 2] } } }

[tasks.puller]
operator = "testkit"
upstream = ["pusher", "hello"]
params = { mode = "xcom", pull_task = "pusher", pull_key = "answer" }

[tasks.templated]
operator = "testkit"
upstream = ["hello"]
params = { mode = "params", greeting = "{{ ti.xcom_pull(task_ids='hello') }}!", conf_value = "{{ dag_run.conf.extra }}", size = "{{ params.size }}", run = "{{ run_id }}", nodash = "{{ ds_nodash }}", task = "{{ task.task_id }}" }
"#;
    let env = Env::builder().dag("xc.toml", dag).start().await;
    let o = env
        .run("xc", json!({"extra": "from conf", "region": "us"}))
        .await;
    assert_run(&o, DagRunState::Success);
    let ds = o.run.logical_date.strftime("%Y-%m-%d").to_string();
    // The run's conf overrides the DAG's params of the same name.
    assert_eq!(
        xcom(&env, &o, "hello", "return_value"),
        vec![json!(format!("hello us on {ds}"))]
    );
    assert_eq!(xcom(&env, &o, "pusher", "answer"), vec![json!(42)]);
    assert_eq!(
        xcom(&env, &o, "pusher", "nested"),
        vec![json!({"a": [1, 2]})]
    );
    assert_eq!(
        xcom(&env, &o, "puller", "return_value"),
        vec![json!({"pulled": 42})]
    );
    let rendered = &xcom(&env, &o, "templated", "return_value")[0];
    let params = &rendered["params"];
    assert_eq!(params["greeting"], json!(format!("hello us on {ds}!")));
    assert_eq!(params["conf_value"], json!("from conf"));
    // A whole-value template keeps its native type.
    assert_eq!(params["size"], json!(3));
    assert_eq!(params["run"], json!(o.run.run_id));
    assert_eq!(params["nodash"], json!(ds.replace('-', "")));
    assert_eq!(params["task"], json!("templated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_over_a_literal_list_and_an_upstream_xcom_list() {
    let dag = r#"
[tasks.each]
operator = "echo"
expand = { message = ["a", "b", "c"] }

[tasks.make_list]
operator = "testkit"
params = { mode = "return", value = ["x", "y"] }

[tasks.each_from_xcom]
operator = "echo"
upstream = ["make_list"]
expand = { message = "{{ ti.xcom_pull(task_ids='make_list') }}" }

[tasks.collect]
operator = "testkit"
upstream = ["each"]
params = { mode = "xcom", pull_task = "each" }

[tasks.none]
operator = "echo"
expand = { message = [] }
[tasks.after_none]
operator = "noop"
upstream = ["none"]
"#;
    let env = Env::builder().dag("mapped.toml", dag).start().await;
    let o = env.run("mapped", json!({})).await;
    let each = o.mapped("each");
    assert_eq!(each.len(), 3);
    assert!(each.iter().all(|t| t.state == Success));
    assert_eq!(
        each.iter().map(|t| t.map_index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(o.mapped("each_from_xcom").len(), 2);
    // The downstream task sees every mapped result, in map order.
    assert_eq!(
        xcom(&env, &o, "collect", "return_value"),
        vec![json!({"pulled": ["a", "b", "c"]})]
    );
    // An empty expansion skips the task and the skip propagates.
    assert_states(&o, &[("none", Skipped), ("after_none", Skipped)]);
    assert_run(&o, DagRunState::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expansion_beyond_the_cap_fails_the_task_with_a_readable_reason() {
    let items: Vec<String> = (0..1025).map(|i| format!("\"{i}\"")).collect();
    let dag = format!(
        "[tasks.huge]\noperator = \"echo\"\nexpand = {{ message = [{}] }}\n",
        items.join(",")
    );
    let env = Env::builder().dag("huge.toml", &dag).start().await;
    let o = env.run("huge", json!({})).await;
    assert_states(&o, &[("huge", Failed)]);
    assert!(o.mapped("huge").is_empty());
    let ti = o.ti("huge");
    assert_eq!(ti.try_number, 1);
    let reason = ti.tries[0].error.clone().unwrap();
    assert!(reason.contains("more than 1024"), "{reason}");
    assert!(env.log(ti, 1).contains("more than 1024"));
    assert_run(&o, DagRunState::Failed);
}

/// One try cannot bloat the metastore through XCom: the number of keys is capped,
/// key bytes count in the try's budget, and the guest sees the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xcom_keys_are_bounded_per_try() {
    let dag = r#"
[tasks.many_keys]
operator = "testkit"
params = { mode = "xcom_flood", count = 200000, key_bytes = 500 }

[tasks.key_bytes]
operator = "testkit"
params = { mode = "xcom_flood", count = 2000, key_bytes = 500, value_bytes = 600 }
"#;
    let env = Env::builder().dag("flood.toml", dag).start().await;
    let o = env.run("flood", json!({})).await;
    assert_run(&o, DagRunState::Success);
    let result = |task: &str| xcom(&env, &o, task, "return_value").remove(0);

    // 500-byte keys with 1-byte values (the report: 200,000 accepted): at most
    // 1,000 keys per try.
    let many = result("many_keys");
    assert_eq!(many["pushed"], json!(1000), "{many}");
    assert!(
        many["error"]
            .as_str()
            .unwrap()
            .contains("already pushed 1000 XCom keys"),
        "{many}"
    );
    // 500-byte keys with 600-byte values: the 1 MiB budget counts both, so it
    // holds 953 of them (values alone would have let 1,747 through).
    let bytes = result("key_bytes");
    let budget = aileron_sandbox::DEFAULT_XCOM_TOTAL_BYTES as u64;
    assert_eq!(bytes["pushed"], json!(budget / 1100), "{bytes}");
    assert!(
        bytes["error"]
            .as_str()
            .unwrap()
            .contains(&format!("over the limit of {budget} bytes")),
        "{bytes}"
    );
    // What was accepted is what was stored: the pushes plus the return value.
    let stored = |task: &str| {
        env.app
            .metastore
            .xcom_entries("default", "flood", &o.run.run_id, task, -1)
            .unwrap()
            .len() as u64
    };
    assert_eq!(stored("many_keys"), 1001);
    assert_eq!(stored("key_bytes"), budget / 1100 + 1);
}
