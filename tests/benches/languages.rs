//! The sandbox's cost per try for a no-op operator in each language: Rust (the
//! standard `noop`), Python (componentize-py) and JavaScript (componentize-js),
//! each built by `aileron plugins build` from the templates' layout into
//! `target/bench-operators/` (again only when the source changed).
//!
//! Printed per language: one try at a time (p50, p99 of `Sandbox::run`), 50 at
//! once (p99), and the resident memory each live try adds (50 tries held open
//! by a 1 s wait, the process's RSS 700 ms in, when every one has started,
//! compared with before they started; and of that, the private part: RSS counts
//! a shared image page once in every try that maps it).
//!
//! `.ci/sdk-toolchains` first, then
//! `cargo bench -p aileron-tests --bench languages` (release build).
//! `AILERON_BENCH_TRIES` sets the one-at-a-time sample (default 2000),
//! `AILERON_BENCH_ONLY=python` (or `rust`, `javascript`, `extra`) runs one
//! language, and `AILERON_BENCH_EXTRA=FILE.wasm` adds a component of your own
//! (a no-op built some other way, to compare) as `extra`.

use aileron_sandbox::{
    LogBuffer, NoHostServices, Sandbox, SandboxConfig, TaskInfo, TryRequest, TryResult,
};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARALLEL: usize = 50;

/// The Python no-op: waits `wait_ms` if given, else does nothing.
const PY_NOOP: &str = r#"
import time
from dataclasses import dataclass
from aileron import Context, operator, param

@dataclass
class Params:
    wait_ms: int = param(0, description="Milliseconds to wait")

@operator(name="py_noop", version="0.1.0")
def py_noop(ctx: Context, params: Params) -> None:
    """Does nothing (or waits)."""
    if params.wait_ms:
        time.sleep(params.wait_ms / 1000)
"#;

const JS_NOOP: &str = r#"
import { operator, p } from 'aileron-sdk';

export default operator(
  { name: 'js_noop', version: '0.1.0', params: p.object({ wait_ms: p.integer({ default: 0 }) }) },
  async (_ctx, { wait_ms }) => {
    if (wait_ms) await new Promise((resolve) => setTimeout(resolve, wait_ms));
  },
);
"#;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Writes a project (when its files differ) and builds it with the CLI
/// (when it has no component yet); the component's bytes.
fn build(name: &str, files: &[(&str, String)]) -> Vec<u8> {
    let dir = repo().join("target/bench-operators").join(name);
    let out = dir.join(format!("dist/{name}.wasm"));
    let mut changed = !out.is_file();
    for (file, text) in files {
        let path = dir.join(file);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            changed = true;
        }
    }
    if changed {
        let toolchain = repo().join("target/sdk-toolchains/py/bin");
        let path = std::env::join_paths(std::iter::once(toolchain).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        let status = Command::new(aileron_tests::aileron_bin())
            .args(["plugins", "build"])
            .arg(&dir)
            .env("PATH", path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot build {name}: run .ci/sdk-toolchains first"
        );
    }
    std::fs::read(out).unwrap()
}

