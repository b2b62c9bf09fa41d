//! The sandbox and registry against real components: the embedded standard
//! operators, and small operators written here in the component text format to
//! reach cases the standard ones cannot (busy loops, traps, hostile `describe`,
//! several versions of one operator). This file holds the shared harness; each
//! module below one area.

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

mod hostile_guests;
mod metering;
mod registry;
mod sensors;
mod standard_operators;
mod store;
mod wit_versions;

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

/// Runs a try on its own tokio task.
fn spawn_run(sandbox: &Sandbox, req: TryRequest) -> tokio::task::JoinHandle<TryReport> {
    let sandbox = sandbox.clone();
    tokio::spawn(async move { sandbox.run(req).await })
}
