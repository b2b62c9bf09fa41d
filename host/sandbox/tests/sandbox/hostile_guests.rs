//! Guests the standard operators cannot imitate: busy loops, traps, memory growth, the context imports.

use super::*;

#[tokio::test]
async fn a_busy_loop_is_interrupted_at_its_timeout() {
    let sandbox = empty_sandbox();
    let bytes = wat_operator("spin", "1.0.0", "", "(loop $l (br $l)) (i32.const 0)");
    let meta = sandbox.registry().add(&bytes).unwrap();
    let req = TryRequest::new(
        "default",
        meta.digest,
        task("spin"),
        json!({}),
        timeout(250),
        Arc::new(NoHostServices),
    );
    let started = Instant::now();
    let (report, log) = run(&sandbox, req).await;
    assert_eq!(
        report.result,
        TryResult::Failed("execution_timeout of 0.25s exceeded".into())
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(log.contains("ERROR wasm backtrace:\n"), "{log}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_busy_loop_yields_its_thread_to_other_tries() {
    // One thread: a spinning guest must yield for the second try to run at all.
    let sandbox = empty_sandbox();
    let spin = sandbox
        .registry()
        .add(&wat_operator(
            "spin",
            "1.0.0",
            "",
            "(loop $l (br $l)) (i32.const 0)",
        ))
        .unwrap();
    let quick = sandbox
        .registry()
        .add(&simple_operator("quick", "1.0.0"))
        .unwrap();
    let spinning = spawn_run(
        &sandbox,
        TryRequest::new(
            "default",
            spin.digest,
            task("spin"),
            json!({}),
            timeout(3_000),
            Arc::new(NoHostServices),
        ),
    );
    tokio::task::yield_now().await;
    let started = Instant::now();
    let req = TryRequest::new(
        "default",
        quick.digest,
        task("quick"),
        json!({}),
        Limits::default(),
        Arc::new(NoHostServices),
    );
    assert_eq!(sandbox.run(req).await.result, TryResult::Success(None));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        spinning.await.unwrap().result,
        TryResult::Failed(_)
    ));
}

#[tokio::test]
async fn a_trap_fails_the_try_with_the_trap_message() {
    let sandbox = empty_sandbox();
    let meta = sandbox
        .registry()
        .add(&wat_operator("trap", "1.0.0", "", "unreachable"))
        .unwrap();
    let req = TryRequest::new(
        "default",
        meta.digest,
        task("trap"),
        json!({}),
        Limits::default(),
        Arc::new(NoHostServices),
    );
    let (report, log) = run(&sandbox, req).await;
    assert_eq!(
        report.result,
        TryResult::Failed("wasm trap: wasm `unreachable` instruction executed".into())
    );
    assert!(log.contains("ERROR wasm backtrace:\n"), "{log}");
}

#[tokio::test]
async fn growing_memory_past_the_cap_traps_with_the_limit() {
    let sandbox = empty_sandbox();
    let grow = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (i32.const 2048)";
    let meta = sandbox
        .registry()
        .add(&wat_operator("bomb", "1.0.0", "", grow))
        .unwrap();
    let limits = Limits {
        memory_bytes: Some(8 << 20),
        ..Limits::default()
    };
    let req = TryRequest::new(
        "default",
        meta.digest,
        task("bomb"),
        json!({}),
        limits,
        Arc::new(NoHostServices),
    );
    let (report, _) = run(&sandbox, req).await;
    assert_eq!(
        report.result,
        TryResult::Failed("memory limit of 8388608 bytes (8 MiB) exceeded".into())
    );
}

/// Host services that answer from fixed data, to check the delegation.
struct FixedServices;

#[async_trait::async_trait]
impl HostServices for FixedServices {
    async fn xcom_pull(&self, task_id: &str, key: Option<&str>) -> Option<String> {
        Some(format!("\"{task_id}:{}\"", key.unwrap_or("return_value")))
    }
    async fn variable(&self, key: &str) -> Option<String> {
        (key == "region").then(|| "eu".into())
    }
    async fn connection(&self, conn_id: &str) -> Result<String, String> {
        Err(format!("no connection {conn_id}"))
    }
}

/// `execute` of an operator that uses the context imports: pushes a good and a
/// bad XCom (logging the refusal), reads variable `region` and logs its value.
const CONTEXT_USER: &str = r#"
    (call $push (i32.const {ptr:k}) (i32.const {len:k}) (i32.const {ptr:[1]}) (i32.const {len:[1]}) (i32.const 1024))
    (call $push (i32.const {ptr:bad}) (i32.const {len:bad}) (i32.const {ptr:{"}) (i32.const {len:{"}) (i32.const 1024))
    (if (i32.load8_u (i32.const 1024))
      (then (call $log (i32.const 2) (i32.load (i32.const 1028)) (i32.load (i32.const 1032)))))
    (call $var (i32.const {ptr:region}) (i32.const {len:region}) (i32.const 1040))
    (if (i32.load8_u (i32.const 1040))
      (then (call $log (i32.const 1) (i32.load (i32.const 1044)) (i32.load (i32.const 1048)))))
    (i32.const 2048)"#;

#[tokio::test]
async fn context_imports_reach_the_log_the_report_and_the_host_services() {
    let sandbox = empty_sandbox();
    let meta = sandbox
        .registry()
        .add(&wat_operator("ctx", "1.0.0", "", CONTEXT_USER))
        .unwrap();
    let req = TryRequest::new(
        "default",
        meta.digest,
        task("ctx"),
        json!({}),
        Limits::default(),
        Arc::new(FixedServices),
    );
    let (report, log) = run(&sandbox, req).await;
    assert_eq!(report.result, TryResult::Success(None), "{log}");
    assert_eq!(report.xcom, [("k".to_owned(), "[1]".to_owned())]);
    assert!(
        log.contains("] WARN XCom value `bad` is not valid JSON"),
        "{log}"
    );
    assert!(log.contains("] INFO eu\n"), "{log}");
}

#[test]
fn describe_may_not_use_try_scoped_imports() {
    let sandbox = empty_sandbox();
    let pushy = r#"(call $push (i32.const {ptr:k}) (i32.const {len:k}) (i32.const {ptr:1}) (i32.const {len:1}) (i32.const 1024))"#;
    let err = sandbox
        .registry()
        .add(&wat_operator("pushy", "1.0.0", pushy, "(i32.const 2048)"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "describe() failed: describe() called context.xcom-push, which only exists while a task runs"
    );
    // Logging from describe is harmless and allowed.
    let chatty = r#"(call $log (i32.const 1) (i32.const {ptr:hello}) (i32.const {len:hello}))"#;
    sandbox
        .registry()
        .add(&wat_operator("chatty", "1.0.0", chatty, "(i32.const 2048)"))
        .unwrap();
}