fn operators() -> Vec<(&'static str, Vec<u8>)> {
    // The JavaScript toolchain is the examples' workspace install, found by
    // walking up from the project.
    let modules = repo().join("target/bench-operators/node_modules");
    if !modules.exists() {
        std::fs::create_dir_all(modules.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(repo().join("plugins/examples/node_modules"), &modules).unwrap();
    }
    let py = build(
        "py_noop",
        &[
            ("py_noop.py", PY_NOOP.to_owned()),
            (
                "pyproject.toml",
                "[project]\nname = \"py_noop\"\nversion = \"0.1.0\"\n[tool.aileron]\nmodule = \"py_noop\"\n"
                    .to_owned(),
            ),
        ],
    );
    let js = build(
        "js_noop",
        &[
            ("src/index.js", JS_NOOP.to_owned()),
            (
                "package.json",
                r#"{"name": "js_noop", "version": "0.1.0", "type": "module", "private": true}"#
                    .to_owned(),
            ),
        ],
    );
    let mut all = vec![("python", py), ("javascript", js)];
    if let Some(extra) = std::env::var_os("AILERON_BENCH_EXTRA") {
        all.push(("extra", std::fs::read(extra).unwrap()));
    }
    all
}

fn request(digest: &str, params: serde_json::Value) -> TryRequest {
    TryRequest {
        tenant: "default".into(),
        digest: digest.into(),
        info: TaskInfo {
            dag_id: "bench".into(),
            run_id: "manual__2026-01-01T00:00:00+00:00".into(),
            task_id: "noop".into(),
            map_index: None,
            try_number: 1,
            logical_date: "2026-01-01T00:00:00Z".into(),
            data_interval_start: "2026-01-01T00:00:00Z".into(),
            data_interval_end: "2026-01-02T00:00:00Z".into(),
        },
        params,
        limits: aileron_sandbox::Limits {
            memory_bytes: Some(64 << 20),
            ..Default::default()
        },
        host: Arc::new(NoHostServices),
        log: Arc::new(LogBuffer::new(64 << 10)),
        live: Default::default(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Resident memory of this process, in bytes.
/// The process's resident memory, and the part of it that is private to it
/// (not the shared pages of a file or image), in bytes.
fn rss() -> (u64, u64) {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let kib = |field: &str| -> u64 {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (
        kib("Rss:") * 1024,
        (kib("Private_Clean:") + kib("Private_Dirty:")) * 1024,
    )
}

fn main() {
    let tries = std::env::var("AILERON_BENCH_TRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000usize);
    let sandbox = Sandbox::new(SandboxConfig {
        max_concurrent: (PARALLEL + 4) as u32,
        cache_dir: Some(repo().join("target/bench-operators/cache")),
        ..SandboxConfig::default()
    })
    .unwrap();
    let mut digests = vec![("rust", sandbox.registry().resolve("noop").unwrap().digest)];
    for (lang, bytes) in operators() {
        digests.push((lang, sandbox.registry().add(&bytes).unwrap().digest));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("{tries} tries one at a time, {PARALLEL} at once, RSS per live try");
    let only = std::env::var("AILERON_BENCH_ONLY").ok();
    for (lang, digest) in &digests {
        if only.as_deref().is_some_and(|o| o != *lang) {
            continue;
        }
        let noop = || request(digest, serde_json::json!({}));
        let report = rt.block_on(sandbox.run(noop()));
        assert_eq!(
            report.result,
            TryResult::Success(None),
            "{lang}: {report:?}"
        );

        let mut alone: Vec<Duration> = (0..tries)
            .map(|_| {
                let req = noop();
                let start = Instant::now();
                std::hint::black_box(rt.block_on(sandbox.run(req)));
                start.elapsed()
            })
            .collect();
        alone.sort();

        let mut together: Vec<Duration> = Vec::new();
        for _ in 0..(tries / PARALLEL).max(4) {
            let handles: Vec<_> = (0..PARALLEL)
                .map(|_| {
                    let (sandbox, req) = (sandbox.clone(), noop());
                    rt.spawn(async move {
                        let start = Instant::now();
                        std::hint::black_box(sandbox.run(req).await);
                        start.elapsed()
                    })
                })
                .collect();
            for h in handles {
                together.push(rt.block_on(h).unwrap());
            }
        }
        together.sort();

        // Live tries: each waits 1 s, so all 50 are in memory at once well
        // before it ends, however slowly they start on a small machine.
        let before = rss();
        let waiting: Vec<_> = (0..PARALLEL)
            .map(|_| {
                let sandbox = sandbox.clone();
                let req = request(digest, serde_json::json!({"wait_ms": 1000}));
                rt.spawn(async move { sandbox.run(req).await })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        let during = rss();
        for h in waiting {
            let report = rt.block_on(h).unwrap();
            assert!(
                matches!(report.result, TryResult::Success(_)),
                "{lang}: {report:?}"
            );
        }
        let per_try = |during: u64, before: u64| {
            during.saturating_sub(before) as f64 / PARALLEL as f64 / f64::from(1 << 20)
        };
        println!(
            "{lang:<10}  one at a time p50 {:>8.1?} p99 {:>8.1?}   {PARALLEL} at once p99 {:>8.1?}   \
             per live try RSS {:>5.2} MiB, private {:>5.2} MiB",
            percentile(&alone, 0.5),
            percentile(&alone, 0.99),
            percentile(&together, 0.99),
            per_try(during.0, before.0),
            per_try(during.1, before.1),
        );
    }
}
