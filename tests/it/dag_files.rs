//! The DAG processor in the running host: a broken file becomes an import error while
//! the other DAGs keep running, and new, changed and deleted files are picked up
//! through filesystem events.

use aileron_model::DagRunState;
use aileron_tests::Env;
use std::time::{Duration, Instant};

const GOOD: &str = r#"
[tasks.a]
operator = "noop"
"#;

const CYCLE: &str = r#"
[tasks.a]
operator = "noop"
upstream = ["b"]
[tasks.b]
operator = "noop"
upstream = ["a"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_is_an_import_error_and_the_rest_runs() {
    let env = Env::builder()
        .dag("good.toml", GOOD)
        .dag("cycle.toml", CYCLE)
        .dag("syntax.toml", "[tasks.a\noperator = 1")
        .dag(
            "unknown_op.toml",
            "[tasks.a]\noperator = \"no_such_operator\"\n",
        )
        .start()
        .await;
    let errors = env.import_errors();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("cycle.toml") && e.contains("cycle")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("syntax.toml:Some(1)")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("unknown_op.toml") && e.contains("no_such_operator")),
        "{errors:?}"
    );
    let o = env.run("good", serde_json::json!({})).await;
    assert_eq!(o.run.state, DagRunState::Success);
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_changed_and_deleted_files_are_picked_up_within_a_second() {
    let env = Env::builder()
        .dag("first.toml", GOOD)
        .watching()
        .start()
        .await;
    let dag_active = |id: &str| {
        env.app
            .metastore
            .dag("default", id)
            .unwrap()
            .is_some_and(|d| d.is_active)
    };
    wait_until("the first DAG", || dag_active("first")).await;

    let t = Instant::now();
    std::fs::write(env.dags.join("second.toml"), GOOD).unwrap();
    wait_until("a new file", || dag_active("second")).await;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );

    // Breaking a file keeps its last good version and shows an import error.
    let version = env
        .app
        .metastore
        .dag("default", "second")
        .unwrap()
        .unwrap()
        .version;
    std::fs::write(env.dags.join("second.toml"), CYCLE).unwrap();
    wait_until("the import error", || !env.import_errors().is_empty()).await;
    assert_eq!(
        env.app
            .metastore
            .dag("default", "second")
            .unwrap()
            .unwrap()
            .version,
        version
    );

    // Fixing it clears the error and makes a new version.
    std::fs::write(
        env.dags.join("second.toml"),
        "description = \"v2\"\n[tasks.b]\noperator = \"noop\"\n",
    )
    .unwrap();
    wait_until("the fix", || env.import_errors().is_empty()).await;
    let fixed = env.app.metastore.dag("default", "second").unwrap().unwrap();
    assert_ne!(fixed.version, version);
    let o = env.run("second", serde_json::json!({})).await;
    assert!(o.tis.contains_key(&("b".to_owned(), -1)));

    let t = Instant::now();
    std::fs::remove_file(env.dags.join("second.toml")).unwrap();
    wait_until("the deletion", || !dag_active("second")).await;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    // Its history stays readable.
    assert_eq!(
        env.app
            .metastore
            .dag_runs("default", "second")
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_subfolders_own_their_dags() {
    let env = Env::builder()
        .dag("team_a/etl.toml", GOOD)
        .dag("etl.toml", GOOD)
        .start()
        .await;
    assert!(env.app.metastore.dag("team_a", "etl").unwrap().is_some());
    assert!(env.app.metastore.dag("default", "etl").unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_a_tenant_that_does_not_exist_waits_for_the_tenant() {
    let env = Env::builder().dag("etl.toml", GOOD).start().await;
    let metastore = &env.app.metastore;
    std::fs::create_dir_all(env.dags.join("ghost")).unwrap();
    std::fs::write(env.dags.join("ghost/etl.toml"), GOOD).unwrap();
    // What creating or deleting a tenant asks for (`POST /api/v1/tenants`).
    env.app.rescan.notify_one();
    until("the import error", || {
        !metastore.tenant_import_errors("ghost").unwrap().is_empty()
    })
    .await;
    let errors = metastore.tenant_import_errors("ghost").unwrap();
    assert!(
        errors[0]
            .message
            .starts_with("tenant `ghost` does not exist"),
        "{}",
        errors[0].message
    );
    assert!(
        metastore.dag("ghost", "etl").unwrap().is_none(),
        "no silent tenant"
    );
    assert!(metastore.tenant("ghost").unwrap().is_none());
    assert!(
        metastore.dag("default", "etl").unwrap().is_some(),
        "the rest runs on"
    );

    metastore
        .create_tenant(&aileron::metastore::TenantRecord {
            name: aileron_model::TenantId::new("ghost").unwrap(),
            description: String::new(),
            created_at: jiff::Timestamp::now(),
            limits: Default::default(),
        })
        .unwrap();
    env.app.rescan.notify_one();
    until("the DAG", || {
        metastore.dag("ghost", "etl").unwrap().is_some()
    })
    .await;
    assert!(metastore.tenant_import_errors("ghost").unwrap().is_empty());
}

/// Waits (real time: the DAG processor parses on its own threads) for `ready`.
async fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
