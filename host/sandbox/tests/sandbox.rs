//! The sandbox and registry against real components: the embedded standard
//! operators, and small operators written here in the component text format to
//! reach cases the standard ones cannot (busy loops, traps, hostile `describe`,
//! several versions of one operator).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aileron_sandbox::{
    HostServices, Limits, LogBuffer, NoHostServices, OperatorMeta, RegistryError, STANDARD_PLUGINS,
    Sandbox, SandboxConfig, TaskInfo, TryReport, TryRequest, TryResult, host_allowed,
};
use serde_json::json;

/// Paths of the components in `tests/guests/`, built by this crate's build script.
mod guests {
    include!(concat!(env!("OUT_DIR"), "/test_guests.rs"));
}

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// Few slots: tests run in parallel, each sandbox reserves address space per slot.
fn small_config() -> SandboxConfig {
    SandboxConfig {
        max_concurrent: 64,
        ..SandboxConfig::default()
    }
}

/// One sandbox with the standard operators for all run tests: compiling them once
/// keeps the suite fast.
fn shared() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(small_config()).expect("sandbox with standard operators"))
}

/// A sandbox without the standard operators, for registry tests that need a
/// registry of their own.
fn empty_sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_concurrent: 8,
        load_builtin: false,
        describe_timeout: Duration::from_millis(300),
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

fn task(task_id: &str) -> TaskInfo {
    TaskInfo {
        dag_id: "example".into(),
        run_id: "manual__2026-01-01T00:00:00+00:00".into(),
        task_id: task_id.into(),
        map_index: None,
        try_number: 1,
        logical_date: "2026-01-01T00:00:00+00:00".into(),
        data_interval_start: "2026-01-01T00:00:00+00:00".into(),
        data_interval_end: "2026-01-02T00:00:00+00:00".into(),
    }
}

fn digest_of(sandbox: &Sandbox, name: &str) -> String {
    sandbox.registry().resolve(name).expect(name).digest
}

fn request(
    sandbox: &Sandbox,
    operator: &str,
    params: serde_json::Value,
    limits: Limits,
) -> TryRequest {
    TryRequest::new(
        "default",
        digest_of(sandbox, operator),
        task(operator),
        params,
        limits,
        Arc::new(NoHostServices),
    )
}

/// Runs a try and returns its report and log.
async fn run(sandbox: &Sandbox, req: TryRequest) -> (TryReport, String) {
    let log = req.log.clone();
    let report = sandbox.run(req).await;
    (report, log.snapshot())
}

fn last_line(log: &str) -> &str {
    log.lines().last().unwrap_or_default()
}

fn timeout(ms: u64) -> Limits {
    Limits {
        timeout: Some(Duration::from_millis(ms)),
        ..Limits::default()
    }
}

