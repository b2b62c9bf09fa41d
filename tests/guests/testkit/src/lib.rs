//! Test guest `testkit`: one operator whose `mode` param selects a hostile, buggy or
//! probing behaviour, so the integration tests can check the sandbox's limits and
//! every host call against real wasm. tests/guests/README.md is the contract.

use std::fmt::Display;
use std::io::Write;
use std::time::Duration;

use aileron_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The behaviours, selected by the `mode` param; the other params belong to the mode.
#[derive(Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum Mode {
    BusyLoop,
    MemoryBomb,
    HoldMemory {
        mib: usize,
        seconds: f64,
    },
    Trap,
    Panic,
    Sleep {
        seconds: f64,
    },
    SlowOutput {
        seconds: f64,
    },
    Stdout {
        text: String,
        #[serde(default = "once")]
        repeat: u64,
    },
    LogSpam {
        text: String,
        #[serde(default = "once")]
        repeat: u64,
    },
    Xcom {
        #[serde(default)]
        push: Map<String, Value>,
        pull_task: Option<String>,
        pull_key: Option<String>,
    },
    Variable {
        key: String,
    },
    Connection {
        conn_id: String,
    },
    /// Reads connection `conn_id`, then sends each request through it; every
    /// answer is logged, pushed as an XCom and returned: every path a guest has
    /// to put what it got somewhere a user (or another host) could read it.
    ThroughConnection {
        conn_id: String,
        requests: Vec<GuestRequest>,
    },
    Escape {
        #[serde(default = "default_tcp_addr")]
        tcp_addr: String,
    },
    Params,
    Return {
        value: Option<Value>,
    },
    XcomFlood {
        count: u64,
        #[serde(default = "default_key_bytes")]
        key_bytes: usize,
        #[serde(default = "default_value_bytes")]
        value_bytes: usize,
    },
    StackOverflow,
    Sensor {
        variable: String,
        #[serde(default = "default_poke_seconds")]
        poke_seconds: u64,
    },
}