/// A minimal operator component in the text format, importing `context.log`,
/// `context.xcom-push` and `context.variable` (as core functions `$log`, `$push` and
/// `$var` of its main module). `describe` runs `describe_prelude`, then returns
/// `name` and `version`; `execute` runs `execute_body`, which leaves a pointer to
/// its result on the stack (zeroed memory at 2048 reads as `ok(success(none))`).
///
/// Both bodies may write `{ptr:S}` and `{len:S}` for the address and length of a
/// string `S` placed in memory, e.g. `(call $log (i32.const 1) (i32.const {ptr:hi})
/// (i32.const {len:hi}))`. Scratch space for host results starts at 1024.
fn wat_operator(name: &str, version: &str, describe_prelude: &str, execute_body: &str) -> Vec<u8> {
    let mut strings: Vec<String> = vec![
        name.into(),
        version.into(),
        "test operator".into(),
        r#"{"type":"object"}"#.into(),
    ];
    for body in [describe_prelude, execute_body] {
        for piece in body.split("{ptr:").skip(1) {
            strings.push(piece.split('}').next().unwrap().to_owned());
        }
    }
    let mut data = String::new();
    let mut offset = 16;
    let (mut describe_prelude, mut execute_body) =
        (describe_prelude.to_owned(), execute_body.to_owned());
    let mut at = Vec::new();
    for s in &strings {
        data.push_str(&format!(
            "(data (i32.const {offset}) \"{}\")\n",
            s.replace('\\', "\\\\").replace('"', "\\\"")
        ));
        for body in [&mut describe_prelude, &mut execute_body] {
            *body = body
                .replace(&format!("{{ptr:{s}}}"), &offset.to_string())
                .replace(&format!("{{len:{s}}}"), &s.len().to_string());
        }
        at.push((offset, s.len()));
        offset += s.len() + 1;
    }
    assert!(offset < 512, "strings fit below the describe result");
    let mut stores = String::new();
    for (i, (ptr, len)) in at.iter().take(4).enumerate() {
        stores.push_str(&format!(
            "(i32.store (i32.const {}) (i32.const {ptr})) (i32.store (i32.const {}) (i32.const {len}))\n",
            512 + i * 8,
            516 + i * 8
        ));
    }
    let text = format!(
        r#"(component
  (type $level' (enum "debug" "info" "warn" "error"))
  (import "aileron:operator/context@0.1.0" (instance $ctx
    (export "level" (type $level (eq $level')))
    (export "log" (func (param "level" $level) (param "message" string)))
    (export "xcom-push" (func (param "key" string) (param "value" string) (result (result (error string)))))
    (export "variable" (func (param "key" string) (result (option string))))))
  (core module $alloc
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $ptr i32)
      (local.set $ptr (i32.and
        (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
      (global.set $bump (i32.add (local.get $ptr) (local.get 3)))
      (local.get $ptr)))
  (core instance $a (instantiate $alloc))
  (alias core export $a "memory" (core memory $memory))
  (core func $log (canon lower (func $ctx "log") (memory $memory)))
  (core func $push (canon lower (func $ctx "xcom-push") (memory $memory) (realloc (core func $a "realloc"))))
  (core func $var (canon lower (func $ctx "variable") (memory $memory) (realloc (core func $a "realloc"))))
  (core module $main
    (import "env" "memory" (memory 1))
    (import "host" "log" (func $log (param i32 i32 i32)))
    (import "host" "push" (func $push (param i32 i32 i32 i32 i32)))
    (import "host" "var" (func $var (param i32 i32 i32)))
    {data}
    (func (export "describe") (result i32)
      {describe_prelude}
      {stores}
      (i32.const 512))
    (func (export "execute") (param i32) (result i32)
      {execute_body}))
  (core instance $i (instantiate $main
    (with "env" (instance (export "memory" (memory $memory))))
    (with "host" (instance (export "log" (func $log)) (export "push" (func $push)) (export "var" (func $var))))))
  (type $info' (record (field "name" string) (field "version" string)
                       (field "description" string) (field "params-schema" string)))
  (export $info "operator-info" (type $info'))
  (type $task-info' (record (field "dag-id" string) (field "run-id" string) (field "task-id" string)
                            (field "map-index" (option u32)) (field "try-number" u32)
                            (field "logical-date" string) (field "data-interval-start" string)
                            (field "data-interval-end" string)))
  (export $task-info "task-info" (type $task-info'))
  (type $outcome' (variant (case "success" (option string)) (case "skip" string)
                           (case "branch" (list string)) (case "reschedule" u64)))
  (export $outcome "outcome" (type $outcome'))
  (type $task-error' (variant (case "failed" string) (case "fatal" string)))
  (export $task-error "task-error" (type $task-error'))
  (func (export "describe") (result $info)
    (canon lift (core func $i "describe") (memory $memory) (realloc (core func $a "realloc"))))
  (func (export "execute") (param "info" $task-info) (param "params" string)
    (result (result $outcome (error $task-error)))
    (canon lift (core func $i "execute") (memory $memory) (realloc (core func $a "realloc"))))
)"#
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("test component: {e}\n{text}"))
}

/// A well-behaved operator whose `execute` succeeds at once.
fn simple_operator(name: &str, version: &str) -> Vec<u8> {
    wat_operator(name, version, "", "(i32.const 2048)")
}

/// Appends a custom section: same behaviour and `describe`, different digest.
fn with_custom_section(bytes: &[u8], payload: &str) -> Vec<u8> {
    let name = "aileron-test";
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload.as_bytes());
    assert!(content.len() < 128, "one-byte LEB128 size");
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(content.len() as u8);
    out.extend_from_slice(&content);
    out
}

/// Waits for the registry to announce `name`, or fails after `limit`.
async fn announced(
    events: &mut tokio::sync::broadcast::Receiver<OperatorMeta>,
    name: &str,
    limit: Duration,
) -> OperatorMeta {
    tokio::time::timeout(limit, async {
        loop {
            let meta = events.recv().await.expect("registry events");
            if meta.name == name {
                return meta;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("`{name}` was not registered within {limit:?}"))
}

// ---------------------------------------------------------------------------
// Running the standard operators
// ---------------------------------------------------------------------------

#[tokio::test]
async fn noop_succeeds_and_logs_its_start_and_end() {
    let sandbox = shared();
    let (report, log) = run(
        sandbox,
        request(sandbox, "noop", json!({}), Limits::default()),
    )
    .await;
    assert_eq!(report.result, TryResult::Success(None));
    assert!(report.xcom.is_empty());
    let first = log.lines().next().unwrap();
    assert!(first.contains("INFO Running noop@0.1.0 (sha256:"), "{log}");
    assert!(
        first.contains("for example.noop, try 1: memory limit 256 MiB, execution_timeout none"),
        "{log}"
    );
    assert!(last_line(&log).contains("INFO Task succeeded in"), "{log}");
}

#[tokio::test]
async fn null_params_reach_the_operator_as_an_empty_object() {
    let sandbox = shared();
    let (report, log) = run(
        sandbox,
        request(sandbox, "skip", json!(null), Limits::default()),
    )
    .await;
    assert_eq!(
        report.result,
        TryResult::Skip("skipped on purpose".into()),
        "{log}"
    );
}

#[tokio::test]
async fn echo_logs_and_returns_its_message() {
    let sandbox = shared();
    let req = request(
        sandbox,
        "echo",
        json!({"message": "hello, world"}),
        Limits::default(),
    );
    let (report, log) = run(sandbox, req).await;
    assert_eq!(
        report.result,
        TryResult::Success(Some("\"hello, world\"".into()))
    );
    assert!(log.contains("] INFO hello, world\n"), "{log}");
}

#[tokio::test]
async fn invalid_params_are_fatal() {
    let sandbox = shared();
    let (report, log) = run(
        sandbox,
        request(sandbox, "echo", json!({}), Limits::default()),
    )
    .await;
    let TryResult::Fatal(reason) = &report.result else {
        panic!("expected fatal, got {report:?}")
    };
    assert!(reason.contains("message"), "{reason}");
    assert!(
        last_line(&log).contains("ERROR Task failed without retry after"),
        "{log}"
    );
    assert!(last_line(&log).ends_with(reason.as_str()), "{log}");
}

#[tokio::test]
async fn fail_is_failed_or_fatal_and_the_reason_is_logged() {
    let sandbox = shared();
    let req = request(
        sandbox,
        "fail",
        json!({"message": "boom"}),
        Limits::default(),
    );
    let (report, log) = run(sandbox, req).await;
    assert_eq!(report.result, TryResult::Failed("boom".into()));
    assert!(last_line(&log).contains("ERROR Task failed after"), "{log}");
    assert!(last_line(&log).ends_with(": boom"), "{log}");

    let req = request(
        sandbox,
        "fail",
        json!({"message": "bad", "fatal": true}),
        Limits::default(),
    );
    assert_eq!(
        run(sandbox, req).await.0.result,
        TryResult::Fatal("bad".into())
    );

    // The try number reaches the guest: `until_try` succeeds from try 3 on.
    let mut req = request(sandbox, "fail", json!({"until_try": 3}), Limits::default());
    req.info.try_number = 3;
    assert_eq!(run(sandbox, req).await.0.result, TryResult::Success(None));
}

#[tokio::test]
async fn skip_and_branch_report_their_outcomes() {
    let sandbox = shared();
    let req = request(
        sandbox,
        "skip",
        json!({"reason": "holiday"}),
        Limits::default(),
    );
    let (report, log) = run(sandbox, req).await;
    assert_eq!(report.result, TryResult::Skip("holiday".into()));
    assert!(last_line(&log).contains("Task skipped in"), "{log}");

    let req = request(
        sandbox,
        "branch",
        json!({"follow": ["a", "c"]}),
        Limits::default(),
    );
    let (report, log) = run(sandbox, req).await;
    assert_eq!(
        report.result,
        TryResult::Branch(vec!["a".into(), "c".into()])
    );
    assert!(last_line(&log).contains("following a, c"), "{log}");
}

#[tokio::test]
async fn sleep_within_its_timeout_succeeds() {
    let sandbox = shared();
    let req = request(sandbox, "sleep", json!({"seconds": 0.05}), timeout(5_000));
    let (report, log) = run(sandbox, req).await;
    assert_eq!(report.result, TryResult::Success(None), "{log}");
    assert!(report.duration >= Duration::from_millis(50));
}

#[tokio::test]
async fn a_guest_blocked_in_a_host_call_is_stopped_at_its_timeout() {
    let sandbox = shared();
    let req = request(sandbox, "sleep", json!({"seconds": 30}), timeout(200));
    let started = Instant::now();
    let (report, log) = run(sandbox, req).await;
    let elapsed = started.elapsed();
    assert_eq!(
        report.result,
        TryResult::Failed("execution_timeout of 0.2s exceeded".into())
    );
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert!(
        last_line(&log).ends_with("execution_timeout of 0.2s exceeded"),
        "{log}"
    );
}

#[tokio::test]
async fn memory_over_the_cap_fails_the_try_with_the_limit() {
    let sandbox = shared();
    // A Rust operator's initial memory alone is over 64 KiB.
    let limits = Limits {
        memory_bytes: Some(64 << 10),
        ..Limits::default()
    };
    let (report, log) = run(sandbox, request(sandbox, "noop", json!({}), limits)).await;
    assert_eq!(
        report.result,
        TryResult::Failed("memory limit of 65536 bytes exceeded".into()),
        "{log}"
    );
}

#[tokio::test]
async fn an_unknown_digest_fails_with_a_clear_reason() {
    let sandbox = shared();
    let digest = format!("sha256:{}", "0".repeat(64));
    let req = TryRequest::new(
        "default",
        &digest,
        task("x"),
        json!({}),
        Limits::default(),
        Arc::new(NoHostServices),
    );
    let (report, log) = run(sandbox, req).await;
    let expected = format!("operator {digest} is not registered on this host");
    assert_eq!(report.result, TryResult::Failed(expected.clone()));
    assert!(last_line(&log).ends_with(&expected), "{log}");
}

#[tokio::test]
async fn a_full_log_still_ends_with_the_outcome() {
    let sandbox = shared();
    let limits = Limits {
        log_bytes: 300,
        ..Limits::default()
    };
    let req = request(
        sandbox,
        "echo",
        json!({"message": "x".repeat(2_000)}),
        limits,
    );
    let (report, log) = run(sandbox, req).await;
    assert!(matches!(report.result, TryResult::Success(Some(_))));
    assert!(log.contains("\n... log truncated at 300 bytes\n"), "{log}");
    assert!(last_line(&log).contains("Task succeeded in"), "{log}");
}

#[tokio::test]
async fn the_log_can_be_tailed_while_the_try_runs() {
    let sandbox = shared();
    let req = request(sandbox, "sleep", json!({"seconds": 0.3}), timeout(5_000));
    let log: Arc<LogBuffer> = req.log.clone();
    let mut lengths = log.subscribe();
    let running = spawn_run(sandbox, req);
    // The operator's "sleeping for" line arrives before the try ends.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !log.snapshot().contains("sleeping for") {
            lengths.changed().await.expect("log alive");
        }
    })
    .await
    .expect("the sleep line while sleeping");
    assert!(!running.is_finished());
    assert!(!log.snapshot().contains("Task succeeded"));
    assert_eq!(running.await.unwrap().result, TryResult::Success(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_tries_share_threads() {
    let sandbox = shared();
    // 40 tries each waiting 300 ms on two threads: concurrent, not serial (12 s).
    let started = Instant::now();
    let tries: Vec<_> = (0..40)
        .map(|_| {
            let req = request(sandbox, "sleep", json!({"seconds": 0.3}), timeout(10_000));
            spawn_run(sandbox, req)
        })
        .collect();
    for t in tries {
        assert_eq!(t.await.unwrap().result, TryResult::Success(None));
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Runs a try on its own tokio task.
fn spawn_run(sandbox: &Sandbox, req: TryRequest) -> tokio::task::JoinHandle<TryReport> {
    let sandbox = sandbox.clone();
    tokio::spawn(async move { sandbox.run(req).await })
}

// ---------------------------------------------------------------------------
// Guests the standard operators cannot imitate
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------

#[test]
fn the_standard_operators_are_registered_and_listed_in_order() {
    let list = shared().registry().list();
    let names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "branch",
            "echo",
            "fail",
            "http_sensor",
            "noop",
            "short_circuit",
            "skip",
            "sleep",
            "wait_until"
        ]
    );
    assert_eq!(STANDARD_PLUGINS.len(), 9);
    for meta in &list {
        assert!(meta.builtin);
        assert_eq!(meta.world, "aileron:operator/operator@0.2.0");
        assert!(meta.digest.starts_with("sha256:") && meta.digest.len() == 71);
        assert!(meta.params_schema.is_object());
        assert!(meta.size > 0);
    }
    let echo = list.iter().find(|m| m.name == "echo").unwrap();
    assert_eq!(echo.params_schema["required"], json!(["message"]));
}

#[test]
fn references_resolve_by_name_version_or_digest() {
    let registry = shared().registry();
    let echo = registry.resolve("echo").unwrap();
    assert_eq!(echo.version, "0.1.0");
    assert_eq!(registry.resolve("echo@0.1.0").unwrap(), echo);
    assert_eq!(
        registry.resolve(&format!("echo@{}", echo.digest)).unwrap(),
        echo
    );
    assert_eq!(registry.get(&echo.digest).unwrap(), echo);

    let err = |r: &str| registry.resolve(r).unwrap_err().to_string();
    let unknown = err("http");
    assert!(unknown.contains("unknown operator `http`"), "{unknown}");
    assert!(
        unknown.contains(
            "branch, echo, fail, http_sensor, noop, short_circuit, skip, sleep, wait_until"
        ),
        "{unknown}"
    );
    let version = err("echo@9.9.9");
    assert!(
        version.contains("has no version 9.9.9; available versions: 0.1.0"),
        "{version}"
    );
    let noop = registry.resolve("noop").unwrap();
    let mismatch = err(&format!("echo@{}", noop.digest));
    assert!(
        mismatch.contains("is operator `noop`, not `echo`"),
        "{mismatch}"
    );
    assert!(err("echo@sha256:00").contains("no registered component has digest"));
    assert!(err("Echo").contains("invalid operator reference"));
    assert!(err("echo@").contains("invalid operator reference"));
    assert!(err("echo@latest").contains("invalid operator reference"));
}

#[test]
fn the_registry_is_an_operator_catalog_for_dag_parsing() {
    use aileron_model::dag::OperatorCatalog;
    let registry = shared().registry();
    let resolved = OperatorCatalog::resolve(registry, "sleep").unwrap();
    assert_eq!(
        (resolved.name.as_str(), resolved.version.as_str()),
        ("sleep", "0.1.0")
    );
    assert_eq!(resolved.digest, registry.resolve("sleep").unwrap().digest);
    assert!(resolved.params_schema.is_object());
    let err = OperatorCatalog::resolve(registry, "nope").unwrap_err();
    assert!(err.contains("registered operators: branch, echo"), "{err}");
}

#[test]
fn adding_known_bytes_is_idempotent() {
    let registry = shared().registry();
    let (name, bytes) = STANDARD_PLUGINS.iter().find(|(n, _)| *n == "echo").unwrap();
    let mut events = registry.subscribe();
    let meta = registry.add(bytes).unwrap();
    assert_eq!(&meta.name, name);
    assert!(meta.builtin, "the builtin registration is kept");
    assert!(events.try_recv().is_err(), "no event for a known component");
}

#[test]
fn a_new_build_under_a_registered_version_is_refused() {
    let registry = shared().registry();
    let (_, bytes) = STANDARD_PLUGINS.iter().find(|(n, _)| *n == "echo").unwrap();
    let rebuilt = with_custom_section(bytes, "rebuilt");
    let err = registry.add(&rebuilt).unwrap_err();
    assert!(
        matches!(err, RegistryError::VersionConflict { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("echo@0.1.0 is already registered as sha256:"),
        "{err}"
    );
    assert!(err.to_string().contains("give the new build"), "{err}");
}

#[test]
fn a_standard_operator_name_cannot_be_taken_by_another_component() {
    let sandbox = empty_sandbox();
    let registry = sandbox.registry();
    registry.load_builtin().unwrap();
    let standard = registry.resolve("echo").unwrap();
    for (name, version) in [
        ("echo", "9.9.9"),
        ("noop", "0.0.1"),
        ("http_sensor", "2.0.0"),
    ] {
        let err = registry.add(&simple_operator(name, version)).unwrap_err();
        assert!(
            matches!(&err, RegistryError::ReservedName { name: n, .. } if n == name),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "operator name `{name}` is reserved for the standard operator; \
                 give {name}@{version} a name of its own"
            )
        );
    }
    // A bare name, a version and the digest all still mean the standard one.
    assert_eq!(registry.resolve("echo").unwrap(), standard);
    assert!(registry.resolve("echo@9.9.9").is_err());
    assert_eq!(
        registry.list().iter().filter(|m| m.name == "echo").count(),
        1
    );
    // Names that merely contain a standard one are free.
    registry.add(&simple_operator("echo2", "1.0.0")).unwrap();
}

#[test]
fn versions_live_side_by_side_and_the_highest_wins() {
    let sandbox = empty_sandbox();
    let registry = sandbox.registry();
    let mut events = registry.subscribe();
    for version in ["1.9.0", "1.10.0", "1.10.0-rc.1", "0.3.0"] {
        registry.add(&simple_operator("multi", version)).unwrap();
        assert_eq!(events.try_recv().unwrap().version, version);
    }
    assert_eq!(registry.resolve("multi").unwrap().version, "1.10.0");
    assert_eq!(registry.resolve("multi@1.9.0").unwrap().version, "1.9.0");
    let versions: Vec<String> = registry.list().into_iter().map(|m| m.version).collect();
    assert_eq!(versions, ["0.3.0", "1.9.0", "1.10.0-rc.1", "1.10.0"]);
    let err = registry.resolve("multi@2.0.0").unwrap_err().to_string();
    assert!(
        err.contains("available versions: 0.3.0, 1.9.0, 1.10.0-rc.1, 1.10.0"),
        "{err}"
    );
}

#[test]
fn what_is_not_an_operator_is_refused_with_what_is_wrong() {
    let sandbox = empty_sandbox();
    let registry = sandbox.registry();
    let err = |bytes: &[u8]| registry.add(bytes).unwrap_err().to_string();

    let empty = err(&wat::parse_str("(component)").unwrap());
    assert!(
        empty.contains("does not target aileron:operator/operator@0.2.0 (nor the older 0.1.0)")
            && empty.contains("does not export `describe` or `execute` (its exports: none)"),
        "{empty}"
    );

    let run_only = wat::parse_str(
        r#"(component
             (core module $m (func (export "run") (result i32) (i32.const 0)))
             (core instance $i (instantiate $m))
             (func (export "run") (result (result)) (canon lift (core func $i "run"))))"#,
    )
    .unwrap();
    let run_only = err(&run_only);
    assert!(run_only.contains("(its exports: run)"), "{run_only}");

    let wrong_type = wat::parse_str(
        r#"(component
             (core module $m (func (export "f") (param i32) (result i32) (i32.const 0)))
             (core instance $i (instantiate $m))
             (func (export "describe") (param "x" u32) (result u32) (canon lift (core func $i "f")))
             (func (export "execute") (param "x" u32) (result u32) (canon lift (core func $i "f"))))"#,
    )
    .unwrap();
    let wrong_type = err(&wrong_type);
    assert!(
        wrong_type.contains("does not target aileron:operator/operator@0.2.0"),
        "{wrong_type}"
    );

    let core = err(&wat::parse_str("(module)").unwrap());
    assert!(
        core.contains("core WebAssembly module") && core.contains("wasm32-wasip2"),
        "{core}"
    );
    assert!(err(b"#!/bin/sh\necho hi\n").contains("not a WebAssembly binary"));
    assert!(registry.list().is_empty());
}

#[test]
fn a_component_needing_imports_the_sandbox_lacks_is_refused() {
    let sandbox = empty_sandbox();
    let needy = wat::parse_str(
        r#"(component
             (import "wasi:keyvalue/store@0.2.0" (instance (export "open" (func))))
             (core module $m (func (export "f") (param i32) (result i32) (i32.const 0)))
             (core instance $i (instantiate $m))
             (func (export "describe") (param "x" u32) (result u32) (canon lift (core func $i "f")))
             (func (export "execute") (param "x" u32) (result u32) (canon lift (core func $i "f"))))"#,
    )
    .unwrap();
    let err = sandbox.registry().add(&needy).unwrap_err();
    assert!(matches!(err, RegistryError::UnsupportedImport(_)), "{err}");
    assert!(
        err.to_string().contains("wasi:keyvalue/store@0.2.0")
            && err
                .to_string()
                .contains("wasi:http/outgoing-handler included"),
        "{err}"
    );
}

#[test]
fn a_hostile_describe_cannot_hang_or_exhaust_the_host() {
    let sandbox = empty_sandbox();
    let registry = sandbox.registry();

    let started = Instant::now();
    let looping = wat_operator("looping", "1.0.0", "(loop $l (br $l))", "(i32.const 2048)");
    let err = registry.add(&looping).unwrap_err().to_string();
    assert_eq!(err, "describe() failed: it did not return within 0.3s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let bomb = wat_operator(
        "bomb",
        "1.0.0",
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))",
        "(i32.const 2048)",
    );
    let err = registry.add(&bomb).unwrap_err().to_string();
    assert_eq!(
        err,
        "describe() failed: memory limit of 268435456 bytes (256 MiB) exceeded"
    );

    let trapping = wat_operator("trapping", "1.0.0", "unreachable", "(i32.const 2048)");
    let err = registry.add(&trapping).unwrap_err().to_string();
    assert!(err.contains("describe() failed: wasm trap"), "{err}");
    assert!(registry.list().is_empty());
}

#[test]
fn describe_must_return_a_sane_name_and_version() {
    let sandbox = empty_sandbox();
    let err = |name: &str, version: &str| {
        sandbox
            .registry()
            .add(&simple_operator(name, version))
            .unwrap_err()
            .to_string()
    };
    assert!(
        err("Bad Name", "1.0.0").contains("name `Bad Name` must start with a lower-case letter")
    );
    assert!(err("ok", "one").contains("version `one` is not a semantic version"));
}

// ---------------------------------------------------------------------------
// Store, drop-ins, watching, cache
// ---------------------------------------------------------------------------

fn store_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn open_store_loads_the_store_and_ingests_drop_ins() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();

    // First start: a good and a bad drop-in.
    let good = simple_operator("dropped", "1.0.0");
    std::fs::write(plugins.join("dropped.wasm"), &good).unwrap();
    std::fs::write(plugins.join("broken.wasm"), b"not wasm").unwrap();
    std::fs::write(plugins.join("notes.txt"), b"ignored").unwrap();
    let sandbox = empty_sandbox();
    let loaded = sandbox.registry().open_store(plugins).unwrap();
    assert_eq!(loaded.len(), 1);
    let digest = loaded[0].digest.clone();
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert_eq!(store_files(plugins), [format!("sha256-{hex}.wasm")]);
    let rejected = sandbox.registry().rejected();
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].path.ends_with("broken.wasm"));
    assert!(
        rejected[0].error.contains("not a WebAssembly binary"),
        "{rejected:?}"
    );

    // `install` adds to the store too.
    let installed = sandbox
        .registry()
        .install(plugins, &simple_operator("installed", "2.0.0"))
        .unwrap();
    assert_eq!(store_files(plugins).len(), 2);

    // Next start: the store alone brings both back, even with the drop-in gone.
    std::fs::remove_file(plugins.join("dropped.wasm")).unwrap();
    let again = empty_sandbox();
    let loaded = again.registry().open_store(plugins).unwrap();
    let mut names: Vec<&str> = loaded.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["dropped", "installed"]);
    assert_eq!(again.registry().resolve("installed").unwrap(), installed);
    assert!(!again.registry().get(&digest).unwrap().builtin);
}

#[test]
fn a_corrupt_store_file_is_reported_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    std::fs::create_dir_all(plugins.join("store")).unwrap();
    let liar = plugins
        .join("store")
        .join(format!("sha256-{}.wasm", "ab".repeat(32)));
    std::fs::write(&liar, simple_operator("liar", "1.0.0")).unwrap();
    let sandbox = empty_sandbox();
    assert!(sandbox.registry().open_store(plugins).unwrap().is_empty());
    let rejected = sandbox.registry().rejected();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].error.contains("not the digest its name says"),
        "{rejected:?}"
    );
}

#[test]
fn component_bytes_are_served_from_the_embedded_operators_and_the_store() {
    // A standard operator: its embedded bytes.
    let sandbox = shared();
    let noop = digest_of(sandbox, "noop");
    let embedded = STANDARD_PLUGINS
        .iter()
        .find(|(name, _)| *name == "noop")
        .unwrap()
        .1;
    let bytes = sandbox.registry().component_bytes(&noop).unwrap();
    assert_eq!(bytes.as_deref(), Some(embedded));

    // Unknown digests, and components only added (never stored), have none.
    let unknown = format!("sha256:{}", "00".repeat(32));
    assert_eq!(sandbox.registry().component_bytes(&unknown).unwrap(), None);
    assert_eq!(sandbox.registry().component_bytes("noop").unwrap(), None);
    let first = empty_sandbox();
    let registry = first.registry();
    let added = registry.add(&simple_operator("added", "1.0.0")).unwrap();
    assert_eq!(registry.component_bytes(&added.digest).unwrap(), None);

    // Installed, dropped in, or loaded from the store at a later start: the store file.
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    let installed_bytes = simple_operator("installed", "1.0.0");
    let installed = registry.install(plugins, &installed_bytes).unwrap();
    let dropped_bytes = simple_operator("dropped", "1.0.0");
    std::fs::write(plugins.join("dropped.wasm"), &dropped_bytes).unwrap();
    registry.open_store(plugins).unwrap();
    let dropped = registry.resolve("dropped").unwrap();
    std::fs::remove_file(plugins.join("dropped.wasm")).unwrap();
    // `add` first and `install` later counts too.
    let added = registry
        .install(plugins, &simple_operator("added", "1.0.0"))
        .unwrap();
    let again = empty_sandbox();
    again.registry().open_store(plugins).unwrap();
    for registry in [registry, again.registry()] {
        let bytes = |digest: &str| registry.component_bytes(digest).unwrap().unwrap();
        assert_eq!(bytes(&installed.digest), installed_bytes);
        assert_eq!(bytes(&dropped.digest), dropped_bytes);
        assert_eq!(bytes(&added.digest), simple_operator("added", "1.0.0"));
    }

    // A store file changed or removed behind the registry's back is an error, not
    // bytes that are not the digest's.
    let hex = installed.digest.strip_prefix("sha256:").unwrap();
    let file = plugins.join("store").join(format!("sha256-{hex}.wasm"));
    std::fs::write(&file, &dropped_bytes).unwrap();
    let err = registry.component_bytes(&installed.digest).unwrap_err();
    assert!(
        matches!(err, RegistryError::CorruptStoreFile { .. }),
        "{err}"
    );
    std::fs::remove_file(&file).unwrap();
    let err = registry.component_bytes(&installed.digest).unwrap_err();
    assert!(matches!(err, RegistryError::Io { .. }), "{err}");
}

#[tokio::test]
async fn watching_picks_up_new_drop_ins_and_store_files() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().to_owned();
    let sandbox = empty_sandbox();
    sandbox.registry().open_store(&plugins).unwrap();
    let _guard = sandbox.registry().watch(&plugins).unwrap();
    let mut events = sandbox.registry().subscribe();

    std::fs::write(plugins.join("late.wasm"), simple_operator("late", "1.0.0")).unwrap();
    let meta = announced(&mut events, "late", Duration::from_secs(3)).await;
    assert_eq!(sandbox.registry().resolve("late").unwrap(), meta);

    // Another process installing into the store (here: another registry).
    let other = empty_sandbox();
    other
        .registry()
        .install(&plugins, &simple_operator("elsewhere", "1.0.0"))
        .unwrap();
    announced(&mut events, "elsewhere", Duration::from_secs(3)).await;

    // A bad drop-in is reported, and forgotten once removed.
    let bad = plugins.join("bad.wasm");
    std::fs::write(&bad, b"garbage").unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while sandbox.registry().rejected().is_empty() {
        assert!(Instant::now() < deadline, "bad drop-in not reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_file(&bad).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !sandbox.registry().rejected().is_empty() {
        assert!(Instant::now() < deadline, "removed drop-in still reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_default_configuration_fits_this_machine() {
    // 1000 slots reserve about 8 TiB of address space for linear memories; this
    // checks the pool can be created, not that it is used.
    let sandbox = Sandbox::new(SandboxConfig {
        load_builtin: false,
        ..SandboxConfig::default()
    })
    .expect("default sandbox");
    assert!(sandbox.registry().list().is_empty());
}

#[test]
fn compiled_components_are_cached_per_engine() {
    let dir = tempfile::tempdir().unwrap();
    let config = || SandboxConfig {
        max_concurrent: 8,
        load_builtin: false,
        cache_dir: Some(dir.path().to_owned()),
        ..SandboxConfig::default()
    };
    let bytes = simple_operator("cached", "1.0.0");
    let meta = Sandbox::new(config())
        .unwrap()
        .registry()
        .add(&bytes)
        .unwrap();
    let hex = meta.digest.strip_prefix("sha256:").unwrap();
    let engines: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(engines.len(), 1, "one directory per engine configuration");
    let artifact = engines[0].join(format!("{hex}.cwasm"));
    assert!(artifact.is_file());

    // A later start loads it; a damaged artifact is compiled again, not fatal.
    assert_eq!(
        Sandbox::new(config())
            .unwrap()
            .registry()
            .add(&bytes)
            .unwrap(),
        meta
    );
    std::fs::write(&artifact, b"damaged").unwrap();
    assert_eq!(
        Sandbox::new(config())
            .unwrap()
            .registry()
            .add(&bytes)
            .unwrap(),
        meta
    );
    assert!(std::fs::read(&artifact).unwrap().len() > 100, "rewritten");
}

// ---------------------------------------------------------------------------
// WIT versions: 0.1.0 components still load and run
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_component_built_against_wit_0_1_0_loads_and_runs() {
    let sandbox = empty_sandbox();
    let bytes = std::fs::read(guests::OPERATOR_V0_1).unwrap();
    let meta = sandbox.registry().add(&bytes).unwrap();
    assert_eq!(
        (meta.name.as_str(), meta.version.as_str()),
        ("legacy", "1.0.0")
    );
    assert_eq!(meta.world, "aileron:operator/operator@0.1.0");

    let req = TryRequest::new(
        "default",
        &meta.digest,
        task("old"),
        json!({}),
        Limits::default(),
        Arc::new(NoHostServices),
    );
    let (report, log) = run(&sandbox, req).await;
    assert_eq!(
        report.result,
        TryResult::Success(Some(r#"{"task_id":"old"}"#.into())),
        "{log}"
    );
    // Its 0.1.0 `context` imports reach the same host code as 0.2.0's.
    assert!(log.contains("] INFO legacy operator, try 1\n"), "{log}");
    assert_eq!(report.xcom, [("seen".to_owned(), "true".to_owned())]);

    let req = TryRequest::new(
        "default",
        &meta.digest,
        task("old"),
        json!({"reschedule": true}),
        Limits::default(),
        Arc::new(NoHostServices),
    );
    assert_eq!(run(&sandbox, req).await.0.result, TryResult::Reschedule(7));
}

#[test]
fn hand_written_0_1_0_components_are_recognised_as_such() {
    let sandbox = empty_sandbox();
    let meta = sandbox
        .registry()
        .add(&simple_operator("old", "1.0.0"))
        .unwrap();
    assert_eq!(meta.world, "aileron:operator/operator@0.1.0");
}

// ---------------------------------------------------------------------------
// Short-circuit and sensors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn short_circuit_skips_downstream_through_wit_0_2_0() {
    let sandbox = shared();
    let outcome = |params: serde_json::Value| async move {
        let (report, log) = run(
            sandbox,
            request(sandbox, "short_circuit", params, Limits::default()),
        )
        .await;
        (report.result, log)
    };
    let (result, log) = outcome(json!({"condition": "False"})).await;
    assert_eq!(result, TryResult::SkipDownstream { all: true });
    assert!(
        last_line(&log).contains("skipping all downstream tasks"),
        "{log}"
    );
    let (result, _) =
        outcome(json!({"condition": [], "ignore_downstream_trigger_rules": false})).await;
    assert_eq!(result, TryResult::SkipDownstream { all: false });
    let (result, _) = outcome(json!({"condition": {"rows": 3}})).await;
    assert_eq!(result, TryResult::Success(Some(r#"{"rows":3}"#.into())));
}

#[tokio::test]
async fn wait_until_compares_with_the_wall_clock() {
    let sandbox = shared();
    let past = request(
        sandbox,
        "wait_until",
        json!({"target_time": "2020-01-01T00:00:00Z"}),
        Limits::default(),
    );
    assert_eq!(run(sandbox, past).await.0.result, TryResult::Success(None));
    let future = request(
        sandbox,
        "wait_until",
        json!({"target_time": "2999-01-01", "poke_interval": "90s"}),
        Limits::default(),
    );
    let (report, log) = run(sandbox, future).await;
    assert_eq!(report.result, TryResult::Reschedule(90), "{log}");
}

// ---------------------------------------------------------------------------
// Outbound HTTP (wasi:http) and its allow-list
// ---------------------------------------------------------------------------

/// A one-route HTTP/1.1 server on 127.0.0.1 answering every request with `status`
/// and `body`; returns its port and the request lines it received.
fn http_server(status: u16, body: &'static str) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            record.lock().unwrap().push(line.trim_end().to_owned());
            // Skip the headers; the tests' requests have no body.
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

/// A server on 127.0.0.1 that accepts connections and never answers.
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    port
}

fn grant(allow_hosts: &[&str], allow_private_ips: bool) -> Limits {
    Limits {
        allow_hosts: allow_hosts.iter().map(|h| (*h).to_owned()).collect(),
        allow_private_ips,
        timeout: Some(Duration::from_secs(20)),
        ..Limits::default()
    }
}

async fn poke(params: serde_json::Value, limits: Limits) -> (TryResult, String) {
    let sandbox = shared();
    let (report, log) = run(sandbox, request(sandbox, "http_sensor", params, limits)).await;
    (report.result, log)
}

#[tokio::test]
async fn an_allowed_host_is_reached_and_the_sensor_succeeds() {
    let (port, seen) = http_server(200, "ready");
    let url = format!("http://127.0.0.1:{port}/health?x=1");
    let (result, log) = poke(
        json!({"url": url, "response_contains": "ready"}),
        grant(&[&format!("127.0.0.1:{port}")], true),
    )
    .await;
    assert_eq!(
        result,
        TryResult::Success(Some(r#"{"body":"ready","status":200}"#.into())),
        "{log}"
    );
    assert_eq!(seen.lock().unwrap()[0], "GET /health?x=1 HTTP/1.1");
}

#[tokio::test]
async fn a_condition_not_met_reschedules_at_the_poke_interval() {
    let (port, _) = http_server(503, "busy");
    let (result, log) = poke(
        json!({"url": format!("http://localhost:{port}/"), "poke_interval": 42}),
        grant(&["localhost"], true),
    )
    .await;
    assert_eq!(result, TryResult::Reschedule(42), "{log}");
    assert!(log.contains("status 503 is not the expected 2xx"), "{log}");
}

#[tokio::test]
async fn a_host_not_allowed_is_refused_fatally_and_logged() {
    let (port, seen) = http_server(200, "ready");
    let url = format!("http://127.0.0.1:{port}/");
    for allow_hosts in [&["example.com", "*.example.com"][..], &[]] {
        let (result, log) = poke(json!({"url": url}), grant(allow_hosts, true)).await;
        let TryResult::Fatal(reason) = &result else {
            panic!("expected a fatal failure, got {result:?}\n{log}")
        };
        assert!(reason.contains("refused by the host"), "{reason}");
        assert!(reason.contains("allow_hosts"), "{reason}");
        let denied =
            format!("WARN outbound HTTP to 127.0.0.1:{port} denied: not in the task's allow_hosts");
        assert!(log.contains(&denied), "{log}");
        if allow_hosts.is_empty() {
            assert!(log.contains("the task has no allow_hosts"), "{log}");
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request reached the server"
    );
}

#[tokio::test]
async fn an_allowed_name_resolving_to_a_private_address_is_refused() {
    let (port, seen) = http_server(200, "ready");
    let (result, log) = poke(
        json!({"url": format!("http://localhost:{port}/")}),
        grant(&["localhost"], false),
    )
    .await;
    assert!(matches!(result, TryResult::Fatal(_)), "{result:?}\n{log}");
    assert!(
        log.contains(&format!(
            "WARN outbound HTTP to localhost:{port} denied: it resolves to"
        )),
        "{log}"
    );
    assert!(log.contains("a loopback address"), "{log}");
    // IP literals are checked the same way.
    let (result, log) = poke(
        json!({"url": format!("http://127.0.0.1:{port}/")}),
        grant(&["127.0.0.1"], false),
    )
    .await;
    assert!(matches!(result, TryResult::Fatal(_)), "{result:?}\n{log}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request reached the server"
    );
}

#[tokio::test]
async fn a_wildcard_does_not_allow_its_apex() {
    let (port, _) = http_server(200, "ready");
    let (result, log) = poke(
        json!({"url": format!("http://localhost:{port}/")}),
        grant(&["*.localhost"], true),
    )
    .await;
    assert!(matches!(result, TryResult::Fatal(_)), "{result:?}\n{log}");
    assert!(
        log.contains("denied: not in the task's allow_hosts"),
        "{log}"
    );
}

#[test]
fn wildcards_match_subdomains_only_and_ports_restrict() {
    let hosts = |list: &[&str]| list.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>();
    let wildcard = hosts(&["*.example.com"]);
    assert!(host_allowed(&wildcard, "a.example.com", 443));
    assert!(host_allowed(&wildcard, "A.b.Example.com.", 80));
    assert!(!host_allowed(&wildcard, "example.com", 443));
    assert!(!host_allowed(&wildcard, "notexample.com", 443));
    let ported = hosts(&["api.example.com:8443", "[::1]:8080"]);
    assert!(host_allowed(&ported, "api.example.com", 8443));
    assert!(!host_allowed(&ported, "api.example.com", 443));
    assert!(host_allowed(&ported, "[::1]", 8080));
    assert!(!host_allowed(&hosts(&[]), "example.com", 443));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_the_sensor_pokes_again() {
    let port = silent_server();
    let started = Instant::now();
    let (result, log) = poke(
        json!({"url": format!("http://127.0.0.1:{port}/"), "request_timeout": 0.3, "poke_interval": 5}),
        grant(&["127.0.0.1"], true),
    )
    .await;
    assert_eq!(result, TryResult::Reschedule(5), "{log}");
    assert!(log.contains("timed out waiting for the response"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_try_deadline_bounds_a_request() {
    let port = silent_server();
    let limits = Limits {
        timeout: Some(Duration::from_millis(400)),
        ..grant(&["127.0.0.1"], true)
    };
    let started = Instant::now();
    let (result, log) = poke(json!({"url": format!("http://127.0.0.1:{port}/")}), limits).await;
    // The capped first-byte timeout (the try's remaining time) or the deadline
    // itself ends it, well before the 30 s request timeout.
    assert!(
        matches!(&result, TryResult::Failed(r) if r.contains("execution_timeout"))
            || matches!(result, TryResult::Reschedule(_)),
        "{result:?}\n{log}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A store just below address 0 (where a stack that grows down towards 0 lands
/// when it wraps around) is a stack overflow; a wild store elsewhere stays the
/// out-of-bounds trap it is.
#[tokio::test]
async fn out_of_bounds_accesses_near_address_zero_are_stack_overflows() {
    let sandbox = empty_sandbox();
    for (name, address, expected) in [
        (
            "wrapped",
            -16,
            "stack overflow: the operator's stack ran out (too deep a recursion, or too large local variables)",
        ),
        (
            "wild",
            100_000_000,
            "wasm trap: out of bounds memory access",
        ),
    ] {
        let body = format!("(i32.store (i32.const {address}) (i32.const 1)) (i32.const 2048)");
        let meta = sandbox
            .registry()
            .add(&wat_operator(name, "1.0.0", "", &body))
            .unwrap();
        let req = TryRequest::new(
            "default",
            meta.digest,
            task(name),
            json!({}),
            Limits::default(),
            Arc::new(NoHostServices),
        );
        let (report, _) = run(&sandbox, req).await;
        assert_eq!(report.result, TryResult::Failed(expected.into()), "{name}");
    }
}