#[derive(Deserialize)]
struct GuestRequest {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

fn get() -> String {
    "GET".to_owned()
}

fn once() -> u64 {
    1
}

fn default_poke_seconds() -> u64 {
    60
}

fn default_key_bytes() -> usize {
    16
}

fn default_value_bytes() -> usize {
    1
}

fn default_tcp_addr() -> String {
    "127.0.0.1:80".to_owned()
}

/// Misbehaves or probes the host on request; the `mode` param says how.
#[operator(
    name = "testkit",
    version = "0.1.0",
    params_schema = r#"{
        "type": "object",
        "properties": {
            "mode": {
                "enum": ["busy_loop", "memory_bomb", "trap", "panic", "sleep", "stdout",
                         "log_spam", "xcom", "variable", "connection", "escape", "params",
                         "return", "sensor", "slow_output", "xcom_flood", "stack_overflow",
                         "hold_memory", "through_connection"]
            }
        },
        "required": ["mode"]
    }"#
)]
fn testkit(ctx: &TaskContext, params: Value) -> Result<Outcome, TaskError> {
    let mode = Mode::deserialize(&params)
        .context("invalid params")
        .fatal()?;
    match mode {
        Mode::BusyLoop => busy_loop(),
        Mode::MemoryBomb => memory_bomb(),
        Mode::Trap => trap(),
        Mode::Panic => panic!("testkit panicked on purpose"),
        Mode::HoldMemory { mib, seconds } => {
            let held = hold(mib);
            std::thread::sleep(Duration::try_from_secs_f64(seconds).fatal()?);
            Ok(Outcome::returning(json!({ "held_mib": held.len() })))
        }
        Mode::Sleep { seconds } => {
            std::thread::sleep(Duration::try_from_secs_f64(seconds).fatal()?);
            Ok(Outcome::success())
        }
        Mode::SlowOutput { seconds } => {
            // Two log lines around a sleep: a test can see a running try's log
            // tail (`before` only) and tell a try cut short (no `after`).
            ctx.info("before");
            std::thread::sleep(Duration::try_from_secs_f64(seconds).fatal()?);
            ctx.info("after");
            Ok(Outcome::returning(json!({ "try": ctx.task().try_number })))
        }
        Mode::Stdout { text, repeat } => Ok(Outcome::returning(print_both(&text, repeat))),
        Mode::LogSpam { text, repeat } => {
            for _ in 0..repeat {
                ctx.info(&text);
            }
            Ok(Outcome::returning(json!({ "logged": repeat })))
        }
        Mode::Xcom {
            push,
            pull_task,
            pull_key,
        } => {
            for (key, value) in &push {
                ctx.xcom_push(key, value)?;
            }
            let pulled = match pull_task {
                Some(task_id) => ctx.xcom_pull::<Value>(&task_id, pull_key.as_deref())?,
                None => None,
            };
            Ok(Outcome::returning(json!({ "pulled": pulled })))
        }
        Mode::XcomFlood {
            count,
            key_bytes,
            value_bytes,
        } => {
            // `1`, or a JSON string whose quoted form is `value_bytes` long.
            let value = match value_bytes {
                0 | 1 => json!(1),
                n => json!("x".repeat(n - 2)),
            };
            let mut pushed = 0_u64;
            let mut error = None;
            for i in 0..count {
                if let Err(e) = ctx.xcom_push(&format!("{i:0>key_bytes$}"), &value) {
                    error = Some(e.to_string());
                    break;
                }
                pushed += 1;
            }
            Ok(Outcome::returning(
                json!({ "pushed": pushed, "error": error }),
            ))
        }
        Mode::StackOverflow => Ok(Outcome::returning(recurse(0))),
        Mode::Variable { key } => Ok(Outcome::returning(ctx.variable(&key))),
        Mode::Connection { conn_id } => Ok(Outcome::returning(
            match ctx.connection_as::<Value>(&conn_id) {
                Ok(connection) => json!({ "connection": connection }),
                Err(error) => json!({ "error": error.to_string() }),
            },
        )),
        Mode::ThroughConnection { conn_id, requests } => {
            let connection = match ctx.connection_as::<Value>(&conn_id) {
                Ok(connection) => json!(connection),
                Err(error) => json!({ "error": error.to_string() }),
            };
            ctx.info(format!("connection: {connection}"));
            ctx.xcom_push("connection", &connection)?;
            let mut answers = Vec::new();
            for (i, r) in requests.into_iter().enumerate() {
                let mut request = Request::new(r.method, r.url);
                for (name, value) in r.headers {
                    request = request.header(name, value);
                }
                let answer = match ctx.http_with_connection(&conn_id, request) {
                    Ok(response) => json!({
                        "status": response.status,
                        "headers": response.headers,
                        "body": response.text(),
                    }),
                    Err(error) => json!({ "error": error.to_string() }),
                };
                ctx.info(format!("answer {i}: {answer}"));
                ctx.xcom_push(&format!("answer_{i}"), &answer)?;
                answers.push(answer);
            }
            Ok(Outcome::returning(
                json!({ "connection": connection, "answers": answers }),
            ))
        }
        Mode::Escape { tcp_addr } => Ok(Outcome::returning(escape(&tcp_addr))),
        Mode::Params => Ok(Outcome::returning(
            json!({ "params": params, "task": ctx.task() }),
        )),
        Mode::Return { value } => Ok(Outcome::Success(value)),
        Mode::Sensor {
            variable,
            poke_seconds,
        } => Ok(match ctx.variable(&variable) {
            Some(value) => Outcome::returning(value),
            None => Outcome::reschedule(Duration::from_secs(poke_seconds)),
        }),
    }
}

/// Spins forever; only the host's CPU deadline (epoch interruption) ends it.
fn busy_loop() -> ! {
    let mut spins: u64 = 0;
    loop {
        // `black_box` keeps the optimiser from proving the loop does nothing.
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
}

/// Allocates and touches 1 MiB after 1 MiB until the host's memory cap makes an
/// allocation fail, which aborts (traps) the guest.
/// `mib` MiB allocated one at a time and touched (every page), kept.
fn hold(mib: usize) -> Vec<Vec<u8>> {
    (0..mib)
        .map(|_| {
            let mut chunk = vec![0_u8; 1 << 20];
            for byte in chunk.iter_mut().step_by(4096) {
                *byte = 1;
            }
            std::hint::black_box(chunk)
        })
        .collect()
}

fn memory_bomb() -> ! {
    const CHUNK: usize = 1 << 20;
    const PAGE: usize = 4096;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0_u8; CHUNK];
        for byte in chunk.iter_mut().step_by(PAGE) {
            *byte = 1;
        }
        hoard.push(std::hint::black_box(chunk));
    }
}

/// Recurses without end; each frame keeps a 4 KiB array alive across the call, so
/// the guest's stack (in its linear memory) runs out after a few dozen frames.
fn recurse(depth: u64) -> u64 {
    // Never true; it keeps the recursion from being unconditional (a lint).
    if depth == u64::MAX {
        return 0;
    }
    let frame = std::hint::black_box([depth as u8; 4096]);
    let below = recurse(std::hint::black_box(depth + 1));
    below.wrapping_add(u64::from(frame[(depth % 4096) as usize]))
}

/// Executes the wasm `unreachable` instruction: a trap with no panic message.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    // Only reached when the guest is compiled for the build machine (clippy, tests).
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Writes `text` and a newline to stdout and to stderr, `repeat` times each, and
/// reports how far each got: a host that caps output may start refusing writes.
fn print_both(text: &str, repeat: u64) -> Value {
    let mut line = text.as_bytes().to_vec();
    line.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let (mut stdout_lines, mut stderr_lines) = (0_u64, 0_u64);
    let (mut stdout_error, mut stderr_error) = (None, None);
    for _ in 0..repeat {
        if stdout_error.is_none() {
            match stdout.write_all(&line) {
                Ok(()) => stdout_lines += 1,
                Err(error) => stdout_error = Some(error.to_string()),
            }
        }
        if stderr_error.is_none() {
            match stderr.write_all(&line) {
                Ok(()) => stderr_lines += 1,
                Err(error) => stderr_error = Some(error.to_string()),
            }
        }
    }
    if let (None, Err(error)) = (&stdout_error, stdout.flush()) {
        stdout_error = Some(error.to_string());
    }
    json!({
        "stdout_lines": stdout_lines,
        "stderr_lines": stderr_lines,
        "stdout_error": stdout_error,
        "stderr_error": stderr_error,
    })
}

/// Tries the usual ways out of a sandbox. Each probe reports `ok` (whether it got
/// through) and a `detail`: what it found, or the error. In Aileron's sandbox every probe should
/// fail (and the environment should be empty) unless the task was granted more.
fn escape(tcp_addr: &str) -> Value {
    let read_root = probe(std::fs::read_dir("/").and_then(|entries| {
        entries
            .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()
    }));
    let env_names: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    let tcp_connect = probe(
        tcp_addr
            .parse()
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))
            .and_then(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)))
            .map(|stream| stream.peer_addr().map(|peer| peer.to_string()).ok()),
    );
    let read_passwd = probe(std::fs::read_to_string("/etc/passwd"));
    json!({
        "read_root": read_root,
        "env_vars": { "ok": !env_names.is_empty(), "detail": env_names },
        "tcp_connect": tcp_connect,
        "read_passwd": read_passwd,
    })
}

fn probe<T: serde::Serialize, E: Display>(result: Result<T, E>) -> Value {
    match result {
        Ok(found) => json!({ "ok": true, "detail": found }),
        Err(error) => json!({ "ok": false, "detail": error.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use aileron_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn slow_output_logs_around_its_sleep_and_returns_its_try_number() {
        let host = TestHost::new();
        let mut task = TaskInfo::default();
        task.try_number = 3;
        let outcome = host.run(task, r#"{"mode": "slow_output", "seconds": 0.01}"#, testkit);
        assert_eq!(outcome, Ok(Outcome::returning(json!({ "try": 3 }))));
        assert_eq!(
            host.logs(),
            [
                (Level::Info, "before".to_owned()),
                (Level::Info, "after".to_owned())
            ]
        );
    }
}
